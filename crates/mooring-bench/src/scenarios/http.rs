//! The callbacks over HTTP beside the no-op route, at each concurrency,
//! the generator calibrated against `wrk` on the same route; the store's
//! raw loops (`baseline`) beside `GET /customer`, `PUT /customer` and a
//! firm `GET /rate`; and what encryption at rest adds to a request.

use std::path::Path;
use std::sync::Arc;

use hyper::Method;
use serde_json::json;

use crate::load::{Template, closed_loop, open_loop, ops_per_second};
use crate::wrk::wrk;

use super::baseline::{data_key_of, raw_insert, raw_quote, raw_select};
use super::report::{Calibration, HttpRow};
use super::server::{Mooring, base_env, store, watch_rss};
use super::{ACCOUNT, Report, Timing, USDC, db};

const SENDER_JSON: &str = concat!(
    r#"{"account":"GDJUOFZGW5WYBK4GIETCSSM6MTTIJ4SUMCQITPTLUWMQ6B4UIX2IEX47","memo_type":"id","#,
    r#""type":"sep31-sender","first_name":"John","last_name":"Doe","email_address":"john@example.com","#,
    r#""memo":"1"#
);

/// A new sender per request (its memo is the request's number), as JSON.
pub(super) fn put_json() -> Template {
    Template::numbered(
        Method::PUT,
        "/customer",
        "application/json",
        SENDER_JSON.as_bytes().to_vec(),
        br#""}"#.to_vec(),
    )
}

/// A new sender per request with a 1 KiB photo, as multipart.
pub(super) fn put_multipart() -> Template {
    const B: &str = "mooringbenchboundary";
    let part = |name: &str, value: &str| {
        format!("--{B}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n")
    };
    let mut head = [
        part("account", ACCOUNT),
        part("memo_type", "id"),
        part("type", "sep31-sender"),
        part("first_name", "John"),
        part("last_name", "Doe"),
        part("email_address", "john@example.com"),
        format!(
            "--{B}\r\nContent-Disposition: form-data; name=\"photo_id_front\"; filename=\"id.png\"\r\n\
             Content-Type: image/png\r\n\r\n"
        ),
    ]
    .concat()
    .into_bytes();
    head.extend_from_slice(&[0xA5; 1024]);
    head.extend_from_slice(
        format!("\r\n--{B}\r\nContent-Disposition: form-data; name=\"memo\"\r\n\r\n2").as_bytes(),
    );
    Template::numbered(
        Method::PUT,
        "/customer",
        &format!("multipart/form-data; boundary={B}"),
        head,
        format!("\r\n--{B}--\r\n").into_bytes(),
    )
}

/// The buy asset firm quotes reserve, under a cap they never reach.
const CAPPED: &str = "iso4217:BRL";

/// A configuration file capping the liquidity of [`CAPPED`], so that every
/// firm quote takes the reserving path (lock, sum, insert).
fn liquidity_config() -> anyhow::Result<tempfile::NamedTempFile> {
    let mut file = tempfile::Builder::new().suffix(".toml").tempfile()?;
    std::io::Write::write_all(
        &mut file,
        format!("[liquidity]\n\"{CAPPED}\" = \"1000000000000\"\n").as_bytes(),
    )?;
    Ok(file)
}

