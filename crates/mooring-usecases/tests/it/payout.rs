//! The payment engine against fake ports: every step's failure case, one at
//! a time, with the clock in the test's hands.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use mooring_domain::audit::AuditAction;
use mooring_domain::customer::{CustomerId, CustomerStatus, CustomerTypes, ReviewMode};
use mooring_domain::payout::{AtRail, PayoutState, Sighting, Stage};
use mooring_domain::quote::{QuoteKind, Requested};
use mooring_domain::transaction::{
    Amount, Transaction, TransactionChange, TransactionId, TransactionStatus,
};
use mooring_domain::{AssetId, Memo, StellarAccount};
use mooring_ports::{Clock, InboxEvent, LedgerError, PlatformError, PollMarks};
use mooring_usecases::{
    AuditTrail, CustomerUpdate, DepositService, EngineConfig, EngineError, EngineParts, EventInbox,
    KycService, PayoutEngine, QuoteService, RetryMode,
};

use crate::fakes::{
    ApFault, BeforePage, FakeAuditLog, FakeCustodian, FakeDepositAddresses, FakeKycStore,
    FakeLedger, FakePlatform, FakeRail, RailFault, TestClock, who,
};
use crate::quotes::{USDC, d, request};

pub(crate) const ACCOUNT: &str = "GDJUOFZGW5WYBK4GIETCSSM6MTTIJ4SUMCQITPTLUWMQ6B4UIX2IEX47";
/// The sender of every transaction: a customer with complete, approved KYC.
pub const SENDER: &str = "5e4de000-0000-4000-8000-000000000001";

pub(crate) struct World {
    pub(crate) engine: PayoutEngine,
    pub(crate) parts: EngineParts,
    pub(crate) platform: Arc<FakePlatform>,
    pub(crate) ledger: Arc<FakeLedger>,
    pub(crate) rail: Arc<FakeRail>,
    pub(crate) kyc: KycService,
    pub(crate) quotes: QuoteService,
    pub(crate) clock: Arc<TestClock>,
    pub(crate) kyc_store: Arc<FakeKycStore>,
    pub(crate) audit: Arc<FakeAuditLog>,
}

pub(crate) fn world() -> World {
    world_with(ReviewMode::Auto, |_| {})
}

pub(crate) fn world_with(mode: ReviewMode, tune: impl FnOnce(&mut EngineConfig)) -> World {
    world_on(mode, None, tune)
}

/// A world whose engine and database clocks are `timed` (e.g. following
/// tokio's paused clock) instead of the test's `TestClock`.
pub(crate) fn world_on(
    mode: ReviewMode,
    timed: Option<Arc<dyn Clock>>,
    tune: impl FnOnce(&mut EngineConfig),
) -> World {
    let q = crate::quotes::world(&[]);
    let clock = q.clock.clone();
    let engine_clock: Arc<dyn Clock> = timed.unwrap_or_else(|| clock.clone());
    let platform = Arc::new(FakePlatform::default());
    let ledger = Arc::new(FakeLedger::on_clock(engine_clock.clone()));
    let rail = Arc::new(FakeRail::default());
    let store = Arc::new(FakeKycStore::default());
    store.insert_accepted(SENDER, ACCOUNT, "sender", clock.now());
    let audit = Arc::new(FakeAuditLog::default());
    let kyc = KycService::new(
        store.clone(),
        CustomerTypes::builtin(),
        mode,
        AuditTrail::new(audit.clone(), clock.clone()),
        clock.clone(),
    );
    let parts = EngineParts {
        audit: kyc.audit().clone(),
        platform: platform.clone(),
        ledger: ledger.clone(),
        events: ledger.clone(),
        marks: ledger.clone(),
        rail: rail.clone(),
        kyc: kyc.clone(),
        quotes: q.quotes.clone(),
        deposits: DepositService::new(
            Arc::new(FakeCustodian::default()),
            Arc::new(FakeDepositAddresses::default()),
        ),
        clock: engine_clock,
    };
    let mut config = EngineConfig::new("replica-a".into());
    tune(&mut config);
    World {
        engine: PayoutEngine::new(parts.clone(), config),
        parts,
        platform,
        ledger,
        rail,
        kyc,
        kyc_store: store,
        quotes: q.quotes,
        clock,
        audit,
    }
}

pub(crate) fn usdc(amount: &str) -> Amount {
    Amount::new(d(amount), AssetId::parse(USDC).expect("asset"))
}

pub(crate) fn id(s: &str) -> TransactionId {
    TransactionId::parse(s).expect("transaction id")
}

/// A SEP-31 transaction of 100 USDC (1 fee) for `receiver`, funded at `at`.
pub(crate) fn funded_tx(tx_id: &str, receiver: &str, at: DateTime<Utc>) -> Transaction {
    Transaction {
        id: id(tx_id),
        sep: "31".into(),
        kind: Some("receive".into()),
        status: TransactionStatus::PendingReceiver,
        amount_expected: Some(usdc("100")),
        amount_in: Some(usdc("100")),
        amount_out: None,
        fee: Some(usdc("1")),
        quote_id: None,
        sender_id: Some(SENDER.into()),
        receiver_id: Some(receiver.into()),
        started_at: Some(at - Duration::minutes(5)),
        updated_at: Some(at),
        transfer_received_at: Some(at),
        completed_at: None,
        stellar_transaction_ids: vec![],
        external_transaction_id: None,
        message: None,
        unreadable: vec![],
    }
}

impl World {
    pub(crate) fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// Another replica over the same ports.
    pub(crate) fn replica(&self, owner: &str) -> PayoutEngine {
        self.replica_on(owner, self.parts.clock.clone())
    }

    /// Another replica over the same ports, with its own clock.
    pub(crate) fn replica_on(&self, owner: &str, clock: Arc<dyn Clock>) -> PayoutEngine {
        let config = EngineConfig {
            owner: owner.into(),
            ..self.engine.config().clone()
        };
        let parts = EngineParts {
            clock,
            ..self.parts.clone()
        };
        PayoutEngine::new(parts, config)
    }

    /// Claims and runs every entry due now until none is left.
    pub(crate) async fn drive(&self) {
        for _ in 0..32 {
            let claimed = self.engine.claim(16).await.expect("claim");
            if claimed.is_empty() {
                return;
            }
            for p in claimed {
                self.engine.run(p).await.expect("run");
            }
        }
        panic!("entries stayed due after 32 rounds");
    }

