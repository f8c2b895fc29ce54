//! The back office's listener and its sessions (`[backoffice]`).

use std::net::{SocketAddr, ToSocketAddrs as _};

use mooring_domain::staff::SessionPolicy;

use super::{RawSettings, SettingsError};

/// The back office as configured.
#[derive(Debug, Clone)]
pub struct BackofficeSetting {
    pub enabled: bool,
    pub bind: String,
    /// The session cookie is `Secure`.
    pub secure_cookies: bool,
    pub issuer: String,
    pub policy: SessionPolicy,
}

fn is_loopback(bind: &str) -> bool {
    bind.to_socket_addrs()
        .map(|mut addrs| addrs.all(|a: SocketAddr| a.ip().is_loopback()))
        .unwrap_or(false)
}

pub(super) fn backoffice(raw: &RawSettings) -> Result<BackofficeSetting, SettingsError> {
    let b = &raw.backoffice;
    let seconds = |name: &str, n: u64| {
        if (1..=31 * 86_400).contains(&n) {
            i64::try_from(n)
                .map(chrono::Duration::seconds)
                .map_err(|_| SettingsError(format!("backoffice.{name}: {n} is too large")))
        } else {
            Err(SettingsError(format!(
                "backoffice.{name} must be between 1 and 2678400 seconds, not {n}"
            )))
        }
    };
    let idle = seconds("idle_timeout_seconds", b.idle_timeout_seconds)?;
    let absolute = seconds("session_max_seconds", b.session_max_seconds)?;
    if absolute < idle {
        return Err(SettingsError(
            "backoffice.session_max_seconds must be at least backoffice.idle_timeout_seconds"
                .into(),
        ));
    }
    if b.max_failures == 0 {
        return Err(SettingsError(
            "backoffice.max_failures must be at least 1".into(),
        ));
    }
    let lockout = seconds("lockout_seconds", b.lockout_seconds)?;
    if b.enabled && b.bind.trim().is_empty() {
        return Err(SettingsError(
            "backoffice.bind: a host:port is required while the back office is enabled".into(),
        ));
    }
    let issuer = b.issuer.trim();
    if issuer.is_empty() || issuer.len() > 64 || issuer.contains(':') {
        return Err(SettingsError(
            "backoffice.issuer: 1 to 64 characters, without ':'".into(),
        ));
    }
    Ok(BackofficeSetting {
        enabled: b.enabled,
        bind: b.bind.trim().to_owned(),
        secure_cookies: b
            .secure_cookies
            .unwrap_or_else(|| !is_loopback(b.bind.trim())),
        issuer: issuer.to_owned(),
        policy: SessionPolicy {
            idle,
            absolute,
            max_failures: b.max_failures,
            lockout,
        },
    })
}