pub(super) async fn http(
    bin: &Path,
    backend: &'static str,
    t: &Timing,
    report: &mut Report,
) -> anyhow::Result<()> {
    eprintln!("bench: HTTP on {backend}");
    let db = db(backend);
    let config = liquidity_config()?;
    let mut env = base_env(&db);
    env.push(("MOORING_CONFIG".into(), config.path().display().to_string()));
    let server = Mooring::start(bin, &env).await?;
    let base = server.url("");
    let seeded = reqwest::Client::new()
        .put(server.url("/customer"))
        .json(
            &json!({"account": ACCOUNT, "memo": "1", "memo_type": "id", "type": "sep31-sender",
            "first_name": "John", "last_name": "Doe", "email_address": "john@example.com"}),
        )
        .send()
        .await?;
    anyhow::ensure!(seeded.status().is_success(), "seeding a customer failed");
    let rate = |kind: &str| {
        Template::get(&format!(
            "/rate?type={kind}&sell_asset={USDC}&buy_asset={CAPPED}&sell_amount=100"
        ))
    };
    let routes: Vec<(&'static str, Template)> = vec![
        ("GET /rate (indicative)", rate("indicative")),
        ("GET /rate (firm)", rate("firm")),
        (
            "GET /customer",
            Template::get(&format!(
                "/customer?account={ACCOUNT}&memo=1&memo_type=id&type=sep31-sender"
            )),
        ),
        ("PUT /customer (JSON)", put_json()),
        ("PUT /customer (multipart)", put_multipart()),
    ];
    let health = Template::get("/health");
    let (stop, peak) = watch_rss(server.child.id());
    let mut peak_indicative: f64 = 0.0;
    for &c in t.concurrencies {
        let baseline = closed_loop(&base, &health, c, t.warmup, t.run).await?;
        baseline.ensure_clean(&format!("GET /health c={c}"))?;
        let by_wrk = wrk(&server.url("/health"), c, t.run)?;
        if let Some(w) = &by_wrk {
            w.ensure_clean(&format!("wrk GET /health c={c}"))?;
        }
        eprintln!(
            "bench:   no-op route c={c}: hyper {:.0} req/s, wrk {}",
            baseline.rps,
            by_wrk
                .as_ref()
                .map_or("not installed".into(), |w| format!("{:.0} req/s", w.rps))
        );
        report.calibration.push(Calibration {
            backend,
            concurrency: c,
            hyper: baseline.clone(),
            wrk: by_wrk,
        });
        for (route, template) in &routes {
            let measured = closed_loop(&base, template, c, t.warmup, t.run).await?;
            measured.ensure_clean(&format!("{route} c={c}"))?;
            if *route == "GET /rate (indicative)" {
                peak_indicative = peak_indicative.max(measured.rps);
            }
            eprintln!(
                "bench:   {route} c={c}: {:.0} req/s (no-op {:.0}), p50 {:.2} ms, p99 {:.2} ms",
                measured.rps, baseline.rps, measured.p50_ms, measured.p99_ms
            );
            report.http.push(HttpRow {
                backend,
                route,
                concurrency: c,
                measured,
                baseline: baseline.clone(),
            });
        }
    }
    // Latency at half of the indicative rate's peak, open loop.
    let half = open_loop(&base, &routes[0].1, peak_indicative / 2.0, t.run).await?;
    half.ensure_clean("GET /rate (indicative) at half of peak")?;
    // The no-op route on the same schedule: the tail that the machine (two
    // cores shared by generator and server) adds to any route.
    let half_noop = open_loop(&base, &health, peak_indicative / 2.0, t.run).await?;
    half_noop.ensure_clean("GET /health at half of the indicative peak")?;
    let _ = stop.send(true);
    let loaded_rss = peak
        .await?
        .ok_or_else(|| anyhow::anyhow!("the server's RSS could not be read"))?;
    report.figures.insert(
        format!("{backend}_rate_indicative_at_half_peak"),
        json!({"rate": peak_indicative / 2.0, "measured": half.json(), "no_op_route": half_noop.json()}),
    );
    report
        .figures
        .insert(format!("{backend}_loaded_rss_kib"), json!(loaded_rss));
    // Peak against peak: at one connection the two are latency-bound and
    // equal, which says nothing of the route's cost.
    let peak_noop = report
        .calibration
        .iter()
        .filter(|c| c.backend == backend)
        .map(|c| c.hyper.rps)
        .fold(0.0, f64::max);
    anyhow::ensure!(peak_noop > 0.0, "no no-op figure on {backend}");
    let ratio = peak_indicative / peak_noop;
    report.target(
        &format!("GET /rate indicative vs the no-op route, {backend} (hyper, peak of each)"),
        format!("{ratio:.2}× ({peak_indicative:.0} vs {peak_noop:.0} req/s)"),
        "≥ 0.85×",
        ratio >= 0.85,
    );
    report.target(
        &format!(
            "GET /rate indicative p99 at half of peak ({:.0} req/s), {backend} (hyper, open loop)",
            peak_indicative / 2.0
        ),
        format!("{:.2} ms (at {:.0} req/s achieved)", half.p99_ms, half.rps),
        "≤ 1 ms",
        half.p99_ms <= 1.0,
    );
    report.reported(
        &format!(
            "GET /health p99 on the same schedule, {backend} (hyper, open loop): the machine's own tail"
        ),
        format!(
            "{:.2} ms (p50 {:.2} ms, at {:.0} req/s achieved)",
            half_noop.p99_ms, half_noop.p50_ms, half_noop.rps
        ),
    );
    report.target(
        &format!("RSS under load, {backend}"),
        format!("{:.1} MB", loaded_rss as f64 / 1024.0),
        "≤ 48 MB",
        loaded_rss as f64 / 1024.0 <= 48.0,
    );
    for c in [16, 64] {
        let Some(row) = report.http.iter().find(|r| {
            r.backend == backend && r.route == "PUT /customer (JSON)" && r.concurrency == c
        }) else {
            continue;
        };
        let (p50, p99) = (row.measured.p50_ms, row.measured.p99_ms);
        report.target(
            &format!("PUT /customer (JSON) p99 at {c} connections, {backend} (hyper)"),
            format!("{p99:.2} ms, {:.1}× its p50 of {p50:.2} ms", p99 / p50),
            "≤ 5× its p50",
            p99 <= 5.0 * p50,
        );
    }
    store_baselines(&db, backend, t, report).await
}

