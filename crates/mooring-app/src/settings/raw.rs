//! The raw settings: a serde mirror of `default.toml`, typed (kinds are
//! enums, amounts exact decimals), and the layers it is read from.
//! A wrong kind or amount is refused here, by deserialisation, with its key
//! named; what needs more than one key is checked where it is built
//! (the other rooms of [`super`]).

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use config::{Config, Environment, File, FileFormat};
use rust_decimal::Decimal;
use secrecy::SecretString;
use serde::{Deserialize, Deserializer};

use super::SettingsError;
use super::de::{Kind, any_case, exact_decimal, exact_decimals, kind, optional_exact_decimal};

/// The built-in defaults, also shown in docs/configuration.md.
pub const DEFAULTS: &str = include_str!("../default.toml");

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

/// A deserialisation error as operators should read it. The config crate
/// names the key but drops the dot after an index (`pricing.pairs[0]price`);
/// it is put back. A key the AP's environment also sets names that
/// variable too (an operator of the AP knows it by it).
fn name_ap_variable(message: &str) -> String {
    let mut fixed = String::with_capacity(message.len() + 4);
    let mut in_key = false;
    let mut chars = message.chars().peekable();
    while let Some(c) = chars.next() {
        fixed.push(c);
        if c == '`' {
            in_key = !in_key;
        } else if in_key && c == ']' && chars.peek().is_some_and(|n| n.is_ascii_alphabetic()) {
            fixed.push('.');
        }
    }
    let message = fixed.as_str();
    let names: Vec<&str> = AP_ENV
        .iter()
        .filter(|(_, key)| message.contains(&format!("`{key}`")))
        .map(|(name, _)| *name)
        .collect();
    if names.is_empty() {
        message.to_owned()
    } else {
        format!("{message} ({})", names.join(", "))
    }
}

kind! {
    /// callback_api.auth_type, platform.auth_type (read in any case).
    AuthType { None = "none", ApiKey = "api_key", Jwt = "jwt", }
}

kind! {
    /// platform.api: the Platform API's wire.
    PlatformApi {
        /// `PATCH /transactions` (AP 2.x).
        Rest = "rest",
        /// JSON-RPC (AP 2.3+, 3.x, 4.x).
        Rpc = "rpc",
    }
}

kind! {
    /// payout.rail: who pays.
    RailKind { Simulated = "simulated", Http = "http", }
}

kind! {
    /// custodian.type: who hands out deposit addresses.
    CustodianKind {
        /// The anchor's own distribution account, a memo per transaction.
        SelfCustody = "self",
        Http = "http",
    }
}

kind! {
    /// custodian.memo_type.
    MemoType { Id = "id", Hash = "hash", }
}

kind! {
    /// pricing.source: where prices come from.
    PricingSource {
        /// Each pair's `price`.
        Table = "table",
        /// A price feed (`pricing.feed`).
        Http = "http",
    }
}

kind! {
    /// kyc.review: who accepts a complete customer.
    ReviewKind { Auto = "auto", Manual = "manual", }
}

kind! {
    /// log.format.
    LogFormat { Pretty = "pretty", Json = "json", }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSettings {
    pub server: ServerSettings,
    pub database: DatabaseSettings,
    pub callback_api: CallbackApiSettings,
    pub kyc: KycSettings,
    pub assets: AssetsSettings,
    pub quotes: QuotesSettings,
    pub pricing: PricingSettings,
    #[serde(default)]
    #[serde(deserialize_with = "exact_decimals")]
    pub liquidity: BTreeMap<String, Decimal>,
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
    pub backoffice: BackofficeSettings,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackofficeSettings {
    pub enabled: bool,
    pub bind: String,
    /// Unset: on unless `bind` is a loopback address.
    pub secure_cookies: Option<bool>,
    pub issuer: String,
    pub idle_timeout_seconds: u64,
    pub session_max_seconds: u64,
    pub max_failures: u32,
    pub lockout_seconds: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlatformSettings {
    pub base_url: String,
    pub api: PlatformApi,
    #[serde(deserialize_with = "any_case")]
    pub auth_type: AuthType,
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
    pub rail: RailKind,
    pub concurrency: u32,
    pub lease_ms: u64,
    pub key_retention_ms: u64,
    pub kyc_recheck_ms: u64,
    pub follow_ms: u64,
    pub retry_base_ms: u64,
    pub retry_max_ms: u64,
    pub completion_message: String,
    /// Per asset paid out (its SEP-38 name): payouts over this amount wait
    /// for an operator's approval.
    #[serde(default, deserialize_with = "exact_decimals")]
    pub approval_above: BTreeMap<String, Decimal>,
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
    pub(super) fn names(&self) -> Vec<String> {
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustodianSettings {
    #[serde(rename = "type")]
    pub kind: CustodianKind,
    pub distribution_account: Option<String>,
    /// A [`MemoType`], read only when `type = "self"` (another custodian
    /// chooses its own memos, and never read this key).
    pub memo_type: String,
    pub http: CustodianHttpSettings,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustodianHttpSettings {
    pub url: Option<String>,
    pub timeout_ms: u64,
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
    pub source: PricingSource,
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
    #[serde(default, deserialize_with = "optional_exact_decimal")]
    pub price: Option<Decimal>,
    #[serde(default)]
    pub markup_bps: u32,
    #[serde(default, deserialize_with = "exact_decimal")]
    pub fee_fixed: Decimal,
    #[serde(default, deserialize_with = "exact_decimal")]
    pub fee_percent: Decimal,
    #[serde(default)]
    pub delivery_methods: Vec<DeliveryMethodSettings>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliveryMethodSettings {
    pub name: String,
    #[serde(default, deserialize_with = "exact_decimal")]
    pub fee_fixed: Decimal,
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
    #[serde(default, deserialize_with = "exact_decimal")]
    pub fixed: Decimal,
    #[serde(default, deserialize_with = "exact_decimal")]
    pub percent: Decimal,
    #[serde(default, deserialize_with = "optional_exact_decimal")]
    pub min: Option<Decimal>,
    #[serde(default, deserialize_with = "optional_exact_decimal")]
    pub max: Option<Decimal>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    /// Unset: `0.0.0.0`, or `127.0.0.1` while callback authentication is off
    /// ([`super::ServerSetting`]).
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
    #[serde(deserialize_with = "any_case")]
    pub auth_type: AuthType,
    pub auth_secret: Option<SecretString>,
    pub api_key_header: String,
    pub jwt_header: String,
    pub jwt_leeway_seconds: u64,
    pub jwt_max_lifetime_seconds: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KycSettings {
    pub review: ReviewKind,
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

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsSettings {
    /// `host:port` of a listener of its own for `/metrics`; unset, it is
    /// served on the main port.
    pub bind: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    pub format: LogFormat,
    pub level: String,
}

impl RawSettings {
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
        builder
            .build()?
            .try_deserialize()
            .map_err(|e| SettingsError(name_ap_variable(&e.to_string())))
    }
}
