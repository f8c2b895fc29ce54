//! The callbacks' side: how the AP authenticates to Mooring
//! (`callback_api`), and where Mooring listens (`server`).

use mooring_http::{AuthConfigError, CallbackAuth};

use super::{AuthType, RawSettings, SettingsError};

pub(super) fn callback_auth(raw: &RawSettings) -> Result<CallbackAuth, SettingsError> {
    let c = &raw.callback_api;
    let built = match c.auth_type {
        AuthType::None => Ok(CallbackAuth::None),
        AuthType::ApiKey => CallbackAuth::api_key(&c.api_key_header, c.auth_secret.clone()),
        AuthType::Jwt => CallbackAuth::jwt(
            &c.jwt_header,
            c.auth_secret.clone(),
            c.jwt_leeway_seconds,
            c.jwt_max_lifetime_seconds,
        ),
    };
    built.map_err(|e| match e {
        AuthConfigError::Header(name) => SettingsError(format!(
            "callback_api.api_key_header / callback_api.jwt_header: {name:?} is not a valid HTTP header name"
        )),
        other => SettingsError(format!(
            "callback_api.auth_secret (SECRET_CALLBACK_API_AUTH_SECRET) for auth type {}: {other}",
            c.auth_type.as_str()
        )),
    })
}

/// `[server]`, built.
#[derive(Debug, Clone)]
pub struct ServerSetting {
    /// `server.host` when set; else `0.0.0.0`, or `127.0.0.1` while
    /// callback authentication is off.
    pub host: String,
    /// Whether the host is loopback only because authentication is off.
    pub loopback_only: bool,
    pub port: u16,
    pub workers: Option<usize>,
    pub multipart_limit_bytes: usize,
}

pub(super) fn server(raw: &RawSettings) -> Result<ServerSetting, SettingsError> {
    let s = &raw.server;
    if s.multipart_limit_bytes == 0 {
        return Err(SettingsError(
            "server.multipart_limit_bytes must be positive".into(),
        ));
    }
    let (host, loopback_only) = match &s.host {
        Some(host) => (host.clone(), false),
        None if raw.callback_api.auth_type == AuthType::None => ("127.0.0.1".into(), true),
        None => ("0.0.0.0".into(), false),
    };
    Ok(ServerSetting {
        host,
        loopback_only,
        port: s.port,
        workers: s.workers,
        multipart_limit_bytes: s.multipart_limit_bytes,
    })
}
