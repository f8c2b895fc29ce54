//! The JSON-RPC Platform API of AP 2.3+ (`POST /`, a batch of calls), with
//! the AP's transition rules for a SEP-31 receive as data: [`TRANSITIONS`]
//! says, for each method, which statuses it may start from and where it
//! leads (RpcMethodHandler, 2.12–4.3).

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Value, json};

use crate::routes::{Shared, guard};
use crate::{Simulator, Tx, emit, now};

/// Where a method may start from.
#[derive(Debug, Clone, Copy)]
enum From {
    /// One of these statuses.
    Statuses(&'static [&'static str]),
    /// One of these statuses, before any funds arrived.
    BeforeFunds(&'static [&'static str]),
    /// Any status but a final one (`completed`, `refunded`) or an error one
    /// (`error`, `expired`).
    Open,
    /// An error or expired transaction whose funds had arrived.
    ErrorAfterFunds,
}

const FINAL: &[&str] = &["completed", "refunded"];
const ERROR: &[&str] = &["error", "expired"];

impl From {
    fn admits(self, status: &str, tx: &Tx) -> bool {
        match self {
            Self::Statuses(s) => s.contains(&status),
            Self::BeforeFunds(s) => s.contains(&status) && !tx.funds_received(),
            Self::Open => !FINAL.contains(&status) && !ERROR.contains(&status),
            Self::ErrorAfterFunds => ERROR.contains(&status) && tx.funds_received(),
        }
    }
}

/// One move a method makes.
#[derive(Debug)]
struct Transition {
    method: &'static str,
    from: From,
    to: &'static str,
}

const fn t(method: &'static str, from: From, to: &'static str) -> Transition {
    Transition { method, from, to }
}

/// The AP's rules for a SEP-31 receive: a method is refused unless a row
/// names it and admits the transaction's status.
const TRANSITIONS: &[Transition] = &[
    t(
        "notify_onchain_funds_received",
        From::Statuses(&["pending_sender"]),
        "pending_receiver",
    ),
    t(
        "notify_offchain_funds_pending",
        From::Statuses(&["pending_receiver"]),
        "pending_external",
    ),
    t(
        "notify_offchain_funds_sent",
        From::Statuses(&["pending_receiver", "pending_external"]),
        "completed",
    ),
    t(
        "notify_customer_info_updated",
        From::Statuses(&["pending_receiver", "pending_customer_info_update"]),
        "pending_receiver",
    ),
    t(
        "request_customer_info_update",
        From::Statuses(&["pending_receiver"]),
        "pending_customer_info_update",
    ),
    t("notify_transaction_error", From::Open, "error"),
    t(
        "notify_transaction_recovery",
        From::ErrorAfterFunds,
        "pending_receiver",
    ),
    t(
        "notify_refund_sent",
        From::Statuses(&["pending_receiver", "pending_stellar"]),
        "refunded",
    ),
    t(
        "request_onchain_funds",
        From::BeforeFunds(&["pending_receiver"]),
        "pending_sender",
    ),
];

/// Methods AP 3.0 removed: a 3.x simulator does not know them.
const REMOVED_IN_V3: &[&str] = &["request_customer_info_update"];

/// Fields a call may set on the transaction.
const SETTABLE: &[&str] = &[
    "message",
    "external_transaction_id",
    "destination_account",
    "memo",
    "memo_type",
    "amount_in",
    "amount_out",
    "amount_expected",
    "fee_details",
];

/// An amount inside `value[key].amount`.
fn amount(value: &Value, key: &str) -> Option<rust_decimal::Decimal> {
    value
        .get(key)
        .and_then(|a| a.get("amount"))
        .and_then(Value::as_str)
        .and_then(|a| a.parse().ok())
}

impl Simulator {
    /// One JSON-RPC call, with the AP's rules.
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
        if self.v3 && REMOVED_IN_V3.contains(&method) {
            return reply_err(-32601, format!("method {method} is not supported"));
        }
        if !TRANSITIONS.iter().any(|r| r.method == method) {
            return reply_err(
                -32601,
                format!("method {method} is not supported by the simulator"),
            );
        }
        let status = tx.status().to_owned();
        let Some(next) = TRANSITIONS
            .iter()
            .find(|r| r.method == method && r.from.admits(&status, tx))
            .map(|r| r.to)
        else {
            return reply_err(
                -32600,
                format!(
                    "RPC method[{method}] is not supported. Status[{status}], kind[receive], protocol[31], funds received[{}]",
                    tx.funds_received()
                ),
            );
        };
        if method == "notify_refund_sent" {
            let refund = params.get("refund").cloned().unwrap_or(Value::Null);
            match (
                amount(&refund, "amount"),
                amount(&refund, "amount_fee"),
                amount(&Value::Object(tx.body.clone()), "amount_in"),
            ) {
                (Some(a), Some(f), Some(r)) if a + f == r => {
                    tx.set("refunds", json!({"payments": [refund]}));
                }
                _ => {
                    return reply_err(
                        -32602,
                        "refund amount and amount_fee must add up to amount_in".into(),
                    );
                }
            }
        }
        if ERROR.contains(&next) && str_param("message").is_none() {
            return reply_err(-32602, "message is required".into());
        }
        let t = now();
        for key in SETTABLE {
            if let Some(v) = params.get(*key) {
                tx.set(key, v.clone());
            }
        }
        if method == "notify_onchain_funds_received" {
            tx.set("transfer_received_at", json!(t));
        }
        if FINAL.contains(&next) {
            tx.set("completed_at", json!(t));
        }
        tx.move_to(next, &t);
        let body = Value::Object(tx.body.clone());
        let tx = tx.clone();
        emit(&mut state, "transaction_status_changed", &tx);
        Self::record(&mut state, &tx_id, method.to_owned());
        json!({"jsonrpc": "2.0", "id": id, "result": body})
    }
}

/// `POST /`: a batch of calls, answered in order.
pub(crate) async fn rpc(
    req: HttpRequest,
    shared: web::Data<Shared>,
    body: web::Json<Value>,
) -> HttpResponse {
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
