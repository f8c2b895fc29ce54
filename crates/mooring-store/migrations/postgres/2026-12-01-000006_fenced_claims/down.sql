DROP FUNCTION mooring_lease_end(BIGINT);
DROP INDEX payouts_awaiting_sender_idx;
DROP INDEX payouts_due_idx;
CREATE INDEX payouts_due_idx ON payouts (due_at)
    WHERE state IN ('new', 'received', 'awaiting_kyc', 'ready', 'submitted', 'confirmed',
                    'rejecting', 'rail_failed', 'recovering', 'refunding');
ALTER TABLE payouts DROP COLUMN submitted_at;
ALTER TABLE payouts DROP COLUMN payout_order;
ALTER TABLE payouts DROP COLUMN sender_id;
ALTER TABLE payouts DROP COLUMN claim_token;
