//! `GET /rate` (indicative and firm quotes), `GET /fee`, and the back
//! office's view of quotes; and single use of a firm quote, for the payment
//! engine.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use mooring_domain::customer::{CustomerId, CustomerStatus};
use mooring_domain::quote::{
    FeeSchedules, MAX_AMOUNT_DIGITS, PriceInputs, Priced, Pricing, PricingError, Quote, QuoteId,
    QuoteKind, QuoteLifetime, Requested, decimals_of, price,
};
use mooring_domain::{AssetCatalog, AssetId};
use mooring_ports::{Clock, QuoteStore, QuoteStoreError, RateSource, RateSourceError};
use rust_decimal::Decimal;

use crate::KycService;

/// Errors of the quote and fee use cases.
#[derive(Debug, thiserror::Error)]
pub enum QuoteError {
    /// The request is malformed or asks for what cannot be (400).
    #[error("{0}")]
    BadRequest(String),
    /// Understood, but Mooring will not quote it (422): an unsupported pair,
    /// an amount that does not cover the fees, no liquidity, a customer who
    /// may not transact.
    #[error("{0}")]
    Unprocessable(String),
    /// No usable price right now (503).
    #[error("{0}")]
    Unavailable(String),
    #[error("quote not found")]
    NotFound,
    #[error("quote expired")]
    Expired,
    #[error("quote already used by transaction {0}")]
    AlreadyUsed(String),
    #[error(transparent)]
    Unknown(anyhow::Error),
}

impl From<QuoteStoreError> for QuoteError {
    fn from(e: QuoteStoreError) -> Self {
        match e {
            QuoteStoreError::NotFound => Self::NotFound,
            QuoteStoreError::Expired => Self::Expired,
            QuoteStoreError::AlreadyUsed { transaction_id } => Self::AlreadyUsed(transaction_id),
            QuoteStoreError::InsufficientLiquidity => {
                Self::Unprocessable("insufficient liquidity".into())
            }
            QuoteStoreError::Unknown(e) => Self::Unknown(e),
        }
    }
}

/// A `GET /rate` request, parsed.
#[derive(Debug, Clone)]
pub struct RateRequest {
    pub kind: QuoteKind,
    pub sell_asset: AssetId,
    pub buy_asset: AssetId,
    pub requested: Requested,
    pub sell_delivery_method: Option<String>,
    pub buy_delivery_method: Option<String>,
    pub country_code: Option<String>,
    pub expire_after: Option<DateTime<Utc>>,
    pub client_id: Option<String>,
}

/// The answer to `GET /rate`: firm quotes have an id and an expiry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateView {
    pub id: Option<QuoteId>,
    pub expires_at: Option<DateTime<Utc>>,
    pub priced: Priced,
}

impl From<Quote> for RateView {
    fn from(q: Quote) -> Self {
        Self {
            id: Some(q.id),
            expires_at: Some(q.expires_at),
            priced: q.priced,
        }
    }
}

/// The quote service.
#[derive(Clone)]
pub struct QuoteService {
    pricing: Arc<Pricing>,
    assets: Arc<AssetCatalog>,
    rates: Arc<dyn RateSource>,
    store: Arc<dyn QuoteStore>,
    lifetime: QuoteLifetime,
    liquidity: Arc<BTreeMap<AssetId, Decimal>>,
    clock: Arc<dyn Clock>,
}

/// What the quote service is made of.
pub struct QuoteServiceParts {
    pub pricing: Pricing,
    pub assets: AssetCatalog,
    pub rates: Arc<dyn RateSource>,
    pub store: Arc<dyn QuoteStore>,
    pub lifetime: QuoteLifetime,
    /// Most buy amount of each asset that reserving quotes may hold; an
    /// asset not listed is unlimited.
    pub liquidity: BTreeMap<AssetId, Decimal>,
    pub clock: Arc<dyn Clock>,
}

