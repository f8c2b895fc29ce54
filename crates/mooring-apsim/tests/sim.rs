//! The simulator keeps the AP's rules, driven by Mooring's own Platform API
//! client in both styles.

use std::str::FromStr;
use std::time::Duration;

use chrono::Utc;
use mooring_apsim::{Faults, SimAuth, Simulator, spawn};
use mooring_domain::transaction::{
    Amount, TransactionChange, TransactionId, TransactionStatus, TransactionUpdate,
};
use mooring_domain::{AssetId, Memo, StellarAccount};
use mooring_platform::{ApiStyle, HttpPlatform, PlatformAuth, PlatformConfig};
use mooring_ports::{Order, OrderBy, PlatformClient, PlatformError, TransactionQuery};
use rust_decimal::Decimal;
use secrecy::SecretString;
use serde_json::json;

const SECRET: &str = "a-platform-secret-of-at-least-32-bytes!";

fn client(url: &str, api: ApiStyle, auth: PlatformAuth) -> HttpPlatform {
    HttpPlatform::new(PlatformConfig {
        base_url: url.to_owned(),
        api,
        auth,
        timeout: Duration::from_secs(2),
        max_attempts: 3,
        backoff_base: Duration::from_millis(2),
        backoff_max: Duration::from_millis(10),
    })
    .expect("client")
}

fn usdc(amount: &str) -> serde_json::Value {
    json!({"amount": amount, "asset": "stellar:USDC:GBBD47IF6LWK7P7MDEVSCWR7DPUWV3NY3DTQEVFL4NAT4AQH3ZLLFLA5"})
}

fn id(s: &str) -> TransactionId {
    TransactionId::parse(s).expect("id")
}

fn page(order_by: OrderBy, statuses: Vec<TransactionStatus>) -> TransactionQuery {
    TransactionQuery {
        order_by,
        order: Order::Desc,
        statuses,
        page_number: 0,
        page_size: 10,
    }
}

