//! The store adapter against real databases: every test runs on SQLite and
//! on PostgreSQL, each on a database of its own.

mod contracts;
mod deposit;
mod health;
mod kyc;
mod payout;
mod quotes;
mod schema;

use std::time::Duration;

use mooring_store::{DatabaseUrl, Store, StoreConfig};
use mooring_testsupport::TestDb;

pub async fn migrated_store(db: &TestDb) -> Store {
    let store = Store::connect(StoreConfig {
        url: DatabaseUrl::parse(db.url()).expect("test URL"),
        pool_size: 4,
        connect_timeout: Duration::from_secs(5),
    })
    .await
    .expect("connect");
    store.migrate().await.expect("migrate");
    store
}
