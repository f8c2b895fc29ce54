//! `/health`, `/ready` and `/metrics` through the real server: no
//! authentication, readiness of the store, its migrations and the AP, and
//! the metrics operators scrape.

use mooring_apsim::{SimAuth, Simulator, spawn};
use mooring_testsupport::{TestDb, on_both_backends};
use serde_json::json;

use crate::helpers::{
    ACCOUNT, JWT_SECRET, MooringProcess, TestApp, config_file, free_port, spawn_app_with,
    status_and_json,
};

const USDC: &str = "stellar:USDC:GBBD47IF6LWK7P7MDEVSCWR7DPUWV3NY3DTQEVFL4NAT4AQH3ZLLFLA5";

const JWT: [(&str, &str); 2] = [
    ("CALLBACK_API_AUTH_TYPE", "jwt"),
    ("SECRET_CALLBACK_API_AUTH_SECRET", JWT_SECRET),
];

impl TestApp {
    async fn plain_get(&self, url: String) -> (u16, String) {
        let response = self.client.get(url).send().await.expect("sent");
        let status = response.status().as_u16();
        (status, response.text().await.expect("body"))
    }
}

async fn health_and_ready_answer_without_authentication(db: TestDb) {
    let app = spawn_app_with(db, &JWT).await;

    let health = app
        .client
        .get(app.url("/health"))
        .send()
        .await
        .expect("sent");
    assert_eq!(
        status_and_json(health).await,
        (200, json!({"status": "ok"}))
    );
    let ready = app
        .client
        .get(app.url("/ready"))
        .send()
        .await
        .expect("sent");
    assert_eq!(
        status_and_json(ready).await,
        (
            200,
            json!({"status": "ready", "checks": {"store": "ok", "migrations": "ok"}})
        ),
        "the engine is off: the AP is not checked"
    );
    // The callback routes still ask for it.
    let customer = app
        .client
        .get(app.url("/customer"))
        .send()
        .await
        .expect("sent");
    assert_eq!(customer.status().as_u16(), 401);
    let wrong = app
        .client
        .post(app.url("/ready"))
        .send()
        .await
        .expect("sent");
    assert_eq!(wrong.status().as_u16(), 405);
    let doc = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .expect("sent");
    assert_eq!(doc.status().as_u16(), 200);
    assert_eq!(doc.headers()["content-type"], "application/json");
    assert_eq!(
        doc.text().await.expect("body"),
        mooring_http::openapi_document()
    );
}

async fn ready_checks_the_ap_when_the_engine_is_on(db: TestDb) {
    let sim = spawn(Simulator::new(false), SimAuth::None).expect("simulator");
    let app = crate::engine::start(db, &sim, "rest", &[]).await;
    let ready = app
        .client
        .get(app.url("/ready"))
        .send()
        .await
        .expect("sent");
    let (status, body) = status_and_json(ready).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["checks"]["platform"], "ok");
}

#[tokio::test(flavor = "multi_thread")]
async fn ready_is_503_while_the_ap_is_unreachable() {
    let ap = format!("http://127.0.0.1:{}", free_port());
    let app = spawn_app_with(
        TestDb::sqlite(),
        &[
            ("MOORING__PLATFORM__ENABLED", "true"),
            ("MOORING__PLATFORM__MAX_ATTEMPTS", "1"),
            ("PLATFORM_API_BASE_URL", &ap),
        ],
    )
    .await;
    let ready = app
        .client
        .get(app.url("/ready"))
        .send()
        .await
        .expect("sent");
    let (status, body) = status_and_json(ready).await;
    assert_eq!(status, 503, "{body}");
    let error = body["error"].as_str().expect("an error");
    assert!(error.starts_with("not ready: platform: "), "{error}");
    assert_eq!(body["checks"]["store"], "ok");
    assert_eq!(body["checks"]["migrations"], "ok");
    assert!(
        body["checks"]["platform"]
            .as_str()
            .is_some_and(|p| p.contains("unreachable")),
        "{body}"
    );
    // Liveness is not readiness: the process itself is fine.
    let health = app
        .client
        .get(app.url("/health"))
        .send()
        .await
        .expect("sent");
    assert_eq!(health.status().as_u16(), 200);
}

