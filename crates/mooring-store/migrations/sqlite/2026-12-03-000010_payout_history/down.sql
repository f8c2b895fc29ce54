DROP TRIGGER payout_history_no_delete;
DROP TRIGGER payout_history_no_update;
DROP TRIGGER payout_history_on_update;
DROP TRIGGER payout_history_on_insert;
DROP TABLE payout_history;
ALTER TABLE payouts DROP COLUMN changed_by;
