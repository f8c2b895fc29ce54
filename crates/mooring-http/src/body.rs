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

/// Most parts in one multipart body, and the longest part name.
pub(crate) const MAX_PARTS: usize = 64;
pub(crate) const MAX_PART_NAME: usize = 128;
/// What the raw body may hold beyond the parts' content: boundaries, part
/// headers, preamble.
const MULTIPART_OVERHEAD: usize = 64 * 1024;

/// The shortest multipart boundary read. RFC 2046 allows 1 to 70
/// characters; actix-multipart 0.7 panics on some bodies whose boundary is
/// shorter than 4 (found by the `multipart` fuzz target), and no client
/// sends one that short.
pub(crate) const MIN_BOUNDARY: usize = 4;
/// The longest, as RFC 2046 says.
pub(crate) const MAX_BOUNDARY: usize = 70;

/// 400 unless the body's boundary is [`MIN_BOUNDARY`] to [`MAX_BOUNDARY`]
/// characters.
fn check_boundary(req: &HttpRequest) -> Result<(), ApiError> {
    use actix_web::HttpMessage;
    let boundary = req.mime_type().ok().flatten().and_then(|m| {
        m.get_param(actix_web::mime::BOUNDARY)
            .map(|b| b.as_str().len())
    });
    match boundary {
        Some(n) if (MIN_BOUNDARY..=MAX_BOUNDARY).contains(&n) => Ok(()),
        _ => Err(ApiError::bad_request(format!(
            "a multipart body needs a boundary of {MIN_BOUNDARY} to {MAX_BOUNDARY} characters"
        ))),
    }
}

/// Every named part of a multipart/form-data body. 413 once the parts'
/// content passes `limit` bytes, or the raw body (headers, boundaries and
/// preamble included, chunked or not) passes `limit` and a small overhead;
/// 400 past [`MAX_PARTS`] parts or a name longer than [`MAX_PART_NAME`].
pub(crate) async fn read_multipart(
    req: &HttpRequest,
    payload: web::Payload,
    limit: usize,
) -> Result<Vec<Part>, ApiError> {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let raw_cap = limit.saturating_add(MULTIPART_OVERHEAD);
    check_declared_length(req, raw_cap)?;
    check_boundary(req)?;
    let overflowed = Arc::new(AtomicBool::new(false));
    let flag = overflowed.clone();
    let mut raw = 0usize;
    // Counts every byte the client sends, before the parser sees it.
    let counted = payload.map(move |chunk| {
        let chunk = chunk?;
        raw = raw.saturating_add(chunk.len());
        if raw > raw_cap {
            flag.store(true, Ordering::Relaxed);
            return Err(actix_web::error::PayloadError::Overflow);
        }
        Ok(chunk)
    });
    let too_large = |e: &dyn std::fmt::Display| {
        if overflowed.load(Ordering::Relaxed) {
            ApiError::too_large(limit)
        } else {
            ApiError::bad_request(format!("malformed multipart body: {e}"))
        }
    };
    let mut multipart = Multipart::new(req.headers(), counted);
    let mut parts = Vec::new();
    let mut total = 0usize;
    let mut seen = 0usize;
    while let Some(field) = multipart.next().await {
        let mut field = field.map_err(|e| too_large(&e))?;
        seen += 1;
        if seen > MAX_PARTS {
            return Err(ApiError::bad_request(format!(
                "a multipart body may have at most {MAX_PARTS} parts"
            )));
        }
        let name = field.name().map(str::to_owned);
        if name.as_ref().is_some_and(|n| n.len() > MAX_PART_NAME) {
            return Err(ApiError::bad_request(format!(
                "a part name may be at most {MAX_PART_NAME} bytes"
            )));
        }
        let content_type = field.content_type().map(ToString::to_string);
        let mut bytes = Vec::new();
        while let Some(chunk) = field.next().await {
            let chunk = chunk.map_err(|e| too_large(&e))?;
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
