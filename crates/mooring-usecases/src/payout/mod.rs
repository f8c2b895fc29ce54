//! The payment engine: finds SEP-31 transactions whose payment arrived
//! (polls, reconciliation passes, events), pays each receiver exactly once
//! through the payout rail, and moves the AP transaction to `completed`.
//!
//! Every step reads the AP afresh, makes at most one side effect, and
//! commits the ledger entry's next state (a compare-and-set on the fenced
//! claim) before the next one; the rail is always called with the entry's
//! idempotency key and its frozen order. A crash anywhere therefore
//! resumes, on any replica once the claim lapses, without a second payout.
//!
//! Time: a claim's lease is set and judged by the database's clock. This
//! replica counts its own share of a lease on tokio's monotonic clock, from
//! just before the call that set it, so it always believes the lease ends a
//! little before the database does; every call inside a step is cut off at
//! the step's deadline (the lease's end less a margin), and the claim is
//! renewed right before the rail is called. The rail is therefore never
//! called under a lease that may have lapsed.
//!
//! The modules: `poll` finds transactions, `steps` takes an entry one step
//! on, `terms` decides what may be paid (funds, quote, KYC gate, the
//! order), `backoffice` is the operator's actions, `inbox` keeps events.

mod backoffice;
mod inbox;
mod poll;
mod steps;
mod terms;

use std::future::Future;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, Utc};
use mooring_domain::Sep31Types;
use mooring_domain::payout::{Payout, PayoutState, ProviderFields};
use mooring_domain::transaction::{Transaction, TransactionId, TransactionUpdate};
use mooring_ports::{
    Claim, Claimed, Clock, EventStore, LedgerError, PayoutLedger, PayoutRail, PlatformClient,
    PlatformError, PollMarks,
};
use tokio::time::Instant;

use crate::{AuditTrail, DepositService, KycService, QuoteService};

pub use backoffice::{RetryMode, Settlement};
pub use inbox::{EventInbox, ReceivedEvent};

/// How the engine works.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// This replica's name in claims (unique per process).
    pub owner: String,
    /// AP 3.x+: answer new unfunded transactions with `request_onchain_funds`.
    pub request_funds: bool,
    pub page_size: u32,
    /// How far back past the poll mark (where the last complete poll
    /// started) a poll still reads. Zero still reads the payments that share
    /// the mark's `transfer_received_at`; more covers an AP that lists
    /// payments slightly out of `transfer_received_at` order, at the cost
    /// of re-reading that much of the known history on every poll. A
    /// payment listed later than that is found by reconciliation.
    pub poll_overlap: Duration,
    /// How long a claim lasts (by the database's clock) from its claim or
    /// its last renewal. Each step must fit in it (the app checks this).
    pub lease: Duration,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// How often a party's KYC is checked again while awaited.
    pub kyc_recheck: Duration,
    /// How soon a pending payout is asked about again.
    pub rail_follow: Duration,
    /// How long the provider keeps an idempotency key: a payout whose
    /// outcome stays unknown longer than this is held for a person.
    pub key_retention: Duration,
    /// The SEP-12 types the sender and the receiver must be ACCEPTED as.
    pub sep31_types: Sep31Types,
    /// The AP's `message` on completion.
    pub completion_message: String,
    /// Which receiver fields the provider gets (`payout.http.fields`).
    pub provider_fields: ProviderFields,
    /// Per asset paid out: a payout of more than this waits in
    /// `awaiting_approval` until an operator releases it
    /// (`payout.approval_above`; an asset not listed never waits).
    pub approval_above: std::collections::BTreeMap<mooring_domain::AssetId, rust_decimal::Decimal>,
}

impl EngineConfig {
    pub fn new(owner: String) -> Self {
        Self {
            owner,
            request_funds: false,
            page_size: 50,
            poll_overlap: Duration::seconds(1),
            lease: Duration::seconds(60),
            backoff_base: Duration::seconds(1),
            backoff_max: Duration::seconds(60),
            kyc_recheck: Duration::seconds(5),
            rail_follow: Duration::seconds(2),
            key_retention: Duration::hours(24),
            sep31_types: Sep31Types::new(
                mooring_domain::customer::DEFAULT_SENDER_TYPE.into(),
                mooring_domain::customer::DEFAULT_RECEIVER_TYPE.into(),
                &mooring_domain::AssetCatalog::default(),
            ),
            completion_message: "a deposit to the recipient's bank has been initiated".into(),
            provider_fields: ProviderFields::default(),
            approval_above: std::collections::BTreeMap::new(),
        }
    }

