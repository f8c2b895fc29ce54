//! The OpenAPI 3.1 document of Mooring's own API, generated from the route
//! annotations and the DTOs, served at `/openapi.json` and checked in at
//! `docs/openapi.json` (a test fails when the two differ).

use std::sync::OnceLock;

use actix_web::HttpResponse;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::{customer, deposit, error, event, ops, quote};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Mooring",
        description = "The business server of a Stellar Anchor Platform (AP) SEP-31 receiving anchor: the AP's Callback API (KYC, quotes, fees, deposit addresses, events) and the operators' routes. The callbacks take the AP's callback authentication, as configured (`CALLBACK_API_AUTH_TYPE`: none, `api_key` in `X-Api-Key`, or an HS256 JWT bearer token).",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    paths(
        customer::get_customer,
        customer::put_customer,
        customer::delete_customer,
        quote::get_rate,
        quote::get_fee,
        deposit::get_unique_address,
        event::post_event,
        ops::health,
        ops::ready,
        ops::metrics,
        openapi_json,
    ),
    components(schemas(error::ErrorBody)),
    modifiers(&CallbackAuth),
    tags(
        (name = "KYC (SEP-12)", description = "Customers, as the AP's SEP-12 server asks about them"),
        (name = "Quotes (SEP-38) and fees", description = "Prices, firm quotes and fees"),
        (name = "Deposit addresses", description = "Where a SEP-31 sender pays"),
        (name = "Events", description = "The AP's events (AP 2.2.1+)"),
        (name = "Operations", description = "Probes, metrics and this document; no authentication"),
    ),
)]
struct ApiDoc;

/// The security schemes the callbacks accept (which one is configured).
struct CallbackAuth;

impl Modify for CallbackAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "jwt",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "HS256, signed with SECRET_CALLBACK_API_AUTH_SECRET; `exp` required",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-Api-Key",
                "SECRET_CALLBACK_API_AUTH_SECRET",
            ))),
        );
    }
}

/// The document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// The document as served and checked in: pretty JSON, newline-terminated.
pub fn openapi_document() -> &'static str {
    static DOCUMENT: OnceLock<String> = OnceLock::new();
    DOCUMENT.get_or_init(|| {
        let mut json = openapi()
            .to_pretty_json()
            .unwrap_or_else(|e| format!("{{\"error\": \"cannot render the document: {e}\"}}"));
        json.push('\n');
        json
    })
}

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "Operations",
    responses((status = 200, description = "The OpenAPI 3.1 document of this API", content_type = "application/json")))]
pub(crate) async fn openapi_json() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(openapi_document())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `docs/openapi.json` is what the code generates.
    #[test]
    fn the_checked_in_document_is_current() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/openapi.json");
        let committed = std::fs::read_to_string(path).unwrap_or_default();
        let parse = |s: &str| serde_json::from_str::<serde_json::Value>(s).ok();
        assert!(
            parse(&committed).is_some() && parse(&committed) == parse(openapi_document()),
            "docs/openapi.json differs from the code's document: run `cargo xtask openapi` and commit it"
        );
    }

    #[test]
    fn it_is_openapi_3_1_with_every_route() {
        let doc: serde_json::Value = serde_json::from_str(openapi_document()).expect("valid JSON");
        assert_eq!(doc["openapi"], "3.1.0");
        for (path, method) in [
            ("/customer", "get"),
            ("/customer", "put"),
            ("/customer/{id}", "delete"),
            ("/rate", "get"),
            ("/fee", "get"),
            ("/unique_address", "get"),
            ("/event", "post"),
            ("/health", "get"),
            ("/ready", "get"),
            ("/metrics", "get"),
            ("/openapi.json", "get"),
        ] {
            assert!(doc["paths"][path][method].is_object(), "{method} {path}");
        }
    }
}