    /// A receiver; `complete` with their bank details.
    pub(crate) async fn receiver(&self, memo: &str, complete: bool) -> String {
        let mut text = vec![
            ("first_name", "Maria"),
            ("last_name", "Silva"),
            ("email_address", "maria@example.com"),
        ];
        if complete {
            text.extend([
                ("bank_account_number", "0001234567"),
                ("bank_account_type", "checking"),
                ("bank_number", "341"),
            ]);
        }
        let view = self
            .kyc
            .put(CustomerUpdate {
                account: Some(StellarAccount::parse(ACCOUNT).expect("account")),
                memo: Some(Memo::parse(memo, None).expect("memo")),
                customer_type: Some("sep31-receiver".into()),
                text: text
                    .into_iter()
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect(),
                ..Default::default()
            })
            .await
            .expect("put customer");
        view.id.expect("an id").as_str().to_owned()
    }

    /// A SEP-31 transaction of 100 USDC (1 fee) for `receiver`, funded at
    /// `at`, at the AP.
    pub(crate) fn funded(&self, tx_id: &str, receiver: &str, at: DateTime<Utc>) -> Transaction {
        let tx = funded_tx(tx_id, receiver, at);
        self.platform.insert(tx.clone());
        tx
    }

    /// `prefix0`, `prefix1`, … funded at `at(i)` for each `i` of `range`.
    fn funded_series(
        &self,
        prefix: &str,
        range: std::ops::Range<i64>,
        receiver: &str,
        at: impl Fn(i64) -> DateTime<Utc>,
    ) {
        for i in range {
            self.funded(&format!("{prefix}{i}"), receiver, at(i));
        }
    }

    /// Pages of `transactions` read since the last call.
    fn pages_read(&self) -> u32 {
        std::mem::take(&mut *self.platform.pages_read.lock().expect("lock"))
    }

    pub(crate) fn state(&self, tx_id: &str) -> Option<PayoutState> {
        self.ledger.state(tx_id)
    }
}

#[tokio::test]
async fn a_funded_transaction_is_paid_once_and_completed() {
    let w = world();
    let receiver = w.receiver("1", true).await;
    w.funded("t1", &receiver, w.now());

    assert_eq!(w.engine.poll().await.expect("poll"), 1);
    w.drive().await;

    assert_eq!(w.state("t1"), Some(PayoutState::Completed));
    let made = w.rail.made();
    assert_eq!(made.len(), 1);
    assert_eq!(made[0].idempotency_key, "t1");
    assert_eq!(made[0].amount, d("99"));
    assert_eq!(made[0].asset, USDC);
    assert!(
        made[0]
            .receiver_fields
            .contains(&("bank_account_number".into(), "0001234567".into()))
    );
    // Names and bank fields only (payout.http.fields): not the e-mail.
    let sent: Vec<&str> = made[0]
        .receiver_fields
        .iter()
        .map(|(n, _)| n.as_str())
        .collect();
    assert_eq!(
        sent,
        [
            "bank_account_number",
            "bank_account_type",
            "bank_number",
            "first_name",
            "last_name"
        ]
    );
    assert_eq!(w.platform.moves("t1"), ["funds_sent"]);
    let tx = w.platform.tx("t1");
    assert_eq!(tx.status, TransactionStatus::Completed);
    assert_eq!(tx.external_transaction_id.as_deref(), Some("pay-1"));
    assert_eq!(tx.amount_out, Some(usdc("99")));
    // One read of the AP, by the checks: told `completed` right after the
    // rail's answer was saved, nobody can have told it before.
    assert_eq!(w.platform.reads("t1"), 1);

    // Seen again by a poll, a reconciliation and an event: nothing more.
    assert_eq!(w.engine.poll().await.expect("poll"), 0);
    w.engine.reconcile().await.expect("reconcile");
    w.drive().await;
    assert_eq!(w.rail.made().len(), 1);
    assert_eq!(w.platform.moves("t1"), ["funds_sent"]);
}

#[tokio::test]
async fn the_checks_commit_the_terms_and_the_key_before_the_rail_is_called() {
    let w = world();
    let receiver = w.receiver("1", true).await;
    w.funded("t1", &receiver, w.now());
    w.engine.poll().await.expect("poll");
    let claimed = w.engine.claim(1).await.expect("claim");
    // The rail is down: the run stops after the checks' commit.
    w.rail
        .faults
        .lock()
        .expect("lock")
        .push_back(RailFault::Down);
    let p = w
        .engine
        .run(claimed.into_iter().next().expect("claimed"))
        .await
        .expect("run");
    assert_eq!(
        p.state(),
        PayoutState::Submitted,
        "received → submitted in one write"
    );
    assert_eq!(w.state("t1"), Some(PayoutState::Submitted));
    assert_eq!(p.amount_out, Some(usdc("99")));
    assert!(w.rail.made().is_empty());
}

#[tokio::test]
async fn an_entry_an_earlier_version_submitted_without_an_order_is_frozen_then_paid_once() {
    let w = world();
    let receiver = w.receiver("1", true).await;
    w.funded("t1", &receiver, w.now());
    let mut p = mooring_domain::payout::Payout::new(
        id("t1"),
        Stage::Submitted(AtRail {
            order: None,
            submitted_at: w.now(),
            payout_id: None,
            told_pending: false,
            order_erased: false,
        }),
        w.now(),
    );
    p.amount_in = Some(usdc("100"));
    p.amount_out = Some(usdc("99"));
    p.sender_id = Some(SENDER.into());
    p.receiver_id = Some(receiver.clone());
    w.ledger.put(p);
    // The first step only freezes the order (a commit), the next sends it.
    let claimed = w.engine.claim(1).await.expect("claim");
    w.rail
        .faults
        .lock()
        .expect("lock")
        .push_back(RailFault::Down);
    let after = w
        .engine
        .run(claimed.into_iter().next().expect("claimed"))
        .await
        .expect("run");
    let frozen = after.order().cloned().expect("frozen");
    assert_eq!(w.rail.calls(), std::slice::from_ref(&frozen));
    // Sent whole by the earlier version under this key: frozen whole, so
    // the retry's body is the one the provider has (no minimisation).
    assert!(
        frozen
            .receiver_fields
            .iter()
            .any(|(n, _)| n == "email_address"),
        "{frozen:?}"
    );
    w.clock.advance(Duration::minutes(1));
    w.drive().await;
    assert_eq!(w.state("t1"), Some(PayoutState::Completed));
    assert_eq!(w.rail.made(), [frozen]);
    assert_eq!(w.platform.moves("t1"), ["funds_sent"]);
}

