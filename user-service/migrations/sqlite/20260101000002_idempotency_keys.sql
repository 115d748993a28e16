-- Same schema as migrations/mysql for the embedded run.
CREATE TABLE idempotency_keys (
    idempotency_key TEXT    NOT NULL PRIMARY KEY,
    request         TEXT    NOT NULL,
    status          INTEGER NOT NULL,
    location        TEXT    NOT NULL,
    body            TEXT    NOT NULL,
    created_at      INTEGER NOT NULL
);
CREATE INDEX idempotency_keys_created_at ON idempotency_keys (created_at);
