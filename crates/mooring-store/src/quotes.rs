//! The quote store: firm quotes, their fee details, and the liquidity the
//! unexpired, unused ones reserve.
//!
//! A quote made under a liquidity cap adds its amount to the asset's row in
//! `liquidity_holds` for the whole second its hold ends in, so that the
//! next reservation reads the live seconds rather than every live quote;
//! using the quote takes the amount off. The second the clock is in is
//! summed quote by quote, so a hold ends exactly at its quote's expiry.

use std::str::FromStr;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDateTime, SubsecRound, Utc};
use diesel::prelude::*;
use mooring_domain::AssetId;
use mooring_domain::quote::{Fee, FeeDetail, Priced, Quote, QuoteId};
use mooring_ports::{QuoteStore, QuoteStoreError};
use rust_decimal::Decimal;

use crate::conn::{Bind, CachedSql, lock_key, lock_row, write_tx};
use crate::error::Failure;
use crate::schema::{liquidity_holds, quote_fee_details, quotes};
use crate::{AnyConnection, Store};

impl From<Failure> for QuoteStoreError {
    fn from(f: Failure) -> Self {
        match f {
            Failure::NotFound => Self::NotFound,
            Failure::Expired => Self::Expired,
            Failure::AlreadyUsed(transaction_id) => Self::AlreadyUsed { transaction_id },
            Failure::InsufficientLiquidity => Self::InsufficientLiquidity,
            other => Self::Unknown(other.unknown()),
        }
    }
}

#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = quotes)]
struct QuoteRow {
    id: String,
    sell_asset: String,
    buy_asset: String,
    price: String,
    sell_amount: String,
    buy_amount: String,
    fee_total: String,
    fee_asset: String,
    sell_delivery_method: Option<String>,
    buy_delivery_method: Option<String>,
    country_code: Option<String>,
    client_id: Option<String>,
    created_at: NaiveDateTime,
    expires_at: NaiveDateTime,
    used_by: Option<String>,
    used_at: Option<NaiveDateTime>,
    in_holds: bool,
}

#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = quote_fee_details)]
struct DetailRow {
    quote_id: String,
    position: i32,
    name: String,
    description: Option<String>,
    amount: String,
}

/// The whole second a hold ending at `t` is summed in: `t` rounded up.
fn hold_end(t: NaiveDateTime) -> NaiveDateTime {
    let whole = t.trunc_subsecs(0);
    if whole == t {
        whole
    } else {
        whole + chrono::Duration::seconds(1)
    }
}

fn to_row(q: &Quote, in_holds: bool) -> QuoteRow {
    QuoteRow {
        id: q.id.to_string(),
        sell_asset: q.sell_asset.to_string(),
        buy_asset: q.buy_asset.to_string(),
        price: q.priced.price.to_string(),
        sell_amount: q.priced.sell_amount.to_string(),
        buy_amount: q.priced.buy_amount.to_string(),
        fee_total: q.priced.fee.total.to_string(),
        fee_asset: q.priced.fee.asset.to_string(),
        sell_delivery_method: q.sell_delivery_method.clone(),
        buy_delivery_method: q.buy_delivery_method.clone(),
        country_code: q.country_code.clone(),
        client_id: q.client_id.clone(),
        created_at: q.created_at.naive_utc(),
        // Kept to the microsecond on both backends: its second in
        // liquidity_holds is computed from what is stored.
        expires_at: q.expires_at.trunc_subsecs(6).naive_utc(),
        used_by: q.used_by.clone(),
        used_at: q.used_at.map(|t| t.naive_utc()),
        in_holds,
    }
}