/// Checks an amount against its asset's decimals and Mooring's bounds.
pub fn check_amount(
    name: &str,
    amount: Decimal,
    asset: &AssetId,
    decimals: u32,
) -> Result<(), QuoteError> {
    if amount <= Decimal::ZERO {
        return Err(QuoteError::BadRequest(format!("{name} must be positive")));
    }
    if amount.trunc().abs().to_string().len() > MAX_AMOUNT_DIGITS as usize {
        return Err(QuoteError::BadRequest(format!("{name} is too large")));
    }
    if decimals_of(amount) > decimals {
        return Err(QuoteError::BadRequest(format!(
            "{name} has more decimals than {asset} allows ({decimals})"
        )));
    }
    Ok(())
}

impl QuoteService {
    pub fn new(parts: QuoteServiceParts) -> Self {
        Self {
            pricing: Arc::new(parts.pricing),
            assets: Arc::new(parts.assets),
            rates: parts.rates,
            store: parts.store,
            lifetime: parts.lifetime,
            liquidity: Arc::new(parts.liquidity),
            clock: parts.clock,
        }
    }

    fn decimals(&self, asset: &AssetId) -> Result<u32, QuoteError> {
        self.assets
            .get(asset)
            .map(|a| a.significant_decimals)
            .ok_or_else(|| {
                QuoteError::Unprocessable(format!("{asset} is not an asset this anchor serves"))
            })
    }

    /// `GET /rate`: prices the request; a firm quote is stored and reserves
    /// its buy amount.
    pub async fn rate(&self, request: RateRequest) -> Result<RateView, QuoteError> {
        let pair = self
            .pricing
            .pair(&request.sell_asset, &request.buy_asset)
            .ok_or_else(|| {
                QuoteError::Unprocessable(format!(
                    "the pair {} -> {} is not supported",
                    request.sell_asset, request.buy_asset
                ))
            })?;
        let sell_decimals = self.decimals(&request.sell_asset)?;
        let buy_decimals = self.decimals(&request.buy_asset)?;
        match request.requested {
            Requested::Sell(a) => {
                check_amount("sell_amount", a, &request.sell_asset, sell_decimals)?
            }
            Requested::Buy(a) => check_amount("buy_amount", a, &request.buy_asset, buy_decimals)?,
        }
        let method = match (&request.sell_delivery_method, &request.buy_delivery_method) {
            (Some(_), Some(_)) => {
                return Err(QuoteError::BadRequest(
                    "send sell_delivery_method or buy_delivery_method, not both".into(),
                ));
            }
            (Some(m), None) | (None, Some(m)) => {
                Some(pair.delivery_method(m).ok_or_else(|| {
                    QuoteError::BadRequest(format!(
                        "unknown delivery method {m:?} for {}",
                        pair.name()
                    ))
                })?)
            }
            (None, None) => None,
        };
        let now = self.clock.now();
        let expires_at = match request.kind {
            QuoteKind::Firm => Some(
                self.lifetime
                    .expiry(now, request.expire_after)
                    .map_err(|e| QuoteError::BadRequest(e.to_string()))?,
            ),
            QuoteKind::Indicative => None,
        };
        let mid = self
            .rates
            .mid_price(&request.sell_asset, &request.buy_asset)
            .await
            .map_err(|e| match e {
                e @ (RateSourceError::NoPrice { .. } | RateSourceError::Stale { .. }) => {
                    QuoteError::Unavailable(e.to_string())
                }
                RateSourceError::Unknown(e) => QuoteError::Unknown(e),
            })?;
        let priced = price(&PriceInputs {
            pair,
            mid,
            markup_bps: self.pricing.markup_bps(pair, request.client_id.as_deref()),
            requested: request.requested,
            delivery: method,
            sell_decimals,
            buy_decimals,
        })
        .map_err(|e| match e {
            PricingError::TooSmall => QuoteError::Unprocessable(e.to_string()),
            PricingError::TooLarge => QuoteError::BadRequest(e.to_string()),
        })?;
        let Some(expires_at) = expires_at else {
            return Ok(RateView {
                id: None,
                expires_at: None,
                priced,
            });
        };
        let quote = Quote {
            id: QuoteId::generate(),
            sell_asset: request.sell_asset,
            buy_asset: request.buy_asset,
            priced,
            sell_delivery_method: request.sell_delivery_method,
            buy_delivery_method: request.buy_delivery_method,
            country_code: request.country_code,
            client_id: request.client_id,
            created_at: now,
            expires_at,
            used_by: None,
            used_at: None,
        };
        let limit = self.liquidity.get(&quote.buy_asset).copied();
        self.store.create_firm(&quote, limit, now).await?;
        tracing::info!(quote.id = %quote.id, quote.buy_asset = %quote.buy_asset, "firm quote created");
        Ok(quote.into())
    }

