//! Quotes (SEP-38 rates through the AP's `GET /rate`) and SEP-31 fees
//! (`GET /fee`): how a price, fees and amounts are computed so that every
//! answer passes the Anchor Platform's checks, how long a firm quote lives,
//! and what a firm quote is.
//!
//! # The rounding rule
//!
//! Every amount is rounded in the anchor's favour, at the decimals the AP
//! enforces for its asset, and the price is what is left:
//!
//! - fees are rounded **up** to the sell asset's decimals;
//! - given the sell amount `S`, the buy amount `B = floor((S − fee) / p)`
//!   at the buy asset's decimals (`p` = the marked-up price);
//! - given the buy amount `B`, the sell amount
//!   `S = ceil((p·B + fixed fees) / (1 − percent))` at the sell decimals;
//! - the quoted price is then `(S − fee) / B`, rounded to the fewest
//!   decimals that keep `|S − (price·B + fee)|` under half a unit of the sell
//!   asset's last decimal (the AP tolerates a whole unit), checked in exact
//!   arithmetic; amounts so large that no price passes are refused
//!   (`TooLarge`), as are amounts over 15 digits before the point.
//!
//! The fee is always in the sell asset and its details are each positive and
//! sum exactly to the total (no details when it is zero). The property tests
//! below check every AP rule over random amounts, prices, fees and decimals.

mod fee;
mod pricing;

use chrono::{DateTime, Duration, DurationRound, Utc};
use rust_decimal::Decimal;

use crate::AssetId;

pub use fee::{FeeSchedule, FeeSchedules};
pub use pricing::{DeliveryFee, PairPricing, PriceInputs, Pricing, PricingConfigError, price};

/// Most digits an amount may have before the decimal point.
pub const MAX_AMOUNT_DIGITS: u32 = 15;

/// Most `significant_decimals` an asset may have (Stellar has 7; fiat fewer).
pub const MAX_DECIMALS: u32 = 18;

/// Indicative (a price only) or firm (an id, an expiry, reserved liquidity).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuoteKind {
    Indicative,
    Firm,
}

/// The amount the caller fixed: what they sell, or what they buy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requested {
    Sell(Decimal),
    Buy(Decimal),
}

/// One part of a fee.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeeDetail {
    pub name: String,
    pub description: Option<String>,
    pub amount: Decimal,
}

/// A fee: its total, its asset, and its parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fee {
    pub total: Decimal,
    pub asset: AssetId,
    pub details: Vec<FeeDetail>,
}

/// A priced exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Priced {
    /// Sell units per one buy unit, after markup and fees.
    pub price: Decimal,
    pub sell_amount: Decimal,
    pub buy_amount: Decimal,
    pub fee: Fee,
}

/// Why an exchange cannot be priced.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PricingError {
    #[error("the amount is too small to cover the fees")]
    TooSmall,
    #[error("the amount is too large to price")]
    TooLarge,
}

/// A stored firm quote's id: a UUID.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QuoteId(String);

/// Why a string is not a quote id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("quote id must be a UUID")]
pub struct InvalidQuoteId;

impl QuoteId {
    pub fn generate() -> Self {
        Self(uuid::Uuid::new_v4().hyphenated().to_string())
    }

    pub fn parse(s: &str) -> Result<Self, InvalidQuoteId> {
        uuid::Uuid::parse_str(s)
            .map(|u| Self(u.hyphenated().to_string()))
            .map_err(|_| InvalidQuoteId)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for QuoteId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(&self.0)
    }
}

/// A firm quote, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quote {
    pub id: QuoteId,
    pub sell_asset: AssetId,
    pub buy_asset: AssetId,
    pub priced: Priced,
    pub sell_delivery_method: Option<String>,
    pub buy_delivery_method: Option<String>,
    pub country_code: Option<String>,
    pub client_id: Option<String>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// The transaction that used the quote, once one did.
    pub used_by: Option<String>,
    pub used_at: Option<DateTime<Utc>>,
}

