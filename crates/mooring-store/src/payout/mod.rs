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

mod history;
mod inbox;
mod ledger;
mod marks;
mod row;
mod saves;

pub(crate) use ledger::register_db_clock;
pub(crate) use saves::SaveQueue;

use mooring_ports::LedgerError;

use crate::error::Failure;
use crate::{AnyConnection, Store};

impl From<Failure> for LedgerError {
    fn from(f: Failure) -> Self {
        match f {
            Failure::NotFound => Self::NotFound,
            Failure::LostClaim => Self::LostClaim,
            Failure::WrongState(s) => Self::WrongState(s),
            other => Self::Unknown(other.unknown()),
        }
    }
}

impl Store {
    /// Runs `f` on the blocking pool; a failure says it was `what` `id`.
    async fn ledger<T: Send + 'static>(
        &self,
        what: &'static str,
        id: impl std::fmt::Display,
        f: impl FnOnce(&mut AnyConnection) -> Result<T, Failure> + Send + 'static,
    ) -> Result<T, LedgerError> {
        let id = id.to_string();
        Ok(self.run(f).await.map_err(|e: Failure| e.during(what, id))?)
    }
}
