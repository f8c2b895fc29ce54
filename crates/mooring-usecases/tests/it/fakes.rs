//! In-memory fakes of the ports, faithful to their documented contracts.

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{DateTime, TimeZone, Utc};
use mooring_domain::customer::{Customer, CustomerId, ProvidedValue, Review};
use mooring_domain::deposit::DepositAddress;
use mooring_domain::quote::{Quote, QuoteId};
use mooring_domain::{AssetId, Memo, StellarAccount};
use mooring_ports::{
    Clock, Custodian, CustodianError, CustomerTarget, DepositAddressStore, KycStore, KycStoreError,
    PutCustomer, QuoteStore, QuoteStoreError, RateSource, RateSourceError,
};
use rust_decimal::Decimal;

#[derive(Default)]
pub struct FakeKycStore {
    customers: Mutex<BTreeMap<CustomerId, Customer>>,
}

impl FakeKycStore {
    pub fn len(&self) -> usize {
        self.customers.lock().expect("lock").len()
    }
}

#[async_trait]
impl KycStore for FakeKycStore {
    async fn get(&self, id: &CustomerId) -> Result<Option<Customer>, KycStoreError> {
        Ok(self.customers.lock().expect("lock").get(id).cloned())
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
            match value {
                Some(v) => customer.fields.insert(name, ProvidedValue::Text(v)),
                None => customer.fields.remove(&name),
            };
        }
        let mut changed = before != customer.fields;
        for (name, file) in change.files {
            changed = true;
            match file {
                Some(f) => customer.fields.insert(
                    name,
                    ProvidedValue::File {
                        size: f.content.len() as u64,
                        content_type: f.content_type,
                    },
                ),
                None => customer.fields.remove(&name),
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
        now: DateTime<Utc>,
    ) -> Result<Customer, KycStoreError> {
        let mut customers = self.customers.lock().expect("lock");
        let customer = customers.get_mut(id).ok_or(KycStoreError::NotFound)?;
        customer.review = review;
        customer.updated_at = now;
        Ok(customer.clone())
    }
}

pub struct FixedClock(pub DateTime<Utc>);

impl Default for FixedClock {
    fn default() -> Self {
        Self(
            Utc.with_ymd_and_hms(2026, 1, 1, 12, 0, 0)
                .single()
                .expect("valid date"),
        )
    }
}

impl Clock for FixedClock {
    fn now(&self) -> DateTime<Utc> {
        self.0
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
        Ok(self
            .kept
            .lock()
            .expect("lock")
            .entry(transaction_id.to_owned())
            .or_insert_with(|| address.clone())
            .clone())
    }
}
