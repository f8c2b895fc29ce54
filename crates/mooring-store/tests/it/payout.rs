//! The payout ledger and the event inbox on both backends: sightings never
//! end an entry, claims are exclusive, fenced and lapse by the database's
//! clock, saves are compare-and-set, frozen orders round-trip, events are
//! kept once and applied in order.

use std::collections::BTreeSet;

use chrono::{DateTime, Duration, Utc};
use mooring_domain::payout::{PayoutOrder, PayoutState, Sighting};
use mooring_domain::transaction::TransactionId;
use mooring_ports::{EventStore, InboxEvent, LedgerError, OperatorEdit, PayoutLedger, PollMarks};
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
    // A first sighting of a finished transaction is read again (New), and
    // a finished sighting of an active entry only makes it due.
    assert_eq!(
        store
            .sight(&id("old"), Sighting::Finished, now)
            .await
            .expect("sight"),
        PayoutState::New
    );
    assert_eq!(
        store
            .sight(&t, Sighting::Finished, now + Duration::seconds(9))
            .await
            .expect("sight"),
        PayoutState::Received
    );
    let p = store.get(&t).await.expect("get").expect("entry");
    assert_eq!(
        (p.state(), p.attempt, p.failures),
        (PayoutState::Received, 1, 0)
    );
    assert_eq!(
        p.due_at.timestamp(),
        (now + Duration::seconds(9)).timestamp(),
        "woken"
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
    assert_eq!(all[0].state(), PayoutState::Received);
}

async fn claims_are_exclusive_fenced_and_saves_are_compare_and_set(db: TestDb) {
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
                mine.extend(got.into_iter().map(|c| c.payout.transaction_id));
            }
        }));
    }
    let mut seen = BTreeSet::new();
    let mut total = 0;
    for t in tasks {
        let mine = t.await.expect("task");
        total += mine.len();
        seen.extend(mine);
    }
    assert_eq!(
        (total, seen.len()),
        (30, 30),
        "every entry claimed exactly once"
    );
    // Whatever the caller's clock says, the database's decides: a replica
    // an hour ahead cannot take a claim whose lease holds.
    assert!(
        store
            .claim("d", 10, now + Duration::hours(1), lease)
            .await
            .expect("claim")
            .is_empty()
    );
}

async fn a_lapsed_claim_is_taken_over_and_the_old_token_can_never_write(db: TestDb) {
    let store = migrated_store(&db).await;
    let now = Utc::now();
    store
        .sight(&id("f1"), Sighting::Funded, now)
        .await
        .expect("sight");
    let short = Duration::milliseconds(300);
    let old = store
        .claim("a", 1, now, short)
        .await
        .expect("claim")
        .remove(0);
    assert!(
        store
            .claim("b", 1, now, short)
            .await
            .expect("claim")
            .is_empty()
    );
    // The lease lapses by the database's clock.
    tokio::time::sleep(std::time::Duration::from_millis(450)).await;
    let new = store
        .claim("b", 1, now, Duration::seconds(30))
        .await
        .expect("claim")
        .remove(0);
    assert!(new.claim.token > old.claim.token, "the token only grows");

    let mut p = new.payout.clone();
    p.await_kyc(now, now).expect("awaiting KYC");
    // The old owner can neither renew nor save, even as "b" with its token.
    let t = id("f1");
    assert!(matches!(
        store.renew(&t, &old.claim, Duration::seconds(30)).await,
        Err(LedgerError::LostClaim)
    ));
    assert!(matches!(
        store
            .save(
                &old.claim,
                PayoutState::Received,
                &p,
                Some(Duration::seconds(30))
            )
            .await,
        Err(LedgerError::LostClaim)
    ));
    let mut forged = old.claim.clone();
    forged.owner = "b".into();
    assert!(matches!(
        store.save(&forged, PayoutState::Received, &p, None).await,
        Err(LedgerError::LostClaim)
    ));
    assert!(!store.release(&t, &old.claim).await.expect("release"));
    // The new owner renews, saves once; a second save with the old state fails.
    store
        .renew(&t, &new.claim, Duration::seconds(30))
        .await
        .expect("renew");
    store
        .save(
            &new.claim,
            PayoutState::Received,
            &p,
            Some(Duration::seconds(30)),
        )
        .await
        .expect("saved");
    assert!(matches!(
        store
            .save(&new.claim, PayoutState::Received, &p, None)
            .await,
        Err(LedgerError::LostClaim)
    ));
    assert_eq!(
        store.get(&t).await.expect("get").expect("p").state(),
        PayoutState::AwaitingKyc
    );
    // A renewed lease holds past the first one's end.
    let later = now + Duration::hours(2);
    store
        .sight(&id("f2"), Sighting::Funded, now)
        .await
        .expect("sight");
    let f2 = store.claim("c", 5, later, short).await.expect("claim");
    let f2 = f2
        .into_iter()
        .find(|c| c.payout.transaction_id == id("f2"))
        .expect("f2");
    store
        .renew(&id("f2"), &f2.claim, Duration::seconds(30))
        .await
        .expect("renew");
    tokio::time::sleep(std::time::Duration::from_millis(450)).await;
    assert!(
        store
            .claim("d", 5, later, short)
            .await
            .expect("claim")
            .iter()
            .all(|c| c.payout.transaction_id != id("f2")),
        "renewed: still c's"
    );
    // Released claims are free at once.
    assert!(store.release(&id("f2"), &f2.claim).await.expect("release"));
    assert!(
        store
            .claim("e", 5, later, short)
            .await
            .expect("claim")
            .iter()
            .any(|c| c.payout.transaction_id == id("f2"))
    );
}

