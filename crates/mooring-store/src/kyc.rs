//! The KYC store: customers, their SEP-9 values, files and transaction links.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDateTime, Timelike, Utc};
use diesel::prelude::*;
use diesel::result::Error as DieselError;
use mooring_domain::customer::{Customer, CustomerId, ProvidedValue, Review};
use mooring_domain::{Memo, StellarAccount};
use mooring_ports::{CustomerTarget, FileUpload, KycStore, KycStoreError, PutCustomer};

use crate::conn::{CachedSql, checkpoint, lock_row, write_tx};
use crate::pii::{Pii, field_context, file_context};
use crate::schema::{customer_fields, customer_files, customer_transactions, customers, data_keys};
use crate::{AnyConnection, Store, StoreError};
use mooring_ports::DataKey;

/// What can go wrong inside one store call.
#[derive(Debug, thiserror::Error)]
enum Failure {
    #[error("customer not found")]
    NotFound,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("stored customer {id} is unreadable: {reason}")]
    Corrupt { id: String, reason: String },
}

impl From<DieselError> for Failure {
    fn from(e: DieselError) -> Self {
        Self::Store(StoreError::Query(e))
    }
}

impl From<Failure> for KycStoreError {
    fn from(f: Failure) -> Self {
        match f {
            Failure::NotFound => Self::NotFound,
            other => Self::Unknown(anyhow::Error::new(other)),
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

/// Which customer to load.
enum Which<'a> {
    Id(&'a str),
    Owner(&'a str, &'a str),
}

/// One row of [`LOAD_SQL`]: the customer's columns, and one of its values,
/// files or transaction links (or none).
#[derive(QueryableByName)]
struct LoadRow {
    #[diesel(sql_type = diesel::sql_types::Text)]
    id: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    account: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    memo: String,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    memo_type: Option<String>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    customer_type: Option<String>,
    #[diesel(sql_type = diesel::sql_types::Text)]
    review: String,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    review_message: Option<String>,
    #[diesel(sql_type = diesel::sql_types::Timestamp)]
    created_at: NaiveDateTime,
    #[diesel(sql_type = diesel::sql_types::Timestamp)]
    updated_at: NaiveDateTime,
    /// `text`, `file`, `transaction`, or none.
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    kind: Option<String>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    name: Option<String>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    value: Option<String>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::BigInt>)]
    size_bytes: Option<i64>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Timestamp>)]
    linked_at: Option<NaiveDateTime>,
    /// A text value, sealed; or the wrapped data key (kind `key`).
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Binary>)]
    sealed: Option<Vec<u8>>,
}

/// A customer with everything they provided, in one statement (one round
/// trip, one snapshot): the customer row once per value, file, link or
/// data key, each branch a join on the child table's key so that both
/// databases read only this customer's rows. `{C}` selects the customer,
/// in each branch. (SQLite takes `CAST(NULL AS BYTEA)` as a plain NULL.)
const LOAD_SQL: &str = "SELECT c.id, c.account, c.memo, c.memo_type, c.customer_type, c.review, \
       c.review_message, c.created_at, c.updated_at, 'text' AS kind, f.name AS name, f.legacy_value AS value, \
       CAST(NULL AS BIGINT) AS size_bytes, CAST(NULL AS TIMESTAMP) AS linked_at, f.sealed AS sealed \
     FROM customers c LEFT JOIN customer_fields f ON f.customer_id = c.id WHERE {C} \
     UNION ALL SELECT c.id, c.account, c.memo, c.memo_type, c.customer_type, c.review, \
       c.review_message, c.created_at, c.updated_at, 'file', fi.name, fi.content_type, fi.size_bytes, \
       CAST(NULL AS TIMESTAMP), CAST(NULL AS BYTEA) \
     FROM customers c JOIN customer_files fi ON fi.customer_id = c.id WHERE {C} \
     UNION ALL SELECT c.id, c.account, c.memo, c.memo_type, c.customer_type, c.review, \
       c.review_message, c.created_at, c.updated_at, 'transaction', t.transaction_id, \
       CAST(NULL AS TEXT), CAST(NULL AS BIGINT), t.created_at, CAST(NULL AS BYTEA) \
     FROM customers c JOIN customer_transactions t ON t.customer_id = c.id WHERE {C} \
     UNION ALL SELECT c.id, c.account, c.memo, c.memo_type, c.customer_type, c.review, \
       c.review_message, c.created_at, c.updated_at, 'key', k.kek_id, \
       CAST(NULL AS TEXT), CAST(NULL AS BIGINT), CAST(NULL AS TIMESTAMP), k.wrapped \
     FROM customers c JOIN data_keys k ON k.customer_id = c.id WHERE {C}";