    /// Whether paying `out` needs an operator's approval first.
    pub fn needs_approval(&self, out: &mooring_domain::transaction::Amount) -> bool {
        self.approval_above
            .get(&out.asset)
            .is_some_and(|limit| out.amount > *limit)
    }

    /// The part of a lease kept back from a step: the step's deadline is
    /// the lease's end less this, so a call cut off at the deadline has
    /// ended on this side before the database lets another replica claim
    /// the entry. The provider may still be processing it: a second request
    /// under the key is then answered 409 (unknown), never paid twice.
    pub fn lease_margin(&self) -> Duration {
        (self.lease / 10).max(Duration::milliseconds(1))
    }
}

/// Errors of the engine's passes and of the back office.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Platform(#[from] PlatformError),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error("{0}")]
    BadRequest(String),
    /// The action was done, but its audit entry could not be written.
    #[error("done, but not recorded in the audit trail: {0}")]
    Audit(#[from] mooring_ports::AuditError),
}

/// What the ports the engine needs are.
#[derive(Clone)]
pub struct EngineParts {
    pub platform: Arc<dyn PlatformClient>,
    pub ledger: Arc<dyn PayoutLedger>,
    pub events: Arc<dyn EventStore>,
    pub marks: Arc<dyn PollMarks>,
    pub rail: Arc<dyn PayoutRail>,
    pub kyc: KycService,
    pub quotes: QuoteService,
    pub deposits: DepositService,
    pub audit: AuditTrail,
    pub clock: Arc<dyn Clock>,
}

/// The payment engine.
#[derive(Clone)]
pub struct PayoutEngine {
    parts: EngineParts,
    config: Arc<EngineConfig>,
    /// When the last poll of the AP succeeded (for the poll-lag gauge).
    last_poll: Arc<Mutex<Option<DateTime<Utc>>>>,
}

/// An entry this replica holds a claim on, and until when it may act on it.
#[derive(Debug)]
pub struct Work {
    pub payout: Payout,
    claim: Claim,
    /// The lease's end as this replica counts it, less the margin.
    deadline: Instant,
    /// Whether the claim is still held (not released by the last save).
    held: bool,
    /// Whether the entry's state is one this run saved it into, and its
    /// lease the one that save set (not the claim's): see [`Step::entered`].
    entered: bool,
}

impl Work {
    pub fn transaction_id(&self) -> &TransactionId {
        &self.payout.transaction_id
    }
}

/// Why a step stopped before its end.
enum StepError {
    /// It could not finish: retried after a backoff.
    Transient(String),
    /// The claim was lost before the rail was called: stop, write nothing.
    LostClaim,
}

impl From<PlatformError> for StepError {
    fn from(e: PlatformError) -> Self {
        Self::Transient(e.to_string())
    }
}

/// A move the entry's state refused: a defect, never expected; the step is
/// retried later and the operator sees it.
impl From<mooring_domain::payout::IllegalMove> for StepError {
    fn from(e: mooring_domain::payout::IllegalMove) -> Self {
        Self::Transient(e.to_string())
    }
}

type StepResult = Result<(), StepError>;

/// One step's bounds: its claim and the deadline every call must meet.
struct Step<'a> {
    claim: &'a Claim,
    deadline: Instant,
    now: DateTime<Utc>,
    /// This run's last step moved the entry into its state and set the
    /// lease the step runs under, keeping the claim. So no earlier attempt
    /// of this step exists (nobody can have told the AP what it tells), and
    /// the lease is as fresh as a renewal would make it (see
    /// [`RENEWED_WITHIN`]).
    entered: bool,
}

/// A rail call right after the save that set its lease (the save that
/// submitted the entry, a moment before) needs no renewal of its own: the
/// step's deadline, counted from before that save, is within this part of
/// the lease of the one a renewal would give. Past it, or under the lease
/// of a claim, the claim is renewed first.
const RENEWED_WITHIN: i32 = 1000;

