//! An HTTP feed of mid prices: `GET {url}` answers
//! `{"prices": [{"sell_asset": "…", "buy_asset": "…", "price": "0.18"}]}`.
//! It is polled every `interval`; the last good price of each pair is kept,
//! and refused once it is older than `max_age`.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

use async_trait::async_trait;
use mooring_domain::AssetId;
use mooring_ports::{RateSource, RateSourceError};
use rust_decimal::Decimal;
use serde::Deserialize;
use tokio::time::Instant;

/// Where the feed is and how it is polled.
#[derive(Debug, Clone)]
pub struct FeedConfig {
    pub url: String,
    pub interval: Duration,
    pub max_age: Duration,
    pub timeout: Duration,
}

#[derive(Deserialize)]
struct Document {
    prices: Vec<Entry>,
}

#[derive(Deserialize)]
struct Entry {
    sell_asset: String,
    buy_asset: String,
    /// A string (recommended, exact) or a JSON number.
    price: serde_json::Value,
}

type Prices = HashMap<(AssetId, AssetId), (Decimal, Instant)>;

/// The feed's last good prices.
pub struct FeedRates {
    config: FeedConfig,
    client: reqwest::Client,
    prices: RwLock<Prices>,
}

impl FeedRates {
    pub fn new(config: FeedConfig) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Self {
            config,
            client,
            prices: RwLock::new(HashMap::new()),
        })
    }

    /// Starts polling in the background (the first poll at once). The task
    /// ends when the returned source is dropped.
    pub fn start(config: FeedConfig) -> anyhow::Result<Arc<Self>> {
        let feed = Arc::new(Self::new(config)?);
        let weak: Weak<Self> = Arc::downgrade(&feed);
        let interval = feed.config.interval;
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticker.tick().await;
                let Some(feed) = weak.upgrade() else { break };
                if let Err(e) = feed.poll_once().await {
                    tracing::warn!(
                        error = format!("{e:#}"),
                        "price feed poll failed; keeping the last good prices"
                    );
                }
            }
        });
        Ok(feed)
    }

    /// Fetches the feed once and keeps its good prices; returns how many.
    /// A failed fetch or a malformed document changes nothing.
    pub async fn poll_once(&self) -> anyhow::Result<usize> {
        let response = self
            .client
            .get(&self.config.url)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            // The feed's URL may carry a key in its query: never in a log.
            .map_err(reqwest::Error::without_url)?;
        let document: Document = response.json().await.map_err(reqwest::Error::without_url)?;
        let now = Instant::now();
        let mut fresh = Vec::new();
        for entry in document.prices {
            match parse(&entry) {
                Some(pair_price) => fresh.push(pair_price),
                None => tracing::warn!(
                    sell_asset = entry.sell_asset.chars().take(80).collect::<String>(),
                    buy_asset = entry.buy_asset.chars().take(80).collect::<String>(),
                    "price feed entry ignored: invalid asset or non-positive price"
                ),
            }
        }
        let count = fresh.len();
        let mut prices = self
            .prices
            .write()
            .map_err(|_| anyhow::anyhow!("price table poisoned"))?;
        for (pair, price) in fresh {
            prices.insert(pair, (price, now));
        }
        Ok(count)
    }
}

fn parse(entry: &Entry) -> Option<((AssetId, AssetId), Decimal)> {
    let sell = AssetId::parse(&entry.sell_asset).ok()?;
    let buy = AssetId::parse(&entry.buy_asset).ok()?;
    let price = match &entry.price {
        serde_json::Value::String(s) => Decimal::from_str(s).ok()?,
        serde_json::Value::Number(n) => Decimal::from_str(&n.to_string())
            .or_else(|_| Decimal::from_scientific(&n.to_string()))
            .ok()?,
        _ => return None,
    };
    (price > Decimal::ZERO).then_some(((sell, buy), price))
}

#[async_trait]
impl RateSource for FeedRates {
    async fn mid_price(&self, sell: &AssetId, buy: &AssetId) -> Result<Decimal, RateSourceError> {
        let prices = self
            .prices
            .read()
            .map_err(|_| RateSourceError::Unknown(anyhow::anyhow!("price table poisoned")))?;
        let (price, at) = prices
            .get(&(sell.clone(), buy.clone()))
            .copied()
            .ok_or_else(|| RateSourceError::NoPrice {
                sell: sell.clone(),
                buy: buy.clone(),
            })?;
        let age = at.elapsed();
        if age > self.config.max_age {
            return Err(RateSourceError::Stale {
                sell: sell.clone(),
                buy: buy.clone(),
                age_seconds: i64::try_from(age.as_secs()).unwrap_or(i64::MAX),
                max_age_seconds: i64::try_from(self.config.max_age.as_secs()).unwrap_or(i64::MAX),
            });
        }
        Ok(price)
    }
}
