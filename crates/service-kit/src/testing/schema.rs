//! The schema a service's migrations create, read back from the database: each service
//! writes its schema twice (MySQL and SQLite migrations), and this is what checks that the
//! two agree on what the queries rely on.
//!
//! Compared: tables, their columns (name, nullability, a type class), primary keys and
//! indexes (name, columns in order, uniqueness). Not compared: lengths, character sets and
//! collations, which SQLite does not have. Two normalisations make the dialects
//! comparable: a primary-key column counts as `NOT NULL` (SQLite's `INTEGER PRIMARY KEY`
//! is the never-null rowid without saying so), and the primary key is compared as a
//! column list, not as an index (MySQL names it `PRIMARY`; SQLite has none for a rowid).

use std::collections::BTreeMap;

use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Backend, TestDatabase};
use crate::db::{Database, Dialect};

/// Tables by name; the migrations' own bookkeeping table is left out.
pub type Schema = BTreeMap<String, Table>;

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Table {
    pub columns: BTreeMap<String, Column>,
    pub primary_key: Vec<String>,
    pub indexes: BTreeMap<String, Index>,
}

#[derive(Debug, PartialEq, Eq)]
pub struct Column {
    pub class: TypeClass,
    pub nullable: bool,
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Index {
    pub columns: Vec<String>,
    pub unique: bool,
}

/// What a column holds, whatever the dialect calls it.
#[derive(Debug, PartialEq, Eq)]
pub enum TypeClass {
    Integer,
    Real,
    Text,
    Blob,
    Other(String),
}

impl TypeClass {
    /// MySQL's `DATA_TYPE` (`bigint`, `varchar`, …).
    fn of_mysql(data_type: &str) -> Self {
        match data_type.to_ascii_lowercase().as_str() {
            "tinyint" | "smallint" | "mediumint" | "int" | "integer" | "bigint" => Self::Integer,
            "float" | "double" | "decimal" => Self::Real,
            "char" | "varchar" | "tinytext" | "text" | "mediumtext" | "longtext" => Self::Text,
            "binary" | "varbinary" | "tinyblob" | "blob" | "mediumblob" | "longblob" => Self::Blob,
            other => Self::Other(other.to_owned()),
        }
    }

