//! `cargo xtask`: Mooring's one task runner.
//!
//! - `cargo xtask test [ARGS…]`: every test of the workspace, on SQLite and
//!   on PostgreSQL. It finds a PostgreSQL server (`MOORING_TEST_POSTGRES_URL`,
//!   a `postgres://` `DATABASE_URL`, or one answering at 127.0.0.1:5432), or
//!   starts a throwaway cluster under `target/` from the installed PostgreSQL
//!   binaries and stops it afterwards. ARGS go to `cargo test`.
//! - `cargo xtask lint`: `cargo fmt --check` and `cargo clippy -D warnings`,
//!   also over what only the fuzz targets compile (`--features fuzzing`).
//! - `cargo xtask ci`: `lint`, then `test`.
//! - `cargo xtask pg`: starts a throwaway cluster like `test` does and keeps
//!   it running until Enter, printing its URL (for running single tests).
//! - `cargo xtask sim [--port 8085] [--v3] [--api-key KEY | --jwt SECRET]`:
//!   runs the in-repo Anchor Platform simulator on loopback (Platform API in
//!   REST and JSON-RPC; `/_sim/…` to create transactions and play payments).
//! - `cargo xtask engine [--v3]`: the payment engine locally: the simulator
//!   on :8085 (sending events to Mooring, and playing the payout provider)
//!   and `mooring` on :8081 wired to it (REST, or JSON-RPC as AP 3.x with
//!   `--v3`), with a SQLite database under `target/engine-dev/`. Ctrl-C
//!   stops both.
//! - `cargo xtask up`: Mooring and the AP simulator in the background on
//!   :8081 and :8085 (SQLite under `target/xtask-up/`, logs beside it), then
//!   a demo: a sender and a receiver, a firm quote, a transaction on it, the
//!   payment arriving, and the payout that completes it. `cargo xtask down`
//!   stops both.
//! - `cargo xtask bench [--quick] [--large]`: builds the release binary and
//!   runs `mooring-bench` against it (SQLite and PostgreSQL, found or
//!   started as for `test`; wrk, for the calibration, installed with
//!   apt-get when missing, as root), writing `docs/benchmarks.md` and
//!   `docs/benchmarks.json`; it fails, naming them, when a target is short
//!   or a scenario failed. `--quick` is a short smoke run (its figures are
//!   not the report's); `--large` adds ten million customers on PostgreSQL.
//! - `cargo xtask sim-test [--seeds N] [--seed S] [--trace]`: the payment engine's
//!   deterministic simulation with N seeds (5,000 in the test suite), or
//!   one seed replayed.
//! - `cargo xtask fuzz [--seconds N] [TARGET…]`: builds `fuzz/` with
//!   libFuzzer's coverage on the stable toolchain and runs each target N
//!   seconds (30) from its committed corpus; a crash fails it.
//! - `cargo xtask api-fuzz [--examples N]`: Schemathesis (in a venv under
//!   `target/schemathesis/`) against the AP's official callback spec, with
//!   `mooring` on a free port; any failed check fails it.
//! - `cargo xtask browser-test [--screenshots]`: the back office in
//!   Debian's Chromium (installed with apt-get when missing, as root),
//!   driven by Playwright (`npm ci` of `playwright-core`) against the
//!   simulator and `mooring`; `--screenshots` refreshes `docs/backoffice/`.
//! - `cargo xtask openapi`: writes `docs/openapi.json` from the code (a test
//!   fails while the committed file differs).

mod apifuzz;
mod apt;
mod browser;
mod fuzz;
mod postgres;
mod stack;

use std::path::Path;
use std::process::{Command, ExitCode};

use clap::{Parser, Subcommand};

