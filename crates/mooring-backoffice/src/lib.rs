//! Mooring's back office: an inbound adapter beside `mooring-http`, on its
//! own listener (`backoffice.bind`, loopback by default), serving
//! server-rendered HTML (maud, checked at compile time) to compliance and
//! operations staff.
//!
//! Pages are plain forms and links; the one script (`/static/backoffice.js`,
//! a confirm step) is Mooring's own file, never inline. Every page checks
//! the person's role on the server ([`session::Person::require`]); every
//! state-changing form carries the session's CSRF token; every response
//! carries a Content-Security-Policy without inline scripts, and refuses
//! framing and referrers. It depends on the use cases, never on the store.

mod admin;
mod customers;
mod dashboard;
mod page;
mod payouts;
mod quotes;
mod session;
mod signin;

use std::net::TcpListener;

use actix_web::dev::Server;
use actix_web::middleware::DefaultHeaders;
use actix_web::{App, HttpResponse, HttpServer, web};
use mooring_usecases::{
    AuditTrail, KycService, Operations, PayoutEngine, PayoutRequests, QuoteService, StaffService,
};

pub use session::SESSION_COOKIE;

/// The style sheet and the script, served by Mooring from these files.
const CSS: &str = include_str!("../static/backoffice.css");
const JS: &str = include_str!("../static/backoffice.js");

/// The policy every response carries: nothing inline runs, nothing from
/// elsewhere loads, no page frames this one.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// What the back office's pages reach.
#[derive(Clone)]
pub struct BackOffice {
    pub staff: StaffService,
    pub kyc: KycService,
    pub quotes: QuoteService,
    pub audit: AuditTrail,
    pub ops: Operations,
    /// The payment engine and its maker-checker desk; `None` with the
    /// engine off (`platform.enabled = false`).
    pub payouts: Option<(PayoutEngine, PayoutRequests)>,
    /// Cookies are `Secure` (HTTPS only).
    pub secure_cookies: bool,
    /// Whether customers wait for a person's review (`kyc.review = manual`).
    pub manual_review: bool,
}

/// Every route of the back office.
pub fn configure(office: BackOffice) -> impl FnOnce(&mut web::ServiceConfig) + Clone {
    let data = web::Data::new(office);
    move |cfg: &mut web::ServiceConfig| {
        cfg.app_data(data)
            .app_data(
                web::FormConfig::default()
                    .limit(64 * 1024)
                    .error_handler(|e, _| {
                        page::PageError::BadRequest(format!("the form could not be read: {e}"))
                            .into()
                    }),
            )
            .app_data(web::QueryConfig::default().error_handler(|e, _| {
                page::PageError::BadRequest(format!("the address could not be read: {e}")).into()
            }))
            .app_data(web::PathConfig::default().error_handler(|e, _| {
                page::PageError::BadRequest(format!("the address could not be read: {e}")).into()
            }))
            .route("/static/backoffice.css", web::get().to(css))
            .route("/static/backoffice.js", web::get().to(js))
            .configure(signin::routes)
            .configure(dashboard::routes)
            .configure(customers::routes)
            .configure(payouts::routes)
            .configure(quotes::routes)
            .configure(admin::routes)
            .default_service(web::to(page::not_found));
    }
}

async fn css() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .body(CSS)
}

async fn js() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/javascript; charset=utf-8")
        .body(JS)
}

/// The headers on every response.
fn security_headers() -> DefaultHeaders {
    DefaultHeaders::new()
        .add(("Content-Security-Policy", CONTENT_SECURITY_POLICY))
        .add(("X-Frame-Options", "DENY"))
        .add(("Referrer-Policy", "no-referrer"))
        .add(("X-Content-Type-Options", "nosniff"))
        .add(("Cache-Control", "no-store"))
}

/// Serves the back office on an already bound listener (port 0 in tests).
pub fn serve(listener: TcpListener, office: BackOffice) -> std::io::Result<Server> {
    let routes = configure(office);
    let server = HttpServer::new(move || {
        App::new()
            .wrap(security_headers())
            .configure(routes.clone())
    })
    .listen(listener)?
    .workers(2)
    .shutdown_timeout(10);
    Ok(server.disable_signals().run())
}
