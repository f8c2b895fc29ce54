//! In-memory fakes of the ports, faithful to their documented contracts.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Duration, TimeZone, Utc};
use mooring_domain::audit::{Actor, AuditAction, AuditEntry};
use mooring_domain::customer::{Customer, CustomerId, ProvidedValue, Review};
use mooring_domain::deposit::DepositAddress;
use mooring_domain::payout::{Payout, PayoutState, Sighting, SightingEffect, Stage};
use mooring_domain::quote::{Quote, QuoteId};
use mooring_domain::transaction::{
    Amount, Transaction, TransactionChange, TransactionId, TransactionStatus, TransactionUpdate,
};
use mooring_domain::{AssetId, Memo, StellarAccount};
use mooring_ports::{
    AuditError, AuditLog, AuditQuery, AuditRecord, Claim, Claimed, Clock, Custodian,
    CustodianError, CustomerTarget, DepositAddressStore, EventStore, InboxEvent, KycStore,
    KycStoreError, LedgerError, OperatorEdit, Order, OrderBy, PayoutLedger, PayoutOrder,
    PayoutRail, PlatformClient, PlatformError, PollMarks, PutCustomer, QuoteStore, QuoteStoreError,
    RailError, RailReceipt, RailStatus, RateSource, RateSourceError, TransactionQuery,
};
use rust_decimal::Decimal;

/// A file's bytes and content type.
type StoredFile = (Vec<u8>, Option<String>);

#[derive(Default)]
pub struct FakeKycStore {
    customers: Mutex<BTreeMap<CustomerId, Customer>>,
    /// Each file's bytes and type, to tell a re-upload from a change.
    files: Mutex<BTreeMap<(CustomerId, String), StoredFile>>,
}

impl FakeKycStore {
    pub fn len(&self) -> usize {
        self.customers.lock().expect("lock").len()
    }

    /// A customer with a fixed id, an approved review, and a sender's and a
    /// receiver's fields (so ACCEPTED as either type).
    pub fn insert_accepted(&self, id: &str, account: &str, memo: &str, now: DateTime<Utc>) {
        let id = CustomerId::parse(id).expect("customer id");
        let fields = [
            ("first_name", "Ana"),
            ("last_name", "Costa"),
            ("email_address", "ana@example.com"),
            ("bank_account_number", "9876543210"),
            ("bank_account_type", "savings"),
            ("bank_number", "001"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), ProvidedValue::Text(v.to_owned())))
        .collect();
        self.customers.lock().expect("lock").insert(
            id.clone(),
            Customer {
                id,
                account: StellarAccount::parse(account).expect("account"),
                memo: Some(Memo::parse(memo, Some("text")).expect("memo")),
                customer_type: None,
                review: Review::Approved,
                fields,
                rejected_fields: BTreeMap::new(),
                transaction_ids: vec![],
                created_at: now,
                updated_at: now,
            },
        );
    }
}

#[async_trait]
impl KycStore for FakeKycStore {
    async fn get(&self, id: &CustomerId) -> Result<Option<Customer>, KycStoreError> {
        Ok(self.customers.lock().expect("lock").get(id).cloned())
    }

    /// A file's bytes are not kept by the fake: its size in zeros.
    async fn file(
        &self,
        id: &CustomerId,
        name: &str,
    ) -> Result<Option<(Vec<u8>, Option<String>)>, KycStoreError> {
        let customers = self.customers.lock().expect("lock");
        Ok(match customers.get(id).and_then(|c| c.fields.get(name)) {
            Some(ProvidedValue::File { size, content_type }) => Some((
                vec![0; usize::try_from(*size).unwrap_or(0)],
                content_type.clone(),
            )),
            _ => None,
        })
    }

    async fn find(
        &self,
        account: &StellarAccount,
        memo: Option<&Memo>,
    ) -> Result<Option<Customer>, KycStoreError> {
        let customers = self.customers.lock().expect("lock");
        Ok(customers
            .values()
            .find(|c| c.is_owned_by(account, memo))
            .cloned())
    }

    async fn put(&self, change: PutCustomer) -> Result<Customer, KycStoreError> {
        let mut customers = self.customers.lock().expect("lock");
        let id = match change.target {
            CustomerTarget::Id(id) => customers
                .get(&id)
                .map(|c| c.id.clone())
                .ok_or(KycStoreError::NotFound)?,
            CustomerTarget::Account {
                account,
                memo,
                new_id,
            } => {
                match customers
                    .values()
                    .find(|c| c.is_owned_by(&account, memo.as_ref()))
                {
                    Some(c) => c.id.clone(),
                    None => {
                        customers.insert(
                            new_id.clone(),
                            Customer {
                                id: new_id.clone(),
                                account,
                                memo,
                                customer_type: None,
                                review: Review::Pending,
                                fields: BTreeMap::new(),
                                rejected_fields: BTreeMap::new(),
                                transaction_ids: vec![],
                                created_at: change.now,
                                updated_at: change.now,
                            },
                        );
                        new_id
                    }
                }
            }
        };
        let customer = customers.get_mut(&id).expect("resolved above");
        let before = customer.fields.clone();
        for (name, value) in change.text {
            let new = value.map(ProvidedValue::Text);
            if customer.fields.get(&name) != new.as_ref() {
                // A new value (or none) for a rejected field clears it.
                customer.rejected_fields.remove(&name);
            }
            match new {
                Some(v) => customer.fields.insert(name, v),
                None => customer.fields.remove(&name),
            };
        }
        let mut changed = before != customer.fields;
        let mut files = self.files.lock().expect("lock");
        for (name, file) in change.files {
            let key = (id.clone(), name.clone());
            match file {
                Some(f) => {
                    let new = (f.content.clone(), f.content_type.clone());
                    if files.get(&key) != Some(&new) {
                        changed = true;
                        customer.rejected_fields.remove(&name);
                        files.insert(key, new);
                    }
                    customer.fields.insert(
                        name,
                        ProvidedValue::File {
                            size: f.content.len() as u64,
                            content_type: f.content_type,
                        },
                    );
                }
                None => {
                    changed |= files.remove(&key).is_some();
                    customer.rejected_fields.remove(&name);
                    customer.fields.remove(&name);
                }
            };
        }
        if changed {
            customer.review = customer.review.after_change();
        }
        if let Some(t) = change.customer_type {
            customer.customer_type = Some(t);
        }
        if let Some(t) = change.transaction_id
            && !customer.transaction_ids.contains(&t)
        {
            customer.transaction_ids.push(t);
        }
        customer.updated_at = change.now;
        Ok(customer.clone())
    }

