-- Fenced claims, frozen orders and the sender of each payout.
-- claim_token: grows with every claim of the entry (and every operator's
-- move), and every write under a claim checks it. lease_until is now set and
-- judged by the database's clock (now() AT TIME ZONE 'UTC').
-- payout_order: the order sent to the rail, frozen with `submitted`, as JSON;
-- dropped once the entry is final. submitted_at: when it was frozen.
ALTER TABLE payouts ADD COLUMN claim_token BIGINT NOT NULL DEFAULT 0;
ALTER TABLE payouts ADD COLUMN sender_id TEXT;
ALTER TABLE payouts ADD COLUMN payout_order TEXT;
ALTER TABLE payouts ADD COLUMN submitted_at TIMESTAMP;
-- `ready` is gone: its entries had their terms checked but no key used, so
-- they are checked again.
UPDATE payouts SET state = 'received' WHERE state = 'ready';
-- The entry's creation is the safe lower bound of its first send (the key's
-- retention is counted from it, never from a later retry).
UPDATE payouts SET submitted_at = created_at WHERE state = 'submitted';
DROP INDEX payouts_due_idx;
CREATE INDEX payouts_due_idx ON payouts (due_at)
    WHERE state IN ('new', 'received', 'awaiting_kyc', 'submitted', 'confirmed',
                    'rejecting', 'rail_failed', 'recovering', 'refunding');
CREATE INDEX payouts_awaiting_sender_idx ON payouts (sender_id) WHERE state = 'awaiting_kyc';
-- The database's clock for leases: the end of a lease of `ms` milliseconds.
CREATE FUNCTION mooring_lease_end(ms BIGINT) RETURNS TIMESTAMP
    LANGUAGE SQL STABLE
    AS $$ SELECT (now() AT TIME ZONE 'UTC') + ms * interval '1 millisecond' $$;