/// [`LOAD_SQL`] for one customer by id, and by account and memo.
static LOAD_BY_ID: LazyLock<String> = LazyLock::new(|| LOAD_SQL.replace("{C}", "c.id = ?"));
static LOAD_BY_OWNER: LazyLock<String> =
    LazyLock::new(|| LOAD_SQL.replace("{C}", "c.account = ? AND c.memo = ?"));

fn load_rows(conn: &mut AnyConnection, which: &Which<'_>) -> QueryResult<Vec<LoadRow>> {
    // Prepared once per connection: planning this union costs PostgreSQL
    // several times what running it does.
    let query = match which {
        Which::Id(id) => CachedSql::new(&LOAD_BY_ID, vec![id; 4]),
        Which::Owner(account, memo) => CachedSql::new(&LOAD_BY_OWNER, [*account, *memo].repeat(4)),
    };
    match conn {
        AnyConnection::Postgresql(c) => query.load(c),
        AnyConnection::Sqlite(c) => query.load(c),
    }
}

fn load(conn: &mut AnyConnection, pii: &Pii, id: &str) -> Result<Option<Customer>, Failure> {
    load_which(conn, pii, &Which::Id(id))
}

fn load_which(
    conn: &mut AnyConnection,
    pii: &Pii,
    which: &Which<'_>,
) -> Result<Option<Customer>, Failure> {
    let rows = load_rows(conn, which)?;
    let Some(row) = rows.first() else {
        return Ok(None);
    };
    let corrupt = |reason: String| Failure::Corrupt {
        id: row.id.clone(),
        reason,
    };
    let account = StellarAccount::parse(&row.account).map_err(|e| corrupt(e.to_string()))?;
    let memo = match row.memo.as_str() {
        "" => None,
        value => {
            Some(Memo::parse(value, row.memo_type.as_deref()).map_err(|e| corrupt(e.to_string()))?)
        }
    };
    let review = match (row.review.as_str(), &row.review_message) {
        (PENDING, _) => Review::Pending,
        (APPROVED, _) => Review::Approved,
        (REJECTED, reason) => Review::Rejected {
            reason: reason.clone().unwrap_or_default(),
        },
        (other, _) => return Err(corrupt(format!("unknown review state {other:?}"))),
    };
    let key = rows
        .iter()
        .find(|r| r.kind.as_deref() == Some("key"))
        .and_then(|r| Some((r.name.clone()?, r.sealed.clone()?)))
        .map(|(kek_id, wrapped)| pii.unwrap_key(&row.id, kek_id, wrapped))
        .transpose()?;
    let mut fields = BTreeMap::new();
    let mut links = Vec::new();
    for r in &rows {
        match (r.kind.as_deref(), &r.name) {
            (Some("text"), Some(name)) => {
                let value = match &r.sealed {
                    Some(sealed) => {
                        open_text(key.as_ref(), &row.id, name, sealed).map_err(&corrupt)?
                    }
                    // Written by an earlier version, not sealed yet.
                    None => r.value.clone().unwrap_or_default(),
                };
                fields.insert(name.clone(), ProvidedValue::Text(value));
            }
            (Some("file"), Some(name)) => {
                let size = r
                    .size_bytes
                    .and_then(|s| u64::try_from(s).ok())
                    .unwrap_or_default();
                fields.insert(
                    name.clone(),
                    ProvidedValue::File {
                        size,
                        content_type: r.value.clone(),
                    },
                );
            }
            (Some("transaction"), Some(name)) => links.push((r.linked_at, name.clone())),
            _ => {}
        }
    }
    links.sort();
    let id = CustomerId::parse(&row.id).map_err(|e| corrupt(e.to_string()))?;
    Ok(Some(Customer {
        id,
        account,
        memo,
        customer_type: row.customer_type.clone(),
        review,
        fields,
        transaction_ids: links.into_iter().map(|(_, t)| t).collect(),
        created_at: row.created_at.and_utc(),
        updated_at: row.updated_at.and_utc(),
    }))
}

fn exists(conn: &mut AnyConnection, id: &str) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(customers::table.find(id))).get_result(conn)
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
            let id: String = match conn {
                AnyConnection::Postgresql(pg) => upsert.get_result(pg)?,
                AnyConnection::Sqlite(sqlite) => upsert.get_result(sqlite)?,
            };
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

fn open_text(
    key: Option<&DataKey>,
    customer: &str,
    name: &str,
    sealed: &[u8],
) -> Result<String, String> {
    let key =
        key.ok_or_else(|| format!("field {name} is sealed but the customer has no data key"))?;
    let bytes = key
        .open(&field_context(customer, name), sealed)
        .map_err(|e| format!("field {name}: {e}"))?;
    String::from_utf8(bytes).map_err(|_| format!("field {name} is not UTF-8"))
}

