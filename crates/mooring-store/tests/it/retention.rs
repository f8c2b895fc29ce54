//! Retention and the audit trail, on both backends: pruning removes exactly
//! what has expired (never an event not yet applied, a quote a live payout
//! names, or a data key whose customer exists), and the audit table refuses
//! every change.

use chrono::{Duration, NaiveDateTime, Utc};
use diesel::prelude::*;
use mooring_domain::audit::{Actor, AuditAction, AuditEntry};
use mooring_domain::customer::CustomerId;
use mooring_domain::payout::PayoutState;
use mooring_domain::transaction::TransactionId;
use mooring_ports::{AuditLog, AuditQuery, EventStore, InboxEvent, Retention};
use mooring_store::Store;
use mooring_store::schema::{
    customers, data_keys, events, liquidity_holds, payouts, quote_fee_details, quotes,
};
use mooring_testsupport::{TestDb, on_both_backends};

use crate::migrated_store;

fn event(id: &str) -> InboxEvent {
    let now = Utc::now();
    InboxEvent {
        id: id.into(),
        kind: "transaction_status_changed".into(),
        occurred_at: now,
        received_at: now,
        transaction_id: None,
        sighting: None,
        customer_id: None,
        body: "{}".into(),
    }
}

async fn ids(
    store: &Store,
    load: fn(&mut mooring_store::AnyConnection) -> QueryResult<Vec<String>>,
) -> Vec<String> {
    let mut v = store.with_connection(load).await.expect("read");
    v.sort();
    v
}

async fn applied_events_are_removed_after_their_retention_and_no_sooner(db: TestDb) {
    let store = migrated_store(&db).await;
    let now = Utc::now();
    store.accept_event(&event("old")).await.expect("accept");
    store
        .apply_events(10, now - Duration::days(8))
        .await
        .expect("apply");
    store.accept_event(&event("recent")).await.expect("accept");
    store
        .apply_events(10, now - Duration::days(6))
        .await
        .expect("apply");
    store.accept_event(&event("waiting")).await.expect("accept");

    let removed = store
        .prune_events(now - Duration::days(7), 100)
        .await
        .expect("prune");

    assert_eq!(removed, 1);
    let left = ids(&store, |c| events::table.select(events::id).load(c)).await;
    assert_eq!(left, ["recent", "waiting"]);
    // An event never applied is kept however old the cutoff.
    let removed = store
        .prune_events(now + Duration::days(1), 100)
        .await
        .expect("prune");
    assert_eq!(removed, 1);
    let left = ids(&store, |c| events::table.select(events::id).load(c)).await;
    assert_eq!(left, ["waiting"]);
    assert_eq!(store.inbox_depth().await.expect("depth"), 1);
}

fn t(days_ago: i64) -> NaiveDateTime {
    (Utc::now() - Duration::days(days_ago)).naive_utc()
}

/// A quote row that expired `expired` days ago, used `used` days ago (if).
async fn quote(store: &Store, id: &'static str, expired: i64, used: Option<i64>) {
    store
        .with_connection(move |c| {
            diesel::insert_into(quotes::table)
                .values((
                    quotes::id.eq(id),
                    quotes::sell_asset.eq("stellar:USDC:G"),
                    quotes::buy_asset.eq("iso4217:EUR"),
                    quotes::price.eq("1.1"),
                    quotes::sell_amount.eq("110"),
                    quotes::buy_amount.eq("100"),
                    quotes::fee_total.eq("1"),
                    quotes::fee_asset.eq("stellar:USDC:G"),
                    quotes::created_at.eq(t(expired + 1)),
                    quotes::expires_at.eq(t(expired)),
                    quotes::used_by.eq(used.map(|_| format!("tx-{id}"))),
                    quotes::used_at.eq(used.map(t)),
                ))
                .execute(c)?;
            diesel::insert_into(quote_fee_details::table)
                .values((
                    quote_fee_details::quote_id.eq(id),
                    quote_fee_details::position.eq(0),
                    quote_fee_details::name.eq("service"),
                    quote_fee_details::amount.eq("1"),
                ))
                .execute(c)
        })
        .await
        .expect("quote");
}

async fn payout_naming(store: &Store, tx: &'static str, quote: &'static str, state: &'static str) {
    payout_row(store, tx, Some(quote), None, state).await;
}

async fn payout_for(store: &Store, tx: &'static str, receiver: &'static str, state: PayoutState) {
    payout_row(store, tx, None, Some(receiver), state.as_str()).await;
}

