//! `--large`: what operators ask of a big anchor, on PostgreSQL with ten
//! million customers (seeded with one SQL statement): `GET /customer`'s
//! latency, and payouts per second against the simulator. Not in CI: the
//! seeding alone takes minutes.

use std::path::Path;
use std::time::{Duration, Instant};

use diesel::RunQueryDsl;
use serde_json::json;

use crate::load::closed_loop;

use super::engine::payouts;
use super::growth::{lookup, seed_customers};
use super::server::{Mooring, base_env, store};
use super::{Report, Timing, db};

pub(super) const LARGE_CUSTOMERS: usize = 10_000_000;

pub(super) async fn large(bin: &Path, t: &Timing, report: &mut Report) -> anyhow::Result<()> {
    eprintln!("bench: large: {LARGE_CUSTOMERS} customers on PostgreSQL");
    let db = db("postgres");
    let store = store(&db).await?;
    store.migrate().await?;
    let started = Instant::now();
    seed_customers(&store, 1, LARGE_CUSTOMERS).await?;
    store
        .with_connection(|c| diesel::sql_query("ANALYZE customers").execute(c))
        .await?;
    let seeding = started.elapsed();
    eprintln!("bench:   seeded in {:.0} s", seeding.as_secs_f64());
    let server = Mooring::start(bin, &base_env(&db)).await?;
    let c = 16;
    let read = closed_loop(
        &server.url(""),
        &lookup(LARGE_CUSTOMERS),
        c,
        t.warmup,
        t.run.max(Duration::from_secs(10)),
    )
    .await?;
    read.ensure_clean("GET /customer at ten million customers")?;
    drop(server);
    let rate = payouts(bin, "postgres", &db, t.payouts, report, "_large").await?;
    report.figures.insert(
        "postgres_large".into(),
        json!({"customers": LARGE_CUSTOMERS, "seeding_s": seeding.as_secs_f64(),
               "get_customer": read.json(), "payouts_per_s": rate}),
    );
    report.reported(
        &format!("GET /customer at {LARGE_CUSTOMERS} customers, PostgreSQL (hyper, c={c})"),
        format!(
            "{:.0} req/s, p50 {:.2} ms, p99 {:.2} ms",
            read.rps, read.p50_ms, read.p99_ms
        ),
    );
    report.reported(
        &format!("payouts end to end at {LARGE_CUSTOMERS} customers, PostgreSQL"),
        format!("{rate:.0}/s, each paid exactly once"),
    );
    Ok(())
}
