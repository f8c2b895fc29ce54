//! Sightings, fenced claims on the database's clock, compare-and-set saves.

use std::collections::HashMap;
use std::sync::LazyLock;

use async_trait::async_trait;
use chrono::{DateTime, Duration, NaiveDateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, Text};
use mooring_domain::payout::{Payout, PayoutState, Sighting, SightingEffect, Stage};
use mooring_domain::transaction::TransactionId;
use mooring_ports::{Claim, Claimed, LedgerError, OperatorEdit, PayoutChange, PayoutLedger};

use crate::conn::{Bind, CachedSql, queued, write_tx};
use crate::error::by_backend;
use crate::schema::payouts;
use crate::{AnyConnection, Store};

use super::Failure;
use super::row::{PayoutRow, SAVE_COLUMNS};
use super::saves::{Save, failed, write_batch};
use crate::pii::Pii;

#[derive(QueryableByName)]
struct IdState {
    #[diesel(sql_type = Text)]
    transaction_id: String,
    #[diesel(sql_type = Text)]
    state: String,
}

/// The database's clock, as SQL of the connection's backend: UTC, in the
/// form both backends compare `TIMESTAMP` columns in.
fn db_now(conn: &AnyConnection) -> &'static str {
    match conn {
        AnyConnection::Postgresql(_) => "(now() AT TIME ZONE 'UTC')",
        AnyConnection::Sqlite(_) => "strftime('%Y-%m-%d %H:%M:%f', 'now')",
    }
}

diesel::define_sql_function! {
    /// The end of a lease of `ms` milliseconds from the database's now, in
    /// UTC. On PostgreSQL a function of migration 6 (`now()` is when the
    /// transaction began, after the caller started its count: the lease
    /// never ends before the caller thinks it does); on SQLite, a file on
    /// this machine, one registered on each connection
    /// ([`register_db_clock`]). A function, not literal SQL, so that the
    /// statements that use it stay prepared once per connection.
    fn mooring_lease_end(ms: diesel::sql_types::BigInt) -> diesel::sql_types::Timestamp;
}

/// Registers the database clock's functions on a SQLite connection.
pub(crate) fn register_db_clock(conn: &mut diesel::SqliteConnection) -> QueryResult<()> {
    mooring_lease_end_utils::register_nondeterministic_impl(conn, |ms: i64| {
        (Utc::now() + Duration::milliseconds(ms)).naive_utc()
    })
}

/// A save of an entry that keeps its claim for a new lease, and one that
/// gives it back: a compare-and-set on (state, owner, token). Hand-written
/// so that each connection prepares them once (diesel never caches an
/// `UPDATE`; parsing and planning this one cost PostgreSQL more than
/// running it, three times per payout).
pub(super) static SAVE_KEEPING_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "UPDATE payouts SET {SAVE_COLUMNS}, changed_by = 'engine', claimed_by = ?, \
         lease_until = mooring_lease_end(?) \
         WHERE transaction_id = ? AND state = ? AND claimed_by = ? AND claim_token = ?"
    )
});
pub(super) static SAVE_RELEASING_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "UPDATE payouts SET {SAVE_COLUMNS}, changed_by = 'engine', claimed_by = NULL, \
         lease_until = NULL \
         WHERE transaction_id = ? AND state = ? AND claimed_by = ? AND claim_token = ?"
    )
});

/// The renewal of a claim right before a rail call (prepared once, like
/// the saves).
const RENEW_SQL: &str = "UPDATE payouts SET lease_until = mooring_lease_end(?) \
     WHERE transaction_id = ? AND claimed_by = ? AND claim_token = ?";

/// Runs a [`CachedSql`] write on the backend's own connection, in SQLite's
/// write queue (on the writer the caller already holds, inside a batch).
pub(super) fn on_backend(conn: &mut AnyConnection, sql: CachedSql<'_>) -> Result<usize, Failure> {
    Ok(queued(conn, |conn| by_backend!(conn, |c| sql.execute(c)))?)
}

/// A lease in the milliseconds [`mooring_lease_end`] takes.
pub(super) fn lease_ms(lease: Duration) -> i64 {
    lease.num_milliseconds().max(0)
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
                what: "payout",
                id: id.to_owned(),
                reason: format!("unknown state {s:?}"),
            })
        })
        .transpose()
}

/// Why an entry changed, as its timeline (`payout_history`) records it.
pub(super) const BY_POLL: &str = "poll";
pub(super) const BY_EVENT: &str = "event";
const BY_PERSON: &str = "person";

