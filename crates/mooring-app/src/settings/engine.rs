//! The payment engine's side: the Platform API client (`platform`), the
//! payout rail (`payout.rail`, `payout.http`, what the provider gets), and
//! the engine's own timings, checked against each other.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use mooring_domain::customer::CustomerTypes;
use mooring_domain::payout::ProviderFields;
use mooring_domain::{AssetCatalog, Sep31Types};
use mooring_platform::{ApiStyle, PlatformAuth, PlatformConfig};
use secrecy::ExposeSecret;

use super::{AuthType, PlatformApi, RailKind, RawSettings, SettingsError, http_url};

/// Which payout rail pays.
pub enum RailSetting {
    Simulated {
        delay: Duration,
        failure_rate: f64,
    },
    Http {
        url: String,
        timeout: Duration,
        auth: Option<mooring_rails::RailAuth>,
    },
}

/// How the payment engine runs.
pub struct EngineSetting {
    pub enabled: bool,
    pub poll_interval: Duration,
    pub reconcile_interval: Duration,
    pub concurrency: u32,
    pub config: mooring_usecases::EngineConfig,
}

/// The Platform API client's backoff between retries (full jitter between
/// zero and `base · 2^attempt`, at most `max`).
const PLATFORM_BACKOFF_BASE_MS: u64 = 200;
const PLATFORM_BACKOFF_MAX_MS: u64 = 10_000;

/// AP calls one engine step makes at most (e.g. read, update, read again).
const AP_CALLS_PER_STEP: u64 = 3;

/// How to reach the AP's Platform API.
pub(super) fn platform(raw: &RawSettings) -> Result<PlatformConfig, SettingsError> {
    let p = &raw.platform;
    let base_url = http_url(
        "platform.base_url (PLATFORM_API_BASE_URL)",
        Some(&p.base_url),
        "",
    )?;
    let api = match p.api {
        PlatformApi::Rest => ApiStyle::Rest,
        PlatformApi::Rpc => ApiStyle::Rpc,
    };
    let secret = || {
        p.auth_secret
            .clone()
            .filter(|s| !s.expose_secret().is_empty())
            .ok_or_else(|| {
                SettingsError(format!(
                    "platform.auth_secret (SECRET_PLATFORM_API_AUTH_SECRET) is required for auth type {}",
                    p.auth_type.as_str()
                ))
            })
    };
    let auth = match p.auth_type {
        AuthType::None => PlatformAuth::None,
        AuthType::ApiKey => PlatformAuth::ApiKey(secret()?),
        AuthType::Jwt => {
            let s = secret()?;
            if s.expose_secret().len() < 32 {
                return Err(SettingsError(
                    "platform.auth_secret (SECRET_PLATFORM_API_AUTH_SECRET) must be at least 32 bytes for jwt".into(),
                ));
            }
            PlatformAuth::Jwt(s)
        }
    };
    if p.timeout_ms == 0 || p.max_attempts == 0 {
        return Err(SettingsError(
            "platform.timeout_ms and platform.max_attempts must be positive".into(),
        ));
    }
    Ok(PlatformConfig {
        base_url,
        api,
        auth,
        timeout: Duration::from_millis(p.timeout_ms),
        max_attempts: p.max_attempts,
        backoff_base: Duration::from_millis(PLATFORM_BACKOFF_BASE_MS),
        backoff_max: Duration::from_millis(PLATFORM_BACKOFF_MAX_MS),
    })
}

