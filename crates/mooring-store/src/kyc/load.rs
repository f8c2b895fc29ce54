//! Reading a customer: everything they provided in one statement (one
//! round trip, one snapshot), opened with their data key.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use chrono::NaiveDateTime;
use diesel::prelude::*;
use mooring_domain::customer::{Customer, CustomerId, ProvidedValue, Review};
use mooring_domain::{Memo, StellarAccount};

use super::values::open_text;
use super::{APPROVED, PENDING, REJECTED};
use crate::AnyConnection;
use crate::conn::CachedSql;
use crate::error::{Failure, by_backend};
use crate::pii::Pii;
use crate::schema::customers;

/// Which customer to load.
pub(super) enum Which<'a> {
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
    /// A reviewer's reason for rejecting this value or file.
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    rejected: Option<String>,
}

/// A customer with everything they provided, in one statement (one round
/// trip, one snapshot): the customer row once per value, file, link or
/// data key, each branch a join on the child table's key so that both
/// databases read only this customer's rows. `{C}` selects the customer,
/// in each branch. (SQLite takes `CAST(NULL AS BYTEA)` as a plain NULL.)
const LOAD_SQL: &str = "SELECT c.id, c.account, c.memo, c.memo_type, c.customer_type, c.review, \
       c.review_message, c.created_at, c.updated_at, 'text' AS kind, f.name AS name, f.legacy_value AS value, \
       CAST(NULL AS BIGINT) AS size_bytes, CAST(NULL AS TIMESTAMP) AS linked_at, f.sealed AS sealed, \
       f.rejected AS rejected \
     FROM customers c LEFT JOIN customer_fields f ON f.customer_id = c.id WHERE {C} \
     UNION ALL SELECT c.id, c.account, c.memo, c.memo_type, c.customer_type, c.review, \
       c.review_message, c.created_at, c.updated_at, 'file', fi.name, fi.content_type, fi.size_bytes, \
       CAST(NULL AS TIMESTAMP), CAST(NULL AS BYTEA), fi.rejected \
     FROM customers c JOIN customer_files fi ON fi.customer_id = c.id WHERE {C} \
     UNION ALL SELECT c.id, c.account, c.memo, c.memo_type, c.customer_type, c.review, \
       c.review_message, c.created_at, c.updated_at, 'transaction', t.transaction_id, \
       CAST(NULL AS TEXT), CAST(NULL AS BIGINT), t.created_at, CAST(NULL AS BYTEA), \
       CAST(NULL AS TEXT) \
     FROM customers c JOIN customer_transactions t ON t.customer_id = c.id WHERE {C} \
     UNION ALL SELECT c.id, c.account, c.memo, c.memo_type, c.customer_type, c.review, \
       c.review_message, c.created_at, c.updated_at, 'key', k.kek_id, \
       CAST(NULL AS TEXT), CAST(NULL AS BIGINT), CAST(NULL AS TIMESTAMP), k.wrapped, \
       CAST(NULL AS TEXT) \
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
    by_backend!(conn, |c| query.load(c))
}

pub(super) fn load(
    conn: &mut AnyConnection,
    pii: &Pii,
    id: &str,
) -> Result<Option<Customer>, Failure> {
    load_which(conn, pii, &Which::Id(id))
}

pub(super) fn load_which(
    conn: &mut AnyConnection,
    pii: &Pii,
    which: &Which<'_>,
) -> Result<Option<Customer>, Failure> {
    let rows = load_rows(conn, which)?;
    let Some(row) = rows.first() else {
        return Ok(None);
    };
    let corrupt = |reason: String| Failure::Corrupt {
        what: "customer",
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
    let mut rejected_fields = BTreeMap::new();
    let mut links = Vec::new();
    for r in &rows {
        if let (Some("text" | "file"), Some(name), Some(reason)) =
            (r.kind.as_deref(), &r.name, &r.rejected)
        {
            rejected_fields.insert(name.clone(), reason.clone());
        }
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
        rejected_fields,
        transaction_ids: links.into_iter().map(|(_, t)| t).collect(),
        created_at: row.created_at.and_utc(),
        updated_at: row.updated_at.and_utc(),
    }))
}

pub(super) fn exists(conn: &mut AnyConnection, id: &str) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(customers::table.find(id))).get_result(conn)
}