#[tokio::test]
async fn a_poll_reads_back_only_to_where_the_last_complete_poll_started() {
    let w = world_with(ReviewMode::Auto, |c| c.page_size = 2);
    let receiver = w.receiver("1", true).await;
    let start = w.now() - Duration::minutes(5);
    w.funded_series("t", 0..5, &receiver, |i| start + Duration::seconds(10 * i));
    assert_eq!(w.engine.poll().await.expect("poll"), 5);
    assert_eq!(w.pages_read(), 3);
    assert_eq!(
        w.ledger.poll_mark().await.expect("mark"),
        Some(start + Duration::seconds(40)),
        "the mark is t4's time"
    );

    w.funded("t5", &receiver, start + Duration::seconds(100));
    assert_eq!(w.engine.poll().await.expect("poll"), 1);
    assert_eq!(
        w.pages_read(),
        2,
        "the newest page ends with t4 at the mark; the next one shows t3 older than it, and the poll stops"
    );
    assert_eq!(
        w.ledger.poll_mark().await.expect("mark"),
        Some(start + Duration::seconds(100))
    );
}

#[tokio::test]
async fn payments_arriving_while_a_poll_pages_do_not_stop_it_early() {
    let w = world_with(ReviewMode::Auto, |c| {
        c.page_size = 2;
        c.poll_overlap = Duration::zero();
    });
    let receiver = w.receiver("1", true).await;
    let start = w.now() - Duration::minutes(5);
    w.funded("k0", &receiver, start);
    w.funded("k1", &receiver, start + Duration::seconds(1));
    assert_eq!(w.engine.poll().await.expect("poll"), 2);
    w.funded_series("n", 1..5, &receiver, |i| start + Duration::seconds(10 + i));
    // After the first page (n4, n3), two newer payments arrive: the second
    // page shows n4 and n3 again, which this poll itself wrote.
    w.platform.before_pages.lock().expect("lock").extend([
        BeforePage::Nothing,
        BeforePage::Arrive(vec![
            funded_tx("a1", &receiver, start + Duration::seconds(20)),
            funded_tx("a2", &receiver, start + Duration::seconds(21)),
        ]),
    ]);
    assert_eq!(
        w.engine.poll().await.expect("poll"),
        4,
        "n1 to n4, read on past the ones pushed down"
    );
    for n in ["n1", "n2", "n3", "n4"] {
        assert_eq!(w.state(n), Some(PayoutState::Received), "{n}");
    }
    assert_eq!(w.state("a1"), None, "arrived after the poll started");
    assert_eq!(w.engine.poll().await.expect("poll"), 2, "a1 and a2");
    assert_eq!(w.state("a1"), Some(PayoutState::Received));
}

#[tokio::test]
async fn after_a_poll_fails_half_way_the_next_reads_past_what_it_wrote() {
    let w = world_with(ReviewMode::Auto, |c| {
        c.page_size = 2;
        c.poll_overlap = Duration::zero();
    });
    let receiver = w.receiver("1", true).await;
    let start = w.now() - Duration::minutes(5);
    w.funded("k0", &receiver, start);
    assert_eq!(w.engine.poll().await.expect("poll"), 1);
    w.funded_series("n", 1..5, &receiver, |i| start + Duration::seconds(10 + i));
    w.platform
        .before_pages
        .lock()
        .expect("lock")
        .extend([BeforePage::Nothing, BeforePage::Fail]);
    assert!(matches!(
        w.engine.poll().await,
        Err(EngineError::Platform(PlatformError::Unavailable(_)))
    ));
    assert_eq!(
        w.state("n4"),
        Some(PayoutState::Received),
        "page one written"
    );
    assert_eq!(w.state("n2"), None);
    assert_eq!(
        w.ledger.poll_mark().await.expect("mark"),
        Some(start),
        "an unfinished poll leaves the mark"
    );
    assert_eq!(
        w.engine.poll().await.expect("poll"),
        2,
        "n1 and n2, below the failed poll's sightings"
    );
    assert_eq!(w.state("n1"), Some(PayoutState::Received));
}

#[tokio::test]
async fn the_mark_never_passes_the_replicas_clock() {
    let w = world();
    let receiver = w.receiver("1", true).await;
    let now = w.now();
    // An AP clock an hour fast.
    w.funded("ahead", &receiver, now + Duration::hours(1));
    assert_eq!(w.engine.poll().await.expect("poll"), 1);
    assert_eq!(w.ledger.poll_mark().await.expect("mark"), Some(now));
    w.funded("later", &receiver, now + Duration::minutes(30));
    assert_eq!(
        w.engine.poll().await.expect("poll"),
        1,
        "a mark an hour ahead would have hidden it until reconciliation"
    );
    assert_eq!(w.state("later"), Some(PayoutState::Received));
}

#[tokio::test]
async fn a_new_replica_starts_from_the_mark_its_predecessors_left() {
    let w = world_with(ReviewMode::Auto, |c| c.page_size = 2);
    let receiver = w.receiver("1", true).await;
    let start = w.now() - Duration::minutes(5);
    w.funded_series("t", 0..6, &receiver, |i| start + Duration::seconds(10 * i));
    assert_eq!(w.engine.poll().await.expect("poll"), 6);
    w.pages_read();
    let other = w.replica("replica-b");
    assert_eq!(other.poll().await.expect("poll"), 0);
    assert_eq!(
        w.pages_read(),
        1,
        "t4, beside t5 at the mark, is older than it: one page, not the history"
    );
}