/// Runs a raw loop's step on a pooled connection, through the store's
/// semaphore and blocking pool as the ports do.
async fn raw<T: Send + 'static>(
    store: &mooring_store::Store,
    f: impl FnOnce(&mut mooring_store::AnyConnection) -> anyhow::Result<T> + Send + 'static,
) -> anyhow::Result<T> {
    store.with_connection(move |c| Ok(f(c))).await?
}

/// [`raw`] for a step that only reads, dispatched as the store's reads
/// are: on SQLite on the calling thread when a connection is free.
async fn raw_read<T: Send + 'static>(
    store: &mooring_store::Store,
    f: impl FnOnce(&mut mooring_store::AnyConnection) -> anyhow::Result<T> + Send + 'static,
) -> anyhow::Result<T> {
    store.with_read_connection(move |c| Ok(f(c))).await?
}

/// The raw loops through the same pool, beside the HTTP rows at the
/// highest concurrency.
async fn store_baselines(
    db: &mooring_testsupport::TestDb,
    backend: &'static str,
    t: &Timing,
    report: &mut Report,
) -> anyhow::Result<()> {
    let store = store(db).await?;
    let kek = Arc::new(mooring_keys::Keyring::parse(
        mooring_testsupport::TEST_PII_KEY,
        &[],
    )?);
    let c = *t.concurrencies.last().unwrap_or(&16);
    let k = kek.clone();
    let (_, key) = raw(&store, move |conn| data_key_of(conn, &k, "1")).await?;
    let key = Arc::new(key);
    // Each loop once, loudly: a loop that no longer matches the schema
    // stops the run instead of counting as zero.
    let k = key.clone();
    let opened = raw(&store, move |conn| raw_select(conn, "1", &k)).await?;
    anyhow::ensure!(opened == 3, "the raw select opened {opened} fields, not 3");
    let s = store.clone();
    let select = ops_per_second(
        move |_| {
            let (s, key) = (s.clone(), key.clone());
            async move { raw_read(&s, move |c| raw_select(c, "1", &key).map(|_| ())).await }
        },
        c,
        t.run,
    )
    .await?;
    let s = store.clone();
    let insert = ops_per_second(
        move |n| {
            let (s, kek) = (s.clone(), kek.clone());
            async move { raw(&s, move |c| raw_insert(c, &kek, n)).await }
        },
        c,
        t.run,
    )
    .await?;
    let s = store.clone();
    let quote = ops_per_second(
        move |_| {
            let s = s.clone();
            async move { raw(&s, |c| raw_quote(c, CAPPED)).await }
        },
        c,
        t.run,
    )
    .await?;
    let at_c = |route: &str| {
        report
            .http
            .iter()
            .find(|r| r.backend == backend && r.route == route && r.concurrency == c)
            .map(|r| r.measured.rps)
            .ok_or_else(|| anyhow::anyhow!("no {route} row at c={c}"))
    };
    let (get_rps, put_rps, firm_rps) = (
        at_c("GET /customer")?,
        at_c("PUT /customer (JSON)")?,
        at_c("GET /rate (firm)")?,
    );
    report.figures.insert(
        format!("{backend}_store_baseline"),
        json!({"concurrency": c, "raw_select_per_s": select, "raw_insert_per_s": insert,
               "raw_quote_per_s": quote, "get_customer_rps": get_rps, "put_customer_rps": put_rps,
               "firm_rate_rps": firm_rps}),
    );
    let (get_target, put_target) = if backend == "postgres" {
        (0.85, 0.7)
    } else {
        (0.7, 0.8)
    };
    let rows = [
        (
            "GET /customer vs the raw select loop",
            get_rps,
            select,
            get_target,
        ),
        (
            "PUT /customer vs the raw insert loop",
            put_rps,
            insert,
            put_target,
        ),
        ("GET /rate firm vs the raw quote loop", firm_rps, quote, 0.8),
    ];
    for (name, product, raw, target) in rows {
        let ratio = product / raw;
        report.target(
            &format!("{name}, {backend}, c={c} (hyper)"),
            format!("{ratio:.2}× ({product:.0} vs {raw:.0}/s)"),
            &format!("≥ {target}×"),
            ratio >= target,
        );
    }
    Ok(())
}