fn from_rows(row: QuoteRow, details: Vec<DetailRow>) -> Result<Quote, Failure> {
    let corrupt = |reason: String| Failure::Corrupt {
        what: "quote",
        id: row.id.clone(),
        reason,
    };
    let decimal = |s: &str| Decimal::from_str(s).map_err(|e| corrupt(format!("{s:?}: {e}")));
    let asset = |s: &str| AssetId::parse(s).map_err(|e| corrupt(e.to_string()));
    let details = details
        .into_iter()
        .map(|d| {
            Ok(FeeDetail {
                amount: decimal(&d.amount)?,
                name: d.name,
                description: d.description,
            })
        })
        .collect::<Result<Vec<_>, Failure>>()?;
    Ok(Quote {
        id: QuoteId::parse(&row.id).map_err(|e| corrupt(e.to_string()))?,
        sell_asset: asset(&row.sell_asset)?,
        buy_asset: asset(&row.buy_asset)?,
        priced: Priced {
            price: decimal(&row.price)?,
            sell_amount: decimal(&row.sell_amount)?,
            buy_amount: decimal(&row.buy_amount)?,
            fee: Fee {
                total: decimal(&row.fee_total)?,
                asset: asset(&row.fee_asset)?,
                details,
            },
        },
        sell_delivery_method: row.sell_delivery_method,
        buy_delivery_method: row.buy_delivery_method,
        country_code: row.country_code,
        client_id: row.client_id,
        created_at: row.created_at.and_utc(),
        expires_at: row.expires_at.and_utc(),
        used_by: row.used_by,
        used_at: row.used_at.map(|t| t.and_utc()),
    })
}

fn load(conn: &mut AnyConnection, id: &str) -> Result<Option<Quote>, Failure> {
    let Some(row) = quotes::table
        .find(id)
        .select(QuoteRow::as_select())
        .first(conn)
        .optional()?
    else {
        return Ok(None);
    };
    let details = quote_fee_details::table
        .filter(quote_fee_details::quote_id.eq(id))
        .order(quote_fee_details::position)
        .select(DetailRow::as_select())
        .load(conn)?;
    from_rows(row, details).map(Some)
}

fn decimal_of(asset: &str, text: &str) -> Result<Decimal, Failure> {
    Decimal::from_str(text).map_err(|e| Failure::Corrupt {
        what: "quote",
        id: format!("(a {asset} hold)"),
        reason: e.to_string(),
    })
}

fn overflow(asset: &str) -> Failure {
    Failure::Corrupt {
        what: "quote",
        id: format!("(the {asset} quotes)"),
        reason: "reserved amounts overflow".into(),
    }
}

fn sum_of(asset: &str, amounts: &[String]) -> Result<Decimal, Failure> {
    amounts.iter().try_fold(Decimal::ZERO, |sum, a| {
        sum.checked_add(decimal_of(asset, a)?)
            .ok_or_else(|| overflow(asset))
    })
}

/// The live quotes outside the holds that end after the current second:
/// `NOT in_holds` written in the SQL, not bound as `false`, so that the
/// planner can use the partial index on exactly these rows (a test reads
/// the plan).
const OUTSIDE_HOLDS: &str = "SELECT buy_amount FROM quotes \
     WHERE buy_asset = ? AND used_by IS NULL AND NOT in_holds AND expires_at > ?";

#[derive(QueryableByName)]
struct BuyAmount {
    #[diesel(sql_type = diesel::sql_types::Text)]
    buy_amount: String,
}

/// What the live (unexpired, unused) quotes of `asset` hold at `now`: the
/// seconds of `liquidity_holds` after the one `now` is in, whole; the
/// quotes ending in that second, one by one; and the live quotes outside
/// the holds (made without a cap, or before the holds existed), one by one.
/// The three are disjoint, and each reads through its own index.
fn reserved(conn: &mut AnyConnection, asset: &str, now: NaiveDateTime) -> Result<Decimal, Failure> {
    let edge = hold_end(now);
    let seconds: Vec<String> = liquidity_holds::table
        .filter(liquidity_holds::asset.eq(asset))
        .filter(liquidity_holds::ends_at.gt(edge))
        .select(liquidity_holds::held)
        .load(conn)?;
    let ending: Vec<String> = quotes::table
        .filter(quotes::buy_asset.eq(asset))
        .filter(quotes::used_by.is_null())
        .filter(quotes::expires_at.gt(now))
        .filter(quotes::expires_at.le(edge))
        .select(quotes::buy_amount)
        .load(conn)?;
    let outside: Vec<String> =
        CachedSql::typed(OUTSIDE_HOLDS, vec![Bind::Text(asset), Bind::Time(edge)])
            .load::<BuyAmount>(conn)?
            .into_iter()
            .map(|r| r.buy_amount)
            .collect();
    let parts = [
        sum_of(asset, &seconds)?,
        sum_of(asset, &ending)?,
        sum_of(asset, &outside)?,
    ];
    parts
        .into_iter()
        .try_fold(Decimal::ZERO, Decimal::checked_add)
        .ok_or_else(|| overflow(asset))
}

