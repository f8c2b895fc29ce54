//! The payout ledger's rules: one entry per AP transaction, moved through a
//! state machine whose every step is committed before the next side effect,
//! so that a crash anywhere resumes without a second payout.
//!
//! ```text
//!  new ──► awaiting_funds ──► received ──────────────► submitted ──► confirmed ──► completed
//!   │                            │ ▲                     │    ▲ │
//!   │                            ▼ │                     │    │ ▼
//!   │                        awaiting_kyc                │  needs_attention (a person decides)
//!   │                                                    ▼
//!   │                                               rail_failed ──► failed ──► (retry --new-attempt) recovering
//!   └──────────────► rejecting ──► rejected ──► (retry) recovering ──► received
//!                                     │
//!         rejected, failed, awaiting_kyc ──► (refund) refunding ──► refunded
//! ```
//!
//! `closed` marks a transaction the AP had finished when Mooring read it,
//! with no payout made: known, and nothing to do, unless the AP later shows
//! it funded and open again (it then reopens as `received`).

pub mod decide;
mod fields;

pub use fields::{DEFAULT_PROVIDER_FIELDS, ProviderFields};

use std::fmt;

use chrono::{DateTime, Duration, Utc};
use rust_decimal::Decimal;

use crate::customer::CustomerStatus;
use crate::quote::Quote;
use crate::transaction::{Amount, Transaction, TransactionId, TransactionStatus};

/// Where a transaction's payout stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PayoutState {
    /// Seen, not funded yet (or seen finished, to be read again): claim the
    /// quote; on AP 3.x+ ask for the funds.
    New,
    /// Waiting for the sender's on-chain payment (nothing to do until then).
    AwaitingFunds,
    /// Funded: check amounts, quote, and both parties' KYC; then freeze the
    /// payout's order.
    Received,
    /// A party's KYC is not ACCEPTED yet; rechecked until it is.
    AwaitingKyc,
    /// The checks passed and the order is frozen, but the amount is over
    /// `payout.approval_above`: nothing is sent until an operator releases
    /// it in the back office (then `submitted`, under the same key).
    AwaitingApproval,
    /// The frozen order was (or is being) sent to the rail under its key.
    Submitted,
    /// The rail's answer needs a person: the key was reused with other
    /// parameters, the credentials were refused, or the answer stayed
    /// unknown for longer than the provider keeps keys. A payout may exist,
    /// so nothing is failed towards the AP and no new key is used.
    Held,
    /// The rail paid; the AP is to be told.
    Confirmed,
    /// The AP has the transaction `completed`.
    Completed,
    /// A check failed before any payout: the AP is to be told `error`.
    Rejecting,
    /// The AP has the rejection; no payout was made.
    Rejected,
    /// The rail refused the payout (no payout exists) or confirmed it
    /// failed: the AP is to be told `error`.
    RailFailed,
    /// The AP has the failure; no payout was made.
    Failed,
    /// The operator asked for another attempt: the AP is to be told the
    /// transaction resumes (`error` → `pending_receiver`).
    Recovering,
    /// The operator returned the funds; the AP is to be told.
    Refunding,
    /// The AP has the transaction `refunded`.
    Refunded,
    /// Finished at the AP with no payout made by Mooring.
    Closed,
}

impl PayoutState {
    pub const ALL: [Self; 17] = [
        Self::New,
        Self::AwaitingFunds,
        Self::Received,
        Self::AwaitingKyc,
        Self::AwaitingApproval,
        Self::Submitted,
        Self::Held,
        Self::Confirmed,
        Self::Completed,
        Self::Rejecting,
        Self::Rejected,
        Self::RailFailed,
        Self::Failed,
        Self::Recovering,
        Self::Refunding,
        Self::Refunded,
        Self::Closed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::New => "new",
            Self::AwaitingFunds => "awaiting_funds",
            Self::Received => "received",
            Self::AwaitingKyc => "awaiting_kyc",
            Self::AwaitingApproval => "awaiting_approval",
            Self::Submitted => "submitted",
            Self::Held => "needs_attention",
            Self::Confirmed => "confirmed",
            Self::Completed => "completed",
            Self::Rejecting => "rejecting",
            Self::Rejected => "rejected",
            Self::RailFailed => "rail_failed",
            Self::Failed => "failed",
            Self::Recovering => "recovering",
            Self::Refunding => "refunding",
            Self::Refunded => "refunded",
            Self::Closed => "closed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|state| state.as_str() == s)
    }

    /// States with a step for the engine to take (when due).
    pub fn is_active(self) -> bool {
        matches!(
            self,
            Self::New
                | Self::Received
                | Self::AwaitingKyc
                | Self::Submitted
                | Self::Confirmed
                | Self::Rejecting
                | Self::RailFailed
                | Self::Recovering
                | Self::Refunding
        )
    }

    /// Whether the sender's payment has been seen for this entry (a poll
    /// need not sight it again). A closed entry is sighted again, so that
    /// it reopens when the AP shows it funded and open.
    pub fn knows_funds(self) -> bool {
        !matches!(self, Self::New | Self::AwaitingFunds | Self::Closed)
    }

    /// Whether a payout may have been made (or is being made) at the rail.
    pub fn payout_possible(self) -> bool {
        matches!(
            self,
            Self::Submitted | Self::Held | Self::Confirmed | Self::Completed
        )
    }

    /// Whether the entry is done for good: its frozen order is dropped.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            Self::Completed | Self::Rejected | Self::Failed | Self::Refunded | Self::Closed
        )
    }

    /// What a sighting of the transaction at the AP does to an entry.
    /// Sightings come in any order and any number of times (polls, events,
    /// duplicates, stale snapshots), so a sighting never ends an entry: a
    /// "finished" one only makes the entry due, so that its step reads the
    /// AP afresh and decides. Everything past the first sighting of the
    /// funds is the engine's, which reads the AP before acting.
    pub fn on_sighting(current: Option<Self>, sighting: Sighting) -> SightingEffect {
        use SightingEffect as E;
        match (current, sighting) {
            (None, Sighting::Unfunded | Sighting::Finished) => E::Create(Self::New),
            (None, Sighting::Funded) => E::Create(Self::Received),
            // Funded, or funded and open again after a read found it finished.
            (Some(Self::New | Self::AwaitingFunds | Self::Closed), Sighting::Funded) => {
                E::Move(Self::Received)
            }
            // Read it again: the New step closes it if the AP really finished it.
            (Some(Self::AwaitingFunds), Sighting::Finished) => E::Move(Self::New),
            (Some(state), Sighting::Finished) if state.is_active() => E::Wake,
            _ => E::Nothing,
        }
    }
}

impl fmt::Display for PayoutState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// What a sighting does to the ledger ([`PayoutState::on_sighting`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SightingEffect {
    /// A new entry in this state, due now.
    Create(PayoutState),
    /// The entry moves to this state, due now (its claim is freed).
    Move(PayoutState),
    /// The entry stays as it is and is due now.
    Wake,
    Nothing,
}

/// What one look at a transaction at the AP says about its funds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sighting {
    /// Created, the sender's payment not yet received.
    Unfunded,
    /// The sender's payment was received and the transaction is open.
    Funded,
    /// The AP has finished with it (completed, refunded, expired, error).
    Finished,
}

