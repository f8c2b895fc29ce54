//! Layered configuration: built-in defaults → the TOML file named by
//! `MOORING_CONFIG` → `MOORING__SECTION__KEY` environment variables →
//! `DATABASE_URL` → the Anchor Platform's own environment names where the
//! setting is the same one, so that one `dev.env` serves the whole stack.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::Duration;

use config::{Config, Environment, File, FileFormat};
use mooring_domain::customer::{CustomerTypeSpec, CustomerTypes, ReviewMode, TypeRole};
use mooring_http::{AuthConfigError, CallbackAuth};
use mooring_store::{DatabaseUrl, StoreConfig};
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
    pub log: LogSettings,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    pub host: String,
    pub port: u16,
    pub workers: Option<usize>,
    pub multipart_limit_bytes: usize,
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
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KycSettings {
    pub review: String,
    pub default_type: Option<String>,
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
        let settings: Settings = builder.build()?.try_deserialize()?;
        settings.check()?;
        Ok(settings)
    }

    /// Checks what serde cannot: each of these builds the object it configures.
    fn check(&self) -> Result<(), SettingsError> {
        self.database_url()?;
        self.callback_auth()?;
        self.review_mode()?;
        self.customer_types()?;
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
            "jwt" => CallbackAuth::jwt(&c.jwt_header, c.auth_secret.clone(), c.jwt_leeway_seconds),
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
        assets::load(&self.assets)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_toml_types_are_the_domain_defaults() {
        let settings = Settings::load(&HashMap::new()).expect("defaults load");
        assert_eq!(
            settings.customer_types().expect("types"),
            CustomerTypes::builtin()
        );
    }
}
