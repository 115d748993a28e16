-- Housekeeping deletes notifications older than the retention window, oldest first, in
-- small batches: the index lets each batch find its rows without scanning the table.
CREATE INDEX notifications_delivered_at ON notifications (delivered_at);
