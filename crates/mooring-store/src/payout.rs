//! The payout ledger, the event inbox and the poll marks.
//!
//! Claims: on PostgreSQL, `claim` picks due rows with `FOR UPDATE SKIP
//! LOCKED`, so replicas claiming at once take disjoint rows without waiting
//! on each other; on SQLite the writer lock (`BEGIN IMMEDIATE`) serialises
//! claims. Each claim adds one to the row's `claim_token`, and every write
//! under a claim is a compare-and-set on (owner, token, state). Leases are
//! set and compared in SQL with the database's own clock ([`db_now`]), so
//! replicas whose clocks disagree still agree on whose claim lapsed.

use std::collections::HashMap;
use std::str::FromStr;

use async_trait::async_trait;
use chrono::{DateTime, Duration, NaiveDateTime, SubsecRound, Utc};
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel::sql_types::{Array, Text};
use diesel::sql_types::{Nullable, Timestamp};
use mooring_domain::payout::{Payout, PayoutOrder, PayoutState, Sighting, SightingEffect};
use mooring_domain::transaction::{Amount, TransactionId};
use mooring_ports::{Claim, Claimed, EventStore, InboxEvent, LedgerError, PayoutLedger, PollMarks};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::conn::{lock_key, write_tx};
use crate::schema::{events, payouts, poll_marks};
use crate::{AnyConnection, Store, StoreError};

/// One event applier at a time, across replicas: events apply in order.
const INBOX_LOCK: &str = "mooring:events";

/// The mark of the poll by `transfer_received_at`, and its writers' lock.
const TRANSFER_POLL: &str = "transfer_received_at";
const POLL_MARK_LOCK: &str = "mooring:poll_marks";

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

#[derive(QueryableByName)]
struct IdState {
    #[diesel(sql_type = Text)]
    transaction_id: String,
    #[diesel(sql_type = Text)]
    state: String,
}

#[derive(Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = payouts, treat_none_as_null = true)]
struct PayoutRow {
    transaction_id: String,
    state: String,
    attempt: i32,
    quote_id: Option<String>,
    sender_id: Option<String>,
    receiver_id: Option<String>,
    amount_in: Option<String>,
    amount_in_asset: Option<String>,
    amount_out: Option<String>,
    amount_out_asset: Option<String>,
    payout_id: Option<String>,
    told_pending: i32,
    reason: Option<String>,
    last_error: Option<String>,
    failures: i32,
    refund_reference: Option<String>,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
    due_at: NaiveDateTime,
    payout_order: Option<String>,
    submitted_at: Option<NaiveDateTime>,
}

/// The frozen order as stored (JSON): the fields in the order they were
/// sent, so that every retry sends the same body.
#[derive(Serialize, Deserialize)]
struct OrderDto {
    idempotency_key: String,
    transaction_id: String,
    amount: String,
    asset: String,
    delivery_method: Option<String>,
    receiver_id: String,
    receiver_fields: Vec<(String, String)>,
}

impl OrderDto {
    fn encode(o: &PayoutOrder) -> String {
        let dto = Self {
            idempotency_key: o.idempotency_key.clone(),
            transaction_id: o.transaction_id.clone(),
            amount: o.amount.to_string(),
            asset: o.asset.clone(),
            delivery_method: o.delivery_method.clone(),
            receiver_id: o.receiver_id.clone(),
            receiver_fields: o.receiver_fields.clone(),
        };
        // A struct of strings always serialises.
        serde_json::to_string(&dto).unwrap_or_default()
    }

    fn decode(text: &str) -> Result<PayoutOrder, String> {
        let dto: Self = serde_json::from_str(text).map_err(|e| format!("frozen order: {e}"))?;
        Ok(PayoutOrder {
            idempotency_key: dto.idempotency_key,
            transaction_id: dto.transaction_id,
            amount: Decimal::from_str(&dto.amount)
                .map_err(|e| format!("frozen order amount: {e}"))?,
            asset: dto.asset,
            delivery_method: dto.delivery_method,
            receiver_id: dto.receiver_id,
            receiver_fields: dto.receiver_fields,
        })
    }
}

