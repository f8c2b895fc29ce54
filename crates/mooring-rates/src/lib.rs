//! Mooring's rate sources, behind the `RateSource` port: the configured price
//! table, and an HTTP feed of mid prices polled on an interval.
//!
//! A source knows prices only: markup, fees, rounding and liquidity are the
//! domain's, the same whichever source feeds them. This crate must not know
//! the store, the HTTP server or any other adapter.

mod feed;

use std::collections::HashMap;

use async_trait::async_trait;
use mooring_domain::AssetId;
use mooring_domain::quote::Pricing;
use mooring_ports::{RateSource, RateSourceError};
use rust_decimal::Decimal;

pub use feed::{FeedConfig, FeedRates};

/// Prices from configuration (`[[pricing.pairs]] price = …`).
#[derive(Debug, Clone, Default)]
pub struct TableRates {
    prices: HashMap<(AssetId, AssetId), Decimal>,
}

impl TableRates {
    /// The table of every pair that sets a price.
    pub fn from_pricing(pricing: &Pricing) -> Self {
        let prices = pricing
            .pairs()
            .iter()
            .filter_map(|p| {
                p.price
                    .map(|price| ((p.sell_asset.clone(), p.buy_asset.clone()), price))
            })
            .collect();
        Self { prices }
    }
}

#[async_trait]
impl RateSource for TableRates {
    async fn mid_price(&self, sell: &AssetId, buy: &AssetId) -> Result<Decimal, RateSourceError> {
        self.prices
            .get(&(sell.clone(), buy.clone()))
            .copied()
            .ok_or_else(|| RateSourceError::NoPrice {
                sell: sell.clone(),
                buy: buy.clone(),
            })
    }
}
