DROP TABLE events;
DROP TABLE payouts;
