//! The Platform API client against a local HTTP double, in both styles.

use std::str::FromStr;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use mooring_domain::transaction::{
    Amount, TransactionChange, TransactionId, TransactionStatus, TransactionUpdate,
};
use mooring_domain::{AssetId, StellarAccount};
use mooring_platform::{ApiStyle, HttpPlatform, PlatformAuth, PlatformConfig};
use mooring_ports::{Order, OrderBy, PlatformClient, PlatformError, TransactionQuery};
use rust_decimal::Decimal;
use secrecy::SecretString;
use serde_json::{Value, json};
use wiremock::matchers::{body_json, method, path, query_param};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const SECRET: &str = "a-platform-secret-of-at-least-32-bytes!";

fn client(server: &MockServer, api: ApiStyle, auth: PlatformAuth) -> HttpPlatform {
    HttpPlatform::new(PlatformConfig {
        base_url: server.uri(),
        api,
        auth,
        timeout: Duration::from_secs(2),
        max_attempts: 3,
        backoff_base: Duration::from_millis(5),
        backoff_max: Duration::from_millis(20),
    })
    .expect("client")
}

fn ap_transaction(id: &str, status: &str) -> Value {
    json!({
        "id": id, "sep": 31, "kind": "receive", "status": status,
        "amount_expected": {"amount": "100", "asset": "stellar:USDC:GBBD47IF6LWK7P7MDEVSCWR7DPUWV3NY3DTQEVFL4NAT4AQH3ZLLFLA5"},
        "amount_in": {"amount": "100", "asset": "stellar:USDC:GBBD47IF6LWK7P7MDEVSCWR7DPUWV3NY3DTQEVFL4NAT4AQH3ZLLFLA5"},
        "amount_out": {"amount": "543.94", "asset": "iso4217:BRL"},
        "amount_fee": {"amount": "1.60", "asset": "stellar:USDC:GBBD47IF6LWK7P7MDEVSCWR7DPUWV3NY3DTQEVFL4NAT4AQH3ZLLFLA5"},
        "quote_id": "de762cda-a193-4961-861e-57b31fed6eb3",
        "transfer_received_at": "2024-01-01T00:05:00Z",
        "stellar_transactions": [{"id": "7b2f9a", "memo": "1", "payments": []}],
        "customers": {"sender": {"id": "s-1"}, "receiver": {"id": "r-1"}},
        "some_future_field": {"ignored": true}
    })
}

fn query() -> TransactionQuery {
    TransactionQuery {
        order_by: OrderBy::TransferReceivedAt,
        order: Order::Desc,
        statuses: vec![
            TransactionStatus::PendingReceiver,
            TransactionStatus::PendingExternal,
        ],
        page_number: 2,
        page_size: 50,
    }
}

fn bearer_claims(request: &Request) -> Value {
    let auth = request
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .expect("authorization header");
    let token = auth.strip_prefix("Bearer ").expect("bearer");
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    validation.set_required_spec_claims(&["exp", "iat"]);
    jsonwebtoken::decode::<Value>(
        token,
        &jsonwebtoken::DecodingKey::from_secret(SECRET.as_bytes()),
        &validation,
    )
    .expect("a valid HS256 token over the secret")
    .claims
}

fn brl() -> AssetId {
    AssetId::parse("iso4217:BRL").expect("asset")
}

#[tokio::test]
async fn rest_lists_pages_with_the_aps_parameters_and_a_reused_token() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/transactions"))
        .and(query_param("sep", "31"))
        .and(query_param("order_by", "transfer_received_at"))
        .and(query_param("order", "desc"))
        .and(query_param("statuses", "pending_receiver,pending_external"))
        .and(query_param("page_number", "2"))
        .and(query_param("page_size", "50"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"records": [ap_transaction("t-1", "pending_receiver")]})),
        )
        .mount(&server)
        .await;
    let platform = client(
        &server,
        ApiStyle::Rest,
        PlatformAuth::Jwt(SecretString::from(SECRET)),
    );
    let page = platform.transactions(&query()).await.expect("page");
    assert_eq!(page.len(), 1);
    let t = &page[0];
    assert_eq!(
        (t.id.as_str(), t.sep.as_str(), &t.status),
        ("t-1", "31", &TransactionStatus::PendingReceiver)
    );
    assert_eq!(
        t.amount_out,
        Some(Amount::new(Decimal::from_str("543.94").expect("d"), brl()))
    );
    assert_eq!(
        t.fee.as_ref().map(|f| f.amount.to_string()).as_deref(),
        Some("1.60")
    );
    assert_eq!(
        (t.sender_id.as_deref(), t.receiver_id.as_deref()),
        (Some("s-1"), Some("r-1"))
    );
    assert_eq!(t.stellar_transaction_ids, ["7b2f9a"]);
    assert_eq!(
        t.transfer_received_at,
        Utc.with_ymd_and_hms(2024, 1, 1, 0, 5, 0).single()
    );
    platform.transactions(&query()).await.expect("second page");
    let requests = server.received_requests().await.expect("recorded");
    let claims: Vec<Value> = requests.iter().map(bearer_claims).collect();
    assert_eq!(
        claims[0], claims[1],
        "the token is reused, not signed per request"
    );
    let (iat, exp) = (
        claims[0]["iat"].as_i64().expect("iat"),
        claims[0]["exp"].as_i64().expect("exp"),
    );
    assert!(exp > iat && exp - iat <= 300);
}