async fn payout_row(
    store: &Store,
    tx: &'static str,
    quote: Option<&'static str>,
    receiver: Option<&'static str>,
    state: &'static str,
) {
    store
        .with_connection(move |c| {
            diesel::insert_into(payouts::table)
                .values((
                    payouts::transaction_id.eq(tx),
                    payouts::state.eq(state),
                    payouts::attempt.eq(1),
                    payouts::quote_id.eq(quote),
                    payouts::receiver_id.eq(receiver),
                    payouts::told_pending.eq(0),
                    payouts::failures.eq(0),
                    payouts::created_at.eq(t(100)),
                    payouts::updated_at.eq(t(100)),
                    payouts::due_at.eq(t(100)),
                    payouts::claim_token.eq(0i64),
                ))
                .execute(c)
        })
        .await
        .expect("payout");
}

async fn quotes_past_retention_go_unless_a_payout_may_take_them_again(db: TestDb) {
    let store = migrated_store(&db).await;
    quote(&store, "expired-old", 91, None).await;
    quote(&store, "expired-recent", 89, None).await;
    quote(&store, "used-old", 120, Some(95)).await;
    quote(&store, "used-recent", 120, Some(10)).await;
    quote(&store, "held-by-payout", 120, Some(95)).await;
    quote(&store, "done-payout", 120, Some(95)).await;
    quote(&store, "failed-payout", 120, Some(95)).await;
    quote(&store, "unexpired", -1, None).await;
    // Liquidity holds: one second before the cut-off, one after.
    for (days, held) in [(91, "100"), (89, "7")] {
        store
            .with_connection(move |c| {
                diesel::insert_into(liquidity_holds::table)
                    .values((
                        liquidity_holds::asset.eq("iso4217:EUR"),
                        liquidity_holds::ends_at.eq(t(days)),
                        liquidity_holds::held.eq(held),
                    ))
                    .execute(c)
            })
            .await
            .expect("hold");
    }
    payout_naming(
        &store,
        "t-held",
        "held-by-payout",
        PayoutState::Held.as_str(),
    )
    .await;
    payout_naming(
        &store,
        "t-failed",
        "failed-payout",
        PayoutState::Failed.as_str(),
    )
    .await;
    payout_naming(
        &store,
        "t-done",
        "done-payout",
        PayoutState::Completed.as_str(),
    )
    .await;

    let removed = store
        .prune_quotes(Utc::now() - Duration::days(90), 100)
        .await
        .expect("prune");

    let left = ids(&store, |c| quotes::table.select(quotes::id).load(c)).await;
    assert_eq!(removed, 3, "left: {left:?}");
    assert_eq!(
        left,
        [
            "expired-recent",
            "failed-payout",
            "held-by-payout",
            "unexpired",
            "used-recent"
        ]
    );
    let details = ids(&store, |c| {
        quote_fee_details::table
            .select(quote_fee_details::quote_id)
            .load(c)
    })
    .await;
    assert_eq!(
        details, left,
        "fee details go with their quote, and only then"
    );
    let holds = ids(&store, |c| {
        liquidity_holds::table.select(liquidity_holds::held).load(c)
    })
    .await;
    assert_eq!(holds, ["7"], "the seconds before the cut-off go");
    // The batch bound holds.
    quote(&store, "b1", 200, None).await;
    quote(&store, "b2", 200, None).await;
    assert_eq!(
        store
            .prune_quotes(Utc::now() - Duration::days(90), 1)
            .await
            .expect("prune"),
        1
    );
}

async fn key_row(store: &Store, customer: &'static str, made: NaiveDateTime, with_customer: bool) {
    store
        .with_connection(move |c| {
            if with_customer {
                diesel::insert_into(customers::table)
                    .values((
                        customers::id.eq(customer),
                        customers::account.eq("GA"),
                        customers::memo.eq(customer),
                        customers::review.eq("pending"),
                        customers::created_at.eq(made),
                        customers::updated_at.eq(made),
                    ))
                    .execute(c)?;
            }
            diesel::insert_into(data_keys::table)
                .values((
                    data_keys::customer_id.eq(customer),
                    data_keys::kek_id.eq("k"),
                    data_keys::wrapped.eq(vec![1u8, 2, 3]),
                    data_keys::created_at.eq(made),
                ))
                .execute(c)
        })
        .await
        .expect("key");
}