fn clamp(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

impl PayoutRow {
    fn from_payout(p: &Payout) -> Self {
        let split = |a: &Option<Amount>| match a {
            Some(a) => (Some(a.amount.to_string()), Some(a.asset.clone())),
            None => (None, None),
        };
        let (amount_in, amount_in_asset) = split(&p.amount_in);
        let (amount_out, amount_out_asset) = split(&p.amount_out);
        Self {
            transaction_id: p.transaction_id.as_str().to_owned(),
            state: p.state.as_str().to_owned(),
            attempt: clamp(p.attempt),
            quote_id: p.quote_id.clone(),
            sender_id: p.sender_id.clone(),
            receiver_id: p.receiver_id.clone(),
            amount_in,
            amount_in_asset,
            amount_out,
            amount_out_asset,
            payout_id: p.payout_id.clone(),
            told_pending: i32::from(p.told_pending),
            reason: p.reason.clone(),
            last_error: p.last_error.clone(),
            failures: clamp(p.failures),
            refund_reference: p.refund_reference.clone(),
            created_at: p.created_at.naive_utc(),
            updated_at: p.updated_at.naive_utc(),
            due_at: p.due_at.naive_utc(),
            payout_order: p.order.as_ref().map(OrderDto::encode),
            submitted_at: p.submitted_at.map(|t| t.naive_utc()),
        }
    }

    fn into_payout(self) -> Result<Payout, Failure> {
        let corrupt = |reason: String| Failure::Corrupt {
            id: self.transaction_id.clone(),
            reason,
        };
        let amount =
            |amount: &Option<String>, asset: &Option<String>| -> Result<Option<Amount>, Failure> {
                match (amount, asset) {
                    (Some(a), Some(asset)) => Ok(Some(Amount {
                        amount: Decimal::from_str(a).map_err(|e| corrupt(e.to_string()))?,
                        asset: asset.clone(),
                    })),
                    _ => Ok(None),
                }
            };
        Ok(Payout {
            transaction_id: TransactionId::parse(&self.transaction_id)
                .map_err(|e| corrupt(e.to_string()))?,
            state: PayoutState::parse(&self.state)
                .ok_or_else(|| corrupt(format!("unknown state {:?}", self.state)))?,
            attempt: u32::try_from(self.attempt).unwrap_or(1),
            quote_id: self.quote_id.clone(),
            sender_id: self.sender_id.clone(),
            receiver_id: self.receiver_id.clone(),
            amount_in: amount(&self.amount_in, &self.amount_in_asset)?,
            amount_out: amount(&self.amount_out, &self.amount_out_asset)?,
            payout_id: self.payout_id.clone(),
            told_pending: self.told_pending != 0,
            reason: self.reason.clone(),
            last_error: self.last_error.clone(),
            failures: u32::try_from(self.failures).unwrap_or(0),
            refund_reference: self.refund_reference.clone(),
            created_at: self.created_at.and_utc(),
            updated_at: self.updated_at.and_utc(),
            due_at: self.due_at.and_utc(),
            order: self
                .payout_order
                .as_deref()
                .map(OrderDto::decode)
                .transpose()
                .map_err(corrupt)?,
            submitted_at: self.submitted_at.map(|t| t.and_utc()),
        })
    }
}

/// The database's clock, as SQL of the connection's backend: UTC, in the
/// form both backends compare `TIMESTAMP` columns in.
fn db_now(conn: &AnyConnection) -> &'static str {
    match conn {
        AnyConnection::Postgresql(_) => "(now() AT TIME ZONE 'UTC')",
        AnyConnection::Sqlite(_) => "strftime('%Y-%m-%d %H:%M:%f', 'now')",
    }
}

/// The database's now plus `lease`, as SQL (a lease's end). PostgreSQL's
/// `now()` is when the transaction began, after the caller started its
/// count: the lease never ends before the caller thinks it does.
fn db_lease_end(conn: &AnyConnection, lease: Duration) -> String {
    let ms = lease.num_milliseconds().max(0);
    match conn {
        AnyConnection::Postgresql(_) => {
            format!("((now() AT TIME ZONE 'UTC') + interval '{ms} milliseconds')")
        }
        AnyConnection::Sqlite(_) => format!(
            "strftime('%Y-%m-%d %H:%M:%f', 'now', '+{}.{:03} seconds')",
            ms / 1000,
            ms % 1000
        ),
    }
}

