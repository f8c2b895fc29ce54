//! The payout provider under `/_rail` (Mooring's `http` rail protocol):
//! one payout per `Idempotency-Key`, answers it can lose, and payouts that
//! stay pending until asked about.

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Value, json};

use crate::error;
use crate::routes::Shared;

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

fn rail_view(p: &RailPayout) -> Value {
    json!({"id": p.id, "status": p.status})
}

/// `POST /_rail/payouts`: the payout provider (Mooring's `http` rail).
pub(crate) async fn rail_submit(
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
pub(crate) async fn rail_status(
    shared: web::Data<Shared>,
    path: web::Path<String>,
) -> HttpResponse {
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
