//! The report: the rows and targets the scenarios add, written as
//! `docs/benchmarks.md` (with the notes) and `docs/benchmarks.json`.

use std::fmt::Write as _;

use serde_json::{Value, json};

use crate::load::Measured;

/// One HTTP figure beside the no-op route at the same concurrency.
pub struct HttpRow {
    pub(super) backend: &'static str,
    pub(super) route: &'static str,
    pub(super) concurrency: usize,
    pub(super) measured: Measured,
    pub(super) baseline: Measured,
}

/// One figure read against its target.
pub struct Target {
    pub(super) name: String,
    pub(super) measured: String,
    pub(super) target: String,
    pub(super) met: bool,
}

pub struct Report {
    pub(super) environment: Value,
    pub(super) http: Vec<HttpRow>,
    pub(super) targets: Vec<Target>,
    pub(super) figures: serde_json::Map<String, Value>,
    /// The "Encryption at rest" table: backend, request, work, µs, the
    /// request's p50 at concurrency 1 in µs.
    pub(super) encryption: Vec<(&'static str, &'static str, &'static str, f64, f64)>,
}

impl Report {
    pub(super) fn target(&mut self, name: &str, measured: String, target: &str, met: bool) {
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
        if !self.encryption.is_empty() {
            let _ = writeln!(
                md,
                "\n## Encryption at rest\n\nThe AEAD work of a request (XChaCha20-Poly1305 under the \
                 customer's data key; the data key wrapped by `pii.key`), timed on one thread in the same \
                 run, beside the request's median latency at concurrency 1 from the HTTP table. The HTTP \
                 rows and the raw loops already carry the sealed bytes and the data-key rows.\n\n\
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
