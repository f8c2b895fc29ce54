//! Contract suites: one per port, run against the port's in-memory fake (by
//! the use cases' tests) and against the real adapter on both backends (by
//! the store's tests), so that a fake can never keep rules the adapter does
//! not. Each suite panics, naming the rule, where the port's contract is
//! broken. [`platform`] holds the Platform API's, run against the fake AP
//! and the in-repo AP simulator.

use chrono::{Duration, Utc};
use mooring_domain::deposit::DepositAddress;
use mooring_domain::payout::{PayoutOrder, PayoutState, Sighting};
use mooring_domain::transaction::TransactionId;
use mooring_domain::{Memo, StellarAccount};
use mooring_ports::{
    DepositAddressStore, EventStore, InboxEvent, LedgerError, OperatorEdit, PayoutLedger, PollMarks,
};

mod kyc;
pub mod platform;

pub use kyc::{kyc_field_review, kyc_store};

pub use platform::{ApUnderTest, platform_client};

const ACCOUNT: &str = "GDJUOFZGW5WYBK4GIETCSSM6MTTIJ4SUMCQITPTLUWMQ6B4UIX2IEX47";

fn id(s: &str) -> TransactionId {
    TransactionId::parse(s).expect("id")
}

/// The payout ledger, its inbox and its poll marks. `short` is a lease the
/// suite lets lapse; `lapse` must return once at least `short` has passed
/// on the ledger's (database's) clock.
pub async fn payout_ledger<L>(ledger: &L, short: Duration, lapse: impl AsyncFn())
where
    L: PayoutLedger + EventStore + PollMarks,
{
    let now = Utc::now();
    let long = Duration::seconds(60);

    // A sighting never ends an entry: finished first is `new`, to be read.
    assert_eq!(
        ledger
            .sight(&id("s1"), Sighting::Finished, now)
            .await
            .expect("sight"),
        PayoutState::New,
        "a first finished sighting creates a new entry"
    );

    // Claims: exclusive, fenced, lapsing by the ledger's clock.
    ledger
        .sight(&id("c1"), Sighting::Funded, now)
        .await
        .expect("sight");
    let a = ledger.claim("a", 10, now, short).await.expect("claim");
    let a = a
        .into_iter()
        .find(|c| c.payout.transaction_id == id("c1"))
        .expect("c1 claimed");
    assert!(
        ledger
            .claim("b", 10, now + Duration::hours(1), short)
            .await
            .expect("claim")
            .iter()
            .all(|c| c.payout.transaction_id != id("c1")),
        "a live claim is not claimed again, whatever the caller's clock"
    );
    lapse().await;
    let b = ledger.claim("b", 10, now, long).await.expect("claim");
    let b = b
        .into_iter()
        .find(|c| c.payout.transaction_id == id("c1"))
        .expect("a lapsed claim is taken over");
    assert!(b.claim.token > a.claim.token, "tokens only grow");
    let mut p = b.payout.clone();
    p.await_kyc(now, now).expect("awaiting KYC");
    assert!(
        matches!(
            ledger.renew(&id("c1"), &a.claim, long).await,
            Err(LedgerError::LostClaim)
        ),
        "an old token cannot renew"
    );
    assert!(
        matches!(
            ledger.save(&a.claim, PayoutState::Received, &p, None).await,
            Err(LedgerError::LostClaim)
        ),
        "an old token cannot save"
    );
    assert!(
        !ledger.release(&id("c1"), &a.claim).await.expect("release"),
        "an old token releases nothing"
    );
    ledger
        .renew(&id("c1"), &b.claim, long)
        .await
        .expect("renew");
    ledger
        .save(&b.claim, PayoutState::Received, &p, Some(long))
        .await
        .expect("the holder saves");
    assert!(
        matches!(
            ledger.save(&b.claim, PayoutState::Received, &p, None).await,
            Err(LedgerError::LostClaim)
        ),
        "a save is a compare-and-set on the state"
    );

    // A sighting that moves an entry frees its claim and its error streak.
    ledger
        .sight(&id("m1"), Sighting::Unfunded, now)
        .await
        .expect("sight");
    let m = ledger.claim("a", 10, now, long).await.expect("claim");
    let m = m
        .into_iter()
        .find(|c| c.payout.transaction_id == id("m1"))
        .expect("m1 claimed");
    let mut failing = m.payout.clone();
    failing.retry_later(
        "the AP is down".into(),
        now,
        Duration::seconds(1),
        Duration::seconds(1),
    );
    ledger
        .save(&m.claim, PayoutState::New, &failing, Some(long))
        .await
        .expect("save");
    assert_eq!(
        ledger
            .sight(&id("m1"), Sighting::Funded, now)
            .await
            .expect("sight"),
        PayoutState::Received
    );
    let moved = ledger.get(&id("m1")).await.expect("get").expect("m1");
    assert_eq!(
        (moved.failures, moved.last_error.as_deref()),
        (0, None),
        "a move clears the error streak"
    );
    assert!(
        ledger
            .claim("c", 10, now, long)
            .await
            .expect("claim")
            .iter()
            .any(|c| c.payout.transaction_id == id("m1")),
        "a move frees the claim"
    );
    assert!(
        matches!(
            ledger
                .save(&m.claim, PayoutState::New, &failing, None)
                .await,
            Err(LedgerError::LostClaim)
        ),
        "the moved entry's old claim is fenced off"
    );

    // An operator's move fences any claim too, and needs it lapsed.
    ledger
        .sight(&id("o1"), Sighting::Funded, now)
        .await
        .expect("sight");
    let o = ledger.claim("a", 10, now, short).await.expect("claim");
    let o = o
        .into_iter()
        .find(|c| c.payout.transaction_id == id("o1"))
        .expect("o1 claimed");
    let recover = || -> OperatorEdit { Box::new(move |p| p.reject("by the operator".into(), now)) };
    assert!(matches!(
        ledger
            .reopen(&id("o1"), &[PayoutState::Failed], recover())
            .await,
        Err(LedgerError::WrongState(PayoutState::Received))
    ));
    assert!(matches!(
        ledger
            .reopen(&id("o1"), &[PayoutState::Received], recover())
            .await,
        Err(LedgerError::LostClaim)
    ));
    assert!(matches!(
        ledger
            .reopen(&id("nobody"), &[PayoutState::Received], recover())
            .await,
        Err(LedgerError::NotFound)
    ));
    // What the claimant saved before it lapsed is what the edit sees.
    let mut saved = o.payout.clone();
    saved.quote_id = Some("q-saved".into());
    ledger
        .save(&o.claim, PayoutState::Received, &saved, Some(short))
        .await
        .expect("save under the live claim");
    lapse().await;
    let reopened = ledger
        .reopen(&id("o1"), &[PayoutState::Received], recover())
        .await
        .expect("reopen after the lapse");
    assert_eq!(reopened.state(), PayoutState::Rejecting);
    assert_eq!(reopened.quote_id.as_deref(), Some("q-saved"));
    let read = ledger.get(&id("o1")).await.expect("get").expect("o1");
    assert_eq!(
        (
            read.state(),
            read.quote_id.clone(),
            read.reason().map(str::to_owned)
        ),
        (
            reopened.state(),
            reopened.quote_id.clone(),
            reopened.reason().map(str::to_owned)
        ),
        "what reopen returns is what was written (times to the backend's precision)"
    );
    assert!(matches!(
        ledger.renew(&id("o1"), &o.claim, long).await,
        Err(LedgerError::LostClaim)
    ));

    // A frozen order is kept as sent, and a closed entry reopens on funds.
    ledger
        .sight(&id("f1"), Sighting::Funded, now)
        .await
        .expect("sight");
    let f = ledger.claim("a", 10, now, long).await.expect("claim");
    let f = f
        .into_iter()
        .find(|c| c.payout.transaction_id == id("f1"))
        .expect("f1 claimed");
    let mut submitted = f.payout.clone();
    let order = PayoutOrder {
        idempotency_key: "f1".into(),
        transaction_id: "f1".into(),
        amount: "12.50".parse().expect("decimal"),
        asset: "iso4217:BRL".into(),
        delivery_method: None,
        receiver_id: "r".into(),
        receiver_fields: vec![("last_name".into(), "Ôlá \"q\"".into())],
    };
    submitted.submit(order.clone(), now).expect("submit");
    ledger
        .save(&f.claim, PayoutState::Received, &submitted, None)
        .await
        .expect("save");
    assert_eq!(
        ledger
            .get(&id("f1"))
            .await
            .expect("get")
            .expect("f1")
            .order(),
        Some(&order)
    );
    ledger
        .sight(&id("z1"), Sighting::Finished, now)
        .await
        .expect("sight");
    let z = ledger.claim("a", 10, now, long).await.expect("claim");
    let z = z
        .into_iter()
        .find(|c| c.payout.transaction_id == id("z1"))
        .expect("z1 claimed");
    let mut closed = z.payout.clone();
    closed
        .close("finished at the AP".into(), now)
        .expect("close");
    ledger
        .save(&z.claim, PayoutState::New, &closed, None)
        .await
        .expect("save");
    assert_eq!(
        ledger.knows_funds(&[id("z1")]).await.expect("knows"),
        vec![false],
        "closed entries are sighted again"
    );
    assert_eq!(
        ledger
            .sight(&id("z1"), Sighting::Funded, now)
            .await
            .expect("sight"),
        PayoutState::Received,
        "a closed entry reopens when funded"
    );

    // Events: once each, in their order, a customer event waking both parties.
    let event =
        |event_id: &str, tx: Option<&str>, sighting, customer: Option<&str>, s: i64| InboxEvent {
            id: event_id.into(),
            kind: "transaction_status_changed".into(),
            occurred_at: now + Duration::seconds(s),
            received_at: now,
            transaction_id: tx.map(id),
            sighting,
            customer_id: customer.map(str::to_owned),
            body: "{}".into(),
        };
    assert!(
        ledger
            .accept_event(&event("e2", Some("e1"), Some(Sighting::Funded), None, 2))
            .await
            .expect("accept")
    );
    assert!(
        ledger
            .accept_event(&event("e1", Some("e1"), Some(Sighting::Unfunded), None, 1))
            .await
            .expect("accept")
    );
    assert!(
        !ledger
            .accept_event(&event("e2", Some("e1"), Some(Sighting::Funded), None, 2))
            .await
            .expect("accept"),
        "an event id is kept once"
    );
    assert_eq!(ledger.inbox_depth().await.expect("depth"), 2);
    assert_eq!(ledger.apply_events(1, now).await.expect("apply"), 1);
    assert_eq!(
        ledger.get(&id("e1")).await.expect("get").map(|p| p.state()),
        Some(PayoutState::New),
        "the older event first"
    );
    ledger.apply_events(10, now).await.expect("apply");
    assert_eq!(
        ledger.get(&id("e1")).await.expect("get").map(|p| p.state()),
        Some(PayoutState::Received)
    );
    for (tx, sender, receiver) in [("w1", "cust-s", "other"), ("w2", "other", "cust-s")] {
        ledger
            .sight(&id(tx), Sighting::Funded, now)
            .await
            .expect("sight");
        let w = ledger.claim("a", 10, now, long).await.expect("claim");
        let w = w
            .into_iter()
            .find(|c| c.payout.transaction_id == id(tx))
            .expect("claimed");
        let mut waiting = w.payout.clone();
        waiting.sender_id = Some(sender.into());
        waiting.receiver_id = Some(receiver.into());
        waiting
            .await_kyc(now, now + Duration::hours(1))
            .expect("awaiting KYC");
        ledger
            .save(&w.claim, PayoutState::Received, &waiting, None)
            .await
            .expect("save");
    }
    ledger
        .accept_event(&event("c1", None, None, Some("cust-s"), 3))
        .await
        .expect("accept");
    ledger.apply_events(10, now).await.expect("apply");
    for tx in ["w1", "w2"] {
        let p = ledger.get(&id(tx)).await.expect("get").expect("entry");
        assert!(
            p.due_at <= now,
            "{tx}: a customer event wakes the entries awaiting it as sender or receiver"
        );
    }
    assert_eq!(ledger.inbox_depth().await.expect("depth"), 0);

    // The poll mark only moves forward.
    let at = now - Duration::minutes(1);
    ledger.advance_poll_mark(at, now).await.expect("mark");
    ledger
        .advance_poll_mark(at - Duration::seconds(5), now)
        .await
        .expect("mark");
    assert_eq!(
        ledger
            .poll_mark()
            .await
            .expect("mark")
            .map(|m| m.timestamp()),
        Some(at.timestamp())
    );
}

/// The deposit addresses: the first per transaction stays, and one address
/// never serves two transactions.
pub async fn deposit_addresses(store: &impl DepositAddressStore) {
    let address = |memo: &str| DepositAddress {
        account: StellarAccount::parse(ACCOUNT).expect("account"),
        memo: Some(Memo::parse(memo, None).expect("memo")),
    };
    let kept = store
        .keep_first_deposit_address("t1", &address("1"))
        .await
        .expect("keep");
    assert_eq!(kept, address("1"));
    assert_eq!(
        store
            .keep_first_deposit_address("t1", &address("2"))
            .await
            .expect("keep"),
        address("1"),
        "the first address stays"
    );
    assert!(
        store
            .keep_first_deposit_address("t2", &address("1"))
            .await
            .is_err(),
        "one address never serves two transactions"
    );
    assert_eq!(store.deposit_address_of("t2").await.expect("read"), None);
}
