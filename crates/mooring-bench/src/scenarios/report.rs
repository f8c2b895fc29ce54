//! The report: the rows and targets the scenarios add, written as
//! `docs/benchmarks.md` (with the notes) and `docs/benchmarks.json`.
//!
//! Honest by construction: a figure with a target says met or short, one
//! without says neither; a scenario that failed (a request error, a worker
//! that panicked, a baseline that measured nothing) is listed as failed,
//! never read as a figure; and [`Report::verdict`] is an error when any
//! target is short or any scenario failed, so `cargo xtask bench` exits
//! non-zero, saying which.

use std::fmt::Write as _;

use serde_json::{Value, json};

use crate::load::Measured;

/// One HTTP figure beside the no-op route at the same concurrency, from
/// the same generator.
pub struct HttpRow {
    pub(super) backend: &'static str,
    pub(super) route: &'static str,
    pub(super) concurrency: usize,
    pub(super) measured: Measured,
    pub(super) baseline: Measured,
}

impl HttpRow {
    /// Requests per second against the no-op route's (the baseline measured
    /// something, or the scenario failed before this row was made).
    pub(super) fn ratio(&self) -> f64 {
        self.measured.rps / self.baseline.rps
    }
}

/// One figure, read against its target when it has one.
pub struct Target {
    pub(super) name: String,
    pub(super) measured: String,
    /// `None`: reported, with no target.
    pub(super) target: Option<(String, bool)>,
}

/// The generator's calibration: its own figure on the no-op route beside
/// wrk's, at one concurrency.
pub struct Calibration {
    pub(super) backend: &'static str,
    pub(super) concurrency: usize,
    pub(super) hyper: Measured,
    pub(super) wrk: Option<Measured>,
}

pub struct Report {
    pub(super) environment: Value,
    pub(super) http: Vec<HttpRow>,
    pub(super) calibration: Vec<Calibration>,
    pub(super) targets: Vec<Target>,
    pub(super) figures: serde_json::Map<String, Value>,
    /// The "Encryption at rest" table: backend, request, work, µs, the
    /// request's p50 at concurrency 1 in µs.
    pub(super) encryption: Vec<(&'static str, &'static str, &'static str, f64, f64)>,
    /// Scenarios that failed, with why.
    pub(super) failed: Vec<(String, String)>,
}

impl Report {
    pub(super) fn new(environment: Value) -> Self {
        Self {
            environment,
            http: Vec::new(),
            calibration: Vec::new(),
            targets: Vec::new(),
            figures: serde_json::Map::new(),
            encryption: Vec::new(),
            failed: Vec::new(),
        }
    }

    /// A figure with a target.
    pub(super) fn target(&mut self, name: &str, measured: String, target: &str, met: bool) {
        self.targets.push(Target {
            name: name.to_owned(),
            measured,
            target: Some((target.to_owned(), met)),
        });
    }

    /// A figure reported with no target: it says neither met nor short.
    pub(super) fn reported(&mut self, name: &str, measured: String) {
        self.targets.push(Target {
            name: name.to_owned(),
            measured,
            target: None,
        });
    }

    pub(super) fn fail(&mut self, scenario: &str, why: &anyhow::Error) {
        eprintln!("bench: scenario {scenario} FAILED: {why:#}");
        self.failed.push((scenario.to_owned(), format!("{why:#}")));
    }

    /// `Ok` when every target is met and every scenario ran; else which
    /// were short and which failed.
    pub fn verdict(&self) -> anyhow::Result<()> {
        let short: Vec<String> = self
            .targets
            .iter()
            .filter(|t| matches!(t.target, Some((_, false))))
            .map(|t| {
                format!(
                    "  short: {}: {} (target {})",
                    t.name,
                    t.measured,
                    t.target.as_ref().map_or("", |(s, _)| s)
                )
            })
            .collect();
        let failed: Vec<String> = self
            .failed
            .iter()
            .map(|(s, why)| format!("  failed: {s}: {why}"))
            .collect();
        if short.is_empty() && failed.is_empty() {
            return Ok(());
        }
        anyhow::bail!(
            "{} target(s) short, {} scenario(s) failed:\n{}",
            short.len(),
            failed.len(),
            [failed, short].concat().join("\n")
        )
    }

