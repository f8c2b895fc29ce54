//! An Anchor Platform simulator, for tests and local stacks: the Platform
//! API subset a SEP-31 business server uses, in both styles at once —
//! REST (`GET /transactions`, `GET /transactions/{id}`, `PATCH
//! /transactions`, AP 2.x) and JSON-RPC (`POST /`, AP 2.3+) — with the AP's
//! transition rules for the JSON-RPC methods, its ordering (nulls last), its
//! error shapes, and faults to inject.
//!
//! Control endpoints under `/_sim` create transactions, play the Stellar
//! observer (a payment arrives), set faults, and report what happened.
//! With an event sink set, it delivers the AP's events (`transaction_created`,
//! `transaction_status_changed`) to the business server's `POST /event` as
//! the AP's event processor does (retrying until a 2xx), optionally each
//! twice and out of order. Under `/_rail` it also plays a payout provider
//! (Mooring's `http` rail protocol, with `Idempotency-Key`), so tests can
//! count the payouts made per transaction.
//! Never a normal dependency of Mooring's crates: it stands in for the AP.

//!
//! The rooms: this file holds the state and the control calls tests make
//! directly; `rest` the REST Platform API, `rpc` the JSON-RPC one and its
//! transition table, `events` the event delivery, `rail` the payout
//! provider, `routes` the server, its auth and its `/_sim` endpoints.

mod events;
mod rail;
mod rest;
mod routes;
mod rpc;

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};

use actix_web::HttpResponse;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value, json};

use events::emit;
pub use events::{EventSink, deliver_events};
pub use rail::RailPayout;
pub use routes::{Running, SimAuth, serve, spawn};

/// A transaction as the simulator keeps it: the AP's JSON, plus its history.
#[derive(Debug, Clone)]
struct Tx {
    body: Map<String, Value>,
    history: Vec<String>,
    created: u64,
}

impl Tx {
    fn status(&self) -> &str {
        self.body
            .get("status")
            .and_then(Value::as_str)
            .unwrap_or("")
    }

    fn set(&mut self, key: &str, value: Value) {
        self.body.insert(key.to_owned(), value);
    }

    fn move_to(&mut self, status: &str, now: &str) {
        self.set("status", json!(status));
        self.set("updated_at", json!(now));
        self.history.push(status.to_owned());
    }

    fn funds_received(&self) -> bool {
        self.body
            .get("transfer_received_at")
            .is_some_and(|v| !v.is_null())
    }
}

/// Faults the simulator injects into Platform API calls.
#[derive(Debug, Clone, Copy, Default, serde::Deserialize, serde::Serialize)]
pub struct Faults {
    /// Every `fail_every`-th Platform API call answers 503 (0: never).
    #[serde(default)]
    pub fail_every: u64,
    /// Every Platform API call waits this long first.
    #[serde(default)]
    pub delay_ms: u64,
    /// Every event is delivered twice.
    #[serde(default)]
    pub duplicate_events: bool,
    /// Events waiting together are delivered newest first.
    #[serde(default)]
    pub reorder_events: bool,
    /// Every `rail_lose_every`-th payout request is carried out but
    /// answered 503, as a provider whose answer is lost (0: never).
    #[serde(default)]
    pub rail_lose_every: u64,
    /// Payouts start `pending` and complete when next asked about.
    #[serde(default)]
    pub rail_pending: bool,
}

#[derive(Default)]
struct State {
    txs: BTreeMap<String, Tx>,
    next: u64,
    calls: u64,
    faults: Faults,
    /// Successful updates per (transaction, method or PATCH status).
    updates: BTreeMap<String, Vec<String>>,
    sink: Option<EventSink>,
    outbox: VecDeque<Value>,
    events_delivered: u64,
    /// Payouts by idempotency key.
    payouts: BTreeMap<String, RailPayout>,
    rail_calls: u64,
    /// The funded transactions' ids by `transfer_received_at` descending,
    /// then id: the poll's order, answered page by page like the AP's
    /// indexed query. Rebuilt when a transaction gets its
    /// `transfer_received_at` (see `events::emit`).
    funded: Option<Vec<(String, String)>>,
}

/// The simulator's shared state.
#[derive(Clone, Default)]
pub struct Simulator {
    state: Arc<Mutex<State>>,
    /// AP 3.x+: new SEP-31 transactions start in `pending_receiver` without
    /// funds (2.x: `pending_sender`).
    pub v3: bool,
}

fn now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn error(status: u16, message: &str) -> HttpResponse {
    HttpResponse::build(
        actix_web::http::StatusCode::from_u16(status)
            .unwrap_or(actix_web::http::StatusCode::BAD_REQUEST),
    )
    .json(json!({"error": message}))
}

