//! The payment engine end to end: the real server (on port 0) against the
//! in-repo AP simulator, on SQLite and PostgreSQL. Payments received become
//! exactly one payout each and a `completed` transaction, through a flaky
//! AP, lost rail answers, events delivered twice and out of order, missing
//! KYC, and crashes between the rail and the AP update.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use mooring_app::Settings;
use mooring_app::startup::{
    deposit_service, kyc_service, open_store, payout_engine, quote_service,
};
use mooring_apsim::{EventSink, Faults, Running, SimAuth, Simulator, spawn};
use mooring_domain::audit::Actor;
use mooring_domain::payout::PayoutState;
use mooring_domain::transaction::TransactionId;
use mooring_testsupport::{TestDb, on_both_backends};
use mooring_usecases::{PayoutEngine, RetryMode, Work};

fn who() -> Actor {
    Actor::operator("tester", "cli@test")
}
use serde_json::{Value, json};

use crate::helpers::{ACCOUNT, TestApp, base_env, spawn_app_with};
use mooring_app::Application;

pub const USDC: &str = "stellar:USDC:GBBD47IF6LWK7P7MDEVSCWR7DPUWV3NY3DTQEVFL4NAT4AQH3ZLLFLA5";
pub const DISTRIBUTION: &str = "GBBD47IF6LWK7P7MDEVSCWR7DPUWV3NY3DTQEVFL4NAT4AQH3ZLLFLA5";

/// The engine's lease in these tests.
pub const LEASE_MS: &str = "5000";

