//! The payout ledger, the event inbox, the poll marks and the payout rail.

use std::fmt;

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
pub use mooring_domain::payout::PayoutOrder;
use mooring_domain::payout::{IllegalMove, Payout, PayoutState, Sighting};
use mooring_domain::transaction::TransactionId;

/// An operator's change of an entry ([`PayoutLedger::reopen`]): one of the
/// entry's transitions, which refuses a move its state does not allow.
pub type OperatorEdit = Box<dyn FnOnce(&mut Payout) -> Result<(), IllegalMove> + Send>;

/// Errors of a [`PayoutLedger`].
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("no payout for this transaction")]
    NotFound,
    /// The entry is no longer this owner's to move (its claim lapsed and
    /// another replica took it, or its state changed): stop working on it.
    #[error("the claim on this payout was lost")]
    LostClaim,
    /// An operator's action that the entry's state does not allow.
    #[error("the payout is {0}")]
    WrongState(PayoutState),
    #[error(transparent)]
    Unknown(#[from] anyhow::Error),
}

/// An event the AP sent to `POST /event`, as kept in the inbox.
#[derive(Clone, PartialEq, Eq)]
pub struct InboxEvent {
    /// The AP's event id: the inbox's key.
    pub id: String,
    pub kind: String,
    /// The event's own `timestamp`, else when it arrived.
    pub occurred_at: DateTime<Utc>,
    pub received_at: DateTime<Utc>,
    /// The transaction the event is about, when it carries one.
    pub transaction_id: Option<TransactionId>,
    /// What the event says of the transaction's funds.
    pub sighting: Option<Sighting>,
    /// A customer the event says was updated (`customer_updated`).
    pub customer_id: Option<String>,
    /// The event as received (JSON), kept only until it is applied.
    pub body: String,
}

impl fmt::Debug for InboxEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InboxEvent")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("transaction_id", &self.transaction_id)
            .finish_non_exhaustive()
    }
}

/// A fenced claim on one entry: who holds it, and the claim's token, a
/// number the entry's every new claim (or operator's move) makes larger.
/// Every write under a claim checks the token, so an owner whose lease
/// lapsed and was taken over can never write again, whatever its clock says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub owner: String,
    pub token: i64,
}

/// An entry handed to one owner by [`PayoutLedger::claim`].
#[derive(Debug, Clone)]
pub struct Claimed {
    pub payout: Payout,
    pub claim: Claim,
}

/// The durable payout ledger.
///
/// Claims make the work safe to share: [`PayoutLedger::claim`] hands each
/// due entry to one owner until its lease ends, and every write under the
/// claim ([`PayoutLedger::save`], [`PayoutLedger::renew`]) is a
/// compare-and-set on the claim's token and the state the owner read. Leases
/// are set and judged by the **database's clock**, never by a replica's:
/// `lease` arguments are durations from the database's "now".
/// One change in a payout's timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayoutChange {
    pub at: DateTime<Utc>,
    /// `None` when the entry was created.
    pub from: Option<PayoutState>,
    pub to: PayoutState,
    /// Who moved it: `engine`, `poll`, `event`, `person` (`unknown` for a
    /// change an earlier version wrote).
    pub cause: String,
    /// The entry's reason after the change (a rejection's, a hold's).
    pub reason: Option<String>,
    /// The rail's payout id after the change.
    pub payout_id: Option<String>,
}

