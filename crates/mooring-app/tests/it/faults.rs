//! A real fault is a 500 with a generic body, its cause logged once.

use diesel::connection::SimpleConnection;
use diesel::{Connection, PgConnection, SqliteConnection};
use mooring_testsupport::{Engine, TestDb, on_both_backends};

use crate::helpers::{assert_error, captured_logs, sender, spawn_app};

/// Breaks the database under the running server: the field table is gone.
fn break_the_store(db: &TestDb) {
    let sql = "DROP TABLE customer_fields";
    match db.engine() {
        Engine::Postgres => PgConnection::establish(db.url()).map(|mut c| c.batch_execute(sql)),
        Engine::Sqlite => SqliteConnection::establish(db.url().trim_start_matches("sqlite://"))
            .map(|mut c| c.batch_execute(sql)),
    }
    .expect("connect")
    .expect("drop the table");
}

async fn a_store_failure_is_a_generic_500(db: TestDb) {
    let app = spawn_app(db).await;
    let id = app.put_customer(&sender("1")).await.1["id"]
        .as_str()
        .expect("id")
        .to_owned();
    tokio::task::block_in_place(|| break_the_store(&app.db));
    let answer = app.get_customer(&[("id", &id)]).await;
    let message = assert_error(&answer, 500);
    assert_eq!(message, "internal server error");
    let put = app.put_customer(&sender("2")).await;
    assert_eq!(assert_error(&put, 500), "internal server error");
    let logs = captured_logs();
    assert!(
        logs.contains("customer_fields"),
        "the cause of the 500 is logged"
    );
}

on_both_backends!(a_store_failure_is_a_generic_500);
