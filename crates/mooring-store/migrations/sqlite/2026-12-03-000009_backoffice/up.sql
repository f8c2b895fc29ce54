-- The back office (docs/backoffice.md): its users, their sessions, and the
-- maker-checker requests on payouts. A TOTP secret is sealed by the user's
-- data key (a data_keys row named 'staff:<name>', so key rotation re-wraps
-- it); a session is kept by the SHA-256 of its token, never the token.
CREATE TABLE staff_users (
    name TEXT PRIMARY KEY,
    role TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    disabled BOOLEAN NOT NULL DEFAULT 0,
    failures INTEGER NOT NULL DEFAULT 0,
    locked_until TIMESTAMP,
    totp_sealed BLOB,
    totp_enrolled BOOLEAN NOT NULL DEFAULT 0,
    totp_last_step BIGINT,
    created_at TIMESTAMP NOT NULL
);
CREATE TABLE staff_sessions (
    token_hash TEXT PRIMARY KEY,
    user_name TEXT NOT NULL REFERENCES staff_users (name) ON DELETE CASCADE,
    verified BOOLEAN NOT NULL,
    csrf TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    last_seen TIMESTAMP NOT NULL
);
CREATE INDEX staff_sessions_user_idx ON staff_sessions (user_name);
CREATE TABLE payout_requests (
    id TEXT PRIMARY KEY,
    transaction_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    stellar_hash TEXT,
    attempt BIGINT NOT NULL,
    maker TEXT NOT NULL,
    made_at TIMESTAMP NOT NULL,
    state TEXT NOT NULL,
    checker TEXT,
    decided_at TIMESTAMP,
    outcome TEXT NOT NULL DEFAULT ''
);
-- At most one open request per payout, whichever replica adds it.
CREATE UNIQUE INDEX payout_requests_open_idx ON payout_requests (transaction_id)
    WHERE state IN ('pending', 'approving');
CREATE INDEX payout_requests_made_idx ON payout_requests (made_at);
