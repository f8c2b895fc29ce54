//! The payout ledger, the event inbox and the poll marks: `row` is the
//! entry as stored, `ledger` its sightings and fenced claims, `inbox` the
//! events of `POST /event`, `marks` where the poll read down to.
//!
//! Claims: on PostgreSQL, `claim` picks due rows with `FOR UPDATE SKIP
//! LOCKED`, so replicas claiming at once take disjoint rows without waiting
//! on each other; on SQLite the writer lock (`BEGIN IMMEDIATE`) serialises
//! claims. Each claim adds one to the row's `claim_token`, and every write
//! under a claim is a compare-and-set on (owner, token, state). Leases are
//! set and compared in SQL with the database's own clock (`ledger::db_now`), so
//! replicas whose clocks disagree still agree on whose claim lapsed.

mod inbox;
mod ledger;
mod marks;
mod row;

pub(crate) use ledger::register_db_clock;

use diesel::result::Error as DieselError;
use mooring_domain::payout::PayoutState;
use mooring_ports::LedgerError;

use crate::{AnyConnection, Store, StoreError};

#[derive(Debug, thiserror::Error)]
enum Failure {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("stored payout {id} is unreadable: {reason}")]
    Corrupt { id: String, reason: String },
    #[error("not found")]
    NotFound,
    #[error("lost claim")]
    LostClaim,
    #[error("wrong state")]
    WrongState(PayoutState),
}

impl From<DieselError> for Failure {
    fn from(e: DieselError) -> Self {
        Self::Store(StoreError::Query(e))
    }
}

impl From<Failure> for LedgerError {
    fn from(f: Failure) -> Self {
        match f {
            Failure::NotFound => Self::NotFound,
            Failure::LostClaim => Self::LostClaim,
            Failure::WrongState(s) => Self::WrongState(s),
            other => Self::Unknown(anyhow::Error::new(other)),
        }
    }
}

impl Store {
    async fn ledger<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut AnyConnection) -> Result<T, Failure> + Send + 'static,
    ) -> Result<T, LedgerError> {
        Ok(self.run(f).await?)
    }
}