    async fn delete(&self, id: &CustomerId) -> Result<(), KycStoreError> {
        self.files
            .lock()
            .expect("lock")
            .retain(|(owner, _), _| owner != id);
        self.customers
            .lock()
            .expect("lock")
            .remove(id)
            .map(|_| ())
            .ok_or(KycStoreError::NotFound)
    }

    async fn set_review(
        &self,
        id: &CustomerId,
        review: Review,
        seen: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<Customer, KycStoreError> {
        let mut customers = self.customers.lock().expect("lock");
        let customer = customers.get_mut(id).ok_or(KycStoreError::NotFound)?;
        if seen.is_some_and(|seen| seen != customer.updated_at) {
            return Err(KycStoreError::Changed);
        }
        if review == Review::Approved {
            customer.rejected_fields.clear();
        }
        customer.review = review;
        customer.updated_at = now;
        Ok(customer.clone())
    }

    async fn reject_field(
        &self,
        id: &CustomerId,
        field: &str,
        reason: &str,
        seen: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<Customer, KycStoreError> {
        let mut customers = self.customers.lock().expect("lock");
        let customer = customers.get_mut(id).ok_or(KycStoreError::NotFound)?;
        if seen.is_some_and(|seen| seen != customer.updated_at) {
            return Err(KycStoreError::Changed);
        }
        if !customer.fields.contains_key(field) {
            return Err(KycStoreError::NoSuchField);
        }
        customer
            .rejected_fields
            .insert(field.to_owned(), reason.to_owned());
        customer.updated_at = now;
        Ok(customer.clone())
    }
}

/// A clock that stands still until a test moves it.
pub struct TestClock(Mutex<DateTime<Utc>>);

impl Default for TestClock {
    fn default() -> Self {
        Self(Mutex::new(
            Utc.with_ymd_and_hms(2026, 1, 1, 12, 0, 0)
                .single()
                .expect("valid date"),
        ))
    }
}

impl TestClock {
    pub fn advance(&self, by: Duration) {
        *self.0.lock().expect("lock") += by;
    }
}

impl Clock for TestClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().expect("lock")
    }
}

/// A clock that follows tokio's (so that paused time moves it), from a
/// fixed start: for tests where time passes inside calls.
pub struct TokioClock {
    start: DateTime<Utc>,
    at: tokio::time::Instant,
    /// Added to every reading (a replica's clock set wrong).
    pub skew: Duration,
}

impl TokioClock {
    pub fn new(skew: Duration) -> Self {
        Self {
            start: TestClock::default().now(),
            at: tokio::time::Instant::now(),
            skew,
        }
    }
}

impl Clock for TokioClock {
    fn now(&self) -> DateTime<Utc> {
        let elapsed = Duration::from_std(self.at.elapsed()).unwrap_or_default();
        self.start + elapsed + self.skew
    }
}

/// Prices by pair; a pair marked stale answers `Stale`.
#[derive(Default)]
pub struct FakeRates {
    pub prices: Mutex<BTreeMap<(AssetId, AssetId), Decimal>>,
    pub stale: Mutex<bool>,
}

#[async_trait]
impl RateSource for FakeRates {
    async fn mid_price(&self, sell: &AssetId, buy: &AssetId) -> Result<Decimal, RateSourceError> {
        if *self.stale.lock().expect("lock") {
            return Err(RateSourceError::Stale {
                sell: sell.clone(),
                buy: buy.clone(),
                age_seconds: 120,
                max_age_seconds: 60,
            });
        }
        self.prices
            .lock()
            .expect("lock")
            .get(&(sell.clone(), buy.clone()))
            .copied()
            .ok_or_else(|| RateSourceError::NoPrice {
                sell: sell.clone(),
                buy: buy.clone(),
            })
    }
}

/// Firm quotes in memory, with the store contract's reservation rule.
#[derive(Default)]
pub struct FakeQuoteStore {
    quotes: Mutex<Vec<Quote>>,
}

#[async_trait]
impl QuoteStore for FakeQuoteStore {
    async fn create_firm(
        &self,
        quote: &Quote,
        limit: Option<Decimal>,
        now: DateTime<Utc>,
    ) -> Result<(), QuoteStoreError> {
        let mut quotes = self.quotes.lock().expect("lock");
        if let Some(limit) = limit {
            let held: Decimal = quotes
                .iter()
                .filter(|q| q.buy_asset == quote.buy_asset && q.is_reserving(now))
                .map(|q| q.priced.buy_amount)
                .sum();
            if held + quote.priced.buy_amount > limit {
                return Err(QuoteStoreError::InsufficientLiquidity);
            }
        }
        quotes.push(quote.clone());
        Ok(())
    }

