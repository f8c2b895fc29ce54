DROP TABLE payout_requests;
DROP TABLE staff_sessions;
DROP TABLE staff_users;
