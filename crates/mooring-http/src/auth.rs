//! The callback authentication the Anchor Platform sends
//! (`callback_api.auth.type` = none | api_key | jwt, secret
//! `SECRET_CALLBACK_API_AUTH_SECRET`).

use std::sync::Arc;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::HeaderName;
use actix_web::middleware::Next;
use actix_web::{ResponseError, web};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use secrecy::{ExposeSecret, SecretString};

use crate::ApiError;

/// The header AP 3.x+ always put the API key in.
static DEFAULT_API_KEY_HEADER: HeaderName = HeaderName::from_static("x-api-key");

/// The shortest JWT secret accepted, as the AP (2.7+) requires.
pub const MIN_JWT_SECRET_BYTES: usize = 32;

/// How callbacks must authenticate.
#[derive(Clone)]
pub enum CallbackAuth {
    /// No check (the AP's default; warned about at start).
    None,
    /// The secret itself, in a header (`X-Api-Key` by default).
    ApiKey {
        header: HeaderName,
        key: SecretString,
    },
    /// `Authorization: Bearer <HS256 JWT>` signed with the secret's bytes,
    /// carrying `iat` and `exp`.
    Jwt(Arc<JwtCheck>),
}

pub struct JwtCheck {
    header: HeaderName,
    key: DecodingKey,
    validation: Validation,
    leeway_seconds: u64,
    max_lifetime_seconds: u64,
}

/// A callback auth setting that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthConfigError {
    #[error("the callback auth secret is required for auth type {0}")]
    MissingSecret(&'static str),
    #[error("the callback JWT secret must be at least {MIN_JWT_SECRET_BYTES} bytes, got {0}")]
    WeakSecret(usize),
    #[error("invalid header name {0:?}")]
    Header(String),
}

impl CallbackAuth {
    pub fn api_key(header: &str, secret: Option<SecretString>) -> Result<Self, AuthConfigError> {
        let key = secret
            .filter(|s| !s.expose_secret().is_empty())
            .ok_or(AuthConfigError::MissingSecret("api_key"))?;
        Ok(Self::ApiKey {
            header: header_name(header)?,
            key,
        })
    }

    /// HS256 tokens with `iat` and `exp` (and `nbf` when present), living
    /// at most `max_lifetime_seconds`.
    pub fn jwt(
        header: &str,
        secret: Option<SecretString>,
        leeway_seconds: u64,
        max_lifetime_seconds: u64,
    ) -> Result<Self, AuthConfigError> {
        let secret = secret
            .filter(|s| !s.expose_secret().is_empty())
            .ok_or(AuthConfigError::MissingSecret("jwt"))?;
        let len = secret.expose_secret().len();
        if len < MIN_JWT_SECRET_BYTES {
            return Err(AuthConfigError::WeakSecret(len));
        }
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = leeway_seconds;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp", "iat"]);
        Ok(Self::Jwt(Arc::new(JwtCheck {
            header: header_name(header)?,
            key: DecodingKey::from_secret(secret.expose_secret().as_bytes()),
            validation,
            leeway_seconds,
            max_lifetime_seconds,
        })))
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Self::None => "none",
            Self::ApiKey { .. } => "api_key",
            Self::Jwt(_) => "jwt",
        }
    }

    /// Checks a request's credentials; the error is the message for the 401.
    fn check(&self, req: &ServiceRequest) -> Result<(), &'static str> {
        match self {
            Self::None => Ok(()),
            Self::ApiKey { header, key } => {
                let mut sent = [header, &DEFAULT_API_KEY_HEADER]
                    .into_iter()
                    .filter_map(|h| req.headers().get(h))
                    .peekable();
                if sent.peek().is_none() {
                    return Err("missing API key");
                }
                if sent.any(|v| constant_time_eq(v.as_bytes(), key.expose_secret().as_bytes())) {
                    Ok(())
                } else {
                    Err("invalid API key")
                }
            }
            Self::Jwt(check) => {
                let value = req
                    .headers()
                    .get(&check.header)
                    .ok_or("missing bearer token")?;
                let value = value.to_str().map_err(|_| "invalid bearer token")?;
                let token = value
                    .split_once(' ')
                    .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
                    .map(|(_, token)| token.trim())
                    .ok_or("missing bearer token")?;
                let claims = jsonwebtoken::decode::<Claims>(token, &check.key, &check.validation)
                    .map_err(|_| "token is invalid or expired")?
                    .claims;
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                if claims.iat > now.saturating_add(check.leeway_seconds) {
                    return Err("token is invalid or expired");
                }
                // A token that lives too long is a stolen token's best friend.
                let cap = check
                    .max_lifetime_seconds
                    .saturating_add(check.leeway_seconds);
                if claims.exp.saturating_sub(claims.iat) > cap
                    || claims.exp > now.saturating_add(cap)
                {
                    return Err("token lives longer than callback_api.jwt_max_lifetime_seconds");
                }
                Ok(())
            }
        }
    }
}

#[derive(serde::Deserialize)]
struct Claims {
    iat: u64,
    exp: u64,
}

fn header_name(name: &str) -> Result<HeaderName, AuthConfigError> {
    HeaderName::try_from(name).map_err(|_| AuthConfigError::Header(name.to_owned()))
}

/// Compares without stopping at the first difference (`subtle`; only the
/// length can tell).
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.ct_eq(b).into()
}

/// Middleware: a request without valid credentials gets 401 and never
/// reaches its handler.
pub(crate) async fn require_callback_auth(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let verdict = match req.app_data::<web::Data<CallbackAuth>>() {
        Some(auth) => auth.check(&req),
        None => Err("callback authentication is not configured"),
    };
    match verdict {
        Ok(()) => Ok(next.call(req).await?.map_into_left_body()),
        Err(message) => {
            tracing::warn!(reason = message, "callback refused");
            let response = ApiError::unauthorized(message).error_response();
            Ok(req.into_response(response).map_into_right_body())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_jwt_secrets_and_missing_secrets_are_refused() {
        let short = SecretString::from("x".repeat(31));
        assert_eq!(
            CallbackAuth::jwt("Authorization", Some(short), 5, 3600).err(),
            Some(AuthConfigError::WeakSecret(31))
        );
        assert_eq!(
            CallbackAuth::jwt("Authorization", None, 5, 3600).err(),
            Some(AuthConfigError::MissingSecret("jwt"))
        );
        assert_eq!(
            CallbackAuth::api_key("X-Api-Key", Some(SecretString::from(""))).err(),
            Some(AuthConfigError::MissingSecret("api_key"))
        );
        assert!(
            CallbackAuth::jwt(
                "Authorization",
                Some(SecretString::from("y".repeat(32))),
                5,
                3600
            )
            .is_ok()
        );
        assert!(matches!(
            CallbackAuth::api_key("bad header\n", Some(SecretString::from("k"))),
            Err(AuthConfigError::Header(_))
        ));
    }

    #[test]
    fn constant_time_comparison() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
    }
}
