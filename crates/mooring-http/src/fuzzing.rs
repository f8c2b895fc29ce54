//! Entry points for the fuzzers (`fuzz/`, `cargo xtask fuzz`): the parsers
//! of this adapter, outside a server. Built only with the `fuzzing`
//! feature; never part of the product.

use actix_web::{FromRequest, ResponseError, test, web};
use rust_decimal::Decimal;

/// The most parts in one body.
pub const MAX_PARTS: usize = crate::body::MAX_PARTS;
/// The longest part name, in bytes.
pub const MAX_PART_NAME: usize = crate::body::MAX_PART_NAME;

/// An amount as `GET /rate` and `GET /fee` read it.
pub fn amount(text: &str) -> Result<Decimal, String> {
    crate::quote::parse_amount("amount", text).map_err(|e| e.to_string())
}

/// A multipart body as `PUT /customer` reads it, with `limit` bytes of
/// content: each part's name and size, or the answer's status.
pub fn multipart(
    content_type: &str,
    body: &[u8],
    limit: usize,
) -> Result<Vec<(String, usize)>, u16> {
    // A header value HTTP cannot carry never reaches a handler.
    let Ok(content_type) = actix_web::http::header::HeaderValue::from_str(content_type) else {
        return Err(400);
    };
    let body = body.to_vec();
    actix_web::rt::System::new().block_on(async move {
        let (req, mut payload) = test::TestRequest::default()
            .insert_header(("content-type", content_type))
            .set_payload(body)
            .to_http_parts();
        let payload = web::Payload::from_request(&req, &mut payload)
            .await
            .map_err(|e| e.as_response_error().status_code().as_u16())?;
        crate::body::read_multipart(&req, payload, limit)
            .await
            .map(|parts| parts.into_iter().map(|p| (p.name, p.bytes.len())).collect())
            .map_err(|e| e.status_code().as_u16())
    })
}
