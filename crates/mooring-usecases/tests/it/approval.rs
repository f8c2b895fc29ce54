//! Payouts over `payout.approval_above` against fake ports: held in
//! `awaiting_approval` with nothing sent, however often the engine runs;
//! released once by an operator (a second release is refused), then paid
//! once under the same key and order; an amount at the limit, or another
//! asset, is not held.

use mooring_domain::AssetId;
use mooring_domain::audit::AuditAction;
use mooring_domain::customer::ReviewMode;
use mooring_domain::payout::PayoutState;
use mooring_domain::transaction::TransactionId;
use mooring_ports::{AuditLog, AuditQuery, LedgerError};
use mooring_usecases::EngineError;

use crate::fakes::who;
use crate::payout::world_with;
use crate::quotes::{USDC, d};

fn limit(amount: &str) -> impl FnOnce(&mut mooring_usecases::EngineConfig) {
    let amount = d(amount);
    move |c| {
        c.approval_above
            .insert(AssetId::parse(USDC).expect("asset"), amount);
    }
}

#[tokio::test]
async fn a_payout_over_the_limit_waits_for_an_operator_then_is_paid_once() {
    // Every transaction pays 99 USDC out.
    let w = world_with(ReviewMode::Auto, limit("50"));
    let receiver = w.receiver("1", true).await;
    w.funded("t1", &receiver, w.now());
    w.engine.poll().await.expect("poll");
    w.drive().await;
    assert_eq!(w.state("t1"), Some(PayoutState::AwaitingApproval));
    // However long it waits and whatever the engine does, nothing is sent.
    w.clock.advance(chrono::Duration::hours(2));
    w.engine.poll().await.expect("poll");
    w.drive().await;
    assert!(w.rail.made().is_empty(), "nothing sent before the approval");
    assert_eq!(w.platform.moves("t1"), Vec::<String>::new());
    let id = TransactionId::parse("t1").expect("id");
    let frozen = w.engine.get(&id).await.expect("entry").order().cloned();
    assert!(frozen.is_some(), "the order is frozen while it waits");

    let entry = w.engine.get(&id).await.expect("entry");
    let seen = Some(entry.updated_at.timestamp_micros());
    // A page older than the entry releases nothing.
    let stale = w.engine.release_approved(&id, Some(0), &who()).await;
    assert!(
        matches!(&stale, Err(EngineError::BadRequest(m)) if m.contains("changed")),
        "{stale:?}"
    );
    let released = w
        .engine
        .release_approved(&id, seen, &who())
        .await
        .expect("released");
    assert_eq!(released.state(), PayoutState::Submitted);
    // A second operator a moment later: refused, nothing moves twice.
    let again = w.engine.release_approved(&id, seen, &who()).await;
    assert!(
        matches!(
            again,
            Err(EngineError::Ledger(LedgerError::WrongState(
                PayoutState::Submitted
            )))
        ),
        "{again:?}"
    );
    w.drive().await;
    assert_eq!(w.state("t1"), Some(PayoutState::Completed));
    let made = w.rail.made();
    assert_eq!(made.len(), 1, "paid once");
    assert_eq!(
        Some(&made[0]),
        frozen.as_ref(),
        "the order frozen before the approval"
    );
    let released = w
        .audit
        .entries(&AuditQuery {
            action: Some(AuditAction::PayoutReleased),
            limit: 10,
            ..AuditQuery::default()
        })
        .await
        .expect("audit");
    assert_eq!(released.len(), 1);
    assert_eq!(
        released[0].entry.detail,
        "amount=99 ".to_owned() + USDC + " to=submitted attempt=1"
    );
}

