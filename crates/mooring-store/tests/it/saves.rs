//! The engine's saves in batches, on both backends: saves waiting at once
//! commit together (one transaction, on PostgreSQL by the rows' `xmin`),
//! each still its own compare-and-set; a stale one fails alone, and one
//! whose statement fails does not fail the others.

use std::sync::mpsc;

use chrono::{Duration, Utc};
use diesel::connection::SimpleConnection;
use mooring_domain::payout::{PayoutState, Sighting};
use mooring_domain::transaction::TransactionId;
use mooring_ports::{Claim, Claimed, LedgerError, PayoutLedger};
use mooring_store::{AnyConnection, Backend, Store};
use mooring_testsupport::{TestDb, on_both_backends};

use crate::store_with_pool;

fn id(s: &str) -> TransactionId {
    TransactionId::parse(s).expect("id")
}

const LONG: i64 = 60;

/// `n` funded entries `{prefix}0..`, claimed by "a".
async fn claimed(store: &Store, prefix: &str, n: usize) -> Vec<Claimed> {
    let now = Utc::now();
    let sightings: Vec<(TransactionId, Sighting)> = (0..n)
        .map(|i| (id(&format!("{prefix}{i}")), Sighting::Funded))
        .collect();
    store.sight_all(&sightings, now).await.expect("sight");
    let mut claimed = store
        .claim("a", n as u32, now, Duration::seconds(LONG))
        .await
        .expect("claim");
    claimed.sort_by(|a, b| a.payout.transaction_id.cmp(&b.payout.transaction_id));
    assert_eq!(claimed.len(), n);
    claimed
}

/// Holds the store's one connection until the sender is used (then the
/// task ends), so that the saves started meanwhile queue behind it.
async fn hold_the_connection(
    store: &Store,
) -> (
    mpsc::Sender<()>,
    tokio::task::JoinHandle<Result<(), mooring_store::StoreError>>,
) {
    let (release, released) = mpsc::channel::<()>();
    let holder = store.clone();
    let hold = tokio::spawn(async move {
        holder
            .with_connection(move |_| {
                released.recv().expect("release");
                Ok(())
            })
            .await
    });
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    (release, hold)
}

/// Saves every entry as awaiting KYC (`claims[i]` for entry `i`), all
/// queued while the store's one connection is held, then let go at once:
/// so they wait together, as the engine's do under load.
async fn save_together(
    store: &Store,
    entries: &[Claimed],
    claims: Vec<Claim>,
) -> Vec<Result<(), LedgerError>> {
    let (release, hold) = hold_the_connection(store).await;
    let now = Utc::now();
    let saves: Vec<_> = entries
        .iter()
        .zip(claims)
        .map(|(c, claim)| {
            let store = store.clone();
            let mut p = c.payout.clone();
            p.await_kyc(now, now + Duration::hours(1)).expect("move");
            tokio::spawn(async move {
                store
                    .save(
                        &claim,
                        PayoutState::Received,
                        &p,
                        Some(Duration::seconds(LONG)),
                    )
                    .await
            })
        })
        .collect();
    // Every save is queued before the connection comes free.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    release.send(()).expect("release");
    hold.await.expect("holder").expect("held");
    let mut results = Vec::new();
    for save in saves {
        results.push(save.await.expect("save task"));
    }
    results
}

async fn state(store: &Store, tx: &TransactionId) -> PayoutState {
    store.get(tx).await.expect("get").expect("entry").state()
}

/// How many transactions wrote the rows of `ids` last (PostgreSQL's xmin).
async fn writers(store: &Store, ids: Vec<String>) -> i64 {
    use diesel::prelude::*;
    use diesel::sql_types::{Array, BigInt, Text};
    #[derive(QueryableByName)]
    struct N {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    store
        .with_connection(move |conn| {
            let AnyConnection::Postgresql(pg) = conn else {
                unreachable!("PostgreSQL only");
            };
            diesel::sql_query(
                "SELECT count(DISTINCT xmin::text) AS n FROM payouts WHERE transaction_id = ANY($1)",
            )
            .bind::<Array<Text>, _>(ids)
            .get_result::<N>(pg)
            .map(|r| r.n)
        })
        .await
        .expect("xmin")
}

async fn saves_waiting_together_commit_together_and_each_keeps_its_own_outcome(db: TestDb) {
    let store = store_with_pool(&db, 1).await;
    let entries = claimed(&store, "b", 12).await;
    let mut claims: Vec<Claim> = entries.iter().map(|c| c.claim.clone()).collect();
    // Entry 3's save is a stale one: an older token of the same owner.
    claims[3].token -= 1;
    let results = save_together(&store, &entries, claims).await;
    for (i, (c, result)) in entries.iter().zip(&results).enumerate() {
        let tx = &c.payout.transaction_id;
        if i == 3 {
            assert!(
                matches!(result, Err(LedgerError::LostClaim)),
                "the stale save fails alone: {result:?}"
            );
            assert_eq!(state(&store, tx).await, PayoutState::Received);
        } else {
            assert!(result.is_ok(), "{tx}: {result:?}");
            assert_eq!(state(&store, tx).await, PayoutState::AwaitingKyc);
        }
    }
    if store.backend() == Backend::Postgres {
        let saved: Vec<String> = entries
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != 3)
            .map(|(_, c)| c.payout.transaction_id.as_str().to_owned())
            .collect();
        assert_eq!(
            writers(&store, saved).await,
            1,
            "the eleven saves committed in one transaction"
        );
    }
    // The batch kept the claims: the holder saves again, the next state.
    let now = Utc::now();
    let mut p = entries[0].payout.clone();
    p.await_kyc(now, now).expect("move");
    p.receive(now).expect("back to received");
    store
        .save(&entries[0].claim, PayoutState::AwaitingKyc, &p, None)
        .await
        .expect("the holder saves on");
}