/// Whether `name` is a valid HTTP header name (token characters only).
fn header_name_ok(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// The payout rail.
pub(super) fn rail(raw: &RawSettings) -> Result<RailSetting, SettingsError> {
    let p = &raw.payout;
    match p.rail {
        RailKind::Simulated => {
            let rate = p.simulated.failure_rate;
            if !(0.0..=1.0).contains(&rate) {
                return Err(SettingsError(format!(
                    "payout.simulated.failure_rate: {rate} is not between 0 and 1"
                )));
            }
            Ok(RailSetting::Simulated {
                delay: Duration::from_millis(p.simulated.delay_ms),
                failure_rate: rate,
            })
        }
        RailKind::Http => {
            let url = http_url(
                "payout.http.url (MOORING__PAYOUT__HTTP__URL)",
                p.http.url.as_deref(),
                " when payout.rail = \"http\"",
            )?;
            if p.http.timeout_ms == 0 {
                return Err(SettingsError(
                    "payout.http.timeout_ms must be positive".into(),
                ));
            }
            let auth = match (&p.http.auth_header, &p.http.auth_token) {
                (None, None) => None,
                (Some(header), Some(token)) => {
                    if !header_name_ok(header) {
                        return Err(SettingsError(format!(
                            "payout.http.auth_header: {header:?} is not an HTTP header name"
                        )));
                    }
                    Some(mooring_rails::RailAuth {
                        header: header.clone(),
                        token: token.clone(),
                    })
                }
                _ => {
                    return Err(SettingsError(
                        "payout.http.auth_header and payout.http.auth_token are set together (MOORING__PAYOUT__HTTP__AUTH_HEADER, MOORING__PAYOUT__HTTP__AUTH_TOKEN)".into(),
                    ));
                }
            };
            Ok(RailSetting::Http {
                url,
                timeout: Duration::from_millis(p.http.timeout_ms),
                auth,
            })
        }
    }
}

/// `payout.approval_above`: SEP-38 asset names to amounts of zero or more
/// (zero holds every payout of the asset).
fn approval_above(
    raw: &RawSettings,
) -> Result<BTreeMap<mooring_domain::AssetId, rust_decimal::Decimal>, SettingsError> {
    raw.payout
        .approval_above
        .iter()
        .map(|(asset, limit)| {
            let id = mooring_domain::AssetId::parse(asset)
                .map_err(|e| SettingsError(format!("payout.approval_above.{asset:?}: {e}")))?;
            if *limit < rust_decimal::Decimal::ZERO {
                return Err(SettingsError(format!(
                    "payout.approval_above.{asset:?}: {limit} is negative"
                )));
            }
            Ok((id, *limit))
        })
        .collect()
}

/// `payout.http.fields`: `default` replaces the built-in list of names and
/// bank fields; every other key is a delivery method.
fn provider_fields(raw: &RawSettings) -> Result<ProviderFields, SettingsError> {
    let mut lists: BTreeMap<String, Vec<String>> = raw
        .payout
        .http
        .fields
        .iter()
        .map(|(k, v)| (k.clone(), v.names()))
        .collect();
    let default = lists.remove("default");
    ProviderFields::new(default.as_deref(), &lists).map_err(SettingsError)
}

/// How the payment engine runs. Its owner (which names this replica in
/// claims) is `HOSTNAME` from `env`, the process id and a random suffix.
pub(super) fn engine(
    raw: &RawSettings,
    platform: &PlatformConfig,
    types: &CustomerTypes,
    catalog: &AssetCatalog,
    env: &HashMap<String, String>,
) -> Result<EngineSetting, SettingsError> {
    let (pl, p) = (&raw.platform, &raw.payout);
    let positive = [
        ("platform.poll_interval_ms", pl.poll_interval_ms),
        ("platform.reconcile_interval_ms", pl.reconcile_interval_ms),
        ("platform.page_size", u64::from(pl.page_size)),
        ("payout.concurrency", u64::from(p.concurrency)),
        ("payout.lease_ms", p.lease_ms),
        ("payout.key_retention_ms", p.key_retention_ms),
        ("payout.kyc_recheck_ms", p.kyc_recheck_ms),
        ("payout.follow_ms", p.follow_ms),
        ("payout.retry_base_ms", p.retry_base_ms),
        ("payout.retry_max_ms", p.retry_max_ms),
    ];
    if let Some((name, _)) = positive.iter().find(|(_, v)| *v == 0) {
        return Err(SettingsError(format!("{name} must be positive")));
    }
    if pl.page_size > 200 {
        return Err(SettingsError(
            "platform.page_size must be at most 200".into(),
        ));
    }
    // Every call inside a step is cut off at the step's deadline (the lease
    // less a tenth), so a too-short lease is safe but never lets a slow
    // step finish: the longest step, with all its retries, must fit.
    let ap_call = u64::try_from(platform.longest_call().as_millis()).unwrap_or(u64::MAX);
    let longest = AP_CALLS_PER_STEP
        .saturating_mul(ap_call)
        .max(p.http.timeout_ms.saturating_add(ap_call));
    if p.lease_ms.saturating_mul(9) / 10 < longest {
        return Err(SettingsError(format!(
            "payout.lease_ms ({} ms) must hold the longest payout step with all its retries ({longest} ms: {AP_CALLS_PER_STEP} AP calls of platform.max_attempts × platform.timeout_ms plus backoff, or payout.http.timeout_ms and one AP call) and a tenth more: at least {} ms",
            p.lease_ms,
            longest.saturating_mul(10) / 9 + 1
        )));
    }
    let ms =
        |v: u64| chrono::Duration::milliseconds(i64::try_from(v).unwrap_or(i64::MAX / 1_000_000));
    let owner = format!(
        "{}-{}-{}",
        env.get("HOSTNAME")
            .filter(|h| !h.is_empty())
            .map_or("mooring", String::as_str),
        std::process::id(),
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let mut config = mooring_usecases::EngineConfig::new(owner);
    config.request_funds = pl.api == PlatformApi::Rpc;
    config.page_size = pl.page_size;
    config.poll_overlap = ms(pl.poll_overlap_ms);
    config.lease = ms(p.lease_ms);
    config.key_retention = ms(p.key_retention_ms);
    for (key, name) in [
        ("kyc.sep31_sender_type", &raw.kyc.sep31_sender_type),
        ("kyc.sep31_receiver_type", &raw.kyc.sep31_receiver_type),
    ] {
        if !types.contains(name) {
            return Err(SettingsError(format!(
                "{key}: {name:?} is not a configured customer type (kyc.types)"
            )));
        }
    }
    config.sep31_types = Sep31Types::new(
        raw.kyc.sep31_sender_type.clone(),
        raw.kyc.sep31_receiver_type.clone(),
        catalog,
    );
    config.backoff_base = ms(p.retry_base_ms);
    config.backoff_max = ms(p.retry_max_ms);
    config.kyc_recheck = ms(p.kyc_recheck_ms);
    config.rail_follow = ms(p.follow_ms);
    config.completion_message = p.completion_message.clone();
    config.provider_fields = provider_fields(raw)?;
    config.approval_above = approval_above(raw)?;
    Ok(EngineSetting {
        enabled: pl.enabled,
        poll_interval: Duration::from_millis(pl.poll_interval_ms),
        reconcile_interval: Duration::from_millis(pl.reconcile_interval_ms),
        concurrency: p.concurrency,
        config,
    })
}
