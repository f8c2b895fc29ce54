//! GET /unique_address through the real server, on both backends.

use mooring_testsupport::{TestDb, on_both_backends};
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_error, spawn_app, spawn_app_with, status_and_json};

const DISTRIBUTION: &str = "GBBD47IF6LWK7P7MDEVSCWR7DPUWV3NY3DTQEVFL4NAT4AQH3ZLLFLA5";

impl TestApp {
    async fn unique_address(&self, transaction_id: Option<&str>) -> (u16, Value) {
        let mut request = self.client.get(self.url("/unique_address"));
        if let Some(t) = transaction_id {
            request = request.query(&[("transaction_id", t)]);
        }
        status_and_json(request.send().await.expect("sent")).await
    }
}

async fn the_anchors_own_custodian(db: TestDb) {
    let app = spawn_app_with(
        db,
        &[("MOORING__CUSTODIAN__DISTRIBUTION_ACCOUNT", DISTRIBUTION)],
    )
    .await;
    let (status, first) = app.unique_address(Some("82fhs729f63dh0v4")).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(
        first,
        json!({"unique_address": {"stellar_address": DISTRIBUTION, "memo": "1", "memo_type": "id"}})
    );
    assert_eq!(
        app.unique_address(Some("82fhs729f63dh0v4")).await,
        (200, first.clone()),
        "the same transaction, the same pair"
    );
    let (_, second) = app.unique_address(Some("another")).await;
    assert_eq!(second["unique_address"]["memo"], "2");
    assert_error(&app.unique_address(None).await, 400);
    assert_error(&app.unique_address(Some(&"x".repeat(300))).await, 400);
}

async fn hash_memos(db: TestDb) {
    let app = spawn_app_with(
        db,
        &[
            ("MOORING__CUSTODIAN__DISTRIBUTION_ACCOUNT", DISTRIBUTION),
            ("MOORING__CUSTODIAN__MEMO_TYPE", "hash"),
        ],
    )
    .await;
    let (status, body) = app.unique_address(Some("t-1")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["unique_address"]["memo_type"], "hash");
    assert_eq!(
        body["unique_address"]["memo"].as_str().map(str::len),
        Some(44),
        "base64 of 32 bytes"
    );
}

async fn without_a_custodian_it_says_what_to_configure(db: TestDb) {
    let app = spawn_app(db).await;
    let message = assert_error(&app.unique_address(Some("t-1")).await, 503);
    assert!(message.contains("distribution_account"), "{message}");
}

async fn a_custodian_service_and_the_first_answer_kept(db: TestDb) {
    let custodian = wiremock::MockServer::start().await;
    let answer = |memo: &str| {
        wiremock::ResponseTemplate::new(200).set_body_json(
            json!({"stellar_address": DISTRIBUTION, "memo": memo, "memo_type": "text"}),
        )
    };
    wiremock::Mock::given(wiremock::matchers::method("POST"))
        .respond_with(answer("first"))
        .mount(&custodian)
        .await;
    let url = format!("{}/deposit-addresses", custodian.uri());
    let app = spawn_app_with(
        db,
        &[
            ("MOORING__CUSTODIAN__TYPE", "http"),
            ("MOORING__CUSTODIAN__HTTP__URL", &url),
        ],
    )
    .await;
    let (status, body) = app.unique_address(Some("t-1")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["unique_address"]["memo"], "first");
    custodian.reset().await;
    wiremock::Mock::given(wiremock::matchers::method("POST"))
        .respond_with(answer("second"))
        .mount(&custodian)
        .await;
    assert_eq!(
        app.unique_address(Some("t-1")).await.1["unique_address"]["memo"],
        "first"
    );
    custodian.reset().await;
    wiremock::Mock::given(wiremock::matchers::method("POST"))
        .respond_with(wiremock::ResponseTemplate::new(502))
        .mount(&custodian)
        .await;
    assert_error(&app.unique_address(Some("t-2")).await, 503);
}

async fn unique_address_needs_callback_auth(db: TestDb) {
    let app = spawn_app_with(
        db,
        &[
            ("MOORING__CUSTODIAN__DISTRIBUTION_ACCOUNT", DISTRIBUTION),
            ("CALLBACK_API_AUTH_TYPE", "api_key"),
            ("SECRET_CALLBACK_API_AUTH_SECRET", "k-1"),
        ],
    )
    .await;
    assert_error(&app.unique_address(Some("t-1")).await, 401);
    let ok = app
        .client
        .get(app.url("/unique_address"))
        .query(&[("transaction_id", "t-1")])
        .header("X-Api-Key", "k-1")
        .send()
        .await
        .expect("sent");
    assert_eq!(ok.status().as_u16(), 200);
}

on_both_backends!(
    the_anchors_own_custodian,
    hash_memos,
    without_a_custodian_it_says_what_to_configure,
    a_custodian_service_and_the_first_answer_kept,
    unique_address_needs_callback_auth,
);
