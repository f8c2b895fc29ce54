//! `mooring-bench --mooring PATH --out DIR [--quick] [--large] [--only startup|http|growth|soak|engine|poll|large]`: Mooring's benchmarks
//! (run by `cargo xtask bench`). Drives the release `mooring` binary over
//! loopback on SQLite and on PostgreSQL and writes `DIR/benchmarks.md` and
//! `DIR/benchmarks.json`. Every figure stands beside a baseline measured in
//! the same run (the server's no-op route; a raw query loop through the
//! same pool), because these machines are shared and noisy.
//!
//! This is tooling: it may use the test support crates and the simulator.

mod crypto;
mod histogram;
mod load;
mod scenarios;
mod wrk;

use std::path::PathBuf;

use clap::{Parser, ValueEnum};

/// One scenario, for work on one figure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Scenario {
    Startup,
    Http,
    Growth,
    Soak,
    Engine,
    Poll,
    Large,
}

impl Scenario {
    fn name(self) -> &'static str {
        match self {
            Self::Startup => "startup",
            Self::Http => "http",
            Self::Growth => "growth",
            Self::Soak => "soak",
            Self::Engine => "engine",
            Self::Poll => "poll",
            Self::Large => "large",
        }
    }
}

/// Mooring's benchmarks.
#[derive(Debug, Parser)]
#[command(name = "mooring-bench")]
struct Args {
    /// The release `mooring` binary.
    #[arg(long)]
    mooring: PathBuf,
    /// Where `benchmarks.md` and `benchmarks.json` go (and where
    /// `benchmarks-notes.md` is read from).
    #[arg(long, default_value = "docs")]
    out: PathBuf,
    /// A short smoke run.
    #[arg(long)]
    quick: bool,
    /// Run one scenario only.
    #[arg(long, value_enum)]
    only: Option<Scenario>,
    /// Also the scale figures: ten million customers on PostgreSQL.
    #[arg(long)]
    large: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let report = scenarios::run(
        &args.mooring,
        args.quick,
        args.only.map(Scenario::name),
        args.large,
    )
    .await;
    let out = &args.out;
    std::fs::create_dir_all(out)?;
    std::fs::write(out.join("benchmarks.json"), report.json())?;
    let notes = std::fs::read_to_string(out.join("benchmarks-notes.md")).unwrap_or_default();
    std::fs::write(out.join("benchmarks.md"), report.markdown(&notes))?;
    eprintln!(
        "bench: wrote {} and {}",
        out.join("benchmarks.md").display(),
        out.join("benchmarks.json").display()
    );
    // Non-zero when a target is short or a scenario failed, saying which.
    report.verdict()
}
