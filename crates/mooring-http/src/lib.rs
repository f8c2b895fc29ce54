//! Mooring's inbound HTTP adapter: the Anchor Platform's Callback API
//! (`/customer`, `/rate`, `/fee`, `/unique_address`, `/event`) and the
//! operators' routes (`/health`, `/ready`, `/metrics`, `/openapi.json`), served with
//! actix-web.
//!
//! This crate owns the wire: JSON and multipart bodies, query strings, the
//! callback authentication the AP sends, and the one mapping from errors to
//! HTTP statuses (`ApiError`). It turns requests into use-case calls and
//! use-case answers into the AP's response shapes. It must not know SQL or
//! any other adapter.

mod auth;
mod body;
mod customer;
mod deposit;
mod error;
mod event;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod openapi;
mod ops;
mod quote;
mod telemetry;

use std::net::TcpListener;

use actix_web::dev::Server;
use actix_web::middleware::from_fn;
use actix_web::{App, HttpServer, web};
use mooring_usecases::{
    DepositService, EventInbox, FeeService, KycService, Operations, QuoteService,
};

pub use auth::{AuthConfigError, CallbackAuth};
pub use error::ApiError;
pub use openapi::{openapi, openapi_document};
pub use ops::{MetricsEndpoint, describe_metrics};

/// How long a stopping server waits for the requests in flight.
pub const SHUTDOWN_TIMEOUT_SECONDS: u64 = 10;

/// JSON bodies larger than this are refused with 413.
pub const JSON_LIMIT_BYTES: usize = 1024 * 1024;

/// What the HTTP layer needs besides the use cases.
#[derive(Clone)]
pub struct HttpConfig {
    pub auth: CallbackAuth,
    /// Multipart (PUT /customer with files) bodies larger than this are
    /// refused with 413.
    pub multipart_limit_bytes: usize,
    /// Worker threads; `None` means one per core.
    pub workers: Option<usize>,
    /// `/metrics` on this listener; `None` when it has its own
    /// (`metrics.bind`, see [`serve_metrics`]).
    pub metrics: Option<MetricsEndpoint>,
}

/// The use cases the routes call.
#[derive(Clone)]
pub struct Services {
    pub kyc: KycService,
    pub quotes: QuoteService,
    pub fees: FeeService,
    pub deposits: DepositService,
    pub events: EventInbox,
    pub ops: Operations,
}

pub(crate) struct Limits {
    pub multipart_bytes: usize,
    /// Multipart bodies read at once: each may hold `multipart_bytes` in
    /// memory, so the process holds at most this many of them.
    pub uploads: std::sync::Arc<tokio::sync::Semaphore>,
}

/// Multipart bodies read at once, per process (`Limits::uploads`).
pub(crate) const CONCURRENT_UPLOADS: usize = 4;