/// Sets or clears one text field, sealed under `key`; returns whether the
/// stored value changed.
fn put_text(
    conn: &mut AnyConnection,
    key: &DataKey,
    id: &str,
    name: &str,
    value: Option<&str>,
    now: NaiveDateTime,
) -> Result<bool, Failure> {
    let row = customer_fields::table.find((id, name));
    let old: Option<(String, Option<Vec<u8>>)> = row
        .select((customer_fields::legacy_value, customer_fields::sealed))
        .first(conn)
        .optional()?;
    let old = match old {
        Some((_, Some(sealed))) => Some(open_text(Some(key), id, name, &sealed).map_err(
            |reason| Failure::Corrupt {
                id: id.to_owned(),
                reason,
            },
        )?),
        Some((legacy, None)) => Some(legacy),
        None => None,
    };
    let sealed = |v: &str| key.seal(&field_context(id, name), v.as_bytes());
    match (old, value) {
        (Some(old), Some(new)) if old == new => Ok(false),
        (Some(_), Some(new)) => {
            diesel::update(row)
                .set((
                    customer_fields::legacy_value.eq(""),
                    customer_fields::sealed.eq(Some(sealed(new))),
                    customer_fields::updated_at.eq(now),
                ))
                .execute(conn)?;
            Ok(true)
        }
        (None, Some(new)) => {
            diesel::insert_into(customer_fields::table)
                .values((
                    customer_fields::customer_id.eq(id),
                    customer_fields::name.eq(name),
                    customer_fields::legacy_value.eq(""),
                    customer_fields::sealed.eq(Some(sealed(new))),
                    customer_fields::updated_at.eq(now),
                ))
                .execute(conn)?;
            Ok(true)
        }
        (Some(_), None) => Ok(diesel::delete(row).execute(conn)? > 0),
        (None, None) => Ok(false),
    }
}

/// A stored file: its legacy plaintext, its seal, its content type.
type StoredFile = (Vec<u8>, Option<Vec<u8>>, Option<String>);

/// Sets or clears one file field, sealed under `key`; returns whether the
/// stored file changed.
fn put_file(
    conn: &mut AnyConnection,
    key: &DataKey,
    id: &str,
    name: &str,
    file: Option<&FileUpload>,
    now: NaiveDateTime,
) -> Result<bool, Failure> {
    let row = customer_files::table.find((id, name));
    let old: Option<StoredFile> = row
        .select((
            customer_files::legacy_content,
            customer_files::sealed,
            customer_files::content_type,
        ))
        .first(conn)
        .optional()?;
    let context = file_context(id, name);
    let old = match old {
        Some((_, Some(sealed), content_type)) => {
            let content = key.open(&context, &sealed).map_err(|e| Failure::Corrupt {
                id: id.to_owned(),
                reason: format!("file {name}: {e}"),
            })?;
            Some((content, content_type))
        }
        Some((legacy, None, content_type)) => Some((legacy, content_type)),
        None => None,
    };
    match (old, file) {
        (Some(old), Some(new)) if old.0 == new.content && old.1 == new.content_type => Ok(false),
        (Some(_), Some(new)) => {
            diesel::update(row)
                .set((
                    customer_files::legacy_content.eq(Vec::<u8>::new()),
                    customer_files::sealed.eq(Some(key.seal(&context, &new.content))),
                    customer_files::content_type.eq(new.content_type.as_deref()),
                    customer_files::size_bytes.eq(size_of(new)),
                    customer_files::updated_at.eq(now),
                ))
                .execute(conn)?;
            Ok(true)
        }
        (None, Some(new)) => {
            diesel::insert_into(customer_files::table)
                .values((
                    customer_files::customer_id.eq(id),
                    customer_files::name.eq(name),
                    customer_files::legacy_content.eq(Vec::<u8>::new()),
                    customer_files::sealed.eq(Some(key.seal(&context, &new.content))),
                    customer_files::content_type.eq(new.content_type.as_deref()),
                    customer_files::size_bytes.eq(size_of(new)),
                    customer_files::updated_at.eq(now),
                ))
                .execute(conn)?;
            Ok(true)
        }
        (Some(_), None) => Ok(diesel::delete(row).execute(conn)? > 0),
        (None, None) => Ok(false),
    }
}

