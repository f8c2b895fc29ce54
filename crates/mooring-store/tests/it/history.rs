//! A payout's timeline on both backends: every change of state or of the
//! rail's payout id is recorded by the database in the statement that
//! makes it, with its cause (a poll's or an event's sighting, the engine's
//! save, a person's reopen), and the timeline refuses every change.

use chrono::{Duration, Utc};
use diesel::prelude::*;
use mooring_domain::payout::{PayoutOrder, PayoutState, Sighting};
use mooring_domain::transaction::TransactionId;
use mooring_ports::{EventStore, InboxEvent, PayoutLedger};
use mooring_store::schema::payout_history;
use mooring_testsupport::{TestDb, on_both_backends};

use crate::migrated_store;

async fn every_change_is_in_the_timeline_with_its_cause(db: TestDb) {
    let store = migrated_store(&db).await;
    let now = Utc::now();
    let t = TransactionId::parse("h1").expect("id");
    store
        .sight(&t, Sighting::Unfunded, now)
        .await
        .expect("sight");
    // The funds arrive by an event.
    let event = InboxEvent {
        id: "e1".into(),
        kind: "transaction_status_changed".into(),
        occurred_at: now,
        received_at: now,
        transaction_id: Some(t.clone()),
        sighting: Some(Sighting::Funded),
        customer_id: None,
        body: "{}".into(),
    };
    store.accept_event(&event).await.expect("kept");
    store.apply_events(10, now).await.expect("applied");
    // The engine submits, the rail answers with an id; a wake changes nothing.
    let c = store
        .claim("a", 1, now, Duration::seconds(30))
        .await
        .expect("claim")
        .remove(0);
    let mut p = c.payout.clone();
    p.submit(
        PayoutOrder {
            idempotency_key: "h1".into(),
            transaction_id: "h1".into(),
            amount: "10".parse().expect("decimal"),
            asset: "iso4217:BRL".into(),
            delivery_method: None,
            receiver_id: "r1".into(),
            receiver_fields: vec![],
        },
        now,
    )
    .expect("submit");
    store
        .save(
            &c.claim,
            PayoutState::Received,
            &p,
            Some(Duration::seconds(30)),
        )
        .await
        .expect("save");
    p.follow("PAY-7".into(), false, now, now).expect("follow");
    store
        .save(
            &c.claim,
            PayoutState::Submitted,
            &p,
            Some(Duration::seconds(30)),
        )
        .await
        .expect("save");
    p.hold("a person must look".into(), now).expect("hold");
    store
        .save(&c.claim, PayoutState::Submitted, &p, None)
        .await
        .expect("save");
    // A person settles it as paid.
    store
        .reopen(
            &t,
            &[PayoutState::Held],
            Box::new(move |q| q.resubmit(Some("PAY-7".into()), now)),
        )
        .await
        .expect("reopened");
    let timeline: Vec<(Option<PayoutState>, PayoutState, String, Option<String>)> = store
        .history(&t)
        .await
        .expect("timeline")
        .into_iter()
        .map(|c| (c.from, c.to, c.cause, c.payout_id))
        .collect();
    use PayoutState as P;
    assert_eq!(
        timeline,
        [
            (None, P::New, "poll".to_owned(), None),
            (Some(P::New), P::Received, "event".to_owned(), None),
            (Some(P::Received), P::Submitted, "engine".to_owned(), None),
            (
                Some(P::Submitted),
                P::Submitted,
                "engine".to_owned(),
                Some("PAY-7".to_owned())
            ),
            (
                Some(P::Submitted),
                P::Held,
                "engine".to_owned(),
                Some("PAY-7".to_owned())
            ),
            (
                Some(P::Held),
                P::Submitted,
                "person".to_owned(),
                Some("PAY-7".to_owned())
            ),
        ]
    );
    let held = store.history(&t).await.expect("timeline");
    assert_eq!(held[4].reason.as_deref(), Some("a person must look"));
    // Append-only, whoever asks.
    let changed = store
        .with_connection(|c| {
            diesel::update(payout_history::table)
                .set(payout_history::cause.eq("forged"))
                .execute(c)
        })
        .await;
    assert!(changed.is_err(), "the timeline refused an UPDATE");
    let deleted = store
        .with_connection(|c| diesel::delete(payout_history::table).execute(c))
        .await;
    assert!(deleted.is_err(), "the timeline refused a DELETE");
    assert_eq!(store.history(&t).await.expect("timeline").len(), 6);
}

on_both_backends!(every_change_is_in_the_timeline_with_its_cause);
