//! The soak: millions of requests with nobody scraping `/metrics`, the
//! server's RSS sampled along the way, so that memory that grows with
//! traffic shows (a short run cannot show it).

use std::path::Path;
use std::time::Duration;

use serde_json::json;

use crate::load::{Template, closed_loop};

use super::server::{Mooring, base_env};
use super::{Report, Timing, USDC, db};

/// `t.soak_requests` indicative `GET /rate`s at 64 connections, in rounds
/// of `ROUND`, the RSS read after each; the target is on the last.
pub(super) async fn soak(
    bin: &Path,
    backend: &'static str,
    t: &Timing,
    report: &mut Report,
) -> anyhow::Result<()> {
    const ROUND: Duration = Duration::from_secs(10);
    eprintln!("bench: soak on {backend} ({} requests)", t.soak_requests);
    let db = db(backend);
    let server = Mooring::start(bin, &base_env(&db)).await?;
    let base = server.url("");
    let rate = Template::get(&format!(
        "/rate?type=indicative&sell_asset={USDC}&buy_asset=iso4217:BRL&sell_amount=100"
    ));
    let started_rss = server.rss_kib()?;
    let mut samples = vec![(0u64, started_rss)];
    let mut done = 0u64;
    let round = if t.soak_requests < 1_000_000 {
        Duration::from_secs(1)
    } else {
        ROUND
    };
    while done < t.soak_requests {
        let m = closed_loop(&base, &rate, 64, Duration::ZERO, round).await?;
        m.ensure_clean(&format!("soak after {done} requests"))?;
        done += m.requests;
        samples.push((done, server.rss_kib()?));
    }
    let (_, last) = *samples.last().unwrap_or(&(0, started_rss));
    let per_million = (last as f64 - started_rss as f64) * 1024.0 / (done as f64 / 1e6);
    eprintln!(
        "bench:   {done} requests: RSS {:.1} → {:.1} MB",
        started_rss as f64 / 1024.0,
        last as f64 / 1024.0
    );
    report.figures.insert(
        format!("{backend}_soak"),
        json!({"requests": done, "route": "GET /rate (indicative)", "connections": 64,
               "rss_kib_by_requests": samples, "bytes_per_million_requests": per_million}),
    );
    report.target(
        &format!(
            "RSS after {:.1} M requests, nobody scraping /metrics, {backend}",
            done as f64 / 1e6
        ),
        format!(
            "{:.1} MB (from {:.1} MB at the start)",
            last as f64 / 1024.0,
            started_rss as f64 / 1024.0
        ),
        "≤ 48 MB",
        last as f64 / 1024.0 <= 48.0,
    );
    Ok(())
}
