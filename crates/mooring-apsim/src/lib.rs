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

use std::collections::{BTreeMap, VecDeque};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::dev::{Server, ServerHandle};
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value, json};

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

/// A payout the simulated provider made.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RailPayout {
    pub id: String,
    pub idempotency_key: String,
    pub transaction_id: String,
    pub amount: String,
    pub asset: String,
    pub receiver: Value,
    /// How many requests carried its key.
    pub submissions: u64,
    pub status: String,
}

/// Where events go: the business server's base URL and the auth header
/// the AP would send.
#[derive(Debug, Clone)]
pub struct EventSink {
    pub url: String,
    pub header: Option<(String, String)>,
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
    /// indexed query. Rebuilt after any change.
    funded: Option<Vec<(String, String)>>,
}

/// Queues the AP's event about a transaction. Every change of a
/// transaction comes through here.
fn emit(state: &mut State, kind: &str, tx: &Tx) {
    state.funded = None;
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

    /// A transaction's JSON.
    /// How many of `ids` are in `status`.
    pub fn count_in(&self, ids: &[String], status: &str) -> usize {
        ids.iter()
            .filter(|id| self.transaction(id).is_some_and(|t| t["status"] == status))
            .count()
    }

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

    fn list(
        &self,
        order_by: &str,
        desc: bool,
        statuses: &[String],
        page: usize,
        size: usize,
    ) -> Vec<Value> {
        let mut state = self.lock();
        if statuses.is_empty() && order_by == "transfer_received_at" && desc {
            if state.funded.is_none() {
                let mut funded: Vec<(String, String)> = state
                    .txs
                    .iter()
                    .filter_map(|(id, t)| {
                        t.body
                            .get("transfer_received_at")
                            .and_then(Value::as_str)
                            .map(|at| (at.to_owned(), id.clone()))
                    })
                    .collect();
                funded.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
                state.funded = Some(funded);
            }
            let funded = state.funded.as_deref().unwrap_or_default();
            let start = page.saturating_mul(size);
            // A page of funded ones only; a page reaching the unfunded ones
            // (sorted last) takes the general path.
            if start.saturating_add(size) <= funded.len() {
                return funded[start..start + size]
                    .iter()
                    .filter_map(|(_, id)| state.txs.get(id))
                    .map(|t| Value::Object(t.body.clone()))
                    .collect();
            }
        }
        let mut txs: Vec<&Tx> = state
            .txs
            .values()
            .filter(|t| statuses.is_empty() || statuses.iter().any(|s| s == t.status()))
            .collect();
        let key = |t: &Tx| match order_by {
            "transfer_received_at" => t
                .body
                .get("transfer_received_at")
                .and_then(Value::as_str)
                .map(str::to_owned),
            _ => Some(format!("{:020}", t.created)),
        };
        // The AP sorts NULLS LAST, then by id ascending.
        txs.sort_by(|a, b| {
            let (ka, kb) = (key(a), key(b));
            let primary = match (&ka, &kb) {
                (Some(x), Some(y)) => {
                    if desc {
                        y.cmp(x)
                    } else {
                        x.cmp(y)
                    }
                }
                (Some(_), None) => std::cmp::Ordering::Less,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                (None, None) => std::cmp::Ordering::Equal,
            };
            let id = |t: &Tx| {
                t.body
                    .get("id")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned()
            };
            primary.then_with(|| id(a).cmp(&id(b)))
        });
        txs.into_iter()
            .skip(page * size)
            .take(size)
            .map(|t| Value::Object(t.body.clone()))
            .collect()
    }

    /// One JSON-RPC call, with the AP's rules (RpcMethodHandler, 2.12–4.3).
    fn rpc_call(&self, call: &Value) -> Value {
        let id = call.get("id").cloned().unwrap_or(Value::Null);
        let reply_err = |code: i64, message: String| json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}});
        if call.get("jsonrpc").and_then(Value::as_str) != Some("2.0") || id.is_null() {
            return reply_err(-32600, "invalid JSON-RPC request".into());
        }
        let method = call.get("method").and_then(Value::as_str).unwrap_or("");
        let params = call.get("params").cloned().unwrap_or(json!({}));
        let str_param = |k: &str| params.get(k).and_then(Value::as_str).map(str::to_owned);
        if method == "get_transactions" {
            let statuses: Vec<String> = params
                .get("statuses")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|s| s.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            let order_by = str_param("order_by").unwrap_or_default().to_lowercase();
            let desc = str_param("order").is_some_and(|o| o.eq_ignore_ascii_case("desc"));
            let page = params
                .get("page_number")
                .and_then(Value::as_u64)
                .unwrap_or(0) as usize;
            let size = params
                .get("page_size")
                .and_then(Value::as_u64)
                .unwrap_or(20) as usize;
            let records = self.list(&order_by, desc, &statuses, page, size);
            return json!({"jsonrpc": "2.0", "id": id, "result": {"records": records}});
        }
        let Some(tx_id) = str_param("transaction_id") else {
            return reply_err(-32602, "transaction_id is required".into());
        };
        let mut state = self.lock();
        let Some(tx) = state.txs.get_mut(&tx_id) else {
            return reply_err(-32600, format!("Transaction with id[{tx_id}] is not found"));
        };
        if method == "get_transaction" {
            return json!({"jsonrpc": "2.0", "id": id, "result": Value::Object(tx.body.clone())});
        }
        let status = tx.status().to_owned();
        let is_final = status == "completed" || status == "refunded";
        let is_error = status == "error" || status == "expired";
        let next = match method {
            "notify_onchain_funds_received" if status == "pending_sender" => {
                Some("pending_receiver")
            }
            "notify_offchain_funds_pending" if status == "pending_receiver" => {
                Some("pending_external")
            }
            "notify_offchain_funds_sent"
                if status == "pending_receiver" || status == "pending_external" =>
            {
                Some("completed")
            }
            "notify_customer_info_updated"
                if status == "pending_receiver" || status == "pending_customer_info_update" =>
            {
                Some("pending_receiver")
            }
            // Removed in AP 3.0.
            "request_customer_info_update" if self.v3 => {
                return reply_err(-32601, format!("method {method} is not supported"));
            }
            "request_customer_info_update" if status == "pending_receiver" => {
                Some("pending_customer_info_update")
            }
            "notify_transaction_error" if !is_final && !is_error => Some("error"),
            "notify_transaction_recovery" if is_error && tx.funds_received() => {
                Some("pending_receiver")
            }
            "notify_refund_sent" if status == "pending_receiver" || status == "pending_stellar" => {
                let refund = params.get("refund").cloned().unwrap_or(Value::Null);
                let part = |k: &str| {
                    refund
                        .get(k)
                        .and_then(|a| a.get("amount"))
                        .and_then(Value::as_str)
                        .and_then(|a| a.parse::<rust_decimal::Decimal>().ok())
                };
                let received = tx
                    .body
                    .get("amount_in")
                    .and_then(|a| a.get("amount"))
                    .and_then(Value::as_str)
                    .and_then(|a| a.parse::<rust_decimal::Decimal>().ok());
                match (part("amount"), part("amount_fee"), received) {
                    (Some(a), Some(f), Some(r)) if a + f == r => {
                        tx.set("refunds", json!({"payments": [refund]}));
                        Some("refunded")
                    }
                    _ => {
                        return reply_err(
                            -32602,
                            "refund amount and amount_fee must add up to amount_in".into(),
                        );
                    }
                }
            }
            "request_onchain_funds" if status == "pending_receiver" && !tx.funds_received() => {
                Some("pending_sender")
            }
            "notify_onchain_funds_received"
            | "notify_offchain_funds_pending"
            | "notify_offchain_funds_sent"
            | "notify_customer_info_updated"
            | "request_customer_info_update"
            | "notify_transaction_error"
            | "notify_transaction_recovery"
            | "notify_refund_sent"
            | "request_onchain_funds" => None,
            _ => {
                return reply_err(
                    -32601,
                    format!("method {method} is not supported by the simulator"),
                );
            }
        };
        let Some(next) = next else {
            return reply_err(
                -32600,
                format!(
                    "RPC method[{method}] is not supported. Status[{status}], kind[receive], protocol[31], funds received[{}]",
                    tx.funds_received()
                ),
            );
        };
        if (next == "error" || next == "expired") && str_param("message").is_none() {
            return reply_err(-32602, "message is required".into());
        }
        let t = now();
        for key in [
            "message",
            "external_transaction_id",
            "destination_account",
            "memo",
            "memo_type",
        ] {
            if let Some(v) = params.get(key) {
                tx.set(key, v.clone());
            }
        }
        for key in ["amount_in", "amount_out", "amount_expected", "fee_details"] {
            if let Some(v) = params.get(key) {
                tx.set(key, v.clone());
            }
        }
        if method == "notify_onchain_funds_received" {
            tx.set("transfer_received_at", json!(t));
        }
        if next == "completed" || next == "refunded" {
            tx.set("completed_at", json!(t));
        }
        tx.move_to(next, &t);
        let body = Value::Object(tx.body.clone());
        let tx = tx.clone();
        emit(&mut state, "transaction_status_changed", &tx);
        Self::record(&mut state, &tx_id, method.to_owned());
        json!({"jsonrpc": "2.0", "id": id, "result": body})
    }

    /// A PATCH record: no transition rules (as the AP), status required.
    fn patch_one(&self, record: &Value) -> Result<Value, String> {
        let t = record.get("transaction").ok_or("Transaction is missing.")?;
        let id = t
            .get("id")
            .and_then(Value::as_str)
            .ok_or("transaction id is missing")?;
        let status = t
            .get("status")
            .and_then(Value::as_str)
            .ok_or("status is required")?
            .to_owned();
        let mut state = self.lock();
        let tx = state
            .txs
            .get_mut(id)
            .ok_or_else(|| format!("transaction(id={id}) not found"))?;
        if let Some(fields) = t.as_object() {
            for (k, v) in fields {
                if k != "id" && k != "status" {
                    tx.set(k, v.clone());
                }
            }
        }
        tx.move_to(&status, &now());
        let body = Value::Object(tx.body.clone());
        let tx = tx.clone();
        emit(&mut state, "transaction_status_changed", &tx);
        Self::record(&mut state, id, format!("PATCH {status}"));
        Ok(body)
    }
}

