//! The payment engine against a hostile world, one defect at a time: slow
//! peers and lapsed claims, strict providers, KYC that changes after a
//! payout is submitted, an incomplete KYC gate, and sightings that lie.
//! Each test names the defect it would have caught.

use std::sync::Arc;

use chrono::Duration;
use mooring_domain::customer::{CustomerId, ReviewMode};
use mooring_domain::payout::{PayoutOrder, PayoutState, Sighting, Stage};
use mooring_domain::transaction::{TransactionChange, TransactionStatus};
use mooring_domain::{AssetCatalog, AssetId, AssetInfo, Memo, Sep31Types, StellarAccount};
use mooring_ports::{Clock, InboxEvent, LedgerError, PayoutLedger, PayoutRail};
use mooring_usecases::{CustomerUpdate, EngineError, EventInbox, RetryMode, Settlement};

use crate::fakes::{ApFault, RailFault, TestClock, TokioClock, who};
use crate::payout::{
    ACCOUNT, SENDER, World, event, funded_tx, id, usdc, world, world_on, world_with,
};
use crate::quotes::USDC;

fn fault(w: &World, faults: &[RailFault]) {
    w.rail.faults.lock().expect("lock").extend(faults);
}

/// A customer registered by a PUT with these fields and this type.
async fn customer(
    w: &World,
    memo: &str,
    customer_type: Option<&str>,
    fields: &[(&str, &str)],
) -> String {
    let view = w
        .kyc
        .put(CustomerUpdate {
            account: Some(StellarAccount::parse(ACCOUNT).expect("account")),
            memo: Some(Memo::parse(memo, None).expect("memo")),
            customer_type: customer_type.map(str::to_owned),
            text: fields
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            ..Default::default()
        })
        .await
        .expect("put customer");
    view.id.expect("an id").as_str().to_owned()
}

fn all_equal(orders: &[PayoutOrder]) -> bool {
    orders.windows(2).all(|w| w[0] == w[1])
}

// 1. A step can outlive its claim.