/// Adds `amount` (negative: takes it off) to what `asset`'s quotes ending
/// in the second `ends_at` hold. The caller holds the asset's liquidity
/// lock.
fn add_to_hold(
    conn: &mut AnyConnection,
    asset: &str,
    ends_at: NaiveDateTime,
    amount: Decimal,
) -> Result<(), Failure> {
    let row = liquidity_holds::table.find((asset, ends_at));
    let current: Option<String> = row.select(liquidity_holds::held).first(conn).optional()?;
    match current {
        None => {
            diesel::insert_into(liquidity_holds::table)
                .values((
                    liquidity_holds::asset.eq(asset),
                    liquidity_holds::ends_at.eq(ends_at),
                    liquidity_holds::held.eq(amount.max(Decimal::ZERO).to_string()),
                ))
                .execute(conn)?;
        }
        Some(current) => {
            let mut after = decimal_of(asset, &current)?
                .checked_add(amount)
                .ok_or_else(|| overflow(asset))?;
            if after < Decimal::ZERO {
                // Only a hold changed outside this module could get here;
                // holding too little would over-commit, so it stays at zero.
                tracing::warn!(asset, "a liquidity hold went below zero; kept at zero");
                after = Decimal::ZERO;
            }
            diesel::update(row)
                .set(liquidity_holds::held.eq(after.normalize().to_string()))
                .execute(conn)?;
        }
    }
    Ok(())
}

fn liquidity_lock(conn: &mut AnyConnection, asset: &str) -> Result<(), Failure> {
    // Writers reserving the same asset queue here, so the sum they read is
    // the sum they write against, and a hold's row changes one at a time.
    Ok(lock_key(conn, &format!("mooring:liquidity:{asset}"))?)
}

fn create_firm(
    conn: &mut AnyConnection,
    quote: &Quote,
    limit: Option<Decimal>,
    now: NaiveDateTime,
) -> Result<(), Failure> {
    let row = to_row(quote, limit.is_some());
    if let Some(limit) = limit {
        let asset = quote.buy_asset.as_str();
        liquidity_lock(conn, asset)?;
        let held = reserved(conn, asset, now)?;
        let after = held.checked_add(quote.priced.buy_amount);
        if after.is_none_or(|after| after > limit) {
            return Err(Failure::InsufficientLiquidity);
        }
        add_to_hold(
            conn,
            asset,
            hold_end(row.expires_at),
            quote.priced.buy_amount,
        )?;
    }
    diesel::insert_into(quotes::table)
        .values(row)
        .execute(conn)?;
    let details: Vec<DetailRow> = quote
        .priced
        .fee
        .details
        .iter()
        .enumerate()
        .map(|(i, d)| DetailRow {
            quote_id: quote.id.to_string(),
            position: i32::try_from(i).unwrap_or(i32::MAX),
            name: d.name.clone(),
            description: d.description.clone(),
            amount: d.amount.to_string(),
        })
        .collect();
    // One row at a time: batch inserts do not compile for both backends at once.
    for detail in &details {
        diesel::insert_into(quote_fee_details::table)
            .values(detail)
            .execute(conn)?;
    }
    Ok(())
}

