-- Same schema as migrations/mysql for the embedded run. Timestamps are microseconds since
-- the Unix epoch.
CREATE TABLE users (
    user_id    TEXT    NOT NULL PRIMARY KEY,
    user_name  TEXT    NOT NULL,
    email      TEXT    NOT NULL,
    email_key  TEXT    NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE UNIQUE INDEX users_email_key ON users (email_key);

CREATE TABLE outbox (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id     TEXT    NOT NULL,
    aggregate_id TEXT    NOT NULL,
    payload      TEXT    NOT NULL,
    traceparent  TEXT    NULL,
    created_at   INTEGER NOT NULL
);