    async fn get(&self, id: &QuoteId) -> Result<Option<Quote>, QuoteStoreError> {
        Ok(self
            .quotes
            .lock()
            .expect("lock")
            .iter()
            .find(|q| &q.id == id)
            .cloned())
    }

    async fn mark_used(
        &self,
        id: &QuoteId,
        transaction_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Quote, QuoteStoreError> {
        let mut quotes = self.quotes.lock().expect("lock");
        let q = quotes
            .iter_mut()
            .find(|q| &q.id == id)
            .ok_or(QuoteStoreError::NotFound)?;
        match &q.used_by {
            Some(t) if t == transaction_id => return Ok(q.clone()),
            Some(t) => {
                return Err(QuoteStoreError::AlreadyUsed {
                    transaction_id: t.clone(),
                });
            }
            None if q.expires_at <= now => return Err(QuoteStoreError::Expired),
            None => {}
        }
        q.used_by = Some(transaction_id.to_owned());
        q.used_at = Some(now);
        Ok(q.clone())
    }

    async fn list(&self, limit: usize) -> Result<Vec<Quote>, QuoteStoreError> {
        let mut quotes = self.quotes.lock().expect("lock").clone();
        quotes.sort_by_key(|q| std::cmp::Reverse(q.created_at));
        quotes.truncate(limit);
        Ok(quotes)
    }

    async fn reserved(
        &self,
        asset: &AssetId,
        now: DateTime<Utc>,
    ) -> Result<Decimal, QuoteStoreError> {
        let quotes = self.quotes.lock().expect("lock");
        Ok(quotes
            .iter()
            .filter(|q| &q.buy_asset == asset && q.is_reserving(now))
            .map(|q| q.priced.buy_amount)
            .sum())
    }
}

/// A custodian that numbers its answers and counts its calls.
#[derive(Default)]
pub struct FakeCustodian {
    pub calls: Mutex<u32>,
}

#[async_trait]
impl Custodian for FakeCustodian {
    async fn deposit_address(
        &self,
        _transaction_id: &str,
    ) -> Result<DepositAddress, CustodianError> {
        let mut calls = self.calls.lock().expect("lock");
        *calls += 1;
        Ok(DepositAddress {
            account: StellarAccount::parse(
                "GBBD47IF6LWK7P7MDEVSCWR7DPUWV3NY3DTQEVFL4NAT4AQH3ZLLFLA5",
            )
            .expect("valid"),
            memo: Some(Memo::parse(&calls.to_string(), None).expect("memo")),
        })
    }
}

#[derive(Default)]
pub struct FakeDepositAddresses {
    kept: Mutex<BTreeMap<String, DepositAddress>>,
}

#[async_trait]
impl DepositAddressStore for FakeDepositAddresses {
    async fn deposit_address_of(
        &self,
        transaction_id: &str,
    ) -> Result<Option<DepositAddress>, CustodianError> {
        Ok(self.kept.lock().expect("lock").get(transaction_id).cloned())
    }

    async fn keep_first_deposit_address(
        &self,
        transaction_id: &str,
        address: &DepositAddress,
    ) -> Result<DepositAddress, CustodianError> {
        let mut kept = self.kept.lock().expect("lock");
        if let Some(first) = kept.get(transaction_id) {
            return Ok(first.clone());
        }
        // As the store's unique (account, memo): never two transactions.
        if kept.values().any(|a| a == address) {
            return Err(CustodianError::Unavailable(
                "the custodian gave an address in use".into(),
            ));
        }
        kept.insert(transaction_id.to_owned(), address.clone());
        Ok(address.clone())
    }
}

/// What the fake AP does with the next call of `update`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApFault {
    /// Unreachable: nothing applied.
    Down,
    /// Applied, but the answer was lost on the way back.
    AnswerLost,
    /// AP 4.2+'s optimistic locking: a concurrent call applied the move
    /// first, and this one is answered -32603 ("retry").
    LockedApplied,
}

/// The AP's Platform API in memory, with the AP's status rules for each
/// move (a move its status does not allow is `Rejected`).
#[derive(Default)]
pub struct FakePlatform {
    txs: Mutex<BTreeMap<String, Transaction>>,
    /// The updates the AP applied, in order.
    pub applied: Mutex<Vec<TransactionUpdate>>,
    /// Faults for the next calls of `update`, in order.
    pub update_faults: Mutex<VecDeque<ApFault>>,
    /// The next this many reads (`transaction(s)`) fail as unavailable.
    pub reads_down: Mutex<u32>,
    /// Pages read by `transactions`.
    pub pages_read: Mutex<u32>,
    /// What happens before each of the next page reads, in order.
    pub before_pages: Mutex<VecDeque<BeforePage>>,
    /// The next reads of one transaction hang this many milliseconds
    /// (tokio's clock) before they answer, in order.
    pub read_hangs: Mutex<VecDeque<u64>>,
    /// Reads of one transaction, by id.
    read_counts: Mutex<BTreeMap<String, u32>>,
}

/// What happens at the AP just before a page of `transactions` is read.
pub enum BeforePage {
    /// Nothing: the page is read as it stands.
    Nothing,
    /// These payments arrive (are inserted) first.
    Arrive(Vec<Transaction>),
    /// The read fails as unavailable.
    Fail,
}

impl FakePlatform {
    pub fn insert(&self, tx: Transaction) {
        self.txs
            .lock()
            .expect("lock")
            .insert(tx.id.as_str().to_owned(), tx);
    }

    pub fn tx(&self, id: &str) -> Transaction {
        self.txs.lock().expect("lock")[id].clone()
    }