    /// SQLite's declared type, by its affinity rules (sqlite.org/datatype3.html, 3.1).
    fn of_sqlite(declared: &str) -> Self {
        let declared = declared.to_ascii_uppercase();
        let has = |part: &str| declared.contains(part);
        if has("INT") {
            Self::Integer
        } else if has("CHAR") || has("CLOB") || has("TEXT") {
            Self::Text
        } else if has("BLOB") || declared.is_empty() {
            Self::Blob
        } else if has("REAL") || has("FLOA") || has("DOUB") {
            Self::Real
        } else {
            Self::Other(declared)
        }
    }
}

const MIGRATIONS_TABLE: &str = "_sqlx_migrations";

/// Reads the schema of the database behind `db`.
pub async fn read(db: &Database) -> Schema {
    match db.dialect() {
        Dialect::MySql => read_mysql(db).await,
        Dialect::Sqlite => read_sqlite(db).await,
    }
}

async fn fetch(db: &Database, sql: &'static str, table: Option<&str>) -> Vec<AnyRow> {
    let query = sqlx::query(sql);
    let query = match table {
        Some(table) => query.bind(table.to_owned()),
        None => query,
    };
    query
        .fetch_all(db.pool())
        .await
        .unwrap_or_else(|e| panic!("reading the schema ({sql}): {e}"))
}

fn text(row: &AnyRow, column: &str) -> String {
    row.try_get(column)
        .unwrap_or_else(|e| panic!("schema column {column}: {e}"))
}

fn number(row: &AnyRow, column: &str) -> i64 {
    row.try_get(column)
        .unwrap_or_else(|e| panic!("schema column {column}: {e}"))
}

async fn read_mysql(db: &Database) -> Schema {
    // information_schema's text is utf8mb3: CAST gives the driver plain text to decode.
    let columns = "SELECT CAST(TABLE_NAME AS CHAR) AS t, CAST(COLUMN_NAME AS CHAR) AS c, \
         CAST(DATA_TYPE AS CHAR) AS type, CAST(IS_NULLABLE AS CHAR) AS nullable \
         FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE()";
    let indexes = "SELECT CAST(TABLE_NAME AS CHAR) AS t, CAST(INDEX_NAME AS CHAR) AS i, \
         CAST(COLUMN_NAME AS CHAR) AS c, CAST(NON_UNIQUE AS SIGNED) AS non_unique \
         FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() \
         ORDER BY TABLE_NAME, INDEX_NAME, SEQ_IN_INDEX";
    let mut schema = Schema::new();
    for row in fetch(db, columns, None).await {
        let column = Column {
            class: TypeClass::of_mysql(&text(&row, "type")),
            nullable: text(&row, "nullable") == "YES",
        };
        let table = schema.entry(text(&row, "t")).or_default();
        table.columns.insert(text(&row, "c"), column);
    }
    for row in fetch(db, indexes, None).await {
        let table = schema.entry(text(&row, "t")).or_default();
        let (name, column) = (text(&row, "i"), text(&row, "c"));
        if name == "PRIMARY" {
            table.primary_key.push(column);
            continue;
        }
        let index = table.indexes.entry(name).or_default();
        index.columns.push(column);
        index.unique = number(&row, "non_unique") == 0;
    }
    schema.remove(MIGRATIONS_TABLE);
    schema
}

async fn read_sqlite(db: &Database) -> Schema {
    let tables = "SELECT name FROM sqlite_master WHERE type = 'table' \
         AND name NOT LIKE 'sqlite!_%' ESCAPE '!' ORDER BY name";
    let mut schema = Schema::new();
    for row in fetch(db, tables, None).await {
        let name = text(&row, "name");
        let table = read_sqlite_table(db, &name).await;
        schema.insert(name, table);
    }
    schema.remove(MIGRATIONS_TABLE);
    schema
}

async fn read_sqlite_table(db: &Database, name: &str) -> Table {
    let columns = "SELECT name, type, \"notnull\" AS not_null, pk \
         FROM pragma_table_info(?) ORDER BY pk, cid";
    let indexes = "SELECT name, \"unique\" AS is_unique FROM pragma_index_list(?) \
         WHERE origin <> 'pk'";
    let mut table = Table::default();
    for row in fetch(db, columns, Some(name)).await {
        let in_key = number(&row, "pk") > 0;
        let column = Column {
            class: TypeClass::of_sqlite(&text(&row, "type")),
            nullable: number(&row, "not_null") == 0 && !in_key,
        };
        if in_key {
            table.primary_key.push(text(&row, "name"));
        }
        table.columns.insert(text(&row, "name"), column);
    }
    for row in fetch(db, indexes, Some(name)).await {
        let index_name = text(&row, "name");
        let columns = "SELECT name FROM pragma_index_info(?) ORDER BY seqno";
        let index = Index {
            columns: fetch(db, columns, Some(&index_name))
                .await
                .iter()
                .map(|row| text(row, "name"))
                .collect(),
            unique: number(&row, "is_unique") == 1,
        };
        table.indexes.insert(index_name, index);
    }
    table
}

/// Applies a service's migrations (through `migrate`, which connects to a database URL and
/// migrates it the way the service does) to a fresh SQLite database and to a fresh MariaDB
/// database, and asserts that both give the same schema.
///
/// MariaDB is there only when `PLATFORM_TEST_BACKEND=real`: on the embedded backend the
/// comparison cannot be made, so only the SQLite side is read (and must not be empty); the
/// real pass of `scripts/test.sh` makes the comparison.
pub async fn assert_migrations_agree(migrate: impl AsyncFn(String) -> anyhow::Result<Database>) {
    let migrated = async |backend: &Backend| {
        let test_db = TestDatabase::create(backend).await;
        let db = migrate(test_db.url.clone()).await.expect("migrations");
        let schema = read(&db).await;
        db.close().await;
        schema
    };
    let sqlite = migrated(&Backend::Embedded).await;
    assert!(!sqlite.is_empty(), "the SQLite migrations create no table");
    let backend = Backend::from_env();
    let Backend::Real { .. } = backend else {
        // No MariaDB on the embedded backend: the comparison is the real pass's.
        return;
    };
    let mysql = migrated(&backend).await;
    assert_eq!(
        mysql, sqlite,
        "the MySQL (left) and SQLite (right) migrations disagree"
    );
}
