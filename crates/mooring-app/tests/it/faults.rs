//! A real fault is a 500 with a generic body, its cause logged once.

use diesel::connection::SimpleConnection;
use diesel::{Connection, PgConnection, SqliteConnection};
use mooring_testsupport::{Engine, TestDb, on_both_backends};

use crate::helpers::{assert_error, logs_of_request, sender, spawn_app, unique_request_id};

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
    let request_id = unique_request_id();
    let response = app
        .client
        .get(app.url("/customer"))
        .query(&[("id", &id)])
        .header("x-request-id", &request_id)
        .send()
        .await
        .expect("sent");
    let answer = crate::helpers::status_and_json(response).await;
    let message = assert_error(&answer, 500);
    assert_eq!(message, "internal server error");
    let put = app.put_customer(&sender("2")).await;
    assert_eq!(assert_error(&put, 500), "internal server error");
    // Logged once, inside this request's span (the log buffer is shared by
    // every test of the binary).
    let causes: Vec<_> = logs_of_request(&request_id)
        .into_iter()
        .filter(|l| l["fields"]["message"] == "request failed")
        .collect();
    assert_eq!(causes.len(), 1, "{causes:?}");
    assert!(
        causes[0]["fields"]["error"]
            .as_str()
            .is_some_and(|e| e.contains("customer_fields")),
        "the cause of the 500 is logged: {causes:?}"
    );
}

on_both_backends!(a_store_failure_is_a_generic_500);
