//! Users and their outbox rows, through one portable query set (MySQL and SQLite).

use chrono::{DateTime, Utc};
use events::UserRegistered;
use service_kit::db::codec::{self, Micros, UuidText};
use service_kit::db::{Database, DbError};
use service_kit::housekeeping::ExpiringTable;
use sqlx::Row;
use sqlx::any::AnyRow;
use uuid::Uuid;

use crate::domain::{Email, NewUser, UserName};

/// A registered user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub user_id: Uuid,
    pub user_name: UserName,
    pub email: Email,
    pub created_at: DateTime<Utc>,
}

impl User {
    /// A new user with a fresh time-ordered id, registered now.
    pub fn new(new_user: &NewUser) -> Self {
        Self {
            user_id: Uuid::now_v7(),
            user_name: new_user.user_name.clone(),
            email: new_user.email.clone(),
            created_at: codec::now(),
        }
    }
}

/// The answer to a registration, remembered under its `Idempotency-Key`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResponse {
    /// The request it answered, canonicalised, to detect a key reused for another request.
    pub request: String,
    pub status: u16,
    pub location: String,
    pub body: String,
}

#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    #[error("a user with this email already exists")]
    DuplicateEmail,
    #[error("the idempotency key was already used")]
    KeyInUse,
    #[error(transparent)]
    Db(#[from] DbError),
}

#[derive(Debug, Clone)]
pub struct UserStore {
    db: Database,
}

const GET_USER: &str = "SELECT user_id, user_name, email, created_at FROM users WHERE user_id = ?";
const LIST_USERS: &str = "SELECT user_id, user_name, email, created_at FROM users \
     WHERE user_id > ? ORDER BY user_id LIMIT ?";

/// Which insert of the registration transaction failed.
enum Step {
    Key,
    User,
    Other,
}

impl UserStore {
    pub fn new(db: Database) -> Self {
        Self { db }
    }

    /// Inserts the user and its `UserRegistered` outbox row (and the response under its
    /// idempotency key, if any) in one transaction: all exist or none does. Unique indexes,
    /// not prior reads, decide duplicate emails and reused keys.
    pub async fn register(
        &self,
        user: &User,
        traceparent: Option<String>,
        remember: Option<(&str, &StoredResponse)>,
    ) -> Result<(), RegisterError> {
        let mut failed_at = Step::Other;
        let result = self
            .db
            .timed(self.insert(user, traceparent, remember, &mut failed_at))
            .await;
        match result {
            Ok(()) => Ok(()),
            Err(e) if e.is_unique_violation() => Err(match failed_at {
                Step::Key => RegisterError::KeyInUse,
                Step::User | Step::Other => RegisterError::DuplicateEmail,
            }),
            Err(e) => Err(e.into()),
        }
    }

    async fn insert(
        &self,
        user: &User,
        traceparent: Option<String>,
        remember: Option<(&str, &StoredResponse)>,
        failed_at: &mut Step,
    ) -> Result<(), sqlx::Error> {
        let created_at = Micros(user.created_at);
        let user_id = UuidText(user.user_id);
        let mut tx = self.db.pool().begin().await?;
        if let Some((key, response)) = remember {
            *failed_at = Step::Key;
            sqlx::query(
                "INSERT INTO idempotency_keys (idempotency_key, request, status, location, body, created_at) \
                 VALUES (?, ?, ?, ?, ?, ?)",
            )
            .bind(key)
            .bind(&response.request)
            .bind(i32::from(response.status))
            .bind(&response.location)
            .bind(&response.body)
            .bind(created_at)
            .execute(&mut *tx)
            .await?;
        }
        *failed_at = Step::User;
        sqlx::query(
            "INSERT INTO users (user_id, user_name, email, email_key, created_at) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(user_id)
        .bind(user.user_name.as_ref())
        .bind(user.email.as_ref())
        .bind(user.email.key())
        .bind(created_at)
        .execute(&mut *tx)
        .await?;
        *failed_at = Step::Other;
        sqlx::query(
            "INSERT INTO outbox (event_id, aggregate_id, payload, traceparent, created_at) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(UuidText(Uuid::now_v7()))
        .bind(user_id)
        .bind(String::from_utf8_lossy(&event_body(user).to_json()).into_owned())
        .bind(traceparent)
        .bind(created_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await
    }

    /// The response remembered under `key`, if any.
    pub async fn stored_response(&self, key: &str) -> Result<Option<StoredResponse>, DbError> {
        let query = sqlx::query(
            "SELECT request, status, location, body FROM idempotency_keys WHERE idempotency_key = ?",
        )
        .bind(key)
        .fetch_optional(self.db.pool());
        let Some(row) = self.db.timed(query).await? else {
            return Ok(None);
        };
        let status: i32 = row.try_get("status")?;
        Ok(Some(StoredResponse {
            request: row.try_get("request")?,
            status: u16::try_from(status).unwrap_or(500),
            location: row.try_get("location")?,
            body: row.try_get("body")?,
        }))
    }

    /// Forgets idempotency keys older than `max_age`, `batch_rows` per statement;
    /// returns how many.
    pub async fn forget_keys_older_than(
        &self,
        max_age: std::time::Duration,
        batch_rows: u32,
    ) -> Result<u64, DbError> {
        const KEYS: ExpiringTable = ExpiringTable {
            table: "idempotency_keys",
            column: "created_at",
        };
        KEYS.trim(&self.db, max_age, batch_rows).await
    }

    pub async fn get(&self, user_id: Uuid) -> Result<Option<User>, DbError> {
        let row = sqlx::query(GET_USER)
            .bind(UuidText(user_id))
            .fetch_optional(self.db.pool());
        let row = self.db.timed(row).await?;
        row.map(|r| user_from_row(&r)).transpose()
    }

    /// Users ordered by id (ids are time-ordered UUIDv7), starting after `after`.
    pub async fn list(&self, limit: u32, after: Option<Uuid>) -> Result<Vec<User>, DbError> {
        let rows = sqlx::query(LIST_USERS)
            // The nil id sorts before every stored (time-ordered) one.
            .bind(UuidText(after.unwrap_or(Uuid::nil())))
            .bind(i64::from(limit))
            .fetch_all(self.db.pool());
        let rows = self.db.timed(rows).await?;
        rows.iter().map(user_from_row).collect()
    }
}

/// The event body announcing `user`.
pub fn event_body(user: &User) -> UserRegistered {
    UserRegistered {
        user_id: user.user_id,
        user_name: user.user_name.as_ref().to_owned(),
        email: user.email.as_ref().to_owned(),
        registered_at: user.created_at,
    }
}

fn user_from_row(row: &AnyRow) -> Result<User, DbError> {
    let UuidText(user_id) = row.try_get("user_id")?;
    let Micros(created_at) = row.try_get("created_at")?;
    Ok(User {
        user_id,
        user_name: UserName::from_stored(row.try_get("user_name")?),
        email: Email::from_stored(row.try_get("email")?),
        created_at,
    })
}