fn lease_sql(expr: &str) -> diesel::expression::SqlLiteral<Nullable<Timestamp>> {
    diesel::dsl::sql::<Nullable<Timestamp>>(expr)
}

fn active_states() -> Vec<&'static str> {
    PayoutState::ALL
        .into_iter()
        .filter(|s| s.is_active())
        .map(PayoutState::as_str)
        .collect()
}

/// An entry's state, the entry locked until the transaction ends (`FOR
/// UPDATE` on PostgreSQL; SQLite's writer holds the database lock). One
/// round trip.
fn locked_state(conn: &mut AnyConnection, id: &str) -> Result<Option<PayoutState>, Failure> {
    let query = payouts::table.find(id).select(payouts::state);
    let state: Option<String> = match conn {
        AnyConnection::Postgresql(pg) => query.for_update().first(pg).optional()?,
        AnyConnection::Sqlite(sqlite) => query.first(sqlite).optional()?,
    };
    state
        .map(|s| {
            PayoutState::parse(&s).ok_or_else(|| Failure::Corrupt {
                id: id.to_owned(),
                reason: format!("unknown state {s:?}"),
            })
        })
        .transpose()
}

/// A sighting, inside the caller's write transaction.
fn sight_in(
    conn: &mut AnyConnection,
    id: &TransactionId,
    sighting: Sighting,
    now: DateTime<Utc>,
) -> Result<PayoutState, Failure> {
    let current = locked_state(conn, id.as_str())?;
    match PayoutState::on_sighting(current, sighting) {
        SightingEffect::Create(next) => {
            let row = PayoutRow::from_payout(&Payout::new(id.clone(), next, now));
            let insert = diesel::insert_into(payouts::table)
                .values(&row)
                .on_conflict_do_nothing();
            let inserted = match conn {
                AnyConnection::Postgresql(pg) => insert.execute(pg)?,
                AnyConnection::Sqlite(sqlite) => insert.execute(sqlite)?,
            };
            if inserted == 1 {
                return Ok(next);
            }
            // Another replica's sighting won the insert (PostgreSQL: no row
            // existed to lock); apply this one on top of it.
            let current = locked_state(conn, id.as_str())?.ok_or(Failure::NotFound)?;
            apply_effect(
                conn,
                id.as_str(),
                current,
                PayoutState::on_sighting(Some(current), sighting),
                now,
            )
        }
        effect => {
            let current = current.ok_or(Failure::NotFound)?;
            apply_effect(conn, id.as_str(), current, effect, now)
        }
    }
}

/// Applies a sighting's effect on an existing entry; its state afterwards.
fn apply_effect(
    conn: &mut AnyConnection,
    id: &str,
    current: PayoutState,
    effect: SightingEffect,
    now: DateTime<Utc>,
) -> Result<PayoutState, Failure> {
    match effect {
        SightingEffect::Create(_) | SightingEffect::Nothing => Ok(current),
        SightingEffect::Move(next) => {
            move_to(conn, id, next, now)?;
            Ok(next)
        }
        SightingEffect::Wake => {
            diesel::update(payouts::table.find(id))
                .set(payouts::due_at.eq(now.naive_utc()))
                .execute(conn)?;
            Ok(current)
        }
    }
}

/// Moves an entry to `state`, due now, and fences off its claim: whoever
/// held it read an older state, and its next save fails the compare-and-set.
fn move_to(
    conn: &mut AnyConnection,
    id: &str,
    state: PayoutState,
    now: DateTime<Utc>,
) -> Result<(), Failure> {
    let now = now.naive_utc();
    diesel::update(payouts::table.find(id))
        .set((
            payouts::state.eq(state.as_str()),
            payouts::due_at.eq(now),
            payouts::updated_at.eq(now),
            payouts::failures.eq(0),
            payouts::last_error.eq(None::<String>),
            payouts::claimed_by.eq(None::<String>),
            payouts::lease_until.eq(None::<NaiveDateTime>),
            payouts::claim_token.eq(payouts::claim_token + 1),
        ))
        .execute(conn)?;
    Ok(())
}

