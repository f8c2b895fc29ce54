-- A payout's timeline (docs/backoffice.md): every change of its state or of
-- the rail's payout id, with when and why (engine, poll, event, person),
-- written by a trigger in the same statement as the change, so no write path
-- can forget it and no crash can split them. Each write names its cause in
-- payouts.changed_by. Append-only, like the audit trail.
ALTER TABLE payouts ADD COLUMN changed_by TEXT;
CREATE TABLE payout_history (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    transaction_id TEXT NOT NULL,
    at TIMESTAMP NOT NULL,
    from_state TEXT,
    to_state TEXT NOT NULL,
    cause TEXT NOT NULL,
    reason TEXT,
    payout_id TEXT
);
CREATE INDEX payout_history_transaction_idx ON payout_history (transaction_id, id);
CREATE FUNCTION payout_history_record() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO payout_history (transaction_id, at, from_state, to_state, cause, reason, payout_id)
        VALUES (NEW.transaction_id, NEW.updated_at, NULL, NEW.state,
                COALESCE(NEW.changed_by, 'unknown'), NEW.reason, NEW.payout_id);
    ELSIF OLD.state IS DISTINCT FROM NEW.state OR OLD.payout_id IS DISTINCT FROM NEW.payout_id THEN
        INSERT INTO payout_history (transaction_id, at, from_state, to_state, cause, reason, payout_id)
        VALUES (NEW.transaction_id, NEW.updated_at, OLD.state, NEW.state,
                COALESCE(NEW.changed_by, 'unknown'), NEW.reason, NEW.payout_id);
    END IF;
    RETURN NULL;
END;
$$;
CREATE TRIGGER payout_history_on_change AFTER INSERT OR UPDATE ON payouts
    FOR EACH ROW EXECUTE FUNCTION payout_history_record();
CREATE TRIGGER payout_history_no_change BEFORE UPDATE OR DELETE ON payout_history
    FOR EACH ROW EXECUTE FUNCTION audit_append_only();
