DROP TABLE customer_transactions;
DROP TABLE customer_files;
DROP TABLE customer_fields;
DROP TABLE customers;
