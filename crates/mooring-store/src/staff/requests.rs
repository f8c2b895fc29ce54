//! Maker-checker requests on payouts (`mooring_ports::RequestBook`): at
//! most one open per payout (a partial unique index), each decided by one
//! UPDATE that wants it still open and its checker not its maker.

use async_trait::async_trait;
use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use mooring_domain::staff::{PayoutRequest, RequestKind, RequestState, StaffName};
use mooring_domain::transaction::TransactionId;
use mooring_ports::{RequestBook, RequestError};

use super::{is_unique_violation, one_row};
use crate::Store;
use crate::error::{During, Failure};
use crate::schema::payout_requests;

#[derive(Queryable, Selectable)]
#[diesel(table_name = payout_requests)]
struct RequestRow {
    id: String,
    transaction_id: String,
    kind: String,
    stellar_hash: Option<String>,
    attempt: i64,
    maker: String,
    made_at: NaiveDateTime,
    state: String,
    checker: Option<String>,
    decided_at: Option<NaiveDateTime>,
    outcome: String,
}

impl RequestRow {
    fn into_request(self) -> Result<PayoutRequest, Failure> {
        let corrupt = |reason: String| Failure::Corrupt {
            what: "payout request",
            id: self.id.clone(),
            reason,
        };
        let kind = match (self.kind.as_str(), self.stellar_hash) {
            ("retry_new_attempt", _) => RequestKind::RetryNewAttempt,
            ("refund", Some(stellar_hash)) => RequestKind::Refund { stellar_hash },
            (other, _) => return Err(corrupt(format!("kind {other:?}"))),
        };
        let name = |n: &str| StaffName::parse(n).map_err(|e| corrupt(e.to_string()));
        Ok(PayoutRequest {
            transaction: TransactionId::parse(&self.transaction_id)
                .map_err(|e| corrupt(e.to_string()))?,
            kind,
            attempt: u32::try_from(self.attempt)
                .map_err(|_| corrupt(format!("attempt {}", self.attempt)))?,
            maker: name(&self.maker)?,
            made_at: self.made_at.and_utc(),
            state: RequestState::parse(&self.state)
                .ok_or_else(|| corrupt(format!("state {:?}", self.state)))?,
            checker: self.checker.as_deref().map(name).transpose()?,
            decided_at: self.decided_at.map(|t| t.and_utc()),
            outcome: self.outcome,
            id: self.id,
        })
    }
}

#[async_trait]
impl RequestBook for Store {
    async fn add_request(&self, r: &PayoutRequest) -> Result<(), RequestError> {
        let r = r.clone();
        let added = self
            .run_write(move |conn| {
                let hash = match &r.kind {
                    RequestKind::Refund { stellar_hash } => Some(stellar_hash.as_str()),
                    RequestKind::RetryNewAttempt => None,
                };
                let insert = diesel::insert_into(payout_requests::table)
                    .values((
                        payout_requests::id.eq(&r.id),
                        payout_requests::transaction_id.eq(r.transaction.as_str()),
                        payout_requests::kind.eq(r.kind.as_str()),
                        payout_requests::stellar_hash.eq(hash),
                        payout_requests::attempt.eq(i64::from(r.attempt)),
                        payout_requests::maker.eq(r.maker.as_str()),
                        payout_requests::made_at.eq(r.made_at.naive_utc()),
                        payout_requests::state.eq(RequestState::Pending.as_str()),
                        payout_requests::outcome.eq(""),
                    ))
                    .execute(conn);
                match insert {
                    Ok(_) => Ok(true),
                    Err(e) if is_unique_violation(&e) => Ok(false),
                    Err(e) => {
                        Err(Failure::from(e).during("adding a request for payout", &r.transaction))
                    }
                }
            })
            .await?;
        if added {
            Ok(())
        } else {
            Err(RequestError::Pending)
        }
    }

    async fn request(&self, id: &str) -> Result<Option<PayoutRequest>, RequestError> {
        let id = id.to_owned();
        Ok(self
            .run(move |conn| {
                payout_requests::table
                    .find(&id)
                    .select(RequestRow::as_select())
                    .first(conn)
                    .optional()
                    .during("reading request", &id)?
                    .map(RequestRow::into_request)
                    .transpose()
            })
            .await?)
    }

    async fn requests(
        &self,
        states: &[RequestState],
        transaction: Option<&TransactionId>,
        limit: u32,
    ) -> Result<Vec<PayoutRequest>, RequestError> {
        let states: Vec<&'static str> = states.iter().map(|s| s.as_str()).collect();
        let transaction = transaction.map(|t| t.as_str().to_owned());
        Ok(self
            .run(move |conn| {
                let mut q = payout_requests::table.into_boxed();
                if !states.is_empty() {
                    q = q.filter(payout_requests::state.eq_any(states));
                }
                if let Some(t) = transaction {
                    q = q.filter(payout_requests::transaction_id.eq(t));
                }
                let rows: Vec<RequestRow> = q
                    .order((payout_requests::made_at.desc(), payout_requests::id.desc()))
                    .limit(i64::from(limit))
                    .select(RequestRow::as_select())
                    .load(conn)
                    .during("listing requests", "by state")?;
                rows.into_iter().map(RequestRow::into_request).collect()
            })
            .await?)
    }

    async fn decide(
        &self,
        id: &str,
        checker: &StaffName,
        state: RequestState,
        withdraw: bool,
        at: DateTime<Utc>,
        outcome: &str,
    ) -> Result<bool, RequestError> {
        let (id, checker, outcome) = (id.to_owned(), checker.clone(), outcome.to_owned());
        let from: Vec<&'static str> = match state {
            RequestState::Approving => vec![RequestState::Pending.as_str()],
            RequestState::Refused => vec![
                RequestState::Pending.as_str(),
                RequestState::Approving.as_str(),
            ],
            other => {
                return Err(RequestError::Unknown(anyhow::anyhow!(
                    "a request is not decided to {}",
                    other.as_str()
                )));
            }
        };
        Ok(self
            .run_write(move |conn| {
                let target = payout_requests::table
                    .find(&id)
                    .filter(payout_requests::state.eq_any(from));
                let set = (
                    payout_requests::state.eq(state.as_str()),
                    payout_requests::checker.eq(checker.as_str()),
                    payout_requests::decided_at.eq(at.naive_utc()),
                    payout_requests::outcome.eq(&outcome),
                );
                // The maker never approves or refuses; they may withdraw.
                let n = if withdraw {
                    diesel::update(target.filter(payout_requests::maker.eq(checker.as_str())))
                        .set(set)
                        .execute(conn)
                } else {
                    diesel::update(target.filter(payout_requests::maker.ne(checker.as_str())))
                        .set(set)
                        .execute(conn)
                }
                .during("deciding request", &id)?;
                Ok::<_, Failure>(n == 1)
            })
            .await?)
    }

    async fn finish(
        &self,
        id: &str,
        state: RequestState,
        outcome: &str,
    ) -> Result<(), RequestError> {
        let (id, outcome) = (id.to_owned(), outcome.to_owned());
        Ok(self
            .run_write(move |conn| {
                let n = diesel::update(
                    payout_requests::table
                        .find(&id)
                        .filter(payout_requests::state.eq(RequestState::Approving.as_str())),
                )
                .set((
                    payout_requests::state.eq(state.as_str()),
                    payout_requests::outcome.eq(&outcome),
                ))
                .execute(conn)
                .during("finishing request", &id)?;
                one_row(n)
            })
            .await?)
    }
}