#[tokio::test]
async fn with_no_overlap_a_poll_still_reads_the_ties_of_the_first_known_payment() {
    let w = world_with(ReviewMode::Auto, |c| {
        c.page_size = 2;
        c.poll_overlap = Duration::zero();
    });
    let receiver = w.receiver("1", true).await;
    let at = w.now() - Duration::minutes(1);
    w.funded("b", &receiver, at);
    w.funded("a", &receiver, at - Duration::milliseconds(1));
    assert_eq!(w.engine.poll().await.expect("poll"), 2);
    w.funded("c", &receiver, at);
    w.funded("e", &receiver, at);
    assert_eq!(
        w.engine.poll().await.expect("poll"),
        2,
        "c and e, tied with b"
    );
    w.pages_read();
    assert_eq!(w.engine.poll().await.expect("poll"), 0);
    assert_eq!(
        w.pages_read(),
        2,
        "b, c, e share a time: the second page shows a, older, and the poll stops"
    );
}

#[tokio::test]
async fn a_payment_sorting_after_a_known_one_with_the_same_time_is_found() {
    let w = world_with(ReviewMode::Auto, |c| {
        c.page_size = 2;
        c.poll_overlap = Duration::seconds(1);
    });
    let receiver = w.receiver("1", true).await;
    let at = w.now() - Duration::minutes(1);
    // The AP sorts equal transfer_received_at by id: "b" before "c".
    w.funded("b", &receiver, at);
    w.funded("a", &receiver, at - Duration::seconds(30));
    assert_eq!(w.engine.poll().await.expect("poll"), 2);
    w.funded("c", &receiver, at);
    w.funded("d", &receiver, at - Duration::milliseconds(400));
    assert_eq!(
        w.engine.poll().await.expect("poll"),
        2,
        "c (tied with the known b) and d (within the overlap) are new"
    );
    assert_eq!(w.state("c"), Some(PayoutState::Received));
    assert_eq!(w.state("d"), Some(PayoutState::Received));
}

#[tokio::test]
async fn reconciliation_finds_a_payment_that_polls_missed() {
    let w = world();
    let receiver = w.receiver("1", true).await;
    let start = w.now() - Duration::minutes(5);
    w.funded("newer", &receiver, start + Duration::seconds(10));
    w.engine.poll().await.expect("poll");
    // Funded earlier than one the ledger knows: a poll stops before it.
    w.funded("older", &receiver, start);
    assert_eq!(w.engine.poll().await.expect("poll"), 0);
    assert_eq!(w.state("older"), None);

    assert_eq!(w.engine.reconcile().await.expect("reconcile"), 2);
    w.drive().await;
    assert_eq!(w.state("older"), Some(PayoutState::Completed));
    assert_eq!(w.state("newer"), Some(PayoutState::Completed));
    assert_eq!(w.rail.made().len(), 2);
}

#[tokio::test]
async fn a_lost_rail_answer_is_asked_again_under_the_same_key() {
    let w = world();
    let receiver = w.receiver("1", true).await;
    w.funded("t1", &receiver, w.now());
    w.rail
        .faults
        .lock()
        .expect("lock")
        .extend([RailFault::AnswerLost, RailFault::Down]);
    w.engine.poll().await.expect("poll");

    w.drive().await;
    let p = w.engine.get(&id("t1")).await.expect("payout");
    assert_eq!(p.state(), PayoutState::Submitted);
    assert_eq!(p.failures, 1);
    assert!(p.last_error.as_deref().unwrap_or("").contains("reset"));
    assert_eq!(w.rail.made().len(), 1, "the first call made the payout");

    w.clock.advance(Duration::minutes(1));
    w.drive().await;
    assert_eq!(w.state("t1"), Some(PayoutState::Submitted));
    w.clock.advance(Duration::minutes(1));
    w.drive().await;

    assert_eq!(w.state("t1"), Some(PayoutState::Completed));
    let made = w.rail.made();
    assert_eq!(made.len(), 1, "the same key returned the same payout");
    assert_eq!(
        w.platform.tx("t1").external_transaction_id.as_deref(),
        Some("pay-1")
    );
}

#[tokio::test]
async fn a_crash_after_the_payout_resumes_on_another_replica_without_paying_twice() {
    let w = world();
    let receiver = w.receiver("1", true).await;
    w.funded("t1", &receiver, w.now());
    w.engine.poll().await.expect("poll");
    // The rail pays; the state after it is never written.
    *w.ledger.fail_save_from.lock().expect("lock") = Some(PayoutState::Submitted);

    let claimed = w.engine.claim(10).await.expect("claim");
    let crashed = w
        .engine
        .run(claimed.into_iter().next().expect("claimed"))
        .await;
    assert!(matches!(
        crashed,
        Err(EngineError::Ledger(LedgerError::Unknown(_)))
    ));
    assert_eq!(w.rail.made().len(), 1);
    assert_eq!(w.state("t1"), Some(PayoutState::Submitted));

    // The step had ended (nothing in flight): its claim was given back,
    // and another replica sends the frozen order again under its key.
    let b = w.replica("replica-b");
    let taken = b.claim(10).await.expect("claim");
    assert_eq!(taken.len(), 1);
    let done = b
        .run(taken.into_iter().next().expect("taken"))
        .await
        .expect("run");

    assert_eq!(done.state(), PayoutState::Completed);
    assert_eq!(w.rail.made().len(), 1, "one payout through the crash");
    assert_eq!(w.platform.moves("t1"), ["funds_sent"]);
}

#[tokio::test]
async fn a_replica_whose_claim_lapsed_cannot_move_the_entry() {
    let w = world();
    let receiver = w.receiver("1", true).await;
    w.funded("t1", &receiver, w.now());
    w.engine.poll().await.expect("poll");
    let stale = w.engine.claim(10).await.expect("claim");
    assert_eq!(stale.len(), 1);

    w.clock
        .advance(w.engine.config().lease + Duration::seconds(1));
    let b = w.replica("replica-b");
    let taken = b.claim(10).await.expect("claim");
    b.run(taken.into_iter().next().expect("taken"))
        .await
        .expect("run");
    assert_eq!(w.state("t1"), Some(PayoutState::Completed));

    let late = w.engine.run(stale.into_iter().next().expect("stale")).await;
    assert!(matches!(
        late,
        Err(EngineError::Ledger(LedgerError::LostClaim))
    ));
    assert_eq!(w.state("t1"), Some(PayoutState::Completed));
    assert_eq!(w.rail.made().len(), 1);
}

