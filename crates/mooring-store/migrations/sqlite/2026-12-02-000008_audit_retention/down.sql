DROP INDEX quotes_used_at_idx;
DROP INDEX quotes_expires_idx;
DROP INDEX events_processed_idx;
DROP TRIGGER audit_no_delete;
DROP TRIGGER audit_no_update;
DROP TABLE audit;
