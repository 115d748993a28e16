-- Runs once, when the MySQL data volume is first initialised (docker compose).
-- One database and one least-privilege account per service: the services share
-- a server here, never each other's tables. Credentials are for local use only.
CREATE DATABASE IF NOT EXISTS users CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
CREATE DATABASE IF NOT EXISTS notifications CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;

CREATE USER IF NOT EXISTS 'user_service'@'%' IDENTIFIED BY 'user_service_pw';
CREATE USER IF NOT EXISTS 'notification_service'@'%' IDENTIFIED BY 'notification_service_pw';

-- Each service runs its own schema migrations at start, hence DDL on its own database.
GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, ALTER, INDEX, DROP, REFERENCES
  ON users.* TO 'user_service'@'%';
GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, ALTER, INDEX, DROP, REFERENCES
  ON notifications.* TO 'notification_service'@'%';
FLUSH PRIVILEGES;