fn wake_in(
    conn: &mut AnyConnection,
    customer_id: &str,
    now: DateTime<Utc>,
) -> Result<u64, Failure> {
    let n = diesel::update(
        payouts::table
            .filter(
                payouts::receiver_id
                    .eq(customer_id)
                    .or(payouts::sender_id.eq(customer_id)),
            )
            .filter(payouts::state.eq(PayoutState::AwaitingKyc.as_str())),
    )
    .set(payouts::due_at.eq(now.naive_utc()))
    .execute(conn)?;
    Ok(n as u64)
}

#[derive(QueryableByName)]
struct IdRow {
    #[diesel(sql_type = diesel::sql_types::Text)]
    transaction_id: String,
}

/// The ids of up to `limit` claimable rows (due by the caller's clock, the
/// claim free or lapsed by the database's), locked (and skipped by other
/// claimers) on PostgreSQL until the transaction ends.
fn claimable(
    conn: &mut AnyConnection,
    limit: u32,
    now: NaiveDateTime,
) -> Result<Vec<String>, Failure> {
    use diesel::sql_types::BigInt;
    let db_now = db_now(conn);
    let states = active_states()
        .iter()
        .map(|s| format!("'{s}'"))
        .collect::<Vec<_>>()
        .join(", ");
    let limit = i64::from(limit);
    let rows: Vec<IdRow> = match conn {
        AnyConnection::Postgresql(pg) => diesel::sql_query(format!(
            "SELECT transaction_id FROM payouts WHERE state IN ({states}) AND due_at <= $1 \
             AND (claimed_by IS NULL OR lease_until < {db_now}) ORDER BY due_at LIMIT $2 \
             FOR UPDATE SKIP LOCKED"
        ))
        .bind::<Timestamp, _>(now)
        .bind::<BigInt, _>(limit)
        .load(pg)?,
        AnyConnection::Sqlite(sqlite) => diesel::sql_query(format!(
            "SELECT transaction_id FROM payouts WHERE state IN ({states}) AND due_at <= ? \
             AND (claimed_by IS NULL OR lease_until < {db_now}) ORDER BY due_at LIMIT ?"
        ))
        .bind::<Timestamp, _>(now)
        .bind::<BigInt, _>(limit)
        .load(sqlite)?,
    };
    Ok(rows.into_iter().map(|r| r.transaction_id).collect())
}

fn load(conn: &mut AnyConnection, ids: &[String]) -> Result<Vec<Payout>, Failure> {
    let rows: Vec<PayoutRow> = payouts::table
        .filter(payouts::transaction_id.eq_any(ids))
        .order(payouts::due_at.asc())
        .select(PayoutRow::as_select())
        .load(conn)?;
    rows.into_iter().map(PayoutRow::into_payout).collect()
}

#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = events)]
struct EventRow {
    id: String,
    kind: String,
    occurred_at: NaiveDateTime,
    received_at: NaiveDateTime,
    transaction_id: Option<String>,
    sighting: Option<String>,
    customer_id: Option<String>,
    body: String,
}

fn sighting_name(s: Sighting) -> &'static str {
    match s {
        Sighting::Unfunded => "unfunded",
        Sighting::Funded => "funded",
        Sighting::Finished => "finished",
    }
}

fn sighting_of(name: &str) -> Option<Sighting> {
    match name {
        "unfunded" => Some(Sighting::Unfunded),
        "funded" => Some(Sighting::Funded),
        "finished" => Some(Sighting::Finished),
        _ => None,
    }
}

fn apply_in(conn: &mut AnyConnection, limit: u32, now: DateTime<Utc>) -> Result<u32, Failure> {
    lock_key(conn, INBOX_LOCK)?;
    let waiting: Vec<EventRow> = events::table
        .filter(events::processed_at.is_null())
        .order((
            events::occurred_at.asc(),
            events::received_at.asc(),
            events::id.asc(),
        ))
        .limit(i64::from(limit))
        .select(EventRow::as_select())
        .load(conn)?;
    for event in &waiting {
        if let (Some(id), Some(sighting)) = (
            event.transaction_id.as_deref(),
            event.sighting.as_deref().and_then(sighting_of),
        ) && let Ok(id) = TransactionId::parse(id)
        {
            sight_in(conn, &id, sighting, now)?;
        }
        if let Some(customer) = &event.customer_id {
            wake_in(conn, customer, now)?;
        }
        diesel::update(events::table.find(&event.id))
            .set(events::processed_at.eq(now.naive_utc()))
            .execute(conn)?;
    }
    Ok(waiting.len() as u32)
}