impl Sighting {
    /// The sighting a SEP-31 transaction gives; `None` for other SEPs and
    /// for statuses that say nothing new (e.g. `pending_stellar`).
    pub fn of(tx: &Transaction) -> Option<Self> {
        if !(tx.sep.is_empty() || tx.sep == "31") {
            return None;
        }
        Self::from_status(&tx.status, tx.transfer_received_at.is_some())
    }

    /// The sighting of a status and whether the funds were received.
    pub fn from_status(status: &TransactionStatus, funded: bool) -> Option<Self> {
        use TransactionStatus as S;
        match status {
            S::PendingSender => Some(Self::Unfunded),
            S::PendingReceiver if !funded => Some(Self::Unfunded),
            S::PendingReceiver
            | S::PendingExternal
            | S::PendingCustomerInfoUpdate
            | S::PendingTransactionInfoUpdate => funded.then_some(Self::Funded),
            S::Completed | S::Refunded | S::Expired | S::Error => Some(Self::Finished),
            S::PendingStellar | S::Other(_) => None,
        }
    }
}

/// An AP event as `POST /event` parsed it: what it says, with no meaning
/// given yet ([`EventFacts::meaning`] gives it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventFacts {
    /// The transaction the event carries, when it carries one.
    pub transaction: Option<EventTransaction>,
    /// The customer a `customer_updated` event names.
    pub customer_id: Option<String>,
}

/// The transaction in an event, as the AP wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventTransaction {
    pub id: Option<TransactionId>,
    /// `31` for SEP-31 (empty when the AP left it out).
    pub sep: String,
    pub status: Option<TransactionStatus>,
    /// Whether it has a `transfer_received_at`.
    pub funded: bool,
}

/// What an event means for the ledger: one sighting of a SEP-31
/// transaction, and a customer whose awaiting payouts are due now. The
/// store applies both atomically with marking the event applied.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EventMeaning {
    pub sighting: Option<(TransactionId, Sighting)>,
    pub wake_customer: Option<String>,
}

impl EventFacts {
    /// The one home of an event's meaning. An event is a hint: a sighting
    /// (which never ends an entry, [`PayoutState::on_sighting`]), or a
    /// customer to look at again.
    pub fn meaning(&self) -> EventMeaning {
        let sighting = self.transaction.as_ref().and_then(|t| {
            if !(t.sep.is_empty() || t.sep == "31") {
                return None;
            }
            let sighting = Sighting::from_status(t.status.as_ref()?, t.funded)?;
            Some((t.id.clone()?, sighting))
        });
        EventMeaning {
            sighting,
            wake_customer: self.customer_id.clone(),
        }
    }
}

/// A payout as it is sent to the rail: frozen (committed with `submitted`)
/// before the first call, and sent unchanged by every retry under its key,
/// whatever happens to the receiver's KYC afterwards. `Debug` shows field
/// names, never values.
#[derive(Clone, PartialEq, Eq)]
pub struct PayoutOrder {
    /// The same for every retry of one payout.
    pub idempotency_key: String,
    pub transaction_id: String,
    pub amount: Decimal,
    /// The asset paid, as sent (its SEP-38 name, e.g. `iso4217:BRL`; an
    /// order frozen by an earlier version keeps its own spelling, so that
    /// every retry sends the same bytes).
    pub asset: String,
    /// The delivery method of the committed terms (the quote's buy side).
    pub delivery_method: Option<String>,
    pub receiver_id: String,
    /// The receiver's SEP-9 text fields by their SEP-9 names, as sent. PII.
    pub receiver_fields: Vec<(String, String)>,
}

impl fmt::Debug for PayoutOrder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PayoutOrder")
            .field("idempotency_key", &self.idempotency_key)
            .field("amount", &self.amount)
            .field("asset", &self.asset)
            .field(
                "receiver_fields",
                &self
                    .receiver_fields
                    .iter()
                    .map(|(k, _)| k)
                    .collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

/// What the rail has of the current attempt: the order frozen with
/// `submitted`, when it was first committed (the provider keeps a key for a
/// limited time from then), and what the rail made of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AtRail {
    /// The order sent under the key, byte for byte on every retry. `None`
    /// only for an entry an earlier version submitted without freezing one
    /// (it is built once, and committed, before any call).
    pub order: Option<PayoutOrder>,
    pub submitted_at: DateTime<Utc>,
    /// The rail's id of the payout: the AP's `external_transaction_id`.
    pub payout_id: Option<String>,
    /// Whether the AP was told the payout is pending (`pending_external`).
    pub told_pending: bool,
    /// The order was frozen, but can no longer be opened: the receiver was
    /// erased (`DELETE /customer`) and their data key with it. Only a
    /// status read by the rail's id, or a person, can settle the payout.
    pub order_erased: bool,
}

/// Where an entry stands, with the data of that state and no other: an
/// order exists only while it may be sent, a reason only where one was
/// given, and once final only the rail's id stays (with the entry's
/// amounts and key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stage {
    New,
    AwaitingFunds,
    Received,
    /// A party's KYC is awaited. `asked`: the AP is known to wait for
    /// customer info (Mooring told it so, or saw it waiting), so a party
    /// who still needs to provide more is not asked for again.
    AwaitingKyc {
        asked: bool,
    },
    /// The order frozen, nothing sent: `submitted_at` is when it was frozen
    /// (a release sets it again, when the key is first used).
    AwaitingApproval(AtRail),
    Submitted(AtRail),
    Held {
        at_rail: AtRail,
        reason: String,
    },
    Confirmed {
        payout_id: Option<String>,
    },
    Completed {
        payout_id: Option<String>,
    },
    Rejecting {
        reason: String,
    },
    Rejected {
        reason: String,
    },
    RailFailed {
        payout_id: Option<String>,
        reason: String,
    },
    Failed {
        payout_id: Option<String>,
        reason: String,
    },
    Recovering,
    /// The funds go back; the rail's id and the reason of the failure or
    /// rejection, if any, are kept.
    Refunding {
        reference: String,
        payout_id: Option<String>,
        reason: Option<String>,
    },
    Refunded {
        reference: String,
        payout_id: Option<String>,
        reason: Option<String>,
    },
    Closed {
        reason: String,
        payout_id: Option<String>,
    },
}

impl Stage {
    pub fn state(&self) -> PayoutState {
        use PayoutState as P;
        match self {
            Self::New => P::New,
            Self::AwaitingFunds => P::AwaitingFunds,
            Self::Received => P::Received,
            Self::AwaitingKyc { .. } => P::AwaitingKyc,
            Self::AwaitingApproval(_) => P::AwaitingApproval,
            Self::Submitted(_) => P::Submitted,
            Self::Held { .. } => P::Held,
            Self::Confirmed { .. } => P::Confirmed,
            Self::Completed { .. } => P::Completed,
            Self::Rejecting { .. } => P::Rejecting,
            Self::Rejected { .. } => P::Rejected,
            Self::RailFailed { .. } => P::RailFailed,
            Self::Failed { .. } => P::Failed,
            Self::Recovering => P::Recovering,
            Self::Refunding { .. } => P::Refunding,
            Self::Refunded { .. } => P::Refunded,
            Self::Closed { .. } => P::Closed,
        }
    }

