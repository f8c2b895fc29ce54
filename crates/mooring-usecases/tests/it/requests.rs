//! Maker-checker (`PayoutRequests`) against the fake engine world and an
//! in-memory request book: two operators for a refund, a request run once,
//! and a change that happened but could not be audited is not called failed.

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mooring_domain::audit::AuditAction;
use mooring_domain::payout::PayoutState;
use mooring_domain::staff::{PayoutRequest, RequestKind, RequestState, Role, StaffName};
use mooring_domain::transaction::TransactionId;
use mooring_ports::{RequestBook, RequestError};
use mooring_usecases::staff::SignedIn;
use mooring_usecases::{AuditTrail, PayoutRequests, RequestOpError};
use std::sync::Arc;

use crate::payout::{World, id, usdc, world};

/// The request book in memory, with the store's rules: one open request
/// per payout, `approving` only from `pending` and never by the maker.
#[derive(Default)]
struct FakeBook(Mutex<BTreeMap<String, PayoutRequest>>);

#[async_trait]
impl RequestBook for FakeBook {
    async fn add_request(&self, request: &PayoutRequest) -> Result<(), RequestError> {
        let mut book = self.0.lock().expect("lock");
        let open = [RequestState::Pending, RequestState::Approving];
        if book
            .values()
            .any(|r| r.transaction == request.transaction && open.contains(&r.state))
        {
            return Err(RequestError::Pending);
        }
        book.insert(request.id.clone(), request.clone());
        Ok(())
    }

    async fn request(&self, id: &str) -> Result<Option<PayoutRequest>, RequestError> {
        Ok(self.0.lock().expect("lock").get(id).cloned())
    }

    async fn requests(
        &self,
        states: &[RequestState],
        transaction: Option<&TransactionId>,
        limit: u32,
    ) -> Result<Vec<PayoutRequest>, RequestError> {
        Ok(self
            .0
            .lock()
            .expect("lock")
            .values()
            .filter(|r| states.is_empty() || states.contains(&r.state))
            .filter(|r| transaction.is_none_or(|t| &r.transaction == t))
            .take(limit as usize)
            .cloned()
            .collect())
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
        let mut book = self.0.lock().expect("lock");
        let r = book.get_mut(id).ok_or(RequestError::NotFound)?;
        let from_ok = match state {
            RequestState::Approving => r.state == RequestState::Pending,
            RequestState::Refused => {
                matches!(r.state, RequestState::Pending | RequestState::Approving)
            }
            _ => false,
        };
        if !from_ok || (&r.maker == checker) != withdraw {
            return Ok(false);
        }
        r.state = state;
        r.checker = Some(checker.clone());
        r.decided_at = Some(at);
        r.outcome = outcome.to_owned();
        Ok(true)
    }

    async fn finish(
        &self,
        id: &str,
        state: RequestState,
        outcome: &str,
    ) -> Result<(), RequestError> {
        let mut book = self.0.lock().expect("lock");
        let r = book.get_mut(id).ok_or(RequestError::NotFound)?;
        r.state = state;
        r.outcome = outcome.to_owned();
        Ok(())
    }
}

fn operator(name: &str) -> SignedIn {
    SignedIn {
        name: StaffName::parse(name).expect("name"),
        role: Role::Operator,
        verified: true,
        csrf: String::new(),
        enrolling: false,
    }
}

fn desk(w: &World) -> PayoutRequests {
    PayoutRequests::new(
        Arc::new(FakeBook::default()),
        w.engine.clone(),
        AuditTrail::new(w.audit.clone(), w.clock.clone()),
        w.clock.clone(),
    )
}

/// A transaction short of its amount: rejected, nothing paid, to refund.
async fn rejected(w: &World) {
    let receiver = w.receiver("1", true).await;
    let mut short = w.funded("t1", &receiver, w.now());
    short.amount_in = Some(usdc("90"));
    w.platform.insert(short);
    w.engine.poll().await.expect("poll");
    w.drive().await;
    assert_eq!(w.state("t1"), Some(PayoutState::Rejected));
}

fn refund() -> RequestKind {
    RequestKind::Refund {
        stellar_hash: "ab".repeat(32),
    }
}

#[tokio::test]
async fn a_refund_takes_a_second_operator_and_runs_once() {
    let w = world();
    rejected(&w).await;
    let desk = desk(&w);
    let (olga, otto) = (operator("olga"), operator("otto"));
    let asked = desk
        .ask(&olga, "test", &id("t1"), refund())
        .await
        .expect("asked");
    assert!(matches!(
        desk.ask(&otto, "test", &id("t1"), refund()).await,
        Err(RequestOpError::Pending)
    ));
    assert!(matches!(
        desk.approve(&olga, "test", &asked.id).await,
        Err(RequestOpError::Check(_))
    ));
    assert_eq!(w.state("t1"), Some(PayoutState::Rejected), "nothing done");
    let done = desk
        .approve(&otto, "test", &asked.id)
        .await
        .expect("approved");
    assert_eq!(done.state, RequestState::Approved, "{}", done.outcome);
    w.drive().await;
    assert_eq!(w.state("t1"), Some(PayoutState::Refunded));
    assert!(desk.approve(&otto, "test", &asked.id).await.is_err());
    let refunds = w
        .audit
        .all()
        .iter()
        .filter(|e| e.action == AuditAction::PayoutRefunded)
        .count();
    assert_eq!(refunds, 1);
    assert!(w.rail.made().is_empty());
}

#[tokio::test]
async fn a_change_that_happened_unaudited_is_not_called_failed() {
    let w = world();
    rejected(&w).await;
    let desk = desk(&w);
    let asked = desk
        .ask(&operator("olga"), "test", &id("t1"), refund())
        .await
        .expect("asked");
    // The engine's own entry for the refund cannot be written; the refund
    // is made all the same (it may already be told to the AP).
    w.audit.refuse(AuditAction::PayoutRefunded);
    let done = desk
        .approve(&operator("otto"), "test", &asked.id)
        .await
        .expect("decided");
    assert_eq!(w.state("t1"), Some(PayoutState::Refunding));
    assert_eq!(done.state, RequestState::Approved, "{}", done.outcome);
    assert!(
        done.outcome.contains("not recorded in the audit trail"),
        "{}",
        done.outcome
    );
}

#[tokio::test]
async fn an_action_meant_for_another_attempt_is_refused() {
    let w = world();
    rejected(&w).await;
    let hash = "ab".repeat(32);
    let refused = w
        .engine
        .refund_on(&id("t1"), &hash, Some(2), &crate::fakes::who())
        .await;
    assert!(
        matches!(&refused, Err(mooring_usecases::EngineError::BadRequest(m)) if m.contains("attempt 1")),
        "{refused:?}"
    );
    assert_eq!(w.state("t1"), Some(PayoutState::Rejected));
    w.engine
        .refund_on(&id("t1"), &hash, Some(1), &crate::fakes::who())
        .await
        .expect("the attempt asked about");
    assert_eq!(w.state("t1"), Some(PayoutState::Refunding));
}
