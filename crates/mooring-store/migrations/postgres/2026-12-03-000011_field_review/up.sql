-- A reviewer's rejection of one provided field, with the reason the sender is
-- shown (SEP-12 provided_fields[].error). NULL when the field is not rejected.
-- A new value for the field writes NULL here in the same statement; an
-- approval of the customer clears every one.
ALTER TABLE customer_fields ADD COLUMN rejected TEXT;
ALTER TABLE customer_files ADD COLUMN rejected TEXT;