/// The engine's settings for tests: fast loops, short leases, the
/// simulator's provider as the rail.
pub fn engine_env(sim: &Running, api: &str) -> Vec<(String, String)> {
    [
        ("MOORING__PLATFORM__ENABLED", "true"),
        ("MOORING__PLATFORM__API", api),
        ("MOORING__PLATFORM__POLL_INTERVAL_MS", "100"),
        ("MOORING__PLATFORM__RECONCILE_INTERVAL_MS", "1000"),
        ("MOORING__PLATFORM__TIMEOUT_MS", "500"),
        ("MOORING__PLATFORM__MAX_ATTEMPTS", "2"),
        ("MOORING__PAYOUT__RAIL", "http"),
        ("MOORING__PAYOUT__HTTP__TIMEOUT_MS", "1000"),
        // The longest step with all its retries fits: 3 AP calls of 2 × 500 ms
        // plus backoff.
        ("MOORING__PAYOUT__LEASE_MS", LEASE_MS),
        ("MOORING__PAYOUT__KYC_RECHECK_MS", "200"),
        ("MOORING__PAYOUT__FOLLOW_MS", "100"),
        ("MOORING__PAYOUT__RETRY_BASE_MS", "50"),
        ("MOORING__PAYOUT__RETRY_MAX_MS", "500"),
        ("MOORING__CUSTODIAN__DISTRIBUTION_ACCOUNT", DISTRIBUTION),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .chain([
        ("PLATFORM_API_BASE_URL".to_owned(), sim.url.clone()),
        ("MOORING__PAYOUT__HTTP__URL".to_owned(), sim.rail_url()),
    ])
    .collect()
}

pub async fn start(db: TestDb, sim: &Running, api: &str, extra: &[(&str, &str)]) -> TestApp {
    let env = engine_env(sim, api);
    let mut all: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    all.extend_from_slice(extra);
    spawn_app_with(db, &all).await
}

/// A payment's two customers.
pub struct Parties {
    pub sender: String,
    pub receiver: String,
}

/// A complete sender (memo `9<memo>`) and a receiver customer (memo
/// `memo`), the receiver complete or missing their bank details.
pub async fn receiver(app: &TestApp, memo: &str, complete: bool) -> Parties {
    let (status, answer) = app
        .put_customer(&json!({
            "account": ACCOUNT, "memo": format!("9{memo}"), "memo_type": "id", "type": "sep31-sender",
            "first_name": "Ana", "last_name": "Costa", "email_address": "ana@example.com",
        }))
        .await;
    assert_eq!(status, 200, "{answer}");
    let sender = answer["id"].as_str().expect("id").to_owned();
    Parties {
        sender,
        receiver: receiver_only(app, memo, complete).await,
    }
}

/// A receiver customer; complete or missing their bank details.
pub async fn receiver_only(app: &TestApp, memo: &str, complete: bool) -> String {
    let mut body = json!({
        "account": ACCOUNT, "memo": memo, "memo_type": "id", "type": "sep31-receiver",
        "first_name": "Maria", "last_name": "Silva", "email_address": "maria@example.com",
    });
    if complete {
        body["bank_account_number"] = json!("0001234567");
        body["bank_account_type"] = json!("checking");
        body["bank_number"] = json!("341");
    }
    let (status, answer) = app.put_customer(&body).await;
    assert_eq!(status, 200, "{answer}");
    answer["id"].as_str().expect("id").to_owned()
}

/// A SEP-31 transaction of 100 USDC (1 fee) paying 99 USDC, no quote.
pub fn transaction(parties: &Parties) -> Value {
    json!({
        "amount_expected": {"amount": "100", "asset": USDC},
        "amount_in": {"amount": "100", "asset": USDC},
        "amount_out": {"amount": "99", "asset": USDC},
        "amount_fee": {"amount": "1", "asset": USDC},
        "customers": {"sender": {"id": parties.sender}, "receiver": {"id": parties.receiver}},
    })
}

fn status(sim: &Simulator, id: &str) -> String {
    sim.transaction(id)
        .and_then(|t| t["status"].as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// Waits until every transaction is in `want`, or fails with where each is.
pub async fn wait_for(sim: &Simulator, ids: &[String], want: &str, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let pending: Vec<(String, String)> = ids
            .iter()
            .map(|id| (id.clone(), status(sim, id)))
            .filter(|(_, s)| s != want)
            .collect();
        if pending.is_empty() {
            return;
        }
        if Instant::now() > deadline {
            let mut by_status: BTreeMap<String, usize> = BTreeMap::new();
            for (_, s) in &pending {
                *by_status.entry(s.clone()).or_default() += 1;
            }
            panic!(
                "{} of {} transactions not {want} after {within:?}: {by_status:?}; e.g. {:?} went {:?}",
                pending.len(),
                ids.len(),
                pending[0].0,
                sim.history(&pending[0].0)
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every transaction paid exactly once at the provider, for its amount.
pub fn assert_paid_once(sim: &Simulator, ids: &[String], amount: &str) {
    let mut per_tx: BTreeMap<String, usize> = BTreeMap::new();
    for p in sim.payouts() {
        *per_tx.entry(p.transaction_id.clone()).or_default() += 1;
        assert_eq!(p.amount, amount, "{p:?}");
    }
    for id in ids {
        assert_eq!(
            per_tx.get(id),
            Some(&1),
            "transaction {id} paid {:?} times",
            per_tx.get(id)
        );
    }
    assert_eq!(per_tx.len(), ids.len(), "payouts for unknown transactions");
}

async fn received_payments_are_paid_once_and_completed_through_a_flaky_ap(db: TestDb) {
    let sim = spawn(Simulator::new(false), SimAuth::None).expect("simulator");
    // A third of the AP's calls fail; every fourth payout answer is lost
    // after the provider made the payout.
    sim.sim.set_faults(Faults {
        fail_every: 3,
        rail_lose_every: 4,
        ..Faults::default()
    });
    let app = start(db, &sim, "rest", &[]).await;
    let receiver = receiver(&app, "1", true).await;
    let ids: Vec<String> = (0..30)
        .map(|_| sim.sim.create(transaction(&receiver)))
        .collect();
    for id in &ids {
        assert!(sim.sim.receive(id, None));
    }
    wait_for(&sim.sim, &ids, "completed", Duration::from_secs(60)).await;
    assert_paid_once(&sim.sim, &ids, "99");
    for id in &ids {
        let t = sim.sim.transaction(id).expect("tx");
        let payout = sim
            .sim
            .payouts()
            .into_iter()
            .find(|p| &p.transaction_id == id)
            .expect("payout");
        assert_eq!(t["external_transaction_id"], json!(payout.id));
        assert_eq!(t["amount_out"]["amount"], json!("99"));
        assert!(t["completed_at"].is_string());
        assert_eq!(
            t["message"],
            json!("a deposit to the recipient's bank has been initiated")
        );
        // The SEP-9 fields of the receiver went to the provider, by name.
        assert_eq!(payout.receiver["bank_account_number"], json!("0001234567"));
        assert_eq!(payout.receiver["id"], json!(receiver.receiver));
        // Only names and bank fields by default (payout.http.fields).
        assert_eq!(
            payout.receiver.get("email_address"),
            None,
            "{}",
            payout.receiver
        );
    }
    // Lost answers were asked again with the same key, not paid again.
    assert!(sim.sim.payouts().iter().any(|p| p.submissions > 1));
}

async fn ap_3x_is_asked_for_the_funds_and_events_drive_the_payout(db: TestDb) {
    let sim = spawn(Simulator::new(true), SimAuth::None).expect("simulator");
    sim.sim.set_faults(Faults {
        duplicate_events: true,
        reorder_events: true,
        rail_pending: true,
        ..Faults::default()
    });
    // Polls and reconciliation are slow here: the events do the work.
    let app = start(
        db,
        &sim,
        "rpc",
        &[
            ("MOORING__PLATFORM__POLL_INTERVAL_MS", "600000"),
            ("MOORING__PLATFORM__RECONCILE_INTERVAL_MS", "600000"),
        ],
    )
    .await;
    sim.sim.send_events_to(EventSink {
        url: app.address.clone(),
        header: None,
    });
    let receiver = receiver(&app, "2", true).await;
    let ids: Vec<String> = (0..5)
        .map(|_| sim.sim.create(transaction(&receiver)))
        .collect();
    wait_for(&sim.sim, &ids, "pending_sender", Duration::from_secs(20)).await;
    let mut memos = std::collections::BTreeSet::new();
    for id in &ids {
        let t = sim.sim.transaction(id).expect("tx");
        assert_eq!(t["destination_account"], json!(DISTRIBUTION));
        assert_eq!(t["memo_type"], json!("id"));
        memos.insert(t["memo"].as_str().expect("memo").to_owned());
        assert!(sim.sim.receive(id, None));
    }
    assert_eq!(memos.len(), ids.len(), "a memo per transaction");
    wait_for(&sim.sim, &ids, "completed", Duration::from_secs(30)).await;
    assert_paid_once(&sim.sim, &ids, "99");
    for id in &ids {
        assert_eq!(
            sim.sim.updates(id),
            [
                "request_onchain_funds",
                "notify_offchain_funds_pending",
                "notify_offchain_funds_sent"
            ],
            "{id}"
        );
    }
    // Every event arrived twice; each was applied once.
    assert!(sim.sim.events_delivered() >= 2 * 3 * ids.len() as u64);
}

async fn a_receiver_missing_kyc_is_asked_for_it_and_paid_after_the_put(db: TestDb) {
    for api in ["rest", "rpc"] {
        let sim = spawn(Simulator::new(false), SimAuth::None).expect("simulator");
        let app = start(TestDb::new(db.engine()), &sim, api, &[]).await;
        let memo = if api == "rest" { "3" } else { "4" };
        let receiver = receiver(&app, memo, false).await;
        let id = sim.sim.create(transaction(&receiver));
        assert!(sim.sim.receive(&id, None));
        wait_for(
            &sim.sim,
            std::slice::from_ref(&id),
            "pending_customer_info_update",
            Duration::from_secs(20),
        )
        .await;
        assert!(sim.sim.payouts().is_empty(), "no payout before the KYC");
        // The PUT completes the fields; it names no transaction.
        let (status, answer) = app
            .put_customer(&json!({
                "id": receiver.receiver, "type": "sep31-receiver",
                "bank_account_number": "0001234567", "bank_account_type": "savings", "bank_number": "341"
            }))
            .await;
        assert_eq!(
            (status, answer["status"].as_str()),
            (200, Some("ACCEPTED")),
            "{answer}"
        );
        wait_for(
            &sim.sim,
            std::slice::from_ref(&id),
            "completed",
            Duration::from_secs(20),
        )
        .await;
        assert_paid_once(&sim.sim, std::slice::from_ref(&id), "99");
        let history = sim.sim.history(&id);
        assert_eq!(
            history,
            [
                "pending_sender",
                "pending_receiver",
                "pending_customer_info_update",
                "pending_receiver",
                "completed"
            ],
            "{api}"
        );
    }
}

async fn wrong_amounts_and_bad_quotes_go_to_error_without_a_payout(db: TestDb) {
    let sim = spawn(Simulator::new(false), SimAuth::None).expect("simulator");
    let app = start(db, &sim, "rpc", &[]).await;
    let receiver = receiver(&app, "5", true).await;
    let short = sim.sim.create(transaction(&receiver));
    assert!(
        sim.sim
            .receive(&short, Some(json!({"amount": "90", "asset": USDC})))
    );
    let mut quoted = transaction(&receiver);
    quoted["quote_id"] = json!("00000000-0000-4000-8000-000000000000");
    let unknown_quote = sim.sim.create(quoted);
    assert!(sim.sim.receive(&unknown_quote, None));
    let ids = [short.clone(), unknown_quote.clone()];
    wait_for(&sim.sim, &ids, "error", Duration::from_secs(20)).await;
    assert!(sim.sim.payouts().is_empty());
    let message = |id: &str| {
        sim.sim.transaction(id).expect("tx")["message"]
            .as_str()
            .unwrap_or("")
            .to_owned()
    };
    assert!(
        message(&short).contains("received 90"),
        "{}",
        message(&short)
    );
    assert!(
        message(&unknown_quote).contains("is unknown"),
        "{}",
        message(&unknown_quote)
    );
}

/// An engine over the app's database, as a second process would build it.
async fn engine(db: &TestDb, sim: &Running, extra: &[(&str, &str)]) -> PayoutEngine {
    let mut env = base_env(db);
    env.extend(engine_env(sim, "rpc"));
    env.extend(
        extra
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    let settings = Settings::load(&env).expect("settings");
    let store = open_store(&settings, true).await.expect("store");
    payout_engine(
        &settings,
        store.clone(),
        kyc_service(&settings, store.clone()).expect("kyc"),
        quote_service(&settings, store.clone()).expect("quotes"),
        deposit_service(&settings, store).expect("deposits"),
    )
    .expect("engine")
}

/// Claims until every payout of `ids` has been claimed (as each comes due
/// or its lease lapses), with a deadline; returns what was claimed. Waits
/// on the condition, not a guessed time.
async fn claim_when_due(
    engine: &PayoutEngine,
    ids: &[&TransactionId],
    within: Duration,
) -> Vec<Work> {
    let deadline = Instant::now() + within;
    let mut claimed: Vec<Work> = Vec::new();
    while !ids
        .iter()
        .all(|id| claimed.iter().any(|w| w.transaction_id() == *id))
    {
        assert!(Instant::now() < deadline, "not due within {within:?}");
        claimed.extend(engine.claim(10).await.expect("claim"));
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    claimed
}

/// Claims and runs everything due, `rounds` times.
async fn work(engine: &PayoutEngine, rounds: usize) {
    for _ in 0..rounds {
        engine.poll().await.ok();
        for p in engine.claim(10).await.expect("claim") {
            let _ = engine.run(p).await;
        }
        tokio::time::sleep(Duration::from_millis(60)).await;
    }
}

async fn a_crash_between_the_rail_and_the_ap_update_never_pays_twice(db: TestDb) {
    let sim = spawn(Simulator::new(false), SimAuth::None).expect("simulator");
    // The server is only the KYC front here; the engines are driven by hand.
    let app = spawn_app_with(db, &[]).await;
    let receiver = receiver(&app, "6", true).await;
    let fast = [("MOORING__PLATFORM__MAX_ATTEMPTS", "1")];

    // 1. The rail made the payout but its answer was lost, and the replica
    //    died before it could ask again.
    let lost = sim.sim.create(transaction(&receiver));
    assert!(sim.sim.receive(&lost, None));
    sim.sim.set_faults(Faults {
        rail_lose_every: 1,
        ..Faults::default()
    });
    let a = engine(&app.db, &sim, &fast).await;
    a.poll().await.expect("poll");
    for p in a.claim(10).await.expect("claim") {
        a.run(p).await.expect("run");
    }
    let p = a
        .get(&TransactionId::parse(&lost).expect("id"))
        .await
        .expect("payout");
    assert_eq!((p.state(), p.payout_id()), (PayoutState::Submitted, None));
    assert_eq!(sim.sim.payouts().len(), 1, "the provider made it");
    // A takes it up again after the backoff and dies mid-step, holding the
    // claim: only the lease's lapse frees it.
    let lost_id = TransactionId::parse(&lost).expect("id");
    let held = claim_when_due(&a, &[&lost_id], Duration::from_secs(10)).await;
    drop(held);
    drop(a);

    // 2. The rail paid and the replica recorded it, but the AP was down
    //    and the replica died before telling it.
    let told = sim.sim.create(transaction(&receiver));
    assert!(sim.sim.receive(&told, None));
    sim.sim.set_faults(Faults {
        rail_pending: true,
        ..Faults::default()
    });
    let b = engine(&app.db, &sim, &fast).await;
    b.poll().await.expect("poll");
    let told_id = TransactionId::parse(&told).expect("id");
    let claimed = b.claim(10).await.expect("claim");
    let p = claimed
        .into_iter()
        .find(|p| *p.transaction_id() == told_id)
        .expect("claimed");
    let p = b.run(p).await.expect("run");
    assert_eq!(
        p.state(),
        PayoutState::Submitted,
        "the payout is pending at the rail"
    );
    sim.sim.set_faults(Faults {
        fail_every: 1,
        rail_pending: true,
        ..Faults::default()
    });
    let p = claim_when_due(&b, &[&told_id], Duration::from_secs(10))
        .await
        .into_iter()
        .find(|p| *p.transaction_id() == told_id)
        .expect("due again");
    let p = b.run(p).await.expect("run");
    assert_eq!(
        p.state(),
        PayoutState::Confirmed,
        "paid; the AP update failed"
    );
    assert!(p.last_error.is_some());
    // B too dies mid-step, holding its claim.
    let held = claim_when_due(&b, &[&told_id], Duration::from_secs(10)).await;
    drop(held);
    drop(b);

    // A new replica takes both over once the dead ones' claims lapse, and
    // not before.
    sim.sim.set_faults(Faults::default());
    let c = engine(&app.db, &sim, &fast).await;
    assert!(
        c.claim(10).await.expect("claim").is_empty(),
        "the dead replicas' leases still hold"
    );
    for w in claim_when_due(&c, &[&lost_id, &told_id], Duration::from_secs(10)).await {
        let _ = c.run(w).await;
    }
    work(&c, 10).await;
    let ids = [lost.clone(), told.clone()];
    wait_for(&sim.sim, &ids, "completed", Duration::from_secs(10)).await;
    assert_paid_once(&sim.sim, &ids, "99");
    let by_tx = |id: &str| {
        sim.sim
            .payouts()
            .into_iter()
            .find(|p| p.transaction_id == id)
            .expect("payout")
    };
    assert_eq!(by_tx(&lost).submissions, 2, "asked again with the same key");
    assert_eq!(
        by_tx(&told).submissions,
        1,
        "not asked again: its answer was recorded"
    );
    for id in &ids {
        let completions = sim
            .sim
            .updates(id)
            .iter()
            .filter(|u| *u == "notify_offchain_funds_sent")
            .count();
        assert_eq!(completions, 1, "{id}: {:?}", sim.sim.updates(id));
    }
}

async fn the_back_office_retries_a_failure_and_records_a_refund(db: TestDb) {
    let sim = spawn(Simulator::new(false), SimAuth::None).expect("simulator");
    let app = start(db, &sim, "rpc", &[]).await;
    let receiver = receiver(&app, "7", true).await;
    let short = sim.sim.create(transaction(&receiver));
    assert!(
        sim.sim
            .receive(&short, Some(json!({"amount": "90", "asset": USDC})))
    );
    wait_for(
        &sim.sim,
        std::slice::from_ref(&short),
        "error",
        Duration::from_secs(20),
    )
    .await;
    let e = engine(&app.db, &sim, &[]).await;
    let id = TransactionId::parse(&short).expect("id");
    // Wait for the ledger to record the rejection after the AP update.
    let deadline = Instant::now() + Duration::from_secs(10);
    while e.get(&id).await.expect("get").state() != PayoutState::Rejected {
        assert!(Instant::now() < deadline, "not rejected");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        e.refund(&id, "  ", &who()).await.is_err(),
        "a reference is required"
    );
    e.refund(&id, "c0ffee", &who()).await.expect("refund");
    wait_for(
        &sim.sim,
        std::slice::from_ref(&short),
        "refunded",
        Duration::from_secs(20),
    )
    .await;
    let t = sim.sim.transaction(&short).expect("tx");
    assert_eq!(t["refunds"]["payments"][0]["id"], json!("c0ffee"));
    assert_eq!(t["refunds"]["payments"][0]["amount"]["amount"], json!("90"));
    assert!(sim.sim.payouts().is_empty());
    assert!(
        e.retry(&id, RetryMode::SameKey, &who()).await.is_err(),
        "a refunded payout is final"
    );
}

/// A key that is not the test key: 32 bytes of 0x02.
const ROTATED_KEY: &str = "AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=";

async fn after_a_rotation_the_new_key_alone_still_pays_the_receivers_bank_number(db: TestDb) {
    let sim = spawn(Simulator::new(false), SimAuth::None).expect("simulator");
    // The customers are sealed under the test key (the engine is off).
    let app = spawn_app_with(db, &[]).await;
    let parties = receiver(&app, "1", true).await;

    let rotated = tokio::task::block_in_place(|| {
        std::process::Command::new(env!("CARGO_BIN_EXE_mooring"))
            .env_clear()
            .env("DATABASE_URL", app.db.url())
            .env("MOORING__PII__KEY", ROTATED_KEY)
            .env(
                "MOORING__PII__PREVIOUS_KEYS",
                mooring_testsupport::TEST_PII_KEY,
            )
            .args(["keys", "rotate"])
            .output()
            .expect("mooring runs")
    });
    assert!(
        rotated.status.success(),
        "{}",
        String::from_utf8_lossy(&rotated.stderr)
    );

    // A server with the new key alone pays the receiver from the sealed values.
    let mut env = base_env(&app.db);
    env.extend(engine_env(&sim, "rest"));
    env.insert("MOORING__PII__KEY".into(), ROTATED_KEY.into());
    let paying = Application::build(Settings::load(&env).expect("settings"))
        .await
        .expect("the new key alone opens the database");
    let handle = paying.handle();
    tokio::spawn(paying.run_until_stopped());
    let id = sim.sim.create(transaction(&parties));
    assert!(sim.sim.receive(&id, None));
    wait_for(
        &sim.sim,
        std::slice::from_ref(&id),
        "completed",
        Duration::from_secs(30),
    )
    .await;
    assert_paid_once(&sim.sim, std::slice::from_ref(&id), "99");
    let payout = sim.sim.payouts().pop().expect("payout");
    assert_eq!(payout.receiver["bank_account_number"], json!("0001234567"));
    handle.stop(true).await;
}

on_both_backends!(
    after_a_rotation_the_new_key_alone_still_pays_the_receivers_bank_number,
    received_payments_are_paid_once_and_completed_through_a_flaky_ap,
    ap_3x_is_asked_for_the_funds_and_events_drive_the_payout,
    a_receiver_missing_kyc_is_asked_for_it_and_paid_after_the_put,
    wrong_amounts_and_bad_quotes_go_to_error_without_a_payout,
    a_crash_between_the_rail_and_the_ap_update_never_pays_twice,
    the_back_office_retries_a_failure_and_records_a_refund
);