impl Store {
    async fn ledger<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut AnyConnection) -> Result<T, Failure> + Send + 'static,
    ) -> Result<T, LedgerError> {
        Ok(self.run(f).await?)
    }
}

#[async_trait]
impl PayoutLedger for Store {
    async fn sight(
        &self,
        id: &TransactionId,
        sighting: Sighting,
        now: DateTime<Utc>,
    ) -> Result<PayoutState, LedgerError> {
        let id = id.clone();
        self.ledger(move |conn| write_tx(conn, |c| sight_in(c, &id, sighting, now)))
            .await
    }

    async fn sight_all(
        &self,
        sightings: &[(TransactionId, Sighting)],
        now: DateTime<Utc>,
    ) -> Result<Vec<PayoutState>, LedgerError> {
        let mut order: Vec<(usize, TransactionId, Sighting)> = sightings
            .iter()
            .enumerate()
            .map(|(i, (id, s))| (i, id.clone(), *s))
            .collect();
        order.sort_by(|a, b| a.1.as_str().cmp(b.1.as_str()));
        let count = sightings.len();
        self.ledger(move |conn| {
            write_tx(conn, |c| {
                let mut states = vec![PayoutState::New; count];
                for (i, id, sighting) in &order {
                    states[*i] = sight_in(c, id, *sighting, now)?;
                }
                Ok(states)
            })
        })
        .await
    }

    async fn knows_funds(&self, ids: &[TransactionId]) -> Result<Vec<bool>, LedgerError> {
        let ids: Vec<String> = ids.iter().map(|i| i.as_str().to_owned()).collect();
        self.ledger(move |conn| {
            let rows: Vec<(String, String)> = match conn {
                // Not the query builder: its statement is prepared once per
                // connection, and PostgreSQL's generic plan for `= ANY($1)`
                // on a small ledger is a scan comparing every row with every
                // id (about 1 ms for 1,000 entries and a page of 50). Sent
                // unprepared, it is planned with the ids in hand.
                AnyConnection::Postgresql(pg) => diesel::sql_query(
                    "SELECT transaction_id, state FROM payouts WHERE transaction_id = ANY($1)",
                )
                .bind::<Array<Text>, _>(&ids)
                .load::<IdState>(pg)?
                .into_iter()
                .map(|r| (r.transaction_id, r.state))
                .collect(),
                AnyConnection::Sqlite(_) => payouts::table
                    .filter(payouts::transaction_id.eq_any(&ids))
                    .select((payouts::transaction_id, payouts::state))
                    .load(conn)?,
            };
            let states: HashMap<String, String> = rows.into_iter().collect();
            Ok(ids
                .iter()
                .map(|id| {
                    states
                        .get(id)
                        .and_then(|s| PayoutState::parse(s))
                        .is_some_and(PayoutState::knows_funds)
                })
                .collect())
        })
        .await
    }

    async fn claim(
        &self,
        owner: &str,
        limit: u32,
        now: DateTime<Utc>,
        lease: Duration,
    ) -> Result<Vec<Claimed>, LedgerError> {
        let owner = owner.to_owned();
        self.ledger(move |conn| {
            write_tx(conn, |c| {
                let ids = claimable(c, limit, now.naive_utc())?;
                if ids.is_empty() {
                    return Ok(vec![]);
                }
                let until = db_lease_end(c, lease);
                diesel::update(payouts::table.filter(payouts::transaction_id.eq_any(&ids)))
                    .set((
                        payouts::claimed_by.eq(&owner),
                        payouts::lease_until.eq(lease_sql(&until)),
                        payouts::claim_token.eq(payouts::claim_token + 1),
                    ))
                    .execute(c)?;
                let tokens: HashMap<String, i64> = payouts::table
                    .filter(payouts::transaction_id.eq_any(&ids))
                    .select((payouts::transaction_id, payouts::claim_token))
                    .load::<(String, i64)>(c)?
                    .into_iter()
                    .collect();
                load(c, &ids)?
                    .into_iter()
                    .map(|payout| {
                        let token = *tokens
                            .get(payout.transaction_id.as_str())
                            .ok_or(Failure::NotFound)?;
                        Ok(Claimed {
                            payout,
                            claim: Claim {
                                owner: owner.clone(),
                                token,
                            },
                        })
                    })
                    .collect()
            })
        })
        .await
    }

