//! Maker-checker on payouts: a retry under a new idempotency key and a
//! refund are asked for by one operator and carried out only when a
//! different operator approves them.
//!
//! What can interleave, and what holds:
//! - two checkers approve at once (two replicas): the store takes the
//!   request from `pending` in one UPDATE, so one wins; the other is told
//!   it was decided;
//! - a crash between the approval and the engine's answer leaves the
//!   request `approving`; it is never approved again (the store takes an
//!   approval only from `pending`), so it never runs twice: an operator
//!   looks at the payout, refuses the request, and asks again if the change
//!   did not happen;
//! - the payout moved on between the request and the approval (the engine,
//!   or another person): the request fails, saying so, and nothing is done.

use std::sync::Arc;

use mooring_domain::audit::AuditAction;
use mooring_domain::payout::PayoutState;
use mooring_domain::staff::{CheckError, Duty, PayoutRequest, RequestKind, RequestState};
use mooring_domain::transaction::TransactionId;
use mooring_ports::{Clock, RequestBook, RequestError};

use crate::staff::SignedIn;
use crate::{AuditTrail, EngineError, PayoutEngine, RetryMode};

/// What can go wrong with a request.
#[derive(Debug, thiserror::Error)]
pub enum RequestOpError {
    #[error("your role may not {0}")]
    Forbidden(&'static str),
    #[error(transparent)]
    Check(#[from] CheckError),
    #[error("no such request")]
    NotFound,
    #[error("a request for this payout is already waiting for approval")]
    Pending,
    #[error("{0}")]
    BadRequest(String),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("the audit trail could not record this: {0}")]
    Audit(String),
    #[error(transparent)]
    Store(anyhow::Error),
}

impl From<RequestError> for RequestOpError {
    fn from(e: RequestError) -> Self {
        match e {
            RequestError::NotFound => Self::NotFound,
            RequestError::Pending => Self::Pending,
            RequestError::Decided => Self::Check(CheckError::Decided("decided")),
            RequestError::Unknown(e) => Self::Store(e),
        }
    }
}

impl From<mooring_ports::AuditError> for RequestOpError {
    fn from(e: mooring_ports::AuditError) -> Self {
        Self::Audit(e.to_string())
    }
}

/// A Stellar transaction hash: 64 hexadecimal digits.
fn is_stellar_hash(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The maker-checker desk.
#[derive(Clone)]
pub struct PayoutRequests {
    book: Arc<dyn RequestBook>,
    engine: PayoutEngine,
    audit: AuditTrail,
    clock: Arc<dyn Clock>,
}

impl PayoutRequests {
    pub fn new(
        book: Arc<dyn RequestBook>,
        engine: PayoutEngine,
        audit: AuditTrail,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            book,
            engine,
            audit,
            clock,
        }
    }

    fn may_act(who: &SignedIn) -> Result<(), RequestOpError> {
        if who.verified && who.role.may(Duty::ActOnPayouts) {
            Ok(())
        } else {
            Err(RequestOpError::Forbidden(Duty::ActOnPayouts.as_str()))
        }
    }

    async fn audit(
        &self,
        who: &SignedIn,
        origin: &str,
        action: AuditAction,
        transaction: &TransactionId,
        detail: &str,
    ) -> Result<(), RequestOpError> {
        let entry = self
            .audit
            .entry(&who.actor(origin), action)
            .transaction(transaction)
            .detail(detail);
        Ok(self.audit.record(entry).await?)
    }

    /// Asks for a change; it waits for a second operator.
    pub async fn ask(
        &self,
        who: &SignedIn,
        origin: &str,
        transaction: &TransactionId,
        kind: RequestKind,
    ) -> Result<PayoutRequest, RequestOpError> {
        Self::may_act(who)?;
        if let RequestKind::Refund { stellar_hash } = &kind
            && !is_stellar_hash(stellar_hash)
        {
            return Err(RequestOpError::BadRequest(
                "the refund's Stellar transaction hash is 64 hexadecimal digits".into(),
            ));
        }
        let payout = self.engine.get(transaction).await?;
        let request = PayoutRequest {
            id: uuid::Uuid::new_v4().to_string(),
            transaction: transaction.clone(),
            kind,
            attempt: payout.attempt,
            maker: who.name.clone(),
            made_at: self.clock.now(),
            state: RequestState::Pending,
            checker: None,
            decided_at: None,
            outcome: String::new(),
        };
        self.book.add_request(&request).await?;
        self.audit(
            who,
            origin,
            AuditAction::PayoutRequested,
            transaction,
            &format!(
                "{} request {} on attempt {}",
                request.kind.as_str(),
                request.id,
                request.attempt
            ),
        )
        .await?;
        Ok(request)
    }

    pub async fn request(&self, id: &str) -> Result<PayoutRequest, RequestOpError> {
        self.book.request(id).await?.ok_or(RequestOpError::NotFound)
    }

    pub async fn list(
        &self,
        states: &[RequestState],
        transaction: Option<&TransactionId>,
        limit: u32,
    ) -> Result<Vec<PayoutRequest>, RequestOpError> {
        Ok(self
            .book
            .requests(states, transaction, limit.clamp(1, 500))
            .await?)
    }

    /// Approves a request and carries it out. Its maker cannot.
    pub async fn approve(
        &self,
        who: &SignedIn,
        origin: &str,
        id: &str,
    ) -> Result<PayoutRequest, RequestOpError> {
        Self::may_act(who)?;
        let request = self.request(id).await?;
        request.may_approve(&who.name)?;
        let now = self.clock.now();
        if !self
            .book
            .decide(id, &who.name, RequestState::Approving, false, now, "")
            .await?
        {
            return Err(RequestOpError::Check(CheckError::Decided("decided")));
        }
        self.audit(
            who,
            origin,
            AuditAction::PayoutRequestDecided,
            &request.transaction,
            &format!(
                "approved {} request {id} asked by {}",
                request.kind.as_str(),
                request.maker
            ),
        )
        .await?;
        let (state, outcome) = self.carry_out(who, origin, &request).await;
        self.book.finish(id, state, &outcome).await?;
        self.request(id).await
    }

    /// Runs an approved request on the engine, fenced by its attempt.
    async fn carry_out(
        &self,
        who: &SignedIn,
        origin: &str,
        request: &PayoutRequest,
    ) -> (RequestState, String) {
        let payout = match self.engine.get(&request.transaction).await {
            Ok(p) => p,
            Err(e) => return (RequestState::Failed, e.to_string()),
        };
        let actor = who.actor(origin);
        match &request.kind {
            RequestKind::RetryNewAttempt => {
                if payout.attempt > request.attempt {
                    // Carried out before (a run cut short), or another
                    // retry happened: either way, not again.
                    return (
                        RequestState::Approved,
                        format!(
                            "the payout is on attempt {} already; not retried again",
                            payout.attempt
                        ),
                    );
                }
                match self
                    .engine
                    .retry_on(
                        &request.transaction,
                        RetryMode::NewAttempt,
                        Some(request.attempt),
                        &actor,
                    )
                    .await
                {
                    Ok(p) => (
                        RequestState::Approved,
                        format!("retried: attempt {} is {}", p.attempt, p.state()),
                    ),
                    Err(e) => ended(e),
                }
            }
            RequestKind::Refund { stellar_hash } => {
                if matches!(
                    payout.state(),
                    PayoutState::Refunding | PayoutState::Refunded
                ) {
                    return (
                        RequestState::Approved,
                        format!("the payout is {} already", payout.state()),
                    );
                }
                match self
                    .engine
                    .refund_on(
                        &request.transaction,
                        stellar_hash,
                        Some(request.attempt),
                        &actor,
                    )
                    .await
                {
                    Ok(p) => (
                        RequestState::Approved,
                        format!("refund recorded: {}", p.state()),
                    ),
                    Err(e) => ended(e),
                }
            }
        }
    }

    /// Refuses a request (another operator), or withdraws it (its maker).
    ///
    /// (Defined below `carry_out`, which ends each run with [`ended`].)
    pub async fn refuse(
        &self,
        who: &SignedIn,
        origin: &str,
        id: &str,
    ) -> Result<PayoutRequest, RequestOpError> {
        Self::may_act(who)?;
        let request = self.request(id).await?;
        let withdraw = request.may_withdraw(&who.name);
        if !withdraw {
            request.may_refuse(&who.name)?;
        }
        let outcome = if withdraw { "withdrawn" } else { "refused" };
        if !self
            .book
            .decide(
                id,
                &who.name,
                RequestState::Refused,
                withdraw,
                self.clock.now(),
                outcome,
            )
            .await?
        {
            return Err(RequestOpError::Check(CheckError::Decided("decided")));
        }
        self.audit(
            who,
            origin,
            AuditAction::PayoutRequestDecided,
            &request.transaction,
            &format!("{outcome} {} request {id}", request.kind.as_str()),
        )
        .await?;
        self.request(id).await
    }
}

/// How a run the engine refused ends: `failed` with the engine's reason;
/// but a change the engine made whose audit entry could not be written did
/// happen, so the request is `approved`, saying it was not recorded.
fn ended(e: EngineError) -> (RequestState, String) {
    match e {
        EngineError::Audit(audit) => (
            RequestState::Approved,
            format!("carried out, but not recorded in the audit trail: {audit}"),
        ),
        other => (RequestState::Failed, other.to_string()),
    }
}
