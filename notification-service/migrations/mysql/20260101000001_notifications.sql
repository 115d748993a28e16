-- Delivered notifications. The unique event_id is the dedupe key: a redelivered event
-- finds its row and is counted as a duplicate instead of being sent again. Timestamps are
-- microseconds since the Unix epoch (portable to SQLite).
CREATE TABLE notifications (
    id           BIGINT       NOT NULL AUTO_INCREMENT,
    event_id     CHAR(36)     CHARACTER SET ascii NOT NULL,
    user_id      CHAR(36)     CHARACTER SET ascii NOT NULL,
    user_name    VARCHAR(100) NOT NULL,
    email        VARCHAR(254) NOT NULL,
    channel      VARCHAR(32)  CHARACTER SET ascii NOT NULL,
    event_time   BIGINT       NOT NULL,
    delivered_at BIGINT       NOT NULL,
    PRIMARY KEY (id),
    UNIQUE KEY notifications_event_id (event_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;
