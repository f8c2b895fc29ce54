//! `cargo xtask`: Mooring's one task runner.
//!
//! - `cargo xtask test [ARGS…]`: every test of the workspace, on SQLite and
//!   on PostgreSQL. It finds a PostgreSQL server (`MOORING_TEST_POSTGRES_URL`,
//!   a `postgres://` `DATABASE_URL`, or one answering at 127.0.0.1:5432), or
//!   starts a throwaway cluster under `target/` from the installed PostgreSQL
//!   binaries and stops it afterwards. ARGS go to `cargo test`.
//! - `cargo xtask lint`: `cargo fmt --check` and `cargo clippy -D warnings`.
//! - `cargo xtask ci`: `lint`, then `test`.
//! - `cargo xtask pg`: starts a throwaway cluster like `test` does and keeps
//!   it running until Enter, printing its URL (for running single tests).
//! - `cargo xtask sim [--port 8085] [--v3] [--api-key KEY | --jwt SECRET]`:
//!   runs the in-repo Anchor Platform simulator on loopback (Platform API in
//!   REST and JSON-RPC; `/_sim/…` to create transactions and play payments).

mod postgres;

use std::process::{Command, ExitCode};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("test") => test(&args[1..]),
        Some("lint") => lint(),
        Some("ci") => lint().and_then(|()| test(&[])),
        Some("pg") => postgres::hold(),
        Some("sim") => {
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
                .args(&args[1..]);
            run(command, "ap-simulator")
        }
        _ => {
            eprintln!(
                "usage: cargo xtask <test [cargo test args…] | lint | ci | pg | sim [--port N] [--v3]>"
            );
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The workspace root (xtask lives one level below it).
pub fn root() -> std::path::PathBuf {
    let manifest = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest
        .parent()
        .map(std::path::Path::to_path_buf)
        .unwrap_or(manifest)
}

fn cargo() -> Command {
    let mut command = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned()));
    command.current_dir(root());
    command
}

fn run(mut command: Command, what: &str) -> Result<(), String> {
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
    run(clippy, "cargo clippy -D warnings")
}