#[tokio::test]
async fn rest_get_and_patch() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/transactions/t-1"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(ap_transaction("t-1", "pending_external")),
        )
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/transactions/t-404"))
        .respond_with(
            ResponseTemplate::new(404)
                .set_body_json(json!({"error": "transaction (id=t-404) is not found"})),
        )
        .mount(&server)
        .await;
    let sent_at = Utc
        .with_ymd_and_hms(2024, 1, 1, 0, 20, 0)
        .single()
        .expect("valid");
    Mock::given(method("PATCH"))
        .and(path("/transactions"))
        .and(body_json(json!({"records": [{"transaction": {
            "id": "t-1", "status": "completed", "message": "a deposit to the recipient's bank has been initiated",
            "external_transaction_id": "BANK-123", "completed_at": "2024-01-01T00:20:00Z",
            "amount_out": {"amount": "543.94", "asset": "iso4217:BRL"}
        }}]})))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"records": [ap_transaction("t-1", "completed")]})))
        .mount(&server)
        .await;
    let platform = client(
        &server,
        ApiStyle::Rest,
        PlatformAuth::ApiKey(SecretString::from("k-1")),
    );
    let id = TransactionId::parse("t-1").expect("id");
    assert_eq!(
        platform.transaction(&id).await.expect("found").status,
        TransactionStatus::PendingExternal
    );
    // An id with a slash and a query is one segment, percent-encoded.
    Mock::given(method("GET"))
        .and(path("/transactions/a%2Fb%3Fc"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(ap_transaction("a/b?c", "pending_external")),
        )
        .mount(&server)
        .await;
    let odd = TransactionId::parse("a/b?c").expect("id");
    assert_eq!(
        platform.transaction(&odd).await.expect("found").id.as_str(),
        "a/b?c"
    );
    let missing = platform
        .transaction(&TransactionId::parse("t-404").expect("id"))
        .await;
    assert!(
        matches!(missing, Err(PlatformError::NotFound)),
        "{missing:?}"
    );
    let update = TransactionUpdate {
        id: id.clone(),
        message: Some("a deposit to the recipient's bank has been initiated".into()),
        change: TransactionChange::OffchainFundsSent {
            external_transaction_id: Some("BANK-123".into()),
            funds_sent_at: sent_at,
            amount_out: Some(Amount::new(Decimal::from_str("543.94").expect("d"), brl())),
        },
    };
    assert_eq!(
        platform.update(&update).await.expect("patched").status,
        TransactionStatus::Completed
    );
    let requests = server.received_requests().await.expect("recorded");
    assert!(
        requests
            .iter()
            .all(|r| r.headers.get("x-api-key").and_then(|v| v.to_str().ok()) == Some("k-1"))
    );
    let onchain = TransactionUpdate {
        id,
        message: None,
        change: TransactionChange::RequestOnchainFunds {
            amount_in: Amount::new(Decimal::ONE, brl()),
            amount_out: Amount::new(Decimal::ONE, brl()),
            fee: Amount::new(Decimal::ZERO, brl()),
            amount_expected: Amount::new(Decimal::ONE, brl()),
            destination_account: StellarAccount::parse(
                "GBBD47IF6LWK7P7MDEVSCWR7DPUWV3NY3DTQEVFL4NAT4AQH3ZLLFLA5",
            )
            .expect("account"),
            memo: None,
        },
    };
    assert!(
        matches!(platform.update(&onchain).await, Err(PlatformError::Rejected(m)) if m.contains("rpc"))
    );
}