#[tokio::test]
async fn at_the_limit_or_in_another_asset_a_payout_does_not_wait() {
    let w = world_with(ReviewMode::Auto, limit("99"));
    let receiver = w.receiver("1", true).await;
    w.funded("t1", &receiver, w.now());
    w.engine.poll().await.expect("poll");
    w.drive().await;
    assert_eq!(
        w.state("t1"),
        Some(PayoutState::Completed),
        "99 is not over 99"
    );

    let other = world_with(ReviewMode::Auto, |c| {
        c.approval_above
            .insert(AssetId::parse("iso4217:BRL").expect("asset"), d("1"));
    });
    let receiver = other.receiver("1", true).await;
    other.funded("t2", &receiver, other.now());
    other.engine.poll().await.expect("poll");
    other.drive().await;
    assert_eq!(other.state("t2"), Some(PayoutState::Completed));
    // Only a payout awaiting approval is released.
    let done = other
        .engine
        .release_approved(&TransactionId::parse("t2").expect("id"), None, &who())
        .await;
    assert!(matches!(
        done,
        Err(EngineError::Ledger(LedgerError::WrongState(_)))
    ));
}

#[tokio::test]
async fn a_payout_the_ap_finished_while_it_waited_is_closed_not_released() {
    let w = world_with(ReviewMode::Auto, limit("50"));
    let receiver = w.receiver("1", true).await;
    w.funded("t1", &receiver, w.now());
    w.engine.poll().await.expect("poll");
    w.drive().await;
    assert_eq!(w.state("t1"), Some(PayoutState::AwaitingApproval));
    // The AP's operators refunded it by hand meanwhile.
    let mut tx = w.platform.tx("t1");
    tx.status = mooring_domain::transaction::TransactionStatus::Refunded;
    w.platform.insert(tx);
    let id = TransactionId::parse("t1").expect("id");
    let refused = w.engine.release_approved(&id, None, &who()).await;
    assert!(
        matches!(&refused, Err(EngineError::BadRequest(m)) if m.contains("closed")),
        "{refused:?}"
    );
    assert_eq!(w.state("t1"), Some(PayoutState::Closed));
    w.drive().await;
    assert!(w.rail.made().is_empty());
}

#[tokio::test]
async fn a_party_rejected_while_it_waited_is_not_paid_and_a_decline_tells_the_ap() {
    let w = world_with(ReviewMode::Auto, limit("50"));
    let receiver = w.receiver("1", true).await;
    w.funded("t1", &receiver, w.now());
    w.engine.poll().await.expect("poll");
    w.drive().await;
    assert_eq!(w.state("t1"), Some(PayoutState::AwaitingApproval));
    // A reviewer rejects the receiver (a sanctions hit, say).
    let receiver_id = mooring_domain::customer::CustomerId::parse(&receiver).expect("id");
    w.kyc
        .reject(&receiver_id, "on a sanctions list", None, &who())
        .await
        .expect("rejected");
    let id = TransactionId::parse("t1").expect("id");
    let refused = w.engine.release_approved(&id, None, &who()).await;
    assert!(
        matches!(&refused, Err(EngineError::BadRequest(m)) if m.contains("receiver's KYC")),
        "{refused:?}"
    );
    assert_eq!(w.state("t1"), Some(PayoutState::AwaitingApproval));
    // Declined instead: nothing paid, the AP told error, then refundable.
    assert!(
        w.engine.decline_approval(&id, " ", &who()).await.is_err(),
        "a reason is needed"
    );
    let declined = w
        .engine
        .decline_approval(&id, "the receiver failed screening", &who())
        .await
        .expect("declined");
    assert_eq!(declined.state(), PayoutState::Rejecting);
    w.drive().await;
    assert_eq!(w.state("t1"), Some(PayoutState::Rejected));
    assert_eq!(
        w.platform.tx("t1").status,
        mooring_domain::transaction::TransactionStatus::Error
    );
    assert!(w.rail.made().is_empty());
    assert!(
        matches!(
            w.engine.decline_approval(&id, "again", &who()).await,
            Err(EngineError::Ledger(LedgerError::WrongState(_)))
        ),
        "declined once"
    );
}
