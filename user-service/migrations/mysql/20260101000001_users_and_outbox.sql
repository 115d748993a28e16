-- Users and the transactional outbox. Timestamps are microseconds since the Unix epoch
-- (BIGINT) so that the same queries run on MySQL/MariaDB and SQLite.
CREATE TABLE users (
    user_id    CHAR(36)     CHARACTER SET ascii NOT NULL,
    user_name  VARCHAR(100) NOT NULL,
    email      VARCHAR(254) NOT NULL,
    -- Lower-cased email: the unique index makes uniqueness case-insensitive without a
    -- check-then-insert race.
    email_key  VARCHAR(254) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    created_at BIGINT       NOT NULL,
    PRIMARY KEY (user_id),
    UNIQUE KEY users_email_key (email_key)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

CREATE TABLE outbox (
    id           BIGINT       NOT NULL AUTO_INCREMENT,
    event_id     CHAR(36)     CHARACTER SET ascii NOT NULL,
    aggregate_id CHAR(36)     CHARACTER SET ascii NOT NULL,
    payload      TEXT         NOT NULL,
    traceparent  VARCHAR(55)  CHARACTER SET ascii NULL,
    created_at   BIGINT       NOT NULL,
    PRIMARY KEY (id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;
