-- Same schema as migrations/mysql for the embedded run.
CREATE TABLE notifications (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id     TEXT    NOT NULL,
    user_id      TEXT    NOT NULL,
    user_name    TEXT    NOT NULL,
    email        TEXT    NOT NULL,
    channel      TEXT    NOT NULL,
    event_time   INTEGER NOT NULL,
    delivered_at INTEGER NOT NULL
);
CREATE UNIQUE INDEX notifications_event_id ON notifications (event_id);
