DROP TABLE counters;
DROP TABLE deposit_addresses;
