//! Mooring as the benchmarks run it: the release binary started on a free
//! port with encryption at rest on, stopped on drop; its RSS; and the
//! ready-after-start figure.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mooring_store::{DatabaseUrl, Store, StoreConfig};
use mooring_testsupport::TestDb;
use serde_json::json;

use super::{POOL_SIZE, Report, ms};

/// The `mooring` binary, started for one scenario, stopped on drop.
pub(super) struct Mooring {
    pub(super) child: Child,
    pub(super) port: u16,
    pub(super) ready_after: Duration,
}

impl Mooring {
    pub(super) async fn start(bin: &Path, env: &[(String, String)]) -> anyhow::Result<Self> {
        let port = free_port()?;
        let started = Instant::now();
        let child = Command::new(bin)
            .envs(env.iter().cloned())
            .env("MOORING__SERVER__HOST", "127.0.0.1")
            .env("MOORING__SERVER__PORT", port.to_string())
            // Several servers may run at once: the back office anywhere free.
            .env("MOORING__BACKOFFICE__BIND", "127.0.0.1:0")
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

    pub(super) fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Resident memory, in KiB; an error when it cannot be read (a figure
    /// of 0 MB would read as met).
    pub(super) fn rss_kib(&self) -> anyhow::Result<u64> {
        rss_kib(self.child.id())
            .ok_or_else(|| anyhow::anyhow!("the server's RSS could not be read"))
    }
}

/// A process's resident memory in KiB (`VmRSS`), `None` when unreadable.
pub(super) fn rss_kib(pid: u32) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

impl Drop for Mooring {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(super) fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

pub(super) fn base_env(db: &TestDb) -> Vec<(String, String)> {
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

pub(super) async fn store(db: &TestDb) -> anyhow::Result<Store> {
    Ok(Store::connect(StoreConfig {
        url: DatabaseUrl::parse(db.url())?,
        pool_size: POOL_SIZE,
        connect_timeout: Duration::from_secs(5),
    })
    .await?)
}

/// Samples the server's RSS every 50 ms until told to stop; the highest
/// seen (`None` if it could never be read).
pub(super) fn watch_rss(
    pid: u32,
) -> (
    tokio::sync::watch::Sender<bool>,
    tokio::task::JoinHandle<Option<u64>>,
) {
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(async move {
        let mut peak = None;
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

/// Ready after start on SQLite (a new database, then an existing one), and
/// the idle RSS.
pub(super) async fn startup(bin: &Path, report: &mut Report) -> anyhow::Result<()> {
    // A new database: the first start creates and migrates it.
    let db = TestDb::sqlite_empty();
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
    let idle_rss = idle.rss_kib()?;
    drop(idle);
    report.figures.insert(
        "startup".into(),
        json!({"ready_ms_new_database": ms(fresh_ready), "ready_ms_existing_database_median_of_5": ms(median),
               "idle_rss_kib": idle_rss}),
    );
    report.target(
        "start to ready, SQLite (existing database, median of 5)",
        format!("{:.1} ms", ms(median)),
        "≤ 20 ms",
        ms(median) <= 20.0,
    );
    report.reported(
        "start to ready, SQLite (new database: creates and migrates it)",
        format!("{:.1} ms", ms(fresh_ready)),
    );
    report.target(
        "RSS idle",
        format!("{:.1} MB", idle_rss as f64 / 1024.0),
        "≤ 15 MB",
        idle_rss as f64 / 1024.0 <= 15.0,
    );
    Ok(())
}