#[tokio::test]
async fn released_claims_are_taken_up_at_once_by_another_replica() {
    let w = world();
    let receiver = w.receiver("1", true).await;
    w.funded("t1", &receiver, w.now());
    w.engine.poll().await.expect("poll");
    let claimed = w.engine.claim(10).await.expect("claim");
    assert_eq!(claimed.len(), 1);
    assert_eq!(w.ledger.claimed_by("t1").as_deref(), Some("replica-a"));

    assert!(w.engine.release(&claimed[0]).await.expect("release"));
    let b = w.replica("replica-b");
    assert_eq!(b.claim(10).await.expect("claim").len(), 1);
    assert_eq!(w.ledger.claimed_by("t1").as_deref(), Some("replica-b"));
}

#[tokio::test]
async fn an_answer_lost_after_the_ap_completed_is_not_sent_twice() {
    let w = world();
    let receiver = w.receiver("1", true).await;
    w.funded("t1", &receiver, w.now());
    w.platform
        .update_faults
        .lock()
        .expect("lock")
        .push_back(ApFault::AnswerLost);
    w.engine.poll().await.expect("poll");

    w.drive().await;
    assert_eq!(w.state("t1"), Some(PayoutState::Confirmed));
    assert_eq!(w.platform.tx("t1").status, TransactionStatus::Completed);

    w.clock.advance(Duration::minutes(1));
    w.drive().await;
    assert_eq!(w.state("t1"), Some(PayoutState::Completed));
    assert_eq!(w.platform.moves("t1"), ["funds_sent"]);
    assert_eq!(w.rail.made().len(), 1);
}

#[tokio::test]
async fn an_unreachable_ap_is_retried_with_a_growing_backoff() {
    let w = world();
    let receiver = w.receiver("1", true).await;
    w.funded("t1", &receiver, w.now());
    *w.platform.reads_down.lock().expect("lock") = 1;
    assert!(matches!(
        w.engine.poll().await,
        Err(EngineError::Platform(PlatformError::Unavailable(_)))
    ));
    w.engine.poll().await.expect("poll");

    *w.platform.reads_down.lock().expect("lock") = 2;
    w.drive().await;
    let p = w.engine.get(&id("t1")).await.expect("payout");
    assert_eq!((p.state(), p.failures), (PayoutState::Received, 1));
    assert_eq!(p.due_at - w.now(), Duration::seconds(1));
    assert_eq!(
        w.ledger.claimed_by("t1"),
        None,
        "not due: the claim is given back"
    );

    w.drive().await;
    assert_eq!(
        w.engine.get(&id("t1")).await.expect("payout").failures,
        1,
        "nothing is retried before it is due"
    );

    w.clock.advance(Duration::seconds(1));
    w.drive().await;
    let p = w.engine.get(&id("t1")).await.expect("payout");
    assert_eq!(p.failures, 2);
    assert_eq!(p.due_at - w.now(), Duration::seconds(2));

    w.clock.advance(Duration::seconds(2));
    w.drive().await;
    let p = w.engine.get(&id("t1")).await.expect("payout");
    assert_eq!(
        (p.state(), p.failures, p.last_error),
        (PayoutState::Completed, 0, None)
    );
}

#[tokio::test]
async fn a_receiver_missing_kyc_is_asked_for_it_then_paid() {
    let w = world();
    let receiver = w.receiver("1", false).await;
    w.funded("t1", &receiver, w.now());
    w.engine.poll().await.expect("poll");

    w.drive().await;
    assert_eq!(w.state("t1"), Some(PayoutState::AwaitingKyc));
    assert_eq!(w.platform.moves("t1"), ["info_needed"]);
    assert_eq!(
        w.platform.tx("t1").status,
        TransactionStatus::PendingCustomerInfoUpdate
    );

    // Rechecked, still incomplete: the AP is not asked again.
    w.clock.advance(w.engine.config().kyc_recheck);
    w.drive().await;
    assert_eq!(w.state("t1"), Some(PayoutState::AwaitingKyc));
    assert_eq!(w.platform.moves("t1"), ["info_needed"]);

    w.kyc
        .put(CustomerUpdate {
            id: Some(CustomerId::parse(&receiver).expect("id")),
            text: vec![
                ("bank_account_number".into(), "0001234567".into()),
                ("bank_account_type".into(), "checking".into()),
                ("bank_number".into(), "341".into()),
            ],
            ..Default::default()
        })
        .await
        .expect("put");
    w.clock.advance(w.engine.config().kyc_recheck);
    w.drive().await;

    assert_eq!(w.state("t1"), Some(PayoutState::Completed));
    assert_eq!(
        w.platform.moves("t1"),
        ["info_needed", "info_updated", "funds_sent"]
    );
    assert_eq!(w.rail.made().len(), 1);
}

#[tokio::test]
async fn a_receiver_under_manual_review_is_awaited_without_moving_the_ap() {
    let w = world_with(ReviewMode::Manual, |_| {});
    let receiver = w.receiver("1", true).await;
    w.funded("t1", &receiver, w.now());
    w.engine.poll().await.expect("poll");

    w.drive().await;
    assert_eq!(w.state("t1"), Some(PayoutState::AwaitingKyc));
    assert!(w.platform.moves("t1").is_empty());
    assert!(w.rail.made().is_empty());

    w.kyc
        .approve(&CustomerId::parse(&receiver).expect("id"), None, &who())
        .await
        .expect("approve");
    w.clock.advance(w.engine.config().kyc_recheck);
    w.drive().await;
    assert_eq!(w.state("t1"), Some(PayoutState::Completed));
    assert_eq!(w.platform.moves("t1"), ["funds_sent"]);
}

