//! Layered configuration: built-in defaults → the TOML file named by
//! `MOORING_CONFIG` → `MOORING__SECTION__KEY` environment variables →
//! `DATABASE_URL` → the Anchor Platform's own environment names where the
//! setting is the same one, so that one `dev.env` serves the whole stack.
//!
//! [`Settings::load`] reads the layers into the typed mirror of
//! `default.toml` ([`RawSettings`], in `raw`), then builds each adapter's
//! own configuration once, checking it (the rooms: `data` for the database,
//! the key and retention; `auth` for the callbacks and the listener; `kyc`;
//! `quotes` for quotes, assets and fees; `engine` for the platform, the rail
//! and the engine; `custodian`). Start-up and the CLI take what they need
//! from the result; nothing is built twice.

mod auth;
mod backoffice;
mod custodian;
mod data;
mod de;
mod engine;
mod kyc;
mod quotes;
mod raw;

use std::collections::HashMap;

use mooring_domain::AssetCatalog;
use mooring_domain::customer::{CustomerTypes, ReviewMode};
use mooring_domain::quote::FeeSchedules;
use mooring_http::CallbackAuth;
use mooring_platform::PlatformConfig;

pub use auth::ServerSetting;
pub use backoffice::BackofficeSetting;
pub use custodian::CustodianSetting;
pub use data::{DatabaseSetting, PiiKey, PiiSetting, RetentionSetting};
pub use de::Kind;
pub use engine::{EngineSetting, RailSetting};
pub use quotes::{QuoteSetup, RateSourceSetting};
pub use raw::{
    AP_ENV, AssetsSettings, AuthType, CustodianKind, DEFAULTS, LogFormat, LogSettings, MemoType,
    MetricsSettings, PlatformApi, PricingSource, RailKind, RawSettings, ReviewKind,
};

use crate::assets::{self, AssetsFile};

/// A configuration that cannot be used; the message names the key.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SettingsError(pub String);

impl From<config::ConfigError> for SettingsError {
    fn from(e: config::ConfigError) -> Self {
        Self(e.to_string())
    }
}

/// The settings, built: each adapter's configuration, checked.
pub struct Settings {
    /// The layers as read, for what is only shown (the start-up line).
    pub raw: RawSettings,
    pub database: DatabaseSetting,
    pub pii: PiiSetting,
    pub server: ServerSetting,
    pub callback_auth: CallbackAuth,
    pub customer_types: CustomerTypes,
    pub review_mode: ReviewMode,
    /// The AP's assets file, when `assets.type` names one.
    pub assets_file: Option<AssetsFile>,
    pub asset_catalog: AssetCatalog,
    pub quotes: QuoteSetup,
    pub fees: FeeSchedules,
    pub custodian: CustodianSetting,
    pub platform: PlatformConfig,
    pub rail: RailSetting,
    pub engine: EngineSetting,
    pub retention: RetentionSetting,
    pub metrics: MetricsSettings,
    pub log: LogSettings,
    pub backoffice: BackofficeSetting,
}

/// The raw layers only: secrets in them print as `[REDACTED]` (secrecy).
impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("raw", &self.raw)
            .finish_non_exhaustive()
    }
}

impl Settings {
    /// Loads the layers from this environment (the process's, in `main`)
    /// and builds every part; the first part that cannot be built is the
    /// error.
    pub fn load(env: &HashMap<String, String>) -> Result<Self, SettingsError> {
        let raw = RawSettings::load(env)?;
        let assets_file = assets::load(&raw.assets)?;
        let database = data::database(&raw)?;
        let pii = data::pii(&raw, &database)?;
        let callback_auth = auth::callback_auth(&raw)?;
        let server = auth::server(&raw)?;
        let review_mode = kyc::review_mode(&raw);
        let customer_types = kyc::customer_types(&raw, assets_file.as_ref())?;
        let asset_catalog = quotes::asset_catalog(&raw, assets_file.as_ref())?;
        let quotes = quotes::quote_setup(&raw, &asset_catalog)?;
        let fees = quotes::fee_schedules(&raw, &asset_catalog)?;
        let custodian = custodian::custodian(&raw)?;
        let platform = engine::platform(&raw)?;
        let rail = engine::rail(&raw)?;
        let engine = engine::engine(&raw, &platform, &customer_types, &asset_catalog, env)?;
        let retention = data::retention(&raw)?;
        let backoffice = backoffice::backoffice(&raw)?;
        if !engine.config.approval_above.is_empty() && !backoffice.enabled {
            return Err(SettingsError(
                "payout.approval_above holds payouts for an operator's release in the back office: it needs backoffice.enabled = true".into(),
            ));
        }
        Ok(Self {
            metrics: raw.metrics.clone(),
            log: raw.log.clone(),
            raw,
            database,
            pii,
            server,
            callback_auth,
            customer_types,
            review_mode,
            assets_file,
            asset_catalog,
            quotes,
            fees,
            custodian,
            platform,
            rail,
            engine,
            retention,
            backoffice,
        })
    }
}

/// `value` when it is an http(s) URL; else an error naming `key`.
fn http_url(key: &str, value: Option<&str>, when: &str) -> Result<String, SettingsError> {
    value
        .filter(|u| u.starts_with("http://") || u.starts_with("https://"))
        .map(str::to_owned)
        .ok_or_else(|| {
            SettingsError(format!(
                "{key}: an http:// or https:// URL is required{when}"
            ))
        })
}

#[cfg(test)]
mod tests {
    use mooring_domain::AssetId;

    use super::*;

    #[test]
    fn the_defaults_quote_out_of_the_box() {
        let settings = Settings::load(&HashMap::new()).expect("defaults load");
        let setup = &settings.quotes;
        assert_eq!(setup.pricing.pairs().len(), 2);
        let usdc =
            AssetId::parse("stellar:USDC:GBBD47IF6LWK7P7MDEVSCWR7DPUWV3NY3DTQEVFL4NAT4AQH3ZLLFLA5")
                .expect("valid");
        assert_eq!(
            setup.assets.get(&usdc).map(|a| a.significant_decimals),
            Some(2),
            "asset keys keep their case"
        );
        assert!(setup.liquidity.is_empty(), "no cap unless configured");
        assert!(matches!(setup.source, RateSourceSetting::Table));
        assert!(settings.fees.by_asset.contains_key(&usdc));
    }

    #[test]
    fn default_toml_types_are_the_domain_defaults() {
        let settings = Settings::load(&HashMap::new()).expect("defaults load");
        assert_eq!(settings.customer_types, CustomerTypes::builtin());
    }
}
