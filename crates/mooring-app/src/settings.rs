//! Layered configuration: built-in defaults → the TOML file named by
//! `MOORING_CONFIG` → `MOORING__SECTION__KEY` environment variables →
//! `DATABASE_URL` → the Anchor Platform's own environment names where the
//! setting is the same one, so that one `dev.env` serves the whole stack.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::Duration;

use config::{Config, Environment, File, FileFormat};
use mooring_domain::customer::{CustomerTypeSpec, CustomerTypes, ReviewMode, TypeRole};
use mooring_domain::deposit::DepositMemoKind;
use mooring_domain::payout::ProviderFields;
use mooring_domain::quote::{
    DeliveryFee, FeeSchedule, FeeSchedules, MAX_DECIMALS, PairPricing, Pricing, QuoteLifetime,
};
use mooring_domain::{AssetCatalog, AssetId, AssetInfo, Sep31Types, StellarAccount};
use mooring_http::{AuthConfigError, CallbackAuth};
use mooring_platform::{ApiStyle, PlatformAuth, PlatformConfig};
use mooring_rates::FeedConfig;
use mooring_store::{DatabaseUrl, StoreConfig};
use rust_decimal::Decimal;
use secrecy::ExposeSecret;
use secrecy::SecretString;
use serde::Deserialize;

use crate::assets::{self, AssetsFile};

/// The built-in defaults, also shown in docs/configuration.md.
pub const DEFAULTS: &str = include_str!("default.toml");

/// Environment variables of the Anchor Platform that Mooring reads, with the
/// setting each one fills. They override `MOORING__…`.
pub const AP_ENV: &[(&str, &str)] = &[
    ("CALLBACK_API_AUTH_TYPE", "callback_api.auth_type"),
    (
        "SECRET_CALLBACK_API_AUTH_SECRET",
        "callback_api.auth_secret",
    ),
    (
        "CALLBACK_API_AUTH_API_KEY_HTTP_HEADER",
        "callback_api.api_key_header",
    ),
    (
        "CALLBACK_API_AUTH_JWT_HTTP_HEADER",
        "callback_api.jwt_header",
    ),
    ("ASSETS_TYPE", "assets.type"),
    ("ASSETS_VALUE", "assets.value"),
    ("PLATFORM_API_BASE_URL", "platform.base_url"),
    // 2.x enforces platform_server.auth; 3.x+ platform_api.auth, which wins.
    ("PLATFORM_SERVER_AUTH_TYPE", "platform.auth_type"),
    ("PLATFORM_API_AUTH_TYPE", "platform.auth_type"),
    ("SECRET_PLATFORM_API_AUTH_SECRET", "platform.auth_secret"),
];

/// A configuration that cannot be used; the message names the key.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SettingsError(pub String);