#[tokio::test]
async fn a_field_a_reviewer_rejects_is_asked_for_through_the_ap_once_then_paid() {
    let w = world_with(ReviewMode::Manual, |_| {});
    let receiver = w.receiver("1", true).await;
    let receiver_id = CustomerId::parse(&receiver).expect("id");
    w.funded("t1", &receiver, w.now());
    w.engine.poll().await.expect("poll");
    w.drive().await;
    assert_eq!(w.state("t1"), Some(PayoutState::AwaitingKyc));
    assert!(
        w.platform.moves("t1").is_empty(),
        "under review: the AP waits quietly"
    );

    // The reviewer rejects the bank account: the receiver NEEDS_INFO, and
    // the waiting payout asks the AP for it at its next recheck.
    let view = w
        .kyc
        .reject_field(
            &receiver_id,
            "bank_account_number",
            "the account is closed",
            None,
            &who(),
        )
        .await
        .expect("field rejected");
    assert_eq!(view.assessment.status, CustomerStatus::NeedsInfo);
    w.clock.advance(w.engine.config().kyc_recheck);
    w.drive().await;
    assert_eq!(w.state("t1"), Some(PayoutState::AwaitingKyc));
    assert_eq!(w.platform.moves("t1"), ["info_needed"]);
    assert_eq!(
        w.platform.tx("t1").status,
        TransactionStatus::PendingCustomerInfoUpdate
    );

    // Rechecked while the receiver still needs to provide it: never asked
    // again, and no AP read spent on it.
    let reads = w.platform.reads("t1");
    for _ in 0..3 {
        w.clock.advance(w.engine.config().kyc_recheck);
        w.drive().await;
    }
    assert_eq!(w.platform.moves("t1"), ["info_needed"]);
    assert_eq!(w.platform.reads("t1"), reads);
    assert!(w.rail.made().is_empty());

    // A new account number: under review again (PROCESSING), then approved
    // and paid once, the AP told the info is complete first.
    w.kyc
        .put(CustomerUpdate {
            id: Some(receiver_id.clone()),
            text: vec![("bank_account_number".into(), "0007654321".into())],
            ..Default::default()
        })
        .await
        .expect("put");
    w.clock.advance(w.engine.config().kyc_recheck);
    w.drive().await;
    assert_eq!(w.state("t1"), Some(PayoutState::AwaitingKyc));
    assert!(w.rail.made().is_empty());
    w.kyc
        .approve(&receiver_id, None, &who())
        .await
        .expect("approve");
    w.clock.advance(w.engine.config().kyc_recheck);
    w.drive().await;
    assert_eq!(w.state("t1"), Some(PayoutState::Completed));
    assert_eq!(
        w.platform.moves("t1"),
        ["info_needed", "info_updated", "funds_sent"]
    );
    assert_eq!(w.rail.made().len(), 1);
}

#[tokio::test]
async fn bad_amounts_and_unpayable_receivers_are_rejected_without_a_payout() {
    let w = world();
    let receiver = w.receiver("1", true).await;
    let refused = w.receiver("2", true).await;
    w.kyc
        .reject(
            &CustomerId::parse(&refused).expect("id"),
            "sanctions list",
            None,
            &who(),
        )
        .await
        .expect("reject");

    let mut short = w.funded("short", &receiver, w.now());
    short.amount_in = Some(usdc("90"));
    w.platform.insert(short);
    w.funded("stranger", "no-such-customer", w.now());
    w.funded("refused", &refused, w.now());
    let mut nobody = w.funded("nobody", &receiver, w.now());
    nobody.receiver_id = None;
    w.platform.insert(nobody);

    w.engine.poll().await.expect("poll");
    w.drive().await;

    for (tx, why) in [
        ("short", "received 90"),
        ("stranger", "not a customer of this anchor"),
        ("refused", "KYC was rejected"),
        ("nobody", "names no receiver"),
    ] {
        let p = w.engine.get(&id(tx)).await.expect("payout");
        assert_eq!(p.state(), PayoutState::Rejected, "{tx}");
        assert!(
            p.reason().unwrap_or("").contains(why),
            "{tx}: {:?}",
            p.reason()
        );
        assert_eq!(w.platform.moves(tx), ["error"], "{tx}");
        let at_ap = w.platform.tx(tx);
        assert_eq!(at_ap.status, TransactionStatus::Error);
        assert_eq!(at_ap.message.as_deref(), p.reason(), "the AP is told why");
    }
    assert!(w.rail.made().is_empty());
}

#[tokio::test]
async fn a_quote_pays_its_buy_amount_and_serves_one_transaction() {
    let w = world();
    let receiver = w.receiver("1", true).await;
    let mut req = request(QuoteKind::Firm, Requested::Sell(d("100")));
    req.buy_delivery_method = Some("PIX".into());
    let quote = w.quotes.rate(req).await.expect("quote");
    let quote_id = quote.id.clone().expect("firm").as_str().to_owned();

    for tx in ["first", "second"] {
        let mut t = w.funded(tx, &receiver, w.now());
        t.quote_id = Some(quote_id.clone());
        t.amount_expected = None;
        t.amount_in = Some(usdc(&quote.priced.sell_amount.to_string()));
        w.platform.insert(t);
        w.engine.poll().await.expect("poll");
        w.drive().await;
        w.clock.advance(Duration::seconds(1));
    }

    assert_eq!(w.state("first"), Some(PayoutState::Completed));
    let made = w.rail.made();
    assert_eq!(made.len(), 1);
    assert_eq!(made[0].amount, quote.priced.buy_amount);
    assert_eq!(made[0].asset, "iso4217:BRL");
    assert_eq!(made[0].delivery_method.as_deref(), Some("PIX"));

    let second = w.engine.get(&id("second")).await.expect("payout");
    assert_eq!(second.state(), PayoutState::Rejected);
    assert!(
        second
            .reason()
            .unwrap_or("")
            .contains("already used by another transaction")
    );
}

#[tokio::test]
async fn a_payout_failed_at_the_bank_is_retried_under_a_new_key() {
    let w = world();
    let receiver = w.receiver("1", true).await;
    w.funded("t1", &receiver, w.now());
    w.rail
        .faults
        .lock()
        .expect("lock")
        .push_back(RailFault::FailAtBank);
    w.engine.poll().await.expect("poll");
    w.drive().await;

    let p = w.engine.get(&id("t1")).await.expect("payout");
    assert_eq!(p.state(), PayoutState::Failed);
    assert!(p.reason().unwrap_or("").contains("invalid account"));
    assert_eq!(w.platform.moves("t1"), ["error"]);

    // The same key would fail again: a new key only when asked for.
    assert!(matches!(
        w.engine.retry(&id("t1"), RetryMode::SameKey, &who()).await,
        Err(EngineError::BadRequest(_))
    ));
    let retried = w
        .engine
        .retry(&id("t1"), RetryMode::NewAttempt, &who())
        .await
        .expect("retry");
    assert_eq!(
        (retried.state(), retried.attempt),
        (PayoutState::Recovering, 2)
    );
    w.drive().await;

    assert_eq!(w.state("t1"), Some(PayoutState::Completed));
    assert_eq!(w.platform.moves("t1"), ["error", "recover", "funds_sent"]);
    let keys: Vec<String> = w
        .rail
        .made()
        .into_iter()
        .map(|o| o.idempotency_key)
        .collect();
    assert_eq!(keys, ["t1", "t1:attempt-2"]);
    assert!(matches!(
        w.engine
            .retry(&id("t1"), RetryMode::NewAttempt, &who())
            .await,
        Err(EngineError::Ledger(LedgerError::WrongState(
            PayoutState::Completed
        )))
    ));
}