/// Mooring's task runner (the module header says what each task does).
#[derive(Parser)]
#[command(name = "xtask", bin_name = "cargo xtask", about)]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Every test of the workspace, on SQLite and PostgreSQL.
    Test {
        /// Passed to `cargo test`.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        cargo_args: Vec<String>,
    },
    /// `cargo fmt --check` and `cargo clippy -D warnings`.
    Lint,
    /// `lint`, then `test`.
    Ci,
    /// A throwaway PostgreSQL cluster, kept until Enter.
    Pg,
    /// The in-repo Anchor Platform simulator.
    Sim {
        /// Passed to `ap-simulator` (`--port`, `--v3`, `--api-key`, `--jwt`).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        sim_args: Vec<String>,
    },
    /// The simulator and `mooring` wired together on loopback.
    Engine {
        /// The simulator speaks JSON-RPC as AP 3.x.
        #[arg(long)]
        v3: bool,
    },
    /// Writes docs/openapi.json from the code.
    Openapi,
    /// Mooring and the simulator in the background, with a demo.
    Up,
    /// Stops what `up` started.
    Down,
    /// The benchmarks, writing docs/benchmarks.md and .json.
    Bench {
        /// A short smoke run (its figures are not the report's).
        #[arg(long)]
        quick: bool,
        /// Also the scale figures: ten million customers on PostgreSQL
        /// (minutes of seeding; not in CI).
        #[arg(long)]
        large: bool,
    },
    /// The engine's deterministic simulation.
    SimTest {
        /// Runs seeds 1..=N.
        #[arg(long)]
        seeds: Option<u64>,
        /// Replays one seed.
        #[arg(long)]
        seed: Option<u64>,
        /// Prints each transaction's changes.
        #[arg(long)]
        trace: bool,
    },
    /// libFuzzer on each target from its committed corpus.
    Fuzz {
        /// Seconds per target.
        #[arg(long, default_value_t = 30)]
        seconds: u64,
        /// The targets (all when none is named).
        #[arg(value_parser = clap::builder::PossibleValuesParser::new(fuzz::TARGETS))]
        targets: Vec<String>,
    },
    /// The back office in Debian's Chromium, driven by Playwright.
    BrowserTest {
        /// Write the pages' screenshots to docs/backoffice/.
        #[arg(long)]
        screenshots: bool,
    },
    /// Schemathesis against the AP's callback spec.
    ApiFuzz {
        /// Examples per operation.
        #[arg(long, default_value_t = 100)]
        examples: u32,
    },
}

fn main() -> ExitCode {
    let result = match Cli::parse().task {
        Task::Test { cargo_args } => test(&cargo_args),
        Task::Lint => lint(),
        Task::Ci => lint().and_then(|()| test(&[])),
        Task::Pg => postgres::hold(),
        Task::Sim { sim_args } => {
            let mut command = cargo();
            command
                .args([
                    "run",
                    "--quiet",
                    "--package",
                    "mooring-apsim",
                    "--bin",
                    "ap-simulator",
                    "--",
                ])
                .args(&sim_args);
            run(command, "ap-simulator")
        }
        Task::Engine { v3 } => engine(v3),
        Task::Openapi => openapi(),
        Task::Up => stack::up(),
        Task::Down => stack::down(),
        Task::Bench { quick, large } => bench(quick, large),
        Task::SimTest { seeds, seed, trace } => sim_test(seeds, seed, trace),
        Task::Fuzz { seconds, targets } => fuzz::fuzz(seconds, &targets),
        Task::ApiFuzz { examples } => apifuzz::api_fuzz(examples),
        Task::BrowserTest { screenshots } => browser::browser_test(screenshots),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The engine's deterministic simulation: `seeds` runs seeds 1..=N,
/// `seed` replays one, `trace` prints each transaction's changes.
fn sim_test(seeds: Option<u64>, seed: Option<u64>, trace: bool) -> Result<(), String> {
    let mut command = cargo();
    command.args([
        "test",
        "-p",
        "mooring-usecases",
        "--test",
        "it",
        "simulation",
        "--",
        "--nocapture",
    ]);
    for (value, var) in [(seeds, "MOORING_SIM_SEEDS"), (seed, "MOORING_SIM_SEED")] {
        if let Some(v) = value {
            command.env(var, v.to_string());
        }
    }
    if trace {
        command.env("MOORING_SIM_TRACE", "1");
    }
    run(command, "the engine's simulation")
}

/// The workspace root (xtask lives one level below it).
pub fn root() -> std::path::PathBuf {
    let manifest = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest
        .parent()
        .map(std::path::Path::to_path_buf)
        .unwrap_or(manifest)
}

pub(crate) fn cargo() -> Command {
    let mut command = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned()));
    command.current_dir(root());
    command
}