async fn a_frozen_order_is_kept_as_sent_and_dropped_when_final(db: TestDb) {
    let store = migrated_store(&db).await;
    let now = Utc::now();
    let t = id("o1");
    store.sight(&t, Sighting::Funded, now).await.expect("sight");
    let c = store
        .claim("a", 1, now, Duration::seconds(30))
        .await
        .expect("claim")
        .remove(0);
    let mut p = c.payout.clone();
    let order = PayoutOrder {
        idempotency_key: "o1".into(),
        transaction_id: "o1".into(),
        amount: "550.10".parse().expect("decimal"),
        asset: "iso4217:BRL".into(),
        delivery_method: Some("PIX".into()),
        receiver_id: "r1".into(),
        receiver_fields: vec![
            ("last_name".into(), "Silva \"Jr\" ção".into()),
            ("bank_account_number".into(), "0001234567".into()),
        ],
    };
    p.sender_id = Some("s1".into());
    p.submit(order.clone(), now).expect("submit");
    store
        .save(
            &c.claim,
            PayoutState::Received,
            &p,
            Some(Duration::seconds(30)),
        )
        .await
        .expect("save");
    let read = store.get(&t).await.expect("get").expect("p");
    assert_eq!(read.order(), Some(&order), "field order and text as sent");
    assert_eq!(read.sender_id.as_deref(), Some("s1"));
    assert_eq!(
        read.at_rail().map(|r| r.submitted_at.timestamp_micros()),
        Some(now.timestamp_micros())
    );
    let mut done = read.clone();
    done.paid("P1".into(), now).expect("paid");
    done.complete(now).expect("completed");
    store
        .save(&c.claim, PayoutState::Submitted, &done, None)
        .await
        .expect("save");
    let read = store.get(&t).await.expect("get").expect("p");
    assert_eq!(read.order(), None);
    assert_eq!(read.payout_id(), Some("P1"));
}

async fn reopen_refuses_other_states_and_live_claims_and_fences_them(db: TestDb) {
    let store = migrated_store(&db).await;
    let now = Utc::now();
    let t = id("r1");
    store.sight(&t, Sighting::Funded, now).await.expect("sight");
    let recover = || -> OperatorEdit { Box::new(move |p| p.reject("by the operator".into(), now)) };
    assert!(matches!(
        store.reopen(&t, &[PayoutState::Failed], recover()).await,
        Err(LedgerError::WrongState(PayoutState::Received))
    ));
    let c = store
        .claim("a", 1, now, Duration::milliseconds(300))
        .await
        .expect("claim")
        .remove(0);
    assert!(matches!(
        store.reopen(&t, &[PayoutState::Received], recover()).await,
        Err(LedgerError::LostClaim)
    ));
    tokio::time::sleep(std::time::Duration::from_millis(450)).await;
    store
        .reopen(&t, &[PayoutState::Received], recover())
        .await
        .expect("lapsed claim");
    assert_eq!(
        store.get(&t).await.expect("get").expect("p").state(),
        PayoutState::Rejecting
    );
    // The lapsed owner's token no longer writes.
    assert!(matches!(
        store.renew(&t, &c.claim, Duration::seconds(30)).await,
        Err(LedgerError::LostClaim)
    ));
}

