//! The callbacks over HTTP beside the no-op route, at each concurrency;
//! the raw SQL loops doing what `GET /customer` and `PUT /customer` do in
//! the store; and what encryption at rest adds to a request.

use std::path::Path;
use std::sync::Arc;

use diesel::RunQueryDsl;
use diesel::sql_types::{Binary, Nullable, Text};
use mooring_store::AnyConnection;
use serde_json::json;

use crate::load::{MakeRequest, closed_loop, open_loop, ops_per_second};

use super::report::HttpRow;
use super::server::{Mooring, base_env, store, watch_rss};
use super::{ACCOUNT, Report, Timing, USDC, db};

pub(super) fn get(url: String) -> MakeRequest {
    Arc::new(move |c: &reqwest::Client, _| c.get(&url))
}

pub(super) fn put_json(url: String, receiver: bool) -> MakeRequest {
    Arc::new(move |c: &reqwest::Client, n| {
        let mut body = json!({"account": ACCOUNT, "memo": (1_000_000_000 + n).to_string(),
            "memo_type": "id", "type": "sep31-sender",
            "first_name": "John", "last_name": "Doe", "email_address": "john@example.com"});
        if receiver {
            body["type"] = json!("sep31-receiver");
        }
        c.put(&url).json(&body)
    })
}

pub(super) fn put_multipart(url: String) -> MakeRequest {
    let photo = vec![0xA5u8; 1024];
    Arc::new(move |c: &reqwest::Client, n| {
        let form = reqwest::multipart::Form::new()
            .text("account", ACCOUNT)
            .text("memo", (2_000_000_000 + n).to_string())
            .text("memo_type", "id")
            .text("type", "sep31-sender")
            .text("first_name", "John")
            .text("last_name", "Doe")
            .text("email_address", "john@example.com")
            .part(
                "photo_id_front",
                reqwest::multipart::Part::bytes(photo.clone()).file_name("id.png"),
            );
        c.put(&url).multipart(form)
    })
}

#[derive(diesel::QueryableByName)]
#[allow(dead_code)]
pub(super) struct CustomerRow {
    #[diesel(sql_type = Text)]
    id: String,
    #[diesel(sql_type = Text)]
    review: String,
}

#[derive(diesel::QueryableByName)]
#[allow(dead_code)]
pub(super) struct KeyRow {
    #[diesel(sql_type = Text)]
    kek_id: String,
    #[diesel(sql_type = Binary)]
    wrapped: Vec<u8>,
}

#[derive(diesel::QueryableByName)]
#[allow(dead_code)]
pub(super) struct FieldRow {
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Nullable<Binary>)]
    sealed: Option<Vec<u8>>,
}

/// What `GET /customer` reads, as raw SQL: the customer by account and
/// memo, its data key's row, then its sealed fields. No decryption (the
/// report's "Encryption at rest" section measures that apart).
pub(super) fn raw_select(
    conn: &mut AnyConnection,
    memo: &str,
) -> Result<usize, diesel::result::Error> {
    let rows: Vec<CustomerRow> = diesel::sql_query(format!(
        "SELECT id, review FROM customers WHERE account = '{ACCOUNT}' AND memo = '{memo}'"
    ))
    .load(conn)?;
    let Some(c) = rows.first() else {
        return Ok(0);
    };
    let key: Vec<KeyRow> = diesel::sql_query(format!(
        "SELECT kek_id, wrapped FROM data_keys WHERE customer_id = '{}'",
        c.id
    ))
    .load(conn)?;
    let fields: Vec<FieldRow> = diesel::sql_query(format!(
        "SELECT name, sealed FROM customer_fields WHERE customer_id = '{}'",
        c.id
    ))
    .load(conn)?;
    Ok(1 + key.len() + fields.iter().filter(|f| f.sealed.is_some()).count())
}

/// Bytes as an SQL literal of each backend.
pub(super) fn blob(conn: &AnyConnection, bytes: &[u8]) -> String {
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    match conn {
        AnyConnection::Postgresql(_) => format!("'\\x{hex}'::bytea"),
        AnyConnection::Sqlite(_) => format!("X'{hex}'"),
    }
}

