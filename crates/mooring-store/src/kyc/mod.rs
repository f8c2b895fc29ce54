//! The KYC store: customers, their SEP-9 values, files and transaction
//! links. Reading a customer is `load`; storing their sealed values is
//! `values`; this file resolves, writes, deletes and reviews.

mod load;
mod values;

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDateTime, Timelike, Utc};
use diesel::prelude::*;
use mooring_domain::customer::{Customer, CustomerId, ProvidedValue, Review};
use mooring_domain::{Memo, StellarAccount};
use mooring_ports::{CustomerTarget, KycStore, KycStoreError, PutCustomer};

use crate::conn::{checkpoint, lock_row, queued, write_tx};
use crate::error::{During, Failure, by_backend};
use crate::pii::Pii;
use crate::schema::{customer_fields, customer_files, customer_transactions, customers, data_keys};
use crate::{AnyConnection, Store};
use load::{Which, exists, load, load_which};
use values::{FileField, Stored as _, TextField, insert_text, put_value};

impl From<Failure> for KycStoreError {
    fn from(f: Failure) -> Self {
        match f {
            Failure::NotFound => Self::NotFound,
            Failure::NoField => Self::NoSuchField,
            Failure::Changed => Self::Changed,
            other => Self::Unknown(other.unknown()),
        }
    }
}

#[derive(Insertable)]
#[diesel(table_name = customers)]
struct NewCustomer<'a> {
    id: &'a str,
    account: &'a str,
    memo: &'a str,
    memo_type: Option<&'a str>,
    customer_type: Option<&'a str>,
    review: &'a str,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
}

const PENDING: &str = "pending";
const APPROVED: &str = "approved";
const REJECTED: &str = "rejected";

fn review_columns(review: &Review) -> (&'static str, Option<&str>) {
    match review {
        Review::Pending => (PENDING, None),
        Review::Approved => (APPROVED, None),
        Review::Rejected { reason } => (REJECTED, Some(reason)),
    }
}

fn memo_column(memo: Option<&Memo>) -> &str {
    memo.map_or("", Memo::value)
}

/// The customer a PUT is about.
enum Resolved {
    /// There already, and locked until the transaction ends.
    Existing(String),
    /// Created by this PUT, pending review, with the PUT's type.
    Created {
        id: CustomerId,
        account: StellarAccount,
        memo: Option<Memo>,
    },
}

/// Finds or creates the customer a PUT is about, and locks it.
fn resolve(
    conn: &mut AnyConnection,
    target: CustomerTarget,
    customer_type: Option<&str>,
    now: NaiveDateTime,
) -> Result<Resolved, Failure> {
    match target {
        CustomerTarget::Id(id) => {
            lock_row(conn, "customers", "id", id.as_str())?;
            if exists(conn, id.as_str())? {
                Ok(Resolved::Existing(id.to_string()))
            } else {
                Err(Failure::NotFound)
            }
        }
        CustomerTarget::Account {
            account,
            memo,
            new_id,
        } => {
            let row = NewCustomer {
                id: new_id.as_str(),
                account: account.as_str(),
                memo: memo_column(memo.as_ref()),
                memo_type: memo.as_ref().map(|m| m.memo_type().as_str()),
                customer_type,
                review: PENDING,
                created_at: now,
                updated_at: now,
            };
            // One statement, atomic under concurrent PUTs and DELETEs: the
            // new row, or (the account and memo taken) the one there, locked
            // by a no-op update.
            let upsert = diesel::insert_into(customers::table)
                .values(&row)
                .on_conflict((customers::account, customers::memo))
                .do_update()
                .set(customers::updated_at.eq(customers::updated_at))
                .returning(customers::id);
            let id: String = by_backend!(conn, |c| upsert.get_result(c))?;
            Ok(if id == new_id.as_str() {
                Resolved::Created {
                    id: new_id,
                    account,
                    memo,
                }
            } else {
                Resolved::Existing(id)
            })
        }
    }
}

fn link_transaction(
    conn: &mut AnyConnection,
    id: &str,
    transaction_id: &str,
    now: NaiveDateTime,
) -> QueryResult<()> {
    let linked: bool = diesel::select(diesel::dsl::exists(
        customer_transactions::table.find((id, transaction_id)),
    ))
    .get_result(conn)?;
    if !linked {
        diesel::insert_into(customer_transactions::table)
            .values((
                customer_transactions::customer_id.eq(id),
                customer_transactions::transaction_id.eq(transaction_id),
                customer_transactions::created_at.eq(now),
            ))
            .execute(conn)?;
    }
    Ok(())
}

/// `now` as both backends keep it, to the microsecond: so is the customer
/// returned, and so is the `seen` a decision is fenced by.
fn micros(now: DateTime<Utc>) -> NaiveDateTime {
    now.naive_utc()
        .with_nanosecond(now.timestamp_subsec_micros() * 1000)
        .unwrap_or_default()
}

