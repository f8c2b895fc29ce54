//! The payment engine: finds SEP-31 transactions whose payment arrived
//! (polls, reconciliation passes, events), pays each receiver exactly once
//! through the payout rail, and moves the AP transaction to `completed`.
//!
//! Every step reads the AP afresh, makes at most one side effect, and
//! commits the ledger entry's next state (a compare-and-set on the claim)
//! before the next one; the rail is always called with the entry's
//! idempotency key. A crash anywhere therefore resumes, on any replica once
//! the claim lapses, without a second payout. This module has no runtime:
//! the app crate schedules its calls.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, Utc};
use mooring_domain::customer::{CustomerId, CustomerStatus};
use mooring_domain::payout::{Payout, PayoutState, Sighting, check_funds};
use mooring_domain::quote::{Quote, QuoteId};
use mooring_domain::transaction::{
    Amount, Transaction, TransactionChange, TransactionId, TransactionStatus, TransactionUpdate,
};
use mooring_ports::{
    Clock, InboxEvent, LedgerError, Order, OrderBy, PayoutLedger, PayoutOrder, PayoutRail,
    PlatformClient, PlatformError, RailError, RailStatus, TransactionQuery,
};
use rust_decimal::Decimal;

use crate::{DepositService, KycService, QuoteError, QuoteService, ReceiverKyc};

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
    /// How long a claim lasts without a step (renewed by every step).
    pub lease: Duration,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// How often a receiver's KYC is checked again while awaited.
    pub kyc_recheck: Duration,
    /// How soon a pending payout is asked about again.
    pub rail_follow: Duration,
    /// The AP's `message` on completion.
    pub completion_message: String,
}

impl EngineConfig {
    pub fn new(owner: String) -> Self {
        Self {
            owner,
            request_funds: false,
            page_size: 50,
            poll_overlap: Duration::seconds(1),
            lease: Duration::seconds(30),
            backoff_base: Duration::seconds(1),
            backoff_max: Duration::seconds(60),
            kyc_recheck: Duration::seconds(5),
            rail_follow: Duration::seconds(2),
            completion_message: "a deposit to the recipient's bank has been initiated".into(),
        }
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
}

/// What the ports the engine needs are.
#[derive(Clone)]
pub struct EngineParts {
    pub platform: Arc<dyn PlatformClient>,
    pub ledger: Arc<dyn PayoutLedger>,
    pub rail: Arc<dyn PayoutRail>,
    pub kyc: KycService,
    pub quotes: QuoteService,
    pub deposits: DepositService,
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

/// Why a step could not finish: it is retried after a backoff.
struct Transient(String);

impl From<PlatformError> for Transient {
    fn from(e: PlatformError) -> Self {
        Self(e.to_string())
    }
}

type StepResult = Result<(), Transient>;

/// Most steps one `run` takes on one entry (a guard, never reached by a
/// correct state machine).
const MAX_STEPS: usize = 16;

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

    /// One poll: the newest funded transactions first, page by page, down
    /// to the ledger's poll mark less `poll_overlap`; then, for AP 3.x+, the
    /// newest unfunded ones (the AP sorts those last). Returns how many were
    /// new.
    ///
    /// The mark is where the last complete poll started: the newest
    /// `transfer_received_at` it saw (never later than this replica's
    /// clock). A poll that fails half way leaves it where it was, so the
    /// next one reads on past what the failed one wrote; payments that
    /// arrive while a poll pages push what it already read further down,
    /// which it then reads again, but they cannot move where it stops. Ties
    /// with the mark (the AP orders equal times by id) are read again even
    /// with no overlap.
    pub async fn poll(&self) -> Result<u32, EngineError> {
        let started = self.now();
        let new = self.poll_pages(started).await?;
        if let Ok(mut at) = self.last_poll.lock() {
            *at = Some(started);
        }
        Ok(new)
    }