    async fn renew(
        &self,
        id: &TransactionId,
        claim: &Claim,
        lease: Duration,
    ) -> Result<(), LedgerError> {
        let id = id.as_str().to_owned();
        let claim = claim.clone();
        self.ledger(move |conn| {
            let until = db_lease_end(conn, lease);
            let n = diesel::update(
                payouts::table
                    .find(&id)
                    .filter(payouts::claimed_by.eq(&claim.owner))
                    .filter(payouts::claim_token.eq(claim.token)),
            )
            .set(payouts::lease_until.eq(lease_sql(&until)))
            .execute(conn)?;
            if n == 0 {
                return Err(Failure::LostClaim);
            }
            Ok(())
        })
        .await
    }

    async fn save(
        &self,
        claim: &Claim,
        expected: PayoutState,
        payout: &Payout,
        lease: Option<Duration>,
    ) -> Result<(), LedgerError> {
        let claim = claim.clone();
        let row = PayoutRow::from_payout(payout);
        self.ledger(move |conn| {
            let (claimed_by, until) = match lease {
                Some(lease) => (Some(claim.owner.clone()), db_lease_end(conn, lease)),
                None => (None, "NULL".to_owned()),
            };
            let n = diesel::update(
                payouts::table
                    .find(&row.transaction_id)
                    .filter(payouts::state.eq(expected.as_str()))
                    .filter(payouts::claimed_by.eq(&claim.owner))
                    .filter(payouts::claim_token.eq(claim.token)),
            )
            .set((
                &row,
                payouts::claimed_by.eq(claimed_by),
                payouts::lease_until.eq(lease_sql(&until)),
            ))
            .execute(conn)
            .map_err(Failure::from)?;
            if n == 0 {
                return Err(Failure::LostClaim);
            }
            Ok(())
        })
        .await
    }

    async fn release(&self, id: &TransactionId, claim: &Claim) -> Result<bool, LedgerError> {
        let id = id.as_str().to_owned();
        let claim = claim.clone();
        self.ledger(move |conn| {
            let n = diesel::update(
                payouts::table
                    .find(&id)
                    .filter(payouts::claimed_by.eq(&claim.owner))
                    .filter(payouts::claim_token.eq(claim.token)),
            )
            .set((
                payouts::claimed_by.eq(None::<String>),
                payouts::lease_until.eq(None::<NaiveDateTime>),
            ))
            .execute(conn)
            .map_err(Failure::from)?;
            Ok(n == 1)
        })
        .await
    }

    async fn get(&self, id: &TransactionId) -> Result<Option<Payout>, LedgerError> {
        let id = id.as_str().to_owned();
        self.ledger(move |conn| {
            let row: Option<PayoutRow> = payouts::table
                .find(&id)
                .select(PayoutRow::as_select())
                .first(conn)
                .optional()
                .map_err(Failure::from)?;
            row.map(PayoutRow::into_payout).transpose()
        })
        .await
    }

    async fn list(&self, states: &[PayoutState], limit: u32) -> Result<Vec<Payout>, LedgerError> {
        let states: Vec<&'static str> = states.iter().map(|s| s.as_str()).collect();
        self.ledger(move |conn| {
            let mut query = payouts::table
                .order((payouts::created_at.desc(), payouts::transaction_id.asc()))
                .limit(i64::from(limit))
                .select(PayoutRow::as_select())
                .into_boxed();
            if !states.is_empty() {
                query = query.filter(payouts::state.eq_any(states));
            }
            let rows: Vec<PayoutRow> = query.load(conn).map_err(Failure::from)?;
            rows.into_iter().map(PayoutRow::into_payout).collect()
        })
        .await
    }

    async fn counts(&self) -> Result<Vec<(PayoutState, u64)>, LedgerError> {
        self.ledger(move |conn| {
            let rows: Vec<(String, i64)> = payouts::table
                .group_by(payouts::state)
                .select((payouts::state, diesel::dsl::count_star()))
                .load(conn)
                .map_err(Failure::from)?;
            Ok(rows
                .into_iter()
                .filter_map(|(s, n)| Some((PayoutState::parse(&s)?, n as u64)))
                .collect())
        })
        .await
    }

