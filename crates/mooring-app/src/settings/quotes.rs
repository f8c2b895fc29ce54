//! Quotes and fees: the asset catalog (`assets.decimals` and the AP's assets
//! file), pricing and its source, firm-quote lifetimes, liquidity caps, and
//! the `GET /fee` schedules.

use std::collections::BTreeMap;
use std::time::Duration;

use mooring_domain::quote::{
    DeliveryFee, FeeSchedule, FeeSchedules, MAX_DECIMALS, PairPricing, Pricing, QuoteLifetime,
};
use mooring_domain::{AssetCatalog, AssetId, AssetInfo};
use mooring_rates::FeedConfig;
use rust_decimal::Decimal;

use super::{PricingSource, RawSettings, SettingsError, http_url};
use crate::assets::AssetsFile;

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

fn asset(key: &str, value: &str) -> Result<AssetId, SettingsError> {
    AssetId::parse(value).map_err(|e| SettingsError(format!("{key}: {e}")))
}

/// The significant decimals of every asset: `assets.decimals`, then the
/// AP's assets file, which wins where both name an asset.
pub(super) fn asset_catalog(
    raw: &RawSettings,
    file: Option<&AssetsFile>,
) -> Result<AssetCatalog, SettingsError> {
    let mut assets = BTreeMap::new();
    for (id, decimals) in &raw.assets.decimals {
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
    if let Some(file) = file {
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

/// Pricing, asset decimals, firm-quote lifetime, liquidity and the rate
/// source.
pub(super) fn quote_setup(
    raw: &RawSettings,
    catalog: &AssetCatalog,
) -> Result<QuoteSetup, SettingsError> {
    let feed = match raw.pricing.source {
        PricingSource::Table => None,
        PricingSource::Http => {
            let f = &raw.pricing.feed;
            let url = http_url(
                "pricing.feed.url",
                f.url.as_deref(),
                " when pricing.source = \"http\"",
            )?;
            if f.interval_ms == 0 || f.max_age_ms == 0 || f.timeout_ms == 0 {
                return Err(SettingsError(
                    "pricing.feed: interval_ms, max_age_ms and timeout_ms must be positive".into(),
                ));
            }
            Some(FeedConfig {
                url,
                interval: Duration::from_millis(f.interval_ms),
                max_age: Duration::from_millis(f.max_age_ms),
                timeout: Duration::from_millis(f.timeout_ms),
            })
        }
    };
    let mut pairs = Vec::new();
    for (i, p) in raw.pricing.pairs.iter().enumerate() {
        let key = format!("pricing.pairs[{i}]");
        let pair = PairPricing {
            sell_asset: asset(&format!("{key}.sell_asset"), &p.sell_asset)?,
            buy_asset: asset(&format!("{key}.buy_asset"), &p.buy_asset)?,
            price: p.price,
            markup_bps: p.markup_bps,
            fee_fixed: p.fee_fixed,
            fee_percent: p.fee_percent,
            delivery_methods: p
                .delivery_methods
                .iter()
                .map(|m| DeliveryFee {
                    name: m.name.clone(),
                    fee_fixed: m.fee_fixed,
                })
                .collect(),
        };
        if feed.is_none() && pair.price.is_none() {
            return Err(SettingsError(format!(
                "{key}.price is required when pricing.source = \"table\""
            )));
        }
        let sell_decimals = decimals_of(catalog, &format!("{key}.sell_asset"), &pair.sell_asset)?;
        decimals_of(catalog, &format!("{key}.buy_asset"), &pair.buy_asset)?;
        pair.check(sell_decimals)
            .map_err(|e| SettingsError(format!("{key}: {e}")))?;
        pairs.push(pair);
    }
    let clients = raw
        .pricing
        .clients
        .iter()
        .map(|c| (c.client_id.clone(), c.markup_bps))
        .collect();
    let pricing =
        Pricing::new(pairs, clients).map_err(|e| SettingsError(format!("pricing.pairs: {e}")))?;
    let mut liquidity = BTreeMap::new();
    for (id, limit) in &raw.liquidity {
        let key = format!("liquidity.{id}");
        if *limit < Decimal::ZERO {
            return Err(SettingsError(format!("{key} must not be negative")));
        }
        liquidity.insert(asset(&key, id)?, *limit);
    }
    let q = &raw.quotes;
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
        assets: catalog.clone(),
        lifetime,
        liquidity,
        source: feed.map_or(RateSourceSetting::Table, RateSourceSetting::Feed),
    })
}

/// The `GET /fee` schedules.
pub(super) fn fee_schedules(
    raw: &RawSettings,
    catalog: &AssetCatalog,
) -> Result<FeeSchedules, SettingsError> {
    let mut schedules = FeeSchedules::default();
    let lists = [
        ("fees.schedule", &raw.fees.schedule, false),
        ("fees.clients", &raw.fees.clients, true),
    ];
    for (list, entries, per_client) in lists {
        for (i, s) in entries.iter().enumerate() {
            let key = format!("{list}[{i}]");
            let send_asset = asset(&format!("{key}.send_asset"), &s.send_asset)?;
            let decimals = decimals_of(catalog, &format!("{key}.send_asset"), &send_asset)?;
            let schedule = FeeSchedule {
                fixed: s.fixed,
                percent: s.percent,
                min: s.min,
                max: s.max,
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
