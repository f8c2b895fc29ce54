//! The store's readiness checks, on both backends.

use mooring_ports::ReadinessCheck;
use mooring_store::{MigrationsCurrent, StoreReachable};
use mooring_testsupport::{TestDb, on_both_backends};

async fn migrations_are_current_only_once_applied(db: TestDb) {
    // A database nothing has migrated (test databases are migrated copies).
    let db = TestDb::new_empty(db.engine());
    let store = crate::opened(&db, 2).await;
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

#[derive(diesel::QueryableByName)]
struct Backend {
    #[diesel(sql_type = diesel::sql_types::Integer)]
    pid: i32,
}

/// A pooled connection goes back out without a `SELECT 1` when it was
/// used a moment ago; one the server closed under it fails the call that
/// finds out and is then dropped, never handed out again.
#[tokio::test]
async fn a_connection_the_server_closed_is_dropped_after_the_call_that_finds_out() {
    use diesel::{Connection, RunQueryDsl};
    let db = TestDb::postgres();
    let store = crate::opened(&db, 1).await;
    let pid = || {
        store.with_connection(|c| {
            diesel::sql_query("SELECT pg_backend_pid() AS pid").load::<Backend>(c)
        })
    };
    let first = pid().await.expect("pid")[0].pid;
    let mut admin = diesel::PgConnection::establish(mooring_testsupport::postgres_admin_url())
        .expect("admin connection");
    diesel::sql_query(format!("SELECT pg_terminate_backend({first})"))
        .execute(&mut admin)
        .expect("terminate");
    // Used a moment ago, so handed out unchecked: this call may fail.
    let found_out = pid().await;
    let next = match found_out {
        Ok(rows) => rows[0].pid,
        Err(_) => pid().await.expect("a new connection after the failed call")[0].pid,
    };
    assert_ne!(next, first, "the closed connection was handed out again");
    // And it stays healthy.
    assert_eq!(pid().await.expect("pid")[0].pid, next);
}
