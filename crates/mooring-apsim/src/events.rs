//! The AP's events: queued on every change of a transaction, and delivered
//! to the business server's `POST /event` as the AP's event processor does
//! (retrying until a 2xx or 3xx; with faults, each twice or newest first).

use std::time::Duration;

use serde_json::{Value, json};

use crate::{Simulator, State, Tx, now};

/// Where events go: the business server's base URL and the auth header
/// the AP would send.
#[derive(Debug, Clone)]
pub struct EventSink {
    pub url: String,
    pub header: Option<(String, String)>,
}

/// Queues the AP's event about a transaction. Every change of a
/// transaction comes through here, and the poll's index is rebuilt when the
/// change gave the transaction a `transfer_received_at` the index does not
/// hold (the AP sets it once, on receipt, and never clears it). Rebuilding
/// it on every change had the simulator sort every funded transaction on
/// each page a poll read, under the lock every other call waits on.
pub(crate) fn emit(state: &mut State, kind: &str, tx: &Tx) {
    let at = tx.body.get("transfer_received_at").and_then(Value::as_str);
    let id = tx.body.get("id").and_then(Value::as_str).unwrap_or("");
    if let (Some(index), Some(at)) = (&state.funded, at)
        && index
            .binary_search_by(|(pa, pid)| at.cmp(pa.as_str()).then_with(|| pid.as_str().cmp(id)))
            .is_err()
    {
        state.funded = None;
    }
    if state.sink.is_none() {
        return;
    }
    state.outbox.push_back(json!({
        "id": uuid::Uuid::new_v4().to_string(),
        "timestamp": now(),
        "type": kind,
        "payload": {"transaction": Value::Object(tx.body.clone())},
    }));
}

/// Delivers queued events to the sink, as the AP's event processor does:
/// each until it gets a 2xx or 3xx, waiting 100 ms after a failure. Runs
/// until the task is aborted.
pub async fn deliver_events(sim: Simulator) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap_or_default();
    loop {
        let (batch, sink, faults) = {
            let mut state = sim.lock();
            let batch: Vec<Value> = state.outbox.drain(..).collect();
            (batch, state.sink.clone(), state.faults)
        };
        let Some(sink) = sink.filter(|_| !batch.is_empty()) else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let mut batch = batch;
        if faults.reorder_events {
            batch.reverse();
        }
        let copies = if faults.duplicate_events { 2 } else { 1 };
        let mut failed = Vec::new();
        for event in batch {
            let mut ok = true;
            for _ in 0..copies {
                let mut request = client
                    .post(format!("{}/event", sink.url.trim_end_matches('/')))
                    .json(&event);
                if let Some((name, value)) = &sink.header {
                    request = request.header(name, value);
                }
                match request.send().await {
                    Ok(r) if r.status().is_success() || r.status().is_redirection() => {
                        sim.lock().events_delivered += 1;
                    }
                    _ => ok = false,
                }
            }
            if !ok {
                failed.push(event);
            }
        }
        if !failed.is_empty() {
            {
                let mut state = sim.lock();
                for event in failed.into_iter().rev() {
                    state.outbox.push_front(event);
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
