//! The store adapter against real databases: every test runs on SQLite and
//! on PostgreSQL, each on a database of its own.

mod contracts;
mod deposit;
mod dispatch;
mod health;
mod history;
mod kyc;
mod payout;
mod pii;
mod quotes;
mod retention;
mod saves;
mod schema;
mod staff;

use std::time::Duration;

use mooring_store::{DatabaseUrl, Store, StoreConfig};
use mooring_testsupport::TestDb;

pub async fn migrated_store(db: &TestDb) -> Store {
    store_with_pool(db, 4).await
}

/// A store opened on `db` with `pool_size` connections: not migrated, not
/// unlocked.
pub async fn opened(db: &TestDb, pool_size: u32) -> Store {
    Store::connect(StoreConfig {
        url: DatabaseUrl::parse(db.url()).expect("test URL"),
        pool_size,
        connect_timeout: Duration::from_secs(5),
    })
    .await
    .expect("connect")
}

async fn store_with_pool(db: &TestDb, pool_size: u32) -> Store {
    let store = opened(db, pool_size).await;
    store.migrate().await.expect("migrate");
    unlocked(store).await
}

/// The store unlocked with the test key.
pub async fn unlocked(store: Store) -> Store {
    let keyring =
        mooring_keys::Keyring::parse(mooring_testsupport::TEST_PII_KEY, &[]).expect("test key");
    store
        .unlock(std::sync::Arc::new(keyring))
        .await
        .expect("unlock")
        .0
}

/// A migrated store on one PostgreSQL connection, for counting what that
/// connection prepared ([`prepared_like`]).
pub async fn postgres_on_one_connection(db: &TestDb) -> Store {
    store_with_pool(db, 1).await
}

/// How many statements the store's connection has prepared whose text is
/// `LIKE pattern` (PostgreSQL's `pg_prepared_statements`).
pub async fn prepared_like(store: &Store, pattern: &'static str) -> i64 {
    use diesel::prelude::*;
    use diesel::sql_types::{BigInt, Text};

    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    store
        .with_connection(move |c| {
            diesel::sql_query(
                "SELECT count(*) AS n FROM pg_prepared_statements WHERE statement LIKE $1",
            )
            .bind::<Text, _>(pattern)
            .get_result::<Count>(c)
        })
        .await
        .expect("count")
        .n
}