    /// A stored firm quote, unchanged (AP 2.x may fetch one by id).
    pub async fn get(&self, id: &QuoteId) -> Result<Quote, QuoteError> {
        self.store.get(id).await?.ok_or(QuoteError::NotFound)
    }

    /// Marks a firm quote used by a transaction (single use).
    pub async fn mark_used(&self, id: &QuoteId, transaction_id: &str) -> Result<Quote, QuoteError> {
        let quote = self
            .store
            .mark_used(id, transaction_id, self.clock.now())
            .await?;
        tracing::info!(quote.id = %id, transaction.id = transaction_id, "quote used");
        Ok(quote)
    }

    /// The newest quotes, for the back office.
    pub async fn list(&self, limit: usize) -> Result<Vec<Quote>, QuoteError> {
        Ok(self.store.list(limit).await?)
    }

    /// How much of each limited asset the reserving quotes hold now, with the limit.
    pub async fn reservations(&self) -> Result<Vec<(AssetId, Decimal, Decimal)>, QuoteError> {
        let now = self.clock.now();
        let mut out = Vec::new();
        for (asset, limit) in self.liquidity.iter() {
            out.push((
                asset.clone(),
                self.store.reserved(asset, now).await?,
                *limit,
            ));
        }
        Ok(out)
    }

    /// For every asset a configured pair buys: the buy amount reserving
    /// quotes hold now, and the asset's limit if it has one.
    /// The same service over another store: the operators' routes read
    /// through connections of their own, never the callbacks'.
    pub fn over_store(&self, store: Arc<dyn QuoteStore>) -> Self {
        Self {
            store,
            ..self.clone()
        }
    }

    pub async fn reserved_by_asset(
        &self,
    ) -> Result<Vec<(AssetId, Decimal, Option<Decimal>)>, QuoteError> {
        let now = self.clock.now();
        let mut assets: Vec<&AssetId> = self.pricing.pairs().iter().map(|p| &p.buy_asset).collect();
        assets.sort();
        assets.dedup();
        let mut out = Vec::with_capacity(assets.len());
        for asset in assets {
            out.push((
                asset.clone(),
                self.store.reserved(asset, now).await?,
                self.liquidity.get(asset).copied(),
            ));
        }
        Ok(out)
    }
}

/// The amount a `GET /fee` is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeeAmount {
    Send(Decimal),
    Receive(Decimal),
}

/// A `GET /fee` request, parsed.
#[derive(Debug, Clone)]
pub struct FeeRequest {
    pub send_asset: AssetId,
    pub receive_asset: AssetId,
    pub amount: FeeAmount,
    pub client_id: Option<String>,
    pub sender_id: String,
    pub receiver_id: String,
}

/// The fee service (AP 2.x SEP-31 without a quote).
#[derive(Clone)]
pub struct FeeService {
    schedules: Arc<FeeSchedules>,
    assets: Arc<AssetCatalog>,
    kyc: KycService,
}