    /// The stage of a state that carries no data of its own (`None` for one
    /// that does).
    pub fn plain(state: PayoutState) -> Option<Self> {
        use PayoutState as P;
        Some(match state {
            P::New => Self::New,
            P::AwaitingFunds => Self::AwaitingFunds,
            P::Received => Self::Received,
            P::AwaitingKyc => Self::AwaitingKyc { asked: false },
            P::Recovering => Self::Recovering,
            _ => return None,
        })
    }
}

/// One ledger entry: the transaction's terms as the entry took them, its
/// [`Stage`], and the engine's bookkeeping. Reasons and errors are written
/// for operators and never carry PII (no names, no account numbers). The
/// stage moves only through the transitions below, each of which refuses
/// a move its state does not allow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payout {
    pub transaction_id: TransactionId,
    /// 1 for the first payout attempt; an operator's retry after the rail
    /// confirmed a payout failed starts the next (with its own key).
    pub attempt: u32,
    pub quote_id: Option<String>,
    pub sender_id: Option<String>,
    pub receiver_id: Option<String>,
    pub amount_in: Option<Amount>,
    pub amount_out: Option<Amount>,
    stage: Stage,
    /// The last step's error, while it is being retried.
    pub last_error: Option<String>,
    /// Steps failed in a row (for the backoff); 0 after a success.
    pub failures: u32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// When the next step is due.
    pub due_at: DateTime<Utc>,
}

/// An illegal move of an entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a payout cannot move from {from} to {to}")]
pub struct IllegalMove {
    pub from: PayoutState,
    pub to: PayoutState,
}

impl Payout {
    /// A fresh entry in `stage`, due now.
    pub fn new(transaction_id: TransactionId, stage: Stage, now: DateTime<Utc>) -> Self {
        Self {
            transaction_id,
            attempt: 1,
            quote_id: None,
            sender_id: None,
            receiver_id: None,
            amount_in: None,
            amount_out: None,
            stage,
            last_error: None,
            failures: 0,
            created_at: now,
            updated_at: now,
            due_at: now,
        }
    }

    /// An entry as a store kept it, in whatever stage it was saved.
    pub fn restore(self, stage: Stage) -> Self {
        Self { stage, ..self }
    }

    pub fn state(&self) -> PayoutState {
        self.stage.state()
    }

    pub fn stage(&self) -> &Stage {
        &self.stage
    }

    /// The rail's id of the payout, in any state that keeps one.
    pub fn payout_id(&self) -> Option<&str> {
        match &self.stage {
            Stage::Submitted(r) | Stage::Held { at_rail: r, .. } => r.payout_id.as_deref(),
            Stage::Confirmed { payout_id }
            | Stage::Completed { payout_id }
            | Stage::RailFailed { payout_id, .. }
            | Stage::Failed { payout_id, .. }
            | Stage::Refunding { payout_id, .. }
            | Stage::Refunded { payout_id, .. }
            | Stage::Closed { payout_id, .. } => payout_id.as_deref(),
            _ => None,
        }
    }

    /// What the rail has (or, awaiting approval, is to get) of the current
    /// attempt, while a payout may be under way or is about to be.
    pub fn at_rail(&self) -> Option<&AtRail> {
        match &self.stage {
            Stage::AwaitingApproval(r) | Stage::Submitted(r) | Stage::Held { at_rail: r, .. } => {
                Some(r)
            }
            _ => None,
        }
    }

    /// The frozen order, while it may be sent.
    pub fn order(&self) -> Option<&PayoutOrder> {
        self.at_rail().and_then(|r| r.order.as_ref())
    }

    /// Why the transaction was rejected, its payout failed, it is held or
    /// closed.
    pub fn reason(&self) -> Option<&str> {
        match &self.stage {
            Stage::Held { reason, .. }
            | Stage::Rejecting { reason }
            | Stage::Rejected { reason }
            | Stage::RailFailed { reason, .. }
            | Stage::Failed { reason, .. }
            | Stage::Closed { reason, .. } => Some(reason),
            Stage::Refunding { reason, .. } | Stage::Refunded { reason, .. } => reason.as_deref(),
            _ => None,
        }
    }

    /// The operator's reference of a refund (the Stellar transaction hash).
    pub fn refund_reference(&self) -> Option<&str> {
        match &self.stage {
            Stage::Refunding { reference, .. } | Stage::Refunded { reference, .. } => {
                Some(reference)
            }
            _ => None,
        }
    }

    /// The rail's idempotency key of the current attempt: the transaction
    /// id for the first, so every retry of one payout carries the same key.
    pub fn idempotency_key(&self) -> String {
        idempotency_key(&self.transaction_id, self.attempt)
    }

    /// Moves to `stage` if the entry is in one of `from`, due now, clearing
    /// the error streak.
    fn step_to(
        &mut self,
        from: &[PayoutState],
        stage: Stage,
        now: DateTime<Utc>,
    ) -> Result<(), IllegalMove> {
        if !from.contains(&self.state()) {
            return Err(IllegalMove {
                from: self.state(),
                to: stage.state(),
            });
        }
        self.stage = stage;
        self.done_step(now);
        Ok(())
    }

    /// A step succeeded: due now, the error streak cleared.
    pub fn done_step(&mut self, now: DateTime<Utc>) {
        self.failures = 0;
        self.last_error = None;
        self.updated_at = now;
        self.due_at = now;
    }

    /// Funded (or funded again): the checks run. From the states before a
    /// payout, an operator's recovery, and `closed` (reopened by a funded
    /// sighting).
    pub fn receive(&mut self, now: DateTime<Utc>) -> Result<(), IllegalMove> {
        use PayoutState as P;
        let from = [
            P::New,
            P::AwaitingFunds,
            P::AwaitingKyc,
            P::Recovering,
            P::Closed,
        ];
        self.step_to(&from, Stage::Received, now)
    }

    /// Waiting for the sender's payment.
    pub fn await_funds(&mut self, now: DateTime<Utc>) -> Result<(), IllegalMove> {
        use PayoutState as P;
        self.step_to(&[P::New, P::Received], Stage::AwaitingFunds, now)
    }

    /// Back to `new`, to read the AP again (a finished sighting of an
    /// entry awaiting funds).
    pub fn read_again(&mut self, now: DateTime<Utc>) -> Result<(), IllegalMove> {
        self.step_to(&[PayoutState::AwaitingFunds], Stage::New, now)
    }

    /// A party's KYC is awaited, rechecked at `recheck`.
    pub fn await_kyc(
        &mut self,
        now: DateTime<Utc>,
        recheck: DateTime<Utc>,
    ) -> Result<(), IllegalMove> {
        use PayoutState as P;
        let asked = self.asked_for_info();
        self.step_to(
            &[P::Received, P::AwaitingKyc],
            Stage::AwaitingKyc { asked },
            now,
        )?;
        self.due_at = recheck;
        Ok(())
    }

    /// As [`Self::await_kyc`], with the AP known to wait for customer info
    /// (told now, or seen waiting).
    pub fn await_info(
        &mut self,
        now: DateTime<Utc>,
        recheck: DateTime<Utc>,
    ) -> Result<(), IllegalMove> {
        use PayoutState as P;
        let stage = Stage::AwaitingKyc { asked: true };
        self.step_to(&[P::Received, P::AwaitingKyc], stage, now)?;
        self.due_at = recheck;
        Ok(())
    }

