-- Responses to registrations sent with an Idempotency-Key: a retry with the same key gets
-- the stored answer instead of registering again.
CREATE TABLE idempotency_keys (
    idempotency_key VARCHAR(255)  CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    request         TEXT          NOT NULL,
    status          INT           NOT NULL,
    location        VARCHAR(100)  CHARACTER SET ascii NOT NULL,
    body            TEXT          NOT NULL,
    created_at      BIGINT        NOT NULL,
    PRIMARY KEY (idempotency_key),
    KEY idempotency_keys_created_at (created_at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;