fn mark_used(
    conn: &mut AnyConnection,
    id: &str,
    transaction_id: &str,
    now: NaiveDateTime,
) -> Result<Quote, Failure> {
    lock_row(conn, "quotes", "id", id)?;
    let mut quote = load(conn, id)?.ok_or(Failure::NotFound)?;
    match &quote.used_by {
        Some(t) if t == transaction_id => return Ok(quote),
        Some(t) => return Err(Failure::AlreadyUsed(t.clone())),
        None => {}
    }
    if quote.expires_at.naive_utc() <= now {
        return Err(Failure::Expired);
    }
    let in_holds: bool = quotes::table
        .find(id)
        .select(quotes::in_holds)
        .first(conn)?;
    if in_holds {
        // Its hold ends now. The liquidity lock after the quote's row: a
        // reservation takes no quote's row lock, so the two cannot cross.
        let asset = quote.buy_asset.as_str();
        liquidity_lock(conn, asset)?;
        add_to_hold(
            conn,
            asset,
            hold_end(quote.expires_at.naive_utc()),
            -quote.priced.buy_amount,
        )?;
    }
    diesel::update(quotes::table.find(id))
        .set((quotes::used_by.eq(transaction_id), quotes::used_at.eq(now)))
        .execute(conn)?;
    quote.used_by = Some(transaction_id.to_owned());
    quote.used_at = Some(now.and_utc());
    Ok(quote)
}

#[async_trait]
impl QuoteStore for Store {
    #[tracing::instrument(skip_all, fields(quote.id = %quote.id))]
    async fn create_firm(
        &self,
        quote: &Quote,
        limit: Option<Decimal>,
        now: DateTime<Utc>,
    ) -> Result<(), QuoteStoreError> {
        let quote = quote.clone();
        let now = now.naive_utc();
        Ok(self
            .run(move |conn| write_tx(conn, |c| create_firm(c, &quote, limit, now)))
            .await?)
    }

    #[tracing::instrument(skip_all, fields(quote.id = %id))]
    async fn get(&self, id: &QuoteId) -> Result<Option<Quote>, QuoteStoreError> {
        let id = id.to_string();
        Ok(self
            .run(move |conn| conn.transaction(|c| load(c, &id)))
            .await?)
    }

    #[tracing::instrument(skip_all, fields(quote.id = %id))]
    async fn mark_used(
        &self,
        id: &QuoteId,
        transaction_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Quote, QuoteStoreError> {
        let (id, transaction_id, now) =
            (id.to_string(), transaction_id.to_owned(), now.naive_utc());
        Ok(self
            .run(move |conn| write_tx(conn, |c| mark_used(c, &id, &transaction_id, now)))
            .await?)
    }

    #[tracing::instrument(skip_all)]
    async fn list(&self, limit: usize) -> Result<Vec<Quote>, QuoteStoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let quotes = self
            .run(move |conn| {
                conn.transaction(|c| {
                    let ids: Vec<String> = quotes::table
                        .order((quotes::created_at.desc(), quotes::id))
                        .limit(limit)
                        .select(quotes::id)
                        .load(c)?;
                    ids.iter()
                        .filter_map(|id| load(c, id).transpose())
                        .collect::<Result<Vec<_>, Failure>>()
                })
            })
            .await?;
        Ok(quotes)
    }

    #[tracing::instrument(skip_all)]
    async fn reserved(
        &self,
        asset: &AssetId,
        now: DateTime<Utc>,
    ) -> Result<Decimal, QuoteStoreError> {
        let (asset, now) = (asset.to_string(), now.naive_utc());
        Ok(self.run(move |conn| reserved(conn, &asset, now)).await?)
    }
}

#[cfg(test)]
mod tests {
    use diesel::Connection;

    use super::*;

    #[derive(QueryableByName)]
    struct Plan {
        #[diesel(sql_type = diesel::sql_types::Text)]
        detail: String,
    }

    #[test]
    fn the_quotes_outside_the_holds_are_read_through_their_index() {
        let mut conn =
            AnyConnection::Sqlite(diesel::SqliteConnection::establish(":memory:").expect("sqlite"));
        crate::migrate::run_pending(&mut conn).expect("migrate");
        let plan: Vec<Plan> = diesel::sql_query(format!(
            "EXPLAIN QUERY PLAN {}",
            OUTSIDE_HOLDS.replace('?', "'x'")
        ))
        .load(&mut conn)
        .expect("plan");
        assert!(
            plan.iter()
                .any(|p| p.detail.contains("quotes_outside_holds_idx")),
            "{:?}",
            plan.iter().map(|p| &p.detail).collect::<Vec<_>>()
        );
    }
}
