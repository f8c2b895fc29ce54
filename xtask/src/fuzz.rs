//! `cargo xtask fuzz [--seconds N] [TARGET…]`: builds the fuzz targets of
//! `fuzz/` with libFuzzer's coverage instrumentation on the stable toolchain
//! (the flags `cargo fuzz build --sanitizer none` passes, without its
//! nightly-only sanitizers), then runs each for N seconds (30 by default)
//! from its committed corpus. libFuzzer's progress goes to
//! `fuzz/target/logs/<target>.log`, and one line a target is printed (a CI
//! log stays readable). A crash fails the run, prints the end of that log and
//! leaves its input under `fuzz/artifacts/<target>/` (docs/testing.md,
//! "Fuzzing").

use std::path::Path;
use std::process::{Command, Stdio};

use crate::{cargo, root, run};

/// Every target in `fuzz/Cargo.toml`.
pub const TARGETS: &[&str] = &[
    "sep9_values",
    "stellar_ids",
    "amounts",
    "ap_transaction",
    "event_body",
    "multipart",
];

/// libFuzzer's coverage: what cargo-fuzz passes with `--sanitizer none`.
const RUSTFLAGS: &[&str] = &[
    "-Cpasses=sancov-module",
    "-Cllvm-args=-sanitizer-coverage-level=4",
    "-Cllvm-args=-sanitizer-coverage-inline-8bit-counters",
    "-Cllvm-args=-sanitizer-coverage-pc-table",
    "-Cllvm-args=-sanitizer-coverage-trace-compares",
    "--cfg=fuzzing",
    "-Cdebug-assertions",
    "-Coverflow-checks",
];

fn host_triple() -> Result<String, String> {
    let output = Command::new(std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into()))
        .arg("-vV")
        .output()
        .map_err(|e| format!("cannot run rustc -vV: {e}"))?;
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_owned))
        .ok_or_else(|| "rustc -vV names no host".into())
}

pub fn fuzz(seconds: u64, named: &[String]) -> Result<(), String> {
    let targets: Vec<&str> = if named.is_empty() {
        TARGETS.to_vec()
    } else {
        named.iter().map(String::as_str).collect()
    };
    let dir = root().join("fuzz");
    let triple = host_triple()?;
    let target_dir = dir.join("target");
    let mut build = cargo();
    build
        .args([
            "build",
            "--release",
            "--locked",
            "--bins",
            "--target",
            &triple,
        ])
        .arg("--manifest-path")
        .arg(dir.join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", &target_dir)
        // `--target` keeps these flags off build scripts and proc macros.
        .env("RUSTFLAGS", RUSTFLAGS.join(" "))
        .env_remove("CARGO_ENCODED_RUSTFLAGS");
    run(build, "cargo build (fuzz targets, libFuzzer coverage)")?;
    for target in targets {
        let binary = target_dir.join(&triple).join("release").join(target);
        let seeds = dir.join("corpus").join(target);
        // New inputs go to a scratch corpus; the committed one stays small.
        let scratch = target_dir.join("corpus").join(target);
        let artifacts = dir.join("artifacts").join(target);
        let logs = target_dir.join("logs");
        for d in [&scratch, &artifacts, &logs] {
            std::fs::create_dir_all(d)
                .map_err(|e| format!("cannot create {}: {e}", d.display()))?;
        }
        let mut command = Command::new(&binary);
        command
            .arg(&scratch)
            .arg(&seeds)
            .arg(format!("-max_total_time={seconds}"))
            .arg("-timeout=10")
            .arg("-rss_limit_mb=2048")
            .arg("-max_len=65536")
            .arg("-print_final_stats=1")
            .arg(format!("-artifact_prefix={}/", artifacts.display()));
        let log_path = logs.join(format!("{target}.log"));
        let log = std::fs::File::create(&log_path)
            .map_err(|e| format!("cannot create {}: {e}", log_path.display()))?;
        command.stdout(Stdio::null()).stderr(log);
        eprintln!("xtask: fuzz {target} for {seconds} s");
        let status = command
            .status()
            .map_err(|e| format!("cannot run {}: {e}", binary.display()))?;
        let text = std::fs::read_to_string(&log_path).unwrap_or_default();
        if !status.success() {
            let lines: Vec<&str> = text.lines().collect();
            for line in &lines[lines.len().saturating_sub(60)..] {
                eprintln!("  {line}");
            }
            return Err(format!(
                "fuzz {target} failed ({status}); the whole log is {}, the crashing input is in {}",
                rel(&log_path),
                rel(&artifacts)
            ));
        }
        let done = text
            .lines()
            .rev()
            .find(|l| l.starts_with("Done "))
            .unwrap_or("done");
        eprintln!("xtask: fuzz {target}: {done}, no crash");
    }
    Ok(())
}

fn rel(path: &Path) -> String {
    path.strip_prefix(root())
        .unwrap_or(path)
        .display()
        .to_string()
}