/// Builds `mooring` and `ap-simulator` (debug) for a local stack.
fn build_stack() -> Result<(), String> {
    let mut build = cargo();
    build.args([
        "build",
        "--quiet",
        "-p",
        "mooring-app",
        "-p",
        "mooring-apsim",
        "--bins",
    ]);
    run(build, "cargo build (mooring, ap-simulator)")
}

/// The simulator and `mooring` wired together on loopback.
fn engine(v3: bool) -> Result<(), String> {
    build_stack()?;
    let bin = root().join("target").join("debug");
    let mut sim = Command::new(bin.join("ap-simulator"));
    sim.args(["--port", "8085", "--events-to", "http://127.0.0.1:8081"]);
    if v3 {
        sim.arg("--v3");
    }
    let mut sim = sim
        .spawn()
        .map_err(|e| format!("cannot start ap-simulator: {e}"))?;
    let data = root().join("target").join("engine-dev");
    let api = if v3 { "rpc" } else { "rest" };
    eprintln!(
        "xtask: mooring on http://127.0.0.1:8081 (platform.api = {api}), simulator on http://127.0.0.1:8085\n\
         xtask: register a sender:    curl -X PUT localhost:8081/customer -H 'Content-Type: application/json' -d '{{\"account\":\"GDJUOFZGW5WYBK4GIETCSSM6MTTIJ4SUMCQITPTLUWMQ6B4UIX2IEX47\",\"memo\":\"2\",\"memo_type\":\"id\",\"type\":\"sep31-sender\",\"first_name\":\"Ana\",\"last_name\":\"Costa\",\"email_address\":\"a@example.com\"}}'\n\
         xtask: register a receiver:  curl -X PUT localhost:8081/customer -H 'Content-Type: application/json' -d '{{\"account\":\"GDJUOFZGW5WYBK4GIETCSSM6MTTIJ4SUMCQITPTLUWMQ6B4UIX2IEX47\",\"memo\":\"1\",\"memo_type\":\"id\",\"type\":\"sep31-receiver\",\"first_name\":\"Maria\",\"last_name\":\"Silva\",\"email_address\":\"m@example.com\",\"bank_account_number\":\"123\",\"bank_account_type\":\"checking\",\"bank_number\":\"341\"}}'\n\
         xtask: create a transaction: curl -X POST localhost:8085/_sim/transactions -H 'Content-Type: application/json' -d '{{\"amount_in\":{{\"amount\":\"100\",\"asset\":\"{USDC}\"}},\"amount_out\":{{\"amount\":\"99\",\"asset\":\"{USDC}\"}},\"amount_fee\":{{\"amount\":\"1\",\"asset\":\"{USDC}\"}},\"customers\":{{\"sender\":{{\"id\":\"<sender id>\"}},\"receiver\":{{\"id\":\"<receiver id>\"}}}}}}'\n\
         xtask: the payment arrives:  curl -X POST localhost:8085/_sim/transactions/<id>/receive\n\
         xtask: watch it:             curl localhost:8085/_sim/transactions/<id>/history   (and: mooring payouts list)"
    );
    let mut mooring = Command::new(bin.join("mooring"));
    mooring.envs([
        ("MOORING__SERVER__HOST", "127.0.0.1"),
        ("MOORING__SERVER__PORT", "8081"),
        ("PLATFORM_API_BASE_URL", "http://127.0.0.1:8085"),
        ("MOORING__PLATFORM__API", api),
        ("MOORING__PAYOUT__RAIL", "http"),
        (
            "MOORING__PAYOUT__HTTP__URL",
            "http://127.0.0.1:8085/_rail/payouts",
        ),
        ("MOORING__CUSTODIAN__DISTRIBUTION_ACCOUNT", USDC_ISSUER),
    ]);
    mooring.env("MOORING__DATABASE__DATA_DIR", &data);
    let result = run(mooring, "mooring");
    let _ = sim.kill();
    let _ = sim.wait();
    result
}