    async fn poll_pages(&self, started: DateTime<Utc>) -> Result<u32, EngineError> {
        let mut new = 0;
        let size = self.config.page_size.max(1);
        let mark = self.parts.ledger.poll_mark().await?;
        let stop = mark.map(|m| m - self.config.poll_overlap);
        // The newest payment when the poll started: the next mark.
        let mut top: Option<DateTime<Utc>> = None;
        for page in 0.. {
            let txs = self
                .parts
                .platform
                .transactions(&TransactionQuery {
                    order_by: OrderBy::TransferReceivedAt,
                    order: Order::Desc,
                    statuses: vec![],
                    page_number: page,
                    page_size: size,
                })
                .await?;
            let funded: Vec<&Transaction> = txs
                .iter()
                .filter(|t| t.transfer_received_at.is_some())
                .collect();
            if page == 0 {
                top = funded.first().and_then(|t| t.transfer_received_at);
            }
            let ids: Vec<TransactionId> = funded.iter().map(|t| t.id.clone()).collect();
            let known = self.parts.ledger.knows_funds(&ids).await?;
            // The page's new ones, down to the stop, in one write.
            let mut unseen: Vec<(TransactionId, Sighting)> = Vec::new();
            let mut reached = false;
            for (tx, known) in funded.iter().zip(known) {
                let Some(at) = tx.transfer_received_at else {
                    continue;
                };
                if stop.is_some_and(|s| at < s) {
                    reached = true;
                    break;
                }
                if !known && let Some(sighting) = Sighting::of(tx) {
                    unseen.push((tx.id.clone(), sighting));
                }
            }
            if !unseen.is_empty() {
                self.parts.ledger.sight_all(&unseen, self.now()).await?;
                new += unseen.len() as u32;
            }
            // Unfunded ones sort last: none funded left after them.
            if reached || funded.len() < txs.len() || txs.len() < size as usize {
                break;
            }
        }
        // Everything down to the old mark is in the ledger now. A time
        // ahead of this replica's clock (an AP clock running fast, a bad
        // timestamp) would stop later polls too early: the mark never
        // passes the poll's own start.
        if let Some(next) = top.map(|t| t.min(started))
            && mark.is_none_or(|m| m < next)
        {
            self.parts
                .ledger
                .advance_poll_mark(next, self.now())
                .await?;
        }
        if self.config.request_funds {
            let txs = self
                .parts
                .platform
                .transactions(&TransactionQuery {
                    order_by: OrderBy::CreatedAt,
                    order: Order::Desc,
                    statuses: vec![TransactionStatus::PendingReceiver],
                    page_number: 0,
                    page_size: size,
                })
                .await?;
            for tx in txs
                .iter()
                .filter(|t| Sighting::of(t) == Some(Sighting::Unfunded))
            {
                if self
                    .parts
                    .ledger
                    .sight(&tx.id, Sighting::Unfunded, self.now())
                    .await?
                    == PayoutState::New
                {
                    new += 1;
                }
            }
        }
        Ok(new)
    }

    /// A reconciliation pass: every transaction the AP has in
    /// `pending_receiver` or `pending_external`, whatever was missed.
    /// Returns how many it looked at.
    pub async fn reconcile(&self) -> Result<u32, EngineError> {
        let size = self.config.page_size.max(1);
        let mut seen = 0;
        for page in 0.. {
            let txs = self
                .parts
                .platform
                .transactions(&TransactionQuery {
                    order_by: OrderBy::CreatedAt,
                    order: Order::Asc,
                    statuses: vec![
                        TransactionStatus::PendingReceiver,
                        TransactionStatus::PendingExternal,
                    ],
                    page_number: page,
                    page_size: size,
                })
                .await?;
            for tx in &txs {
                if let Some(sighting) = Sighting::of(tx) {
                    self.parts
                        .ledger
                        .sight(&tx.id, sighting, self.now())
                        .await?;
                }
                seen += 1;
            }
            if txs.len() < size as usize {
                break;
            }
        }
        Ok(seen)
    }

    /// Applies the inbox's waiting events. Returns how many.
    pub async fn apply_events(&self) -> Result<u32, EngineError> {
        let mut applied = 0;
        loop {
            let n = self.parts.ledger.apply_events(100, self.now()).await?;
            applied += n;
            if n < 100 {
                return Ok(applied);
            }
        }
    }