    /// The sender's payment arrives.
    pub fn fund(&self, id: &str, amount_in: Amount, at: DateTime<Utc>) {
        let mut txs = self.txs.lock().expect("lock");
        let tx = txs.get_mut(id).expect("known transaction");
        tx.amount_in = Some(amount_in);
        tx.transfer_received_at = Some(at);
        tx.status = TransactionStatus::PendingReceiver;
    }

    /// The kinds of move applied to `id`, in order.
    /// How many times the transaction was read on its own.
    pub fn reads(&self, id: &str) -> u32 {
        self.read_counts
            .lock()
            .expect("lock")
            .get(id)
            .copied()
            .unwrap_or_default()
    }

    pub fn moves(&self, id: &str) -> Vec<&'static str> {
        self.applied
            .lock()
            .expect("lock")
            .iter()
            .filter(|u| u.id.as_str() == id)
            .map(|u| match u.change {
                TransactionChange::OffchainFundsPending { .. } => "funds_pending",
                TransactionChange::OffchainFundsSent { .. } => "funds_sent",
                TransactionChange::CustomerInfoNeeded { .. } => "info_needed",
                TransactionChange::CustomerInfoUpdated { .. } => "info_updated",
                TransactionChange::Error => "error",
                TransactionChange::Recover => "recover",
                TransactionChange::RefundSent { .. } => "refund_sent",
                TransactionChange::RequestOnchainFunds { .. } => "request_funds",
            })
            .collect()
    }

    fn read_down(&self) -> Result<(), PlatformError> {
        let mut down = self.reads_down.lock().expect("lock");
        if *down > 0 {
            *down -= 1;
            return Err(PlatformError::Unavailable("connection refused".into()));
        }
        Ok(())
    }
}

#[async_trait]
impl PlatformClient for FakePlatform {
    async fn transactions(
        &self,
        query: &TransactionQuery,
    ) -> Result<Vec<Transaction>, PlatformError> {
        self.read_down()?;
        let before = self.before_pages.lock().expect("lock").pop_front();
        match before {
            Some(BeforePage::Arrive(txs)) => txs.into_iter().for_each(|t| self.insert(t)),
            Some(BeforePage::Fail) => {
                return Err(PlatformError::Unavailable("connection reset".into()));
            }
            Some(BeforePage::Nothing) | None => {}
        }
        *self.pages_read.lock().expect("lock") += 1;
        let mut txs: Vec<Transaction> = self
            .txs
            .lock()
            .expect("lock")
            .values()
            .filter(|t| query.statuses.is_empty() || query.statuses.contains(&t.status))
            .cloned()
            .collect();
        // As the AP sorts: by the key, those without one last.
        txs.sort_by(|a, b| {
            let key = |t: &Transaction| match query.order_by {
                OrderBy::CreatedAt => t.started_at,
                OrderBy::TransferReceivedAt => t.transfer_received_at,
            };
            match (key(a), key(b)) {
                (Some(x), Some(y)) if query.order == Order::Asc => x.cmp(&y),
                (Some(x), Some(y)) => y.cmp(&x),
                (Some(_), None) => std::cmp::Ordering::Less,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                (None, None) => std::cmp::Ordering::Equal,
            }
            .then_with(|| a.id.as_str().cmp(b.id.as_str()))
        });
        let size = query.page_size as usize;
        Ok(txs
            .into_iter()
            .skip(query.page_number as usize * size)
            .take(size)
            .collect())
    }

    async fn transaction(&self, id: &TransactionId) -> Result<Transaction, PlatformError> {
        let hang = self.read_hangs.lock().expect("lock").pop_front();
        if let Some(ms) = hang {
            tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
        }
        self.read_down()?;
        *self
            .read_counts
            .lock()
            .expect("lock")
            .entry(id.as_str().to_owned())
            .or_default() += 1;
        self.txs
            .lock()
            .expect("lock")
            .get(id.as_str())
            .cloned()
            .ok_or(PlatformError::NotFound)
    }

