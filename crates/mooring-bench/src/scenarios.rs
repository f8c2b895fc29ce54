//! The benchmarks: what is measured, against which baseline, and the report.

use std::fmt::Write as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use diesel::RunQueryDsl;
use diesel::sql_types::Text;
use mooring_apsim::{SimAuth, Simulator};
use mooring_store::{AnyConnection, DatabaseUrl, Store, StoreConfig};
use mooring_testsupport::TestDb;
use serde_json::{Value, json};

use crate::load::{MakeRequest, Measured, closed_loop, open_loop, ops_per_second};

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
            }
        } else {
            Self {
                warmup: Duration::from_millis(500),
                run: Duration::from_secs(3),
                concurrencies: &[1, 16, 64],
                payouts: 3000,
                poll_history: 100_000,
                customers_large: 1_000_000,
            }
        }
    }
}

/// One HTTP figure beside the no-op route at the same concurrency.
pub struct HttpRow {
    backend: &'static str,
    route: &'static str,
    concurrency: usize,
    measured: Measured,
    baseline: Measured,
}

/// One figure read against its target.
pub struct Target {
    name: String,
    measured: String,
    target: String,
    met: bool,
}

pub struct Report {
    environment: Value,
    http: Vec<HttpRow>,
    targets: Vec<Target>,
    figures: serde_json::Map<String, Value>,
}

/// The `mooring` binary, started for one scenario, stopped on drop.
struct Mooring {
    child: Child,
    port: u16,
    ready_after: Duration,
}