impl From<config::ConfigError> for SettingsError {
    fn from(e: config::ConfigError) -> Self {
        Self(e.to_string())
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub server: ServerSettings,
    pub database: DatabaseSettings,
    pub callback_api: CallbackApiSettings,
    pub kyc: KycSettings,
    pub assets: AssetsSettings,
    pub quotes: QuotesSettings,
    pub pricing: PricingSettings,
    #[serde(default)]
    pub liquidity: BTreeMap<String, String>,
    #[serde(default)]
    pub fees: FeesSettings,
    pub custodian: CustodianSettings,
    pub platform: PlatformSettings,
    pub payout: PayoutSettings,
    pub log: LogSettings,
    #[serde(default)]
    pub metrics: MetricsSettings,
    #[serde(default)]
    pub pii: PiiSettings,
    pub retention: RetentionSettings,
    /// The AP's assets file, read once when the settings are loaded.
    #[serde(skip)]
    assets_file: Option<AssetsFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlatformSettings {
    pub base_url: String,
    pub api: String,
    pub auth_type: String,
    pub auth_secret: Option<SecretString>,
    pub timeout_ms: u64,
    pub max_attempts: u32,
    pub enabled: bool,
    pub poll_interval_ms: u64,
    pub reconcile_interval_ms: u64,
    pub page_size: u32,
    pub poll_overlap_ms: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PayoutSettings {
    pub rail: String,
    pub concurrency: u32,
    pub lease_ms: u64,
    pub key_retention_ms: u64,
    pub kyc_recheck_ms: u64,
    pub follow_ms: u64,
    pub retry_base_ms: u64,
    pub retry_max_ms: u64,
    pub completion_message: String,
    pub simulated: SimulatedRailSettings,
    pub http: PayoutHttpSettings,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimulatedRailSettings {
    pub delay_ms: u64,
    pub failure_rate: f64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PayoutHttpSettings {
    pub url: Option<String>,
    pub timeout_ms: u64,
    /// The header that carries the provider's credentials, and its value
    /// (a secret).
    pub auth_header: Option<String>,
    pub auth_token: Option<SecretString>,
    /// Which receiver fields the provider gets: `default`, and a list per
    /// delivery method (`docs/configuration.md`).
    #[serde(default)]
    pub fields: BTreeMap<String, FieldList>,
}

/// A list of SEP-9 field names: a TOML list, or (from the environment) a
/// comma-separated string.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum FieldList {
    List(Vec<String>),
    Csv(String),
}

impl FieldList {
    fn names(&self) -> Vec<String> {
        match self {
            Self::List(names) => names.iter().map(|n| n.trim().to_owned()).collect(),
            Self::Csv(text) => text
                .split(',')
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .map(str::to_owned)
                .collect(),
        }
    }
}

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

/// The Platform API client's backoff between retries (full jitter between
/// zero and `base · 2^attempt`, at most `max`).
const PLATFORM_BACKOFF_BASE_MS: u64 = 200;
const PLATFORM_BACKOFF_MAX_MS: u64 = 10_000;

/// AP calls one engine step makes at most (e.g. read, update, read again).
const AP_CALLS_PER_STEP: u64 = 3;

/// The longest one Platform API call can take with all its retries.
fn platform_call_ms(timeout_ms: u64, attempts: u32) -> u64 {
    let backoff: u64 = (1..attempts)
        .map(|k| {
            PLATFORM_BACKOFF_BASE_MS
                .saturating_mul(1u64 << k.min(20))
                .min(PLATFORM_BACKOFF_MAX_MS)
        })
        .sum();
    timeout_ms.saturating_mul(u64::from(attempts)) + backoff
}

/// How the payment engine runs.
pub struct EngineSetting {
    pub enabled: bool,
    pub poll_interval: Duration,
    pub reconcile_interval: Duration,
    pub concurrency: u32,
    pub config: mooring_usecases::EngineConfig,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustodianSettings {
    #[serde(rename = "type")]
    pub kind: String,
    pub distribution_account: Option<String>,
    pub memo_type: String,
    pub http: CustodianHttpSettings,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustodianHttpSettings {
    pub url: Option<String>,
    pub timeout_ms: u64,
}

/// Which custodian hands out deposit addresses.
pub enum CustodianSetting {
    /// None configured: `GET /unique_address` answers 503 saying so.
    None,
    /// The anchor itself: one account, a memo per transaction.
    SelfCustody {
        account: StellarAccount,
        memo: DepositMemoKind,
    },
    /// A custodian service.
    Http { url: String, timeout: Duration },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuotesSettings {
    pub firm_ttl_seconds: u64,
    pub max_ttl_seconds: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PricingSettings {
    pub source: String,
    pub feed: FeedSettings,
    #[serde(default)]
    pub pairs: Vec<PairSettings>,
    #[serde(default)]
    pub clients: Vec<ClientMarkupSettings>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedSettings {
    pub url: Option<String>,
    pub interval_ms: u64,
    pub max_age_ms: u64,
    pub timeout_ms: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PairSettings {
    pub sell_asset: String,
    pub buy_asset: String,
    pub price: Option<String>,
    #[serde(default)]
    pub markup_bps: u32,
    #[serde(default = "zero")]
    pub fee_fixed: String,
    #[serde(default = "zero")]
    pub fee_percent: String,
    #[serde(default)]
    pub delivery_methods: Vec<DeliveryMethodSettings>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliveryMethodSettings {
    pub name: String,
    #[serde(default = "zero")]
    pub fee_fixed: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientMarkupSettings {
    pub client_id: String,
    pub markup_bps: u32,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeesSettings {
    #[serde(default)]
    pub schedule: Vec<FeeScheduleSettings>,
    #[serde(default)]
    pub clients: Vec<FeeScheduleSettings>,
}

/// One fee schedule; `client_id` only in `fees.clients`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeeScheduleSettings {
    pub client_id: Option<String>,
    pub send_asset: String,
    #[serde(default = "zero")]
    pub fixed: String,
    #[serde(default = "zero")]
    pub percent: String,
    pub min: Option<String>,
    pub max: Option<String>,
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

fn zero() -> String {
    "0".to_owned()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    /// Unset: `0.0.0.0`, or `127.0.0.1` while callback authentication is off
    /// ([`Settings::server_host`]).
    pub host: Option<String>,
    pub port: u16,
    pub workers: Option<usize>,
    pub multipart_limit_bytes: usize,
}

/// The key-encryption key of the customer data (`docs/security.md`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PiiSettings {
    /// The standard base64 of 32 random bytes (`MOORING__PII__KEY`).
    pub key: Option<SecretString>,
    /// Keys that may still open data during a rotation, comma-separated
    /// (`MOORING__PII__PREVIOUS_KEYS`).
    pub previous_keys: Option<SecretString>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionSettings {
    pub enabled: bool,
    pub interval_seconds: u64,
    pub events_days: u32,
    pub quotes_days: u32,
}

/// The retention loop, as configured.
#[derive(Debug, Clone, Copy)]
pub struct RetentionSetting {
    pub enabled: bool,
    pub interval: Duration,
    pub policy: mooring_usecases::RetentionPolicy,
}

/// Where the customer data's key came from.
#[derive(Debug)]
pub struct PiiKey {
    pub keyring: mooring_keys::Keyring,
    /// The key file a SQLite install created for itself at this start.
    pub created_file: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    pub url: Option<String>,
    pub data_dir: PathBuf,
    pub auto_migrate: bool,
    pub pool_size: u32,
    pub connect_timeout_ms: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallbackApiSettings {
    pub auth_type: String,
    pub auth_secret: Option<SecretString>,
    pub api_key_header: String,
    pub jwt_header: String,
    pub jwt_leeway_seconds: u64,
    pub jwt_max_lifetime_seconds: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KycSettings {
    pub review: String,
    pub default_type: Option<String>,
    /// The types SEP-31 senders and receivers must be ACCEPTED as before a
    /// payout, for assets the AP assets file gives no SEP-31 types.
    pub sep31_sender_type: String,
    pub sep31_receiver_type: String,
    pub types: BTreeMap<String, KycTypeSettings>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KycTypeSettings {
    pub required: Vec<String>,
    #[serde(default)]
    pub optional: Vec<String>,
    #[serde(default)]
    pub choices: BTreeMap<String, Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssetsSettings {
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub value: Option<String>,
    /// significant_decimals of assets the AP's assets file does not list.
    #[serde(default)]
    pub decimals: BTreeMap<String, u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsSettings {
    /// `host:port` of a listener of its own for `/metrics`; unset, it is
    /// served on the main port.
    pub bind: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    pub format: LogFormat,
    pub level: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Pretty,
    Json,
}

impl Settings {
    /// Loads the layers from this environment (the process's, in `main`).
    pub fn load(env: &HashMap<String, String>) -> Result<Self, SettingsError> {
        let mut builder = Config::builder().add_source(File::from_str(DEFAULTS, FileFormat::Toml));
        if let Some(path) = env.get("MOORING_CONFIG").filter(|p| !p.is_empty()) {
            if !std::path::Path::new(path).is_file() {
                return Err(SettingsError(format!(
                    "MOORING_CONFIG names {path:?}, which is not a readable file"
                )));
            }
            builder = builder.add_source(File::new(path, FileFormat::Toml).required(true));
        }
        builder = builder.add_source(
            Environment::with_prefix("MOORING")
                .prefix_separator("__")
                .separator("__")
                .source(Some(
                    env.iter()
                        .filter(|(k, _)| k.starts_with("MOORING__"))
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect(),
                )),
        );
        if let Some(url) = env.get("DATABASE_URL").filter(|u| !u.is_empty()) {
            builder = builder.set_override("database.url", url.as_str())?;
        }
        for (name, key) in AP_ENV {
            if let Some(value) = env.get(*name).filter(|v| !v.is_empty()) {
                builder = builder.set_override(*key, value.as_str())?;
            }
        }
        let mut settings: Settings = builder.build()?.try_deserialize()?;
        settings.assets_file = assets::load(&settings.assets)?;
        settings.check()?;
        Ok(settings)
    }

    /// Checks what serde cannot: each of these builds the object it configures.
    fn check(&self) -> Result<(), SettingsError> {
        self.database_url()?;
        self.check_pii()?;
        self.callback_auth()?;
        self.review_mode()?;
        self.customer_types()?;
        self.quote_setup()?;
        self.fee_schedules()?;
        self.custodian()?;
        self.platform()?;
        self.rail()?;
        self.engine()?;
        self.retention()?;
        if self.server.multipart_limit_bytes == 0 {
            return Err(SettingsError(
                "server.multipart_limit_bytes must be positive".into(),
            ));
        }
        if self.database.pool_size == 0 {
            return Err(SettingsError("database.pool_size must be positive".into()));
        }
        Ok(())
    }

    /// `[retention]`: days of at least 1 (and at most 100 years), a pass
    /// at most every 10 s.
    pub fn retention(&self) -> Result<RetentionSetting, SettingsError> {
        let r = &self.retention;
        let days = |name: &str, n: u32| {
            if (1..=36_500).contains(&n) {
                Ok(Duration::from_secs(u64::from(n) * 86_400))
            } else {
                Err(SettingsError(format!(
                    "retention.{name} must be between 1 and 36500 days, not {n}"
                )))
            }
        };
        if r.interval_seconds < 10 {
            return Err(SettingsError(format!(
                "retention.interval_seconds must be at least 10, not {}",
                r.interval_seconds
            )));
        }
        Ok(RetentionSetting {
            enabled: r.enabled,
            interval: Duration::from_secs(r.interval_seconds),
            policy: mooring_usecases::RetentionPolicy {
                events: days("events_days", r.events_days)?,
                quotes: days("quotes_days", r.quotes_days)?,
            },
        })
    }

    /// `payout.http.fields`: `default` replaces the built-in list of names
    /// and bank fields; every other key is a delivery method.
    pub fn provider_fields(&self) -> Result<ProviderFields, SettingsError> {
        let mut lists: BTreeMap<String, Vec<String>> = self
            .payout
            .http
            .fields
            .iter()
            .map(|(k, v)| (k.clone(), v.names()))
            .collect();
        let default = lists.remove("default");
        ProviderFields::new(default.as_deref(), &lists).map_err(SettingsError)
    }

    fn previous_keys(&self) -> Vec<String> {
        self.pii
            .previous_keys
            .as_ref()
            .map(|p| {
                p.expose_secret()
                    .split(',')
                    .map(|k| k.trim().to_owned())
                    .filter(|k| !k.is_empty())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Checks `pii.key` and `pii.previous_keys` without touching a file.
    fn check_pii(&self) -> Result<(), SettingsError> {
        if let Some(key) = &self.pii.key {
            mooring_keys::Keyring::parse(key.expose_secret(), &self.previous_keys()).map_err(
                |e| {
                    SettingsError(format!(
                        "{e} (MOORING__PII__KEY, MOORING__PII__PREVIOUS_KEYS)"
                    ))
                },
            )?;
        } else if matches!(self.database_url()?, DatabaseUrl::Postgres(_)) {
            return Err(SettingsError(
                "pii.key (MOORING__PII__KEY) is required on PostgreSQL: the standard base64 of 32 \
                 random bytes (`openssl rand -base64 32`), kept apart from the database's backups"
                    .into(),
            ));
        }
        Ok(())
    }

    /// The key-encryption key: `pii.key`, or on SQLite without one the key
    /// file `<data_dir>/pii.key`, created (mode 0600) when there is none.
    pub fn pii_key(&self) -> Result<PiiKey, SettingsError> {
        self.check_pii()?;
        let previous = self.previous_keys();
        if let Some(key) = &self.pii.key {
            let keyring = mooring_keys::Keyring::parse(key.expose_secret(), &previous)
                .map_err(|e| SettingsError(e.to_string()))?;
            return Ok(PiiKey {
                keyring,
                created_file: None,
            });
        }
        let path = self.database.data_dir.join("pii.key");
        std::fs::create_dir_all(&self.database.data_dir).map_err(|e| {
            SettingsError(format!(
                "cannot create the data directory {}: {e}",
                self.database.data_dir.display()
            ))
        })?;
        let (keyring, created) = mooring_keys::Keyring::load_or_create(&path)
            .map_err(|e| SettingsError(e.to_string()))?;
        let keyring = keyring
            .with_previous(&previous)
            .map_err(|e| SettingsError(e.to_string()))?;
        Ok(PiiKey {
            keyring,
            created_file: created.then_some(path),
        })
    }

    /// Where to listen: `server.host` when set; else `0.0.0.0`, or loopback
    /// only while callback authentication is off (and whether that applied).
    pub fn server_host(&self) -> (String, bool) {
        match &self.server.host {
            Some(host) => (host.clone(), false),
            None if self.callback_api.auth_type.eq_ignore_ascii_case("none") => {
                ("127.0.0.1".into(), true)
            }
            None => ("0.0.0.0".into(), false),
        }
    }

    pub fn database_url(&self) -> Result<DatabaseUrl, SettingsError> {
        match &self.database.url {
            Some(url) => DatabaseUrl::parse(url)
                .map_err(|e| SettingsError(format!("database.url (DATABASE_URL): {e}"))),
            None => Ok(DatabaseUrl::Sqlite(
                self.database.data_dir.join("mooring.db"),
            )),
        }
    }

    pub fn store_config(&self) -> Result<StoreConfig, SettingsError> {
        Ok(StoreConfig {
            url: self.database_url()?,
            pool_size: self.database.pool_size,
            connect_timeout: Duration::from_millis(self.database.connect_timeout_ms.max(1)),
        })
    }

    pub fn callback_auth(&self) -> Result<CallbackAuth, SettingsError> {
        let c = &self.callback_api;
        let built = match c.auth_type.to_ascii_lowercase().as_str() {
            "none" => Ok(CallbackAuth::None),
            "api_key" => CallbackAuth::api_key(&c.api_key_header, c.auth_secret.clone()),
            "jwt" => CallbackAuth::jwt(
                &c.jwt_header,
                c.auth_secret.clone(),
                c.jwt_leeway_seconds,
                c.jwt_max_lifetime_seconds,
            ),
            other => {
                return Err(SettingsError(format!(
                    "callback_api.auth_type (CALLBACK_API_AUTH_TYPE): {other:?} is not one of none, api_key, jwt"
                )));
            }
        };
        built.map_err(|e| match e {
            AuthConfigError::Header(name) => SettingsError(format!(
                "callback_api.api_key_header / callback_api.jwt_header: {name:?} is not a valid HTTP header name"
            )),
            other => SettingsError(format!(
                "callback_api.auth_secret (SECRET_CALLBACK_API_AUTH_SECRET) for auth type {}: {other}",
                c.auth_type
            )),
        })
    }

    pub fn review_mode(&self) -> Result<ReviewMode, SettingsError> {
        match self.kyc.review.as_str() {
            "auto" => Ok(ReviewMode::Auto),
            "manual" => Ok(ReviewMode::Manual),
            other => Err(SettingsError(format!(
                "kyc.review: {other:?} is not one of auto, manual"
            ))),
        }
    }

    /// The AP's assets file, when `assets.type` names one.
    pub fn assets_file(&self) -> Result<Option<AssetsFile>, SettingsError> {
        Ok(self.assets_file.clone())
    }

    /// The configured customer types, plus those the AP's assets file names
    /// for SEP-31 senders and receivers (with the default fields of their
    /// role when not configured here).
    pub fn customer_types(&self) -> Result<CustomerTypes, SettingsError> {
        let mut specs = BTreeMap::new();
        for (name, t) in &self.kyc.types {
            let spec = CustomerTypeSpec::new(name, &t.required, &t.optional, &t.choices)
                .map_err(|e| SettingsError(format!("kyc.types.{name}: {e}")))?;
            specs.insert(name.clone(), spec);
        }
        let assets = self.assets_file()?;
        let from_assets = assets
            .as_ref()
            .map(AssetsFile::sep12_types)
            .unwrap_or_default();
        for (name, role) in &from_assets {
            if !specs.contains_key(name) {
                let spec = CustomerTypeSpec::default_for(name, *role).map_err(|e| {
                    SettingsError(format!(
                        "assets (ASSETS_VALUE): customer type {name:?}: {e}"
                    ))
                })?;
                specs.insert(name.clone(), spec);
            }
        }
        let default = match &self.kyc.default_type {
            Some(t) => t.clone(),
            None => from_assets
                .iter()
                .find(|(_, role)| *role == TypeRole::Sender)
                .map(|(name, _)| name.clone())
                .unwrap_or_else(|| mooring_domain::customer::DEFAULT_SENDER_TYPE.to_owned()),
        };
        CustomerTypes::new(specs.into_values(), &default)
            .map_err(|e| SettingsError(format!("kyc.default_type: {e}")))
    }
}

/// Everything quoting needs, built and checked from the settings.
pub struct QuoteSetup {
    pub pricing: Pricing,
    pub assets: AssetCatalog,
    pub lifetime: QuoteLifetime,
    pub liquidity: BTreeMap<AssetId, Decimal>,
    pub source: RateSourceSetting,
}

/// Which rate source prices the pairs.
pub enum RateSourceSetting {
    Table,
    Feed(FeedConfig),
}

fn decimal(key: &str, value: &str) -> Result<Decimal, SettingsError> {
    Decimal::from_str_exact(value.trim())
        .map_err(|_| SettingsError(format!("{key}: {value:?} is not a decimal number")))
}

fn asset(key: &str, value: &str) -> Result<AssetId, SettingsError> {
    AssetId::parse(value).map_err(|e| SettingsError(format!("{key}: {e}")))
}

impl Settings {
    /// The significant decimals of every asset: `assets.decimals`, then the
    /// AP's assets file, which wins where both name an asset.
    pub fn asset_catalog(&self) -> Result<AssetCatalog, SettingsError> {
        let mut assets = BTreeMap::new();
        for (id, decimals) in &self.assets.decimals {
            let key = format!("assets.decimals.{id}");
            if *decimals > MAX_DECIMALS {
                return Err(SettingsError(format!(
                    "{key}: at most {MAX_DECIMALS} significant_decimals"
                )));
            }
            let id = asset(&key, id)?;
            assets.insert(
                id.clone(),
                AssetInfo {
                    id,
                    significant_decimals: *decimals,
                    sep31_sender_types: vec![],
                    sep31_receiver_types: vec![],
                },
            );
        }
        if let Some(file) = self.assets_file()? {
            for info in file.catalog.iter() {
                if info.significant_decimals > MAX_DECIMALS {
                    return Err(SettingsError(format!(
                        "assets (ASSETS_VALUE): {} has more than {MAX_DECIMALS} significant_decimals",
                        info.id
                    )));
                }
                assets.insert(info.id.clone(), info.clone());
            }
        }
        Ok(AssetCatalog::new(assets.into_values()))
    }

    fn decimals_of(catalog: &AssetCatalog, key: &str, id: &AssetId) -> Result<u32, SettingsError> {
        catalog.get(id).map(|a| a.significant_decimals).ok_or_else(|| {
            SettingsError(format!(
                "{key}: {id} has no significant_decimals: list it in the AP assets file (ASSETS_VALUE) or in assets.decimals"
            ))
        })
    }

    /// Pricing, asset decimals, firm-quote lifetime, liquidity and the rate source.
    pub fn quote_setup(&self) -> Result<QuoteSetup, SettingsError> {
        let catalog = self.asset_catalog()?;
        let feed = match self.pricing.source.as_str() {
            "table" => None,
            "http" => {
                let f = &self.pricing.feed;
                let url = http_url(
                    "pricing.feed.url",
                    f.url.as_deref(),
                    " when pricing.source = \"http\"",
                )?;
                if f.interval_ms == 0 || f.max_age_ms == 0 || f.timeout_ms == 0 {
                    return Err(SettingsError(
                        "pricing.feed: interval_ms, max_age_ms and timeout_ms must be positive"
                            .into(),
                    ));
                }
                Some(FeedConfig {
                    url,
                    interval: Duration::from_millis(f.interval_ms),
                    max_age: Duration::from_millis(f.max_age_ms),
                    timeout: Duration::from_millis(f.timeout_ms),
                })
            }
            other => {
                return Err(SettingsError(format!(
                    "pricing.source: {other:?} is not one of table, http"
                )));
            }
        };
        let mut pairs = Vec::new();
        for (i, p) in self.pricing.pairs.iter().enumerate() {
            let key = format!("pricing.pairs[{i}]");
            let pair = PairPricing {
                sell_asset: asset(&format!("{key}.sell_asset"), &p.sell_asset)?,
                buy_asset: asset(&format!("{key}.buy_asset"), &p.buy_asset)?,
                price: p
                    .price
                    .as_deref()
                    .map(|v| decimal(&format!("{key}.price"), v))
                    .transpose()?,
                markup_bps: p.markup_bps,
                fee_fixed: decimal(&format!("{key}.fee_fixed"), &p.fee_fixed)?,
                fee_percent: decimal(&format!("{key}.fee_percent"), &p.fee_percent)?,
                delivery_methods: p
                    .delivery_methods
                    .iter()
                    .map(|m| {
                        Ok(DeliveryFee {
                            name: m.name.clone(),
                            fee_fixed: decimal(
                                &format!("{key}.delivery_methods.{}.fee_fixed", m.name),
                                &m.fee_fixed,
                            )?,
                        })
                    })
                    .collect::<Result<_, SettingsError>>()?,
            };
            if feed.is_none() && pair.price.is_none() {
                return Err(SettingsError(format!(
                    "{key}.price is required when pricing.source = \"table\""
                )));
            }
            let sell_decimals =
                Self::decimals_of(&catalog, &format!("{key}.sell_asset"), &pair.sell_asset)?;
            Self::decimals_of(&catalog, &format!("{key}.buy_asset"), &pair.buy_asset)?;
            pair.check(sell_decimals)
                .map_err(|e| SettingsError(format!("{key}: {e}")))?;
            pairs.push(pair);
        }
        let clients = self
            .pricing
            .clients
            .iter()
            .map(|c| (c.client_id.clone(), c.markup_bps))
            .collect();
        let pricing = Pricing::new(pairs, clients)
            .map_err(|e| SettingsError(format!("pricing.pairs: {e}")))?;
        let mut liquidity = BTreeMap::new();
        for (id, limit) in &self.liquidity {
            let key = format!("liquidity.{id}");
            let limit = decimal(&key, limit)?;
            if limit < Decimal::ZERO {
                return Err(SettingsError(format!("{key} must not be negative")));
            }
            liquidity.insert(asset(&key, id)?, limit);
        }
        let q = &self.quotes;
        // Up to a century: beyond, dates leave what the calendar types hold.
        const CENTURY: u64 = 100 * 365 * 86_400;
        let seconds = |key: &str, s: u64| {
            if s == 0 || s > CENTURY {
                return Err(SettingsError(format!(
                    "{key} must be a positive number of seconds, at most {CENTURY}"
                )));
            }
            chrono::Duration::try_seconds(s as i64)
                .ok_or_else(|| SettingsError(format!("{key} is too large")))
        };
        let lifetime = QuoteLifetime {
            firm_ttl: seconds("quotes.firm_ttl_seconds", q.firm_ttl_seconds)?,
            max_ttl: seconds("quotes.max_ttl_seconds", q.max_ttl_seconds)?,
        };
        Ok(QuoteSetup {
            pricing,
            assets: catalog,
            lifetime,
            liquidity,
            source: feed.map_or(RateSourceSetting::Table, RateSourceSetting::Feed),
        })
    }

    /// How to reach the AP's Platform API.
    pub fn platform(&self) -> Result<PlatformConfig, SettingsError> {
        let p = &self.platform;
        let base_url = http_url(
            "platform.base_url (PLATFORM_API_BASE_URL)",
            Some(&p.base_url),
            "",
        )?;
        let api = match p.api.as_str() {
            "rest" => ApiStyle::Rest,
            "rpc" => ApiStyle::Rpc,
            other => {
                return Err(SettingsError(format!(
                    "platform.api: {other:?} is not one of rest, rpc"
                )));
            }
        };
        let secret = || {
            p.auth_secret
                .clone()
                .filter(|s| !s.expose_secret().is_empty())
                .ok_or_else(|| SettingsError(format!("platform.auth_secret (SECRET_PLATFORM_API_AUTH_SECRET) is required for auth type {}", p.auth_type)))
        };
        let auth = match p.auth_type.to_ascii_lowercase().as_str() {
            "none" => PlatformAuth::None,
            "api_key" => PlatformAuth::ApiKey(secret()?),
            "jwt" => {
                let s = secret()?;
                if s.expose_secret().len() < 32 {
                    return Err(SettingsError(
                        "platform.auth_secret (SECRET_PLATFORM_API_AUTH_SECRET) must be at least 32 bytes for jwt".into(),
                    ));
                }
                PlatformAuth::Jwt(s)
            }
            other => {
                return Err(SettingsError(format!(
                    "platform.auth_type (PLATFORM_API_AUTH_TYPE): {other:?} is not one of none, api_key, jwt"
                )));
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

    /// The payout rail.
    pub fn rail(&self) -> Result<RailSetting, SettingsError> {
        let p = &self.payout;
        match p.rail.as_str() {
            "simulated" => {
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
            "http" => {
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
                        if reqwest_header_name_ok(header) {
                            Some(mooring_rails::RailAuth {
                                header: header.clone(),
                                token: token.clone(),
                            })
                        } else {
                            return Err(SettingsError(format!(
                                "payout.http.auth_header: {header:?} is not an HTTP header name"
                            )));
                        }
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
            other => Err(SettingsError(format!(
                "payout.rail: {other:?} is not one of simulated, http"
            ))),
        }
    }

    /// How the payment engine runs; `owner` names this replica in claims.
    pub fn engine(&self) -> Result<EngineSetting, SettingsError> {
        let (pl, p) = (&self.platform, &self.payout);
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
        // Every call inside a step is cut off at the step's deadline (the
        // lease less a tenth), so a too-short lease is safe but never lets
        // a slow step finish: the longest step, with all its retries, must
        // fit.
        let ap_call = platform_call_ms(pl.timeout_ms, pl.max_attempts);
        let longest = (AP_CALLS_PER_STEP * ap_call).max(p.http.timeout_ms + ap_call);
        if p.lease_ms.saturating_mul(9) / 10 < longest {
            return Err(SettingsError(format!(
                "payout.lease_ms ({} ms) must hold the longest payout step with all its retries ({longest} ms: {AP_CALLS_PER_STEP} AP calls of platform.max_attempts × platform.timeout_ms plus backoff, or payout.http.timeout_ms and one AP call) and a tenth more: at least {} ms",
                p.lease_ms,
                longest * 10 / 9 + 1
            )));
        }
        let ms = |v: u64| {
            chrono::Duration::milliseconds(i64::try_from(v).unwrap_or(i64::MAX / 1_000_000))
        };
        let owner = format!(
            "{}-{}-{}",
            std::env::var("HOSTNAME").unwrap_or_else(|_| "mooring".into()),
            std::process::id(),
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        let mut config = mooring_usecases::EngineConfig::new(owner);
        config.request_funds = pl.api == "rpc";
        config.page_size = pl.page_size;
        config.poll_overlap = ms(pl.poll_overlap_ms);
        config.lease = ms(p.lease_ms);
        config.key_retention = ms(p.key_retention_ms);
        let types = self.customer_types()?;
        for (key, name) in [
            ("kyc.sep31_sender_type", &self.kyc.sep31_sender_type),
            ("kyc.sep31_receiver_type", &self.kyc.sep31_receiver_type),
        ] {
            if !types.contains(name) {
                return Err(SettingsError(format!(
                    "{key}: {name:?} is not a configured customer type (kyc.types)"
                )));
            }
        }
        config.sep31_types = Sep31Types::new(
            self.kyc.sep31_sender_type.clone(),
            self.kyc.sep31_receiver_type.clone(),
            &self.asset_catalog()?,
        );
        config.backoff_base = ms(p.retry_base_ms);
        config.backoff_max = ms(p.retry_max_ms);
        config.kyc_recheck = ms(p.kyc_recheck_ms);
        config.rail_follow = ms(p.follow_ms);
        config.completion_message = p.completion_message.clone();
        config.provider_fields = self.provider_fields()?;
        Ok(EngineSetting {
            enabled: pl.enabled,
            poll_interval: Duration::from_millis(pl.poll_interval_ms),
            reconcile_interval: Duration::from_millis(pl.reconcile_interval_ms),
            concurrency: p.concurrency,
            config,
        })
    }

    /// The custodian of deposit addresses.
    pub fn custodian(&self) -> Result<CustodianSetting, SettingsError> {
        let c = &self.custodian;
        match c.kind.as_str() {
            "self" => {
                let memo = match c.memo_type.as_str() {
                    "id" => DepositMemoKind::Id,
                    "hash" => DepositMemoKind::Hash,
                    other => {
                        return Err(SettingsError(format!(
                            "custodian.memo_type: {other:?} is not one of id, hash"
                        )));
                    }
                };
                match c.distribution_account.as_deref().filter(|a| !a.is_empty()) {
                    None => Ok(CustodianSetting::None),
                    Some(a) => {
                        let account = StellarAccount::parse(a)
                            .ok()
                            .filter(|a| !a.is_muxed())
                            .ok_or_else(|| SettingsError("custodian.distribution_account: must be a Stellar G... account".into()))?;
                        Ok(CustodianSetting::SelfCustody { account, memo })
                    }
                }
            }
            "http" => {
                let url = http_url(
                    "custodian.http.url",
                    c.http.url.as_deref(),
                    " when custodian.type = \"http\"",
                )?;
                if c.http.timeout_ms == 0 {
                    return Err(SettingsError(
                        "custodian.http.timeout_ms must be positive".into(),
                    ));
                }
                Ok(CustodianSetting::Http {
                    url,
                    timeout: Duration::from_millis(c.http.timeout_ms),
                })
            }
            other => Err(SettingsError(format!(
                "custodian.type: {other:?} is not one of self, http"
            ))),
        }
    }

    /// The `GET /fee` schedules.
    pub fn fee_schedules(&self) -> Result<FeeSchedules, SettingsError> {
        let catalog = self.asset_catalog()?;
        let mut schedules = FeeSchedules::default();
        let lists = [
            ("fees.schedule", &self.fees.schedule, false),
            ("fees.clients", &self.fees.clients, true),
        ];
        for (list, entries, per_client) in lists {
            for (i, s) in entries.iter().enumerate() {
                let key = format!("{list}[{i}]");
                let send_asset = asset(&format!("{key}.send_asset"), &s.send_asset)?;
                let decimals =
                    Self::decimals_of(&catalog, &format!("{key}.send_asset"), &send_asset)?;
                let optional = |name: &str, v: &Option<String>| {
                    v.as_deref()
                        .map(|v| decimal(&format!("{key}.{name}"), v))
                        .transpose()
                };
                let schedule = FeeSchedule {
                    fixed: decimal(&format!("{key}.fixed"), &s.fixed)?,
                    percent: decimal(&format!("{key}.percent"), &s.percent)?,
                    min: optional("min", &s.min)?,
                    max: optional("max", &s.max)?,
                };
                schedule
                    .check(decimals)
                    .map_err(|e| SettingsError(format!("{key}: {e}")))?;
                let duplicate = match (per_client, &s.client_id) {
                    (false, None) => schedules.by_asset.insert(send_asset, schedule).is_some(),
                    (true, Some(client)) => schedules
                        .by_client
                        .insert((client.clone(), send_asset), schedule)
                        .is_some(),
                    (false, Some(_)) => {
                        return Err(SettingsError(format!(
                            "{key}.client_id belongs in fees.clients"
                        )));
                    }
                    (true, None) => {
                        return Err(SettingsError(format!("{key}.client_id is required")));
                    }
                };
                if duplicate {
                    return Err(SettingsError(format!(
                        "{key}: a schedule for this asset is already configured"
                    )));
                }
            }
        }
        Ok(schedules)
    }
}

/// Whether `name` is a valid HTTP header name (token characters only).
fn reqwest_header_name_ok(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_quote_out_of_the_box() {
        let settings = Settings::load(&HashMap::new()).expect("defaults load");
        let setup = settings.quote_setup().expect("quote setup");
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
        assert!(
            settings
                .fee_schedules()
                .expect("fees")
                .by_asset
                .contains_key(&usdc)
        );
    }

    #[test]
    fn default_toml_types_are_the_domain_defaults() {
        let settings = Settings::load(&HashMap::new()).expect("defaults load");
        assert_eq!(
            settings.customer_types().expect("types"),
            CustomerTypes::builtin()
        );
    }
}