    async fn update(&self, update: &TransactionUpdate) -> Result<Transaction, PlatformError> {
        let fault = self.update_faults.lock().expect("lock").pop_front();
        if fault == Some(ApFault::Down) {
            return Err(PlatformError::Unavailable("connection refused".into()));
        }
        let mut txs = self.txs.lock().expect("lock");
        let tx = txs
            .get_mut(update.id.as_str())
            .ok_or(PlatformError::NotFound)?;
        use TransactionStatus as S;
        let open = matches!(
            tx.status,
            S::PendingReceiver | S::PendingExternal | S::PendingCustomerInfoUpdate
        );
        let refuse = || {
            Err(PlatformError::Rejected(format!(
                "cannot apply this move to a transaction in {}",
                tx.status.as_str()
            )))
        };
        // As the AP (and the simulator): pending only from pending_receiver,
        // sent from pending_receiver or pending_external.
        let payable = matches!(tx.status, S::PendingReceiver | S::PendingExternal);
        let next = match &update.change {
            TransactionChange::OffchainFundsPending {
                external_transaction_id,
            } if tx.status == S::PendingReceiver => {
                tx.external_transaction_id
                    .clone_from(external_transaction_id);
                S::PendingExternal
            }
            TransactionChange::OffchainFundsSent {
                external_transaction_id,
                amount_out,
                ..
            } if payable => {
                tx.external_transaction_id
                    .clone_from(external_transaction_id);
                tx.amount_out.clone_from(amount_out);
                S::Completed
            }
            TransactionChange::CustomerInfoNeeded { .. } if open => S::PendingCustomerInfoUpdate,
            TransactionChange::CustomerInfoUpdated { .. }
                if tx.status == S::PendingCustomerInfoUpdate =>
            {
                S::PendingReceiver
            }
            // As the AP's RPC handlers (and the simulator): error from any
            // status but the error and final ones; recovery only with the
            // funds received; a refund only from pending_receiver.
            TransactionChange::Error
                if !tx.status.is_final() && !matches!(tx.status, S::Error | S::Expired) =>
            {
                S::Error
            }
            TransactionChange::Recover
                if matches!(tx.status, S::Error | S::Expired)
                    && tx.transfer_received_at.is_some() =>
            {
                S::PendingReceiver
            }
            TransactionChange::RefundSent { amount, fee, .. }
                if tx.status == S::PendingReceiver
                    && Some(amount.amount + fee.amount)
                        == tx.amount_in.as_ref().map(|a| a.amount) =>
            {
                S::Refunded
            }
            TransactionChange::RequestOnchainFunds { amount_in, .. }
                if tx.status == S::PendingReceiver && tx.transfer_received_at.is_none() =>
            {
                tx.amount_expected = Some(amount_in.clone());
                S::PendingSender
            }
            _ => return refuse(),
        };
        tx.status = next;
        tx.message.clone_from(&update.message);
        self.applied.lock().expect("lock").push(update.clone());
        match fault {
            Some(ApFault::AnswerLost) => Err(PlatformError::Unavailable(
                "the connection was reset".into(),
            )),
            Some(ApFault::LockedApplied) => Err(PlatformError::Unavailable(
                "notify_offchain_funds_sent: the transaction was updated concurrently; retry"
                    .into(),
            )),
            _ => Ok(tx.clone()),
        }
    }
}

struct Entry {
    payout: Payout,
    /// The owner and the end of its lease, by the database's clock.
    claim: Option<(String, DateTime<Utc>)>,
    /// Grows with every claim and every operator's or sighting's move.
    token: i64,
}

/// The payout ledger in memory, with the port's rules: fenced claims whose
/// leases are set and judged by the fake database's own clock (`db_clock`,
/// which a test may set apart from the engine's), compare-and-set saves.
pub struct FakeLedger {
    entries: Mutex<BTreeMap<String, Entry>>,
    events: Mutex<Vec<(InboxEvent, bool)>>,
    poll_mark: Mutex<Option<DateTime<Utc>>>,
    /// The database's clock: leases are set and judged by it.
    pub db_clock: Arc<dyn Clock>,
    /// The next `save` of an entry leaving this state fails as if the
    /// database went away: the step's side effect happened, its new state
    /// was not written (a crash between the two).
    pub fail_save_from: Mutex<Option<PayoutState>>,
    /// Renewals that held, by anyone.
    pub renewals: Mutex<u32>,
    /// Every save takes this long (tokio's clock) before it commits.
    pub save_takes_ms: Mutex<u64>,
}

impl Default for FakeLedger {
    fn default() -> Self {
        Self {
            entries: Mutex::default(),
            events: Mutex::default(),
            poll_mark: Mutex::default(),
            db_clock: Arc::new(TestClock::default()),
            fail_save_from: Mutex::default(),
            renewals: Mutex::default(),
            save_takes_ms: Mutex::default(),
        }
    }
}

impl FakeLedger {
    /// A ledger whose database clock is `clock`.
    pub fn on_clock(clock: Arc<dyn Clock>) -> Self {
        Self {
            db_clock: clock,
            ..Self::default()
        }
    }

    pub fn state(&self, id: &str) -> Option<PayoutState> {
        self.entries
            .lock()
            .expect("lock")
            .get(id)
            .map(|e| e.payout.state())
    }

    pub fn entry(&self, id: &str) -> Option<Payout> {
        self.entries
            .lock()
            .expect("lock")
            .get(id)
            .map(|e| e.payout.clone())
    }

    pub fn claimed_by(&self, id: &str) -> Option<String> {
        self.entries
            .lock()
            .expect("lock")
            .get(id)
            .and_then(|e| e.claim.clone().map(|(owner, _)| owner))
    }

    /// Writes an entry as it is (a state left by an earlier version).
    pub fn put(&self, payout: Payout) {
        self.entries.lock().expect("lock").insert(
            payout.transaction_id.as_str().to_owned(),
            Entry {
                payout,
                claim: None,
                token: 0,
            },
        );
    }

    fn db_now(&self) -> DateTime<Utc> {
        self.db_clock.now()
    }

    fn sight_in(
        entries: &mut BTreeMap<String, Entry>,
        id: &TransactionId,
        sighting: Sighting,
        now: DateTime<Utc>,
    ) -> Option<PayoutState> {
        let current = entries.get(id.as_str()).map(|e| e.payout.state());
        match PayoutState::on_sighting(current, sighting) {
            SightingEffect::Create(next) => {
                entries.insert(
                    id.as_str().to_owned(),
                    Entry {
                        payout: Payout::new(
                            id.clone(),
                            Stage::plain(next).expect("a sighting creates new or received"),
                            now,
                        ),
                        claim: None,
                        token: 0,
                    },
                );
                Some(next)
            }
            SightingEffect::Move(next) => {
                let e = entries.get_mut(id.as_str())?;
                e.payout
                    .sighted(next, now)
                    .expect("a sighting's move is a legal one");
                e.claim = None;
                e.token += 1;
                Some(next)
            }
            SightingEffect::Wake => {
                let e = entries.get_mut(id.as_str())?;
                e.payout.due_at = now;
                current
            }
            SightingEffect::Nothing => current,
        }
    }

