//! The store's baselines: raw SQL loops through the same pool doing the
//! work the product does for one request, encryption included, so that a
//! ratio to them is the cost of everything around the store (HTTP, JSON,
//! the use cases), and encryption is part of the baseline, not an excuse.
//!
//! - `GET /customer`: the customer by account and memo, its data key's row,
//!   its sealed fields, each field opened (the data key remembered, as the
//!   store's cache has it in the steady state).
//! - `PUT /customer` of a new sender: a data key made and wrapped, three
//!   fields sealed, the customer, the key and the fields inserted in one
//!   transaction.
//! - `GET /rate` firm: the liquidity lock (PostgreSQL), what live quotes
//!   hold (`liquidity_holds` and the quotes summed one by one), the quote's
//!   second of `liquidity_holds` updated, the quote and its fee details
//!   inserted, in one transaction.

use diesel::RunQueryDsl;
use diesel::sql_types::{Binary, Nullable, Text};
use mooring_keys::Keyring;
use mooring_ports::{DataKey, KeyEncryptionKey, WrappedKey};
use mooring_store::AnyConnection;

use super::ACCOUNT;

#[derive(diesel::QueryableByName)]
struct CustomerRow {
    #[diesel(sql_type = Text)]
    id: String,
    #[diesel(sql_type = Text)]
    #[allow(dead_code)]
    review: String,
}

#[derive(diesel::QueryableByName)]
struct KeyRow {
    #[diesel(sql_type = Text)]
    kek_id: String,
    #[diesel(sql_type = Binary)]
    wrapped: Vec<u8>,
}

#[derive(diesel::QueryableByName)]
struct FieldRow {
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Nullable<Binary>)]
    sealed: Option<Vec<u8>>,
}

#[derive(diesel::QueryableByName)]
struct Amount {
    #[diesel(sql_type = Text)]
    buy_amount: String,
}

fn field_context(customer: &str, name: &str) -> Vec<u8> {
    [b"field\0", customer.as_bytes(), b"\0", name.as_bytes()].concat()
}

fn key_context(customer: &str) -> Vec<u8> {
    [b"data-key\0", customer.as_bytes()].concat()
}

/// The data key of the customer of `memo`, unwrapped by the key the server
/// runs with: what the store's cache holds once it has read them.
pub(super) fn data_key_of(
    conn: &mut AnyConnection,
    kek: &Keyring,
    memo: &str,
) -> anyhow::Result<(String, DataKey)> {
    let rows: Vec<CustomerRow> = diesel::sql_query(format!(
        "SELECT id, review FROM customers WHERE account = '{ACCOUNT}' AND memo = '{memo}'"
    ))
    .load(conn)?;
    let id = rows
        .first()
        .map(|c| c.id.clone())
        .ok_or_else(|| anyhow::anyhow!("no customer of memo {memo}"))?;
    let key: Vec<KeyRow> = diesel::sql_query(format!(
        "SELECT kek_id, wrapped FROM data_keys WHERE customer_id = '{id}'"
    ))
    .load(conn)?;
    let row = key
        .into_iter()
        .next()
        .ok_or_else(|| anyhow::anyhow!("customer {id} has no data key"))?;
    let wrapped = WrappedKey {
        kek_id: row.kek_id,
        bytes: row.wrapped,
    };
    let key = kek
        .unwrap(&wrapped, &key_context(&id))
        .map_err(|e| anyhow::anyhow!("unwrapping the data key: {e}"))?;
    Ok((id, key))
}

