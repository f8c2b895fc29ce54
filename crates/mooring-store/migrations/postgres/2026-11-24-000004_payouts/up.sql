-- The payout ledger: one entry per AP transaction, moved through the state
-- machine of mooring_domain::payout. Amounts are canonical decimal strings.
-- claimed_by/lease_until: the replica working on the entry, until when.
CREATE TABLE payouts (
    transaction_id   TEXT PRIMARY KEY,
    state            TEXT NOT NULL,
    attempt          INTEGER NOT NULL,
    quote_id         TEXT,
    receiver_id      TEXT,
    amount_in        TEXT,
    amount_in_asset  TEXT,
    amount_out       TEXT,
    amount_out_asset TEXT,
    payout_id        TEXT,
    told_pending     INTEGER NOT NULL,
    reason           TEXT,
    last_error       TEXT,
    failures         INTEGER NOT NULL,
    refund_reference TEXT,
    created_at       TIMESTAMP NOT NULL,
    updated_at       TIMESTAMP NOT NULL,
    due_at           TIMESTAMP NOT NULL,
    claimed_by       TEXT,
    lease_until      TIMESTAMP
);
CREATE INDEX payouts_due_idx ON payouts (due_at)
    WHERE state IN ('new', 'received', 'awaiting_kyc', 'ready', 'submitted', 'confirmed',
                    'rejecting', 'rail_failed', 'recovering', 'refunding');
CREATE INDEX payouts_awaiting_receiver_idx ON payouts (receiver_id) WHERE state = 'awaiting_kyc';
CREATE INDEX payouts_created_at_idx ON payouts (created_at);

-- The inbox of POST /event: each event once, by the AP's id; applied in
-- (occurred_at, received_at) order, processed_at set when applied. Applied
-- events stay as an audit log.
CREATE TABLE events (
    id             TEXT PRIMARY KEY,
    kind           TEXT NOT NULL,
    occurred_at    TIMESTAMP NOT NULL,
    received_at    TIMESTAMP NOT NULL,
    transaction_id TEXT,
    sighting       TEXT,
    customer_id    TEXT,
    body           TEXT NOT NULL,
    processed_at   TIMESTAMP
);
CREATE INDEX events_waiting_idx ON events (occurred_at, received_at) WHERE processed_at IS NULL;