/// Registers every route on an actix app.
pub fn configure(
    services: Services,
    config: &HttpConfig,
) -> impl FnOnce(&mut web::ServiceConfig) + Clone + use<> {
    let auth = web::Data::new(config.auth.clone());
    let kyc = web::Data::new(services.kyc);
    let quotes = web::Data::new(services.quotes);
    let fees = web::Data::new(services.fees);
    let deposits = web::Data::new(services.deposits);
    let events = web::Data::new(services.events);
    let ops = web::Data::new(services.ops);
    let metrics = config.metrics.clone().map(web::Data::new);
    let limits = web::Data::new(Limits {
        multipart_bytes: config.multipart_limit_bytes,
        uploads: std::sync::Arc::new(tokio::sync::Semaphore::new(CONCURRENT_UPLOADS)),
    });
    move |cfg: &mut web::ServiceConfig| {
        cfg.app_data(auth)
            .app_data(kyc)
            .app_data(quotes)
            .app_data(fees)
            .app_data(deposits)
            .app_data(events)
            .app_data(limits)
            .app_data(ops)
            .app_data(
                web::QueryConfig::default()
                    .error_handler(|e, _| ApiError::bad_request(e.to_string()).into()),
            )
            .app_data(
                web::PathConfig::default()
                    .error_handler(|e, _| ApiError::bad_request(e.to_string()).into()),
            )
            .service(
                web::resource("/customer")
                    .wrap(from_fn(auth::require_callback_auth))
                    .route(web::get().to(customer::get_customer))
                    .route(web::put().to(customer::put_customer))
                    .default_service(error::method_not_allowed("GET, PUT")),
            )
            .service(
                web::resource("/customer/{id}")
                    .wrap(from_fn(auth::require_callback_auth))
                    .route(web::delete().to(customer::delete_customer))
                    .default_service(error::method_not_allowed("DELETE")),
            )
            .service(
                web::resource("/rate")
                    .wrap(from_fn(auth::require_callback_auth))
                    // As every /rate refusal: 422, the AP's spec for it.
                    .app_data(web::QueryConfig::default().error_handler(|e, _| {
                        ApiError::bad_request(e.to_string())
                            .bad_request_as_unprocessable()
                            .into()
                    }))
                    .route(web::get().to(quote::get_rate))
                    .default_service(error::method_not_allowed("GET")),
            )
            .service(
                web::resource("/fee")
                    .wrap(from_fn(auth::require_callback_auth))
                    .route(web::get().to(quote::get_fee))
                    .default_service(error::method_not_allowed("GET")),
            )
            .service(
                web::resource("/unique_address")
                    .wrap(from_fn(auth::require_callback_auth))
                    .route(web::get().to(deposit::get_unique_address))
                    .default_service(error::method_not_allowed("GET")),
            )
            .service(
                web::resource("/event")
                    .wrap(from_fn(auth::require_callback_auth))
                    .route(web::post().to(event::post_event))
                    .default_service(error::method_not_allowed("POST")),
            )
            .service(
                web::resource("/health")
                    .route(web::get().to(ops::health))
                    .default_service(error::method_not_allowed("GET")),
            )
            .service(
                web::resource("/ready")
                    .route(web::get().to(ops::ready))
                    .default_service(error::method_not_allowed("GET")),
            )
            .service(
                web::resource("/openapi.json")
                    .route(web::get().to(openapi::openapi_json))
                    .default_service(error::method_not_allowed("GET")),
            );
        if let Some(metrics) = metrics {
            cfg.configure(metrics_route(metrics));
        }
        cfg.default_service(web::to(error::not_found));
    }
}

fn metrics_route(
    endpoint: web::Data<MetricsEndpoint>,
) -> impl FnOnce(&mut web::ServiceConfig) + Clone {
    move |cfg: &mut web::ServiceConfig| {
        cfg.service(
            web::resource("/metrics")
                .app_data(endpoint)
                .route(web::get().to(ops::metrics))
                .default_service(error::method_not_allowed("GET")),
        );
    }
}

/// Starts serving on an already bound listener (port 0 in tests).
pub fn serve(
    listener: TcpListener,
    services: Services,
    config: HttpConfig,
) -> std::io::Result<Server> {
    let workers = config.workers;
    let routes = configure(services, &config);
    let mut server = HttpServer::new(move || {
        App::new()
            .wrap(from_fn(telemetry::trace_request))
            .configure(routes.clone())
    })
    .listen(listener)?
    .shutdown_timeout(SHUTDOWN_TIMEOUT_SECONDS);
    if let Some(n) = workers {
        server = server.workers(n.max(1));
    }
    Ok(server.disable_signals().run())
}

/// Serves only `/metrics` on its own listener (`metrics.bind`).
pub fn serve_metrics(listener: TcpListener, endpoint: MetricsEndpoint) -> std::io::Result<Server> {
    let route = metrics_route(web::Data::new(endpoint));
    let server = HttpServer::new(move || {
        App::new()
            .configure(route.clone())
            .default_service(web::to(error::not_found))
    })
    .listen(listener)?
    .workers(1);
    Ok(server.disable_signals().run())
}