async fn a_closed_entry_reopens_on_a_funded_sighting(db: TestDb) {
    let store = migrated_store(&db).await;
    let now = Utc::now();
    let t = id("z1");
    store
        .sight(&t, Sighting::Finished, now)
        .await
        .expect("sight");
    let c = store
        .claim("a", 1, now, Duration::seconds(30))
        .await
        .expect("claim")
        .remove(0);
    let mut p = c.payout.clone();
    p.close("finished at the AP".into(), now).expect("close");
    store
        .save(&c.claim, PayoutState::New, &p, None)
        .await
        .expect("save");
    assert_eq!(
        store
            .knows_funds(std::slice::from_ref(&t))
            .await
            .expect("knows"),
        vec![false],
        "a poll sights a closed entry again"
    );
    assert_eq!(
        store
            .sight(&t, Sighting::Finished, now)
            .await
            .expect("sight"),
        PayoutState::Closed
    );
    assert_eq!(
        store.sight(&t, Sighting::Funded, now).await.expect("sight"),
        PayoutState::Received
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
        body: r#"{"transaction":{"source_account":"GABC"}}"#.into(),
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
        store.get(&id("t1")).await.expect("get").expect("p").state(),
        PayoutState::New
    );
    assert_eq!(store.apply_events(10, Utc::now()).await.expect("apply"), 1);
    assert_eq!(
        store.get(&id("t1")).await.expect("get").expect("p").state(),
        PayoutState::Received
    );
    assert_eq!(store.inbox_depth().await.expect("depth"), 0);
    assert_eq!(store.apply_events(10, Utc::now()).await.expect("apply"), 0);
    // Applied events keep no body.
    let bodies: Vec<String> = store
        .with_connection(|c| {
            use diesel::prelude::*;
            mooring_store::schema::events::table
                .select(mooring_store::schema::events::body)
                .load(c)
        })
        .await
        .expect("bodies");
    assert_eq!(bodies, ["", ""]);
}

async fn a_customer_event_wakes_the_payouts_awaiting_that_sender_or_receiver(db: TestDb) {
    let store = migrated_store(&db).await;
    let now = Utc::now();
    store
        .sight(&id("k1"), Sighting::Funded, now)
        .await
        .expect("sight");
    let c = store
        .claim("a", 1, now, Duration::seconds(30))
        .await
        .expect("claim")
        .remove(0);
    let mut p = c.payout;
    p.sender_id = Some("cust-1".into());
    p.receiver_id = Some("cust-2".into());
    p.await_kyc(now, now + Duration::hours(1))
        .expect("awaiting KYC");
    store
        .save(&c.claim, PayoutState::Received, &p, None)
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
            PayoutState::New
        ]
    );
    assert_eq!(
        store
            .knows_funds(&[id("a"), id("b"), id("c")])
            .await
            .expect("knows"),
        vec![false, true, true]
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
    claims_are_exclusive_fenced_and_saves_are_compare_and_set,
    reopen_refuses_other_states_and_live_claims_and_fences_them,
    events_are_kept_once_and_applied_in_order,
    a_customer_event_wakes_the_payouts_awaiting_that_sender_or_receiver,
    a_lapsed_claim_is_taken_over_and_the_old_token_can_never_write,
    a_frozen_order_is_kept_as_sent_and_dropped_when_final,
    a_closed_entry_reopens_on_a_funded_sighting,
    rows_of_earlier_versions_read_and_an_unreadable_one_stops_nothing,
);

