//! Reading request bodies within their limits.

use actix_multipart::Multipart;
use actix_web::HttpRequest;
use actix_web::http::header::CONTENT_LENGTH;
use actix_web::web::{self, BytesMut};
use futures_util::StreamExt;

use crate::ApiError;

/// The declared length, when it is already over the limit.
fn check_declared_length(req: &HttpRequest, limit: usize) -> Result<(), ApiError> {
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    match declared {
        Some(len) if len > limit as u64 => Err(ApiError::too_large(limit)),
        _ => Ok(()),
    }
}

/// The whole body, or 413 once it passes `limit` bytes.
pub(crate) async fn read_limited(
    req: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
) -> Result<BytesMut, ApiError> {
    check_declared_length(req, limit)?;
    let mut body = BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk
            .map_err(|e| ApiError::bad_request(format!("cannot read the request body: {e}")))?;
        if body.len() + chunk.len() > limit {
            return Err(ApiError::too_large(limit));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// One part of a multipart body.
pub(crate) struct Part {
    pub name: String,
    pub content_type: Option<String>,
    pub bytes: Vec<u8>,
}

/// Every named part of a multipart/form-data body, or 413 once all parts
/// together pass `limit` bytes.
pub(crate) async fn read_multipart(
    req: &HttpRequest,
    payload: web::Payload,
    limit: usize,
) -> Result<Vec<Part>, ApiError> {
    check_declared_length(req, limit)?;
    let mut multipart = Multipart::new(req.headers(), payload);
    let mut parts = Vec::new();
    let mut total = 0usize;
    while let Some(field) = multipart.next().await {
        let mut field =
            field.map_err(|e| ApiError::bad_request(format!("malformed multipart body: {e}")))?;
        let name = field.name().map(str::to_owned);
        let content_type = field.content_type().map(ToString::to_string);
        let mut bytes = Vec::new();
        while let Some(chunk) = field.next().await {
            let chunk = chunk
                .map_err(|e| ApiError::bad_request(format!("malformed multipart body: {e}")))?;
            total += chunk.len();
            if total > limit {
                return Err(ApiError::too_large(limit));
            }
            bytes.extend_from_slice(&chunk);
        }
        if let Some(name) = name {
            parts.push(Part {
                name,
                content_type,
                bytes,
            });
        }
    }
    Ok(parts)
}