/// Auth the simulator enforces on the Platform API, as the AP does (403).
#[derive(Clone, Default)]
pub enum SimAuth {
    #[default]
    None,
    ApiKey(String),
    /// HS256 bearer tokens over the secret's bytes.
    Jwt(String),
}

fn authorized(req: &HttpRequest, auth: &SimAuth) -> bool {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    match auth {
        SimAuth::None => true,
        SimAuth::ApiKey(key) => header("x-api-key").as_deref() == Some(key.as_str()),
        SimAuth::Jwt(secret) => header("authorization")
            .and_then(|v| v.strip_prefix("Bearer ").map(str::to_owned))
            .is_some_and(|token| {
                // As the AP's filter: HS256 over the secret's bytes, exp enforced.
                let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
                validation.set_required_spec_claims::<&str>(&[]);
                validation.leeway = 5;
                jsonwebtoken::decode::<Value>(
                    &token,
                    &jsonwebtoken::DecodingKey::from_secret(secret.as_bytes()),
                    &validation,
                )
                .is_ok()
            }),
    }
}

struct Shared {
    sim: Simulator,
    auth: SimAuth,
}

async fn guard(req: &HttpRequest, shared: &Shared) -> Option<HttpResponse> {
    if !authorized(req, &shared.auth) {
        return Some(error(403, "forbidden"));
    }
    let (fail, delay) = shared.sim.fault();
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    fail.then(|| error(503, "injected fault"))
}

