//! In-memory fakes of the ports, faithful to their documented contracts.

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{DateTime, TimeZone, Utc};
use mooring_domain::customer::{Customer, CustomerId, ProvidedValue, Review};
use mooring_domain::{Memo, StellarAccount};
use mooring_ports::{Clock, CustomerTarget, KycStore, KycStoreError, PutCustomer};

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
