//! A payout's timeline (`payout_history`), which a trigger of migration 10
//! writes in the statement of each change; read here, oldest first.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use mooring_domain::payout::PayoutState;
use mooring_domain::transaction::TransactionId;
use mooring_ports::{LedgerError, PayoutChange};

use crate::Store;
use crate::error::Failure;

pub(super) async fn read(
    store: &Store,
    id: &TransactionId,
) -> Result<Vec<PayoutChange>, LedgerError> {
    use crate::schema::payout_history as h;
    let id = id.as_str().to_owned();
    store
        .ledger("reading the timeline of payout", id.clone(), move |conn| {
            type Row = (
                NaiveDateTime,
                Option<String>,
                String,
                String,
                Option<String>,
                Option<String>,
            );
            let rows: Vec<Row> = h::table
                .filter(h::transaction_id.eq(&id))
                .order(h::id.asc())
                .select((
                    h::at,
                    h::from_state,
                    h::to_state,
                    h::cause,
                    h::reason,
                    h::payout_id,
                ))
                .load(conn)?;
            let state = |s: &str| {
                PayoutState::parse(s).ok_or_else(|| Failure::Corrupt {
                    what: "payout history",
                    id: id.clone(),
                    reason: format!("unknown state {s:?}"),
                })
            };
            rows.into_iter()
                .map(|(at, from, to, cause, reason, payout_id)| {
                    Ok(PayoutChange {
                        at: at.and_utc(),
                        from: from.as_deref().map(state).transpose()?,
                        to: state(&to)?,
                        cause,
                        reason,
                        payout_id,
                    })
                })
                .collect()
        })
        .await
}
