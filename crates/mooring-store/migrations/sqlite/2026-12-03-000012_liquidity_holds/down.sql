DROP INDEX quotes_outside_holds_idx;
ALTER TABLE quotes DROP COLUMN in_holds;
DROP TABLE liquidity_holds;