    fn wake_in(entries: &mut BTreeMap<String, Entry>, customer: &str, now: DateTime<Utc>) -> u64 {
        let mut n = 0;
        for e in entries.values_mut() {
            if e.payout.state() == PayoutState::AwaitingKyc
                && (e.payout.receiver_id.as_deref() == Some(customer)
                    || e.payout.sender_id.as_deref() == Some(customer))
            {
                e.payout.due_at = now;
                n += 1;
            }
        }
        n
    }
}

fn claim_free(claim: &Option<(String, DateTime<Utc>)>, db_now: DateTime<Utc>) -> bool {
    claim.as_ref().is_none_or(|(_, until)| *until < db_now)
}

fn holds(e: &Entry, claim: &Claim) -> bool {
    e.token == claim.token && e.claim.as_ref().is_some_and(|(o, _)| *o == claim.owner)
}

#[async_trait]
impl PayoutLedger for FakeLedger {
    async fn sight(
        &self,
        id: &TransactionId,
        sighting: Sighting,
        now: DateTime<Utc>,
    ) -> Result<PayoutState, LedgerError> {
        let mut entries = self.entries.lock().expect("lock");
        Self::sight_in(&mut entries, id, sighting, now).ok_or(LedgerError::NotFound)
    }

    async fn sight_all(
        &self,
        sightings: &[(TransactionId, Sighting)],
        now: DateTime<Utc>,
    ) -> Result<Vec<PayoutState>, LedgerError> {
        let mut entries = self.entries.lock().expect("lock");
        sightings
            .iter()
            .map(|(id, s)| Self::sight_in(&mut entries, id, *s, now).ok_or(LedgerError::NotFound))
            .collect()
    }

    async fn knows_funds(&self, ids: &[TransactionId]) -> Result<Vec<bool>, LedgerError> {
        let entries = self.entries.lock().expect("lock");
        Ok(ids
            .iter()
            .map(|id| {
                entries
                    .get(id.as_str())
                    .is_some_and(|e| e.payout.state().knows_funds())
            })
            .collect())
    }

    async fn claim(
        &self,
        owner: &str,
        limit: u32,
        now: DateTime<Utc>,
        lease: Duration,
    ) -> Result<Vec<Claimed>, LedgerError> {
        let db_now = self.db_now();
        let mut entries = self.entries.lock().expect("lock");
        let mut due: Vec<&mut Entry> = entries
            .values_mut()
            .filter(|e| {
                e.payout.state().is_active()
                    && e.payout.due_at <= now
                    && claim_free(&e.claim, db_now)
            })
            .collect();
        due.sort_by_key(|e| e.payout.due_at);
        Ok(due
            .into_iter()
            .take(limit as usize)
            .map(|e| {
                e.claim = Some((owner.to_owned(), db_now + lease));
                e.token += 1;
                Claimed {
                    payout: e.payout.clone(),
                    claim: Claim {
                        owner: owner.to_owned(),
                        token: e.token,
                    },
                }
            })
            .collect())
    }

    async fn renew(
        &self,
        id: &TransactionId,
        claim: &Claim,
        lease: Duration,
    ) -> Result<(), LedgerError> {
        let db_now = self.db_now();
        let mut entries = self.entries.lock().expect("lock");
        let entry = entries.get_mut(id.as_str()).ok_or(LedgerError::NotFound)?;
        if !holds(entry, claim) {
            return Err(LedgerError::LostClaim);
        }
        entry.claim = Some((claim.owner.clone(), db_now + lease));
        *self.renewals.lock().expect("lock") += 1;
        Ok(())
    }

    async fn save(
        &self,
        claim: &Claim,
        expected: PayoutState,
        payout: &Payout,
        lease: Option<Duration>,
    ) -> Result<(), LedgerError> {
        let takes = *self.save_takes_ms.lock().expect("lock");
        if takes > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(takes)).await;
        }
        {
            let mut fail = self.fail_save_from.lock().expect("lock");
            if *fail == Some(expected) {
                *fail = None;
                return Err(LedgerError::Unknown(anyhow::anyhow!(
                    "database unreachable"
                )));
            }
        }
        let db_now = self.db_now();
        let mut entries = self.entries.lock().expect("lock");
        let entry = entries
            .get_mut(payout.transaction_id.as_str())
            .ok_or(LedgerError::NotFound)?;
        if !holds(entry, claim) || entry.payout.state() != expected {
            return Err(LedgerError::LostClaim);
        }
        entry.payout = payout.clone();
        entry.claim = lease.map(|l| (claim.owner.clone(), db_now + l));
        Ok(())
    }

    async fn release(&self, id: &TransactionId, claim: &Claim) -> Result<bool, LedgerError> {
        let mut entries = self.entries.lock().expect("lock");
        let Some(entry) = entries.get_mut(id.as_str()) else {
            return Ok(false);
        };
        if !holds(entry, claim) {
            return Ok(false);
        }
        entry.claim = None;
        Ok(true)
    }

    async fn get(&self, id: &TransactionId) -> Result<Option<Payout>, LedgerError> {
        Ok(self
            .entries
            .lock()
            .expect("lock")
            .get(id.as_str())
            .map(|e| e.payout.clone()))
    }

    async fn list(&self, states: &[PayoutState], limit: u32) -> Result<Vec<Payout>, LedgerError> {
        let mut all: Vec<Payout> = self
            .entries
            .lock()
            .expect("lock")
            .values()
            .filter(|e| states.is_empty() || states.contains(&e.payout.state()))
            .map(|e| e.payout.clone())
            .collect();
        all.sort_by_key(|p| std::cmp::Reverse(p.created_at));
        all.truncate(limit as usize);
        Ok(all)
    }

    async fn counts(&self) -> Result<Vec<(PayoutState, u64)>, LedgerError> {
        let mut counts = BTreeMap::new();
        for e in self.entries.lock().expect("lock").values() {
            *counts.entry(e.payout.state()).or_insert(0) += 1;
        }
        Ok(counts.into_iter().collect())
    }

    async fn reopen(
        &self,
        id: &TransactionId,
        from: &[PayoutState],
        edit: OperatorEdit,
    ) -> Result<Payout, LedgerError> {
        let db_now = self.db_now();
        let mut entries = self.entries.lock().expect("lock");
        let entry = entries.get_mut(id.as_str()).ok_or(LedgerError::NotFound)?;
        if !from.contains(&entry.payout.state()) {
            return Err(LedgerError::WrongState(entry.payout.state()));
        }
        if !claim_free(&entry.claim, db_now) {
            return Err(LedgerError::LostClaim);
        }
        let mut payout = entry.payout.clone();
        edit(&mut payout).map_err(|e| LedgerError::WrongState(e.from))?;
        entry.payout = payout.clone();
        entry.claim = None;
        entry.token += 1;
        Ok(payout)
    }
}

