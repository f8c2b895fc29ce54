-- The audit trail (docs/security.md, "The audit trail"): who did what, to which
-- customer or payout, when, and from where. It names customers and payouts by
-- id and fields by name, never a PII value. Append-only: the triggers refuse
-- every UPDATE and DELETE, whoever sends them.
CREATE TABLE audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at TIMESTAMP NOT NULL,
    actor_kind TEXT NOT NULL,
    actor TEXT NOT NULL,
    origin TEXT NOT NULL,
    action TEXT NOT NULL,
    customer_id TEXT,
    transaction_id TEXT,
    detail TEXT NOT NULL
);
CREATE INDEX audit_customer_idx ON audit (customer_id, id);
CREATE INDEX audit_transaction_idx ON audit (transaction_id, id);
CREATE INDEX audit_at_idx ON audit (at);
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
BEGIN
    SELECT RAISE(ABORT, 'the audit trail is append-only');
END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
BEGIN
    SELECT RAISE(ABORT, 'the audit trail is append-only');
END;
-- Retention's scans (docs/security.md, "Retention").
CREATE INDEX events_processed_idx ON events (processed_at);
CREATE INDEX quotes_expires_idx ON quotes (expires_at);
CREATE INDEX quotes_used_at_idx ON quotes (used_at);
