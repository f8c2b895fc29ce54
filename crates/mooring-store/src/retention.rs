//! Retention: pruning what is no longer needed, a batch per transaction,
//! one replica per kind at a time (an advisory lock on PostgreSQL, the
//! writer lock on SQLite: two deletes of one set of rows cannot deadlock).
//! Each delete repeats its condition, so a row that stopped matching
//! between the pick and the delete (an event not yet applied, a quote a
//! payout came to name, a customer made again) is kept.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use diesel::dsl::{exists, not};
use diesel::prelude::*;
use mooring_domain::payout::PayoutState;
use mooring_ports::{Retention, RetentionError};

use crate::conn::{lock_key, write_tx};
use crate::schema::{customers, data_keys, events, liquidity_holds, payouts, quotes};
use crate::{Store, StoreError};

fn unknown(e: impl Into<StoreError>) -> RetentionError {
    RetentionError::Unknown(anyhow::Error::new(e.into()))
}

/// The states of a payout that is not final: it may still need the order
/// sealed under its receiver's key.
fn active_states() -> Vec<&'static str> {
    PayoutState::ALL
        .into_iter()
        .filter(|s| !s.is_final())
        .map(PayoutState::as_str)
        .collect()
}

/// The states from which a payout may still take its quote again: every
/// one but paid and refunded (a closed entry reopens on a funded sighting,
/// a rejected or failed one on an operator's retry).
fn quote_states() -> Vec<&'static str> {
    PayoutState::ALL
        .into_iter()
        .filter(|s| !matches!(s, PayoutState::Completed | PayoutState::Refunded))
        .map(PayoutState::as_str)
        .collect()
}

#[async_trait]
impl Retention for Store {
    #[tracing::instrument(skip_all)]
    async fn prune_events(
        &self,
        applied_before: DateTime<Utc>,
        limit: u32,
    ) -> Result<u64, RetentionError> {
        let before = applied_before.naive_utc();
        self.with_connection(move |conn| {
            write_tx(conn, |c| {
                lock_key(c, "mooring:retention:events")?;
                let ids: Vec<String> = events::table
                    .filter(events::processed_at.lt(before))
                    .order(events::processed_at.asc())
                    .limit(i64::from(limit))
                    .select(events::id)
                    .load(c)?;
                let n = diesel::delete(
                    events::table
                        .filter(events::id.eq_any(&ids))
                        .filter(events::processed_at.lt(before)),
                )
                .execute(c)?;
                Ok::<_, diesel::result::Error>(n as u64)
            })
        })
        .await
        .map_err(unknown)
    }

    #[tracing::instrument(skip_all)]
    async fn prune_quotes(&self, before: DateTime<Utc>, limit: u32) -> Result<u64, RetentionError> {
        let before = before.naive_utc();
        let active = quote_states();
        self.with_connection(move |conn| {
            write_tx(conn, |c| {
                lock_key(c, "mooring:retention:quotes")?;
                let prunable = quotes::used_by
                    .is_null()
                    .and(quotes::expires_at.lt(before))
                    .or(quotes::used_at.lt(before));
                let named = || {
                    exists(
                        payouts::table
                            .filter(payouts::quote_id.eq(quotes::id.nullable()))
                            .filter(payouts::state.eq_any(active.clone())),
                    )
                };
                let ids: Vec<String> = quotes::table
                    .filter(prunable)
                    .filter(not(named()))
                    .order(quotes::expires_at.asc())
                    .limit(i64::from(limit))
                    .select(quotes::id)
                    .load(c)?;
                // The seconds of liquidity_holds before the cut-off: no live
                // quote ends in them (a hold ends with its quote's expiry).
                diesel::delete(liquidity_holds::table.filter(liquidity_holds::ends_at.lt(before)))
                    .execute(c)?;
                if ids.is_empty() {
                    return Ok(0);
                }
                // Fee details go with their quote (ON DELETE CASCADE, with
                // foreign keys on for SQLite connections).
                let n = diesel::delete(
                    quotes::table
                        .filter(quotes::id.eq_any(&ids))
                        .filter(prunable)
                        .filter(not(named())),
                )
                .execute(c)?;
                Ok::<_, diesel::result::Error>(n as u64)
            })
        })
        .await
        .map_err(unknown)
    }

    #[tracing::instrument(skip_all)]
    async fn prune_orphan_keys(
        &self,
        made_before: DateTime<Utc>,
        limit: u32,
    ) -> Result<u64, RetentionError> {
        let before = made_before.naive_utc();
        self.with_connection(move |conn| {
            write_tx(conn, |c| {
                lock_key(c, "mooring:retention:data_keys")?;
                // Kept while its customer exists, or while a payout that is
                // not final still needs the order sealed under it (a
                // receiver erased mid-step: docs/security.md, "Erasure").
                // A back-office user's key (`staff:<name>`, sealing their
                // TOTP secret) is theirs as long as they exist: users are
                // disabled, never deleted.
                let owner = || {
                    exists(customers::table.filter(customers::id.eq(data_keys::customer_id)))
                        .or(exists(
                            payouts::table
                                .filter(payouts::receiver_id.eq(data_keys::customer_id.nullable()))
                                .filter(payouts::state.eq_any(active_states())),
                        ))
                        .or(data_keys::customer_id.like(format!("{}%", crate::staff::KEY_PREFIX)))
                };
                let ids: Vec<String> = data_keys::table
                    .filter(data_keys::created_at.lt(before))
                    .filter(not(owner()))
                    .limit(i64::from(limit))
                    .select(data_keys::customer_id)
                    .load(c)?;
                let n = diesel::delete(
                    data_keys::table
                        .filter(data_keys::customer_id.eq_any(&ids))
                        .filter(data_keys::created_at.lt(before))
                        .filter(not(owner())),
                )
                .execute(c)?;
                Ok::<_, diesel::result::Error>(n as u64)
            })
        })
        .await
        .map_err(unknown)
    }
}