#[tokio::test]
async fn a_refused_payout_is_reported_to_the_ap_and_never_made() {
    let w = world();
    let receiver = w.receiver("1", true).await;
    w.funded("t1", &receiver, w.now());
    w.rail
        .faults
        .lock()
        .expect("lock")
        .push_back(RailFault::Refuse);
    w.engine.poll().await.expect("poll");
    w.drive().await;

    assert_eq!(w.state("t1"), Some(PayoutState::Failed));
    assert!(w.rail.made().is_empty());
    assert_eq!(w.platform.tx("t1").status, TransactionStatus::Error);
}

#[tokio::test]
async fn a_payout_awaiting_the_receivers_info_is_refunded_through_error_and_recovery() {
    // The AP takes notify_refund_sent only from pending_receiver (the
    // platform contract holds the fake to it).
    let w = world();
    let receiver = w.receiver("1", false).await;
    w.funded("t1", &receiver, w.now());
    w.engine.poll().await.expect("poll");
    w.drive().await;
    assert_eq!(w.state("t1"), Some(PayoutState::AwaitingKyc));
    assert_eq!(
        w.platform.tx("t1").status,
        TransactionStatus::PendingCustomerInfoUpdate
    );
    w.engine
        .refund(&id("t1"), "stellar-hash-2", &who())
        .await
        .expect("refund");
    w.drive().await;
    assert_eq!(w.state("t1"), Some(PayoutState::Refunded));
    assert_eq!(
        w.platform.moves("t1"),
        ["info_needed", "error", "recover", "refund_sent"]
    );
    assert_eq!(w.platform.tx("t1").status, TransactionStatus::Refunded);
    assert!(w.rail.made().is_empty());
}

#[tokio::test]
async fn a_rejected_transaction_is_refunded_with_the_operators_reference() {
    let w = world();
    let receiver = w.receiver("1", true).await;
    let mut short = w.funded("t1", &receiver, w.now());
    short.amount_in = Some(usdc("90"));
    w.platform.insert(short);
    w.engine.poll().await.expect("poll");
    w.drive().await;
    assert_eq!(w.state("t1"), Some(PayoutState::Rejected));

    assert!(matches!(
        w.engine.refund(&id("t1"), "   ", &who()).await,
        Err(EngineError::BadRequest(_))
    ));
    let p = w
        .engine
        .refund(&id("t1"), "stellar-hash-1", &who())
        .await
        .expect("refund");
    assert_eq!(p.state(), PayoutState::Refunding);
    w.drive().await;

    assert_eq!(w.state("t1"), Some(PayoutState::Refunded));
    assert_eq!(w.platform.moves("t1"), ["error", "recover", "refund_sent"]);
    assert_eq!(w.platform.tx("t1").status, TransactionStatus::Refunded);
    let applied = w.platform.applied.lock().expect("lock").clone();
    let Some(TransactionChange::RefundSent {
        reference, amount, ..
    }) = applied.last().map(|u| u.change.clone())
    else {
        panic!("the last move is the refund");
    };
    assert_eq!(reference, "stellar-hash-1");
    // The refund is in the audit trail: who, which payout, the reference.
    let entries = w.audit.all();
    let refund = entries
        .iter()
        .find(|e| e.action == AuditAction::PayoutRefunded)
        .expect("the refund is audited");
    assert_eq!(refund.actor, who());
    assert_eq!(refund.transaction, Some(id("t1")));
    assert_eq!(
        refund.customer.as_ref().map(|c| c.as_str()),
        Some(receiver.as_str())
    );
    assert!(
        refund.detail.contains("reference=stellar-hash-1"),
        "{}",
        refund.detail
    );
    assert!(refund.detail.contains("from=rejected"), "{}", refund.detail);
    assert_eq!(
        entries.len(),
        1,
        "a refused refund is not recorded: {entries:?}"
    );
    assert_eq!(amount, usdc("90"), "everything received goes back");
    assert!(w.rail.made().is_empty());
    assert!(matches!(
        w.engine.refund(&id("t1"), "again", &who()).await,
        Err(EngineError::Ledger(LedgerError::WrongState(
            PayoutState::Refunded
        )))
    ));
}

#[tokio::test]
async fn a_pending_payout_is_followed_and_the_ap_told_once_that_it_is_pending() {
    let w = world();
    let receiver = w.receiver("1", true).await;
    w.funded("t1", &receiver, w.now());
    *w.rail.pending_for.lock().expect("lock") = 2;
    w.engine.poll().await.expect("poll");

    w.drive().await;
    assert_eq!(w.state("t1"), Some(PayoutState::Submitted));
    assert_eq!(w.platform.moves("t1"), ["funds_pending"]);
    assert_eq!(
        w.platform.tx("t1").status,
        TransactionStatus::PendingExternal
    );

    w.clock.advance(w.engine.config().rail_follow);
    w.drive().await;
    assert_eq!(w.state("t1"), Some(PayoutState::Submitted));
    w.clock.advance(w.engine.config().rail_follow);
    w.drive().await;

    assert_eq!(w.state("t1"), Some(PayoutState::Completed));
    assert_eq!(w.platform.moves("t1"), ["funds_pending", "funds_sent"]);
    assert_eq!(w.rail.made().len(), 1);
}