fn sent(t: &str) -> TransactionUpdate {
    TransactionUpdate {
        id: id(t),
        message: Some("a deposit to the recipient's bank has been initiated".into()),
        change: TransactionChange::OffchainFundsSent {
            external_transaction_id: Some("BANK-1".into()),
            funds_sent_at: Utc::now(),
            amount_out: None,
        },
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_paging_sorts_unfunded_last_and_patch_has_no_rules() {
    let running = spawn(Simulator::new(false), SimAuth::None).expect("simulator");
    let sim = &running.sim;
    let a = sim.create(json!({"id": "a", "amount_expected": usdc("100")}));
    let b = sim.create(json!({"id": "b", "amount_expected": usdc("50")}));
    let c = sim.create(json!({"id": "c", "amount_expected": usdc("10")}));
    assert!(sim.receive(&a, None));
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert!(sim.receive(&c, None));
    assert!(!sim.receive(&c, None), "a payment arrives once");
    let platform = client(&running.url, ApiStyle::Rest, PlatformAuth::None);
    let listed = platform
        .transactions(&page(OrderBy::TransferReceivedAt, vec![]))
        .await
        .expect("page");
    let ids: Vec<_> = listed.iter().map(|t| t.id.as_str().to_owned()).collect();
    assert_eq!(
        ids,
        [c.clone(), a.clone(), b.clone()],
        "newest payment first, the unfunded one last"
    );
    let received = platform
        .transactions(&page(
            OrderBy::TransferReceivedAt,
            vec![TransactionStatus::PendingReceiver],
        ))
        .await
        .expect("page");
    assert_eq!(received.len(), 2);
    assert_eq!(
        received[0].amount_in.as_ref().map(|a| a.amount),
        Decimal::from_str("10").ok()
    );
    // PATCH moves any status anywhere, like the AP's.
    let done = platform.update(&sent(&b)).await.expect("patched");
    assert_eq!(done.status, TransactionStatus::Completed);
    assert_eq!(sim.history(&b), ["pending_sender", "completed"]);
    assert_eq!(sim.updates(&b), ["PATCH completed"]);
    assert!(matches!(
        platform.transaction(&id("zzz")).await,
        Err(PlatformError::NotFound)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_rpc_follows_the_aps_transitions() {
    let running = spawn(Simulator::new(false), SimAuth::None).expect("simulator");
    let sim = &running.sim;
    let t = sim.create(json!({"amount_expected": usdc("100")}));
    let platform = client(&running.url, ApiStyle::Rpc, PlatformAuth::None);
    let early = platform.update(&sent(&t)).await;
    assert!(
        matches!(early, Err(PlatformError::Rejected(ref m)) if m.contains("pending_sender")),
        "{early:?}"
    );
    assert!(sim.receive(&t, None));
    let pending = TransactionUpdate {
        id: id(&t),
        message: None,
        change: TransactionChange::OffchainFundsPending {
            external_transaction_id: Some("BANK-1".into()),
        },
    };
    assert_eq!(
        platform.update(&pending).await.expect("pending").status,
        TransactionStatus::PendingExternal
    );
    let done = platform.update(&sent(&t)).await.expect("sent");
    assert_eq!(done.status, TransactionStatus::Completed);
    assert!(done.completed_at.is_some());
    let late_error = TransactionUpdate {
        id: id(&t),
        message: Some("too late".into()),
        change: TransactionChange::Error,
    };
    assert!(matches!(
        platform.update(&late_error).await,
        Err(PlatformError::Rejected(_))
    ));
    assert_eq!(
        sim.updates(&t),
        [
            "notify_offchain_funds_pending",
            "notify_offchain_funds_sent"
        ]
    );
    assert_eq!(
        sim.history(&t),
        [
            "pending_sender",
            "pending_receiver",
            "pending_external",
            "completed"
        ]
    );
    let fetched = platform
        .transaction(&id(&t))
        .await
        .expect("get_transaction");
    assert_eq!(fetched.external_transaction_id.as_deref(), Some("BANK-1"));
    let listed = platform
        .transactions(&page(
            OrderBy::CreatedAt,
            vec![TransactionStatus::Completed],
        ))
        .await
        .expect("get_transactions");
    assert_eq!(listed.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ap_3x_transactions_start_unfunded_and_ask_for_funds() {
    let running = spawn(Simulator::new(true), SimAuth::None).expect("simulator");
    let sim = &running.sim;
    let t = sim.create(json!({"amount_expected": usdc("100")}));
    let platform = client(&running.url, ApiStyle::Rpc, PlatformAuth::None);
    let amount = |a: &str, asset: &str| {
        Amount::new(
            Decimal::from_str(a).expect("d"),
            AssetId::parse(asset).expect("asset"),
        )
    };
    let request = TransactionUpdate {
        id: id(&t),
        message: Some("send the payment".into()),
        change: TransactionChange::RequestOnchainFunds {
            amount_in: amount(
                "100",
                "stellar:USDC:GBBD47IF6LWK7P7MDEVSCWR7DPUWV3NY3DTQEVFL4NAT4AQH3ZLLFLA5",
            ),
            amount_out: amount("543.94", "iso4217:BRL"),
            fee: amount(
                "1.60",
                "stellar:USDC:GBBD47IF6LWK7P7MDEVSCWR7DPUWV3NY3DTQEVFL4NAT4AQH3ZLLFLA5",
            ),
            amount_expected: amount(
                "100",
                "stellar:USDC:GBBD47IF6LWK7P7MDEVSCWR7DPUWV3NY3DTQEVFL4NAT4AQH3ZLLFLA5",
            ),
            destination_account: StellarAccount::parse(
                "GBBD47IF6LWK7P7MDEVSCWR7DPUWV3NY3DTQEVFL4NAT4AQH3ZLLFLA5",
            )
            .expect("account"),
            memo: Some(Memo::parse("42", Some("id")).expect("memo")),
        },
    };
    let asked = platform.update(&request).await.expect("requested");
    assert_eq!(asked.status, TransactionStatus::PendingSender);
    assert!(
        platform.update(&request).await.is_err(),
        "only once: the transaction is no longer pending_receiver"
    );
    assert!(sim.receive(&t, None));
    assert_eq!(
        sim.history(&t),
        ["pending_receiver", "pending_sender", "pending_receiver"]
    );
    assert_eq!(
        sim.transaction(&t)
            .and_then(|v| v["memo"].as_str().map(str::to_owned))
            .as_deref(),
        Some("42")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_are_retried_and_auth_is_enforced() {
    let running = spawn(Simulator::new(false), SimAuth::Jwt(SECRET.into())).expect("simulator");
    let t = running.sim.create(json!({"amount_expected": usdc("1")}));
    running.sim.set_faults(Faults {
        fail_every: 2,
        ..Faults::default()
    });
    let platform = client(
        &running.url,
        ApiStyle::Rest,
        PlatformAuth::Jwt(SecretString::from(SECRET)),
    );
    for _ in 0..6 {
        platform
            .transaction(&id(&t))
            .await
            .expect("every second call fails; the client retries");
    }
    running.sim.set_faults(Faults::default());
    let wrong = client(
        &running.url,
        ApiStyle::Rest,
        PlatformAuth::Jwt(SecretString::from("another-secret-of-at-least-32-bytes!!")),
    );
    let refused = wrong.transaction(&id(&t)).await;
    assert!(
        matches!(refused, Err(PlatformError::Rejected(ref m)) if m.contains("403")),
        "{refused:?}"
    );
}

/// Funded pages come from an index (as the AP's query does), and agree with
/// the general path: newest first, the index rebuilt after each change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_pages_newest_first_and_new_payments_come_before_it() {
    let running = spawn(Simulator::new(false), SimAuth::None).expect("simulator");
    let sim = &running.sim;
    let history = sim.seed_history(25);
    assert_eq!(history.len(), 25);
    let platform = client(&running.url, ApiStyle::Rest, PlatformAuth::None);
    let mut query = page(OrderBy::TransferReceivedAt, vec![]);
    let ids = |txs: Vec<mooring_domain::transaction::Transaction>| {
        txs.into_iter()
            .map(|t| t.id.as_str().to_owned())
            .collect::<Vec<_>>()
    };
    let first = ids(platform.transactions(&query).await.expect("page"));
    assert_eq!(first[0], "hist-0000024");
    assert_eq!(first[9], "hist-0000015");
    query.page_number = 2;
    let last = ids(platform.transactions(&query).await.expect("page"));
    assert_eq!(last, history[..5].iter().rev().cloned().collect::<Vec<_>>());

    let unfunded = sim.create(json!({"id": "new", "amount_expected": usdc("10")}));
    query.page_number = 2;
    let with_unfunded = ids(platform.transactions(&query).await.expect("page"));
    assert_eq!(
        with_unfunded.last().map(String::as_str),
        Some("new"),
        "unfunded last"
    );
    assert!(sim.receive(&unfunded, None));
    query.page_number = 0;
    let now = ids(platform.transactions(&query).await.expect("page"));
    assert_eq!(now[0], "new", "the newest payment first");
    assert_eq!(now[1], "hist-0000024");

    // A change that leaves `transfer_received_at` alone keeps the order, and
    // the page shows the transaction as it is now.
    platform.update(&sent("new")).await.expect("patch");
    let page = platform.transactions(&query).await.expect("page");
    assert_eq!(page[0].id.as_str(), "new");
    assert_eq!(page[0].status, TransactionStatus::Completed);
    assert_eq!(page[1].id.as_str(), "hist-0000024");
}

/// The simulator as the AP behind the Platform client: the sending side
/// creates transactions, the Stellar observer sees their payments.
struct SimulatedAp<'a>(&'a Simulator);

impl mooring_testsupport::contract::ApUnderTest for SimulatedAp<'_> {
    fn create(&self, id: &str, amount: &Amount) {
        self.0.create(json!({
            "id": id,
            "amount_expected": {"amount": amount.amount.to_string(), "asset": amount.asset.as_str()},
            "customers": {"sender": {"id": "sender"}, "receiver": {"id": "receiver"}},
        }));
    }

    fn pay(&self, id: &str) {
        assert!(self.0.receive(id, None), "the sender pays {id}");
    }
}

#[tokio::test]
async fn the_simulator_keeps_the_platform_contract_as_ap_2x_over_json_rpc() {
    let running = spawn(Simulator::new(false), SimAuth::None).expect("simulator");
    let platform = client(&running.url, ApiStyle::Rpc, PlatformAuth::None);
    mooring_testsupport::contract::platform_client(&platform, &SimulatedAp(&running.sim), "v2")
        .await;
}

#[tokio::test]
async fn the_simulator_keeps_the_platform_contract_as_ap_3x() {
    let running = spawn(Simulator::new(true), SimAuth::None).expect("simulator");
    let platform = client(&running.url, ApiStyle::Rpc, PlatformAuth::None);
    mooring_testsupport::contract::platform_client(&platform, &SimulatedAp(&running.sim), "v3")
        .await;
}