    async fn reopen(&self, from: &[PayoutState], payout: &Payout) -> Result<(), LedgerError> {
        let from: Vec<&'static str> = from.iter().map(|s| s.as_str()).collect();
        let row = PayoutRow::from_payout(payout);
        self.ledger(move |conn| {
            write_tx(conn, |c| {
                let current = locked_state(c, &row.transaction_id)?.ok_or(Failure::NotFound)?;
                if !from.contains(&current.as_str()) {
                    return Err(Failure::WrongState(current));
                }
                let lapsed = diesel::dsl::sql::<diesel::sql_types::Bool>(&format!(
                    "(claimed_by IS NULL OR lease_until < {})",
                    db_now(c)
                ));
                let n = diesel::update(payouts::table.find(&row.transaction_id).filter(lapsed))
                    .set((
                        &row,
                        payouts::claimed_by.eq(None::<String>),
                        payouts::lease_until.eq(None::<NaiveDateTime>),
                        payouts::claim_token.eq(payouts::claim_token + 1),
                    ))
                    .execute(c)?;
                if n == 0 {
                    return Err(Failure::LostClaim);
                }
                Ok(())
            })
        })
        .await
    }
}

#[async_trait]
impl EventStore for Store {
    async fn accept_event(&self, event: &InboxEvent) -> Result<bool, LedgerError> {
        let row = EventRow {
            id: event.id.clone(),
            kind: event.kind.clone(),
            occurred_at: event.occurred_at.naive_utc(),
            received_at: event.received_at.naive_utc(),
            transaction_id: event.transaction_id.as_ref().map(|t| t.as_str().to_owned()),
            sighting: event.sighting.map(|s| sighting_name(s).to_owned()),
            customer_id: event.customer_id.clone(),
            body: event.body.clone(),
        };
        self.ledger(move |conn| {
            match diesel::insert_into(events::table)
                .values(&row)
                .execute(conn)
            {
                Ok(_) => Ok(true),
                Err(DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => Ok(false),
                Err(e) => Err(Failure::from(e)),
            }
        })
        .await
    }

    async fn apply_events(&self, limit: u32, now: DateTime<Utc>) -> Result<u32, LedgerError> {
        self.ledger(move |conn| write_tx(conn, |c| apply_in(c, limit, now)))
            .await
    }

    async fn inbox_depth(&self) -> Result<u64, LedgerError> {
        self.ledger(move |conn| {
            let n: i64 = events::table
                .filter(events::processed_at.is_null())
                .count()
                .get_result(conn)
                .map_err(Failure::from)?;
            Ok(n as u64)
        })
        .await
    }
}

#[async_trait]
impl PollMarks for Store {
    async fn poll_mark(&self) -> Result<Option<DateTime<Utc>>, LedgerError> {
        self.ledger(|conn| {
            let mark: Option<NaiveDateTime> = poll_marks::table
                .find(TRANSFER_POLL)
                .select(poll_marks::mark)
                .first(conn)
                .optional()?;
            Ok(mark.map(|m| m.and_utc()))
        })
        .await
    }

    async fn advance_poll_mark(
        &self,
        mark: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<(), LedgerError> {
        // Both backends keep microseconds: cut the rest off, so the stored
        // mark is never later than the transaction it came from.
        let mark = mark.trunc_subsecs(6).naive_utc();
        let now = now.naive_utc();
        self.ledger(move |conn| {
            write_tx(conn, |c| {
                lock_key(c, POLL_MARK_LOCK)?;
                let stored: Option<NaiveDateTime> = poll_marks::table
                    .find(TRANSFER_POLL)
                    .select(poll_marks::mark)
                    .first(c)
                    .optional()?;
                match stored {
                    None => {
                        diesel::insert_into(poll_marks::table)
                            .values((
                                poll_marks::name.eq(TRANSFER_POLL),
                                poll_marks::mark.eq(mark),
                                poll_marks::updated_at.eq(now),
                            ))
                            .execute(c)?;
                    }
                    Some(stored) if stored < mark => {
                        diesel::update(poll_marks::table.find(TRANSFER_POLL))
                            .set((poll_marks::mark.eq(mark), poll_marks::updated_at.eq(now)))
                            .execute(c)?;
                    }
                    Some(_) => {}
                }
                Ok(())
            })
        })
        .await
    }
}