/// Drives `engine` against the ledger every 100 ms of tokio's (paused)
/// clock until `t1` is completed, or `limit` passes.
async fn keep_working(
    w: &World,
    engine: &mooring_usecases::PayoutEngine,
    limit: std::time::Duration,
) {
    let until = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < until && w.state("t1") != Some(PayoutState::Completed) {
        for work in engine.claim(8).await.expect("claim") {
            let _ = engine.run(work).await;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test(start_paused = true)]
async fn a_rail_call_longer_than_the_lease_is_cut_off_before_another_replica_may_call() {
    let clock: Arc<dyn Clock> = Arc::new(TokioClock::new(Duration::zero()));
    let w = world_on(ReviewMode::Auto, Some(clock.clone()), |c| {
        c.lease = Duration::milliseconds(3400);
    });
    let receiver = w.receiver("1", true).await;
    w.platform.insert(funded_tx("t1", &receiver, clock.now()));
    w.engine.poll().await.expect("poll");
    // The provider takes 5 s to answer the first call (the payout is made
    // when it arrives); the lease is 3.4 s.
    fault(&w, &[RailFault::Slow(5000)]);
    let b = w.replica("replica-b");
    tokio::join!(
        keep_working(&w, &w.engine, std::time::Duration::from_secs(1)),
        keep_working(&w, &b, std::time::Duration::from_secs(30)),
    );
    assert_eq!(w.state("t1"), Some(PayoutState::Completed));
    assert_eq!(
        *w.rail.most_in_flight.lock().expect("lock"),
        1,
        "never two calls under one key at once"
    );
    assert_eq!(w.rail.made().len(), 1);
    assert!(
        w.rail.calls().len() >= 2,
        "the slow call was cut off and sent again"
    );
    assert!(all_equal(&w.rail.calls()));
}

#[tokio::test(start_paused = true)]
async fn an_ap_read_that_hangs_past_the_lease_cannot_lead_to_a_rail_call_under_a_lapsed_claim() {
    // The review's reproduction: AP reads that hang past their timeout,
    // the step running past payout.lease_ms, then the rail called.
    let clock: Arc<dyn Clock> = Arc::new(TokioClock::new(Duration::zero()));
    let w = world_on(ReviewMode::Auto, Some(clock.clone()), |c| {
        c.lease = Duration::milliseconds(3400);
    });
    let receiver = w.receiver("1", true).await;
    w.platform.insert(funded_tx("t1", &receiver, clock.now()));
    w.engine.poll().await.expect("poll");
    w.platform
        .read_hangs
        .lock()
        .expect("lock")
        .extend([4000, 4000, 4000, 4000]);
    fault(&w, &[RailFault::Slow(2000)]);
    let b = w.replica("replica-b");
    tokio::join!(
        keep_working(&w, &w.engine, std::time::Duration::from_secs(30)),
        keep_working(&w, &b, std::time::Duration::from_secs(30)),
    );
    assert_eq!(w.state("t1"), Some(PayoutState::Completed));
    assert_eq!(*w.rail.most_in_flight.lock().expect("lock"), 1);
    assert_eq!(w.rail.made().len(), 1);
}

/// An entry submitted with a frozen order, as the checks leave it.
async fn submitted(w: &World) -> PayoutOrder {
    let receiver = w.receiver("1", true).await;
    w.funded("t1", &receiver, w.now());
    w.engine.poll().await.expect("poll");
    fault(w, &[RailFault::Down]);
    w.drive().await;
    let p = w.engine.get(&id("t1")).await.expect("entry");
    assert_eq!(p.state(), PayoutState::Submitted);
    p.order().cloned().expect("frozen")
}

#[tokio::test]
async fn the_claim_is_renewed_before_the_rail_call_and_a_lost_one_makes_no_call() {
    let w = world();
    submitted(&w).await;
    let calls = w.rail.calls().len();
    w.clock.advance(Duration::minutes(1));
    let stale = w.engine.claim(1).await.expect("claim");
    assert_eq!(stale.len(), 1);
    // Replica A stalls; its lease lapses by the database's clock and B
    // takes the entry over (a larger token).
    w.clock
        .advance(w.engine.config().lease + Duration::seconds(1));
    let b = w.replica("replica-b");
    let taken = b.claim(1).await.expect("claim");
    assert_eq!(taken.len(), 1);

    let late = w.engine.run(stale.into_iter().next().expect("stale")).await;
    assert!(matches!(
        late,
        Err(EngineError::Ledger(LedgerError::LostClaim))
    ));
    assert_eq!(w.rail.calls().len(), calls, "no call under the lost claim");

    b.run(taken.into_iter().next().expect("taken"))
        .await
        .expect("run");
    assert_eq!(w.state("t1"), Some(PayoutState::Completed));
    assert_eq!(w.rail.made().len(), 1);
}

/// The save that submits an entry sets its lease a moment before the rail
/// call: that is the renewal. A save that took longer than a thousandth of
/// the lease (or a claim, above) is followed by a renewal of its own.
#[tokio::test(start_paused = true)]
async fn the_rail_call_right_after_the_submitting_save_needs_no_renewal_and_a_late_one_renews() {
    for (save_ms, renewals) in [(0, 0), (100, 1)] {
        let clock: Arc<dyn Clock> = Arc::new(TokioClock::new(Duration::zero()));
        let w = world_on(ReviewMode::Auto, Some(clock.clone()), |_| {});
        assert_eq!(w.engine.config().lease, Duration::seconds(60));
        *w.ledger.save_takes_ms.lock().expect("lock") = save_ms;
        let receiver = w.receiver("1", true).await;
        w.platform.insert(funded_tx("t1", &receiver, clock.now()));
        w.engine.poll().await.expect("poll");
        w.drive().await;
        assert_eq!(w.state("t1"), Some(PayoutState::Completed));
        assert_eq!(w.rail.made().len(), 1);
        assert_eq!(
            *w.ledger.renewals.lock().expect("lock"),
            renewals,
            "a save of {save_ms} ms before the rail call"
        );
    }
}

#[tokio::test]
async fn leases_are_judged_by_the_databases_clock_not_a_replicas() {
    let w = world();
    let receiver = w.receiver("1", true).await;
    w.funded("t1", &receiver, w.now());
    w.engine.poll().await.expect("poll");
    let held = w.engine.claim(1).await.expect("claim");
    assert_eq!(held.len(), 1);
    // Replica B's clock runs an hour fast: to it, A's lease ended long ago.
    let fast = Arc::new(TestClock::default());
    fast.advance(Duration::hours(1));
    let b = w.replica_on("replica-b", fast);
    assert!(
        b.claim(1).await.expect("claim").is_empty(),
        "the database says A's lease holds"
    );
    w.engine
        .run(held.into_iter().next().expect("held"))
        .await
        .expect("run");
    assert_eq!(w.state("t1"), Some(PayoutState::Completed));
}

#[tokio::test]
async fn a_replica_that_dies_holding_a_claim_is_taken_over_when_the_lease_lapses() {
    let w = world();
    let receiver = w.receiver("1", true).await;
    w.funded("t1", &receiver, w.now());
    w.engine.poll().await.expect("poll");
    // A claims and dies before its step ends: the claim is not released.
    drop(w.engine.claim(1).await.expect("claim"));
    let b = w.replica("replica-b");
    assert!(b.claim(1).await.expect("claim").is_empty());
    w.clock
        .advance(w.engine.config().lease + Duration::milliseconds(1));
    let taken = b.claim(1).await.expect("claim");
    assert_eq!(taken.len(), 1);
    b.run(taken.into_iter().next().expect("taken"))
        .await
        .expect("run");
    assert_eq!(w.state("t1"), Some(PayoutState::Completed));
    assert_eq!(w.rail.made().len(), 1);
}

// 2. Strict providers.

#[tokio::test]
async fn a_409_while_the_key_is_processed_is_unknown_and_asked_again_with_the_same_body() {
    let w = world();
    let receiver = w.receiver("1", true).await;
    w.funded("t1", &receiver, w.now());
    fault(&w, &[RailFault::Conflict]);
    w.engine.poll().await.expect("poll");
    w.drive().await;
    assert_eq!(w.state("t1"), Some(PayoutState::Submitted));
    assert!(
        w.platform.moves("t1").is_empty(),
        "never an error to the AP"
    );
    w.clock.advance(Duration::minutes(1));
    w.drive().await;
    assert_eq!(w.state("t1"), Some(PayoutState::Completed));
    assert_eq!(w.rail.made().len(), 1);
    assert_eq!(w.rail.calls().len(), 2);
    assert!(all_equal(&w.rail.calls()));
    assert_eq!(w.platform.moves("t1"), ["funds_sent"]);
}

#[tokio::test]
async fn refused_credentials_hold_the_payout_for_a_person_and_a_retry_keeps_the_key() {
    let w = world();
    let receiver = w.receiver("1", true).await;
    w.funded("t1", &receiver, w.now());
    fault(&w, &[RailFault::Unauthorised]);
    w.engine.poll().await.expect("poll");
    w.drive().await;
    let p = w.engine.get(&id("t1")).await.expect("entry");
    assert_eq!(p.state(), PayoutState::Held);
    assert!(p.reason().unwrap_or("").contains("401"));
    assert!(
        w.platform.moves("t1").is_empty(),
        "never failed towards the AP"
    );
    let held = w.engine.list(&[PayoutState::Held], 10).await.expect("list");
    assert_eq!(held.len(), 1);
    // A payout may exist: no refund, and no new key without the rail's word.
    assert!(matches!(
        w.engine.refund(&id("t1"), "hash", &who()).await,
        Err(EngineError::BadRequest(_))
    ));
    assert!(matches!(
        w.engine
            .retry(&id("t1"), RetryMode::NewAttempt, &who())
            .await,
        Err(EngineError::BadRequest(_))
    ));
    // The credentials are fixed; the same key and body go again.
    let retried = w
        .engine
        .retry(&id("t1"), RetryMode::SameKey, &who())
        .await
        .expect("retry");
    assert_eq!(retried.state(), PayoutState::Submitted);
    w.drive().await;
    assert_eq!(w.state("t1"), Some(PayoutState::Completed));
    let calls = w.rail.calls();
    assert_eq!(calls.len(), 2);
    assert!(all_equal(&calls));
    assert_eq!(calls[0].idempotency_key, "t1");
}

#[tokio::test]
async fn a_key_used_with_other_parameters_is_held_not_failed() {
    let w = world();
    let receiver = w.receiver("1", true).await;
    w.funded("t1", &receiver, w.now());
    // Something else already used the key "t1" at the provider.
    let other = PayoutOrder {
        idempotency_key: "t1".into(),
        transaction_id: "t1".into(),
        amount: crate::quotes::d("5"),
        asset: USDC.into(),
        delivery_method: None,
        receiver_id: receiver.clone(),
        receiver_fields: vec![],
    };
    w.rail.submit(&other).await.expect("made");
    w.engine.poll().await.expect("poll");
    w.drive().await;
    let p = w.engine.get(&id("t1")).await.expect("entry");
    assert_eq!(p.state(), PayoutState::Held);
    assert!(p.reason().unwrap_or("").contains("422"));
    assert!(w.platform.moves("t1").is_empty());
    assert_eq!(w.rail.made().len(), 1, "only the other payout");
}

#[tokio::test]
async fn a_payout_unknown_for_longer_than_the_provider_keeps_keys_is_held() {
    let w = world_with(ReviewMode::Auto, |c| c.key_retention = Duration::hours(1));
    let receiver = w.receiver("1", true).await;
    w.funded("t1", &receiver, w.now());
    fault(&w, &[RailFault::Down, RailFault::Down]);
    w.engine.poll().await.expect("poll");
    w.drive().await;
    w.clock.advance(Duration::minutes(10));
    w.drive().await;
    assert_eq!(w.state("t1"), Some(PayoutState::Submitted));
    let calls = w.rail.calls().len();
    assert_eq!(calls, 2);
    w.clock.advance(Duration::hours(2));
    w.drive().await;
    let p = w.engine.get(&id("t1")).await.expect("entry");
    assert_eq!(p.state(), PayoutState::Held);
    assert!(p.reason().unwrap_or("").contains("keeps idempotency keys"));
    assert_eq!(
        w.rail.calls().len(),
        calls,
        "no call under a key the provider may have forgotten"
    );
    assert!(w.platform.moves("t1").is_empty());
}

/// Held past the key retention with no payout id known: nothing the rail
/// says can settle it, so the operator settles it with the provider's word.
async fn held_past_retention(w: &World, faults: &[RailFault]) {
    let receiver = w.receiver("1", true).await;
    w.funded("t1", &receiver, w.now());
    fault(w, faults);
    w.engine.poll().await.expect("poll");
    w.drive().await;
    w.clock.advance(Duration::hours(2));
    w.drive().await;
    let p = w.engine.get(&id("t1")).await.expect("entry");
    assert_eq!((p.state(), p.payout_id()), (PayoutState::Held, None));
    // No new key without the rail's (or the provider's) word.
    assert!(matches!(
        w.engine
            .retry(&id("t1"), RetryMode::NewAttempt, &who())
            .await,
        Err(EngineError::BadRequest(_))
    ));
}

#[tokio::test]
async fn a_held_payout_the_provider_never_made_is_settled_as_not_paid_and_paid_under_a_new_key() {
    let w = world_with(ReviewMode::Auto, |c| c.key_retention = Duration::hours(1));
    held_past_retention(&w, &[RailFault::Down]).await;
    let settled = w
        .engine
        .settle(&id("t1"), Settlement::NotPaid, &who())
        .await
        .expect("settled");
    assert_eq!(settled.state(), PayoutState::RailFailed);
    w.drive().await;
    assert_eq!(w.state("t1"), Some(PayoutState::Failed));
    assert_eq!(w.platform.tx("t1").status, TransactionStatus::Error);
    // The failure is now known: a new key may pay.
    w.engine
        .retry(&id("t1"), RetryMode::NewAttempt, &who())
        .await
        .expect("a new attempt");
    w.drive().await;
    assert_eq!(w.state("t1"), Some(PayoutState::Completed));
    let made = w.rail.made();
    assert_eq!(made.len(), 1);
    assert_eq!(made[0].idempotency_key, "t1:attempt-2");
}

#[tokio::test]
async fn a_held_payout_the_provider_made_is_settled_as_paid_and_followed_by_its_id() {
    let w = world_with(ReviewMode::Auto, |c| c.key_retention = Duration::hours(1));
    held_past_retention(&w, &[RailFault::AnswerLost]).await;
    assert_eq!(w.rail.made().len(), 1, "the lost answer's payout exists");
    // Settling needs a payout id, and only a held payout is settled.
    assert!(matches!(
        w.engine
            .settle(
                &id("t1"),
                Settlement::Paid {
                    payout_id: " ".into()
                },
                &who()
            )
            .await,
        Err(EngineError::BadRequest(_))
    ));
    let settled = w
        .engine
        .settle(
            &id("t1"),
            Settlement::Paid {
                payout_id: "pay-1".into(),
            },
            &who(),
        )
        .await
        .expect("settled");
    assert_eq!(settled.state(), PayoutState::Submitted);
    let calls = w.rail.calls().len();
    // Long past the retention: a payout with an id is asked about by it.
    w.clock.advance(Duration::hours(5));
    w.drive().await;
    assert_eq!(w.state("t1"), Some(PayoutState::Completed));
    assert_eq!(w.rail.calls().len(), calls, "no submit: only its status");
    assert_eq!(w.rail.made().len(), 1);
    let tx = w.platform.tx("t1");
    assert_eq!(tx.external_transaction_id.as_deref(), Some("pay-1"));
    assert!(matches!(
        w.engine
            .settle(&id("t1"), Settlement::NotPaid, &who())
            .await,
        Err(EngineError::Ledger(LedgerError::WrongState(
            PayoutState::Completed
        )))
    ));
}

#[tokio::test]
async fn settling_by_hand_is_only_for_a_held_payout_the_rail_gave_no_id_and_a_paid_id_must_exist() {
    let w = world_with(ReviewMode::Auto, |c| c.key_retention = Duration::hours(1));
    held_past_retention(&w, &[RailFault::Down]).await;
    // An id the rail does not know is refused, and nothing moves.
    assert!(matches!(
        w.engine
            .settle(
                &id("t1"),
                Settlement::Paid {
                    payout_id: "pay-404".into()
                },
                &who()
            )
            .await,
        Err(EngineError::BadRequest(_))
    ));
    assert_eq!(w.state("t1"), Some(PayoutState::Held));
    // A held payout the rail gave an id is followed by it, never settled:
    // "not paid" would tell the AP error while that payout may be paid.
    let p = w.engine.get(&id("t1")).await.expect("entry");
    let at_rail = p.at_rail().cloned().expect("at the rail");
    let held = Stage::Held {
        at_rail: mooring_domain::payout::AtRail {
            payout_id: Some("pay-7".into()),
            ..at_rail
        },
        reason: "the provider refused the credentials (401)".into(),
    };
    w.ledger.put(p.restore(held));
    for settlement in [
        Settlement::NotPaid,
        Settlement::Paid {
            payout_id: "pay-8".into(),
        },
    ] {
        assert!(matches!(
            w.engine.settle(&id("t1"), settlement, &who()).await,
            Err(EngineError::BadRequest(m)) if m.contains("pay-7")
        ));
    }
    let p = w.engine.get(&id("t1")).await.expect("entry");
    assert_eq!(
        (p.state(), p.payout_id()),
        (PayoutState::Held, Some("pay-7"))
    );
}

#[tokio::test]
async fn a_refusal_fails_the_payout_and_the_ap_gets_a_fixed_message_not_the_providers() {
    let w = world();
    let receiver = w.receiver("1", true).await;
    w.funded("t1", &receiver, w.now());
    fault(&w, &[RailFault::Refuse]);
    w.engine.poll().await.expect("poll");
    w.drive().await;
    assert_eq!(w.state("t1"), Some(PayoutState::Failed));
    let message = w.platform.tx("t1").message.unwrap_or_default();
    assert!(message.contains("reference t1"), "{message}");
    assert!(!message.contains("account is closed"), "{message}");
}

#[tokio::test]
async fn a_new_attempt_needs_the_rails_word_that_the_payout_failed() {
    let w = world();
    let receiver = w.receiver("1", true).await;
    w.funded("t1", &receiver, w.now());
    w.engine.poll().await.expect("poll");
    w.drive().await;
    assert_eq!(w.state("t1"), Some(PayoutState::Completed));
    // An entry that says failed while the rail paid (pay-1 completed).
    let p = w.engine.get(&id("t1")).await.expect("entry");
    let stage = Stage::Failed {
        payout_id: p.payout_id().map(str::to_owned),
        reason: "recorded wrongly".into(),
    };
    w.ledger.put(p.restore(stage));
    match w
        .engine
        .retry(&id("t1"), RetryMode::NewAttempt, &who())
        .await
    {
        Err(EngineError::BadRequest(m)) => assert!(m.contains("completed"), "{m}"),
        other => panic!("{other:?}"),
    }
    // Nor are the sender's funds refunded while the rail says it paid.
    assert!(matches!(
        w.engine.refund(&id("t1"), "stellar-hash", &who()).await,
        Err(EngineError::BadRequest(_))
    ));
    assert_eq!(w.rail.made().len(), 1);
}

#[tokio::test]
async fn an_entry_an_earlier_version_left_awaiting_kyc_without_a_sender_is_checked_again() {
    let w = world();
    let receiver = w.receiver("1", true).await;
    w.funded("t1", &receiver, w.now());
    let mut p =
        mooring_domain::payout::Payout::new(id("t1"), Stage::AwaitingKyc { asked: false }, w.now());
    p.receiver_id = Some(receiver);
    p.amount_in = Some(usdc("100"));
    w.ledger.put(p);
    w.drive().await;
    assert_eq!(
        w.state("t1"),
        Some(PayoutState::Completed),
        "not rejected for naming no sender: the AP's transaction names one"
    );
}

// 3. The order is frozen.

#[tokio::test]
async fn a_kyc_change_after_submission_never_changes_the_payout_in_flight() {
    let w = world();
    let frozen = submitted(&w).await;
    let receiver = w
        .engine
        .get(&id("t1"))
        .await
        .expect("entry")
        .receiver_id
        .expect("receiver");
    w.kyc
        .put(CustomerUpdate {
            id: Some(CustomerId::parse(&receiver).expect("id")),
            text: vec![("bank_account_number".into(), "5555555555".into())],
            ..Default::default()
        })
        .await
        .expect("put");
    w.clock.advance(Duration::minutes(1));
    w.drive().await;
    assert_eq!(w.state("t1"), Some(PayoutState::Completed));
    let calls = w.rail.calls();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[1], frozen, "the retry sent the frozen order");
    assert!(
        w.rail.made()[0]
            .receiver_fields
            .contains(&("bank_account_number".into(), "0001234567".into()))
    );
    let done = w.engine.get(&id("t1")).await.expect("entry");
    assert_eq!(
        done.order(),
        None,
        "only amounts, the key and the rail's id stay"
    );
    assert_eq!(done.payout_id(), Some("pay-1"));
    assert_eq!(done.amount_out, Some(usdc("99")));
}

#[tokio::test]
async fn a_receiver_deleted_mid_payout_is_still_paid_from_the_frozen_order() {
    let w = world();
    let frozen = submitted(&w).await;
    let receiver = w
        .engine
        .get(&id("t1"))
        .await
        .expect("entry")
        .receiver_id
        .expect("receiver");
    w.kyc
        .delete(&CustomerId::parse(&receiver).expect("id"), &who())
        .await
        .expect("delete");
    w.clock.advance(Duration::minutes(1));
    w.drive().await;
    assert_eq!(w.state("t1"), Some(PayoutState::Completed));
    assert_eq!(w.rail.made(), [frozen]);
}

// 4. The KYC gate.

#[tokio::test]
async fn a_rejected_sender_is_never_paid_out() {
    let w = world();
    let receiver = w.receiver("1", true).await;
    w.kyc
        .reject(
            &CustomerId::parse(SENDER).expect("id"),
            "sanctions screening",
            None,
            &who(),
        )
        .await
        .expect("reject");
    w.funded("t1", &receiver, w.now());
    w.engine.poll().await.expect("poll");
    w.drive().await;
    let p = w.engine.get(&id("t1")).await.expect("entry");
    assert_eq!(p.state(), PayoutState::Rejected);
    assert!(p.reason().unwrap_or("").contains("sender"));
    assert!(w.rail.calls().is_empty());
    assert_eq!(w.platform.tx("t1").status, TransactionStatus::Error);
}

#[tokio::test]
async fn a_receiver_without_a_type_is_assessed_as_a_receiver_not_accepted_on_a_name() {
    let w = world();
    let receiver = customer(
        &w,
        "2",
        None,
        &[
            ("first_name", "Maria"),
            ("last_name", "Silva"),
            ("email_address", "m@example.com"),
        ],
    )
    .await;
    w.funded("t1", &receiver, w.now());
    w.engine.poll().await.expect("poll");
    w.drive().await;
    assert_eq!(w.state("t1"), Some(PayoutState::AwaitingKyc));
    assert!(w.rail.calls().is_empty());
    let asked = w.platform.applied.lock().expect("lock").clone();
    assert!(matches!(
        &asked[0].change,
        TransactionChange::CustomerInfoNeeded { customer_id, customer_type }
            if *customer_id == receiver && customer_type == "sep31-receiver"
    ));
}

#[tokio::test]
async fn a_sender_missing_kyc_is_asked_for_it_by_name_and_an_event_resumes_the_payout() {
    let w = world();
    let receiver = w.receiver("1", true).await;
    let sender = customer(&w, "3", Some("sep31-sender"), &[("first_name", "Ana")]).await;
    let mut tx = funded_tx("t1", &receiver, w.now());
    tx.sender_id = Some(sender.clone());
    w.platform.insert(tx);
    w.engine.poll().await.expect("poll");
    w.drive().await;
    assert_eq!(w.state("t1"), Some(PayoutState::AwaitingKyc));
    let asked = w.platform.applied.lock().expect("lock").clone();
    assert!(matches!(
        &asked[0].change,
        TransactionChange::CustomerInfoNeeded { customer_id, customer_type }
            if *customer_id == sender && customer_type == "sep31-sender"
    ));
    w.kyc
        .put(CustomerUpdate {
            id: Some(CustomerId::parse(&sender).expect("id")),
            text: vec![
                ("last_name".into(), "Costa".into()),
                ("email_address".into(), "ana@example.com".into()),
            ],
            ..Default::default()
        })
        .await
        .expect("put");
    let inbox = EventInbox::new(w.ledger.clone());
    inbox
        .accept(&InboxEvent {
            kind: "customer_updated".into(),
            customer_id: Some(sender),
            ..event("e1", w.now())
        })
        .await
        .expect("accept");
    w.engine.apply_events().await.expect("apply");
    w.drive().await;
    assert_eq!(w.state("t1"), Some(PayoutState::Completed));
    assert_eq!(
        w.platform.moves("t1"),
        ["info_needed", "info_updated", "funds_sent"]
    );
}

#[tokio::test]
async fn the_parties_types_come_from_the_assets_file_for_the_asset() {
    // The assets file says USDC receivers are checked as sep31-sender (a
    // name and an email): a receiver with just those is paid.
    let catalog = AssetCatalog::new([AssetInfo {
        id: AssetId::parse(USDC).expect("asset"),
        significant_decimals: 2,
        sep31_sender_types: vec!["sep31-sender".into()],
        sep31_receiver_types: vec!["sep31-sender".into()],
    }]);
    let w = world_with(ReviewMode::Auto, |c| {
        c.sep31_types = Sep31Types::new("sep31-sender".into(), "sep31-receiver".into(), &catalog);
    });
    let receiver = customer(
        &w,
        "2",
        Some("sep31-receiver"),
        &[
            ("first_name", "Maria"),
            ("last_name", "Silva"),
            ("email_address", "m@example.com"),
        ],
    )
    .await;
    w.funded("t1", &receiver, w.now());
    w.engine.poll().await.expect("poll");
    w.drive().await;
    assert_eq!(w.state("t1"), Some(PayoutState::Completed));
}

// 5. Sightings that cannot lie.

#[tokio::test]
async fn a_stale_finished_sighting_only_makes_the_entry_read_the_ap_again() {
    let w = world();
    let receiver = w.receiver("1", true).await;
    let mut tx = funded_tx("t1", &receiver, w.now());
    tx.transfer_received_at = None;
    tx.amount_in = None;
    w.platform.insert(tx);
    w.ledger
        .sight(&id("t1"), Sighting::Unfunded, w.now())
        .await
        .expect("sight");
    w.drive().await;
    assert_eq!(w.state("t1"), Some(PayoutState::AwaitingFunds));
    // An event or a poll that says "finished" while the AP has it open.
    w.ledger
        .sight(&id("t1"), Sighting::Finished, w.now())
        .await
        .expect("sight");
    w.drive().await;
    assert_eq!(
        w.state("t1"),
        Some(PayoutState::AwaitingFunds),
        "the AP says it is open"
    );
    w.platform.fund("t1", usdc("100"), w.now());
    w.engine.reconcile().await.expect("reconcile");
    w.drive().await;
    assert_eq!(w.state("t1"), Some(PayoutState::Completed));
}

#[tokio::test]
async fn a_closed_entry_reopens_when_the_ap_shows_it_funded_and_open_again() {
    let w = world();
    let receiver = w.receiver("1", true).await;
    let mut tx = w.funded("t1", &receiver, w.now());
    tx.status = TransactionStatus::Error;
    w.platform.insert(tx.clone());
    w.ledger
        .sight(&id("t1"), Sighting::Finished, w.now())
        .await
        .expect("sight");
    w.drive().await;
    assert_eq!(w.state("t1"), Some(PayoutState::Closed));
    // The AP's operator recovers the transaction.
    tx.status = TransactionStatus::PendingReceiver;
    w.platform.insert(tx);
    w.engine.reconcile().await.expect("reconcile");
    w.drive().await;
    assert_eq!(w.state("t1"), Some(PayoutState::Completed));
    assert_eq!(w.rail.made().len(), 1);
}

// AP 4.2+: optimistic locking.

#[tokio::test]
async fn a_retry_answer_from_the_aps_optimistic_locking_rereads_and_never_repeats_the_move() {
    let w = world();
    let receiver = w.receiver("1", true).await;
    w.funded("t1", &receiver, w.now());
    w.platform
        .update_faults
        .lock()
        .expect("lock")
        .push_back(ApFault::LockedApplied);
    w.engine.poll().await.expect("poll");
    w.drive().await;
    assert_eq!(w.state("t1"), Some(PayoutState::Confirmed));
    w.clock.advance(Duration::minutes(1));
    w.drive().await;
    assert_eq!(w.state("t1"), Some(PayoutState::Completed));
    assert_eq!(w.platform.moves("t1"), ["funds_sent"], "applied once");
}