async fn get_transactions(
    req: HttpRequest,
    shared: web::Data<Shared>,
    q: web::Query<BTreeMap<String, String>>,
) -> HttpResponse {
    if let Some(r) = guard(&req, &shared).await {
        return r;
    }
    let Some(sep) = q.get("sep") else {
        return error(400, "The \"sep\" parameter is missing.");
    };
    if sep != "31" && !sep.eq_ignore_ascii_case("sep_31") {
        return HttpResponse::Ok().json(json!({"records": []}));
    }
    let order_by = q.get("order_by").map_or("created_at", String::as_str);
    if ![
        "created_at",
        "transfer_received_at",
        "user_action_required_by",
    ]
    .contains(&order_by)
    {
        return error(400, "Invalid enum parameter");
    }
    let statuses: Vec<String> = q
        .get("statuses")
        .map(|s| s.split(',').map(str::to_owned).collect())
        .unwrap_or_default();
    let page = q
        .get("page_number")
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    let size = q
        .get("page_size")
        .and_then(|p| p.parse().ok())
        .unwrap_or(20);
    let desc = q.get("order").is_some_and(|o| o == "desc");
    HttpResponse::Ok()
        .json(json!({"records": shared.sim.list(order_by, desc, &statuses, page, size)}))
}

async fn get_transaction(
    req: HttpRequest,
    shared: web::Data<Shared>,
    path: web::Path<String>,
) -> HttpResponse {
    if let Some(r) = guard(&req, &shared).await {
        return r;
    }
    let id = path.into_inner();
    match shared.sim.transaction(&id) {
        Some(t) => HttpResponse::Ok().json(t),
        None => error(404, &format!("transaction (id={id}) is not found")),
    }
}

