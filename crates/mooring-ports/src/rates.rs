//! The rate source port: the market price of a pair, from the configured
//! table or a feed, before the anchor's markup.

use async_trait::async_trait;
use mooring_domain::AssetId;
use rust_decimal::Decimal;

/// Errors of a [`RateSource`].
#[derive(Debug, thiserror::Error)]
pub enum RateSourceError {
    /// The source has no price for the pair (yet).
    #[error("no price is available for {sell} -> {buy}")]
    NoPrice { sell: AssetId, buy: AssetId },
    /// The last price is older than the source may serve.
    #[error(
        "the price of {sell} -> {buy} is {age_seconds} s old, more than the {max_age_seconds} s allowed"
    )]
    Stale {
        sell: AssetId,
        buy: AssetId,
        age_seconds: i64,
        max_age_seconds: i64,
    },
    #[error(transparent)]
    Unknown(#[from] anyhow::Error),
}

/// Where mid prices come from: a configured table or a live feed. Markup,
/// fees and rounding are the domain's; a source only knows prices.
#[async_trait]
pub trait RateSource: Send + Sync + 'static {
    /// The mid price of one unit of `buy`, in units of `sell`. Returns
    /// `NoPrice` when the source does not price the pair and `Stale` when
    /// its price is too old to quote.
    async fn mid_price(&self, sell: &AssetId, buy: &AssetId) -> Result<Decimal, RateSourceError>;
}