fn put(conn: &mut AnyConnection, pii: &Pii, change: PutCustomer) -> Result<Customer, Failure> {
    let PutCustomer {
        target,
        customer_type,
        text,
        files,
        transaction_id,
        now,
    } = change;
    let now = micros(now);
    let id = match resolve(conn, target, customer_type.as_deref(), now)? {
        Resolved::Existing(id) => id,
        Resolved::Created { id, account, memo } => {
            // Nothing stored yet: no old values to compare, nothing to
            // re-read. The customer is what was written.
            let key = pii.new_key(conn, id.as_str(), now)?;
            insert_text(conn, &key, id.as_str(), &text, now)?;
            let mut fields: BTreeMap<String, ProvidedValue> = text
                .into_iter()
                .filter_map(|(name, value)| value.map(|v| (name, ProvidedValue::Text(v))))
                .collect();
            for (name, file) in files {
                if let Some(file) = file {
                    put_value(
                        conn,
                        &key,
                        &FileField {
                            customer: id.as_str(),
                            name: &name,
                        },
                        Some(&file),
                        now,
                    )?;
                    fields.insert(
                        name,
                        ProvidedValue::File {
                            size: file.content.len() as u64,
                            content_type: file.content_type,
                        },
                    );
                }
            }
            if let Some(t) = &transaction_id {
                link_transaction(conn, id.as_str(), t, now)?;
            }
            return Ok(Customer {
                id,
                account,
                memo,
                customer_type,
                review: Review::Pending,
                fields,
                rejected_fields: BTreeMap::new(),
                transaction_ids: transaction_id.into_iter().collect(),
                created_at: now.and_utc(),
                updated_at: now.and_utc(),
            });
        }
    };
    let mut changed = false;
    if !text.is_empty() || !files.is_empty() {
        let key = pii.key_for_writing(conn, &id, now)?;
        for (name, value) in &text {
            let slot = TextField {
                customer: &id,
                name,
            };
            changed |= put_value(conn, &key, &slot, value.as_deref(), now)?;
        }
        for (name, file) in &files {
            let slot = FileField {
                customer: &id,
                name,
            };
            changed |= put_value(conn, &key, &slot, file.as_ref(), now)?;
        }
    }
    if let Some(t) = &transaction_id {
        link_transaction(conn, &id, t, now)?;
    }
    let mut customer = load(conn, pii, &id)?.ok_or(Failure::NotFound)?;
    if changed {
        customer.review = customer.review.after_change();
    }
    if customer_type.is_some() {
        customer.customer_type = customer_type;
    }
    customer.updated_at = now.and_utc();
    let (state, message) = review_columns(&customer.review);
    diesel::update(customers::table.find(&id))
        .set((
            customers::customer_type.eq(customer.customer_type.as_deref()),
            customers::review.eq(state),
            customers::review_message.eq(message),
            customers::updated_at.eq(now),
        ))
        .execute(conn)?;
    Ok(customer)
}

fn delete(conn: &mut AnyConnection, id: &str) -> Result<(), Failure> {
    lock_row(conn, "customers", "id", id)?;
    if !exists(conn, id)? {
        return Err(Failure::NotFound);
    }
    diesel::delete(customer_fields::table.filter(customer_fields::customer_id.eq(id)))
        .execute(conn)?;
    diesel::delete(customer_files::table.filter(customer_files::customer_id.eq(id)))
        .execute(conn)?;
    diesel::delete(customer_transactions::table.filter(customer_transactions::customer_id.eq(id)))
        .execute(conn)?;
    diesel::delete(customers::table.find(id)).execute(conn)?;
    // The data key last: what it sealed, in any copy, cannot be opened.
    diesel::delete(data_keys::table.find(id)).execute(conn)?;
    Ok(())
}

/// Locks the customer for a decision and checks that it is the version the
/// decider saw (to the microsecond stored), when they name one.
fn lock_seen(
    conn: &mut AnyConnection,
    id: &str,
    seen: Option<DateTime<Utc>>,
) -> Result<(), Failure> {
    lock_row(conn, "customers", "id", id)?;
    let updated: Option<NaiveDateTime> = customers::table
        .find(id)
        .select(customers::updated_at)
        .first(conn)
        .optional()?;
    let updated = updated.ok_or(Failure::NotFound)?;
    match seen {
        Some(seen) if seen.timestamp_micros() != updated.and_utc().timestamp_micros() => {
            Err(Failure::Changed)
        }
        _ => Ok(()),
    }
}

