//! The payout ledger and the event inbox on both backends: sightings only
//! move forward, claims are exclusive and lapse, saves are compare-and-set,
//! events are kept once and applied in order.

use std::collections::BTreeSet;

use chrono::{DateTime, Duration, Utc};
use mooring_domain::payout::{PayoutState, Sighting};
use mooring_domain::transaction::TransactionId;
use mooring_ports::{InboxEvent, LedgerError, PayoutLedger};
use mooring_testsupport::{TestDb, on_both_backends};

use crate::migrated_store;

fn id(s: &str) -> TransactionId {
    TransactionId::parse(s).expect("id")
}

async fn sightings_create_entries_and_only_move_them_forward(db: TestDb) {
    let store = migrated_store(&db).await;
    let now = Utc::now();
    let t = id("t1");
    assert_eq!(
        store
            .sight(&t, Sighting::Unfunded, now)
            .await
            .expect("sight"),
        PayoutState::New
    );
    assert_eq!(
        store
            .knows_funds(std::slice::from_ref(&t))
            .await
            .expect("knows"),
        vec![false]
    );
    assert_eq!(
        store.sight(&t, Sighting::Funded, now).await.expect("sight"),
        PayoutState::Received
    );
    // A stale sighting changes nothing.
    assert_eq!(
        store
            .sight(&t, Sighting::Unfunded, now)
            .await
            .expect("sight"),
        PayoutState::Received
    );
    assert_eq!(
        store
            .knows_funds(&[t.clone(), id("unknown")])
            .await
            .expect("knows"),
        vec![true, false]
    );
    assert_eq!(
        store
            .sight(&id("old"), Sighting::Finished, now)
            .await
            .expect("sight"),
        PayoutState::Closed
    );
    let p = store.get(&t).await.expect("get").expect("entry");
    assert_eq!(
        (p.state, p.attempt, p.failures),
        (PayoutState::Received, 1, 0)
    );
}

async fn concurrent_sightings_of_one_transaction_make_one_entry(db: TestDb) {
    let store = migrated_store(&db).await;
    let now = Utc::now();
    let mut tasks = Vec::new();
    for i in 0..16 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let s = if i % 2 == 0 {
                Sighting::Unfunded
            } else {
                Sighting::Funded
            };
            store.sight(&id("race"), s, now).await.expect("sight")
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    let all = store.list(&[], 100).await.expect("list");
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].state, PayoutState::Received);
}

async fn claims_are_exclusive_lapse_and_saves_are_compare_and_set(db: TestDb) {
    let store = migrated_store(&db).await;
    let now = Utc::now();
    for i in 0..30 {
        store
            .sight(&id(&format!("c{i}")), Sighting::Funded, now)
            .await
            .expect("sight");
    }
    let lease = Duration::seconds(30);
    // Three owners claim at once: disjoint sets covering everything.
    let mut tasks = Vec::new();
    for owner in ["a", "b", "c"] {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let got = store.claim(owner, 4, now, lease).await.expect("claim");
                if got.is_empty() {
                    return mine;
                }
                mine.extend(got.into_iter().map(|p| p.transaction_id));
            }
        }));
    }
    let mut seen = BTreeSet::new();
    let mut owners = std::collections::HashMap::new();
    let mut total = 0;
    for (t, owner) in tasks.into_iter().zip(["a", "b", "c"]) {
        let mine = t.await.expect("task");
        total += mine.len();
        for id in mine {
            owners.insert(id.clone(), owner);
            seen.insert(id);
        }
    }
    assert_eq!(
        (total, seen.len()),
        (30, 30),
        "every entry claimed exactly once"
    );
    assert!(
        store
            .claim("d", 10, now, lease)
            .await
            .expect("claim")
            .is_empty()
    );

    // A lapsed claim is taken over; the old owner's save then fails.
    let later = now + Duration::seconds(31);
    let taken = store.claim("d", 1, later, lease).await.expect("claim");
    assert_eq!(taken.len(), 1);
    let mut p = taken[0].clone();
    let old_owner = owners[&p.transaction_id];
    p.advance(PayoutState::Ready, later);
    let lost = store
        .save(old_owner, PayoutState::Received, &p, later, Some(lease))
        .await;
    assert!(matches!(lost, Err(LedgerError::LostClaim)), "{lost:?}");
    // The new owner's save works once; a second with the old state fails.
    store
        .save("d", PayoutState::Received, &p, later, Some(lease))
        .await
        .expect("saved");
    assert!(matches!(
        store
            .save("d", PayoutState::Received, &p, later, Some(lease))
            .await,
        Err(LedgerError::LostClaim)
    ));
    assert_eq!(
        store
            .get(&p.transaction_id)
            .await
            .expect("get")
            .expect("p")
            .state,
        PayoutState::Ready
    );
    // Released claims are free at once.
    assert!(store.release("d").await.expect("release") >= 1);
    assert!(
        !store
            .claim("e", 1, later, lease)
            .await
            .expect("claim")
            .is_empty()
    );
}

