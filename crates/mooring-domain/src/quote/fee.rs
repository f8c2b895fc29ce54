//! SEP-31 fees without a quote (`GET /fee`, AP 2.x): a schedule per send
//! asset, optionally overridden per client.

use std::collections::BTreeMap;

use rust_decimal::{Decimal, RoundingStrategy};

use super::decimals_of;
use crate::AssetId;

/// `fixed + percent% of the amount`, within `[min, max]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeeSchedule {
    pub fixed: Decimal,
    pub percent: Decimal,
    pub min: Option<Decimal>,
    pub max: Option<Decimal>,
}

impl FeeSchedule {
    /// Checks the schedule against the asset's decimals.
    pub fn check(&self, decimals: u32) -> Result<(), String> {
        if self.fixed < Decimal::ZERO || self.percent < Decimal::ZERO {
            return Err("fixed and percent must not be negative".into());
        }
        if self.percent >= Decimal::ONE_HUNDRED {
            return Err("percent must be below 100".into());
        }
        for (what, v) in [
            ("fixed", Some(self.fixed)),
            ("min", self.min),
            ("max", self.max),
        ] {
            if let Some(v) = v
                && (v < Decimal::ZERO || decimals_of(v) > decimals)
            {
                return Err(format!(
                    "{what} must be non-negative with at most {decimals} decimals"
                ));
            }
        }
        if let (Some(min), Some(max)) = (self.min, self.max)
            && min > max
        {
            return Err("min must not exceed max".into());
        }
        Ok(())
    }

    /// The fee on `amount`, rounded up to `decimals`.
    pub fn fee(&self, amount: Decimal, decimals: u32) -> Option<Decimal> {
        let percent = amount
            .checked_mul(self.percent)?
            .checked_div(Decimal::ONE_HUNDRED)?;
        let mut fee = self.fixed.checked_add(percent)?;
        if let Some(min) = self.min {
            fee = fee.max(min);
        }
        if let Some(max) = self.max {
            fee = fee.min(max);
        }
        Some(fee.round_dp_with_strategy(decimals, RoundingStrategy::ToPositiveInfinity))
    }
}

/// The schedules per send asset, and per (client, send asset).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FeeSchedules {
    pub by_asset: BTreeMap<AssetId, FeeSchedule>,
    pub by_client: BTreeMap<(String, AssetId), FeeSchedule>,
}

impl FeeSchedules {
    /// The client's schedule for the asset, else the asset's.
    pub fn for_send(&self, asset: &AssetId, client_id: Option<&str>) -> Option<&FeeSchedule> {
        client_id
            .and_then(|c| self.by_client.get(&(c.to_owned(), asset.clone())))
            .or_else(|| self.by_asset.get(asset))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        s.parse().expect("decimal")
    }

    #[test]
    fn fixed_plus_percent_within_bounds_rounded_up() {
        let s = FeeSchedule {
            fixed: d("0.10"),
            percent: d("2"),
            min: Some(d("0.10")),
            max: Some(d("50")),
        };
        assert_eq!(s.fee(d("100"), 2), Some(d("2.10")));
        assert_eq!(s.fee(d("0.01"), 2), Some(d("0.11")), "0.1002 rounds up");
        assert_eq!(s.fee(d("10000"), 2), Some(d("50")));
        let free = FeeSchedule {
            fixed: Decimal::ZERO,
            percent: Decimal::ZERO,
            min: None,
            max: None,
        };
        assert_eq!(free.fee(d("100"), 2), Some(Decimal::ZERO));
        assert!(s.check(2).is_ok());
        assert!(s.check(0).is_err(), "0.10 needs a decimal");
    }

    #[test]
    fn client_schedules_override() {
        let usdc =
            AssetId::parse("stellar:USDC:GBBD47IF6LWK7P7MDEVSCWR7DPUWV3NY3DTQEVFL4NAT4AQH3ZLLFLA5")
                .expect("valid");
        let base = FeeSchedule {
            fixed: d("1"),
            percent: d("0"),
            min: None,
            max: None,
        };
        let vip = FeeSchedule {
            fixed: d("0"),
            percent: d("1"),
            min: None,
            max: None,
        };
        let schedules = FeeSchedules {
            by_asset: [(usdc.clone(), base.clone())].into(),
            by_client: [(("GVIP".to_owned(), usdc.clone()), vip.clone())].into(),
        };
        assert_eq!(schedules.for_send(&usdc, Some("GVIP")), Some(&vip));
        assert_eq!(schedules.for_send(&usdc, Some("GOTHER")), Some(&base));
        assert_eq!(schedules.for_send(&usdc, None), Some(&base));
    }
}
