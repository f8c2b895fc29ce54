DROP INDEX quotes_used_at_idx;
DROP INDEX quotes_expires_idx;
DROP INDEX events_processed_idx;
DROP TABLE audit;
DROP FUNCTION audit_append_only();
