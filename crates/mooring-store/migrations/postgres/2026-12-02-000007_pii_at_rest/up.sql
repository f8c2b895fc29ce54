-- Customer data at rest (docs/security.md). Each customer's data key, wrapped
-- by the key-encryption key named kek_id, in a table of its own: deleting a
-- customer deletes the key, which shreds every copy of what it sealed (WAL,
-- dead tuples, replicas, backups of the data). Back it up apart, with a short
-- retention.
CREATE TABLE data_keys (
    customer_id TEXT PRIMARY KEY,
    kek_id TEXT NOT NULL,
    wrapped BYTEA NOT NULL,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX data_keys_kek_idx ON data_keys (kek_id);
-- The key check: a data key wrapped by the key-encryption key. A start whose
-- key cannot unwrap it is refused before anything is written.
CREATE TABLE key_checks (
    name TEXT PRIMARY KEY,
    kek_id TEXT NOT NULL,
    wrapped BYTEA NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
-- The sealed values. The plaintext columns are renamed legacy_*: they hold
-- what an earlier version wrote until the first start with a key seals it
-- (and empties them). The rename makes a replica of an earlier version still
-- running beside this one fail loudly (its queries name the old columns)
-- instead of reading emptied values as the truth: it could otherwise rebuild a
-- frozen order from blanks and send it under the same key.
ALTER TABLE customer_fields RENAME COLUMN value TO legacy_value;
ALTER TABLE customer_files RENAME COLUMN content TO legacy_content;
ALTER TABLE payouts RENAME COLUMN payout_order TO legacy_order;
ALTER TABLE customer_fields ADD COLUMN sealed BYTEA;
ALTER TABLE customer_files ADD COLUMN sealed BYTEA;
ALTER TABLE payouts ADD COLUMN sealed_order BYTEA;