    /// Claims due entries for this replica.
    pub async fn claim(&self, limit: u32) -> Result<Vec<Payout>, EngineError> {
        Ok(self
            .parts
            .ledger
            .claim(&self.config.owner, limit, self.now(), self.config.lease)
            .await?)
    }

    /// Gives up this replica's claims (on shutdown).
    pub async fn release(&self) -> Result<u64, EngineError> {
        Ok(self.parts.ledger.release(&self.config.owner).await?)
    }

    /// Takes a claimed entry through as many steps as are due now. Returns
    /// the entry as last saved; `LostClaim` when another owner has it.
    #[tracing::instrument(skip_all, fields(transaction.id = %payout.transaction_id))]
    pub async fn run(&self, mut payout: Payout) -> Result<Payout, EngineError> {
        for _ in 0..MAX_STEPS {
            if !payout.state.is_active() || payout.due_at > self.now() {
                break;
            }
            payout = self.step(payout).await?;
        }
        Ok(payout)
    }

    /// One step: its side effect, then the entry's next state, saved.
    async fn step(&self, mut p: Payout) -> Result<Payout, EngineError> {
        let expected = p.state;
        let now = self.now();
        let result = match p.state {
            PayoutState::New => self.on_new(&mut p, now).await,
            PayoutState::Received => self.on_received(&mut p, now).await,
            PayoutState::AwaitingKyc => self.on_awaiting_kyc(&mut p, now).await,
            PayoutState::Ready => {
                // Left by an earlier version, which committed the terms and
                // then the key apart: the key's commit, before the rail.
                p.advance(PayoutState::Submitted, now);
                Ok(())
            }
            PayoutState::Submitted => self.on_submitted(&mut p, now).await,
            PayoutState::Confirmed => self.on_confirmed(&mut p, now).await,
            PayoutState::Rejecting => self.on_error(&mut p, now, PayoutState::Rejected).await,
            PayoutState::RailFailed => self.on_error(&mut p, now, PayoutState::Failed).await,
            PayoutState::Recovering => self.on_recovering(&mut p, now).await,
            PayoutState::Refunding => self.on_refunding(&mut p, now).await,
            PayoutState::AwaitingFunds
            | PayoutState::Completed
            | PayoutState::Rejected
            | PayoutState::Failed
            | PayoutState::Refunded
            | PayoutState::Closed => Ok(()),
        };
        if let Err(Transient(error)) = result {
            p.retry_later(
                error,
                now,
                self.config.backoff_base,
                self.config.backoff_max,
            );
            tracing::warn!(
                state = %p.state,
                failures = p.failures,
                retry_in_ms = (p.due_at - now).num_milliseconds(),
                error = p.last_error.as_deref().unwrap_or(""),
                "payout step failed; retrying"
            );
        } else if p.state != expected {
            tracing::info!(from = %expected, to = %p.state, "payout moved");
        }
        // Done with the entry for now: give the claim back, so this or any
        // replica takes it up when it is next due.
        let more_now = p.state.is_active() && p.due_at <= now;
        let lease = more_now.then_some(self.config.lease);
        self.parts
            .ledger
            .save(&self.config.owner, expected, &p, now, lease)
            .await?;
        Ok(p)
    }

