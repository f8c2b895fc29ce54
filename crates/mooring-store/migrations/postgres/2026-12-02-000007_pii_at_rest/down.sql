-- Sealed values cannot go back to plaintext in SQL: run down only on a
-- database that holds none.
ALTER TABLE payouts DROP COLUMN sealed_order;
ALTER TABLE payouts RENAME COLUMN legacy_order TO payout_order;
ALTER TABLE customer_files RENAME COLUMN legacy_content TO content;
ALTER TABLE customer_fields RENAME COLUMN legacy_value TO value;
ALTER TABLE customer_files DROP COLUMN sealed;
ALTER TABLE customer_fields DROP COLUMN sealed;
DROP TABLE key_checks;
DROP INDEX data_keys_kek_idx;
DROP TABLE data_keys;
