-- Firm quotes. Amounts are canonical decimal strings, exact on both backends.
-- A quote reserves its buy_amount of buy_asset while used_by IS NULL and
-- expires_at is in the future.
CREATE TABLE quotes (
    id                   TEXT PRIMARY KEY,
    sell_asset           TEXT NOT NULL,
    buy_asset            TEXT NOT NULL,
    price                TEXT NOT NULL,
    sell_amount          TEXT NOT NULL,
    buy_amount           TEXT NOT NULL,
    fee_total            TEXT NOT NULL,
    fee_asset            TEXT NOT NULL,
    sell_delivery_method TEXT,
    buy_delivery_method  TEXT,
    country_code         TEXT,
    client_id            TEXT,
    created_at           TIMESTAMP NOT NULL,
    expires_at           TIMESTAMP NOT NULL,
    used_by              TEXT,
    used_at              TIMESTAMP
);
CREATE INDEX quotes_reserving_idx ON quotes (buy_asset, expires_at) WHERE used_by IS NULL;
CREATE INDEX quotes_created_at_idx ON quotes (created_at);

-- The parts of a quote's fee, in order.
CREATE TABLE quote_fee_details (
    quote_id    TEXT NOT NULL REFERENCES quotes (id) ON DELETE CASCADE,
    position    INTEGER NOT NULL,
    name        TEXT NOT NULL,
    description TEXT,
    amount      TEXT NOT NULL,
    PRIMARY KEY (quote_id, position)
);