/// PostgreSQL plans a payout's saves and the renewal of its claim once per
/// connection, not on every call (diesel never caches an `UPDATE`; planning
/// the save cost more than running it, three times per payout).
#[tokio::test]
async fn on_postgres_saves_and_renewals_are_prepared_once() {
    let db = TestDb::postgres();
    let store = crate::postgres_on_one_connection(&db).await;
    let now = Utc::now();
    for n in 0..3 {
        let t = id(&format!("p{n}"));
        store.sight(&t, Sighting::Funded, now).await.expect("sight");
        let c = store
            .claim("a", 1, now, Duration::seconds(30))
            .await
            .expect("claim")
            .remove(0);
        store
            .renew(&t, &c.claim, Duration::seconds(30))
            .await
            .expect("renew");
        let mut p = c.payout.clone();
        p.await_kyc(now, now).expect("awaiting KYC");
        store
            .save(
                &c.claim,
                PayoutState::Received,
                &p,
                Some(Duration::seconds(30)),
            )
            .await
            .expect("save keeping the claim");
        let mut q = p.clone();
        q.reject("no".into(), now).expect("reject");
        // Not due again within the test, so the next claim takes the next.
        q.due_at = now + Duration::hours(1);
        store
            .save(&c.claim, PayoutState::AwaitingKyc, &q, None)
            .await
            .expect("save releasing it");
        let read = store.get(&t).await.expect("get").expect("entry");
        assert_eq!(
            (read.state(), read.reason()),
            (PayoutState::Rejecting, Some("no"))
        );
    }
    let prepared = crate::prepared_like(&store, "UPDATE payouts SET %").await;
    assert_eq!(
        prepared, 3,
        "the renewal and the two saves, each prepared once for three payouts"
    );
}

/// Rows as an earlier version wrote them read unchanged: an asset in the
/// AP's own spelling (the Stellar observer's `CODE:ISSUER`) in the amounts
/// and in a frozen order, whose bytes are kept; an empty asset is no
/// amount. A row that cannot be read at all never stops the claims of the
/// others.
async fn rows_of_earlier_versions_read_and_an_unreadable_one_stops_nothing(db: TestDb) {
    use diesel::RunQueryDsl;
    let store = migrated_store(&db).await;
    let now = Utc::now();
    let issuer = "GA5ZSEJYB37JRC5AVCIA5MOP4RHTM335X2KGX3IHOJAPP5RE34K4KZVN";
    for t in ["old", "empty", "broken", "fine"] {
        store
            .sight(&id(t), Sighting::Funded, now)
            .await
            .expect("sight");
    }
    let order = format!(
        r#"{{"idempotency_key":"old","transaction_id":"old","amount":"99","asset":"USDC:{issuer}","delivery_method":null,"receiver_id":"r","receiver_fields":[]}}"#
    );
    let sql = [
        format!(
            "UPDATE payouts SET state = 'submitted', amount_out = '99', amount_out_asset = 'USDC:{issuer}', \
             legacy_order = '{order}', submitted_at = created_at WHERE transaction_id = 'old'"
        ),
        "UPDATE payouts SET amount_in = '5', amount_in_asset = '' WHERE transaction_id = 'empty'"
            .to_owned(),
        "UPDATE payouts SET state = 'paid_by_magic' WHERE transaction_id = 'broken'".to_owned(),
    ];
    store
        .with_connection(move |c| {
            for q in &sql {
                diesel::sql_query(q.as_str()).execute(c)?;
            }
            Ok(())
        })
        .await
        .expect("rows as an earlier version left them");
    let old = store.get(&id("old")).await.expect("get").expect("old");
    assert_eq!(
        old.amount_out.as_ref().map(|a| a.asset.as_str().to_owned()),
        Some(format!("stellar:USDC:{issuer}")),
        "read in the one spelling"
    );
    assert_eq!(
        old.order().map(|o| o.asset.clone()),
        Some(format!("USDC:{issuer}")),
        "the frozen order keeps the bytes it was sent with"
    );
    let empty = store.get(&id("empty")).await.expect("get").expect("empty");
    assert_eq!(empty.amount_in, None);
    assert!(store.get(&id("broken")).await.is_err(), "get reports it");
    let claimed: BTreeSet<String> = store
        .claim("a", 10, now, Duration::seconds(30))
        .await
        .expect("claims go on")
        .into_iter()
        .map(|c| c.payout.transaction_id.as_str().to_owned())
        .collect();
    assert_eq!(
        claimed,
        ["empty", "fine", "old"]
            .map(str::to_owned)
            .into_iter()
            .collect()
    );
    assert_eq!(store.list(&[], 10).await.expect("lists go on").len(), 3);
}
