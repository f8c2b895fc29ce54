//! The REST Platform API of AP 2.x: `GET /transactions` (the AP's order,
//! nulls last, and a paged index for the poll's order), `GET
//! /transactions/{id}`, and `PATCH /transactions` (no transition rules, as
//! the AP's PATCH).

use std::collections::BTreeMap;

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Value, json};

use crate::routes::{Shared, guard};
use crate::{Simulator, Tx, emit, error, now};

impl Simulator {
    pub(crate) fn list(
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

pub(crate) async fn get_transactions(
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

pub(crate) async fn get_transaction(
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

pub(crate) async fn patch_transactions(
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