async fn data_keys_without_a_customer_are_removed_after_the_grace(db: TestDb) {
    let store = migrated_store(&db).await;
    let now = Utc::now();
    let old = (now - Duration::hours(2)).naive_utc();
    let fresh = (now - Duration::minutes(5)).naive_utc();
    key_row(&store, "orphan-old", old, false).await;
    key_row(&store, "orphan-fresh", fresh, false).await;
    key_row(&store, "owned-old", old, true).await;
    // A receiver erased mid-step: their key stays while the payout is live.
    key_row(&store, "erased-receiver-live", old, false).await;
    key_row(&store, "erased-receiver-done", old, false).await;
    payout_for(
        &store,
        "t-live",
        "erased-receiver-live",
        PayoutState::Submitted,
    )
    .await;
    payout_for(
        &store,
        "t-done",
        "erased-receiver-done",
        PayoutState::Completed,
    )
    .await;

    let removed = store
        .prune_orphan_keys(now - Duration::hours(1), 100)
        .await
        .expect("prune");

    assert_eq!(removed, 2);
    let left = ids(&store, |c| {
        data_keys::table.select(data_keys::customer_id).load(c)
    })
    .await;
    assert_eq!(left, ["erased-receiver-live", "orphan-fresh", "owned-old"]);
}

async fn the_audit_trail_is_append_only_and_filtered_newest_first(db: TestDb) {
    let store = migrated_store(&db).await;
    let who = Actor::operator("alice", "cli@host-1");
    let c1 = CustomerId::generate();
    let c2 = CustomerId::generate();
    let tx = TransactionId::parse("tx-1").expect("id");
    let now = Utc::now();
    let entries = [
        AuditEntry::new(now - Duration::days(2), &who, AuditAction::CustomerShown).customer(&c1),
        AuditEntry::new(now - Duration::days(1), &who, AuditAction::CustomerApproved).customer(&c1),
        AuditEntry::new(
            now,
            &Actor::platform("10.0.0.9"),
            AuditAction::CustomerDeleted,
        )
        .customer(&c2),
        AuditEntry::new(now, &who, AuditAction::PayoutRefunded)
            .transaction(&tx)
            .customer(&c1)
            .detail("reference=abc from=rejected"),
    ];
    for e in &entries {
        store.append(e).await.expect("append");
    }
    let list = |q: AuditQuery| {
        let store = store.clone();
        async move {
            store
                .entries(&AuditQuery { limit: 10, ..q })
                .await
                .expect("entries")
                .into_iter()
                .map(|r| r.entry.action)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        list(AuditQuery {
            customer: Some(c1.clone()),
            ..Default::default()
        })
        .await,
        [
            AuditAction::PayoutRefunded,
            AuditAction::CustomerApproved,
            AuditAction::CustomerShown
        ]
    );
    assert_eq!(
        list(AuditQuery {
            transaction: Some(tx.clone()),
            ..Default::default()
        })
        .await,
        [AuditAction::PayoutRefunded]
    );
    assert_eq!(
        list(AuditQuery {
            customer: Some(c1.clone()),
            since: Some(now - Duration::hours(36)),
            ..Default::default()
        })
        .await,
        [AuditAction::PayoutRefunded, AuditAction::CustomerApproved]
    );
    let all = store
        .entries(&AuditQuery {
            limit: 10,
            ..Default::default()
        })
        .await
        .expect("entries");
    assert_eq!(all.len(), 4);
    assert!(
        all.windows(2).all(|w| w[0].sequence > w[1].sequence),
        "newest first"
    );
    let refund = &all[0].entry;
    assert_eq!(refund.actor, who);
    assert_eq!(refund.detail, "reference=abc from=rejected");
    // Paging: strictly older than a sequence.
    let older = store
        .entries(&AuditQuery {
            before: Some(all[1].sequence),
            limit: 10,
            ..Default::default()
        })
        .await
        .expect("entries");
    assert_eq!(older.len(), 2);

    // Whoever holds a connection cannot rewrite or remove an entry.
    let update = store
        .with_connection(|c| {
            diesel::update(mooring_store::schema::audit::table)
                .set(mooring_store::schema::audit::actor.eq("mallory"))
                .execute(c)
        })
        .await;
    assert!(update.is_err(), "UPDATE refused: {update:?}");
    let delete = store
        .with_connection(|c| diesel::delete(mooring_store::schema::audit::table).execute(c))
        .await;
    assert!(delete.is_err(), "DELETE refused: {delete:?}");
    let error = format!("{:?}", delete.err());
    assert!(error.contains("append-only"), "{error}");
    assert_eq!(
        store
            .entries(&AuditQuery {
                limit: 10,
                ..Default::default()
            })
            .await
            .expect("entries"),
        all
    );
}

on_both_backends!(
    applied_events_are_removed_after_their_retention_and_no_sooner,
    quotes_past_retention_go_unless_a_payout_may_take_them_again,
    data_keys_without_a_customer_are_removed_after_the_grace,
    the_audit_trail_is_append_only_and_filtered_newest_first,
);
