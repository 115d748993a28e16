-- Same as migrations/mysql: the record attempt that wrote each row.
ALTER TABLE notifications ADD COLUMN recorded_by TEXT;
