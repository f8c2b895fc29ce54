-- Customers (SEP-12 KYC). One row per (account, memo); memo '' means none.
CREATE TABLE customers (
    id             TEXT PRIMARY KEY,
    account        TEXT NOT NULL,
    memo           TEXT NOT NULL DEFAULT '',
    memo_type      TEXT,
    customer_type  TEXT,
    review         TEXT NOT NULL DEFAULT 'pending' CHECK (review IN ('pending', 'approved', 'rejected')),
    review_message TEXT,
    created_at     TIMESTAMP NOT NULL,
    updated_at     TIMESTAMP NOT NULL,
    CONSTRAINT customers_account_memo_key UNIQUE (account, memo)
);

-- SEP-9 text values, one row per provided field.
CREATE TABLE customer_fields (
    customer_id TEXT NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    value       TEXT NOT NULL,
    updated_at  TIMESTAMP NOT NULL,
    PRIMARY KEY (customer_id, name)
);

-- SEP-9 binary values (photo_id_front, ...).
CREATE TABLE customer_files (
    customer_id  TEXT NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    content      BYTEA NOT NULL,
    content_type TEXT,
    size_bytes   BIGINT NOT NULL,
    updated_at   TIMESTAMP NOT NULL,
    PRIMARY KEY (customer_id, name)
);

-- Transactions a customer was linked to by PUT /customer?transaction_id=...
CREATE TABLE customer_transactions (
    customer_id    TEXT NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    transaction_id TEXT NOT NULL,
    created_at     TIMESTAMP NOT NULL,
    PRIMARY KEY (customer_id, transaction_id)
);
CREATE INDEX customer_transactions_transaction_id_idx ON customer_transactions (transaction_id);
