-- The record attempt that wrote each row. A write whose answer was lost (timeout, broken
-- connection) may still have committed; finding the row later with the token of one of
-- its own unsettled attempts tells the consumer that it recorded the event itself, so the
-- event is counted as delivered exactly once. Rows from before this column have NULL.
ALTER TABLE notifications ADD COLUMN recorded_by CHAR(36) CHARACTER SET ascii NULL;
