//! The `mooring` binary as operators run it: JSON logs where every line of
//! a request carries its request id and every line of a payout's work its
//! AP transaction id, and a graceful stop on SIGTERM that finishes the
//! request in flight, stops the engine and exits 0.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mooring_apsim::{SimAuth, Simulator, spawn};
use mooring_testsupport::TestDb;
use serde_json::{Value, json};

use crate::engine::{Parties, engine_env, transaction, wait_for};
use crate::helpers::{ACCOUNT, MooringProcess, base_env};

/// The fields of every span enclosing a JSON log line, merged.
fn span_fields(line: &Value) -> serde_json::Map<String, Value> {
    let mut fields = serde_json::Map::new();
    for span in line["spans"].as_array().into_iter().flatten() {
        if let Some(map) = span.as_object() {
            fields.extend(map.clone());
        }
    }
    fields
}

fn in_span(line: &Value, name: &str) -> bool {
    line["spans"]
        .as_array()
        .is_some_and(|spans| spans.iter().any(|s| s["name"] == name))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_carry_the_ids_and_sigterm_stops_gracefully() {
    let sim = spawn(Simulator::new(false), SimAuth::None).expect("simulator");
    let db = TestDb::sqlite();
    let logs = tempfile::NamedTempFile::new().expect("log file");
    let mut env = base_env(&db);
    env.extend(engine_env(&sim, "rest"));
    env.extend([
        ("MOORING__LOG__FORMAT".to_owned(), "json".to_owned()),
        ("MOORING__LOG__LEVEL".to_owned(), "info".to_owned()),
        ("MOORING__PAYOUT__RAIL".to_owned(), "simulated".to_owned()),
    ]);
    let mut process =
        MooringProcess::start(env, Stdio::from(logs.reopen().expect("log file"))).await;
    let (port, base) = (process.port, process.base.clone());
    let child = &mut process.child;
    let client = reqwest::Client::new();

    // A request with the caller's id, and a payout.
    let put = client
        .put(format!("{base}/customer"))
        .header("X-Request-Id", "req-from-the-ap-1")
        .json(&json!({
            "account": ACCOUNT, "memo": "5", "memo_type": "id", "type": "sep31-receiver",
            "first_name": "Maria", "last_name": "Silva", "email_address": "maria@example.com",
            "bank_account_number": "0001234567", "bank_account_type": "checking", "bank_number": "341",
        }))
        .send()
        .await
        .expect("sent");
    assert_eq!(put.headers()["x-request-id"], "req-from-the-ap-1");
    let answer: Value = put.json().await.expect("json");
    let receiver = answer["id"].as_str().expect("id").to_owned();
    let sender: Value = client
        .put(format!("{base}/customer"))
        .json(&json!({
            "account": ACCOUNT, "memo": "4", "memo_type": "id", "type": "sep31-sender",
            "first_name": "Ana", "last_name": "Costa", "email_address": "ana@example.com",
        }))
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("json");
    let parties = Parties {
        sender: sender["id"].as_str().expect("id").to_owned(),
        receiver,
    };
    let id = sim.sim.create(transaction(&parties));
    assert!(sim.sim.receive(&id, None));
    wait_for(
        &sim.sim,
        std::slice::from_ref(&id),
        "completed",
        Duration::from_secs(20),
    )
    .await;

    // A request in flight when SIGTERM arrives: half its body sent.
    let body = json!({"account": ACCOUNT, "memo": "6", "type": "sep31-sender",
        "first_name": "Ana", "last_name": "Lima", "email_address": "ana@example.com"})
    .to_string();
    let (head, tail) = body.split_at(body.len() / 2);
    let mut slow = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    write!(
        slow,
        "PUT /customer HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nX-Request-Id: req-in-flight\r\nConnection: close\r\n\r\n{head}",
        body.len()
    )
    .expect("write");
    slow.flush().expect("flush");
    // The one wait left on a guess: nothing outside the server shows that
    // it has read the head of a request (no line is logged before the
    // answer). The head is a few bytes on loopback; 300 ms is ample.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let term = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(term.success());
    // Stopping has begun once the listener is closed: wait for that, with
    // a deadline, then send the rest of the request in flight.
    let closing_by = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_ok() {
        assert!(Instant::now() < closing_by, "mooring did not begin to stop");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    slow.write_all(tail.as_bytes())
        .expect("the rest of the body");
    let mut answer = String::new();
    slow.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    slow.read_to_string(&mut answer).expect("the answer");
    assert!(
        answer.starts_with("HTTP/1.1 200"),
        "the request in flight finished: {answer}"
    );

    let stopped_by = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        assert!(Instant::now() < stopped_by, "mooring did not stop");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(status.code(), Some(0), "a clean exit");
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "the port is closed"
    );

    let text = std::fs::read_to_string(logs.path()).expect("logs");
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let message = |l: &Value| l["fields"]["message"].as_str().unwrap_or("").to_owned();

    // Every line under a request carries its id, the caller's when given.
    let requests: Vec<&Value> = lines.iter().filter(|l| in_span(l, "request")).collect();
    assert!(!requests.is_empty());
    for line in &requests {
        assert!(span_fields(line).contains_key("request_id"), "{line}");
    }
    let traced: Vec<String> = requests
        .iter()
        .filter(|l| span_fields(l)["request_id"] == "req-from-the-ap-1")
        .map(|l| message(l))
        .collect();
    assert!(
        traced.contains(&"customer updated".to_owned()),
        "{traced:?}"
    );
    assert!(
        traced.contains(&"request finished".to_owned()),
        "{traced:?}"
    );
    assert!(
        requests
            .iter()
            .any(|l| span_fields(l)["request_id"] == "req-in-flight")
    );

    // Every line of the payout's work carries the AP transaction id.
    let work: Vec<&Value> = lines.iter().filter(|l| in_span(l, "run")).collect();
    assert!(work.iter().any(|l| message(l) == "payout moved"), "{text}");
    for line in &work {
        assert_eq!(span_fields(line)["transaction.id"], json!(id), "{line}");
    }

    let said: Vec<String> = lines.iter().map(message).collect();
    for expected in [
        "shutting down: finishing in-flight requests",
        "payment engine stopped",
    ] {
        assert!(
            said.iter().any(|m| m == expected),
            "no {expected:?} in {said:?}"
        );
    }
    // No PII in any line.
    for pii in ["Maria", "Silva", "0001234567", "ana@example.com", ACCOUNT] {
        assert!(!text.contains(pii), "{pii} was logged");
    }
}