    /// Awaiting KYC, with the AP known to wait for customer info.
    pub fn asked_for_info(&self) -> bool {
        matches!(self.stage, Stage::AwaitingKyc { asked: true })
    }

    /// A check failed before any payout: the AP is to be told `error`.
    pub fn reject(&mut self, reason: String, now: DateTime<Utc>) -> Result<(), IllegalMove> {
        use PayoutState as P;
        // Also an operator's decline of a payout awaiting approval.
        let from = [P::New, P::Received, P::AwaitingKyc, P::AwaitingApproval];
        self.step_to(&from, Stage::Rejecting { reason }, now)
    }

    /// The AP had finished the transaction (or forgot it) with no payout
    /// made by Mooring. The key stays: should a funded sighting reopen the
    /// entry after a rail failure, a new order under the used key is
    /// answered 422 by the provider and held for a person, never paid
    /// under a new key without one. The rail's id, if any, is kept.
    pub fn close(&mut self, reason: String, now: DateTime<Utc>) -> Result<(), IllegalMove> {
        use PayoutState as P;
        let payout_id = self.payout_id().map(str::to_owned);
        // Also a payout awaiting approval that the AP finished meanwhile.
        let from = [
            P::New,
            P::Received,
            P::AwaitingApproval,
            P::Rejecting,
            P::RailFailed,
        ];
        self.step_to(&from, Stage::Closed { reason, payout_id }, now)
    }

    /// The checks passed: the order is frozen and the entry is `submitted`,
    /// in one commit, before the rail is called. Only from `received`, and
    /// only with an order under this entry's own key.
    pub fn submit(&mut self, order: PayoutOrder, now: DateTime<Utc>) -> Result<(), IllegalMove> {
        if order.idempotency_key != self.idempotency_key()
            || order.transaction_id != self.transaction_id.as_str()
        {
            return Err(IllegalMove {
                from: self.state(),
                to: PayoutState::Submitted,
            });
        }
        let at_rail = AtRail {
            order: Some(order),
            submitted_at: now,
            payout_id: None,
            told_pending: false,
            order_erased: false,
        };
        self.step_to(&[PayoutState::Received], Stage::Submitted(at_rail), now)
    }

    /// The checks passed but the amount needs a person's approval: the
    /// order is frozen and the entry waits, sending nothing. Only from
    /// `received`, with an order under this entry's own key.
    pub fn await_approval(
        &mut self,
        order: PayoutOrder,
        now: DateTime<Utc>,
    ) -> Result<(), IllegalMove> {
        if order.idempotency_key != self.idempotency_key()
            || order.transaction_id != self.transaction_id.as_str()
        {
            return Err(IllegalMove {
                from: self.state(),
                to: PayoutState::AwaitingApproval,
            });
        }
        let at_rail = AtRail {
            order: Some(order),
            submitted_at: now,
            payout_id: None,
            told_pending: false,
            order_erased: false,
        };
        self.step_to(
            &[PayoutState::Received],
            Stage::AwaitingApproval(at_rail),
            now,
        )
    }

    /// An operator approved the amount: the frozen order goes to the rail,
    /// unchanged, in the next step (`submitted`, due now; the key is first
    /// used from now).
    pub fn release(&mut self, now: DateTime<Utc>) -> Result<(), IllegalMove> {
        let Stage::AwaitingApproval(r) = &self.stage else {
            return Err(IllegalMove {
                from: self.state(),
                to: PayoutState::Submitted,
            });
        };
        let mut at_rail = r.clone();
        at_rail.submitted_at = now;
        self.step_to(
            &[PayoutState::AwaitingApproval],
            Stage::Submitted(at_rail),
            now,
        )
    }

    /// An entry an earlier version submitted without freezing its order:
    /// the order is frozen now, before any call.
    pub fn freeze_order(
        &mut self,
        order: PayoutOrder,
        now: DateTime<Utc>,
    ) -> Result<(), IllegalMove> {
        match &mut self.stage {
            Stage::Submitted(r)
                if r.order.is_none()
                    && order.idempotency_key
                        == idempotency_key(&self.transaction_id, self.attempt) =>
            {
                r.order = Some(order);
                self.done_step(now);
                Ok(())
            }
            _ => Err(IllegalMove {
                from: self.state(),
                to: PayoutState::Submitted,
            }),
        }
    }

    /// The rail made the payout and it is under way: followed again at
    /// `follow_at`, with whether the AP has now heard it is pending.
    pub fn follow(
        &mut self,
        payout_id: String,
        told_pending: bool,
        now: DateTime<Utc>,
        follow_at: DateTime<Utc>,
    ) -> Result<(), IllegalMove> {
        let Stage::Submitted(r) = &mut self.stage else {
            return Err(IllegalMove {
                from: self.state(),
                to: PayoutState::Submitted,
            });
        };
        r.payout_id = Some(payout_id);
        r.told_pending |= told_pending;
        self.done_step(now);
        self.due_at = follow_at;
        Ok(())
    }

    /// The rail paid: the AP is to be told `completed`.
    pub fn paid(&mut self, payout_id: String, now: DateTime<Utc>) -> Result<(), IllegalMove> {
        let stage = Stage::Confirmed {
            payout_id: Some(payout_id),
        };
        self.step_to(&[PayoutState::Submitted], stage, now)
    }

    /// The rail refused the order or says the payout failed (or the
    /// operator settled a held one as not paid): the AP is to be told
    /// `error`. The payout id the rail gave, if any, is kept.
    pub fn rail_failed(
        &mut self,
        payout_id: Option<String>,
        reason: String,
        now: DateTime<Utc>,
    ) -> Result<(), IllegalMove> {
        let payout_id = payout_id.or_else(|| self.payout_id().map(str::to_owned));
        let stage = Stage::RailFailed { payout_id, reason };
        self.step_to(&[PayoutState::Submitted, PayoutState::Held], stage, now)
    }

    /// The rail's answer needs a person: held with the reason, never failed
    /// towards the AP. Only while a payout may exist at the rail.
    pub fn hold(&mut self, reason: String, now: DateTime<Utc>) -> Result<(), IllegalMove> {
        let Stage::Submitted(at_rail) = &self.stage else {
            return Err(IllegalMove {
                from: self.state(),
                to: PayoutState::Held,
            });
        };
        let stage = Stage::Held {
            at_rail: at_rail.clone(),
            reason,
        };
        self.step_to(&[PayoutState::Submitted], stage, now)
    }