async fn patch_transactions(
    req: HttpRequest,
    shared: web::Data<Shared>,
    body: web::Json<Value>,
) -> HttpResponse {
    if let Some(r) = guard(&req, &shared).await {
        return r;
    }
    let Some(records) = body.get("records").and_then(Value::as_array) else {
        return error(400, "Records are missing.");
    };
    let mut out = Vec::new();
    for record in records {
        match shared.sim.patch_one(record) {
            Ok(t) => out.push(t),
            Err(e) => return error(400, &e),
        }
    }
    HttpResponse::Ok().json(json!({"records": out}))
}

async fn rpc(req: HttpRequest, shared: web::Data<Shared>, body: web::Json<Value>) -> HttpResponse {
    if let Some(r) = guard(&req, &shared).await {
        return r;
    }
    let Some(calls) = body.as_array() else {
        return HttpResponse::Ok().json(json!([{"jsonrpc": "2.0", "id": null, "error": {"code": -32600, "message": "a batch is required"}}]));
    };
    HttpResponse::Ok().json(
        calls
            .iter()
            .map(|c| shared.sim.rpc_call(c))
            .collect::<Vec<_>>(),
    )
}

async fn sim_create(shared: web::Data<Shared>, body: web::Json<Value>) -> HttpResponse {
    let id = shared.sim.create(body.into_inner());
    HttpResponse::Ok().json(shared.sim.transaction(&id))
}

async fn sim_receive(
    shared: web::Data<Shared>,
    path: web::Path<String>,
    body: Option<web::Json<Value>>,
) -> HttpResponse {
    let id = path.into_inner();
    let amount = body.and_then(|b| b.get("amount_in").cloned());
    if shared.sim.receive(&id, amount) {
        HttpResponse::Ok().json(shared.sim.transaction(&id))
    } else {
        error(
            409,
            "the transaction is not waiting for the sender's payment",
        )
    }
}

async fn sim_history(shared: web::Data<Shared>, path: web::Path<String>) -> HttpResponse {
    let id = path.into_inner();
    HttpResponse::Ok()
        .json(json!({"statuses": shared.sim.history(&id), "updates": shared.sim.updates(&id)}))
}

async fn sim_faults(shared: web::Data<Shared>, body: web::Json<Faults>) -> HttpResponse {
    shared.sim.set_faults(body.into_inner());
    HttpResponse::NoContent().finish()
}

fn rail_view(p: &RailPayout) -> Value {
    json!({"id": p.id, "status": p.status})
}

