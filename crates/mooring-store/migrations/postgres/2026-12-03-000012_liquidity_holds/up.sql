-- What live firm quotes hold of each buy asset, summed by the whole second
-- their hold ends (the ceiling of expires_at, which is kept to the
-- microsecond): a reservation reads the live seconds, a few hundred rows,
-- instead of every live quote. `held` is a canonical decimal string.
-- A row changes under the asset's liquidity lock only: a firm quote created
-- under a cap adds to it; using such a quote takes its amount off.
CREATE TABLE liquidity_holds (
    asset   TEXT NOT NULL,
    ends_at TIMESTAMP NOT NULL,
    held    TEXT NOT NULL,
    PRIMARY KEY (asset, ends_at)
);

-- Whether the quote's amount is in liquidity_holds. Quotes made without a
-- cap (and those stored before this migration) are not, and are summed one
-- by one while they are live, through their own partial index.
ALTER TABLE quotes ADD COLUMN in_holds BOOLEAN NOT NULL DEFAULT FALSE;
CREATE INDEX quotes_outside_holds_idx ON quotes (buy_asset, expires_at)
    WHERE used_by IS NULL AND NOT in_holds;
