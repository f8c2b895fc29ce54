//! The data: where the database is and how it is reached, the key of the
//! customer data (`pii.key`, or a key file on SQLite), and retention.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use mooring_keys::Keyring;
use mooring_store::{DatabaseUrl, StoreConfig};
use secrecy::ExposeSecret;

use super::{RawSettings, SettingsError};

/// `[database]`, built.
#[derive(Debug, Clone)]
pub struct DatabaseSetting {
    pub url: DatabaseUrl,
    pub store: StoreConfig,
    pub auto_migrate: bool,
    pub data_dir: PathBuf,
}

pub(super) fn database(raw: &RawSettings) -> Result<DatabaseSetting, SettingsError> {
    let d = &raw.database;
    let url = match &d.url {
        Some(url) => DatabaseUrl::parse(url)
            .map_err(|e| SettingsError(format!("database.url (DATABASE_URL): {e}")))?,
        None => DatabaseUrl::Sqlite(d.data_dir.join("mooring.db")),
    };
    if d.pool_size == 0 {
        return Err(SettingsError("database.pool_size must be positive".into()));
    }
    Ok(DatabaseSetting {
        store: StoreConfig {
            url: url.clone(),
            pool_size: d.pool_size,
            connect_timeout: Duration::from_millis(d.connect_timeout_ms.max(1)),
        },
        url,
        auto_migrate: d.auto_migrate,
        data_dir: d.data_dir.clone(),
    })
}

/// Where the key-encryption key comes from (`docs/security.md`).
#[derive(Debug, Clone)]
pub enum PiiSetting {
    /// `pii.key`, with `pii.previous_keys`: parsed once, here.
    Key(Arc<Keyring>),
    /// SQLite without `pii.key`: the key file `<data_dir>/pii.key`, created
    /// (mode 0600) at the first start, with `pii.previous_keys`.
    File {
        path: PathBuf,
        data_dir: PathBuf,
        previous: Vec<String>,
    },
}

/// Where the customer data's key came from.
#[derive(Debug)]
pub struct PiiKey {
    pub keyring: Arc<Keyring>,
    /// The key file a SQLite install created for itself at this start.
    pub created_file: Option<PathBuf>,
}

fn previous_keys(raw: &RawSettings) -> Vec<String> {
    raw.pii
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
pub(super) fn pii(
    raw: &RawSettings,
    database: &DatabaseSetting,
) -> Result<PiiSetting, SettingsError> {
    let previous = previous_keys(raw);
    if let Some(key) = &raw.pii.key {
        let keyring = Keyring::parse(key.expose_secret(), &previous).map_err(|e| {
            SettingsError(format!(
                "{e} (MOORING__PII__KEY, MOORING__PII__PREVIOUS_KEYS)"
            ))
        })?;
        return Ok(PiiSetting::Key(Arc::new(keyring)));
    }
    if matches!(database.url, DatabaseUrl::Postgres(_)) {
        return Err(SettingsError(
            "pii.key (MOORING__PII__KEY) is required on PostgreSQL: the standard base64 of 32 \
             random bytes (`openssl rand -base64 32`), kept apart from the database's backups"
                .into(),
        ));
    }
    Ok(PiiSetting::File {
        path: database.data_dir.join("pii.key"),
        data_dir: database.data_dir.clone(),
        previous,
    })
}

impl PiiSetting {
    /// The key-encryption key: `pii.key`, or the key file, created when
    /// there is none.
    pub fn key(&self) -> Result<PiiKey, SettingsError> {
        match self {
            Self::Key(keyring) => Ok(PiiKey {
                keyring: keyring.clone(),
                created_file: None,
            }),
            Self::File {
                path,
                data_dir,
                previous,
            } => {
                std::fs::create_dir_all(data_dir).map_err(|e| {
                    SettingsError(format!(
                        "cannot create the data directory {}: {e}",
                        data_dir.display()
                    ))
                })?;
                let (keyring, created) =
                    Keyring::load_or_create(path).map_err(|e| SettingsError(e.to_string()))?;
                let keyring = keyring
                    .with_previous(previous)
                    .map_err(|e| SettingsError(e.to_string()))?;
                Ok(PiiKey {
                    keyring: Arc::new(keyring),
                    created_file: created.then(|| path.clone()),
                })
            }
        }
    }
}

/// The retention loop, as configured.
#[derive(Debug, Clone, Copy)]
pub struct RetentionSetting {
    pub enabled: bool,
    pub interval: Duration,
    pub policy: mooring_usecases::RetentionPolicy,
}

/// `[retention]`: days of at least 1 (and at most 100 years), a pass at
/// most every 10 s.
pub(super) fn retention(raw: &RawSettings) -> Result<RetentionSetting, SettingsError> {
    let r = &raw.retention;
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