async fn a_save_whose_statement_fails_inside_a_batch_fails_alone(db: TestDb) {
    let store = store_with_pool(&db, 1).await;
    let entries = claimed(&store, "f", 6).await;
    // The database refuses any change to entry f2.
    let backend = store.backend();
    store
        .with_connection(move |conn| {
            conn.batch_execute(match backend {
                Backend::Sqlite => {
                    "CREATE TRIGGER refuse_f2 BEFORE UPDATE ON payouts \
                     WHEN OLD.transaction_id = 'f2' \
                     BEGIN SELECT RAISE(ABORT, 'refused by the test'); END;"
                }
                Backend::Postgres => {
                    "CREATE FUNCTION refuse_f2() RETURNS trigger LANGUAGE plpgsql AS \
                     $$ BEGIN RAISE EXCEPTION 'refused by the test'; END $$; \
                     CREATE TRIGGER refuse_f2 BEFORE UPDATE ON payouts FOR EACH ROW \
                     WHEN (OLD.transaction_id = 'f2') EXECUTE FUNCTION refuse_f2();"
                }
            })
        })
        .await
        .expect("trigger");
    let claims = entries.iter().map(|c| c.claim.clone()).collect();
    let results = save_together(&store, &entries, claims).await;
    for (c, result) in entries.iter().zip(&results) {
        let tx = &c.payout.transaction_id;
        if tx.as_str() == "f2" {
            assert!(
                matches!(result, Err(LedgerError::Unknown(_))),
                "the refused save fails, and not as a lost claim: {result:?}"
            );
            assert_eq!(state(&store, tx).await, PayoutState::Received);
        } else {
            assert!(result.is_ok(), "{tx}: {result:?}");
            assert_eq!(state(&store, tx).await, PayoutState::AwaitingKyc);
        }
    }
}

async fn a_save_whose_caller_went_away_before_its_batch_is_not_written_late(db: TestDb) {
    let store = store_with_pool(&db, 1).await;
    let entries = claimed(&store, "g", 2).await;
    let (release, hold) = hold_the_connection(&store).await;
    let now = Utc::now();
    let (gone, claim) = (entries[0].payout.clone(), entries[0].claim.clone());
    let cancelled = {
        let store = store.clone();
        let mut p = gone;
        p.await_kyc(now, now + Duration::hours(1)).expect("move");
        tokio::spawn(async move {
            store
                .save(
                    &claim,
                    PayoutState::Received,
                    &p,
                    Some(Duration::seconds(LONG)),
                )
                .await
        })
    };
    // Queued behind the held connection, then its step is cancelled.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    cancelled.abort();
    assert!(cancelled.await.is_err(), "cancelled");
    release.send(()).expect("release");
    hold.await.expect("holder").expect("held");
    // The next save's batch drops it.
    let mut p = entries[1].payout.clone();
    p.await_kyc(now, now + Duration::hours(1)).expect("move");
    store
        .save(&entries[1].claim, PayoutState::Received, &p, None)
        .await
        .expect("save");
    assert_eq!(
        state(&store, &entries[1].payout.transaction_id).await,
        PayoutState::AwaitingKyc
    );
    assert_eq!(
        state(&store, &entries[0].payout.transaction_id).await,
        PayoutState::Received,
        "never written after its caller went away"
    );
}

on_both_backends!(
    a_save_whose_caller_went_away_before_its_batch_is_not_written_late,
    saves_waiting_together_commit_together_and_each_keeps_its_own_outcome,
    a_save_whose_statement_fails_inside_a_batch_fails_alone,
);
