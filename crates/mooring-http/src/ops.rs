//! The operators' routes: `GET /health` (liveness), `GET /ready`
//! (readiness: the store, its migrations, the AP when the engine is on) and
//! `GET /metrics` (Prometheus text). None asks for authentication: probes
//! and scrapers send none, and none of them shows PII.

use std::collections::BTreeMap;
use std::time::Duration;

use actix_web::{HttpResponse, web};
use metrics_exporter_prometheus::PrometheusHandle;
use mooring_usecases::{Gauges, Operations};
use rust_decimal::prelude::ToPrimitive;
use serde_json::{Map, Value, json};
use utoipa::ToSchema;

/// The longest `/ready` waits for its checks (each is bounded by its own
/// adapter's timeout too): probes time out after a few seconds.
const READY_BOUND: Duration = Duration::from_secs(4);

/// What `/metrics` renders: the process's recorder, and where the gauges
/// are read at each scrape.
#[derive(Clone)]
pub struct MetricsEndpoint {
    pub handle: PrometheusHandle,
    pub ops: Operations,
}

/// Names and help of every metric Mooring records.
pub fn describe_metrics() {
    metrics::describe_counter!(
        "mooring_http_requests_total",
        "HTTP requests answered, by method, route pattern and status"
    );
    metrics::describe_histogram!(
        "mooring_http_request_duration_seconds",
        metrics::Unit::Seconds,
        "HTTP request latency, by method and route pattern"
    );
    metrics::describe_gauge!("mooring_payouts", "Payout ledger entries, by state");
    metrics::describe_gauge!(
        "mooring_event_inbox_depth",
        "Events received from the AP and not yet applied"
    );
    metrics::describe_gauge!(
        "mooring_quote_reserved",
        "Buy amount held by unexpired, unused firm quotes, by asset"
    );
    metrics::describe_gauge!(
        "mooring_quote_liquidity_limit",
        "The configured most buy amount firm quotes may hold, by asset"
    );
    metrics::describe_gauge!(
        "mooring_poll_lag_seconds",
        metrics::Unit::Seconds,
        "Seconds since this replica last polled the AP successfully"
    );
    metrics::describe_gauge!("mooring_build_info", "1, labelled with the version");
}

/// `GET /health`'s answer.
#[derive(ToSchema)]
#[allow(dead_code)]
pub(crate) struct HealthResponse {
    /// `ok`.
    status: String,
}

/// `GET /ready`'s answer: `ready`, and each check's `ok` or reason.
#[derive(ToSchema)]
#[allow(dead_code)]
pub(crate) struct ReadyResponse {
    status: String,
    checks: BTreeMap<String, String>,
}

/// `GET /ready`'s answer when not ready.
#[derive(ToSchema)]
#[allow(dead_code)]
pub(crate) struct NotReadyResponse {
    /// `not ready: ` and each failed check with its reason.
    error: String,
    checks: BTreeMap<String, String>,
}

/// Liveness: the process serves HTTP.
#[utoipa::path(get, path = "/health", tag = "Operations",
    responses((status = 200, description = "Alive", body = HealthResponse)))]
pub(crate) async fn health() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// Readiness: the store answers, its migrations are current, and the AP
/// answers when the payment engine is on.
#[utoipa::path(get, path = "/ready", tag = "Operations",
    responses(
        (status = 200, description = "Ready", body = ReadyResponse),
        (status = 503, description = "A check failed", body = NotReadyResponse),
    ))]
pub(crate) async fn ready(ops: web::Data<Operations>) -> HttpResponse {
    let Ok(readiness) = actix_web::rt::time::timeout(READY_BOUND, ops.readiness()).await else {
        return HttpResponse::ServiceUnavailable().json(json!({
            "error": format!("not ready: the checks took longer than {} s", READY_BOUND.as_secs()),
        }));
    };
    let mut checks = Map::new();
    let mut failed = Vec::new();
    for (name, result) in &readiness.checks {
        let value = match result {
            Ok(()) => "ok".to_owned(),
            Err(reason) => {
                failed.push(format!("{name}: {reason}"));
                reason.clone()
            }
        };
        checks.insert((*name).to_owned(), Value::String(value));
    }
    if failed.is_empty() {
        HttpResponse::Ok().json(json!({"status": "ready", "checks": checks}))
    } else {
        HttpResponse::ServiceUnavailable().json(json!({
            "error": format!("not ready: {}", failed.join("; ")),
            "checks": checks,
        }))
    }
}

/// Prometheus metrics (on the main port unless `metrics.bind` moves them).
#[utoipa::path(get, path = "/metrics", tag = "Operations",
    responses((status = 200, description = "Prometheus text format 0.0.4", body = String, content_type = "text/plain")))]
pub(crate) async fn metrics(endpoint: web::Data<MetricsEndpoint>) -> HttpResponse {
    match endpoint.ops.gauges().await {
        Ok(gauges) => record(&gauges),
        // The request metrics still render; the gauges keep their last value.
        Err(e) => tracing::warn!(error = %e, "cannot read the gauges for /metrics"),
    }
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(endpoint.handle.render())
}

/// Gauges are exposition only: amounts become floats here and nowhere else.
fn record(gauges: &Gauges) {
    for (state, n) in &gauges.payouts {
        metrics::gauge!("mooring_payouts", "state" => state.as_str()).set(*n as f64);
    }
    metrics::gauge!("mooring_event_inbox_depth").set(gauges.inbox_depth as f64);
    for (asset, reserved, limit) in &gauges.reservations {
        let asset = asset.as_str().to_owned();
        metrics::gauge!("mooring_quote_reserved", "asset" => asset.clone())
            .set(reserved.to_f64().unwrap_or(f64::NAN));
        if let Some(limit) = limit {
            metrics::gauge!("mooring_quote_liquidity_limit", "asset" => asset)
                .set(limit.to_f64().unwrap_or(f64::NAN));
        }
    }
    if let Some(lag) = gauges.poll_lag {
        metrics::gauge!("mooring_poll_lag_seconds").set(lag.num_milliseconds() as f64 / 1000.0);
    }
    metrics::gauge!("mooring_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
}