impl Mooring {
    async fn start(bin: &Path, env: &[(String, String)]) -> anyhow::Result<Self> {
        let port = free_port()?;
        let started = Instant::now();
        let child = Command::new(bin)
            .envs(env.iter().cloned())
            .env("MOORING__SERVER__HOST", "127.0.0.1")
            .env("MOORING__SERVER__PORT", port.to_string())
            // MOORING_BENCH_LOG=info shows the server's work (stderr).
            .env(
                "MOORING__LOG__LEVEL",
                std::env::var("MOORING_BENCH_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()?;
        let mut m = Self {
            child,
            port,
            ready_after: Duration::ZERO,
        };
        let client = reqwest::Client::new();
        let deadline = started + Duration::from_secs(60);
        loop {
            if let Ok(r) = client.get(m.url("/ready")).send().await
                && r.status().is_success()
            {
                m.ready_after = started.elapsed();
                return Ok(m);
            }
            anyhow::ensure!(Instant::now() < deadline, "mooring did not become ready");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Resident memory, in KiB.
    fn rss_kib(&self) -> u64 {
        rss_kib(self.child.id())
    }
}

/// A process's resident memory in KiB (`VmRSS`), 0 when unreadable.
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

impl Drop for Mooring {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn base_env(db: &TestDb) -> Vec<(String, String)> {
    vec![
        ("DATABASE_URL".into(), db.url().to_owned()),
        ("MOORING__PLATFORM__ENABLED".into(), "false".into()),
        ("MOORING__DATABASE__POOL_SIZE".into(), POOL_SIZE.to_string()),
        ("CALLBACK_API_AUTH_TYPE".into(), "none".into()),
        // Encryption at rest on, as it ships (on SQLite too: a key set).
        (
            "MOORING__PII__KEY".into(),
            mooring_testsupport::TEST_PII_KEY.into(),
        ),
    ]
}

async fn store(db: &TestDb) -> anyhow::Result<Store> {
    Ok(Store::connect(StoreConfig {
        url: DatabaseUrl::parse(db.url())?,
        pool_size: POOL_SIZE,
        connect_timeout: Duration::from_secs(5),
    })
    .await?)
}

/// Samples the server's RSS until told to stop; the highest seen.
fn watch_rss(
    pid: u32,
) -> (
    tokio::sync::watch::Sender<bool>,
    tokio::task::JoinHandle<u64>,
) {
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(async move {
        let mut peak = 0;
        loop {
            peak = peak.max(rss_kib(pid));
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(50)) => {}
                _ = stopped.changed() => return peak,
            }
        }
    });
    (stop, task)
}

fn get(url: String) -> MakeRequest {
    Arc::new(move |c: &reqwest::Client, _| c.get(&url))
}

fn put_json(url: String, receiver: bool) -> MakeRequest {
    Arc::new(move |c: &reqwest::Client, n| {
        let mut body = json!({"account": ACCOUNT, "memo": (1_000_000_000 + n).to_string(),
            "memo_type": "id", "type": "sep31-sender",
            "first_name": "John", "last_name": "Doe", "email_address": "john@example.com"});
        if receiver {
            body["type"] = json!("sep31-receiver");
        }
        c.put(&url).json(&body)
    })
}

fn put_multipart(url: String) -> MakeRequest {
    let photo = vec![0xA5u8; 1024];
    Arc::new(move |c: &reqwest::Client, n| {
        let form = reqwest::multipart::Form::new()
            .text("account", ACCOUNT)
            .text("memo", (2_000_000_000 + n).to_string())
            .text("memo_type", "id")
            .text("type", "sep31-sender")
            .text("first_name", "John")
            .text("last_name", "Doe")
            .text("email_address", "john@example.com")
            .part(
                "photo_id_front",
                reqwest::multipart::Part::bytes(photo.clone()).file_name("id.png"),
            );
        c.put(&url).multipart(form)
    })
}

#[derive(diesel::QueryableByName)]
#[allow(dead_code)]
struct CustomerRow {
    #[diesel(sql_type = Text)]
    id: String,
    #[diesel(sql_type = Text)]
    review: String,
}

#[derive(diesel::QueryableByName)]
#[allow(dead_code)]
struct FieldRow {
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Text)]
    value: String,
}

/// What `GET /customer` reads, as raw SQL: the customer by account and
/// memo, then its fields.
fn raw_select(conn: &mut AnyConnection, memo: &str) -> Result<usize, diesel::result::Error> {
    let rows: Vec<CustomerRow> = diesel::sql_query(format!(
        "SELECT id, review FROM customers WHERE account = '{ACCOUNT}' AND memo = '{memo}'"
    ))
    .load(conn)?;
    let Some(c) = rows.first() else {
        return Ok(0);
    };
    let fields: Vec<FieldRow> = diesel::sql_query(format!(
        "SELECT name, value FROM customer_fields WHERE customer_id = '{}'",
        c.id
    ))
    .load(conn)?;
    Ok(1 + fields.len())
}

/// What `PUT /customer` writes for a new sender, as raw SQL: the customer
/// and three fields, in one transaction.
fn raw_insert(conn: &mut AnyConnection, n: u64) -> Result<(), diesel::result::Error> {
    let now = "2026-01-01 00:00:00";
    let id = uuid::Uuid::new_v4();
    let memo = 3_000_000_000u64 + n;
    let statements = [
        format!(
            "INSERT INTO customers (id, account, memo, memo_type, customer_type, review, created_at, updated_at) \
             VALUES ('{id}', '{ACCOUNT}', '{memo}', 'id', 'sep31-sender', 'pending', '{now}', '{now}')"
        ),
        format!(
            "INSERT INTO customer_fields (customer_id, name, value, updated_at) VALUES \
             ('{id}', 'first_name', 'John', '{now}'), ('{id}', 'last_name', 'Doe', '{now}'), \
             ('{id}', 'email_address', 'john@example.com', '{now}')"
        ),
    ];
    match conn {
        AnyConnection::Postgresql(c) => diesel::Connection::transaction(c, |c| {
            for s in &statements {
                diesel::sql_query(s).execute(c)?;
            }
            Ok(())
        }),
        AnyConnection::Sqlite(c) => {
            diesel::connection::SimpleConnection::batch_execute(c, "BEGIN IMMEDIATE")?;
            let result = statements
                .iter()
                .try_for_each(|s| diesel::sql_query(s).execute(c).map(|_| ()));
            let end = if result.is_ok() { "COMMIT" } else { "ROLLBACK" };
            diesel::connection::SimpleConnection::batch_execute(c, end)?;
            result
        }
    }
}

/// Customers `from..=to` (memo = the number), without fields.
async fn seed_customers(store: &Store, from: usize, to: usize) -> anyhow::Result<()> {
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

pub async fn run(bin: &Path, quick: bool, only: Option<&str>) -> anyhow::Result<Report> {
    let t = Timing::new(quick);
    let on = |name: &str| only.is_none_or(|o| o == name);
    let mut report = Report {
        environment: environment(),
        http: Vec::new(),
        targets: Vec::new(),
        figures: serde_json::Map::new(),
    };
    if on("startup") {
        startup(bin, &mut report).await?;
    }
    for backend in ["sqlite", "postgres"] {
        if on("http") {
            http(bin, backend, &t, &mut report).await?;
        }
        if on("growth") {
            customer_growth(bin, backend, &t, &mut report).await?;
        }
    }
    if on("engine") {
        engine(bin, &t, &mut report).await?;
    }
    if on("poll") {
        poll_growth(&t, &mut report).await?;
    }
    Ok(report)
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

/// Ready after start on SQLite (a new database, then an existing one), and
/// the idle RSS.
async fn startup(bin: &Path, report: &mut Report) -> anyhow::Result<()> {
    let db = TestDb::sqlite();
    let fresh = Mooring::start(bin, &base_env(&db)).await?;
    let fresh_ready = fresh.ready_after;
    drop(fresh);
    let mut existing = Vec::new();
    for _ in 0..5 {
        existing.push(Mooring::start(bin, &base_env(&db)).await?.ready_after);
    }
    existing.sort();
    let median = existing[existing.len() / 2];
    let idle = Mooring::start(bin, &base_env(&db)).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle_rss = idle.rss_kib();
    drop(idle);
    report.figures.insert(
        "startup".into(),
        json!({"ready_ms_new_database": ms(fresh_ready), "ready_ms_existing_database_median_of_5": ms(median),
               "idle_rss_kib": idle_rss}),
    );
    report.target(
        "ready after start, SQLite (existing database, median of 5)",
        format!("{:.1} ms", ms(median)),
        "≤ 100 ms",
        ms(median) <= 100.0,
    );
    report.target(
        "ready after start, SQLite (new database: creates and migrates it)",
        format!("{:.1} ms", ms(fresh_ready)),
        "(no target)",
        true,
    );
    report.target(
        "RSS idle",
        format!("{:.1} MB", idle_rss as f64 / 1024.0),
        "≤ 15 MB",
        idle_rss as f64 / 1024.0 <= 15.0,
    );
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

async fn http(
    bin: &Path,
    backend: &'static str,
    t: &Timing,
    report: &mut Report,
) -> anyhow::Result<()> {
    eprintln!("bench: HTTP on {backend}");
    let db = db(backend);
    let server = Mooring::start(bin, &base_env(&db)).await?;
    let client = reqwest::Client::new();
    let seeded = client
        .put(server.url("/customer"))
        .json(
            &json!({"account": ACCOUNT, "memo": "1", "memo_type": "id", "type": "sep31-sender",
            "first_name": "John", "last_name": "Doe", "email_address": "john@example.com"}),
        )
        .send()
        .await?;
    anyhow::ensure!(seeded.status().is_success(), "seeding a customer failed");
    let rate = |kind: &str| {
        server.url(&format!(
            "/rate?type={kind}&sell_asset={USDC}&buy_asset=iso4217:BRL&sell_amount=100"
        ))
    };
    let routes: Vec<(&'static str, MakeRequest)> = vec![
        ("GET /rate (indicative)", get(rate("indicative"))),
        ("GET /rate (firm)", get(rate("firm"))),
        (
            "GET /customer",
            get(server.url(&format!(
                "/customer?account={ACCOUNT}&memo=1&memo_type=id&type=sep31-sender"
            ))),
        ),
        (
            "PUT /customer (JSON)",
            put_json(server.url("/customer"), false),
        ),
        (
            "PUT /customer (multipart)",
            put_multipart(server.url("/customer")),
        ),
    ];
    let (stop, peak) = watch_rss(server.child.id());
    let mut peak_indicative: f64 = 0.0;
    for &c in t.concurrencies {
        let baseline = closed_loop(get(server.url("/health")), c, t.warmup, t.run).await;
        for (route, make) in &routes {
            let measured = closed_loop(make.clone(), c, t.warmup, t.run).await;
            if *route == "GET /rate (indicative)" {
                peak_indicative = peak_indicative.max(measured.rps);
            }
            eprintln!(
                "bench:   {route} c={c}: {:.0} req/s (no-op {:.0}), p99 {:.2} ms, errors {}",
                measured.rps, baseline.rps, measured.p99_ms, measured.errors
            );
            report.http.push(HttpRow {
                backend,
                route,
                concurrency: c,
                measured,
                baseline: baseline.clone(),
            });
        }
    }
    // Latency at half of the indicative rate's peak, open loop.
    let half = open_loop(routes[0].1.clone(), peak_indicative / 2.0, t.run).await;
    let _ = stop.send(true);
    let loaded_rss = peak.await.unwrap_or(0);
    report.figures.insert(
        format!("{backend}_rate_indicative_at_half_peak"),
        json!({"rate": peak_indicative / 2.0, "measured": half.json()}),
    );
    report
        .figures
        .insert(format!("{backend}_loaded_rss_kib"), json!(loaded_rss));
    let ratio = best(&report.http, backend, "GET /rate (indicative)", &|r| {
        r.measured.rps / r.baseline.rps.max(1.0)
    });
    report.target(
        &format!("GET /rate indicative vs the no-op route, {backend} (best concurrency)"),
        format!("{ratio:.2}×"),
        "≥ 0.6×",
        ratio >= 0.6,
    );
    report.target(
        &format!(
            "GET /rate indicative p99 at half of peak ({:.0} req/s), {backend}",
            peak_indicative / 2.0
        ),
        format!("{:.2} ms (at {:.0} req/s achieved)", half.p99_ms, half.rps),
        "≤ 2 ms",
        half.p99_ms <= 2.0 && half.errors == 0,
    );
    report.target(
        &format!("RSS under load, {backend}"),
        format!("{:.1} MB", loaded_rss as f64 / 1024.0),
        "≤ 64 MB",
        loaded_rss as f64 / 1024.0 <= 64.0,
    );

    // The store's own speed through the same pool: the raw loops.
    let store = store(&db).await?;
    let c = *t.concurrencies.last().unwrap_or(&16);
    let s = store.clone();
    let select = ops_per_second(
        move |_| {
            let s = s.clone();
            async move {
                s.with_connection(|c| raw_select(c, "1"))
                    .await
                    .is_ok_and(|n| n > 0)
            }
        },
        c,
        t.run,
    )
    .await;
    let s = store.clone();
    let insert = ops_per_second(
        move |n| {
            let s = s.clone();
            async move { s.with_connection(move |c| raw_insert(c, n)).await.is_ok() }
        },
        c,
        t.run,
    )
    .await;
    let at_c = |r: &HttpRow| {
        if r.concurrency == c {
            r.measured.rps
        } else {
            0.0
        }
    };
    let get_rps = best(&report.http, backend, "GET /customer", &at_c);
    let put_rps = best(&report.http, backend, "PUT /customer (JSON)", &at_c);
    report.figures.insert(
        format!("{backend}_store_baseline"),
        json!({"concurrency": c, "raw_select_per_s": select, "raw_insert_per_s": insert,
               "get_customer_rps": get_rps, "put_customer_rps": put_rps}),
    );
    let target = if backend == "postgres" {
        "≥ 0.7×"
    } else {
        "(reported)"
    };
    report.target(
        &format!("GET /customer vs raw select loop, {backend}, c={c}"),
        format!(
            "{:.2}× ({get_rps:.0} vs {select:.0}/s)",
            get_rps / select.max(1.0)
        ),
        target,
        backend != "postgres" || get_rps / select.max(1.0) >= 0.7,
    );
    report.target(
        &format!("PUT /customer vs raw insert loop, {backend}, c={c}"),
        format!(
            "{:.2}× ({put_rps:.0} vs {insert:.0}/s)",
            put_rps / insert.max(1.0)
        ),
        target,
        backend != "postgres" || put_rps / insert.max(1.0) >= 0.7,
    );
    Ok(())
}

/// The highest `f` over one backend's rows of one route.
fn best(rows: &[HttpRow], backend: &str, route: &str, f: &dyn Fn(&HttpRow) -> f64) -> f64 {
    rows.iter()
        .filter(|r| r.backend == backend && r.route == route)
        .map(f)
        .fold(0.0, f64::max)
}

/// `GET /customer` with 1,000 customers stored, then with many more.
async fn customer_growth(
    bin: &Path,
    backend: &'static str,
    t: &Timing,
    report: &mut Report,
) -> anyhow::Result<()> {
    eprintln!("bench: GET /customer growth on {backend}");
    let db = db(backend);
    let server = Mooring::start(bin, &base_env(&db)).await?;
    let store = store(&db).await?;
    let small = 1_000;
    seed_customers(&store, 1, small).await?;
    let lookup = |size: usize| -> MakeRequest {
        let base = server.url(&format!(
            "/customer?account={ACCOUNT}&memo_type=id&type=sep31-sender&memo="
        ));
        Arc::new(move |c: &reqwest::Client, n| {
            // Spread over every stored customer.
            let memo = 1 + (n.wrapping_mul(2_654_435_761) % size as u64);
            c.get(format!("{base}{memo}"))
        })
    };
    let c = 16;
    let at_small = closed_loop(lookup(small), c, t.warmup, t.run).await;
    let started = Instant::now();
    seed_customers(&store, small + 1, t.customers_large).await?;
    if backend == "postgres" {
        store
            .with_connection(|c| diesel::sql_query("ANALYZE customers").execute(c))
            .await?;
    }
    let seeding = started.elapsed();
    let at_large = closed_loop(lookup(t.customers_large), c, t.warmup, t.run).await;
    let cost = at_small.rps / at_large.rps.max(1.0);
    let clean = at_small.errors == 0 && at_large.errors == 0 && at_large.rps > 0.0;
    report.figures.insert(
        format!("{backend}_get_customer_growth"),
        json!({"small": small, "large": t.customers_large, "seeding_s": seeding.as_secs_f64(),
               "at_small": at_small.json(), "at_large": at_large.json()}),
    );
    report.target(
        &format!(
            "GET /customer cost at {} vs {small} customers, {backend}",
            t.customers_large
        ),
        format!(
            "{cost:.2}× ({:.0} vs {:.0} req/s; p99 {:.2} vs {:.2} ms; errors {} and {})",
            at_large.rps,
            at_small.rps,
            at_large.p99_ms,
            at_small.p99_ms,
            at_large.errors,
            at_small.errors
        ),
        "≤ 1.2×",
        clean && cost <= 1.2,
    );
    Ok(())
}

/// Payouts per second end to end: the simulator's payments received at
/// once, paid through its provider, completed at the AP.
async fn engine(bin: &Path, t: &Timing, report: &mut Report) -> anyhow::Result<()> {
    for backend in ["sqlite", "postgres"] {
        eprintln!("bench: payment engine on {backend}");
        let sim = mooring_apsim::spawn(Simulator::new(false), SimAuth::None)?;
        let db = db(backend);
        let mut env = base_env(&db);
        env.retain(|(k, _)| {
            k != "MOORING__PLATFORM__ENABLED" && k != "MOORING__DATABASE__POOL_SIZE"
        });
        env.extend(
            [
                ("MOORING__PLATFORM__ENABLED", "true"),
                ("MOORING__PLATFORM__API", "rest"),
                ("MOORING__PLATFORM__POLL_INTERVAL_MS", "50"),
                ("MOORING__PLATFORM__PAGE_SIZE", "200"),
                ("MOORING__PAYOUT__RAIL", "http"),
                ("MOORING__PAYOUT__CONCURRENCY", "64"),
                ("MOORING__DATABASE__POOL_SIZE", "16"),
            ]
            .map(|(k, v)| (k.to_owned(), v.to_owned())),
        );
        env.push(("PLATFORM_API_BASE_URL".into(), sim.url.clone()));
        env.push(("MOORING__PAYOUT__HTTP__URL".into(), sim.rail_url()));
        let server = Mooring::start(bin, &env).await?;
        let receiver: Value = reqwest::Client::new()
            .put(server.url("/customer"))
            .json(&json!({"account": ACCOUNT, "memo": "7", "memo_type": "id", "type": "sep31-receiver",
                "first_name": "Maria", "last_name": "Silva", "email_address": "maria@example.com",
                "bank_account_number": "0001234567", "bank_account_type": "checking", "bank_number": "341"}))
            .send()
            .await?
            .json()
            .await?;
        let receiver = receiver["id"].as_str().unwrap_or_default().to_owned();
        let sender: Value = reqwest::Client::new()
            .put(server.url("/customer"))
            .json(
                &json!({"account": ACCOUNT, "memo": "8", "memo_type": "id", "type": "sep31-sender",
                "first_name": "Ana", "last_name": "Costa", "email_address": "ana@example.com"}),
            )
            .send()
            .await?
            .json()
            .await?;
        let sender = sender["id"].as_str().unwrap_or_default().to_owned();
        let ids: Vec<String> = (0..t.payouts)
            .map(|_| {
                sim.sim.create(json!({
                    "amount_expected": {"amount": "100", "asset": USDC},
                    "amount_in": {"amount": "100", "asset": USDC},
                    "amount_out": {"amount": "99", "asset": USDC},
                    "amount_fee": {"amount": "1", "asset": USDC},
                    "customers": {"sender": {"id": sender}, "receiver": {"id": receiver}},
                }))
            })
            .collect();
        let (stop, peak) = watch_rss(server.child.id());
        let started = Instant::now();
        for id in &ids {
            sim.sim.receive(id, None);
        }
        let deadline = started + Duration::from_secs(300);
        let completed = loop {
            let done = sim.sim.count_in(&ids, "completed");
            if done == ids.len() || Instant::now() > deadline {
                break done;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let elapsed = started.elapsed();
        let _ = stop.send(true);
        let rss = peak.await.unwrap_or(0);
        let mut per_tx = std::collections::BTreeMap::<String, usize>::new();
        for p in sim.sim.payouts() {
            *per_tx.entry(p.transaction_id).or_default() += 1;
        }
        let exactly_once =
            completed == ids.len() && ids.iter().all(|id| per_tx.get(id) == Some(&1));
        let rate = completed as f64 / elapsed.as_secs_f64();
        report.figures.insert(
            format!("{backend}_engine"),
            json!({"payments": ids.len(), "completed": completed, "seconds": elapsed.as_secs_f64(),
                   "payouts_per_s": rate, "exactly_once": exactly_once, "peak_rss_kib": rss}),
        );
        report.target(
            &format!(
                "payouts end to end against the simulator, {backend} ({} payments)",
                ids.len()
            ),
            format!(
                "{rate:.0}/s, {}",
                if exactly_once {
                    "each paid exactly once"
                } else {
                    "NOT exactly once"
                }
            ),
            "≥ 500/s, exactly once",
            rate >= 500.0 && exactly_once,
        );
        anyhow::ensure!(
            exactly_once,
            "a payment was not paid exactly once: {per_tx:?}"
        );
    }
    Ok(())
}

/// The steady-state poll (nothing new since the last one) with a small and
/// a large history at the AP, timed in-process: both set up first, then
/// rounds of polls alternating between them (the median round per size),
/// so that drift in the machine's speed hits both alike.
async fn poll_growth(t: &Timing, report: &mut Report) -> anyhow::Result<()> {
    eprintln!("bench: poll cost growth");
    let mut setups = Vec::new();
    for history in [1_000, t.poll_history] {
        let sim = mooring_apsim::spawn(Simulator::new(false), SimAuth::None)?;
        sim.sim.seed_history(history);
        let db = TestDb::postgres();
        let store = store(&db).await?;
        store.migrate().await?;
        // The ledger has paid the history (as after the first poll; a
        // `closed` entry is sighted again, by design).
        store
            .with_connection(move |c| {
                diesel::sql_query(format!(
                    "INSERT INTO payouts (transaction_id, state, attempt, told_pending, failures, created_at, updated_at, due_at) \
                     SELECT 'hist-' || lpad(g::text, 7, '0'), 'completed', 1, 0, 0, now()::timestamp, now()::timestamp, now()::timestamp \
                     FROM generate_series(0, {}) AS g",
                    history - 1
                ))
                .execute(c)
            })
            .await?;
        let engine = poll_engine(&sim.url, store);
        anyhow::ensure!(
            engine.poll().await? == 0,
            "the ledger knows the history: nothing is new"
        );
        for _ in 0..100 {
            engine.poll().await?;
        }
        setups.push((history, engine, sim, db));
    }
    let rounds = 7;
    let polls = 150u32;
    let mut per_size: Vec<Vec<f64>> = vec![Vec::new(); setups.len()];
    for _ in 0..rounds {
        for (i, (_, engine, _, _)) in setups.iter().enumerate() {
            let started = Instant::now();
            for _ in 0..polls {
                engine.poll().await?;
            }
            per_size[i].push(started.elapsed().as_secs_f64() * 1e6 / f64::from(polls));
        }
    }
    let medians: Vec<(usize, f64)> = setups
        .iter()
        .zip(per_size.iter_mut())
        .map(|((history, ..), us)| {
            us.sort_by(f64::total_cmp);
            (*history, us[us.len() / 2])
        })
        .collect();
    for (history, us) in &medians {
        eprintln!("bench:   history {history}: {us:.0} µs per poll");
    }
    let cost = medians[1].1 / medians[0].1;
    report.figures.insert(
        "poll_growth".into(),
        json!(
            medians
                .iter()
                .map(|(h, us)| json!({"history": h, "median_us_per_poll": us}))
                .collect::<Vec<_>>()
        ),
    );
    report.target(
        &format!(
            "poll cost at {} vs 1,000 transactions of history (PostgreSQL)",
            t.poll_history
        ),
        format!(
            "{cost:.2}× ({:.0} vs {:.0} µs per poll)",
            medians[1].1, medians[0].1
        ),
        "≤ 1.1×",
        cost <= 1.1,
    );
    Ok(())
}

/// A payment engine over `store` and the simulator at `url` (the poll uses
/// only the platform client and the ledger; the rest is inert).
fn poll_engine(url: &str, store: Store) -> mooring_usecases::PayoutEngine {
    use mooring_domain::AssetCatalog;
    use mooring_domain::customer::{CustomerTypes, ReviewMode};
    use mooring_domain::quote::{Pricing, QuoteLifetime};
    use mooring_platform::{ApiStyle, HttpPlatform, PlatformAuth, PlatformConfig};
    use mooring_ports::SystemClock;
    use mooring_usecases::{
        DepositService, EngineConfig, EngineParts, KycService, NoCustodian, QuoteService,
        QuoteServiceParts,
    };
    let platform = HttpPlatform::new(PlatformConfig {
        base_url: url.to_owned(),
        api: ApiStyle::Rest,
        auth: PlatformAuth::None,
        timeout: Duration::from_secs(5),
        max_attempts: 1,
        backoff_base: Duration::from_millis(10),
        backoff_max: Duration::from_millis(10),
    })
    .expect("a platform client");
    let pricing = Pricing::new(vec![], Default::default()).expect("empty pricing");
    let quotes = QuoteService::new(QuoteServiceParts {
        rates: Arc::new(mooring_rates::TableRates::from_pricing(&pricing)),
        pricing,
        assets: AssetCatalog::new([]),
        store: Arc::new(store.clone()),
        lifetime: QuoteLifetime {
            firm_ttl: chrono::Duration::seconds(300),
            max_ttl: chrono::Duration::seconds(3600),
        },
        liquidity: Default::default(),
        clock: Arc::new(SystemClock),
    });
    let kyc = KycService::new(
        Arc::new(store.clone()),
        CustomerTypes::builtin(),
        ReviewMode::Auto,
        mooring_usecases::AuditTrail::new(Arc::new(store.clone()), Arc::new(SystemClock)),
        Arc::new(SystemClock),
    );
    let mut config = EngineConfig::new("bench".into());
    config.page_size = 50;
    let ledger = Arc::new(store.clone());
    mooring_usecases::PayoutEngine::new(
        EngineParts {
            platform: Arc::new(platform),
            ledger: ledger.clone(),
            events: ledger.clone(),
            marks: ledger,
            rail: Arc::new(mooring_rails::SimulatedRail::new(Duration::ZERO, 0.0)),
            audit: kyc.audit().clone(),
            kyc,
            quotes,
            deposits: DepositService::new(Arc::new(NoCustodian), Arc::new(store)),
            clock: Arc::new(SystemClock),
        },
        config,
    )
}

impl Report {
    fn target(&mut self, name: &str, measured: String, target: &str, met: bool) {
        self.targets.push(Target {
            name: name.to_owned(),
            measured,
            target: target.to_owned(),
            met,
        });
    }

    pub fn json(&self) -> String {
        let http: Vec<Value> = self
            .http
            .iter()
            .map(|r| {
                json!({"backend": r.backend, "route": r.route, "concurrency": r.concurrency,
                       "measured": r.measured.json(), "no_op_route": r.baseline.json(),
                       "ratio_to_no_op": r.measured.rps / r.baseline.rps.max(1.0)})
            })
            .collect();
        let targets: Vec<Value> = self
            .targets
            .iter()
            .map(|t| json!({"figure": t.name, "measured": t.measured, "target": t.target, "met": t.met}))
            .collect();
        let mut out = serde_json::to_string_pretty(&json!({
            "environment": self.environment, "http": http, "targets": targets, "figures": self.figures,
        }))
        .unwrap_or_default();
        out.push('\n');
        out
    }

    pub fn markdown(&self, notes: &str) -> String {
        let mut md = String::new();
        let e = &self.environment;
        let _ = writeln!(
            md,
            "# Benchmarks\n\nWritten by `cargo xtask bench` (do not edit: the notes at the end come from \
             `docs/benchmarks-notes.md`). Raw figures: [`benchmarks.json`](benchmarks.json).\n\n\
             Run {} on commit `{}`: {} CPUs, {}, {}, {}. A release build driven over loopback by a \
             load generator in the same machine (reqwest on tokio), so client and server share the CPUs. \
             Each figure stands beside a baseline measured in the same run.\n",
            e["date"].as_str().unwrap_or("?"),
            e["commit"].as_str().unwrap_or("?"),
            e["cpus"],
            e["kernel"].as_str().unwrap_or("?"),
            e["rustc"].as_str().unwrap_or("?"),
            e["postgres"].as_str().unwrap_or("?"),
        );
        let _ = writeln!(
            md,
            "## Against the targets\n\n| figure | measured | target | |\n|---|---|---|---|"
        );
        for t in &self.targets {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} |",
                t.name,
                t.measured,
                t.target,
                if t.met { "met" } else { "**short**" }
            );
        }
        let _ = writeln!(
            md,
            "\n## HTTP\n\nRequests per second and latency (ms) at each concurrency (closed loop: each \
             worker sends its next request when the last is answered), beside the same server's no-op \
             route (`GET /health`) at the same concurrency. Every request answered 2xx unless errors say \
             otherwise.\n\n| backend | route | conc. | req/s | p50 | p99 | p99.9 | errors | no-op req/s | ratio |\n\
             |---|---|---|---|---|---|---|---|---|---|"
        );
        for r in &self.http {
            let m = &r.measured;
            let _ = writeln!(
                md,
                "| {} | {} | {} | {:.0} | {:.2} | {:.2} | {:.2} | {} | {:.0} | {:.2}× |",
                r.backend,
                r.route,
                r.concurrency,
                m.rps,
                m.p50_ms,
                m.p99_ms,
                m.p999_ms,
                m.errors,
                r.baseline.rps,
                m.rps / r.baseline.rps.max(1.0)
            );
        }
        let _ = writeln!(
            md,
            "\n## Other figures\n\n```json\n{}\n```\n",
            serde_json::to_string_pretty(&self.figures).unwrap_or_default()
        );
        if !notes.trim().is_empty() {
            md.push_str(notes.trim_end());
            md.push('\n');
        }
        md
    }
}