impl Simulator {
    pub fn new(v3: bool) -> Self {
        Self {
            state: Arc::default(),
            v3,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Creates a SEP-31 transaction from the fields given (amounts, quote,
    /// customers…); returns its id.
    pub fn create(&self, fields: Value) -> String {
        let mut state = self.lock();
        state.next += 1;
        let id = fields
            .get("id")
            .and_then(Value::as_str)
            .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned);
        let status = if self.v3 {
            "pending_receiver"
        } else {
            "pending_sender"
        };
        let mut body = Map::new();
        if let Value::Object(f) = fields {
            body.extend(f);
        }
        let t = now();
        body.insert("id".into(), json!(id));
        body.insert("sep".into(), json!("31"));
        body.insert("kind".into(), json!("receive"));
        body.insert("status".into(), json!(status));
        body.insert("started_at".into(), json!(t));
        body.insert("updated_at".into(), json!(t));
        let created = state.next;
        let tx = Tx {
            body,
            history: vec![status.to_owned()],
            created,
        };
        emit(&mut state, "transaction_created", &tx);
        state.txs.insert(id.clone(), tx);
        id
    }

    /// Delivers events to `sink` from now on (see [`deliver_events`]).
    pub fn send_events_to(&self, sink: EventSink) {
        self.lock().sink = Some(sink);
    }

    /// Events delivered with a 2xx so far (duplicates included).
    pub fn events_delivered(&self) -> u64 {
        self.lock().events_delivered
    }

    /// Events waiting for delivery.
    pub fn events_waiting(&self) -> usize {
        self.lock().outbox.len()
    }

    /// Every payout the simulated provider made.
    pub fn payouts(&self) -> Vec<RailPayout> {
        self.lock().payouts.values().cloned().collect()
    }

    /// Plays the AP's Stellar observer: the sender's payment arrived
    /// (`pending_sender` → `pending_receiver`, `amount_in` and
    /// `transfer_received_at` set). Returns false if not possible.
    pub fn receive(&self, id: &str, amount_in: Option<Value>) -> bool {
        let mut state = self.lock();
        let Some(tx) = state.txs.get_mut(id) else {
            return false;
        };
        if tx.status() != "pending_sender" {
            return false;
        }
        let t = now();
        let amount = amount_in
            .or_else(|| tx.body.get("amount_expected").cloned())
            .or_else(|| tx.body.get("amount_in").cloned())
            .unwrap_or(Value::Null);
        tx.set("amount_in", amount);
        tx.set("transfer_received_at", json!(t));
        tx.set(
            "stellar_transactions",
            json!([{"id": format!("stellar-{}", tx.created), "payments": []}]),
        );
        tx.move_to("pending_receiver", &t);
        let tx = tx.clone();
        emit(&mut state, "transaction_status_changed", &tx);
        true
    }

    /// The statuses a transaction went through.
    pub fn history(&self, id: &str) -> Vec<String> {
        self.lock()
            .txs
            .get(id)
            .map(|t| t.history.clone())
            .unwrap_or_default()
    }

    /// The updates that succeeded on a transaction (method names, or
    /// `PATCH <status>`), in order.
    pub fn updates(&self, id: &str) -> Vec<String> {
        self.lock().updates.get(id).cloned().unwrap_or_default()
    }

    /// How many of `ids` are in `status`: under one lock and copying
    /// nothing, since the benchmarks ask it of thousands of ids every 20 ms
    /// while the server under test calls the simulator.
    pub fn count_in(&self, ids: &[String], status: &str) -> usize {
        let state = self.lock();
        ids.iter()
            .filter(|id| {
                state
                    .txs
                    .get(id.as_str())
                    .is_some_and(|t| t.status() == status)
            })
            .count()
    }

    /// Those of `ids` not in `status` (a waiter keeps asking about fewer).
    pub fn not_in(&self, ids: &[String], status: &str) -> Vec<String> {
        let state = self.lock();
        ids.iter()
            .filter(|id| {
                state
                    .txs
                    .get(id.as_str())
                    .is_none_or(|t| t.status() != status)
            })
            .cloned()
            .collect()
    }

    /// A transaction's JSON.
    pub fn transaction(&self, id: &str) -> Option<Value> {
        self.lock()
            .txs
            .get(id)
            .map(|t| Value::Object(t.body.clone()))
    }

    pub fn set_faults(&self, faults: Faults) {
        self.lock().faults = faults;
    }

    /// Counts a Platform API call; returns the fault to apply to it.
    fn fault(&self) -> (bool, u64) {
        let mut state = self.lock();
        state.calls += 1;
        let f = state.faults;
        (
            f.fail_every > 0 && state.calls.is_multiple_of(f.fail_every),
            f.delay_ms,
        )
    }

    fn record(state: &mut State, id: &str, what: String) {
        state.updates.entry(id.to_owned()).or_default().push(what);
    }

    /// Adds `count` SEP-31 transactions the AP completed in the past (funded
    /// a second apart, as at a busy anchor, the newest an hour ago), as
    /// history for benchmarks. Returns their ids, oldest first.
    pub fn seed_history(&self, count: usize) -> Vec<String> {
        let mut state = self.lock();
        let newest = Utc::now() - chrono::Duration::hours(1);
        let mut ids = Vec::with_capacity(count);
        for i in 0..count {
            state.next += 1;
            let id = format!("hist-{i:07}");
            let at = (newest - chrono::Duration::seconds((count - i) as i64))
                .to_rfc3339_opts(SecondsFormat::Millis, true);
            let usdc = "stellar:USDC:GBBD47IF6LWK7P7MDEVSCWR7DPUWV3NY3DTQEVFL4NAT4AQH3ZLLFLA5";
            let body = json!({
                "id": id, "sep": "31", "kind": "receive", "status": "completed",
                "amount_in": {"amount": "100", "asset": usdc},
                "amount_out": {"amount": "99", "asset": usdc},
                "amount_fee": {"amount": "1", "asset": usdc},
                "started_at": at, "updated_at": at, "transfer_received_at": at, "completed_at": at,
            });
            let Value::Object(body) = body else {
                continue;
            };
            let created = state.next;
            state.txs.insert(
                id.clone(),
                Tx {
                    body,
                    history: vec!["completed".into()],
                    created,
                },
            );
            ids.push(id);
        }
        state.funded = None;
        ids
    }
}

/// Parses an RFC 3339 instant, as the simulator writes them.
pub fn instant(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}
