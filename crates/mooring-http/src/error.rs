//! The one place where errors become HTTP responses.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use mooring_usecases::{DepositError, KycError, QuoteError};
use serde::Serialize;
use utoipa::ToSchema;

/// Every error's body.
#[derive(Serialize, ToSchema)]
pub(crate) struct ErrorBody {
    /// What went wrong, for people; never PII.
    pub error: String,
}

/// An error answer: `{"error": "…"}` with a 4xx for the caller's mistakes,
/// or a generic 500 whose cause was logged once when it was made.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// A 400 as a 422, for a route whose spec has 422 for every request it
    /// cannot serve (`GET /rate`); any other status unchanged.
    pub fn bad_request_as_unprocessable(self) -> Self {
        if self.status == StatusCode::BAD_REQUEST {
            Self::new(StatusCode::UNPROCESSABLE_ENTITY, self.message)
        } else {
            self
        }
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, message)
    }

    pub fn unsupported_media_type(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, message)
    }

    pub fn too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body is larger than the limit of {limit} bytes"),
        )
    }

    /// A real fault. The cause is logged here, once; the caller sees only a
    /// generic message.
    pub fn internal(cause: &anyhow::Error) -> Self {
        tracing::error!(error = format!("{cause:#}"), "request failed");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal server error")
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        HttpResponse::build(self.status).json(ErrorBody {
            error: self.message.clone(),
        })
    }
}

impl From<KycError> for ApiError {
    fn from(e: KycError) -> Self {
        match e {
            KycError::BadRequest(message) => Self::bad_request(message),
            KycError::NotFound => Self::not_found("customer not found"),
            // No callback fences by a version; a conflict all the same.
            e @ KycError::Changed => Self::new(StatusCode::CONFLICT, e.to_string()),
            KycError::Unknown(cause) => Self::internal(&cause),
            KycError::Audit(cause) => Self::internal(&anyhow::Error::new(cause)),
        }
    }
}

pub(crate) async fn not_found() -> HttpResponse {
    ApiError::not_found("no such route").error_response()
}

/// A resource's answer to a method it does not serve: 405 with the
/// `Allow` header RFC 9110 requires, naming the methods it does.
pub(crate) fn method_not_allowed(allow: &'static str) -> actix_web::Route {
    actix_web::web::to(move || async move {
        let mut response =
            ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method not allowed").error_response();
        response.headers_mut().insert(
            actix_web::http::header::ALLOW,
            actix_web::http::header::HeaderValue::from_static(allow),
        );
        response
    })
}

impl From<QuoteError> for ApiError {
    fn from(e: QuoteError) -> Self {
        match e {
            QuoteError::BadRequest(message) => Self::bad_request(message),
            QuoteError::Unprocessable(message) => {
                Self::new(StatusCode::UNPROCESSABLE_ENTITY, message)
            }
            QuoteError::Unavailable(message) => Self::new(StatusCode::SERVICE_UNAVAILABLE, message),
            QuoteError::NotFound => Self::not_found("quote not found"),
            e @ (QuoteError::Expired | QuoteError::AlreadyUsed(_)) => {
                Self::new(StatusCode::UNPROCESSABLE_ENTITY, e.to_string())
            }
            QuoteError::Unknown(cause) => Self::internal(&cause),
        }
    }
}

impl From<DepositError> for ApiError {
    fn from(e: DepositError) -> Self {
        match e {
            DepositError::BadRequest(message) => Self::bad_request(message),
            DepositError::Unavailable(message) => {
                Self::new(StatusCode::SERVICE_UNAVAILABLE, message)
            }
            DepositError::Unknown(cause) => Self::internal(&cause),
        }
    }
}
