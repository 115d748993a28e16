//! How a UUID and a point in time are stored, once for every table.
//!
//! Both dialects keep a UUID as its hyphenated text (`CHAR(36)` / `TEXT`) and a time as
//! microseconds since the Unix epoch (`BIGINT` / `INTEGER`), so that one query set runs
//! on MySQL/MariaDB and SQLite alike.
//!
//! The two wrappers implement sqlx's `Type`, `Encode` and `Decode` for the `Any` driver,
//! by delegating to its own text and integer support: a query binds `UuidText(id)` or
//! `Micros(time)`, and a row reads `let UuidText(id) = row.try_get("id")?`. That keeps
//! the conversion out of the queries and lets sqlx report a bad value the way it reports
//! any column it cannot read: `sqlx::Error::ColumnDecode`, naming the column, with a
//! [`DecodeError`] as its source. A stored value that does not decode is an error, never
//! a default.

use chrono::{DateTime, Utc};
use sqlx::any::{AnyTypeInfo, AnyValueRef};
use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::{Any, Database, Decode, Encode, Type};
use uuid::Uuid;

/// A UUID, stored as its 36-character hyphenated lower-case text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UuidText(pub Uuid);

/// A point in time, stored as microseconds since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Micros(pub DateTime<Utc>);

/// A stored value that is not what its column holds.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("not a UUID")]
    Uuid(#[source] uuid::Error),
    #[error("{0} µs since the Unix epoch is not a representable time")]
    TimeOutOfRange(i64),
}

/// The current time truncated to microseconds, the precision a stored time keeps, so that
/// a value written and read back compares equal.
pub fn now() -> DateTime<Utc> {
    let now = Utc::now();
    DateTime::from_timestamp_micros(now.timestamp_micros()).unwrap_or(now)
}

type ArgumentBuffer = <Any as Database>::ArgumentBuffer;

impl Type<Any> for UuidText {
    fn type_info() -> AnyTypeInfo {
        <String as Type<Any>>::type_info()
    }

    fn compatible(ty: &AnyTypeInfo) -> bool {
        <String as Type<Any>>::compatible(ty)
    }
}

impl Encode<'_, Any> for UuidText {
    fn encode_by_ref(&self, buf: &mut ArgumentBuffer) -> Result<IsNull, BoxDynError> {
        <String as Encode<Any>>::encode(self.0.hyphenated().to_string(), buf)
    }
}

impl<'r> Decode<'r, Any> for UuidText {
    fn decode(value: AnyValueRef<'r>) -> Result<Self, BoxDynError> {
        let text = <&str as Decode<Any>>::decode(value)?;
        Ok(Self(Uuid::parse_str(text).map_err(DecodeError::Uuid)?))
    }
}

impl Type<Any> for Micros {
    fn type_info() -> AnyTypeInfo {
        <i64 as Type<Any>>::type_info()
    }

    fn compatible(ty: &AnyTypeInfo) -> bool {
        <i64 as Type<Any>>::compatible(ty)
    }
}

impl Encode<'_, Any> for Micros {
    fn encode_by_ref(&self, buf: &mut ArgumentBuffer) -> Result<IsNull, BoxDynError> {
        <i64 as Encode<Any>>::encode(self.0.timestamp_micros(), buf)
    }
}

impl<'r> Decode<'r, Any> for Micros {
    fn decode(value: AnyValueRef<'r>) -> Result<Self, BoxDynError> {
        let micros = <i64 as Decode<Any>>::decode(value)?;
        DateTime::from_timestamp_micros(micros)
            .map(Self)
            .ok_or_else(|| DecodeError::TimeOutOfRange(micros).into())
    }
}

#[cfg(test)]
mod tests {
    use sqlx::Row;
    use sqlx::any::AnyRow;

    use super::*;
    use crate::db::Database;

    async fn fetch(query: sqlx::query::Query<'_, Any, sqlx::any::AnyArguments>) -> AnyRow {
        let db = Database::connect("sqlite::memory:", 1)
            .await
            .expect("in-memory database");
        query.fetch_one(db.pool()).await.expect("row")
    }

    #[tokio::test]
    async fn values_are_stored_as_before_and_read_back_unchanged() {
        let (id, time) = (Uuid::now_v7(), now());
        let query = sqlx::query("SELECT ? AS id, ? AS t")
            .bind(UuidText(id))
            .bind(Micros(time));
        let row = fetch(query).await;

        // The stored form existing databases hold: hyphenated text and integer µs.
        assert_eq!(row.get::<String, _>("id"), id.to_string());
        assert_eq!(row.get::<i64, _>("t"), time.timestamp_micros());
        assert_eq!(row.get::<UuidText, _>("id"), UuidText(id));
        assert_eq!(row.get::<Micros, _>("t"), Micros(time));
    }

    #[tokio::test]
    async fn a_value_that_does_not_decode_is_an_error_naming_its_column() {
        let row = fetch(sqlx::query(
            "SELECT 'not-a-uuid' AS id, 9223372036854775807 AS t",
        ))
        .await;

        for (column, error) in [
            ("id", row.try_get::<UuidText, _>("id").err()),
            ("t", row.try_get::<Micros, _>("t").err()),
        ] {
            let error = error.expect("refused, not defaulted");
            assert!(
                matches!(&error, sqlx::Error::ColumnDecode { index, .. } if index.contains(column)),
                "{error:?}"
            );
        }
    }
}