async fn reopen_refuses_other_states_and_live_claims(db: TestDb) {
    let store = migrated_store(&db).await;
    let now = Utc::now();
    let t = id("r1");
    store.sight(&t, Sighting::Funded, now).await.expect("sight");
    let mut p = store.get(&t).await.expect("get").expect("p");
    p.advance(PayoutState::Recovering, now);
    assert!(matches!(
        store.reopen(&[PayoutState::Failed], &p, now).await,
        Err(LedgerError::WrongState(PayoutState::Received))
    ));
    store
        .claim("a", 1, now, Duration::seconds(30))
        .await
        .expect("claim");
    assert!(matches!(
        store.reopen(&[PayoutState::Received], &p, now).await,
        Err(LedgerError::LostClaim)
    ));
    store
        .reopen(&[PayoutState::Received], &p, now + Duration::seconds(31))
        .await
        .expect("lapsed claim");
    assert_eq!(
        store.get(&t).await.expect("get").expect("p").state,
        PayoutState::Recovering
    );
}

fn event(id_: &str, tx: &str, sighting: Sighting, seconds: i64) -> InboxEvent {
    let t = Utc::now() + Duration::seconds(seconds);
    InboxEvent {
        id: id_.into(),
        kind: "transaction_status_changed".into(),
        occurred_at: t,
        received_at: Utc::now(),
        transaction_id: Some(id(tx)),
        sighting: Some(sighting),
        customer_id: None,
        body: "{}".into(),
    }
}

async fn events_are_kept_once_and_applied_in_order(db: TestDb) {
    let store = migrated_store(&db).await;
    // Delivered out of order: the funded event arrives first but is newer.
    assert!(
        store
            .accept_event(&event("e2", "t1", Sighting::Funded, 2))
            .await
            .expect("accept")
    );
    assert!(
        store
            .accept_event(&event("e1", "t1", Sighting::Unfunded, 1))
            .await
            .expect("accept")
    );
    assert!(
        !store
            .accept_event(&event("e2", "t1", Sighting::Funded, 2))
            .await
            .expect("duplicate")
    );
    assert_eq!(store.inbox_depth().await.expect("depth"), 2);
    assert_eq!(store.apply_events(1, Utc::now()).await.expect("apply"), 1);
    // The older one went first.
    assert_eq!(
        store.get(&id("t1")).await.expect("get").expect("p").state,
        PayoutState::New
    );
    assert_eq!(store.apply_events(10, Utc::now()).await.expect("apply"), 1);
    assert_eq!(
        store.get(&id("t1")).await.expect("get").expect("p").state,
        PayoutState::Received
    );
    assert_eq!(store.inbox_depth().await.expect("depth"), 0);
    assert_eq!(store.apply_events(10, Utc::now()).await.expect("apply"), 0);
}

async fn a_customer_event_wakes_the_payouts_awaiting_that_receiver(db: TestDb) {
    let store = migrated_store(&db).await;
    let now = Utc::now();
    store
        .sight(&id("k1"), Sighting::Funded, now)
        .await
        .expect("sight");
    let mut p = store
        .claim("a", 1, now, Duration::seconds(30))
        .await
        .expect("claim")
        .remove(0);
    p.receiver_id = Some("cust-1".into());
    p.advance(PayoutState::AwaitingKyc, now);
    p.due_at = now + Duration::hours(1);
    store
        .save("a", PayoutState::Received, &p, now, None)
        .await
        .expect("save");
    assert!(
        store
            .claim("b", 1, now + Duration::seconds(1), Duration::seconds(30))
            .await
            .expect("claim")
            .is_empty()
    );
    let mut e = event("c1", "k1", Sighting::Funded, 0);
    e.kind = "customer_updated".into();
    e.transaction_id = None;
    e.sighting = None;
    e.customer_id = Some("cust-1".into());
    store.accept_event(&e).await.expect("accept");
    store
        .apply_events(10, now + Duration::seconds(1))
        .await
        .expect("apply");
    assert_eq!(
        store
            .claim("b", 1, now + Duration::seconds(2), Duration::seconds(30))
            .await
            .expect("claim")
            .len(),
        1
    );
}

