//! KYC: the review mode and the customer types (configured, plus those the
//! AP's assets file names for SEP-31 senders and receivers).

use std::collections::BTreeMap;

use mooring_domain::customer::{CustomerTypeSpec, CustomerTypes, ReviewMode, TypeRole};

use super::{RawSettings, ReviewKind, SettingsError};
use crate::assets::AssetsFile;

pub(super) fn review_mode(raw: &RawSettings) -> ReviewMode {
    match raw.kyc.review {
        ReviewKind::Auto => ReviewMode::Auto,
        ReviewKind::Manual => ReviewMode::Manual,
    }
}

/// The configured customer types, plus those the AP's assets file names
/// for SEP-31 senders and receivers (with the default fields of their role
/// when not configured here).
pub(super) fn customer_types(
    raw: &RawSettings,
    assets: Option<&AssetsFile>,
) -> Result<CustomerTypes, SettingsError> {
    let mut specs = BTreeMap::new();
    for (name, t) in &raw.kyc.types {
        let spec = CustomerTypeSpec::new(name, &t.required, &t.optional, &t.choices)
            .map_err(|e| SettingsError(format!("kyc.types.{name}: {e}")))?;
        specs.insert(name.clone(), spec);
    }
    let from_assets = assets.map(AssetsFile::sep12_types).unwrap_or_default();
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
    let default = match &raw.kyc.default_type {
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