    /// A held payout goes back to the rail under the same key and order
    /// (the operator's retry), or with the rail's id the operator got from
    /// the provider, to be followed by it.
    pub fn resubmit(
        &mut self,
        payout_id: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<(), IllegalMove> {
        let Stage::Held { at_rail, .. } = &self.stage else {
            return Err(IllegalMove {
                from: self.state(),
                to: PayoutState::Submitted,
            });
        };
        let mut at_rail = at_rail.clone();
        if payout_id.is_some() {
            at_rail.payout_id = payout_id;
        }
        self.step_to(&[PayoutState::Held], Stage::Submitted(at_rail), now)
    }

    /// The AP has `completed`. Only the rail's id stays.
    pub fn complete(&mut self, now: DateTime<Utc>) -> Result<(), IllegalMove> {
        let payout_id = self.payout_id().map(str::to_owned);
        self.step_to(
            &[PayoutState::Confirmed],
            Stage::Completed { payout_id },
            now,
        )
    }

    /// The AP has the `error`: a rejection is `rejected`, a rail failure
    /// `failed`.
    pub fn told_error(&mut self, now: DateTime<Utc>) -> Result<(), IllegalMove> {
        let reason = self.reason().unwrap_or_default().to_owned();
        let stage = match &self.stage {
            Stage::Rejecting { .. } => Stage::Rejected { reason },
            Stage::RailFailed { payout_id, .. } => Stage::Failed {
                payout_id: payout_id.clone(),
                reason,
            },
            _ => {
                return Err(IllegalMove {
                    from: self.state(),
                    to: PayoutState::Failed,
                });
            }
        };
        self.step_to(
            &[PayoutState::Rejecting, PayoutState::RailFailed],
            stage,
            now,
        )
    }

    /// The operator's retry of a rejection (checked again) or, under a new
    /// key, of a payout the rail confirmed failed: the AP's transaction
    /// leaves `error` first.
    pub fn recover(&mut self, new_attempt: bool, now: DateTime<Utc>) -> Result<(), IllegalMove> {
        let from = if new_attempt {
            PayoutState::Failed
        } else {
            PayoutState::Rejected
        };
        self.step_to(&[from], Stage::Recovering, now)?;
        if new_attempt {
            self.attempt += 1;
        }
        Ok(())
    }

    /// The operator's new attempt of a held payout the rail confirmed
    /// failed: checked again, for a new key.
    pub fn new_attempt(&mut self, now: DateTime<Utc>) -> Result<(), IllegalMove> {
        self.step_to(&[PayoutState::Held], Stage::Received, now)?;
        self.attempt += 1;
        Ok(())
    }

    /// The operator returned the funds (only where no payout exists).
    pub fn refund(&mut self, reference: String, now: DateTime<Utc>) -> Result<(), IllegalMove> {
        use PayoutState as P;
        let from = [P::Rejected, P::Failed, P::AwaitingKyc];
        let stage = Stage::Refunding {
            reference,
            payout_id: self.payout_id().map(str::to_owned),
            reason: self.reason().map(str::to_owned),
        };
        self.step_to(&from, stage, now)
    }

    /// The AP has `refunded`.
    pub fn refunded(&mut self, now: DateTime<Utc>) -> Result<(), IllegalMove> {
        let Stage::Refunding {
            reference,
            payout_id,
            reason,
        } = self.stage.clone()
        else {
            return Err(IllegalMove {
                from: self.state(),
                to: PayoutState::Refunded,
            });
        };
        let stage = Stage::Refunded {
            reference,
            payout_id,
            reason,
        };
        self.step_to(&[PayoutState::Refunding], stage, now)
    }

    /// A sighting's move ([`PayoutState::on_sighting`]): to `received` when
    /// funded, or back to `new` to be read again.
    pub fn sighted(&mut self, to: PayoutState, now: DateTime<Utc>) -> Result<(), IllegalMove> {
        match to {
            PayoutState::Received => self.receive(now),
            PayoutState::New => self.read_again(now),
            _ => Err(IllegalMove {
                from: self.state(),
                to,
            }),
        }
    }

    /// Stays in the current state after a failed step: due again after an
    /// exponential backoff (`base · 2^failures`, at most `max`).
    pub fn retry_later(
        &mut self,
        error: String,
        now: DateTime<Utc>,
        base: Duration,
        max: Duration,
    ) {
        self.failures = self.failures.saturating_add(1);
        self.last_error = Some(error);
        self.updated_at = now;
        self.due_at = now + backoff(self.failures, base, max);
    }

    /// Made due now by the operator, with nothing else changed.
    pub fn due_now(&mut self, now: DateTime<Utc>) {
        self.updated_at = now;
        self.due_at = now;
    }
}

/// Which party of a SEP-31 payment a customer is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Party {
    Sender,
    Receiver,
}

impl Party {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sender => "sender",
            Self::Receiver => "receiver",
        }
    }
}

/// One party's KYC as the payout gate sees it: assessed against the type
/// the AP checks that party as, never the type a PUT happened to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KycVerdict {
    pub party: Party,
    /// The id the transaction names; `None` when it names none.
    pub customer_id: Option<String>,
    pub customer_type: String,
    /// `None` when there is no such customer.
    pub status: Option<CustomerStatus>,
}

/// What the KYC gate decides before a payout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gate {
    /// Both parties are ACCEPTED: pay.
    Pay,
    /// No payout: the AP is told `error` with this reason.
    Reject(String),
    /// This party must provide more (`pending_customer_info_update`).
    NeedsInfo {
        customer_id: String,
        customer_type: String,
    },
    /// The anchor's own review is under way (PROCESSING): wait quietly.
    Wait,
}

/// The KYC gate: the sender ACCEPTED under the sender type and the
/// receiver ACCEPTED under the receiver type, or the reason why not. A
/// rejection on either side wins over a wait; the sender is asked first.
pub fn kyc_gate(sender: &KycVerdict, receiver: &KycVerdict) -> Gate {
    let parties = [sender, receiver];
    for v in parties {
        let party = v.party.as_str();
        match (&v.customer_id, v.status) {
            (None, _) => return Gate::Reject(format!("the transaction names no {party}")),
            (Some(id), None) => {
                return Gate::Reject(format!("the {party} {id} is not a customer of this anchor"));
            }
            (Some(_), Some(CustomerStatus::Rejected)) => {
                return Gate::Reject(format!("the {party}'s KYC was rejected"));
            }
            _ => {}
        }
    }
    for v in parties {
        if let (Some(id), Some(CustomerStatus::NeedsInfo)) = (&v.customer_id, v.status) {
            return Gate::NeedsInfo {
                customer_id: id.clone(),
                customer_type: v.customer_type.clone(),
            };
        }
    }
    if parties
        .iter()
        .any(|v| v.status == Some(CustomerStatus::Processing))
    {
        return Gate::Wait;
    }
    Gate::Pay
}

/// The idempotency key of a transaction's payout attempt.
pub fn idempotency_key(id: &TransactionId, attempt: u32) -> String {
    if attempt <= 1 {
        id.as_str().to_owned()
    } else {
        format!("{id}:attempt-{attempt}")
    }
}

/// `base · 2^(failures − 1)`, capped at `max`.
pub fn backoff(failures: u32, base: Duration, max: Duration) -> Duration {
    let factor = 1i32 << failures.saturating_sub(1).min(20);
    base.checked_mul(factor).map_or(max, |d| d.min(max))
}