impl Quote {
    /// Whether the quote still holds its buy amount of liquidity.
    pub fn is_reserving(&self, now: DateTime<Utc>) -> bool {
        self.used_by.is_none() && self.expires_at > now
    }
}

/// How long firm quotes live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuoteLifetime {
    /// The validity a firm quote gets at least.
    pub firm_ttl: Duration,
    /// The furthest expiry a client may ask for.
    pub max_ttl: Duration,
}

/// Why an `expire_after` cannot be honoured.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "expire_after {requested} is too far ahead: firm quotes expire at most {max_seconds} seconds after now (by {latest})"
)]
pub struct ExpiryTooFar {
    pub requested: String,
    pub latest: String,
    pub max_seconds: i64,
}

impl QuoteLifetime {
    /// The expiry of a firm quote made `now`: the later of `now + firm_ttl`
    /// and `expire_after` (one in the past counts as now), rounded up to the
    /// whole second; refused beyond `now + max_ttl`.
    pub fn expiry(
        &self,
        now: DateTime<Utc>,
        expire_after: Option<DateTime<Utc>>,
    ) -> Result<DateTime<Utc>, ExpiryTooFar> {
        let latest = now + self.max_ttl;
        let wanted = expire_after.unwrap_or(now).max(now);
        if wanted > latest {
            return Err(ExpiryTooFar {
                requested: wanted.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                latest: latest.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                max_seconds: self.max_ttl.num_seconds(),
            });
        }
        let expiry = wanted.max(now + self.firm_ttl);
        let second = Duration::seconds(1);
        let floor = expiry.duration_trunc(second).unwrap_or(expiry);
        Ok(if floor < expiry {
            floor + second
        } else {
            floor
        })
    }
}

/// The number of decimals of an amount, trailing zeros not counted (as the
/// AP counts them).
pub fn decimals_of(amount: Decimal) -> u32 {
    amount.normalize().scale()
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn at(s: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_800_000_000 + s, 0)
            .single()
            .expect("valid")
    }

    #[test]
    fn firm_expiry_is_the_later_of_ttl_and_expire_after() {
        let life = QuoteLifetime {
            firm_ttl: Duration::seconds(300),
            max_ttl: Duration::seconds(86_400),
        };
        assert_eq!(life.expiry(at(0), None), Ok(at(300)));
        assert_eq!(life.expiry(at(0), Some(at(60))), Ok(at(300)));
        assert_eq!(life.expiry(at(0), Some(at(3_600))), Ok(at(3_600)));
        assert_eq!(
            life.expiry(at(0), Some(at(-3_600))),
            Ok(at(300)),
            "a past expire_after counts as now"
        );
        assert_eq!(life.expiry(at(0), Some(at(86_400))), Ok(at(86_400)));
        let too_far = life.expiry(at(0), Some(at(86_401))).expect_err("refused");
        assert_eq!(too_far.max_seconds, 86_400);
        let year_9999 = Utc
            .with_ymd_and_hms(9999, 12, 31, 0, 0, 0)
            .single()
            .expect("valid");
        assert!(life.expiry(at(0), Some(year_9999)).is_err());
        // Sub-second instants round up to the next second.
        let half = at(0) + Duration::milliseconds(500);
        assert_eq!(life.expiry(half, None), Ok(at(301)));
    }

    #[test]
    fn decimals_ignore_trailing_zeros() {
        assert_eq!(decimals_of(Decimal::new(150, 2)), 1);
        assert_eq!(decimals_of(Decimal::new(100, 2)), 0);
        assert_eq!(decimals_of(Decimal::new(1234567, 7)), 7);
    }

    #[test]
    fn quote_ids() {
        let id = QuoteId::generate();
        assert_eq!(QuoteId::parse(id.as_str()), Ok(id));
        assert_eq!(QuoteId::parse("nope"), Err(InvalidQuoteId));
    }
}