#[async_trait]
impl PollMarks for FakeLedger {
    async fn poll_mark(&self) -> Result<Option<DateTime<Utc>>, LedgerError> {
        Ok(*self.poll_mark.lock().expect("lock"))
    }

    async fn advance_poll_mark(
        &self,
        mark: DateTime<Utc>,
        _now: DateTime<Utc>,
    ) -> Result<(), LedgerError> {
        let mut stored = self.poll_mark.lock().expect("lock");
        if stored.is_none_or(|s| s < mark) {
            *stored = Some(mark);
        }
        Ok(())
    }
}

#[async_trait]
impl EventStore for FakeLedger {
    async fn accept_event(&self, event: &InboxEvent) -> Result<bool, LedgerError> {
        let mut events = self.events.lock().expect("lock");
        if events.iter().any(|(e, _)| e.id == event.id) {
            return Ok(false);
        }
        events.push((event.clone(), false));
        Ok(true)
    }

    async fn apply_events(&self, limit: u32, now: DateTime<Utc>) -> Result<u32, LedgerError> {
        let mut events = self.events.lock().expect("lock");
        let mut entries = self.entries.lock().expect("lock");
        let mut waiting: Vec<&mut (InboxEvent, bool)> =
            events.iter_mut().filter(|(_, done)| !done).collect();
        waiting.sort_by_key(|(e, _)| (e.occurred_at, e.received_at));
        let mut applied = 0;
        for (event, done) in waiting.into_iter().take(limit as usize) {
            if let (Some(id), Some(sighting)) = (&event.transaction_id, event.sighting) {
                Self::sight_in(&mut entries, id, sighting, now);
            }
            if let Some(customer) = &event.customer_id {
                Self::wake_in(&mut entries, customer, now);
            }
            *done = true;
            applied += 1;
        }
        Ok(applied)
    }

    async fn inbox_depth(&self) -> Result<u64, LedgerError> {
        Ok(self
            .events
            .lock()
            .expect("lock")
            .iter()
            .filter(|(_, done)| !done)
            .count() as u64)
    }
}

/// What the fake rail does with the next `submit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RailFault {
    /// Unreachable: no payout made.
    Down,
    /// The payout was made; the answer was lost.
    AnswerLost,
    /// Refused (a 400): no payout made.
    Refuse,
    /// Made, and failed at the bank.
    FailAtBank,
    /// The payout was made, and the provider answers 409 (the key is still
    /// being processed).
    Conflict,
    /// The provider answers 401: no payout made, a person must look.
    Unauthorised,
    /// The answer takes this many milliseconds (tokio's clock); the payout
    /// is made when the request arrives.
    Slow(u64),
}

struct RailPayout {
    order: PayoutOrder,
    receipt: RailReceipt,
    /// Status calls left before a pending payout completes.
    pending_left: u32,
}

/// A strict payout provider in memory: it honours idempotency keys, answers
/// 422 to a key sent again with another body, and records every call, how
/// many calls under one key were in flight at once, and the bodies sent.
#[derive(Default)]
pub struct FakeRail {
    payouts: Mutex<Vec<RailPayout>>,
    pub faults: Mutex<VecDeque<RailFault>>,
    /// New payouts stay pending for this many status calls.
    pub pending_for: Mutex<u32>,
    /// Every submit received, in order.
    calls: Mutex<Vec<PayoutOrder>>,
    /// Submits under each key in flight now, and the most ever at once.
    in_flight: Mutex<BTreeMap<String, u32>>,
    pub most_in_flight: Mutex<u32>,
}

impl FakeRail {
    /// The payouts made, in order.
    pub fn made(&self) -> Vec<PayoutOrder> {
        self.payouts
            .lock()
            .expect("lock")
            .iter()
            .map(|p| p.order.clone())
            .collect()
    }

    /// Every submit received, in order.
    pub fn calls(&self) -> Vec<PayoutOrder> {
        self.calls.lock().expect("lock").clone()
    }

    fn enter(&self, key: &str) {
        let mut in_flight = self.in_flight.lock().expect("lock");
        let n = in_flight.entry(key.to_owned()).or_insert(0);
        *n += 1;
        let mut most = self.most_in_flight.lock().expect("lock");
        *most = (*most).max(*n);
    }

    fn leave(&self, key: &str) {
        if let Some(n) = self.in_flight.lock().expect("lock").get_mut(key) {
            *n = n.saturating_sub(1);
        }
    }