async fn metrics_count_requests_and_report_the_gauges(db: TestDb) {
    let file = config_file("[liquidity]\n\"iso4217:BRL\" = \"1000\"\n");
    let path = file.path().to_str().expect("utf-8").to_owned();
    let mut env = JWT.to_vec();
    env.extend([
        ("MOORING_CONFIG", path.as_str()),
        ("CALLBACK_API_AUTH_TYPE", "none"),
    ]);
    // A process of its own: its metrics are this test's alone, so the
    // counts below are exact (a test server in this process would share the
    // recorder with every other test).
    let mut env_map = crate::helpers::base_env(&db);
    env_map.extend(env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    let process = MooringProcess::start(env_map, std::process::Stdio::null()).await;
    let client = reqwest::Client::new();
    let url = |path: &str| format!("{}{path}", process.base);
    let customer = client
        .get(url("/customer"))
        .query(&[("account", ACCOUNT)])
        .send()
        .await
        .expect("sent");
    assert_eq!(customer.status().as_u16(), 200);
    let firm = client
        .get(url("/rate"))
        .query(&[
            ("type", "firm"),
            ("sell_asset", USDC),
            ("buy_asset", "iso4217:BRL"),
            ("buy_amount", "100"),
        ])
        .send()
        .await
        .expect("sent");
    assert_eq!(firm.status().as_u16(), 200);
    let nowhere = client.get(url("/nowhere/42")).send().await.expect("sent");
    assert_eq!(nowhere.status().as_u16(), 404);
    let made_up = reqwest::Method::from_bytes(b"R4ND0M").expect("a method");
    let odd = client
        .request(made_up, url("/customer"))
        .send()
        .await
        .expect("sent");
    assert!(odd.status().is_client_error(), "{}", odd.status());

    let response = client.get(url("/metrics")).send().await.expect("sent");
    assert_eq!(response.status().as_u16(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    let text = response.text().await.expect("body");

    let has = |metric: &str, labels: &[&str]| {
        text.lines().any(|line| {
            line.starts_with(&format!("{metric}{{")) && labels.iter().all(|l| line.contains(l))
        })
    };
    // The value of the one series of `metric` with these labels.
    let value = |metric: &str, labels: &[&str]| {
        let lines: Vec<&str> = text
            .lines()
            .filter(|line| {
                line.starts_with(&format!("{metric}{{")) && labels.iter().all(|l| line.contains(l))
            })
            .collect();
        assert_eq!(lines.len(), 1, "{metric} {labels:?}: {lines:?}");
        lines[0].rsplit(' ').next().unwrap_or("").to_owned()
    };
    // Exactly the requests this test made.
    assert_eq!(
        value(
            "mooring_http_requests_total",
            &[r#"method="GET""#, r#"route="/customer""#, r#"status="200""#]
        ),
        "1",
        "{text}"
    );
    assert_eq!(
        value(
            "mooring_http_requests_total",
            &[r#"route="<unmatched>""#, r#"status="404""#]
        ),
        "1"
    );
    assert!(has(
        "mooring_http_request_duration_seconds_bucket",
        &[r#"route="/rate""#, r#"le="0.005""#]
    ));
    assert!(has("mooring_payouts", &[r#"state="completed""#]));
    assert!(has("mooring_payouts", &[r#"state="awaiting_kyc""#]));
    assert!(
        text.lines()
            .any(|l| l.starts_with("mooring_event_inbox_depth "))
    );
    assert!(has("mooring_quote_reserved", &[r#"asset="iso4217:BRL""#]));
    assert!(
        text.lines()
            .any(|l| l == r#"mooring_quote_liquidity_limit{asset="iso4217:BRL"} 1000"#),
        "{text}"
    );
    assert!(text.contains("# HELP mooring_payouts "));
    assert!(has("mooring_build_info", &["version="]));
    // A made-up method is OTHER: a client cannot add series without end.
    assert_eq!(
        value("mooring_http_requests_total", &[r#"method="OTHER""#]),
        "1",
        "{text}"
    );
    assert!(!text.contains("R4ND0M"));
    // Route patterns, never the query string (accounts are PII).
    assert!(!text.contains(ACCOUNT));
    assert!(!text.contains("/nowhere/42"));
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_bind_moves_metrics_to_a_listener_of_their_own() {
    let app = spawn_app_with(
        TestDb::sqlite(),
        &[("MOORING__METRICS__BIND", "127.0.0.1:0")],
    )
    .await;
    let own = app.metrics_address.clone().expect("a metrics listener");

    let (status, body) = app.plain_get(app.url("/metrics")).await;
    assert_eq!(status, 404, "not on the main port any more: {body}");
    let (status, body) = app.plain_get(format!("{own}/metrics")).await;
    assert_eq!(status, 200);
    assert!(body.contains("mooring_payouts{"), "{body}");
    let (status, _) = app.plain_get(format!("{own}/customer")).await;
    assert_eq!(status, 404, "the metrics listener serves nothing else");
    let (status, _) = app.plain_get(app.url("/health")).await;
    assert_eq!(status, 200);
}

on_both_backends!(
    health_and_ready_answer_without_authentication,
    ready_checks_the_ap_when_the_engine_is_on,
    metrics_count_requests_and_report_the_gauges,
);