fn size_of(file: &FileUpload) -> i64 {
    i64::try_from(file.content.len()).unwrap_or(i64::MAX)
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

fn put(conn: &mut AnyConnection, pii: &Pii, change: PutCustomer) -> Result<Customer, Failure> {
    let PutCustomer {
        target,
        customer_type,
        text,
        files,
        transaction_id,
        now,
    } = change;
    // Both backends keep microseconds: so does the customer returned here.
    let now = now
        .naive_utc()
        .with_nanosecond(now.timestamp_subsec_micros() * 1000)
        .unwrap_or_default();
    let id = match resolve(conn, target, customer_type.as_deref(), now)? {
        Resolved::Existing(id) => id,
        Resolved::Created { id, account, memo } => {
            // Nothing stored yet: no old values to compare, nothing to
            // re-read. The customer is what was written.
            let key = pii.key_for_writing(conn, id.as_str(), now)?;
            insert_text(conn, &key, id.as_str(), &text, now)?;
            let mut fields: BTreeMap<String, ProvidedValue> = text
                .into_iter()
                .filter_map(|(name, value)| value.map(|v| (name, ProvidedValue::Text(v))))
                .collect();
            for (name, file) in files {
                if let Some(file) = file {
                    put_file(conn, &key, id.as_str(), &name, Some(&file), now)?;
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
            changed |= put_text(conn, &key, &id, name, value.as_deref(), now)?;
        }
        for (name, file) in &files {
            changed |= put_file(conn, &key, &id, name, file.as_ref(), now)?;
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

/// A new customer's text fields, sealed, in one statement.
fn insert_text(
    conn: &mut AnyConnection,
    key: &DataKey,
    id: &str,
    text: &[(String, Option<String>)],
    now: NaiveDateTime,
) -> QueryResult<()> {
    let rows: Vec<_> = text
        .iter()
        .filter_map(|(name, value)| {
            value.as_deref().map(|value| {
                (
                    customer_fields::customer_id.eq(id),
                    customer_fields::name.eq(name.as_str()),
                    customer_fields::legacy_value.eq(""),
                    customer_fields::sealed
                        .eq(Some(key.seal(&field_context(id, name), value.as_bytes()))),
                    customer_fields::updated_at.eq(now),
                )
            })
        })
        .collect();
    if rows.is_empty() {
        return Ok(());
    }
    let insert = diesel::insert_into(customer_fields::table).values(&rows);
    match conn {
        AnyConnection::Postgresql(pg) => insert.execute(pg)?,
        AnyConnection::Sqlite(sqlite) => insert.execute(sqlite)?,
    };
    Ok(())
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

fn set_review(
    conn: &mut AnyConnection,
    pii: &Pii,
    id: &str,
    review: &Review,
    now: DateTime<Utc>,
) -> Result<Customer, Failure> {
    let (state, message) = review_columns(review);
    let updated = diesel::update(customers::table.find(id))
        .set((
            customers::review.eq(state),
            customers::review_message.eq(message),
            customers::updated_at.eq(now.naive_utc()),
        ))
        .execute(conn)?;
    if updated == 0 {
        return Err(Failure::NotFound);
    }
    load(conn, pii, id)?.ok_or(Failure::NotFound)
}

#[async_trait]
impl KycStore for Store {
    #[tracing::instrument(skip_all, fields(customer.id = %id))]
    async fn get(&self, id: &CustomerId) -> Result<Option<Customer>, KycStoreError> {
        let id = id.to_string();
        let pii = self.pii().map_err(Failure::from)?;
        // One statement: one snapshot, no transaction needed.
        Ok(self.run(move |conn| load(conn, &pii, &id)).await?)
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
            .run(move |conn| {
                load_which(
                    conn,
                    &pii,
                    &Which::Owner(account.as_str(), memo_column(memo.as_ref())),
                )
            })
            .await?;
        Ok(found)
    }

    #[tracing::instrument(skip_all)]
    async fn put(&self, change: PutCustomer) -> Result<Customer, KycStoreError> {
        let pii = self.pii().map_err(Failure::from)?;
        Ok(self
            .run(move |conn| write_tx(conn, |c| put(c, &pii, change)))
            .await?)
    }

    #[tracing::instrument(skip_all, fields(customer.id = %id))]
    async fn delete(&self, id: &CustomerId) -> Result<(), KycStoreError> {
        let id = id.to_string();
        let pii = self.pii().map_err(Failure::from)?;
        let deleted = self.run(move |conn| {
            write_tx(conn, |c| delete(c, &id))?;
            pii.forget(&id);
            if !checkpoint(conn)? {
                tracing::warn!("SQLite checkpoint after a deletion was blocked by readers; the next one completes it");
            }
            Ok::<_, Failure>(())
        });
        Ok(deleted.await?)
    }

    #[tracing::instrument(skip_all, fields(customer.id = %id))]
    async fn set_review(
        &self,
        id: &CustomerId,
        review: Review,
        now: DateTime<Utc>,
    ) -> Result<Customer, KycStoreError> {
        let id = id.to_string();
        let pii = self.pii().map_err(Failure::from)?;
        Ok(self
            .run(move |conn| write_tx(conn, |c| set_review(c, &pii, &id, &review, now)))
            .await?)
    }
}
