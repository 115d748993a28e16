//! The MySQL and SQLite migrations create the same tables, columns and indexes.

use service_kit::kafka::KafkaArgs;
use service_kit::testing::schema::assert_migrations_agree;

#[tokio::test]
async fn the_mysql_and_sqlite_migrations_create_the_same_schema() {
    assert_migrations_agree(async |url| {
        let config = user_service::Config::new(url, KafkaArgs::new("unused:9092", "unused"));
        user_service::app::connect_and_migrate(&config).await
    })
    .await;
}
