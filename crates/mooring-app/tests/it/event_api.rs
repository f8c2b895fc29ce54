//! POST /event through the real server: authenticated like the other
//! callbacks, 1 MiB limit, 400 for what is not an event (and later events
//! still go through), duplicates acknowledged once, unknown types kept.

use jsonwebtoken::Algorithm;
use mooring_domain::payout::PayoutState;
use mooring_domain::transaction::TransactionId;
use mooring_ports::{EventStore, PayoutLedger};
use mooring_store::{DatabaseUrl, Store, StoreConfig};
use mooring_testsupport::{TestDb, on_both_backends};
use serde_json::{Value, json};

use crate::helpers::{JWT_SECRET, TestApp, assert_error, jwt, spawn_app_with, status_and_json};

async fn post(app: &TestApp, body: Vec<u8>, token: Option<&str>) -> (u16, Value) {
    let mut request = app
        .client
        .post(app.url("/event"))
        .header("Content-Type", "application/json")
        .body(body);
    if let Some(t) = token {
        request = request.header("Authorization", format!("Bearer {t}"));
    }
    status_and_json(request.send().await.expect("sent")).await
}

fn event(id: &str, status: &str, funded: bool) -> Vec<u8> {
    let mut tx = json!({"id": "tx-ev-1", "sep": "31", "kind": "receive", "status": status});
    if funded {
        tx["transfer_received_at"] = json!("2026-11-24T10:00:00Z");
    }
    serde_json::to_vec(&json!({
        "id": id, "timestamp": "2026-11-24T10:00:00Z", "type": "transaction_status_changed",
        "payload": {"transaction": tx}
    }))
    .expect("json")
}

async fn events_are_kept_once_and_bad_ones_refused(db: TestDb) {
    let url = db.url().to_owned();
    let app = spawn_app_with(
        db,
        &[
            ("CALLBACK_API_AUTH_TYPE", "jwt"),
            ("SECRET_CALLBACK_API_AUTH_SECRET", JWT_SECRET),
        ],
    )
    .await;
    let token = jwt(JWT_SECRET, 0, 30, Algorithm::HS256);
    let good = event("ev-1", "pending_receiver", true);
    assert_error(&post(&app, good.clone(), None).await, 401);
    assert_eq!(post(&app, good.clone(), Some(&token)).await.0, 200);
    assert_eq!(
        post(&app, good, Some(&token)).await.0,
        200,
        "a duplicate is acknowledged"
    );
    for (body, why) in [
        (b"[]".to_vec(), "JSON object"),
        (b"{\"type\":\"x\"}".to_vec(), "no id"),
        (b"{\"id\":\"e\"}".to_vec(), "no type"),
        (b"not json".to_vec(), "not valid JSON"),
    ] {
        let message = assert_error(&post(&app, body, Some(&token)).await, 400);
        assert!(message.contains(why), "{message}");
    }
    let big = vec![b' '; 1024 * 1024 + 1];
    assert_error(&post(&app, big, Some(&token)).await, 413);
    // Later events still go through, unknown types too.
    assert_eq!(
        post(&app, event("ev-2", "completed", true), Some(&token))
            .await
            .0,
        200
    );
    let unknown = serde_json::to_vec(&json!({"id": "ev-3", "type": "brand_new"})).expect("json");
    assert_eq!(post(&app, unknown, Some(&token)).await.0, 200);

    // Durable before the 200: the inbox holds three events, unapplied (the
    // engine is off in this server); applying them makes one entry.
    let store = Store::connect(StoreConfig {
        url: DatabaseUrl::parse(&url).expect("url"),
        pool_size: 2,
        connect_timeout: std::time::Duration::from_secs(5),
    })
    .await
    .expect("store");
    let keyring =
        mooring_keys::Keyring::parse(mooring_testsupport::TEST_PII_KEY, &[]).expect("key");
    let (store, _) = store
        .unlock(std::sync::Arc::new(keyring))
        .await
        .expect("unlock");
    assert_eq!(store.inbox_depth().await.expect("depth"), 3);
    assert_eq!(
        store
            .apply_events(10, chrono::Utc::now())
            .await
            .expect("apply"),
        3
    );
    let p = store
        .get(&TransactionId::parse("tx-ev-1").expect("id"))
        .await
        .expect("get")
        .expect("entry");
    assert_eq!(p.state(), PayoutState::Received);
}

on_both_backends!(events_are_kept_once_and_bad_ones_refused);
