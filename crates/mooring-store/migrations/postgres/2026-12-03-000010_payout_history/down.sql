DROP TRIGGER payout_history_on_change ON payouts;
DROP FUNCTION payout_history_record();
DROP TABLE payout_history;
ALTER TABLE payouts DROP COLUMN changed_by;
