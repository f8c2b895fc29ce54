//! The benchmarks: what is measured, against which baseline, and the report.
//! This file holds the plan ([`run`]) and what every scenario shares; each
//! room measures one thing: `server` starts Mooring and reads its memory
//! (and the ready-after-start figure), `http` the callbacks beside the no-op
//! route (the generator calibrated against wrk) and `baseline`'s raw SQL
//! loops (and what encryption costs), `growth` `GET /customer` as customers
//! accumulate, `soak` the RSS over millions of requests, `engine` payouts
//! end to end, `poll` the poll as the AP's history grows, `large` ten
//! million customers (`--large` only), `report` the report and its verdict.

mod baseline;
mod engine;
mod growth;
mod http;
mod large;
mod poll;
mod report;
mod server;
mod soak;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use mooring_testsupport::TestDb;
use serde_json::{Value, json};

use engine::engine;
use growth::customer_growth;
use http::{encryption, http};
use large::large;
use poll::poll_growth;
pub use report::Report;
use server::startup;
use soak::soak;

const ACCOUNT: &str = "GDJUOFZGW5WYBK4GIETCSSM6MTTIJ4SUMCQITPTLUWMQ6B4UIX2IEX47";
const USDC: &str = "stellar:USDC:GBBD47IF6LWK7P7MDEVSCWR7DPUWV3NY3DTQEVFL4NAT4AQH3ZLLFLA5";
const POOL_SIZE: u32 = 8;

/// How long each measurement runs.
struct Timing {
    warmup: Duration,
    run: Duration,
    concurrencies: &'static [usize],
    payouts: usize,
    poll_history: usize,
    customers_large: usize,
    soak_requests: u64,
}

impl Timing {
    fn new(quick: bool) -> Self {
        if quick {
            Self {
                warmup: Duration::from_millis(200),
                run: Duration::from_millis(800),
                concurrencies: &[1, 16],
                payouts: 300,
                poll_history: 10_000,
                customers_large: 50_000,
                soak_requests: 200_000,
            }
        } else {
            Self {
                warmup: Duration::from_millis(500),
                run: Duration::from_secs(3),
                concurrencies: &[1, 16, 64],
                payouts: 3000,
                poll_history: 100_000,
                customers_large: 1_000_000,
                soak_requests: 10_000_000,
            }
        }
    }
}

/// Runs the scenarios (`only` one of them; `large` adds ten million
/// customers). A scenario that fails is recorded as failed and the rest
/// still run; [`Report::verdict`] then fails the run.
pub async fn run(bin: &Path, quick: bool, only: Option<&str>, with_large: bool) -> Report {
    let t = Timing::new(quick);
    let on = |name: &str| only.is_none_or(|o| o == name);
    let mut report = Report::new(environment());
    macro_rules! scenario {
        ($name:expr, $run:expr) => {
            if let Err(e) = $run.await {
                report.fail(&$name, &e);
            }
        };
    }
    if on("startup") {
        scenario!("startup", startup(bin, &mut report));
    }
    for backend in ["sqlite", "postgres"] {
        if on("http") {
            scenario!(
                format!("http on {backend}"),
                http(bin, backend, &t, &mut report)
            );
        }
        if on("growth") {
            scenario!(
                format!("growth on {backend}"),
                customer_growth(bin, backend, &t, &mut report)
            );
        }
        if on("soak") {
            scenario!(
                format!("soak on {backend}"),
                soak(bin, backend, &t, &mut report)
            );
        }
    }
    if on("http") {
        scenario!("encryption", async { encryption(&t, &mut report) });
    }
    if on("engine") {
        scenario!("engine", engine(bin, &t, &mut report));
    }
    if on("poll") {
        scenario!("poll", poll_growth(&t, &mut report));
    }
    if with_large || only == Some("large") {
        scenario!("large", large(bin, &t, &mut report));
    }
    report
}

fn db(backend: &str) -> TestDb {
    if backend == "sqlite" {
        TestDb::sqlite()
    } else {
        TestDb::postgres()
    }
}

fn environment() -> Value {
    let cmd = |program: &str, args: &[&str]| {
        Command::new(program)
            .args(args)
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_default()
    };
    json!({
        "date": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "commit": cmd("git", &["rev-parse", "--short", "HEAD"]),
        "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "rustc": cmd("rustc", &["--version"]),
        "postgres": cmd("psql", &["--version"]),
        "kernel": cmd("uname", &["-sr"]),
    })
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