/// Sealed bytes of the sizes the store writes for a new sender: a wrapped
/// data key and the three fields, sealed once up front (the raw loop times
/// the SQL, not the AEAD).
pub struct SealedSender {
    wrapped: Vec<u8>,
    fields: [(&'static str, Vec<u8>); 3],
}

impl SealedSender {
    pub fn new() -> Self {
        let key = mooring_ports::DataKey::generate();
        let seal = |name: &str, value: &str| key.seal(name.as_bytes(), value.as_bytes());
        Self {
            wrapped: mooring_ports::DataKey::generate().seal(b"data-key", key.expose()),
            fields: [
                ("first_name", seal("first_name", "John")),
                ("last_name", seal("last_name", "Doe")),
                ("email_address", seal("email_address", "john@example.com")),
            ],
        }
    }
}

/// What `PUT /customer` writes for a new sender, as raw SQL: the customer,
/// its data key and three sealed fields, in one transaction.
pub(super) fn raw_insert(
    conn: &mut AnyConnection,
    n: u64,
    sealed: &SealedSender,
) -> Result<(), diesel::result::Error> {
    let now = "2026-01-01 00:00:00";
    let id = uuid::Uuid::new_v4();
    let memo = 3_000_000_000u64 + n;
    let fields: Vec<String> = sealed
        .fields
        .iter()
        .map(|(name, bytes)| format!("('{id}', '{name}', '', {}, '{now}')", blob(conn, bytes)))
        .collect();
    let statements = [
        format!(
            "INSERT INTO customers (id, account, memo, memo_type, customer_type, review, created_at, updated_at) \
             VALUES ('{id}', '{ACCOUNT}', '{memo}', 'id', 'sep31-sender', 'pending', '{now}', '{now}')"
        ),
        format!(
            "INSERT INTO data_keys (customer_id, kek_id, wrapped, created_at) \
             VALUES ('{id}', '0123456789abcdef', {}, '{now}')",
            blob(conn, &sealed.wrapped)
        ),
        format!(
            "INSERT INTO customer_fields (customer_id, name, legacy_value, sealed, updated_at) VALUES {}",
            fields.join(", ")
        ),
    ];
    match conn {
        AnyConnection::Postgresql(c) => diesel::Connection::transaction(c, |c| {
            for s in &statements {
                diesel::sql_query(s).execute(c)?;
            }
            Ok(())
        }),
        AnyConnection::Sqlite(c) => {
            diesel::connection::SimpleConnection::batch_execute(c, "BEGIN IMMEDIATE")?;
            let result = statements
                .iter()
                .try_for_each(|s| diesel::sql_query(s).execute(c).map(|_| ()));
            let end = if result.is_ok() { "COMMIT" } else { "ROLLBACK" };
            diesel::connection::SimpleConnection::batch_execute(c, end)?;
            result
        }
    }
}

pub(super) async fn http(
    bin: &Path,
    backend: &'static str,
    t: &Timing,
    report: &mut Report,
) -> anyhow::Result<()> {
    eprintln!("bench: HTTP on {backend}");
    let db = db(backend);
    let server = Mooring::start(bin, &base_env(&db)).await?;
    let client = reqwest::Client::new();
    let seeded = client
        .put(server.url("/customer"))
        .json(
            &json!({"account": ACCOUNT, "memo": "1", "memo_type": "id", "type": "sep31-sender",
            "first_name": "John", "last_name": "Doe", "email_address": "john@example.com"}),
        )
        .send()
        .await?;
    anyhow::ensure!(seeded.status().is_success(), "seeding a customer failed");
    let rate = |kind: &str| {
        server.url(&format!(
            "/rate?type={kind}&sell_asset={USDC}&buy_asset=iso4217:BRL&sell_amount=100"
        ))
    };
    let routes: Vec<(&'static str, MakeRequest)> = vec![
        ("GET /rate (indicative)", get(rate("indicative"))),
        ("GET /rate (firm)", get(rate("firm"))),
        (
            "GET /customer",
            get(server.url(&format!(
                "/customer?account={ACCOUNT}&memo=1&memo_type=id&type=sep31-sender"
            ))),
        ),
        (
            "PUT /customer (JSON)",
            put_json(server.url("/customer"), false),
        ),
        (
            "PUT /customer (multipart)",
            put_multipart(server.url("/customer")),
        ),
    ];
    let (stop, peak) = watch_rss(server.child.id());
    let mut peak_indicative: f64 = 0.0;
    for &c in t.concurrencies {
        let baseline = closed_loop(get(server.url("/health")), c, t.warmup, t.run).await;
        for (route, make) in &routes {
            let measured = closed_loop(make.clone(), c, t.warmup, t.run).await;
            if *route == "GET /rate (indicative)" {
                peak_indicative = peak_indicative.max(measured.rps);
            }
            eprintln!(
                "bench:   {route} c={c}: {:.0} req/s (no-op {:.0}), p99 {:.2} ms, errors {}",
                measured.rps, baseline.rps, measured.p99_ms, measured.errors
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
    let half = open_loop(routes[0].1.clone(), peak_indicative / 2.0, t.run).await;
    let _ = stop.send(true);
    let loaded_rss = peak.await.unwrap_or(0);
    report.figures.insert(
        format!("{backend}_rate_indicative_at_half_peak"),
        json!({"rate": peak_indicative / 2.0, "measured": half.json()}),
    );
    report
        .figures
        .insert(format!("{backend}_loaded_rss_kib"), json!(loaded_rss));
    let ratio = best(&report.http, backend, "GET /rate (indicative)", &|r| {
        r.measured.rps / r.baseline.rps.max(1.0)
    });
    report.target(
        &format!("GET /rate indicative vs the no-op route, {backend} (best concurrency)"),
        format!("{ratio:.2}×"),
        "≥ 0.6×",
        ratio >= 0.6,
    );
    report.target(
        &format!(
            "GET /rate indicative p99 at half of peak ({:.0} req/s), {backend}",
            peak_indicative / 2.0
        ),
        format!("{:.2} ms (at {:.0} req/s achieved)", half.p99_ms, half.rps),
        "≤ 2 ms",
        half.p99_ms <= 2.0 && half.errors == 0,
    );
    report.target(
        &format!("RSS under load, {backend}"),
        format!("{:.1} MB", loaded_rss as f64 / 1024.0),
        "≤ 64 MB",
        loaded_rss as f64 / 1024.0 <= 64.0,
    );

    // The store's own speed through the same pool: the raw loops.
    let store = store(&db).await?;
    let c = *t.concurrencies.last().unwrap_or(&16);
    let sealed = Arc::new(SealedSender::new());
    // Each loop once, loudly: a loop that fails (a column renamed) must stop
    // the run, not count as zero.
    let read = store.with_connection(|c| raw_select(c, "1")).await?;
    anyhow::ensure!(
        read == 5,
        "the raw select read {read} rows, not the customer, its key and 3 fields"
    );
    let first = sealed.clone();
    store
        .with_connection(move |c| raw_insert(c, u64::MAX / 2, &first))
        .await?;
    let s = store.clone();
    let select = ops_per_second(
        move |_| {
            let s = s.clone();
            async move {
                s.with_connection(|c| raw_select(c, "1"))
                    .await
                    .is_ok_and(|n| n > 0)
            }
        },
        c,
        t.run,
    )
    .await;
    let s = store.clone();
    let insert = ops_per_second(
        move |n| {
            let (s, sealed) = (s.clone(), sealed.clone());
            async move {
                s.with_connection(move |c| raw_insert(c, n, &sealed))
                    .await
                    .is_ok()
            }
        },
        c,
        t.run,
    )
    .await;
    let at_c = |r: &HttpRow| {
        if r.concurrency == c {
            r.measured.rps
        } else {
            0.0
        }
    };
    let get_rps = best(&report.http, backend, "GET /customer", &at_c);
    let put_rps = best(&report.http, backend, "PUT /customer (JSON)", &at_c);
    report.figures.insert(
        format!("{backend}_store_baseline"),
        json!({"concurrency": c, "raw_select_per_s": select, "raw_insert_per_s": insert,
               "get_customer_rps": get_rps, "put_customer_rps": put_rps}),
    );
    let target = if backend == "postgres" {
        "≥ 0.7×"
    } else {
        "(reported)"
    };
    report.target(
        &format!("GET /customer vs raw select loop, {backend}, c={c}"),
        format!(
            "{:.2}× ({get_rps:.0} vs {select:.0}/s)",
            get_rps / select.max(1.0)
        ),
        target,
        backend != "postgres" || get_rps / select.max(1.0) >= 0.7,
    );
    report.target(
        &format!("PUT /customer vs raw insert loop, {backend}, c={c}"),
        format!(
            "{:.2}× ({put_rps:.0} vs {insert:.0}/s)",
            put_rps / insert.max(1.0)
        ),
        target,
        backend != "postgres" || put_rps / insert.max(1.0) >= 0.7,
    );
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

/// The highest `f` over one backend's rows of one route.
pub(super) fn best(
    rows: &[HttpRow],
    backend: &str,
    route: &str,
    f: &dyn Fn(&HttpRow) -> f64,
) -> f64 {
    rows.iter()
        .filter(|r| r.backend == backend && r.route == route)
        .map(f)
        .fold(0.0, f64::max)
}
