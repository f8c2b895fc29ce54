-- The deposit address given to each SEP-31 transaction, for good.
-- memo '' means none. No two transactions share an (account, memo).
CREATE TABLE deposit_addresses (
    transaction_id TEXT PRIMARY KEY,
    account        TEXT NOT NULL,
    memo           TEXT NOT NULL DEFAULT '',
    memo_type      TEXT,
    created_at     TIMESTAMP NOT NULL
);
CREATE UNIQUE INDEX deposit_addresses_account_memo_idx ON deposit_addresses (account, memo) WHERE memo <> '';

-- Monotonic counters; a value once handed out is never handed out again.
CREATE TABLE counters (
    name  TEXT PRIMARY KEY,
    value BIGINT NOT NULL
);
INSERT INTO counters (name, value) VALUES ('deposit_memo', 0);