/// Most steps one `run` takes on one entry (a guard, never reached by a
/// correct state machine).
const MAX_STEPS: usize = 16;

fn std_duration(d: Duration) -> std::time::Duration {
    d.to_std().unwrap_or_default()
}

impl PayoutEngine {
    pub fn new(parts: EngineParts, config: EngineConfig) -> Self {
        Self {
            parts,
            config: Arc::new(config),
            last_poll: Arc::new(Mutex::new(None)),
        }
    }

    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// When this engine's last poll of the AP succeeded.
    pub fn last_poll(&self) -> Option<DateTime<Utc>> {
        self.last_poll.lock().ok().and_then(|at| *at)
    }

    fn now(&self) -> DateTime<Utc> {
        self.parts.clock.now()
    }

    /// The deadline of a lease that the database started no earlier than
    /// `started` (taken just before the call that set it).
    fn deadline_from(&self, started: Instant) -> Instant {
        started + std_duration(self.config.lease - self.config.lease_margin())
    }

    /// Claims due entries for this replica.
    pub async fn claim(&self, limit: u32) -> Result<Vec<Work>, EngineError> {
        let started = Instant::now();
        let claimed = self
            .parts
            .ledger
            .claim(&self.config.owner, limit, self.now(), self.config.lease)
            .await?;
        let deadline = self.deadline_from(started);
        Ok(claimed
            .into_iter()
            .map(|Claimed { payout, claim }| Work {
                payout,
                claim,
                deadline,
                held: true,
                entered: false,
            })
            .collect())
    }

    /// Gives up the claim of a step that has ended, if it still holds one
    /// (on shutdown; a claim whose step is still running is left to lapse).
    pub async fn release(&self, work: &Work) -> Result<bool, EngineError> {
        if !work.held {
            return Ok(false);
        }
        Ok(self
            .parts
            .ledger
            .release(&work.payout.transaction_id, &work.claim)
            .await?)
    }

    /// Takes a claimed entry through as many steps as are due now, then
    /// gives the claim back (also when a step failed to save: the step has
    /// ended). Returns the entry as last saved; `LostClaim` when another
    /// owner has it.
    #[tracing::instrument(skip_all, fields(transaction.id = %work.payout.transaction_id))]
    pub async fn run(&self, mut work: Work) -> Result<Payout, EngineError> {
        let mut result = Ok(());
        for _ in 0..MAX_STEPS {
            // A save that gave the claim back ends the run, even if the
            // entry fell due meanwhile: it is claimed again first.
            if !work.held || !work.payout.state().is_active() || work.payout.due_at > self.now() {
                break;
            }
            result = self.step(&mut work).await;
            if result.is_err() {
                break;
            }
        }
        if work.held
            && let Err(e) = self.release(&work).await
        {
            tracing::warn!(error = %e, "could not release the claim; it lapses");
        }
        result.map(|()| work.payout)
    }