/// Checks what the sender paid against what the transaction (or its
/// quote) requires, and gives the amount to pay out. The error says why,
/// for the AP's `message` and the operator (amounts and assets only).
///
/// - With a quote: `amount_in` must be exactly the quote's sell amount and
///   asset; the payout is the quote's buy amount and asset.
/// - Without: `amount_in` must equal `amount_expected` when the AP gives
///   one; the payout is `amount_out` when set, else `amount_in` less the fee
///   (same asset only).
pub fn check_funds(tx: &Transaction, quote: Option<&Quote>) -> Result<Amount, String> {
    if let Some(field) = tx.unreadable.first() {
        return Err(format!("the transaction's {field} cannot be read"));
    }
    let received = tx
        .amount_in
        .as_ref()
        .ok_or_else(|| "the transaction has no amount_in".to_owned())?;
    if received.amount <= Decimal::ZERO {
        return Err(format!(
            "the amount received ({}) is not positive",
            received.amount
        ));
    }
    if let Some(quote) = quote {
        let sell = quote.priced.sell_amount;
        if received.asset != quote.sell_asset || received.amount != sell {
            return Err(format!(
                "received {} {}, but quote {} requires {} {}",
                received.amount, received.asset, quote.id, sell, quote.sell_asset
            ));
        }
        return Ok(Amount::new(
            quote.priced.buy_amount,
            quote.buy_asset.clone(),
        ));
    }
    if let Some(expected) = &tx.amount_expected
        && (received.asset != expected.asset || received.amount != expected.amount)
    {
        return Err(format!(
            "received {} {}, but the transaction expects {} {}",
            received.amount, received.asset, expected.amount, expected.asset
        ));
    }
    let out = match &tx.amount_out {
        Some(out) if out.amount > Decimal::ZERO => out.clone(),
        _ => {
            let fee = match &tx.fee {
                None => Decimal::ZERO,
                Some(fee) if fee.asset == received.asset => fee.amount,
                Some(fee) => {
                    return Err(format!(
                        "the fee is in {}, not in the asset received ({}), and no amount_out is set",
                        fee.asset, received.asset
                    ));
                }
            };
            Amount::new(received.amount - fee, received.asset.clone())
        }
    };
    if out.amount <= Decimal::ZERO {
        return Err(format!(
            "nothing to pay out: amount_out would be {} {}",
            out.amount, out.asset
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::AssetId;
    use crate::quote::{Fee, Priced, QuoteId};
    use std::str::FromStr;

    fn amount(a: &str, asset: &str) -> Amount {
        Amount::new(
            Decimal::from_str(a).expect("decimal"),
            AssetId::from_ap(asset).expect("asset"),
        )
    }

    fn tx() -> Transaction {
        Transaction {
            id: TransactionId::parse("t1").expect("id"),
            sep: "31".into(),
            kind: Some("receive".into()),
            status: TransactionStatus::PendingReceiver,
            amount_expected: None,
            amount_in: None,
            amount_out: None,
            fee: None,
            quote_id: None,
            sender_id: None,
            receiver_id: None,
            started_at: None,
            updated_at: None,
            transfer_received_at: None,
            completed_at: None,
            stellar_transaction_ids: vec![],
            external_transaction_id: None,
            message: None,
            unreadable: vec![],
        }
    }

    fn quote() -> Quote {
        let now = Utc::now();
        Quote {
            id: QuoteId::generate(),
            sell_asset: AssetId::parse(
                "stellar:USDC:GA5ZSEJYB37JRC5AVCIA5MOP4RHTM335X2KGX3IHOJAPP5RE34K4KZVN",
            )
            .expect("asset"),
            buy_asset: AssetId::parse("iso4217:BRL").expect("asset"),
            priced: Priced {
                price: Decimal::from_str("0.18").expect("d"),
                sell_amount: Decimal::from(100),
                buy_amount: Decimal::from_str("550.00").expect("d"),
                fee: Fee {
                    total: Decimal::ONE,
                    asset: AssetId::parse(
                        "stellar:USDC:GA5ZSEJYB37JRC5AVCIA5MOP4RHTM335X2KGX3IHOJAPP5RE34K4KZVN",
                    )
                    .expect("asset"),
                    details: vec![],
                },
            },
            sell_delivery_method: None,
            buy_delivery_method: None,
            country_code: None,
            client_id: None,
            created_at: now,
            expires_at: now,
            used_by: None,
            used_at: None,
        }
    }

    const USDC: &str = "stellar:USDC:GA5ZSEJYB37JRC5AVCIA5MOP4RHTM335X2KGX3IHOJAPP5RE34K4KZVN";

    #[test]
    fn states_round_trip() {
        for state in PayoutState::ALL {
            assert_eq!(PayoutState::parse(state.as_str()), Some(state));
        }
        assert_eq!(PayoutState::parse("paid"), None);
    }

    #[test]
    fn a_sighting_never_ends_an_entry_and_a_closed_one_reopens_when_funded() {
        use PayoutState as P;
        use Sighting as S;
        use SightingEffect as E;
        assert_eq!(P::on_sighting(None, S::Unfunded), E::Create(P::New));
        assert_eq!(P::on_sighting(None, S::Funded), E::Create(P::Received));
        // A first sighting of a finished transaction is read again by the
        // New step, which closes it only if the AP really finished it.
        assert_eq!(P::on_sighting(None, S::Finished), E::Create(P::New));
        assert_eq!(
            P::on_sighting(Some(P::AwaitingFunds), S::Funded),
            E::Move(P::Received)
        );
        assert_eq!(
            P::on_sighting(Some(P::New), S::Funded),
            E::Move(P::Received)
        );
        assert_eq!(
            P::on_sighting(Some(P::AwaitingFunds), S::Finished),
            E::Move(P::New)
        );
        assert_eq!(
            P::on_sighting(Some(P::Closed), S::Funded),
            E::Move(P::Received)
        );
        assert_eq!(P::on_sighting(Some(P::Received), S::Finished), E::Wake);
        for state in PayoutState::ALL {
            // A stale "unfunded" after the funds changes nothing.
            if state != P::New && state != P::AwaitingFunds {
                assert_eq!(P::on_sighting(Some(state), S::Unfunded), E::Nothing);
            }
            // No sighting writes a final state or moves a possible payout.
            match P::on_sighting(Some(state), S::Finished) {
                E::Create(next) | E::Move(next) => assert!(!next.is_final(), "{state}"),
                E::Wake | E::Nothing => {}
            }
            if state.payout_possible() {
                for s in [S::Unfunded, S::Funded, S::Finished] {
                    assert!(
                        matches!(P::on_sighting(Some(state), s), E::Wake | E::Nothing),
                        "{state} {s:?}"
                    );
                }
            }
        }
    }

    fn verdict(party: Party, status: Option<CustomerStatus>) -> KycVerdict {
        KycVerdict {
            party,
            customer_id: Some(format!("{}-1", party.as_str())),
            customer_type: format!("sep31-{}", party.as_str()),
            status,
        }
    }

    #[test]
    fn the_kyc_gate_needs_both_parties_accepted_under_their_types() {
        use CustomerStatus as C;
        let all = [
            None,
            Some(C::Accepted),
            Some(C::Processing),
            Some(C::NeedsInfo),
            Some(C::Rejected),
        ];
        for s in all {
            for r in all {
                let gate = kyc_gate(&verdict(Party::Sender, s), &verdict(Party::Receiver, r));
                let pay = s == Some(C::Accepted) && r == Some(C::Accepted);
                assert_eq!(gate == Gate::Pay, pay, "{s:?} {r:?}");
                let reject = [s, r].iter().any(|v| matches!(v, None | Some(C::Rejected)));
                assert_eq!(matches!(gate, Gate::Reject(_)), reject, "{s:?} {r:?}");
            }
        }
        let gate = kyc_gate(
            &verdict(Party::Sender, Some(C::Accepted)),
            &verdict(Party::Receiver, Some(C::NeedsInfo)),
        );
        assert_eq!(
            gate,
            Gate::NeedsInfo {
                customer_id: "receiver-1".into(),
                customer_type: "sep31-receiver".into()
            }
        );
        let gate = kyc_gate(
            &verdict(Party::Sender, Some(C::Rejected)),
            &verdict(Party::Receiver, Some(C::Accepted)),
        );
        assert_eq!(gate, Gate::Reject("the sender's KYC was rejected".into()));
        let mut none = verdict(Party::Sender, None);
        none.customer_id = None;
        assert_eq!(
            kyc_gate(&none, &verdict(Party::Receiver, Some(C::Accepted))),
            Gate::Reject("the transaction names no sender".into())
        );
    }

    fn order_for(p: &Payout) -> PayoutOrder {
        PayoutOrder {
            idempotency_key: p.idempotency_key(),
            transaction_id: p.transaction_id.as_str().to_owned(),
            amount: Decimal::from(10),
            asset: "iso4217:BRL".into(),
            delivery_method: None,
            receiver_id: "r".into(),
            receiver_fields: vec![("bank_account_number".into(), "1".into())],
        }
    }

    #[test]
    fn an_order_is_frozen_only_from_received_under_its_own_key_and_dropped_when_final() {
        let now = Utc::now();
        let mut p = Payout::new(TransactionId::parse("t1").expect("id"), Stage::New, now);
        let order = order_for(&p);
        assert!(p.submit(order.clone(), now).is_err());
        p.receive(now).expect("funded");
        let mut other = order.clone();
        other.idempotency_key = "t1:attempt-2".into();
        assert!(p.submit(other, now).is_err());
        p.submit(order.clone(), now).expect("submit");
        assert_eq!(
            (p.state(), p.order(), p.at_rail().map(|r| r.submitted_at)),
            (PayoutState::Submitted, Some(&order), Some(now))
        );
        p.hold("the provider refused the credentials".into(), now)
            .expect("hold");
        assert_eq!(p.state(), PayoutState::Held);
        assert!(p.order().is_some(), "a held payout keeps its order");
        assert!(p.hold("again".into(), now).is_err());
        p.resubmit(Some("PAY-1".into()), now)
            .expect("settled as paid");
        p.paid("PAY-1".into(), now).expect("paid");
        p.complete(now).expect("completed");
        assert_eq!(p.order(), None, "a final entry keeps no order");
        assert_eq!(p.payout_id(), Some("PAY-1"), "only the rail's id");
        assert!(format!("{order:?}").contains("bank_account_number"));
        assert!(!format!("{order:?}").contains("\"1\""));
    }

    #[test]
    fn a_payout_awaiting_approval_sends_nothing_until_released_once() {
        let frozen = Utc::now();
        let later = frozen + chrono::Duration::minutes(30);
        let mut p = Payout::new(TransactionId::parse("t1").expect("id"), Stage::New, frozen);
        let order = order_for(&p);
        assert!(
            p.await_approval(order.clone(), frozen).is_err(),
            "only from received"
        );
        p.receive(frozen).expect("funded");
        let mut other = order.clone();
        other.idempotency_key = "t1:attempt-2".into();
        assert!(
            p.await_approval(other, frozen).is_err(),
            "only under its own key"
        );
        p.await_approval(order.clone(), frozen).expect("awaits");
        let state = p.state();
        assert_eq!(
            (state, p.order()),
            (PayoutState::AwaitingApproval, Some(&order))
        );
        // Nothing for the engine to do, nothing at the rail, and not final.
        assert!(!state.is_active() && !state.payout_possible() && !state.is_final());
        assert!(state.knows_funds());
        assert_eq!(p.payout_id(), None);
        p.release(later).expect("released");
        assert_eq!(
            (p.state(), p.order(), p.at_rail().map(|r| r.submitted_at)),
            (PayoutState::Submitted, Some(&order), Some(later)),
            "the same order, its key first used at the release"
        );
        assert_eq!(p.due_at, later, "due at once");
        assert!(p.release(later).is_err(), "released once");
        assert_eq!(
            PayoutState::parse("awaiting_approval"),
            Some(PayoutState::AwaitingApproval)
        );
    }

    #[test]
    fn final_entries_keep_the_rails_id_and_a_reopened_one_its_key() {
        let now = Utc::now();
        let id = TransactionId::parse("t1").expect("id");
        let mut p = Payout::new(id.clone(), Stage::Received, now);
        p.submit(order_for(&p), now).expect("submit");
        p.rail_failed(Some("PAY-9".into()), "failed".into(), now)
            .expect("failed");
        p.close("the AP forgot it".into(), now).expect("closed");
        assert_eq!(p.payout_id(), Some("PAY-9"));
        p.receive(now).expect("reopened by a funded sighting");
        assert_eq!(p.idempotency_key(), "t1", "no new key without a person");
        let mut q = Payout::new(
            id,
            Stage::Failed {
                payout_id: Some("PAY-8".into()),
                reason: "failed at the bank".into(),
            },
            now,
        );
        q.refund("hash".into(), now).expect("refund");
        q.refunded(now).expect("refunded");
        assert_eq!(q.payout_id(), Some("PAY-8"));
        assert_eq!(q.reason(), Some("failed at the bank"));
        assert_eq!(q.refund_reference(), Some("hash"));
    }

    #[test]
    fn every_transition_refuses_a_state_it_does_not_leave_from() {
        use PayoutState as P;
        let now = Utc::now();
        let id = TransactionId::parse("t1").expect("id");
        let at_rail = AtRail {
            order: None,
            submitted_at: now,
            payout_id: None,
            told_pending: false,
            order_erased: false,
        };
        let stages = [
            Stage::New,
            Stage::AwaitingFunds,
            Stage::Received,
            Stage::AwaitingKyc { asked: true },
            Stage::AwaitingApproval(at_rail.clone()),
            Stage::Submitted(at_rail.clone()),
            Stage::Held {
                at_rail,
                reason: "r".into(),
            },
            Stage::Confirmed { payout_id: None },
            Stage::Completed { payout_id: None },
            Stage::Rejecting { reason: "r".into() },
            Stage::Rejected { reason: "r".into() },
            Stage::RailFailed {
                payout_id: None,
                reason: "r".into(),
            },
            Stage::Failed {
                payout_id: None,
                reason: "r".into(),
            },
            Stage::Recovering,
            Stage::Refunding {
                reference: "h".into(),
                payout_id: None,
                reason: None,
            },
            Stage::Refunded {
                reference: "h".into(),
                payout_id: None,
                reason: None,
            },
            Stage::Closed {
                reason: "r".into(),
                payout_id: None,
            },
        ];
        assert_eq!(
            stages.iter().map(Stage::state).collect::<Vec<_>>(),
            PayoutState::ALL
        );
        type Move = fn(&mut Payout, DateTime<Utc>) -> Result<(), IllegalMove>;
        let moves: [(&str, Move, &[P]); 11] = [
            (
                "receive",
                |p, t| p.receive(t),
                &[
                    P::New,
                    P::AwaitingFunds,
                    P::AwaitingKyc,
                    P::Recovering,
                    P::Closed,
                ],
            ),
            (
                "await_funds",
                |p, t| p.await_funds(t),
                &[P::New, P::Received],
            ),
            (
                "reject",
                |p, t| p.reject("r".into(), t),
                &[P::New, P::Received, P::AwaitingKyc, P::AwaitingApproval],
            ),
            (
                "close",
                |p, t| p.close("r".into(), t),
                &[
                    P::New,
                    P::Received,
                    P::AwaitingApproval,
                    P::Rejecting,
                    P::RailFailed,
                ],
            ),
            ("hold", |p, t| p.hold("r".into(), t), &[P::Submitted]),
            ("release", |p, t| p.release(t), &[P::AwaitingApproval]),
            ("paid", |p, t| p.paid("x".into(), t), &[P::Submitted]),
            ("complete", |p, t| p.complete(t), &[P::Confirmed]),
            (
                "told_error",
                |p, t| p.told_error(t),
                &[P::Rejecting, P::RailFailed],
            ),
            (
                "refund",
                |p, t| p.refund("h".into(), t),
                &[P::Rejected, P::Failed, P::AwaitingKyc],
            ),
            (
                "rail_failed",
                |p, t| p.rail_failed(None, "r".into(), t),
                &[P::Submitted, P::Held],
            ),
        ];
        for stage in &stages {
            for (name, step, from) in &moves {
                let mut p = Payout::new(id.clone(), stage.clone(), now);
                let allowed = from.contains(&stage.state());
                assert_eq!(
                    step(&mut p, now).is_ok(),
                    allowed,
                    "{name} from {}",
                    stage.state()
                );
                if !allowed {
                    assert_eq!(p.stage(), stage, "a refused move changes nothing");
                }
            }
        }
        // Payouts are possible only where the rail may have the order.
        for stage in &stages {
            let p = Payout::new(id.clone(), stage.clone(), now);
            // Awaiting approval holds an order the rail has never seen.
            if (p.order().is_some() || p.at_rail().is_some())
                && p.state() != PayoutState::AwaitingApproval
            {
                assert!(p.state().payout_possible(), "{}", p.state());
            }
            if p.state().is_final() {
                assert_eq!(p.order(), None);
            }
        }
    }

    #[test]
    fn an_event_means_a_sighting_of_a_sep31_transaction_or_a_customer_to_look_at() {
        let tx = |sep: &str, status: Option<TransactionStatus>, funded| EventFacts {
            transaction: Some(EventTransaction {
                id: Some(TransactionId::parse("t1").expect("id")),
                sep: sep.into(),
                status,
                funded,
            }),
            customer_id: None,
        };
        let t1 = TransactionId::parse("t1").expect("id");
        let funded = tx("31", Some(TransactionStatus::PendingReceiver), true).meaning();
        assert_eq!(funded.sighting, Some((t1.clone(), Sighting::Funded)));
        assert_eq!(
            tx("", Some(TransactionStatus::Completed), true)
                .meaning()
                .sighting,
            Some((t1, Sighting::Finished))
        );
        assert_eq!(
            tx("24", Some(TransactionStatus::Completed), true)
                .meaning()
                .sighting,
            None
        );
        assert_eq!(tx("31", None, true).meaning().sighting, None);
        assert_eq!(
            tx("31", Some(TransactionStatus::PendingStellar), true)
                .meaning()
                .sighting,
            None
        );
        let customer = EventFacts {
            transaction: None,
            customer_id: Some("c1".into()),
        };
        assert_eq!(
            customer.meaning(),
            EventMeaning {
                sighting: None,
                wake_customer: Some("c1".into())
            }
        );
    }

    #[test]
    fn sightings_of_ap_statuses() {
        let mut t = tx();
        assert_eq!(Sighting::of(&t), Some(Sighting::Unfunded));
        t.transfer_received_at = Some(Utc::now());
        assert_eq!(Sighting::of(&t), Some(Sighting::Funded));
        t.status = TransactionStatus::Completed;
        assert_eq!(Sighting::of(&t), Some(Sighting::Finished));
        t.status = TransactionStatus::PendingSender;
        assert_eq!(Sighting::of(&t), Some(Sighting::Unfunded));
        t.sep = "24".into();
        assert_eq!(Sighting::of(&t), None);
    }

    #[test]
    fn funds_with_a_quote_must_match_its_sell_side() {
        let q = quote();
        let mut t = tx();
        t.amount_in = Some(amount("100", USDC));
        let out = check_funds(&t, Some(&q)).expect("matches");
        assert_eq!(out, amount("550.00", "iso4217:BRL"));
        // The observer's spelling without the prefix is the same asset.
        t.amount_in = Some(amount("100", &USDC["stellar:".len()..]));
        assert!(check_funds(&t, Some(&q)).is_ok());
        t.amount_in = Some(amount("99.99", USDC));
        let err = check_funds(&t, Some(&q)).expect_err("short");
        assert!(
            err.contains("99.99") && err.contains("requires 100"),
            "{err}"
        );
        t.amount_in = Some(amount("100", "iso4217:USD"));
        assert!(check_funds(&t, Some(&q)).is_err());
        t.amount_in = None;
        assert!(check_funds(&t, Some(&q)).is_err());
    }

    #[test]
    fn funds_without_a_quote() {
        let mut t = tx();
        t.amount_in = Some(amount("100", USDC));
        t.amount_expected = Some(amount("100", USDC));
        t.fee = Some(amount("1.5", USDC));
        assert_eq!(check_funds(&t, None), Ok(amount("98.5", USDC)));
        t.amount_out = Some(amount("98", USDC));
        assert_eq!(check_funds(&t, None), Ok(amount("98", USDC)));
        t.amount_expected = Some(amount("101", USDC));
        assert!(check_funds(&t, None).is_err());
        t.amount_expected = None;
        t.amount_out = None;
        t.fee = Some(amount("100", USDC));
        assert!(
            check_funds(&t, None)
                .expect_err("nothing left")
                .contains("nothing to pay out")
        );
        t.fee = Some(amount("1", "iso4217:BRL"));
        assert!(check_funds(&t, None).is_err());
        t.amount_in = Some(amount("0", USDC));
        assert!(check_funds(&t, None).is_err());
        // A money field the AP wrote but that cannot be read is refused,
        // never skipped (an unreadable amount_expected would skip the check).
        t.amount_in = Some(amount("100", USDC));
        t.amount_expected = None;
        t.amount_out = None;
        t.fee = None;
        assert!(check_funds(&t, None).is_ok());
        t.unreadable = vec!["amount_expected"];
        assert_eq!(
            check_funds(&t, None),
            Err("the transaction's amount_expected cannot be read".into())
        );
    }

    #[test]
    fn keys_and_backoff() {
        let id = TransactionId::parse("abc").expect("id");
        assert_eq!(idempotency_key(&id, 1), "abc");
        assert_eq!(idempotency_key(&id, 2), "abc:attempt-2");
        let (base, max) = (Duration::seconds(1), Duration::seconds(60));
        assert_eq!(backoff(1, base, max), Duration::seconds(1));
        assert_eq!(backoff(3, base, max), Duration::seconds(4));
        assert_eq!(backoff(30, base, max), max);
        let mut p = Payout::new(id, Stage::Confirmed { payout_id: None }, Utc::now());
        let now = Utc::now();
        p.retry_later("down".into(), now, base, max);
        p.retry_later("down".into(), now, base, max);
        assert_eq!((p.failures, p.due_at), (2, now + Duration::seconds(2)));
        p.complete(now).expect("completed");
        assert_eq!((p.failures, p.last_error.as_deref()), (0, None));
    }
}