#[async_trait]
pub trait PayoutLedger: Send + Sync + 'static {
    /// Records a sighting of a transaction ([`PayoutState::on_sighting`]):
    /// creates the entry, moves it, or makes it due. Returns the entry's
    /// state afterwards. Atomic under concurrent sightings.
    async fn sight(
        &self,
        id: &TransactionId,
        sighting: Sighting,
        now: DateTime<Utc>,
    ) -> Result<PayoutState, LedgerError>;

    /// Records several sightings in one atomic write (one commit, for a
    /// poll's page); the states afterwards, in the order given. The entries
    /// are taken in a stable order (by id), so concurrent calls from
    /// several replicas never deadlock.
    async fn sight_all(
        &self,
        sightings: &[(TransactionId, Sighting)],
        now: DateTime<Utc>,
    ) -> Result<Vec<PayoutState>, LedgerError>;

    /// For each id, whether the ledger has seen its funds (its state
    /// [`PayoutState::knows_funds`]).
    async fn knows_funds(&self, ids: &[TransactionId]) -> Result<Vec<bool>, LedgerError>;

    /// Claims up to `limit` active entries due at `now` (the caller's clock
    /// decides what is due) whose claim is free or lapsed by the database's
    /// clock, for `owner`, for `lease` from the database's now. Oldest due
    /// first. Each claim gets a new, larger token.
    async fn claim(
        &self,
        owner: &str,
        limit: u32,
        now: DateTime<Utc>,
        lease: Duration,
    ) -> Result<Vec<Claimed>, LedgerError>;

    /// Extends `claim` on entry `id` to `lease` from the database's now, if
    /// it is still that claim (same owner, same token); `LostClaim` if not.
    async fn renew(
        &self,
        id: &TransactionId,
        claim: &Claim,
        lease: Duration,
    ) -> Result<(), LedgerError>;

    /// Writes `payout` if the entry still holds `claim` and is still in
    /// `expected`; then keeps the claim for `lease` from the database's now,
    /// or with `None` releases it (the owner is done with the entry for
    /// now). `LostClaim` if not.
    async fn save(
        &self,
        claim: &Claim,
        expected: PayoutState,
        payout: &Payout,
        lease: Option<Duration>,
    ) -> Result<(), LedgerError>;

    /// Gives up `claim` on entry `id` if it still holds it (a step that has
    /// ended, at shutdown); whether it did.
    async fn release(&self, id: &TransactionId, claim: &Claim) -> Result<bool, LedgerError>;

    async fn get(&self, id: &TransactionId) -> Result<Option<Payout>, LedgerError>;

    /// The newest entries first, only those in `states` when it is not empty.
    async fn list(&self, states: &[PayoutState], limit: u32) -> Result<Vec<Payout>, LedgerError>;

    /// Entries per state.
    async fn counts(&self) -> Result<Vec<(PayoutState, u64)>, LedgerError>;

    /// The entry's timeline, oldest first: every change of its state or of
    /// the rail's payout id, with why. A ledger that keeps no timeline (the
    /// in-memory fakes) answers none.
    async fn history(&self, _id: &TransactionId) -> Result<Vec<PayoutChange>, LedgerError> {
        Ok(Vec::new())
    }

    /// The operator's move: `edit` is applied to the entry as the ledger
    /// has it, under its lock, and the result written, if the entry is in
    /// one of `from` and unclaimed (or its claim lapsed, by the database's
    /// clock); `NotFound`, `WrongState` or `LostClaim` if not. Any claim
    /// taken before is fenced off (the token grows). Returns the entry as
    /// written. The edit never sees a copy read earlier, so nothing a step
    /// saved in between (a payout id, say) is lost.
    async fn reopen(
        &self,
        id: &TransactionId,
        from: &[PayoutState],
        edit: OperatorEdit,
    ) -> Result<Payout, LedgerError>;
}

/// The inbox of `POST /event`.
#[async_trait]
pub trait EventStore: Send + Sync + 'static {
    /// Stores an event unless one with its id is already there. Returns
    /// whether it was new. Durable when it returns.
    async fn accept_event(&self, event: &InboxEvent) -> Result<bool, LedgerError>;

    /// Applies up to `limit` unprocessed events, oldest `occurred_at` first
    /// (so in order per transaction), each atomically with its effect on
    /// the ledger ([`mooring_domain::payout::PayoutState::on_sighting`]
    /// for its transaction; a customer update makes the entries awaiting
    /// that customer due); one applier at a time across replicas. Returns
    /// how many.
    async fn apply_events(&self, limit: u32, now: DateTime<Utc>) -> Result<u32, LedgerError>;

    /// Events received and not yet applied.
    async fn inbox_depth(&self) -> Result<u64, LedgerError>;
}

/// Where the poll of funded transactions has read down to.
#[async_trait]
pub trait PollMarks: Send + Sync + 'static {
    /// The poll's mark: the newest `transfer_received_at` from which a
    /// complete poll read down to the mark before it, so that every funded
    /// transaction the AP listed at or before it then is in the ledger.
    /// `None` before the first complete poll.
    async fn poll_mark(&self) -> Result<Option<DateTime<Utc>>, LedgerError>;

    /// Moves the poll's mark forward to `mark`; a mark older than the stored
    /// one (a slower replica's poll) changes nothing. Atomic under
    /// concurrent calls.
    async fn advance_poll_mark(
        &self,
        mark: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<(), LedgerError>;
}

/// Where a payout stands at the rail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RailStatus {
    Pending,
    Completed,
    /// Failed for good; the rail's reason.
    Failed(String),
}

/// The rail's answer about one payout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RailReceipt {
    /// The rail's id of the payout.
    pub id: String,
    pub status: RailStatus,
}

/// Errors of a [`PayoutRail`], as real providers speak (docs/payouts.md).
/// Messages are for operators: they never go to the AP.
#[derive(Debug, thiserror::Error)]
pub enum RailError {
    /// The outcome is unknown: a network error, a timeout, a 5xx, a 409
    /// (the key is still being processed), or a 404 on the status of a
    /// payout just created. Ask again later with the same key and the same
    /// body, never a new key.
    #[error("the payout rail's answer is unknown: {0}")]
    Unknown(String),
    /// The rail refused the order (a 400 with an error): no payout exists.
    #[error("the payout rail refused the payout: {0}")]
    Refused(String),
    /// The answer needs a person and a payout may exist: the key was reused
    /// with other parameters (422), or the credentials were refused (401,
    /// 403). Never failed towards the AP, never resubmitted under a new key.
    #[error("the payout rail's answer needs a person: {0}")]
    Held(String),
}

/// The off-chain payout provider. Calls with the same idempotency key
/// return the same payout: at most one is ever made per key.
#[async_trait]
pub trait PayoutRail: Send + Sync + 'static {
    /// Creates the payout of `order`, or returns the one its key made.
    async fn submit(&self, order: &PayoutOrder) -> Result<RailReceipt, RailError>;

    /// Where the payout `id` stands now.
    async fn status(&self, id: &str) -> Result<RailReceipt, RailError>;
}