/// What `GET /customer` does in the store; how many values it opened.
pub(super) fn raw_select(
    conn: &mut AnyConnection,
    memo: &str,
    key: &DataKey,
) -> anyhow::Result<usize> {
    let rows: Vec<CustomerRow> = diesel::sql_query(format!(
        "SELECT id, review FROM customers WHERE account = '{ACCOUNT}' AND memo = '{memo}'"
    ))
    .load(conn)?;
    let c = rows
        .first()
        .ok_or_else(|| anyhow::anyhow!("no customer of memo {memo}"))?;
    let _key: Vec<KeyRow> = diesel::sql_query(format!(
        "SELECT kek_id, wrapped FROM data_keys WHERE customer_id = '{}'",
        c.id
    ))
    .load(conn)?;
    let fields: Vec<FieldRow> = diesel::sql_query(format!(
        "SELECT name, sealed FROM customer_fields WHERE customer_id = '{}'",
        c.id
    ))
    .load(conn)?;
    let mut opened = 0;
    for f in &fields {
        let sealed = f
            .sealed
            .as_deref()
            .ok_or_else(|| anyhow::anyhow!("field {} is not sealed", f.name))?;
        let plain = key
            .open(&field_context(&c.id, &f.name), sealed)
            .map_err(|e| anyhow::anyhow!("opening {}: {e}", f.name))?;
        String::from_utf8(plain)?;
        opened += 1;
    }
    Ok(opened)
}

/// Bytes as an SQL literal of each backend.
fn blob(conn: &AnyConnection, bytes: &[u8]) -> String {
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    match conn {
        AnyConnection::Postgresql(_) => format!("'\\x{hex}'::bytea"),
        AnyConnection::Sqlite(_) => format!("X'{hex}'"),
    }
}

/// Runs `statements` in one transaction (`BEGIN IMMEDIATE` on SQLite, as
/// the store's writes).
fn in_transaction(
    conn: &mut AnyConnection,
    statements: impl Fn(&mut AnyConnection) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    use diesel::connection::SimpleConnection;
    let begin = match conn {
        AnyConnection::Postgresql(_) => "BEGIN",
        AnyConnection::Sqlite(_) => "BEGIN IMMEDIATE",
    };
    match conn {
        AnyConnection::Postgresql(c) => c.batch_execute(begin)?,
        AnyConnection::Sqlite(c) => c.batch_execute(begin)?,
    }
    let result = statements(conn);
    let end = if result.is_ok() { "COMMIT" } else { "ROLLBACK" };
    match conn {
        AnyConnection::Postgresql(c) => c.batch_execute(end)?,
        AnyConnection::Sqlite(c) => c.batch_execute(end)?,
    }
    result
}

/// What `PUT /customer` does in the store for a new sender `n`.
pub(super) fn raw_insert(conn: &mut AnyConnection, kek: &Keyring, n: u64) -> anyhow::Result<()> {
    let now = "2026-01-01 00:00:00";
    let id = uuid::Uuid::new_v4().to_string();
    let key = DataKey::generate();
    let wrapped = kek
        .wrap(&key, &key_context(&id))
        .map_err(|e| anyhow::anyhow!("wrapping: {e}"))?;
    let fields: Vec<String> = [
        ("first_name", "John"),
        ("last_name", "Doe"),
        ("email_address", "john@example.com"),
    ]
    .iter()
    .map(|(name, value)| {
        let sealed = key.seal(&field_context(&id, name), value.as_bytes());
        format!("('{id}', '{name}', '', {}, '{now}')", blob(conn, &sealed))
    })
    .collect();
    let memo = 3_000_000_000_000u64 + n;
    let statements = [
        format!(
            "INSERT INTO customers (id, account, memo, memo_type, customer_type, review, created_at, updated_at) \
             VALUES ('{id}', '{ACCOUNT}', '{memo}', 'id', 'sep31-sender', 'pending', '{now}', '{now}')"
        ),
        format!(
            "INSERT INTO data_keys (customer_id, kek_id, wrapped, created_at) \
             VALUES ('{id}', '{}', {}, '{now}')",
            wrapped.kek_id,
            blob(conn, &wrapped.bytes)
        ),
        format!(
            "INSERT INTO customer_fields (customer_id, name, legacy_value, sealed, updated_at) VALUES {}",
            fields.join(", ")
        ),
    ];
    in_transaction(conn, |c| {
        for s in &statements {
            diesel::sql_query(s).execute(c)?;
        }
        Ok(())
    })
}