fn set_review(
    conn: &mut AnyConnection,
    pii: &Pii,
    id: &str,
    review: &Review,
    seen: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<Customer, Failure> {
    lock_seen(conn, id, seen)?;
    let (state, message) = review_columns(review);
    diesel::update(customers::table.find(id))
        .set((
            customers::review.eq(state),
            customers::review_message.eq(message),
            customers::updated_at.eq(micros(now)),
        ))
        .execute(conn)?;
    if *review == Review::Approved {
        // The reviewer approves what is there: no field stays rejected.
        diesel::update(customer_fields::table.filter(customer_fields::customer_id.eq(id)))
            .set(customer_fields::rejected.eq(None::<String>))
            .execute(conn)?;
        diesel::update(customer_files::table.filter(customer_files::customer_id.eq(id)))
            .set(customer_files::rejected.eq(None::<String>))
            .execute(conn)?;
    }
    load(conn, pii, id)?.ok_or(Failure::NotFound)
}

fn reject_field(
    conn: &mut AnyConnection,
    pii: &Pii,
    id: &str,
    name: &str,
    reason: &str,
    seen: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<Customer, Failure> {
    lock_seen(conn, id, seen)?;
    let text = diesel::update(customer_fields::table.find((id, name)))
        .set(customer_fields::rejected.eq(reason))
        .execute(conn)?;
    let file = diesel::update(customer_files::table.find((id, name)))
        .set(customer_files::rejected.eq(reason))
        .execute(conn)?;
    if text + file == 0 {
        return Err(Failure::NoField);
    }
    diesel::update(customers::table.find(id))
        .set(customers::updated_at.eq(micros(now)))
        .execute(conn)?;
    load(conn, pii, id)?.ok_or(Failure::NotFound)
}

#[async_trait]
impl KycStore for Store {
    #[tracing::instrument(skip_all, fields(customer.id = %id))]
    async fn get(&self, id: &CustomerId) -> Result<Option<Customer>, KycStoreError> {
        let id = id.to_string();
        let pii = self.pii().map_err(Failure::from)?;
        // One statement: one snapshot, no transaction needed.
        let what = id.clone();
        Ok(self
            .run_read(move |conn| load(conn, &pii, &id))
            .await
            .during("reading customer", what)?)
    }

    #[tracing::instrument(skip_all, fields(customer.id = %id))]
    async fn file(
        &self,
        id: &CustomerId,
        name: &str,
    ) -> Result<Option<(Vec<u8>, Option<String>)>, KycStoreError> {
        let (id, name) = (id.to_string(), name.to_owned());
        let pii = self.pii().map_err(Failure::from)?;
        let what = id.clone();
        Ok(self
            .run(move |conn| {
                // A customer with a file has a data key (start-up seals what
                // an earlier version left in plaintext).
                let Some(key) = pii.key_of(conn, &id)? else {
                    return Ok(None);
                };
                FileField {
                    customer: &id,
                    name: &name,
                }
                .read(conn, &key)
            })
            .await
            .during("reading a file of customer", what)?)
    }

    #[tracing::instrument(skip_all)]
    async fn find(
        &self,
        account: &StellarAccount,
        memo: Option<&Memo>,
    ) -> Result<Option<Customer>, KycStoreError> {
        let (account, memo) = (account.clone(), memo.cloned());
        let pii = self.pii().map_err(Failure::from)?;
        let found = self
            .run_read(move |conn| {
                load_which(
                    conn,
                    &pii,
                    &Which::Owner(account.as_str(), memo_column(memo.as_ref())),
                )
            })
            .await
            .during("finding customer by", "account and memo")?;
        Ok(found)
    }

    #[tracing::instrument(skip_all)]
    async fn put(&self, change: PutCustomer) -> Result<Customer, KycStoreError> {
        let pii = self.pii().map_err(Failure::from)?;
        let what = match &change.target {
            CustomerTarget::Id(id) => id.to_string(),
            CustomerTarget::Account { new_id, .. } => {
                format!("(by account and memo; new id {new_id})")
            }
        };
        Ok(self
            .run(move |conn| write_tx(conn, |c| put(c, &pii, change)))
            .await
            .during("writing customer", what)?)
    }

    #[tracing::instrument(skip_all, fields(customer.id = %id))]
    async fn delete(&self, id: &CustomerId) -> Result<(), KycStoreError> {
        let id = id.to_string();
        let id_shown = id.clone();
        let pii = self.pii().map_err(Failure::from)?;
        let deleted = self.run(move |conn| {
            write_tx(conn, |c| delete(c, &id))?;
            pii.forget(&id);
            if !queued(conn, checkpoint)? {
                tracing::warn!("SQLite checkpoint after a deletion was blocked by readers; the next one completes it");
            }
            Ok::<_, Failure>(())
        });
        Ok(deleted.await.during("deleting customer", id_shown)?)
    }

    #[tracing::instrument(skip_all, fields(customer.id = %id))]
    async fn set_review(
        &self,
        id: &CustomerId,
        review: Review,
        seen: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<Customer, KycStoreError> {
        let id = id.to_string();
        let pii = self.pii().map_err(Failure::from)?;
        let what = id.clone();
        Ok(self
            .run(move |conn| write_tx(conn, |c| set_review(c, &pii, &id, &review, seen, now)))
            .await
            .during("reviewing customer", what)?)
    }

    #[tracing::instrument(skip_all, fields(customer.id = %id))]
    async fn reject_field(
        &self,
        id: &CustomerId,
        field: &str,
        reason: &str,
        seen: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<Customer, KycStoreError> {
        let (id, field, reason) = (id.to_string(), field.to_owned(), reason.to_owned());
        let pii = self.pii().map_err(Failure::from)?;
        let what = id.clone();
        Ok(self
            .run(move |conn| {
                write_tx(conn, |c| {
                    reject_field(c, &pii, &id, &field, &reason, seen, now)
                })
            })
            .await
            .during("rejecting a field of customer", what)?)
    }
}