    /// One step: its side effect, then the entry's next state, saved.
    async fn step(&self, work: &mut Work) -> Result<(), EngineError> {
        let mut p = work.payout.clone();
        let expected = p.state();
        let now = self.now();
        let mut step = Step {
            claim: &work.claim,
            deadline: work.deadline,
            now,
            entered: work.entered,
        };
        let result = match p.state() {
            PayoutState::New => self.on_new(&mut p, &mut step).await,
            PayoutState::Received => self.on_received(&mut p, &mut step).await,
            PayoutState::AwaitingKyc => self.on_awaiting_kyc(&mut p, &mut step).await,
            PayoutState::Submitted => self.on_submitted(&mut p, &mut step).await,
            PayoutState::Confirmed => self.on_confirmed(&mut p, &mut step).await,
            PayoutState::Rejecting | PayoutState::RailFailed => {
                self.on_error(&mut p, &mut step).await
            }
            PayoutState::Recovering => self.on_recovering(&mut p, &mut step).await,
            PayoutState::Refunding => self.on_refunding(&mut p, &mut step).await,
            PayoutState::AwaitingFunds
            | PayoutState::AwaitingApproval
            | PayoutState::Held
            | PayoutState::Completed
            | PayoutState::Rejected
            | PayoutState::Failed
            | PayoutState::Refunded
            | PayoutState::Closed => Ok(()),
        };
        // A renewal inside the step moved the deadline on.
        let deadline = step.deadline;
        match result {
            Ok(()) => {
                if p.state() != expected {
                    tracing::info!(from = %expected, to = %p.state(), "payout moved");
                }
            }
            Err(StepError::LostClaim) => {
                work.held = false;
                return Err(EngineError::Ledger(LedgerError::LostClaim));
            }
            Err(StepError::Transient(error)) => {
                p.retry_later(
                    error,
                    now,
                    self.config.backoff_base,
                    self.config.backoff_max,
                );
                tracing::warn!(
                    state = %p.state(),
                    failures = p.failures,
                    retry_in_ms = (p.due_at - now).num_milliseconds(),
                    error = p.last_error.as_deref().unwrap_or(""),
                    "payout step failed; retrying"
                );
            }
        }
        // Done with the entry for now: give the claim back, so this or any
        // replica takes it up when it is next due; else keep it, renewed.
        let more_now = p.state().is_active() && p.due_at <= now;
        let lease = more_now.then_some(self.config.lease);
        let started = Instant::now();
        match self
            .parts
            .ledger
            .save(&work.claim, expected, &p, lease)
            .await
        {
            Ok(()) => {}
            Err(LedgerError::LostClaim) => {
                work.held = false;
                return Err(EngineError::Ledger(LedgerError::LostClaim));
            }
            Err(e) => return Err(e.into()),
        }
        work.held = more_now;
        // A step that failed and kept its state has an earlier attempt.
        work.entered = more_now && p.state() != expected;
        work.deadline = if more_now {
            self.deadline_from(started)
        } else {
            deadline
        };
        work.payout = p;
        Ok(())
    }

    /// Runs `call` only until the step's deadline: past it the outcome is
    /// unknown, and the step is retried later.
    async fn bounded<T>(
        &self,
        step: &Step<'_>,
        what: &str,
        call: impl Future<Output = T>,
    ) -> Result<T, StepError> {
        if Instant::now() >= step.deadline {
            return Err(StepError::Transient(format!(
                "{what}: the step reached the end of its lease"
            )));
        }
        tokio::time::timeout_at(step.deadline, call)
            .await
            .map_err(|_| {
                StepError::Transient(format!("{what}: cut off at the end of the step's lease"))
            })
    }

    /// Renews the claim right before the rail is called, and moves the
    /// step's deadline to the renewed lease. `LostClaim` when the claim was
    /// taken over: the rail must not be called. Nothing to do when the save
    /// that submitted the entry set the lease a moment ago
    /// ([`RENEWED_WITHIN`]): that save was the compare-and-set on the claim.
    async fn renew(&self, p: &Payout, step: &mut Step<'_>) -> StepResult {
        let started = Instant::now();
        if step.entered
            && self.deadline_from(started)
                < step.deadline + std_duration(self.config.lease / RENEWED_WITHIN)
        {
            return Ok(());
        }
        match self
            .parts
            .ledger
            .renew(&p.transaction_id, step.claim, self.config.lease)
            .await
        {
            Ok(()) => {
                step.deadline = self.deadline_from(started);
                Ok(())
            }
            Err(LedgerError::LostClaim) => Err(StepError::LostClaim),
            Err(e) => Err(StepError::Transient(format!(
                "cannot renew the claim before the rail call: {e}"
            ))),
        }
    }

    async fn fetch(
        &self,
        step: &Step<'_>,
        id: &TransactionId,
    ) -> Result<Option<Transaction>, StepError> {
        match self
            .bounded(step, "reading the AP", self.parts.platform.transaction(id))
            .await?
        {
            Ok(tx) => Ok(Some(tx)),
            Err(PlatformError::NotFound) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    async fn tell(
        &self,
        step: &Step<'_>,
        id: &TransactionId,
        message: Option<String>,
        change: mooring_domain::transaction::TransactionChange,
    ) -> Result<Result<Transaction, PlatformError>, StepError> {
        self.bounded(
            step,
            "updating the AP",
            self.parts.platform.update(&TransactionUpdate {
                id: id.clone(),
                message,
                change,
            }),
        )
        .await
    }
}