/// What a firm `GET /rate` does in the store with a liquidity cap on its
/// buy asset: the asset's lock (PostgreSQL; SQLite's write lock serves),
/// what live quotes hold (the later seconds of `liquidity_holds`, the
/// quotes ending in the current second, the quotes outside the holds), the
/// quote's second in `liquidity_holds` read and written, the quote and its
/// fee details inserted.
pub(super) fn raw_quote(conn: &mut AnyConnection, asset: &str) -> anyhow::Result<()> {
    let id = uuid::Uuid::new_v4().to_string();
    let at = chrono::Utc::now().naive_utc();
    let fmt = |t: chrono::NaiveDateTime| t.format("%Y-%m-%d %H:%M:%S%.6f").to_string();
    let whole = |t: chrono::NaiveDateTime| {
        chrono::Timelike::with_nanosecond(&t, 0).unwrap_or(t) + chrono::Duration::seconds(1)
    };
    let expires = at + chrono::Duration::seconds(300);
    let (now, edge, expires, ends) = (fmt(at), fmt(whole(at)), fmt(expires), fmt(whole(expires)));
    in_transaction(conn, |c| {
        if let AnyConnection::Postgresql(_) = c {
            diesel::sql_query(format!(
                "SELECT pg_advisory_xact_lock(hashtextextended('mooring:liquidity:{asset}', 0))"
            ))
            .execute(c)?;
        }
        let mut sum = rust_decimal::Decimal::ZERO;
        for sql in [
            format!(
                "SELECT held AS buy_amount FROM liquidity_holds WHERE asset = '{asset}' AND ends_at > '{edge}'"
            ),
            format!(
                "SELECT buy_amount FROM quotes WHERE buy_asset = '{asset}' AND used_by IS NULL \
                 AND expires_at > '{now}' AND expires_at <= '{edge}'"
            ),
            format!(
                "SELECT buy_amount FROM quotes WHERE buy_asset = '{asset}' AND used_by IS NULL \
                 AND NOT in_holds AND expires_at > '{edge}'"
            ),
        ] {
            let held: Vec<Amount> = diesel::sql_query(sql).load(c)?;
            for a in &held {
                sum += a.buy_amount.parse::<rust_decimal::Decimal>()?;
            }
        }
        std::hint::black_box(sum);
        let second: Vec<Amount> = diesel::sql_query(format!(
            "SELECT held AS buy_amount FROM liquidity_holds WHERE asset = '{asset}' AND ends_at = '{ends}'"
        ))
        .load(c)?;
        let hold = match second.first() {
            Some(a) => format!(
                "UPDATE liquidity_holds SET held = '{}' WHERE asset = '{asset}' AND ends_at = '{ends}'",
                a.buy_amount.parse::<rust_decimal::Decimal>()?
                    + rust_decimal::Decimal::new(53865, 2)
            ),
            None => format!(
                "INSERT INTO liquidity_holds (asset, ends_at, held) VALUES ('{asset}', '{ends}', '538.65')"
            ),
        };
        diesel::sql_query(hold).execute(c)?;
        diesel::sql_query(format!(
            "INSERT INTO quotes (id, sell_asset, buy_asset, price, sell_amount, buy_amount, fee_total, fee_asset, \
             buy_delivery_method, created_at, expires_at, in_holds) VALUES ('{id}', 'stellar:USDC:GBBD47IF6LWK7P7MDEVSCWR7DPUWV3NY3DTQEVFL4NAT4AQH3ZLLFLA5', \
             '{asset}', '5.4', '100', '538.65', '1.5', 'stellar:USDC:GBBD47IF6LWK7P7MDEVSCWR7DPUWV3NY3DTQEVFL4NAT4AQH3ZLLFLA5', \
             NULL, '{now}', '{expires}', TRUE)"
        ))
        .execute(c)?;
        for (position, name) in ["Service fee", "Markup"].iter().enumerate() {
            diesel::sql_query(format!(
                "INSERT INTO quote_fee_details (quote_id, position, name, description, amount) \
                 VALUES ('{id}', {position}, '{name}', NULL, '0.75')"
            ))
            .execute(c)?;
        }
        Ok(())
    })
}