    async fn fetch(&self, id: &TransactionId) -> Result<Option<Transaction>, Transient> {
        match self.parts.platform.transaction(id).await {
            Ok(tx) => Ok(Some(tx)),
            Err(PlatformError::NotFound) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    async fn tell(
        &self,
        id: &TransactionId,
        message: Option<String>,
        change: TransactionChange,
    ) -> Result<Transaction, PlatformError> {
        self.parts
            .platform
            .update(&TransactionUpdate {
                id: id.clone(),
                message,
                change,
            })
            .await
    }

    fn reject(p: &mut Payout, reason: String, now: DateTime<Utc>) {
        p.reason = Some(reason);
        p.advance(PayoutState::Rejecting, now);
    }

    /// Marks the transaction's quote used by it. `Ok(Err(reason))` when the
    /// quote cannot serve this transaction.
    async fn use_quote(
        &self,
        quote_id: &str,
        id: &TransactionId,
    ) -> Result<Result<Quote, String>, Transient> {
        let Ok(parsed) = QuoteId::parse(quote_id) else {
            return Ok(Err(format!(
                "quote {quote_id} is not a quote of this anchor"
            )));
        };
        match self.parts.quotes.mark_used(&parsed, id.as_str()).await {
            Ok(quote) => Ok(Ok(quote)),
            Err(QuoteError::NotFound) => Ok(Err(format!("quote {quote_id} is unknown"))),
            Err(QuoteError::Expired) => Ok(Err(format!(
                "quote {quote_id} expired before the transaction used it"
            ))),
            Err(QuoteError::AlreadyUsed(_)) => Ok(Err(format!(
                "quote {quote_id} is already used by another transaction"
            ))),
            Err(e) => Err(Transient(format!("cannot use quote {quote_id}: {e}"))),
        }
    }

    /// Copies the transaction's quote and receiver onto the entry and marks
    /// the quote used by it. `Some(quote or none)` to go on; `None` when the
    /// quote cannot serve this transaction and the entry is now rejecting.
    async fn take_terms(
        &self,
        p: &mut Payout,
        tx: &Transaction,
        now: DateTime<Utc>,
    ) -> Result<Option<Option<Quote>>, Transient> {
        p.quote_id.clone_from(&tx.quote_id);
        p.receiver_id.clone_from(&tx.receiver_id);
        let Some(q) = &tx.quote_id else {
            return Ok(Some(None));
        };
        match self.use_quote(q, &tx.id).await? {
            Ok(quote) => Ok(Some(Some(quote))),
            Err(reason) => {
                Self::reject(p, reason, now);
                Ok(None)
            }
        }
    }

    /// Seen before its funds: claim the quote, ask for the funds on AP 3.x+.
    async fn on_new(&self, p: &mut Payout, now: DateTime<Utc>) -> StepResult {
        let Some(tx) = self.fetch(&p.transaction_id).await? else {
            p.reason = Some("the AP does not know this transaction".into());
            p.advance(PayoutState::Closed, now);
            return Ok(());
        };
        match Sighting::of(&tx) {
            Some(Sighting::Finished) => {
                p.advance(PayoutState::Closed, now);
                return Ok(());
            }
            Some(Sighting::Funded) => {
                p.advance(PayoutState::Received, now);
                return Ok(());
            }
            Some(Sighting::Unfunded) | None => {}
        }
        let Some(quote) = self.take_terms(p, &tx, now).await? else {
            return Ok(());
        };
        if self.config.request_funds && tx.status == TransactionStatus::PendingReceiver {
            self.request_funds(&tx, quote.as_ref()).await?;
        }
        p.advance(PayoutState::AwaitingFunds, now);
        Ok(())
    }

    /// AP 3.x+: `request_onchain_funds` with the deposit address from the
    /// custodian and the amounts of the transaction (or its quote).
    async fn request_funds(&self, tx: &Transaction, quote: Option<&Quote>) -> StepResult {
        let address = self
            .parts
            .deposits
            .unique_address(tx.id.as_str())
            .await
            .map_err(|e| Transient(format!("no deposit address: {e}")))?;
        let from_quote = |sell: bool| {
            quote.map(|q| Amount {
                amount: if sell {
                    q.priced.sell_amount
                } else {
                    q.priced.buy_amount
                },
                asset: if sell { &q.sell_asset } else { &q.buy_asset }
                    .as_str()
                    .to_owned(),
            })
        };
        let amount_in = tx
            .amount_in
            .clone()
            .or_else(|| from_quote(true))
            .or_else(|| tx.amount_expected.clone())
            .ok_or_else(|| Transient("the transaction has no amount to request".into()))?;
        let amount_out = tx
            .amount_out
            .clone()
            .or_else(|| from_quote(false))
            .unwrap_or_else(|| amount_in.clone());
        let fee = tx
            .fee
            .clone()
            .or_else(|| {
                quote.map(|q| Amount {
                    amount: q.priced.fee.total,
                    asset: q.priced.fee.asset.as_str().to_owned(),
                })
            })
            .unwrap_or_else(|| Amount {
                amount: Decimal::ZERO,
                asset: amount_in.asset.clone(),
            });
        let change = TransactionChange::RequestOnchainFunds {
            amount_expected: tx
                .amount_expected
                .clone()
                .unwrap_or_else(|| amount_in.clone()),
            amount_in,
            amount_out,
            fee,
            destination_account: address.account.to_string(),
            memo: address
                .memo
                .as_ref()
                .map(|m| (m.value().to_owned(), m.memo_type().as_str().to_owned())),
        };
        match self.tell(&tx.id, None, change).await {
            Ok(_) => Ok(()),
            Err(PlatformError::Rejected(message)) => {
                // Already asked (a retry after a crash): the AP moved on.
                match self.fetch(&tx.id).await? {
                    Some(now) if now.status != TransactionStatus::PendingReceiver => Ok(()),
                    _ => Err(Transient(message)),
                }
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Funded: check the amounts, the quote and the receiver's KYC.
    async fn on_received(&self, p: &mut Payout, now: DateTime<Utc>) -> StepResult {
        let Some(tx) = self.fetch(&p.transaction_id).await? else {
            p.reason = Some("the AP does not know this transaction".into());
            p.advance(PayoutState::Closed, now);
            return Ok(());
        };
        match Sighting::of(&tx) {
            Some(Sighting::Funded) => {}
            Some(Sighting::Unfunded) => {
                p.advance(PayoutState::AwaitingFunds, now);
                return Ok(());
            }
            Some(Sighting::Finished) | None => {
                // No payout was made by Mooring (none was submitted).
                p.reason = Some(format!(
                    "the AP had the transaction {} before Mooring paid out",
                    tx.status.as_str()
                ));
                p.advance(PayoutState::Closed, now);
                return Ok(());
            }
        }
        p.amount_in.clone_from(&tx.amount_in);
        let Some(quote) = self.take_terms(p, &tx, now).await? else {
            return Ok(());
        };
        match check_funds(&tx, quote.as_ref()) {
            Ok(out) => p.amount_out = Some(out),
            Err(reason) => {
                Self::reject(p, reason, now);
                return Ok(());
            }
        }
        self.check_receiver(p, &tx, now).await
    }

    /// The KYC of the customer `receiver` names; `None` when there is no
    /// such customer (or the id cannot be one).
    async fn receiver_kyc(&self, receiver: &str) -> Result<Option<ReceiverKyc>, Transient> {
        let Ok(id) = CustomerId::parse(receiver) else {
            return Ok(None);
        };
        self.parts
            .kyc
            .receiver(&id)
            .await
            .map_err(|e| Transient(format!("cannot read the receiver's KYC: {e}")))
    }

    /// The receiver's KYC decides: pay, wait for it, or reject.
    async fn check_receiver(
        &self,
        p: &mut Payout,
        tx: &Transaction,
        now: DateTime<Utc>,
    ) -> StepResult {
        let Some(receiver) = tx.receiver_id.clone() else {
            Self::reject(p, "the transaction names no receiver".into(), now);
            return Ok(());
        };
        let Some(kyc) = self.receiver_kyc(&receiver).await? else {
            Self::reject(
                p,
                format!("the receiver {receiver} is not a customer of this anchor"),
                now,
            );
            return Ok(());
        };
        match kyc.status {
            CustomerStatus::Accepted => {
                if tx.status == TransactionStatus::PendingCustomerInfoUpdate {
                    self.tell(
                        &tx.id,
                        Some("the receiver's information is complete".into()),
                        TransactionChange::CustomerInfoUpdated {
                            customer_id: receiver,
                            customer_type: kyc.customer_type,
                        },
                    )
                    .await?;
                }
                // The terms and the payout's key are committed together,
                // before the rail is called (the next step): `ready` and
                // `submitted` in one write.
                p.advance(PayoutState::Submitted, now);
            }
            CustomerStatus::Rejected => {
                Self::reject(p, "the receiver's KYC was rejected".into(), now);
            }
            CustomerStatus::NeedsInfo | CustomerStatus::Processing => {
                // NEEDS_INFO asks the sender for more through the AP; under
                // PROCESSING the anchor's own review is awaited quietly.
                if kyc.status == CustomerStatus::NeedsInfo
                    && tx.status != TransactionStatus::PendingCustomerInfoUpdate
                {
                    self.tell(
                        &tx.id,
                        Some("the receiver's KYC information is incomplete".into()),
                        TransactionChange::CustomerInfoNeeded {
                            customer_id: receiver,
                            customer_type: kyc.customer_type,
                        },
                    )
                    .await?;
                }
                p.advance(PayoutState::AwaitingKyc, now);
                p.due_at = now + self.config.kyc_recheck;
            }
        }
        Ok(())
    }

    async fn on_awaiting_kyc(&self, p: &mut Payout, now: DateTime<Utc>) -> StepResult {
        let status = match p.receiver_id.as_deref() {
            Some(receiver) => self.receiver_kyc(receiver).await?.map(|k| k.status),
            None => None,
        };
        match status {
            // The Received step checks everything again and tells the AP.
            Some(CustomerStatus::Accepted) => p.advance(PayoutState::Received, now),
            Some(CustomerStatus::Rejected) => {
                Self::reject(p, "the receiver's KYC was rejected".into(), now);
            }
            Some(_) => {
                p.updated_at = now;
                p.due_at = now + self.config.kyc_recheck;
            }
            None => Self::reject(p, "the receiver is no longer a customer".into(), now),
        }
        Ok(())
    }

    async fn order(&self, p: &Payout) -> Result<PayoutOrder, Transient> {
        let amount = p
            .amount_out
            .clone()
            .ok_or_else(|| Transient("the payout has no amount".into()))?;
        let receiver = p
            .receiver_id
            .clone()
            .ok_or_else(|| Transient("the payout has no receiver".into()))?;
        let kyc = self
            .receiver_kyc(&receiver)
            .await?
            .ok_or_else(|| Transient("the receiver is no longer a customer".into()))?;
        let delivery_method = match &p.quote_id {
            Some(q) => match QuoteId::parse(q) {
                Ok(q) => self
                    .parts
                    .quotes
                    .get(&q)
                    .await
                    .ok()
                    .and_then(|q| q.buy_delivery_method),
                Err(_) => None,
            },
            None => None,
        };
        Ok(PayoutOrder {
            idempotency_key: p.idempotency_key(),
            transaction_id: p.transaction_id.as_str().to_owned(),
            amount: amount.amount,
            asset: amount.asset,
            delivery_method,
            receiver_id: receiver,
            receiver_fields: kyc.fields,
        })
    }

    /// The payout is at the rail (or may be): ask with the same key, or
    /// follow the payout the rail made.
    async fn on_submitted(&self, p: &mut Payout, now: DateTime<Utc>) -> StepResult {
        let receipt = match &p.payout_id {
            Some(id) => self.parts.rail.status(id).await,
            None => {
                let order = self.order(p).await?;
                self.parts.rail.submit(&order).await
            }
        };
        let receipt = match receipt {
            Ok(r) => r,
            Err(RailError::Unknown(m)) => return Err(Transient(m)),
            Err(RailError::Refused(m)) => {
                p.reason = Some(format!("the payout rail refused the payout: {m}"));
                p.advance(PayoutState::RailFailed, now);
                return Ok(());
            }
        };
        p.payout_id = Some(receipt.id.clone());
        match receipt.status {
            RailStatus::Completed => p.advance(PayoutState::Confirmed, now),
            RailStatus::Failed(m) => {
                p.reason = Some(format!("the payout failed at the rail: {m}"));
                p.advance(PayoutState::RailFailed, now);
            }
            RailStatus::Pending => {
                if !p.told_pending {
                    match self
                        .tell(
                            &p.transaction_id,
                            Some("a payout to the receiver has been initiated".into()),
                            TransactionChange::OffchainFundsPending {
                                external_transaction_id: Some(receipt.id),
                            },
                        )
                        .await
                    {
                        // Optional for the AP: a refusal is noted, not retried.
                        Ok(_) | Err(PlatformError::Rejected(_) | PlatformError::NotFound) => {
                            p.told_pending = true;
                        }
                        Err(PlatformError::Unavailable(_)) => {}
                    }
                }
                p.failures = 0;
                p.last_error = None;
                p.updated_at = now;
                p.due_at = now + self.config.rail_follow;
            }
        }
        Ok(())
    }

    /// Paid: tell the AP `completed` (unless a step before a crash did).
    async fn on_confirmed(&self, p: &mut Payout, now: DateTime<Utc>) -> StepResult {
        if let Some(tx) = self.fetch(&p.transaction_id).await?
            && tx.status == TransactionStatus::Completed
        {
            p.advance(PayoutState::Completed, now);
            return Ok(());
        }
        let change = TransactionChange::OffchainFundsSent {
            external_transaction_id: p.payout_id.clone(),
            funds_sent_at: now,
            amount_out: p.amount_out.clone(),
        };
        match self
            .tell(
                &p.transaction_id,
                Some(self.config.completion_message.clone()),
                change,
            )
            .await
        {
            Ok(_) => p.advance(PayoutState::Completed, now),
            Err(PlatformError::Rejected(m)) => match self.fetch(&p.transaction_id).await? {
                // Told before a crash, or a retry whose first try landed.
                Some(tx) if tx.status == TransactionStatus::Completed => {
                    p.advance(PayoutState::Completed, now);
                }
                _ => return Err(Transient(m)),
            },
            Err(e) => return Err(e.into()),
        }
        Ok(())
    }

    /// Tell the AP `error` with the reason.
    async fn on_error(&self, p: &mut Payout, now: DateTime<Utc>, next: PayoutState) -> StepResult {
        let reason = p
            .reason
            .clone()
            .unwrap_or_else(|| "the payout could not be made".into());
        match self
            .tell(&p.transaction_id, Some(reason), TransactionChange::Error)
            .await
        {
            Ok(_) => p.advance(next, now),
            Err(PlatformError::Rejected(m)) => match self.fetch(&p.transaction_id).await? {
                Some(tx) if tx.status == TransactionStatus::Error => p.advance(next, now),
                Some(tx) if tx.status.is_final() || tx.status == TransactionStatus::Expired => {
                    p.advance(PayoutState::Closed, now);
                }
                _ => return Err(Transient(m)),
            },
            Err(PlatformError::NotFound) => p.advance(PayoutState::Closed, now),
            Err(e) => return Err(e.into()),
        }
        Ok(())
    }

    /// The operator's retry: the AP's transaction leaves `error`.
    async fn on_recovering(&self, p: &mut Payout, now: DateTime<Utc>) -> StepResult {
        let tx = self
            .fetch(&p.transaction_id)
            .await?
            .ok_or_else(|| Transient("the AP does not know this transaction".into()))?;
        if tx.status == TransactionStatus::Error {
            self.tell(
                &p.transaction_id,
                Some("the anchor is trying the payout again".into()),
                TransactionChange::Recover,
            )
            .await?;
        }
        p.reason = None;
        p.told_pending = false;
        p.payout_id = None;
        p.advance(PayoutState::Received, now);
        Ok(())
    }

    /// The operator returned the funds: tell the AP `refunded`.
    async fn on_refunding(&self, p: &mut Payout, now: DateTime<Utc>) -> StepResult {
        let tx = self
            .fetch(&p.transaction_id)
            .await?
            .ok_or_else(|| Transient("the AP does not know this transaction".into()))?;
        if tx.status == TransactionStatus::Refunded {
            p.advance(PayoutState::Refunded, now);
            return Ok(());
        }
        let received = tx
            .amount_in
            .clone()
            .or_else(|| p.amount_in.clone())
            .ok_or_else(|| Transient("the transaction has no amount_in to refund".into()))?;
        if matches!(
            tx.status,
            TransactionStatus::Error | TransactionStatus::Expired
        ) {
            self.tell(
                &p.transaction_id,
                Some("the anchor is refunding the sender".into()),
                TransactionChange::Recover,
            )
            .await?;
        }
        let reference = p
            .refund_reference
            .clone()
            .ok_or_else(|| Transient("the refund has no reference".into()))?;
        self.tell(
            &p.transaction_id,
            Some("the funds were returned to the sender".into()),
            TransactionChange::RefundSent {
                reference,
                fee: Amount {
                    amount: Decimal::ZERO,
                    asset: received.asset.clone(),
                },
                amount: received,
                refunded_at: now,
            },
        )
        .await?;
        p.advance(PayoutState::Refunded, now);
        Ok(())
    }

    // The back office.

    pub async fn get(&self, id: &TransactionId) -> Result<Payout, EngineError> {
        self.parts
            .ledger
            .get(id)
            .await?
            .ok_or(EngineError::Ledger(LedgerError::NotFound))
    }

    pub async fn list(
        &self,
        states: &[PayoutState],
        limit: u32,
    ) -> Result<Vec<Payout>, EngineError> {
        Ok(self.parts.ledger.list(states, limit).await?)
    }

    pub async fn counts(&self) -> Result<Vec<(PayoutState, u64)>, EngineError> {
        Ok(self.parts.ledger.counts().await?)
    }

    /// Another attempt: after a rejection or a failed payout (the AP's
    /// transaction leaves `error`; a failed payout gets a new idempotency
    /// key, since the rail answers the old one with the old failure), or
    /// now for a step waiting out its backoff.
    pub async fn retry(&self, id: &TransactionId) -> Result<Payout, EngineError> {
        let mut p = self.get(id).await?;
        let now = self.now();
        let from = p.state;
        match from {
            PayoutState::Failed => {
                p.attempt += 1;
                p.advance(PayoutState::Recovering, now);
            }
            PayoutState::Rejected => p.advance(PayoutState::Recovering, now),
            s if s.is_active() => {
                p.updated_at = now;
                p.due_at = now;
            }
            s => return Err(EngineError::Ledger(LedgerError::WrongState(s))),
        }
        self.parts.ledger.reopen(&[from], &p, now).await?;
        tracing::info!(transaction.id = %id, from = %from, to = %p.state, "payout retry requested");
        Ok(p)
    }

    /// Records that the operator returned the sender's funds (on Stellar,
    /// `reference` being the transaction hash); the AP is told `refunded`.
    /// Only where no payout was made: rejected, failed, or awaiting KYC.
    pub async fn refund(&self, id: &TransactionId, reference: &str) -> Result<Payout, EngineError> {
        let reference = reference.trim();
        if reference.is_empty() || reference.len() > 256 {
            return Err(EngineError::BadRequest(
                "the refund reference (the Stellar transaction hash) must be 1 to 256 characters"
                    .into(),
            ));
        }
        let mut p = self.get(id).await?;
        let now = self.now();
        let from = p.state;
        if !matches!(
            from,
            PayoutState::Rejected | PayoutState::Failed | PayoutState::AwaitingKyc
        ) {
            return Err(EngineError::Ledger(LedgerError::WrongState(from)));
        }
        p.refund_reference = Some(reference.to_owned());
        p.advance(PayoutState::Refunding, now);
        self.parts.ledger.reopen(&[from], &p, now).await?;
        tracing::info!(transaction.id = %id, from = %from, "refund recorded");
        Ok(p)
    }
}

/// The event inbox as `POST /event` sees it.
#[derive(Clone)]
pub struct EventInbox {
    ledger: Arc<dyn PayoutLedger>,
}

impl EventInbox {
    pub fn new(ledger: Arc<dyn PayoutLedger>) -> Self {
        Self { ledger }
    }

    /// Keeps the event durably (once per id); whether it was new.
    pub async fn accept(&self, event: &InboxEvent) -> Result<bool, LedgerError> {
        let new = self.ledger.accept_event(event).await?;
        if new {
            tracing::info!(event.id = %event.id, event.kind = %event.kind, transaction.id = ?event.transaction_id.as_ref().map(TransactionId::as_str), "event received");
        } else {
            tracing::info!(event.id = %event.id, "duplicate event acknowledged");
        }
        Ok(new)
    }

    pub async fn depth(&self) -> Result<u64, LedgerError> {
        self.ledger.inbox_depth().await
    }
}
