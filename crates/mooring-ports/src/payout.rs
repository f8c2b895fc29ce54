use std::fmt;

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use mooring_domain::payout::{Payout, PayoutState, Sighting};
use mooring_domain::transaction::TransactionId;
use rust_decimal::Decimal;

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
    /// The event as received (JSON), kept for audit.
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

/// The durable payout ledger and the event inbox.
///
/// Claims make the work safe to share: [`PayoutLedger::claim`] hands each
/// due entry to one owner until its lease ends, and
/// [`PayoutLedger::save`] writes only if the entry is still that owner's
/// and still in the state the owner read (a compare-and-set), so a replica
/// whose lease lapsed can never move an entry another one took over.
#[async_trait]
pub trait PayoutLedger: Send + Sync + 'static {
    /// Records a sighting of a transaction ([`PayoutState::on_sighting`]):
    /// creates the entry, or moves it forward. Returns the entry's state
    /// afterwards. Atomic under concurrent sightings.
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

    /// Claims up to `limit` active entries due at `now` whose claim is free
    /// or lapsed, for `owner`, until `now + lease`. Oldest due first.
    async fn claim(
        &self,
        owner: &str,
        limit: u32,
        now: DateTime<Utc>,
        lease: Duration,
    ) -> Result<Vec<Payout>, LedgerError>;

    /// Writes `payout` if the entry is still claimed by `owner` and still in
    /// `expected`; renews the claim until `now + lease`, or with `None`
    /// releases it (the owner is done with the entry for now). `LostClaim`
    /// if not.
    async fn save(
        &self,
        owner: &str,
        expected: PayoutState,
        payout: &Payout,
        now: DateTime<Utc>,
        lease: Option<Duration>,
    ) -> Result<(), LedgerError>;

    /// Gives up every claim of `owner` (a clean shutdown).
    async fn release(&self, owner: &str) -> Result<u64, LedgerError>;

    async fn get(&self, id: &TransactionId) -> Result<Option<Payout>, LedgerError>;

    /// The newest entries first, only those in `states` when it is not empty.
    async fn list(&self, states: &[PayoutState], limit: u32) -> Result<Vec<Payout>, LedgerError>;

    /// Entries per state.
    async fn counts(&self) -> Result<Vec<(PayoutState, u64)>, LedgerError>;

    /// The operator's move: `payout` is written if the entry is in one of
    /// `from` and unclaimed (or its claim lapsed); `WrongState` if not.
    async fn reopen(
        &self,
        from: &[PayoutState],
        payout: &Payout,
        now: DateTime<Utc>,
    ) -> Result<(), LedgerError>;

    /// Makes the entries awaiting this receiver's KYC due now.
    async fn wake_receiver(
        &self,
        customer_id: &str,
        now: DateTime<Utc>,
    ) -> Result<u64, LedgerError>;

    /// Stores an event unless one with its id is already there. Returns
    /// whether it was new. Durable when it returns.
    async fn accept_event(&self, event: &InboxEvent) -> Result<bool, LedgerError>;

    /// Applies up to `limit` unprocessed events, oldest `occurred_at` first
    /// (so in order per transaction), each atomically with its effect on
    /// the ledger; one applier at a time across replicas. Returns how many.
    async fn apply_events(&self, limit: u32, now: DateTime<Utc>) -> Result<u32, LedgerError>;

    /// Events received and not yet applied.
    async fn inbox_depth(&self) -> Result<u64, LedgerError>;
}

/// A payout to make: who gets what, under which idempotency key.
#[derive(Clone, PartialEq, Eq)]
pub struct PayoutOrder {
    /// The same for every retry of one payout.
    pub idempotency_key: String,
    pub transaction_id: String,
    pub amount: Decimal,
    /// The SEP-38 name of the asset paid (e.g. `iso4217:BRL`).
    pub asset: String,
    pub delivery_method: Option<String>,
    pub receiver_id: String,
    /// The receiver's SEP-9 text fields by their SEP-9 names. PII.
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

/// Errors of a [`PayoutRail`].
#[derive(Debug, thiserror::Error)]
pub enum RailError {
    /// The outcome is unknown (network error, timeout, 5xx): ask again with
    /// the same key, never a new one.
    #[error("the payout rail's answer is unknown: {0}")]
    Unknown(String),
    /// The rail refused the payout (a 4xx): it will not be made.
    #[error("the payout rail refused the payout: {0}")]
    Refused(String),
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
