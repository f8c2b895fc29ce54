//! The event inbox: each event once, applied in order with its effect;
//! an event's body is kept only until it is applied.

use async_trait::async_trait;
use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel::sql_types::{Array, Text};
use mooring_domain::payout::{PayoutState, Sighting};
use mooring_domain::transaction::TransactionId;
use mooring_ports::{EventStore, InboxEvent, LedgerError};

use crate::conn::{lock_key, queued, write_tx};
use crate::schema::{events, payouts};
use crate::{AnyConnection, Store};

use super::Failure;
use super::ledger::{BY_EVENT, sight_in};

/// One event applier at a time, across replicas: events apply in order.
const INBOX_LOCK: &str = "mooring:events";

/// Makes the entries awaiting this customer's KYC (as sender or receiver)
/// due now.
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

/// On PostgreSQL, locks up front, in transaction-id order, the entries the
/// events will touch (their transactions', and those awaiting their
/// customers' KYC): the order the engine's batched saves and the poll's
/// sightings lock rows in, so none of them waits on another in a cycle.
/// SQLite needs nothing: its writer holds the database lock.
fn lock_entries(conn: &mut AnyConnection, events: &[EventRow]) -> Result<(), Failure> {
    let AnyConnection::Postgresql(pg) = conn else {
        return Ok(());
    };
    let ids: Vec<&str> = events
        .iter()
        .filter_map(|e| e.transaction_id.as_deref())
        .collect();
    let customers: Vec<&str> = events
        .iter()
        .filter_map(|e| e.customer_id.as_deref())
        .collect();
    if ids.is_empty() && customers.is_empty() {
        return Ok(());
    }
    diesel::sql_query(
        "SELECT transaction_id FROM payouts WHERE transaction_id = ANY($1) \
         OR (state = $3 AND (receiver_id = ANY($2) OR sender_id = ANY($2))) \
         ORDER BY transaction_id FOR UPDATE",
    )
    .bind::<Array<Text>, _>(&ids)
    .bind::<Array<Text>, _>(&customers)
    .bind::<Text, _>(PayoutState::AwaitingKyc.as_str())
    .execute(pg)?;
    Ok(())
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
    lock_entries(conn, &waiting)?;
    for event in &waiting {
        if let (Some(id), Some(sighting)) = (
            event.transaction_id.as_deref(),
            event.sighting.as_deref().and_then(sighting_of),
        ) && let Ok(id) = TransactionId::parse(id)
        {
            sight_in(conn, &id, sighting, now, BY_EVENT)?;
        }
        if let Some(customer) = &event.customer_id {
            wake_in(conn, customer, now)?;
        }
        // Applied: what processing needed is kept (the id, against
        // duplicates; the facts); the AP's body, which names accounts and
        // amounts, is dropped.
        diesel::update(events::table.find(&event.id))
            .set((
                events::processed_at.eq(now.naive_utc()),
                events::body.eq(""),
            ))
            .execute(conn)?;
    }
    Ok(waiting.len() as u32)
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
        self.ledger(
            "recording event",
            row.id.clone(),
            move |conn| match queued(conn, |c| {
                diesel::insert_into(events::table).values(&row).execute(c)
            }) {
                Ok(_) => Ok(true),
                Err(DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => Ok(false),
                Err(e) => Err(Failure::from(e)),
            },
        )
        .await
    }

    async fn apply_events(&self, limit: u32, now: DateTime<Utc>) -> Result<u32, LedgerError> {
        self.ledger("applying events", limit, move |conn| {
            write_tx(conn, |c| apply_in(c, limit, now))
        })
        .await
    }

    async fn inbox_depth(&self) -> Result<u64, LedgerError> {
        self.ledger("counting the inbox", "-", move |conn| {
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
