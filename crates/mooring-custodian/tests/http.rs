//! The HTTP custodian against a local HTTP double.

use std::time::Duration;

use mooring_custodian::HttpCustodian;
use mooring_domain::MemoType;
use mooring_ports::{Custodian, CustodianError};
use serde_json::json;
use wiremock::matchers::{body_json, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

async fn custodian(server: &MockServer) -> HttpCustodian {
    HttpCustodian::new(
        format!("{}/addresses", server.uri()),
        Duration::from_millis(500),
    )
    .expect("client")
}

#[tokio::test]
async fn asks_for_the_transactions_address() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/addresses"))
        .and(body_json(json!({"transaction_id": "txn-1"})))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "stellar_address": "GBBD47IF6LWK7P7MDEVSCWR7DPUWV3NY3DTQEVFL4NAT4AQH3ZLLFLA5", "memo": "123456", "memo_type": "id"
        })))
        .mount(&server)
        .await;
    let address = custodian(&server)
        .await
        .deposit_address("txn-1")
        .await
        .expect("address");
    let memo = address.memo.expect("memo");
    assert_eq!((memo.memo_type(), memo.value()), (MemoType::Id, "123456"));
}

#[tokio::test]
async fn failures_and_bad_answers_are_unavailable() {
    let server = MockServer::start().await;
    let c = custodian(&server).await;
    for answer in [
        ResponseTemplate::new(500),
        ResponseTemplate::new(200).set_body_json(json!({"address": "nope"})),
        ResponseTemplate::new(200).set_body_json(json!({"stellar_address": "GABC"})),
        ResponseTemplate::new(200).set_body_json(json!({
            "stellar_address": "GBBD47IF6LWK7P7MDEVSCWR7DPUWV3NY3DTQEVFL4NAT4AQH3ZLLFLA5", "memo": "x", "memo_type": "id"
        })),
        ResponseTemplate::new(200).set_delay(Duration::from_secs(2)),
    ] {
        server.reset().await;
        Mock::given(method("POST")).respond_with(answer).mount(&server).await;
        let result = c.deposit_address("txn-1").await;
        assert!(matches!(result, Err(CustodianError::Unavailable(_))), "{result:?}");
    }
}
