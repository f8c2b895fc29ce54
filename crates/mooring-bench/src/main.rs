//! `mooring-bench --mooring PATH --out DIR [--quick] [--only startup|http|growth|engine|poll]`: Mooring's benchmarks
//! (run by `cargo xtask bench`). Drives the release `mooring` binary over
//! loopback on SQLite and on PostgreSQL and writes `DIR/benchmarks.md` and
//! `DIR/benchmarks.json`. Every figure stands beside a baseline measured in
//! the same run (the server's no-op route; a raw query loop through the
//! same pool), because these machines are shared and noisy.
//!
//! This is tooling: it may use the test support crates and the simulator.

mod crypto;
mod load;
mod scenarios;

use std::path::PathBuf;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let mooring = PathBuf::from(
        value("--mooring").ok_or_else(|| anyhow::anyhow!("--mooring PATH is required"))?,
    );
    let out = PathBuf::from(value("--out").unwrap_or_else(|| "docs".into()));
    let quick = args.iter().any(|a| a == "--quick");
    let only = value("--only");
    let report = scenarios::run(&mooring, quick, only.as_deref()).await?;
    std::fs::create_dir_all(&out)?;
    std::fs::write(out.join("benchmarks.json"), report.json())?;
    let notes = std::fs::read_to_string(out.join("benchmarks-notes.md")).unwrap_or_default();
    std::fs::write(out.join("benchmarks.md"), report.markdown(&notes))?;
    eprintln!(
        "bench: wrote {} and {}",
        out.join("benchmarks.md").display(),
        out.join("benchmarks.json").display()
    );
    Ok(())
}