    pub fn json(&self) -> String {
        let http: Vec<Value> = self
            .http
            .iter()
            .map(|r| {
                json!({"backend": r.backend, "route": r.route, "concurrency": r.concurrency,
                       "generator": r.measured.generator.name(),
                       "measured": r.measured.json(), "no_op_route": r.baseline.json(),
                       "ratio_to_no_op": r.ratio()})
            })
            .collect();
        let calibration: Vec<Value> = self
            .calibration
            .iter()
            .map(|c| {
                json!({"backend": c.backend, "concurrency": c.concurrency, "hyper": c.hyper.json(),
                       "wrk": c.wrk.as_ref().map(Measured::json)})
            })
            .collect();
        let targets: Vec<Value> = self
            .targets
            .iter()
            .map(|t| match &t.target {
                Some((target, met)) => {
                    json!({"figure": t.name, "measured": t.measured, "target": target, "met": met})
                }
                None => json!({"figure": t.name, "measured": t.measured}),
            })
            .collect();
        let failed: Vec<Value> = self
            .failed
            .iter()
            .map(|(s, why)| json!({"scenario": s, "error": why}))
            .collect();
        let mut out = serde_json::to_string_pretty(&json!({
            "environment": self.environment, "calibration": calibration, "http": http,
            "targets": targets, "failed": failed, "figures": self.figures,
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
             load generator on the same machine (hyper's HTTP/1.1 client, one current-thread runtime \
             per core; calibrated against `wrk` below), so client and server share the CPUs. Each figure \
             stands beside a baseline measured in the same run, by the same generator.\n",
            e["date"].as_str().unwrap_or("?"),
            e["commit"].as_str().unwrap_or("?"),
            e["cpus"],
            e["kernel"].as_str().unwrap_or("?"),
            e["rustc"].as_str().unwrap_or("?"),
            e["postgres"].as_str().unwrap_or("?"),
        );
        if !self.failed.is_empty() {
            let _ = writeln!(
                md,
                "## Failed scenarios\n\nThese measured nothing; their figures are missing.\n"
            );
            for (s, why) in &self.failed {
                let _ = writeln!(md, "- **{s}**: {why}");
            }
            md.push('\n');
        }
        let _ = writeln!(
            md,
            "## Against the targets\n\n| figure | measured | target | |\n|---|---|---|---|"
        );
        for t in &self.targets {
            let (target, verdict) = match &t.target {
                Some((target, true)) => (target.as_str(), "met"),
                Some((target, false)) => (target.as_str(), "**short**"),
                None => ("—", "reported"),
            };
            let _ = writeln!(md, "| {} | {} | {target} | {verdict} |", t.name, t.measured);
        }
        if !self.calibration.is_empty() {
            let _ = writeln!(
                md,
                "\n## The generator, calibrated\n\nThe no-op route (`GET /health`) driven by this \
                 generator and by `wrk` (`-t<cores> -c<connections>`, when installed) in the same run. \
                 Where the two agree, the generator is not what limits a figure.\n\n\
                 | backend | conn. | hyper req/s | hyper p99 | wrk req/s | wrk p99 | hyper / wrk |\n\
                 |---|---|---|---|---|---|---|"
            );
            for c in &self.calibration {
                let (wrk_rps, wrk_p99, share) = match &c.wrk {
                    Some(w) => (
                        format!("{:.0}", w.rps),
                        format!("{:.2}", w.p99_ms),
                        format!("{:.2}×", c.hyper.rps / w.rps),
                    ),
                    None => ("not installed".into(), "—".into(), "—".into()),
                };
                let _ = writeln!(
                    md,
                    "| {} | {} | {:.0} | {:.2} | {wrk_rps} | {wrk_p99} | {share} |",
                    c.backend, c.concurrency, c.hyper.rps, c.hyper.p99_ms
                );
            }
        }
        let _ = writeln!(
            md,
            "\n## HTTP\n\nRequests per second and latency (ms) at each concurrency (closed loop: each \
             connection sends its next request when the last is answered), beside the same server's \
             no-op route (`GET /health`) at the same concurrency, from the same generator. Every request \
             of a row answered 2xx with its whole body: one error fails the scenario.\n\n\
             | backend | route | conn. | gen. | req/s | p50 | p99 | p99.9 | max | no-op req/s | ratio |\n\
             |---|---|---|---|---|---|---|---|---|---|---|"
        );
        for r in &self.http {
            let m = &r.measured;
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} | {:.0} | {:.2}× |",
                r.backend,
                r.route,
                r.concurrency,
                m.generator.name(),
                m.rps,
                m.p50_ms,
                m.p99_ms,
                m.p999_ms,
                m.max_ms,
                r.baseline.rps,
                r.ratio()
            );
        }
        if !self.encryption.is_empty() {
            let _ = writeln!(
                md,
                "\n## Encryption at rest\n\nThe AEAD work of a request (XChaCha20-Poly1305 under the \
                 customer's data key; the data key wrapped by `pii.key`), timed on one thread in the same \
                 run, beside the request's median latency at concurrency 1 from the HTTP table. The HTTP \
                 rows and the raw loops both do this work.\n\n\
                 | backend | request | work | µs | request p50 (µs) | share |\n|---|---|---|---|---|---|"
            );
            for (backend, request, work, us, p50) in &self.encryption {
                let _ = writeln!(
                    md,
                    "| {backend} | {request} | {work} | {us:.2} | {p50:.0} | {:.1}% |",
                    100.0 * us / p50
                );
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_figure_with_a_target_is_met_or_short_and_short_fails_the_run() {
        let mut r = Report::new(json!({}));
        r.reported("start, new database", "40 ms".into());
        r.target("idle RSS", "14 MB".into(), "≤ 15 MB", true);
        assert!(r.verdict().is_ok());
        let md = r.markdown("");
        assert!(
            md.contains("| start, new database | 40 ms | — | reported |"),
            "{md}"
        );
        assert!(md.contains("| idle RSS | 14 MB | ≤ 15 MB | met |"), "{md}");
        r.target("p99", "3 ms".into(), "≤ 1 ms", false);
        let verdict = r.verdict().expect_err("short");
        assert!(
            verdict
                .to_string()
                .contains("short: p99: 3 ms (target ≤ 1 ms)"),
            "{verdict}"
        );
    }

    #[test]
    fn a_failed_scenario_fails_the_run_and_is_listed() {
        let mut r = Report::new(json!({}));
        r.fail("http on sqlite", &anyhow::anyhow!("3 of 9 requests failed"));
        assert!(r.verdict().is_err());
        assert!(
            r.markdown("")
                .contains("- **http on sqlite**: 3 of 9 requests failed")
        );
        assert!(r.json().contains("\"failed\""));
    }
}
