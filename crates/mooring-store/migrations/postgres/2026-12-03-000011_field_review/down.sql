ALTER TABLE customer_files DROP COLUMN rejected;
ALTER TABLE customer_fields DROP COLUMN rejected;