#[tokio::test]
async fn retries_5xx_but_never_4xx() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/transactions/t-1"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(2)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/transactions/t-1"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(ap_transaction("t-1", "pending_receiver")),
        )
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/transactions/t-bad"))
        .respond_with(
            ResponseTemplate::new(400)
                .set_body_json(json!({"error": "transaction id cannot be empty"})),
        )
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/transactions/t-down"))
        .respond_with(ResponseTemplate::new(500))
        .mount(&server)
        .await;
    let platform = client(&server, ApiStyle::Rest, PlatformAuth::None);
    let id = |s: &str| TransactionId::parse(s).expect("id");
    assert!(
        platform.transaction(&id("t-1")).await.is_ok(),
        "two 503s then a 200"
    );
    let bad = platform.transaction(&id("t-bad")).await;
    assert!(matches!(bad, Err(PlatformError::Rejected(_))), "{bad:?}");
    let down = platform.transaction(&id("t-down")).await;
    assert!(
        matches!(down, Err(PlatformError::Unavailable(_))),
        "{down:?}"
    );
    let requests = server.received_requests().await.expect("recorded");
    let count = |p: &str| requests.iter().filter(|r| r.url.path() == p).count();
    assert_eq!(
        (
            count("/transactions/t-1"),
            count("/transactions/t-bad"),
            count("/transactions/t-down")
        ),
        (3, 1, 3)
    );
}

#[tokio::test]
async fn json_rpc_methods_params_and_errors() {
    let server = MockServer::start().await;
    let respond = |result: Value| {
        move |request: &Request| {
            let calls: Value = serde_json::from_slice(&request.body).expect("json");
            let id = calls[0]["id"].clone();
            ResponseTemplate::new(200)
                .set_body_json(json!([{"jsonrpc": "2.0", "id": id, "result": result.clone()}]))
        }
    };
    Mock::given(method("POST"))
        .and(path("/"))
        .and(wiremock::matchers::body_partial_json(json!([{"jsonrpc": "2.0", "method": "get_transactions", "params": {
            "sep": "31", "order_by": "TRANSFER_RECEIVED_AT", "order": "DESC", "page_number": 2, "page_size": 50,
            "statuses": ["pending_receiver", "pending_external"]}}])))
        .respond_with(respond(json!({"records": [ap_transaction("t-1", "pending_receiver")]})))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/"))
        .and(wiremock::matchers::body_partial_json(json!([{"method": "notify_offchain_funds_sent", "params": {
            "transaction_id": "t-1", "message": "paid", "funds_sent_at": "2024-01-01T00:20:00Z", "external_transaction_id": "BANK-1"}}])))
        .respond_with(respond(ap_transaction("t-1", "completed")))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/"))
        .and(wiremock::matchers::body_partial_json(json!([{"method": "notify_transaction_error"}])))
        .respond_with(|request: &Request| {
            let calls: Value = serde_json::from_slice(&request.body).expect("json");
            ResponseTemplate::new(200).set_body_json(json!([{"jsonrpc": "2.0", "id": calls[0]["id"], "error": {"code": -32600,
                "message": "RPC method[notify_transaction_error] is not supported. Status[completed]"}}]))
        })
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/"))
        .and(wiremock::matchers::body_partial_json(
            json!([{"method": "get_transaction"}]),
        ))
        .respond_with(|request: &Request| {
            let calls: Value = serde_json::from_slice(&request.body).expect("json");
            ResponseTemplate::new(200).set_body_json(
                json!([{"jsonrpc": "2.0", "id": calls[0]["id"], "error": {"code": -32600,
                "message": "Transaction with id[t-9] is not found"}}]),
            )
        })
        .mount(&server)
        .await;
    let platform = client(&server, ApiStyle::Rpc, PlatformAuth::None);
    assert_eq!(
        platform.transactions(&query()).await.expect("page").len(),
        1
    );
    let id = TransactionId::parse("t-1").expect("id");
    let sent = TransactionUpdate {
        id: id.clone(),
        message: Some("paid".into()),
        change: TransactionChange::OffchainFundsSent {
            external_transaction_id: Some("BANK-1".into()),
            funds_sent_at: Utc
                .with_ymd_and_hms(2024, 1, 1, 0, 20, 0)
                .single()
                .expect("valid"),
            amount_out: None,
        },
    };
    assert_eq!(
        platform.update(&sent).await.expect("sent").status,
        TransactionStatus::Completed
    );
    let error = TransactionUpdate {
        id,
        message: Some("refused".into()),
        change: TransactionChange::Error,
    };
    assert!(
        matches!(platform.update(&error).await, Err(PlatformError::Rejected(m)) if m.contains("-32600"))
    );
    let missing = platform
        .transaction(&TransactionId::parse("t-9").expect("id"))
        .await;
    assert!(
        matches!(missing, Err(PlatformError::NotFound)),
        "{missing:?}"
    );
}
