//! `GET /customer` with 1,000 customers stored, then with many more: does a
//! read stay as fast as the table grows?

use std::path::Path;
use std::time::Instant;

use diesel::RunQueryDsl;
use mooring_store::{AnyConnection, Store};
use serde_json::json;

use crate::load::{Template, closed_loop};

use super::server::{Mooring, base_env, store};
use super::{ACCOUNT, Report, Timing, db};

/// Customers `from..=to` (memo = the number), without fields.
pub(super) async fn seed_customers(store: &Store, from: usize, to: usize) -> anyhow::Result<()> {
    store
        .with_connection(move |conn| {
            let sql = match conn {
                AnyConnection::Postgresql(_) => format!(
                    "INSERT INTO customers (id, account, memo, memo_type, customer_type, review, created_at, updated_at) \
                     SELECT '00000000-0000-4000-8000-' || lpad(g::text, 12, '0'), '{ACCOUNT}', g::text, 'id', 'sep31-sender', 'pending', now()::timestamp, now()::timestamp \
                     FROM generate_series({from}, {to}) AS g"
                ),
                AnyConnection::Sqlite(_) => format!(
                    "WITH RECURSIVE g(n) AS (SELECT {from} UNION ALL SELECT n + 1 FROM g WHERE n < {to}) \
                     INSERT INTO customers (id, account, memo, memo_type, customer_type, review, created_at, updated_at) \
                     SELECT printf('00000000-0000-4000-8000-%012d', n), '{ACCOUNT}', CAST(n AS TEXT), 'id', 'sep31-sender', 'pending', \
                     strftime('%Y-%m-%d %H:%M:%f', 'now'), strftime('%Y-%m-%d %H:%M:%f', 'now') FROM g"
                ),
            };
            diesel::sql_query(sql).execute(conn)
        })
        .await?;
    Ok(())
}

/// `GET /customer` of the sender customers `1..=size`, each request
/// another one.
pub(super) fn lookup(size: usize) -> Template {
    Template::get_spread(
        &format!("/customer?account={ACCOUNT}&memo_type=id&type=sep31-sender&memo="),
        size as u64,
    )
}

/// `GET /customer` with 1,000 customers stored, then with many more.
pub(super) async fn customer_growth(
    bin: &Path,
    backend: &'static str,
    t: &Timing,
    report: &mut Report,
) -> anyhow::Result<()> {
    eprintln!("bench: GET /customer growth on {backend}");
    let db = db(backend);
    let server = Mooring::start(bin, &base_env(&db)).await?;
    let base = server.url("");
    let store = store(&db).await?;
    let small = 1_000;
    seed_customers(&store, 1, small).await?;
    let c = 16;
    let at_small = closed_loop(&base, &lookup(small), c, t.warmup, t.run).await?;
    at_small.ensure_clean("GET /customer at 1,000 customers")?;
    let started = Instant::now();
    seed_customers(&store, small + 1, t.customers_large).await?;
    if backend == "postgres" {
        store
            .with_connection(|c| diesel::sql_query("ANALYZE customers").execute(c))
            .await?;
    }
    let seeding = started.elapsed();
    let at_large = closed_loop(&base, &lookup(t.customers_large), c, t.warmup, t.run).await?;
    at_large.ensure_clean("GET /customer at many customers")?;
    let cost = at_small.rps / at_large.rps;
    report.figures.insert(
        format!("{backend}_get_customer_growth"),
        json!({"small": small, "large": t.customers_large, "seeding_s": seeding.as_secs_f64(),
               "at_small": at_small.json(), "at_large": at_large.json()}),
    );
    report.target(
        &format!(
            "GET /customer cost at {} vs {small} customers, {backend} (hyper, c={c})",
            t.customers_large
        ),
        format!(
            "{cost:.2}× ({:.0} vs {:.0} req/s; p99 {:.2} vs {:.2} ms)",
            at_large.rps, at_small.rps, at_large.p99_ms, at_small.p99_ms,
        ),
        "≤ 1.15×",
        cost <= 1.15,
    );
    Ok(())
}
