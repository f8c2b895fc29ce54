//! `cargo xtask browser-test [--screenshots]`: the back office in a real
//! browser. Installs what it needs when it is missing (Debian's Chromium
//! with apt-get, when run as root; `playwright-core` with `npm ci` from the
//! committed lock file), starts the AP simulator and `mooring` (engine on,
//! manual KYC review, a fresh SQLite database under
//! `target/browser-test/`) on free loopback ports, adds the test's users
//! with `mooring users add`, and runs
//! `crates/mooring-backoffice/browser/backoffice.test.mjs`, which fails on
//! any failed assertion. `--screenshots` writes the pages' screenshots to
//! `docs/backoffice/` (committed, shown by docs/backoffice.md); without it
//! they go to `target/browser-test/screenshots/`.

use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{USDC_ISSUER as DISTRIBUTION, build_stack, root, run};

/// The password every test user gets (a throwaway database).
const PASSWORD: &str = "browser-test-password";
/// The users the scenarios sign in as.
const USERS: &[(&str, &str)] = &[
    ("rita", "reviewer"),
    ("olga", "operator"),
    ("otto", "operator"),
    ("vera", "viewer"),
    ("ada", "admin"),
];

struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> Result<u16, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free port: {e}"))
}

/// Debian's Chromium (or `CHROMIUM`), installed with apt-get when missing
/// and this runs as root.
fn chromium() -> Result<PathBuf, String> {
    if let Ok(path) = std::env::var("CHROMIUM") {
        return Ok(PathBuf::from(path));
    }
    let path = PathBuf::from("/usr/bin/chromium");
    crate::apt::ensure(&path, "chromium")
        .map_err(|e| format!("{e} (or set CHROMIUM to a Chromium binary)"))?;
    Ok(path)
}

/// `playwright-core`, from the committed lock file.
fn playwright(dir: &Path) -> Result<(), String> {
    if dir.join("node_modules").join("playwright-core").exists() {
        return Ok(());
    }
    let mut npm = Command::new("npm");
    npm.args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
        .current_dir(dir)
        .stdin(Stdio::null());
    run(npm, "npm ci (playwright-core)")
}

fn wait_ready(port: u16, what: &str) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            return Err(format!("{what} did not listen on {port} within 30 s"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

pub fn browser_test(screenshots: bool) -> Result<(), String> {
    let chromium = chromium()?;
    let tests = root()
        .join("crates")
        .join("mooring-backoffice")
        .join("browser");
    playwright(&tests)?;
    build_stack()?;
    let dir = root().join("target").join("browser-test");
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let bin = root().join("target").join("debug");
    let (api, sim, office) = (free_port()?, free_port()?, free_port()?);
    let log = |name: &str| {
        fs::File::create(dir.join(name)).map_err(|e| format!("cannot create a log file: {e}"))
    };

    let simulator = Process(
        Command::new(bin.join("ap-simulator"))
            .args([
                "--port",
                &sim.to_string(),
                "--events-to",
                &format!("http://127.0.0.1:{api}"),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log("ap-simulator.log")?)
            .spawn()
            .map_err(|e| format!("cannot start the AP simulator: {e}"))?,
    );
    let env: Vec<(String, String)> = [
        ("MOORING__SERVER__HOST", "127.0.0.1".to_owned()),
        ("MOORING__SERVER__PORT", api.to_string()),
        ("MOORING__BACKOFFICE__BIND", format!("127.0.0.1:{office}")),
        ("PLATFORM_API_BASE_URL", format!("http://127.0.0.1:{sim}")),
        ("MOORING__PLATFORM__API", "rest".to_owned()),
        ("MOORING__PLATFORM__POLL_INTERVAL_MS", "100".to_owned()),
        ("MOORING__PAYOUT__KYC_RECHECK_MS", "200".to_owned()),
        ("MOORING__PAYOUT__RAIL", "http".to_owned()),
        (
            "MOORING__PAYOUT__HTTP__URL",
            format!("http://127.0.0.1:{sim}/_rail/payouts"),
        ),
        (
            "MOORING__CUSTODIAN__DISTRIBUTION_ACCOUNT",
            DISTRIBUTION.to_owned(),
        ),
        ("MOORING__KYC__REVIEW", "manual".to_owned()),
        ("MOORING__LOG__LEVEL", "warn".to_owned()),
        (
            "MOORING__DATABASE__DATA_DIR",
            dir.join("data").display().to_string(),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let mooring = |args: &[&str]| {
        let mut c = Command::new(bin.join("mooring"));
        c.args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(env.iter().cloned());
        c
    };
    let migrate = mooring(&["migrate"])
        .output()
        .map_err(|e| format!("cannot run mooring migrate: {e}"))?;
    if !migrate.status.success() {
        return Err(format!(
            "mooring migrate failed: {}",
            String::from_utf8_lossy(&migrate.stderr)
        ));
    }
    for (name, role) in USERS {
        let mut add = mooring(&["users", "add", name, "--role", role])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot run mooring users add: {e}"))?;
        if let Some(mut stdin) = add.stdin.take() {
            use std::io::Write as _;
            writeln!(stdin, "{PASSWORD}").map_err(|e| format!("cannot give the password: {e}"))?;
        }
        let status = add.wait().map_err(|e| e.to_string())?;
        if !status.success() {
            return Err(format!("mooring users add {name} failed ({status})"));
        }
    }
    let server = Process(
        mooring(&["serve"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log("mooring.log")?)
            .spawn()
            .map_err(|e| format!("cannot start mooring: {e}"))?,
    );
    wait_ready(sim, "the AP simulator")?;
    wait_ready(office, "the back office")?;
    wait_ready(api, "mooring")?;

    let shots = if screenshots {
        root().join("docs").join("backoffice")
    } else {
        dir.join("screenshots")
    };
    let mut node = Command::new("node");
    node.arg("backoffice.test.mjs")
        .current_dir(&tests)
        .env("BACKOFFICE_URL", format!("http://127.0.0.1:{office}"))
        .env("MOORING_URL", format!("http://127.0.0.1:{api}"))
        .env("SIM_URL", format!("http://127.0.0.1:{sim}"))
        .env("STAFF_PASSWORD", PASSWORD)
        .env("SCREENSHOTS_DIR", &shots)
        .env("CHROMIUM", &chromium)
        .stdin(Stdio::null());
    let result = run(node, "the browser test").map_err(|e| {
        format!(
            "{e}; the servers' logs are in {} (mooring.log, ap-simulator.log)",
            dir.display()
        )
    });
    drop(server);
    drop(simulator);
    if result.is_ok() {
        eprintln!(
            "xtask: browser test passed; screenshots in {}",
            shots.display()
        );
    }
    result
}