/// The benchmarks, against a release build.
fn bench(quick: bool, large: bool) -> Result<(), String> {
    // wrk calibrates the load generator; without it the report says so.
    if let Err(e) = apt::ensure(Path::new("/usr/bin/wrk"), "wrk") {
        eprintln!("xtask: {e}; the report runs without wrk's calibration");
    }
    let mut build = cargo();
    build.args([
        "build",
        "--release",
        "--locked",
        "-p",
        "mooring-app",
        "-p",
        "mooring-bench",
    ]);
    run(build, "cargo build --release (mooring, mooring-bench)")?;
    let server = postgres::provide()?;
    let release = root().join("target").join("release");
    let out = if quick {
        root().join("target").join("bench-quick")
    } else {
        root().join("docs")
    };
    if quick {
        let _ = std::fs::create_dir_all(&out);
        let _ = std::fs::copy(
            root().join("docs").join("benchmarks-notes.md"),
            out.join("benchmarks-notes.md"),
        );
    }
    let mut command = Command::new(release.join("mooring-bench"));
    command
        .arg("--mooring")
        .arg(release.join("mooring"))
        .arg("--out")
        .arg(&out)
        .current_dir(root())
        .env(postgres::URL_ENV, server.url());
    if quick {
        command.arg("--quick");
    }
    if large {
        command.arg("--large");
    }
    let result = run(command, "mooring-bench");
    drop(server);
    result
}

/// Writes `docs/openapi.json` from `mooring openapi`.
fn openapi() -> Result<(), String> {
    let output = cargo()
        .args(["run", "--quiet", "-p", "mooring-app", "--", "openapi"])
        .output()
        .map_err(|e| format!("cannot run mooring openapi: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "mooring openapi failed: {}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let path = root().join("docs").join("openapi.json");
    std::fs::write(&path, &output.stdout)
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    eprintln!("xtask: wrote {}", path.display());
    Ok(())
}

pub(crate) const USDC_ISSUER: &str = "GBBD47IF6LWK7P7MDEVSCWR7DPUWV3NY3DTQEVFL4NAT4AQH3ZLLFLA5";
pub(crate) const USDC: &str =
    "stellar:USDC:GBBD47IF6LWK7P7MDEVSCWR7DPUWV3NY3DTQEVFL4NAT4AQH3ZLLFLA5";

pub(crate) fn run(mut command: Command, what: &str) -> Result<(), String> {
    eprintln!("xtask: {what}");
    let status = command
        .status()
        .map_err(|e| format!("cannot run {what}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{what} failed ({status})"))
    }
}

fn test(extra: &[String]) -> Result<(), String> {
    let server = postgres::provide()?;
    eprintln!("xtask: PostgreSQL for tests at {}", server.url());
    let mut command = cargo();
    command
        .args(["test", "--workspace", "--locked"])
        .args(extra)
        .env(postgres::URL_ENV, server.url());
    let result = run(command, "cargo test --workspace");
    drop(server);
    result
}

fn lint() -> Result<(), String> {
    let mut fmt = cargo();
    fmt.args(["fmt", "--all", "--", "--check"]);
    run(fmt, "cargo fmt --check")?;
    let mut clippy = cargo();
    clippy.args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--locked",
        "--",
        "-D",
        "warnings",
    ]);
    run(clippy, "cargo clippy -D warnings")?;
    // What only the fuzz targets compile. `fuzz/` itself is its own
    // workspace, built (not linted) by `cargo xtask fuzz`.
    let mut fuzzing = cargo();
    fuzzing.args([
        "clippy",
        "-p",
        "mooring-http",
        "--features",
        "fuzzing",
        "--all-targets",
        "--locked",
        "--",
        "-D",
        "warnings",
    ]);
    run(fuzzing, "cargo clippy -p mooring-http --features fuzzing")?;
    // fuzz/ has a lock file of its own, which a new dependency of the
    // workspace must reach too (`cargo xtask fuzz` builds with --locked).
    let mut lock = cargo();
    lock.args([
        "metadata",
        "--manifest-path",
        "fuzz/Cargo.toml",
        "--locked",
        "--format-version",
        "1",
    ])
    .stdout(std::process::Stdio::null());
    run(lock, "fuzz/Cargo.lock is current (cargo metadata --locked)")
}