    /// Makes (or finds) the payout of `order`: `Err` for a key reused with
    /// another body.
    fn make(
        &self,
        order: &PayoutOrder,
        fault: Option<RailFault>,
    ) -> Result<RailReceipt, RailError> {
        let mut payouts = self.payouts.lock().expect("lock");
        if let Some(p) = payouts
            .iter()
            .find(|p| p.order.idempotency_key == order.idempotency_key)
        {
            if p.order != *order {
                return Err(RailError::Held(
                    "422: the key was used with other parameters".into(),
                ));
            }
            return Ok(p.receipt.clone());
        }
        let pending_left = *self.pending_for.lock().expect("lock");
        let status = match fault {
            Some(RailFault::FailAtBank) => RailStatus::Failed("invalid account".into()),
            _ if pending_left > 0 => RailStatus::Pending,
            _ => RailStatus::Completed,
        };
        let receipt = RailReceipt {
            id: format!("pay-{}", payouts.len() + 1),
            status,
        };
        payouts.push(RailPayout {
            order: order.clone(),
            receipt: receipt.clone(),
            pending_left,
        });
        Ok(receipt)
    }
}

/// Leaves the in-flight count of a key when the call ends or is dropped.
struct InFlight<'a>(&'a FakeRail, String);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.leave(&self.1);
    }
}

#[async_trait]
impl PayoutRail for FakeRail {
    async fn submit(&self, order: &PayoutOrder) -> Result<RailReceipt, RailError> {
        self.calls.lock().expect("lock").push(order.clone());
        self.enter(&order.idempotency_key);
        let _in_flight = InFlight(self, order.idempotency_key.clone());
        let fault = self.faults.lock().expect("lock").pop_front();
        match fault {
            Some(RailFault::Down) => return Err(RailError::Unknown("timed out".into())),
            Some(RailFault::Refuse) => {
                return Err(RailError::Refused("400: the account is closed".into()));
            }
            Some(RailFault::Unauthorised) => {
                return Err(RailError::Held("401: credentials refused".into()));
            }
            _ => {}
        }
        let receipt = self.make(order, fault)?;
        match fault {
            Some(RailFault::AnswerLost) => {
                Err(RailError::Unknown("the connection was reset".into()))
            }
            Some(RailFault::Conflict) => Err(RailError::Unknown("409: still processing".into())),
            Some(RailFault::Slow(ms)) => {
                tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
                Ok(receipt)
            }
            _ => Ok(receipt),
        }
    }

    async fn status(&self, id: &str) -> Result<RailReceipt, RailError> {
        let mut payouts = self.payouts.lock().expect("lock");
        let p = payouts
            .iter_mut()
            .find(|p| p.receipt.id == id)
            .ok_or_else(|| RailError::Unknown(format!("404: no payout {id} yet")))?;
        if p.receipt.status == RailStatus::Pending {
            p.pending_left = p.pending_left.saturating_sub(1);
            if p.pending_left == 0 {
                p.receipt.status = RailStatus::Completed;
            }
        }
        Ok(p.receipt.clone())
    }
}

/// The operator every test acts as.
pub fn who() -> Actor {
    Actor::operator("tester", "cli@test")
}

/// The audit trail in memory, append-only like the table.
#[derive(Default)]
pub struct FakeAuditLog {
    entries: Mutex<Vec<AuditEntry>>,
    /// Entries of this action cannot be written (the rest can).
    refused: Mutex<Option<AuditAction>>,
}

impl FakeAuditLog {
    /// Every entry, oldest first.
    pub fn all(&self) -> Vec<AuditEntry> {
        self.entries.lock().expect("lock").clone()
    }

    /// From now on, entries of `action` fail to be written.
    pub fn refuse(&self, action: AuditAction) {
        *self.refused.lock().expect("lock") = Some(action);
    }
}

#[async_trait]
impl AuditLog for FakeAuditLog {
    async fn append(&self, entry: &AuditEntry) -> Result<(), AuditError> {
        if *self.refused.lock().expect("lock") == Some(entry.action) {
            return Err(AuditError::Unknown(anyhow::anyhow!(
                "the audit table refused the entry"
            )));
        }
        self.entries.lock().expect("lock").push(entry.clone());
        Ok(())
    }

    async fn entries(&self, query: &AuditQuery) -> Result<Vec<AuditRecord>, AuditError> {
        let entries = self.entries.lock().expect("lock");
        Ok(entries
            .iter()
            .enumerate()
            .rev()
            .map(|(i, e)| AuditRecord {
                sequence: i as i64 + 1,
                entry: e.clone(),
            })
            .filter(|r| query.customer.is_none() || r.entry.customer == query.customer)
            .filter(|r| query.transaction.is_none() || r.entry.transaction == query.transaction)
            .filter(|r| query.since.is_none_or(|t| r.entry.at >= t))
            .filter(|r| query.before.is_none_or(|b| r.sequence < b))
            .take(query.limit as usize)
            .collect())
    }
}

/// An audit trail that cannot be written (its database is down).
pub struct FailingAuditLog;

#[async_trait]
impl AuditLog for FailingAuditLog {
    async fn append(&self, _: &AuditEntry) -> Result<(), AuditError> {
        Err(AuditError::Unknown(anyhow::anyhow!(
            "the audit table is unreachable"
        )))
    }

    async fn entries(&self, _: &AuditQuery) -> Result<Vec<AuditRecord>, AuditError> {
        Err(AuditError::Unknown(anyhow::anyhow!(
            "the audit table is unreachable"
        )))
    }
}
