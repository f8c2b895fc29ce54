-- The engine's poll marks: for each kind of poll, the newest
-- transfer_received_at from which a complete poll read down to the previous
-- mark (every funded transaction the AP listed at or before it then is in
-- the ledger). Only ever moves forward.
CREATE TABLE poll_marks (
    name       TEXT PRIMARY KEY,
    mark       TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
