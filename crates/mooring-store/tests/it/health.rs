//! The store's readiness checks, on both backends.

use std::time::Duration;

use mooring_ports::ReadinessCheck;
use mooring_store::{DatabaseUrl, MigrationsCurrent, Store, StoreConfig, StoreReachable};
use mooring_testsupport::{TestDb, on_both_backends};

async fn migrations_are_current_only_once_applied(db: TestDb) {
    // A database nothing has migrated (test databases are migrated copies).
    let db = TestDb::new_empty(db.engine());
    let store = Store::connect(StoreConfig {
        url: DatabaseUrl::parse(db.url()).expect("test URL"),
        pool_size: 2,
        connect_timeout: Duration::from_secs(5),
    })
    .await
    .expect("connect");
    let reachable = StoreReachable(store.clone());
    let current = MigrationsCurrent(store.clone());
    assert_eq!(reachable.name(), "store");
    assert_eq!(current.name(), "migrations");

    assert_eq!(reachable.check().await, Ok(()));
    let before = current.check().await.expect_err("nothing applied yet");
    assert!(before.contains("not applied"), "{before}");

    store.migrate().await.expect("migrate");
    assert_eq!(current.check().await, Ok(()));
}
on_both_backends!(migrations_are_current_only_once_applied);