async fn a_page_of_sightings_is_written_at_once_in_the_order_given(db: TestDb) {
    let store = migrated_store(&db).await;
    let now = Utc::now();
    store
        .sight(&id("b"), Sighting::Unfunded, now)
        .await
        .expect("sight");
    let page = [
        (id("c"), Sighting::Funded),
        (id("b"), Sighting::Funded),
        (id("a"), Sighting::Finished),
    ];
    let states = store.sight_all(&page, now).await.expect("sight all");
    assert_eq!(
        states,
        [
            PayoutState::Received,
            PayoutState::Received,
            PayoutState::Closed
        ]
    );
    assert_eq!(
        store
            .knows_funds(&[id("a"), id("b"), id("c")])
            .await
            .expect("knows"),
        vec![true, true, true]
    );
    // Concurrent pages over the same ids, in opposite orders: no deadlock,
    // one entry each.
    let ids: Vec<TransactionId> = (0..40).map(|i| id(&format!("p{i:02}"))).collect();
    let forward: Vec<(TransactionId, Sighting)> =
        ids.iter().map(|i| (i.clone(), Sighting::Funded)).collect();
    let backward: Vec<(TransactionId, Sighting)> = forward.iter().rev().cloned().collect();
    let (x, y) = tokio::join!(
        store.sight_all(&forward, now),
        store.sight_all(&backward, now)
    );
    assert!(x.is_ok() && y.is_ok(), "{x:?} {y:?}");
    assert_eq!(
        store.knows_funds(&ids).await.expect("knows"),
        vec![true; ids.len()]
    );
    assert!(store.sight_all(&[], now).await.expect("empty").is_empty());
}

async fn the_poll_mark_only_moves_forward(db: TestDb) {
    let store = migrated_store(&db).await;
    let now = Utc::now();
    assert_eq!(store.poll_mark().await.expect("mark"), None);
    // Nanoseconds are cut to the microseconds both backends keep: never later.
    let at = DateTime::parse_from_rfc3339("2026-11-24T10:00:00.123456789Z")
        .expect("time")
        .to_utc();
    let kept = DateTime::parse_from_rfc3339("2026-11-24T10:00:00.123456Z")
        .expect("time")
        .to_utc();
    store.advance_poll_mark(at, now).await.expect("advance");
    assert_eq!(store.poll_mark().await.expect("mark"), Some(kept));
    // A slower replica's older mark changes nothing.
    store
        .advance_poll_mark(at - Duration::seconds(5), now)
        .await
        .expect("advance");
    assert_eq!(store.poll_mark().await.expect("mark"), Some(kept));
    // Replicas advancing at once: the newest wins.
    let mut replicas = tokio::task::JoinSet::new();
    for i in 1..=8 {
        let store = store.clone();
        replicas.spawn(async move {
            store
                .advance_poll_mark(kept + Duration::seconds(i), now)
                .await
        });
    }
    while let Some(result) = replicas.join_next().await {
        result.expect("join").expect("advance");
    }
    assert_eq!(
        store.poll_mark().await.expect("mark"),
        Some(kept + Duration::seconds(8))
    );
}

on_both_backends!(
    a_page_of_sightings_is_written_at_once_in_the_order_given,
    the_poll_mark_only_moves_forward,
    sightings_create_entries_and_only_move_them_forward,
    concurrent_sightings_of_one_transaction_make_one_entry,
    claims_are_exclusive_lapse_and_saves_are_compare_and_set,
    reopen_refuses_other_states_and_live_claims,
    events_are_kept_once_and_applied_in_order,
    a_customer_event_wakes_the_payouts_awaiting_that_receiver
);
