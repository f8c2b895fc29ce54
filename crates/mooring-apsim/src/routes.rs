//! The server: its routes, the auth it enforces on the Platform API (403,
//! as the AP), injected faults, the `/_sim` control endpoints, and a
//! running simulator that stops when dropped.

use std::net::TcpListener;
use std::time::Duration;

use actix_web::dev::{Server, ServerHandle};
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use serde_json::{Value, json};

use crate::rail::{rail_status, rail_submit};
use crate::rest::{get_transaction, get_transactions, patch_transactions};
use crate::rpc::rpc;
use crate::{Faults, Simulator, deliver_events, error};

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

pub(crate) struct Shared {
    pub(crate) sim: Simulator,
    auth: SimAuth,
}

pub(crate) async fn guard(req: &HttpRequest, shared: &Shared) -> Option<HttpResponse> {
    if !authorized(req, &shared.auth) {
        return Some(error(403, "forbidden"));
    }
    let (fail, delay) = shared.sim.fault();
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    fail.then(|| error(503, "injected fault"))
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