/// `POST /_rail/payouts`: the payout provider (Mooring's `http` rail).
async fn rail_submit(
    req: HttpRequest,
    shared: web::Data<Shared>,
    body: web::Json<Value>,
) -> HttpResponse {
    let Some(key) = req
        .headers()
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .filter(|k| !k.is_empty())
        .map(str::to_owned)
    else {
        return error(400, "Idempotency-Key is required");
    };
    let field = |k: &str| body.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
    if field("transaction_id").is_empty() || field("amount").is_empty() || field("asset").is_empty()
    {
        return error(400, "transaction_id, amount and asset are required");
    }
    let mut state = shared.sim.lock();
    state.rail_calls += 1;
    let lose = state.faults.rail_lose_every > 0
        && state
            .rail_calls
            .is_multiple_of(state.faults.rail_lose_every);
    let pending = state.faults.rail_pending;
    let next = state.payouts.len() + 1;
    let payout = state
        .payouts
        .entry(key.clone())
        .and_modify(|p| p.submissions += 1)
        .or_insert_with(|| RailPayout {
            id: format!("PAY-{next:08}"),
            idempotency_key: key,
            transaction_id: field("transaction_id"),
            amount: field("amount"),
            asset: field("asset"),
            receiver: body.get("receiver").cloned().unwrap_or(Value::Null),
            submissions: 1,
            status: if pending { "pending" } else { "completed" }.into(),
        });
    let view = rail_view(payout);
    if lose {
        return error(
            503,
            "injected fault: the payout was made, the answer is lost",
        );
    }
    HttpResponse::Created().json(view)
}

/// `GET /_rail/payouts/{id}`: a pending payout completes when asked about.
async fn rail_status(shared: web::Data<Shared>, path: web::Path<String>) -> HttpResponse {
    let id = path.into_inner();
    let mut state = shared.sim.lock();
    match state.payouts.values_mut().find(|p| p.id == id) {
        Some(p) => {
            p.status = "completed".into();
            HttpResponse::Ok().json(rail_view(p))
        }
        None => error(404, "no such payout"),
    }
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

/// A running simulator.
pub struct Running {
    pub url: String,
    pub sim: Simulator,
    handle: ServerHandle,
    delivery: tokio::task::JoinHandle<()>,
}

impl Running {
    /// The payout provider's URL (for Mooring's `payout.http.url`).
    pub fn rail_url(&self) -> String {
        format!("{}/_rail/payouts", self.url)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.delivery.abort();
        drop(self.handle.stop(false));
    }
}

/// Builds the server on a bound listener.
pub fn serve(listener: TcpListener, sim: Simulator, auth: SimAuth) -> std::io::Result<Server> {
    let shared = web::Data::new(Shared { sim, auth });
    Ok(HttpServer::new(move || {
        App::new()
            .app_data(shared.clone())
            .route("/transactions", web::get().to(get_transactions))
            .route("/transactions", web::patch().to(patch_transactions))
            .route("/transactions/{id}", web::get().to(get_transaction))
            .route("/", web::post().to(rpc))
            .route("/_sim/transactions", web::post().to(sim_create))
            .route(
                "/_sim/transactions/{id}/receive",
                web::post().to(sim_receive),
            )
            .route(
                "/_sim/transactions/{id}/history",
                web::get().to(sim_history),
            )
            .route("/_sim/faults", web::post().to(sim_faults))
            .route("/_rail/payouts", web::post().to(rail_submit))
            .route("/_rail/payouts/{id}", web::get().to(rail_status))
    })
    .workers(2)
    .disable_signals()
    .listen(listener)?
    .run())
}

/// Starts a simulator on a free loopback port, in this tokio runtime.
pub fn spawn(sim: Simulator, auth: SimAuth) -> std::io::Result<Running> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let url = format!("http://127.0.0.1:{}", listener.local_addr()?.port());
    let server = serve(listener, sim.clone(), auth)?;
    let handle = server.handle();
    tokio::spawn(server);
    let delivery = tokio::spawn(deliver_events(sim.clone()));
    Ok(Running {
        url,
        sim,
        handle,
        delivery,
    })
}

/// Parses an RFC 3339 instant, as the simulator writes them.
pub fn instant(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}