#[tokio::test]
async fn ap_3_transactions_are_asked_for_their_funds_then_paid() {
    let w = world_with(ReviewMode::Auto, |c| c.request_funds = true);
    let receiver = w.receiver("1", true).await;
    let mut t = w.funded("t1", &receiver, w.now());
    t.amount_in = None;
    t.transfer_received_at = None;
    w.platform.insert(t);

    assert_eq!(w.engine.poll().await.expect("poll"), 1);
    w.drive().await;
    assert_eq!(w.state("t1"), Some(PayoutState::AwaitingFunds));
    assert_eq!(w.platform.tx("t1").status, TransactionStatus::PendingSender);
    let applied = w.platform.applied.lock().expect("lock").clone();
    let Some(TransactionChange::RequestOnchainFunds {
        amount_in,
        destination_account,
        memo,
        ..
    }) = applied.first().map(|u| u.change.clone())
    else {
        panic!("the funds were requested");
    };
    assert_eq!(amount_in, usdc("100"));
    assert_eq!(
        destination_account.as_str(),
        "GBBD47IF6LWK7P7MDEVSCWR7DPUWV3NY3DTQEVFL4NAT4AQH3ZLLFLA5"
    );
    assert_eq!(
        memo.map(|m| (m.value().to_owned(), m.memo_type().as_str())),
        Some(("1".into(), "id")),
        "the custodian's memo"
    );

    w.clock.advance(Duration::seconds(5));
    w.platform.fund("t1", usdc("100"), w.now());
    assert_eq!(w.engine.poll().await.expect("poll"), 1);
    w.drive().await;
    assert_eq!(w.state("t1"), Some(PayoutState::Completed));
    assert_eq!(w.platform.moves("t1"), ["request_funds", "funds_sent"]);
}

pub(crate) fn event(event_id: &str, at: DateTime<Utc>) -> InboxEvent {
    InboxEvent {
        id: event_id.into(),
        kind: "transaction_status_changed".into(),
        occurred_at: at,
        received_at: at,
        transaction_id: None,
        sighting: None,
        customer_id: None,
        body: "{}".into(),
    }
}

#[tokio::test]
async fn events_are_kept_once_and_only_hint_at_what_to_read() {
    let w = world();
    let inbox = EventInbox::new(w.ledger.clone());
    let receiver = w.receiver("1", true).await;
    w.funded("t1", &receiver, w.now());
    let funded = InboxEvent {
        transaction_id: Some(id("t1")),
        sighting: Some(Sighting::Funded),
        ..event("e1", w.now())
    };

    assert!(inbox.accept(&funded).await.expect("accept"));
    assert!(!inbox.accept(&funded).await.expect("accept"), "a duplicate");
    assert_eq!(inbox.depth().await.expect("depth"), 1);
    assert_eq!(w.engine.apply_events().await.expect("apply"), 1);
    assert_eq!(inbox.depth().await.expect("depth"), 0);
    w.drive().await;
    assert_eq!(w.state("t1"), Some(PayoutState::Completed));

    // A stale event (an old "unfunded" one arriving late) moves nothing back.
    let stale = InboxEvent {
        transaction_id: Some(id("t1")),
        sighting: Some(Sighting::Unfunded),
        ..event("e0", w.now() - Duration::minutes(1))
    };
    inbox.accept(&stale).await.expect("accept");
    w.engine.apply_events().await.expect("apply");
    w.drive().await;
    assert_eq!(w.state("t1"), Some(PayoutState::Completed));
    assert_eq!(w.rail.made().len(), 1);
}

#[tokio::test]
async fn a_customer_updated_event_wakes_the_payouts_awaiting_that_receiver() {
    let w = world();
    let inbox = EventInbox::new(w.ledger.clone());
    let receiver = w.receiver("1", false).await;
    w.funded("t1", &receiver, w.now());
    w.engine.poll().await.expect("poll");
    w.drive().await;
    assert_eq!(w.state("t1"), Some(PayoutState::AwaitingKyc));

    w.kyc
        .put(CustomerUpdate {
            id: Some(CustomerId::parse(&receiver).expect("id")),
            text: vec![
                ("bank_account_number".into(), "0001234567".into()),
                ("bank_account_type".into(), "checking".into()),
                ("bank_number".into(), "341".into()),
            ],
            ..Default::default()
        })
        .await
        .expect("put");
    let updated = InboxEvent {
        kind: "customer_updated".into(),
        customer_id: Some(receiver.clone()),
        ..event("e1", w.now())
    };
    inbox.accept(&updated).await.expect("accept");
    w.engine.apply_events().await.expect("apply");
    // No clock advance: the event, not the recheck timer, made it due.
    w.drive().await;
    assert_eq!(w.state("t1"), Some(PayoutState::Completed));
}

#[tokio::test]
async fn a_transaction_the_ap_finished_before_mooring_saw_it_is_closed() {
    let w = world();
    let receiver = w.receiver("1", true).await;
    let mut done = w.funded("t1", &receiver, w.now());
    done.status = TransactionStatus::Completed;
    w.platform.insert(done);
    w.funded("t2", &receiver, w.now());
    w.engine.poll().await.expect("poll");
    assert_eq!(
        w.state("t1"),
        Some(PayoutState::New),
        "a sighting alone never ends an entry: its step reads the AP"
    );

    // Refunded at the AP by hand between the sighting and the step.
    let mut gone = w.platform.tx("t2");
    gone.status = TransactionStatus::Refunded;
    w.platform.insert(gone);
    w.drive().await;
    let p = w.engine.get(&id("t2")).await.expect("payout");
    assert_eq!(p.state(), PayoutState::Closed);
    assert!(p.reason().unwrap_or("").contains("refunded"));
    let t1 = w.engine.get(&id("t1")).await.expect("payout");
    assert_eq!(t1.state(), PayoutState::Closed);
    assert!(t1.reason().unwrap_or("").contains("completed"));
    assert!(w.rail.made().is_empty());
    assert!(w.platform.applied.lock().expect("lock").is_empty());
}

#[tokio::test]
async fn the_back_office_lists_and_counts_by_state() {
    let w = world();
    let receiver = w.receiver("1", true).await;
    w.funded("paid", &receiver, w.now());
    let mut short = w.funded("short", &receiver, w.now());
    short.amount_in = Some(usdc("1"));
    w.platform.insert(short);
    w.engine.poll().await.expect("poll");
    w.drive().await;

    let counts = w.engine.counts().await.expect("counts");
    assert!(counts.contains(&(PayoutState::Completed, 1)));
    assert!(counts.contains(&(PayoutState::Rejected, 1)));
    let rejected = w
        .engine
        .list(&[PayoutState::Rejected], 10)
        .await
        .expect("list");
    assert_eq!(rejected.len(), 1);
    assert_eq!(rejected[0].transaction_id, id("short"));
    assert!(matches!(
        w.engine.get(&id("unknown")).await,
        Err(EngineError::Ledger(LedgerError::NotFound))
    ));
}