/// A sighting, inside the caller's write transaction; `cause` is where it
/// came from ([`BY_POLL`], [`BY_EVENT`]).
pub(super) fn sight_in(
    conn: &mut AnyConnection,
    id: &TransactionId,
    sighting: Sighting,
    now: DateTime<Utc>,
    cause: &'static str,
) -> Result<PayoutState, Failure> {
    let current = locked_state(conn, id.as_str())?;
    match PayoutState::on_sighting(current, sighting) {
        SightingEffect::Create(next) => {
            // A sighting creates `new` or `received`, which carry no data.
            let stage = Stage::plain(next).ok_or(Failure::WrongState(next))?;
            let row = PayoutRow::from_payout(&Payout::new(id.clone(), stage, now));
            let insert = diesel::insert_into(payouts::table)
                .values((&row, payouts::changed_by.eq(cause)))
                .on_conflict_do_nothing();
            let inserted = by_backend!(conn, |c| insert.execute(c))?;
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
                cause,
            )
        }
        effect => {
            let current = current.ok_or(Failure::NotFound)?;
            apply_effect(conn, id.as_str(), current, effect, now, cause)
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
    cause: &'static str,
) -> Result<PayoutState, Failure> {
    match effect {
        SightingEffect::Create(_) | SightingEffect::Nothing => Ok(current),
        SightingEffect::Move(next) => {
            move_to(conn, id, next, now, cause)?;
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
    cause: &'static str,
) -> Result<(), Failure> {
    let now = now.naive_utc();
    diesel::update(payouts::table.find(id))
        .set((
            payouts::state.eq(state.as_str()),
            payouts::changed_by.eq(cause),
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
    let db_now = db_now(conn);
    let states = active_states()
        .iter()
        .map(|s| format!("'{s}'"))
        .collect::<Vec<_>>()
        .join(", ");
    let limit = i64::from(limit);
    // PostgreSQL skips rows another replica is claiming; SQLite's writer
    // holds the database lock, so nothing else claims meanwhile.
    let skip_locked = match conn {
        AnyConnection::Postgresql(_) => " FOR UPDATE SKIP LOCKED",
        AnyConnection::Sqlite(_) => "",
    };
    let sql = format!(
        "SELECT transaction_id FROM payouts WHERE state IN ({states}) AND due_at <= ? \
         AND (claimed_by IS NULL OR lease_until < {db_now}) ORDER BY due_at LIMIT ?{skip_locked}"
    );
    let query = CachedSql::typed(&sql, vec![Bind::Time(now), Bind::BigInt(limit)]);
    let rows: Vec<IdRow> = by_backend!(conn, |c| query.load(c))?;
    Ok(rows.into_iter().map(|r| r.transaction_id).collect())
}

fn load(conn: &mut AnyConnection, pii: &Pii, ids: &[String]) -> Result<Vec<Payout>, Failure> {
    let rows: Vec<PayoutRow> = payouts::table
        .filter(payouts::transaction_id.eq_any(ids))
        .order(payouts::due_at.asc())
        .select(PayoutRow::as_select())
        .load(conn)?;
    Ok(readable(conn, pii, rows))
}

/// The entries of `rows` that can be read. One that cannot (a row
/// corrupted, or written in a shape this version does not know) is left
/// out with an error in the log, so that it never stops the claims and
/// lists of every other entry; `get` still reports it.
fn readable(conn: &mut AnyConnection, pii: &Pii, rows: Vec<PayoutRow>) -> Vec<Payout> {
    rows.into_iter()
        .filter_map(|row| match row.into_payout(conn, pii) {
            Ok(p) => Some(p),
            Err(e) => {
                tracing::error!(error = %e, "a payout entry cannot be read; it is left out");
                None
            }
        })
        .collect()
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
        self.ledger("sighting payout", id.clone(), move |conn| {
            write_tx(conn, |c| sight_in(c, &id, sighting, now, BY_POLL))
        })
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
        self.ledger("sighting payouts", count, move |conn| {
            write_tx(conn, |c| {
                let mut states = vec![PayoutState::New; count];
                for (i, id, sighting) in &order {
                    states[*i] = sight_in(c, id, *sighting, now, BY_POLL)?;
                }
                Ok(states)
            })
        })
        .await
    }

    async fn knows_funds(&self, ids: &[TransactionId]) -> Result<Vec<bool>, LedgerError> {
        let ids: Vec<String> = ids.iter().map(|i| i.as_str().to_owned()).collect();
        self.ledger("checking funds of", ids.len(), move |conn| {
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
        let pii = self.pii().map_err(Failure::from)?;
        self.ledger("claiming payouts for", owner.clone(), move |conn| {
            write_tx(conn, |c| {
                let ids = claimable(c, limit, now.naive_utc())?;
                if ids.is_empty() {
                    return Ok(vec![]);
                }
                let tokens: HashMap<String, i64> =
                    diesel::update(payouts::table.filter(payouts::transaction_id.eq_any(&ids)))
                        .set((
                            payouts::claimed_by.eq(&owner),
                            payouts::lease_until.eq(mooring_lease_end(lease_ms(lease)).nullable()),
                            payouts::claim_token.eq(payouts::claim_token + 1),
                        ))
                        .returning((payouts::transaction_id, payouts::claim_token))
                        .get_results::<(String, i64)>(c)?
                        .into_iter()
                        .collect();
                load(c, &pii, &ids)?
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
        self.ledger("renewing the claim of", id.clone(), move |conn| {
            let renew = CachedSql::typed(
                RENEW_SQL,
                vec![
                    Bind::BigInt(lease_ms(lease)),
                    Bind::Text(&id),
                    Bind::Text(&claim.owner),
                    Bind::BigInt(claim.token),
                ],
            );
            let n = on_backend(conn, renew)?;
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
        let pii = self.pii().map_err(Failure::from)?;
        let row = PayoutRow::from_payout(payout);
        let id = row.transaction_id.clone();
        let (done, outcome) = tokio::sync::oneshot::channel();
        self.saves.push(Save {
            claim: claim.clone(),
            expected,
            row,
            lease,
            done,
        });
        // Whichever call gets a connection first writes every save waiting
        // then, this one's included; this call's own batch may be empty.
        let saves = self.saves.clone();
        let batch = self
            .run(move |conn| {
                write_batch(conn, &pii, &saves);
                Ok::<_, Failure>(())
            })
            .await;
        if let Err(e) = batch {
            self.saves.fail_all(&e.to_string());
        }
        let written = outcome
            .await
            .unwrap_or_else(|_| Err(failed("the batch writing the save ended".into())));
        Ok(written.map_err(|e| e.during("saving payout", id))?)
    }

    async fn release(&self, id: &TransactionId, claim: &Claim) -> Result<bool, LedgerError> {
        let id = id.as_str().to_owned();
        let claim = claim.clone();
        self.ledger("releasing payout", id.clone(), move |conn| {
            let release = diesel::update(
                payouts::table
                    .find(&id)
                    .filter(payouts::claimed_by.eq(&claim.owner))
                    .filter(payouts::claim_token.eq(claim.token)),
            )
            .set((
                payouts::claimed_by.eq(None::<String>),
                payouts::lease_until.eq(None::<NaiveDateTime>),
            ));
            let n = queued(conn, |c| release.execute(c)).map_err(Failure::from)?;
            Ok(n == 1)
        })
        .await
    }

    async fn get(&self, id: &TransactionId) -> Result<Option<Payout>, LedgerError> {
        let id = id.as_str().to_owned();
        let pii = self.pii().map_err(Failure::from)?;
        self.ledger("reading payout", id.clone(), move |conn| {
            let row: Option<PayoutRow> = payouts::table
                .find(&id)
                .select(PayoutRow::as_select())
                .first(conn)
                .optional()
                .map_err(Failure::from)?;
            row.map(|r| r.into_payout(conn, &pii)).transpose()
        })
        .await
    }

    async fn list(&self, states: &[PayoutState], limit: u32) -> Result<Vec<Payout>, LedgerError> {
        let states: Vec<&'static str> = states.iter().map(|s| s.as_str()).collect();
        let pii = self.pii().map_err(Failure::from)?;
        self.ledger("listing payouts", limit, move |conn| {
            let mut query = payouts::table
                .order((payouts::created_at.desc(), payouts::transaction_id.asc()))
                .limit(i64::from(limit))
                .select(PayoutRow::as_select())
                .into_boxed();
            if !states.is_empty() {
                query = query.filter(payouts::state.eq_any(states));
            }
            let rows: Vec<PayoutRow> = query.load(conn).map_err(Failure::from)?;
            Ok(readable(conn, &pii, rows))
        })
        .await
    }

    async fn counts(&self) -> Result<Vec<(PayoutState, u64)>, LedgerError> {
        self.ledger("counting payouts", "-", move |conn| {
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

    async fn history(&self, id: &TransactionId) -> Result<Vec<PayoutChange>, LedgerError> {
        super::history::read(self, id).await
    }

    async fn reopen(
        &self,
        id: &TransactionId,
        from: &[PayoutState],
        edit: OperatorEdit,
    ) -> Result<Payout, LedgerError> {
        let from: Vec<&'static str> = from.iter().map(|s| s.as_str()).collect();
        let id = id.as_str().to_owned();
        let pii = self.pii().map_err(Failure::from)?;
        self.ledger("reopening payout", id.clone(), move |conn| {
            write_tx(conn, |c| {
                let current = locked_state(c, &id)?.ok_or(Failure::NotFound)?;
                if !from.contains(&current.as_str()) {
                    return Err(Failure::WrongState(current));
                }
                // Read under the lock: the edit applies to the entry as it is.
                let mut payout = payouts::table
                    .find(&id)
                    .select(PayoutRow::as_select())
                    .first::<PayoutRow>(c)?
                    .into_payout(c, &pii)?;
                edit(&mut payout).map_err(|e| Failure::WrongState(e.from))?;
                let row = PayoutRow::from_payout(&payout).sealed(c, &pii)?;
                let lapsed = diesel::dsl::sql::<diesel::sql_types::Bool>(&format!(
                    "(claimed_by IS NULL OR lease_until < {})",
                    db_now(c)
                ));
                let n = diesel::update(payouts::table.find(&row.transaction_id).filter(lapsed))
                    .set((
                        &row,
                        payouts::changed_by.eq(BY_PERSON),
                        payouts::claimed_by.eq(None::<String>),
                        payouts::lease_until.eq(None::<NaiveDateTime>),
                        payouts::claim_token.eq(payouts::claim_token + 1),
                    ))
                    .execute(c)?;
                if n == 0 {
                    return Err(Failure::LostClaim);
                }
                Ok(payout)
            })
        })
        .await
    }
}