impl FeeService {
    pub fn new(schedules: FeeSchedules, assets: AssetCatalog, kyc: KycService) -> Self {
        Self {
            schedules: Arc::new(schedules),
            assets: Arc::new(assets),
            kyc,
        }
    }

    /// `GET /fee`: the fee in the send asset, once sender and receiver are
    /// known customers whose KYC is `ACCEPTED`.
    pub async fn fee(&self, request: FeeRequest) -> Result<(Decimal, AssetId), QuoteError> {
        let asset = &request.send_asset;
        let decimals = self
            .assets
            .get(asset)
            .map(|a| a.significant_decimals)
            .ok_or_else(|| {
                QuoteError::Unprocessable(format!("{asset} is not an asset this anchor serves"))
            })?;
        if self.assets.get(&request.receive_asset).is_none() {
            return Err(QuoteError::Unprocessable(format!(
                "{} is not an asset this anchor serves",
                request.receive_asset
            )));
        }
        let (name, amount) = match request.amount {
            FeeAmount::Send(a) => ("send_amount", a),
            FeeAmount::Receive(a) => ("receive_amount", a),
        };
        if matches!(request.amount, FeeAmount::Receive(_))
            && request.receive_asset != request.send_asset
        {
            return Err(QuoteError::Unprocessable(
                "receive_amount is only priced when send_asset and receive_asset are the same; use GET /rate across assets"
                    .into(),
            ));
        }
        check_amount(name, amount, asset, decimals)?;
        let schedule = self
            .schedules
            .for_send(asset, request.client_id.as_deref())
            .ok_or_else(|| QuoteError::Unprocessable(format!("no fee schedule for {asset}")))?;
        self.check_customer("sender", &request.sender_id).await?;
        self.check_customer("receiver", &request.receiver_id)
            .await?;
        let too_large = || QuoteError::BadRequest(format!("{name} is too large"));
        let fee = match request.amount {
            FeeAmount::Send(send) => {
                let fee = schedule.fee(send, decimals).ok_or_else(too_large)?;
                if fee >= send {
                    return Err(QuoteError::Unprocessable(format!(
                        "send_amount {send} does not cover the fee of {fee}"
                    )));
                }
                fee
            }
            // The percentage is of the amount sent, which is what is received
            // plus the fee: the fee of `received + fee`, found by iteration
            // (it settles at once unless min/max or rounding move it).
            FeeAmount::Receive(received) => {
                let mut fee = schedule.fee(received, decimals).ok_or_else(too_large)?;
                for _ in 0..8 {
                    let send = received.checked_add(fee).ok_or_else(too_large)?;
                    let next = schedule.fee(send, decimals).ok_or_else(too_large)?;
                    if next <= fee {
                        break;
                    }
                    fee = next;
                }
                fee
            }
        };
        Ok((fee, asset.clone()))
    }

    async fn check_customer(&self, role: &str, id: &str) -> Result<(), QuoteError> {
        let unknown =
            || QuoteError::Unprocessable(format!("the {role} {id:?} is not a known customer"));
        let parsed = CustomerId::parse(id).map_err(|_| unknown())?;
        let view = match self.kyc.assessment(&parsed).await {
            Ok(view) => view,
            Err(crate::KycError::NotFound) => return Err(unknown()),
            Err(crate::KycError::BadRequest(m)) => return Err(QuoteError::BadRequest(m)),
            Err(e @ crate::KycError::Changed) => return Err(QuoteError::Unknown(e.into())),
            Err(crate::KycError::Unknown(e)) => return Err(QuoteError::Unknown(e)),
            Err(e @ crate::KycError::Audit(_)) => return Err(QuoteError::Unknown(e.into())),
        };
        if view.assessment.status != CustomerStatus::Accepted {
            return Err(QuoteError::Unprocessable(format!(
                "the {role}'s KYC is {}, not ACCEPTED",
                view.assessment.status.as_str()
            )));
        }
        Ok(())
    }
}
