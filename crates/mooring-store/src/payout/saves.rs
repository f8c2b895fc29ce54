//! The engine's saves, committed in batches: every save waiting when a
//! connection (and, on SQLite, the writer) comes free is written in one
//! transaction, so that many payouts' steps share one commit (one WAL
//! flush on PostgreSQL, one set of WAL frames on SQLite).
//!
//! Each save in a batch is still its own compare-and-set on (state, owner,
//! token), and its caller hears of its own outcome only after the batch
//! committed; a save whose claim was lost fails alone (its statement
//! changes no row). Why no save can be lost, doubled or wrongly reported:
//!
//! - A caller's step goes on only once its save is reported committed, so a
//!   crash before the batch's `COMMIT` is, for every step in the batch, a
//!   crash before its save: each entry is resumed from its last state.
//! - A statement that fails (not a lost claim: a database error) rolls the
//!   batch back, which is then written one save per transaction, so one
//!   entry's failure never fails the others. A `COMMIT` whose answer never
//!   came fails every save of the batch, as it would fail a single save:
//!   each entry resumes from what the database holds once its claim lapses.
//! - Rows are written in order of transaction id, the order the poll's
//!   sightings and the event pass lock them in, so two batches (two
//!   replicas), a sighting and an event pass do not wait on each other in a
//!   cycle on PostgreSQL; claims skip locked rows and never wait. Should
//!   PostgreSQL still find a deadlock (an entry moved into `awaiting_kyc`
//!   between the event pass's locks and its wake-up), its victim rolls back:
//!   a batch is then written one save at a time, an event pass runs again.
//! - A save whose caller went away before a batch took it is dropped, as
//!   a crash before the save would have left it.
//! - A save is taken out of the queue by exactly one batch, under its mutex.

use std::sync::{Arc, Mutex, PoisonError};

use chrono::Duration;
use mooring_domain::payout::PayoutState;
use mooring_ports::Claim;
use tokio::sync::oneshot;

use crate::conn::{Bind, CachedSql, queued, write_tx};
use crate::error::Failure;
use crate::pii::Pii;
use crate::{AnyConnection, StoreError};

use super::ledger::{SAVE_KEEPING_SQL, SAVE_RELEASING_SQL, lease_ms, on_backend};
use super::row::PayoutRow;

/// One save waiting for its batch.
pub(super) struct Save {
    pub(super) claim: Claim,
    pub(super) expected: PayoutState,
    pub(super) row: PayoutRow,
    /// Keep the claim for a new lease of this length; `None` gives it back.
    pub(super) lease: Option<Duration>,
    pub(super) done: oneshot::Sender<Result<(), Failure>>,
}

/// The saves waiting for a connection, shared by every call of one store.
#[derive(Default)]
pub(crate) struct SaveQueue(Mutex<Vec<Save>>);

impl SaveQueue {
    pub(super) fn push(&self, save: Save) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(save);
    }

    /// Every save waiting now, for one batch.
    pub(super) fn take(&self) -> Vec<Save> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Fails every save waiting now (no connection could be had for them).
    pub(super) fn fail_all(&self, why: &str) {
        for save in self.take() {
            let _ = save.done.send(Err(not_written(why)));
        }
    }
}

/// A save the database did not write, or may not have: `why`, in words.
pub(super) fn failed(why: String) -> Failure {
    Failure::Store {
        doing: None,
        source: StoreError::Task(why),
    }
}

fn not_written(why: &str) -> Failure {
    failed(format!("the save was not written: {why}"))
}

fn unknown(why: &str) -> Failure {
    failed(format!(
        "the batch of saves did not commit, or its answer was lost: {why}"
    ))
}

/// Why a batch did not commit.
enum BatchError {
    /// A save's statement failed; the batch was rolled back.
    Statement,
    /// `BEGIN`, `COMMIT` or `ROLLBACK` failed: the outcome is unknown.
    Transaction(diesel::result::Error),
}

impl From<diesel::result::Error> for BatchError {
    fn from(e: diesel::result::Error) -> Self {
        Self::Transaction(e)
    }
}

/// Writes one save: its order sealed, then the compare-and-set. `LostClaim`
/// when the claim is no longer the caller's.
fn write_one(conn: &mut AnyConnection, pii: &Pii, save: &Save) -> Result<(), Failure> {
    let row = save.row.clone().sealed(conn, pii)?;
    let mut binds = row.save_binds();
    let sql = match save.lease {
        Some(lease) => {
            binds.push(Bind::Text(&save.claim.owner));
            binds.push(Bind::BigInt(lease_ms(lease)));
            &*SAVE_KEEPING_SQL
        }
        None => &*SAVE_RELEASING_SQL,
    };
    binds.extend([
        Bind::Text(&row.transaction_id),
        Bind::Text(save.expected.as_str()),
        Bind::Text(&save.claim.owner),
        Bind::BigInt(save.claim.token),
    ]);
    if on_backend(conn, CachedSql::typed(sql, binds))? == 0 {
        return Err(Failure::LostClaim);
    }
    Ok(())
}

/// Writes every save waiting in `queue` and tells each caller its outcome:
/// one transaction for all (see the module's docs), or one each after a
/// statement failed. On SQLite the saves are taken once the writer is this
/// call's, so that every save that queued behind the writer is in the batch.
pub(super) fn write_batch(conn: &mut AnyConnection, pii: &Arc<Pii>, queue: &SaveQueue) {
    queued(conn, |c| {
        write_taken(c, pii, queue.take());
        Ok::<_, std::convert::Infallible>(())
    })
    .unwrap_or_else(|never| match never {});
}

fn write_taken(conn: &mut AnyConnection, pii: &Arc<Pii>, mut saves: Vec<Save>) {
    // A caller that went away (its step cancelled, at shutdown) before its
    // save was taken: as if it crashed before the save, which is never
    // written late, with a lease nobody holds any more.
    saves.retain(|save| !save.done.is_closed());
    if saves.is_empty() {
        return;
    }
    if saves.len() == 1 {
        return write_each(conn, pii, saves);
    }
    saves.sort_by(|a, b| a.row.transaction_id.cmp(&b.row.transaction_id));
    let batch = write_tx(conn, |c| {
        saves
            .iter()
            .map(|save| match write_one(c, pii, save) {
                Ok(()) => Ok(Ok(())),
                Err(Failure::LostClaim) => Ok(Err(Failure::LostClaim)),
                Err(e) => {
                    tracing::warn!(error = %e, "a save failed inside its batch; the batch is written one save at a time");
                    Err(BatchError::Statement)
                }
            })
            .collect::<Result<Vec<_>, BatchError>>()
    });
    match batch {
        Ok(results) => {
            for (save, result) in saves.into_iter().zip(results) {
                let _ = save.done.send(result);
            }
        }
        Err(BatchError::Statement) => write_each(conn, pii, saves),
        Err(BatchError::Transaction(e)) => {
            let why = e.to_string();
            for save in saves {
                let _ = save.done.send(Err(unknown(&why)));
            }
        }
    }
}

/// Writes each save in a transaction of its own, and tells its caller.
fn write_each(conn: &mut AnyConnection, pii: &Arc<Pii>, saves: Vec<Save>) {
    for save in saves {
        let result = write_one(conn, pii, &save);
        let _ = save.done.send(result);
    }
}