/// What sealing and opening cost, beside the HTTP rows' latency at
/// concurrency 1 (the AEAD work is per request and does not wait on I/O).
pub(super) fn encryption(t: &Timing, report: &mut Report) -> anyhow::Result<()> {
    eprintln!("bench: encryption at rest");
    let kek = mooring_keys::Keyring::parse(mooring_testsupport::TEST_PII_KEY, &[])?;
    let cost = crate::crypto::measure(&kek, t.run)?;
    report
        .figures
        .insert("encryption_at_rest".into(), cost.json());
    for backend in ["sqlite", "postgres"] {
        let p50_us = |route: &str| {
            report
                .http
                .iter()
                .find(|r| r.backend == backend && r.route == route && r.concurrency == 1)
                .map(|r| r.measured.p50_ms * 1000.0)
        };
        let (Some(get), Some(put)) = (p50_us("GET /customer"), p50_us("PUT /customer (JSON)"))
        else {
            continue;
        };
        report.encryption.extend([
            (
                backend,
                "GET /customer",
                "open 3 fields (data key remembered)",
                cost.open_fields_us,
                get,
            ),
            (
                backend,
                "GET /customer, first read after a start",
                "open 3 fields and unwrap the data key",
                cost.open_fields_us + cost.unwrap_key_us,
                get,
            ),
            (
                backend,
                "PUT /customer, new sender",
                "make and wrap a data key, seal 3 fields",
                cost.new_customer_us,
                put,
            ),
        ]);
    }
    Ok(())
}
