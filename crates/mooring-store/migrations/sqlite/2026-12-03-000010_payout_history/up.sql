-- A payout's timeline (docs/backoffice.md): every change of its state or of
-- the rail's payout id, with when and why (engine, poll, event, person),
-- written by a trigger in the same statement as the change, so no write path
-- can forget it and no crash can split them. Each write names its cause in
-- payouts.changed_by. Append-only, like the audit trail.
ALTER TABLE payouts ADD COLUMN changed_by TEXT;
CREATE TABLE payout_history (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    transaction_id TEXT NOT NULL,
    at TIMESTAMP NOT NULL,
    from_state TEXT,
    to_state TEXT NOT NULL,
    cause TEXT NOT NULL,
    reason TEXT,
    payout_id TEXT
);
CREATE INDEX payout_history_transaction_idx ON payout_history (transaction_id, id);
CREATE TRIGGER payout_history_on_insert AFTER INSERT ON payouts
BEGIN
    INSERT INTO payout_history (transaction_id, at, from_state, to_state, cause, reason, payout_id)
    VALUES (NEW.transaction_id, NEW.updated_at, NULL, NEW.state,
            COALESCE(NEW.changed_by, 'unknown'), NEW.reason, NEW.payout_id);
END;
CREATE TRIGGER payout_history_on_update AFTER UPDATE ON payouts
    WHEN OLD.state IS NOT NEW.state OR OLD.payout_id IS NOT NEW.payout_id
BEGIN
    INSERT INTO payout_history (transaction_id, at, from_state, to_state, cause, reason, payout_id)
    VALUES (NEW.transaction_id, NEW.updated_at, OLD.state, NEW.state,
            COALESCE(NEW.changed_by, 'unknown'), NEW.reason, NEW.payout_id);
END;
CREATE TRIGGER payout_history_no_update BEFORE UPDATE ON payout_history
BEGIN
    SELECT RAISE(ABORT, 'the payout history is append-only');
END;
CREATE TRIGGER payout_history_no_delete BEFORE DELETE ON payout_history
BEGIN
    SELECT RAISE(ABORT, 'the payout history is append-only');
END;
