//! Pairs, markups, fees, and the pricing of one exchange.

use std::collections::BTreeMap;

use rust_decimal::{Decimal, RoundingStrategy};

use num_bigint::BigInt;

use super::{Fee, FeeDetail, MAX_AMOUNT_DIGITS, Priced, PricingError, Requested, decimals_of};
use crate::AssetId;

/// A delivery method of a pair and the fixed fee it adds (in the sell asset).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryFee {
    pub name: String,
    pub fee_fixed: Decimal,
}

/// How one pair is priced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairPricing {
    pub sell_asset: AssetId,
    pub buy_asset: AssetId,
    /// Sell units per one buy unit before markup, when the table sets it (a
    /// price feed may set it instead).
    pub price: Option<Decimal>,
    /// Added to the price, in basis points.
    pub markup_bps: u32,
    /// In the sell asset.
    pub fee_fixed: Decimal,
    /// Percent of the sell amount.
    pub fee_percent: Decimal,
    /// The delivery methods of the pair's off-chain side, each with its fee.
    pub delivery_methods: Vec<DeliveryFee>,
}

/// A pricing configuration that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PricingConfigError {
    #[error("pair {0} is configured twice")]
    DuplicatePair(String),
    #[error("pair {pair}: {message}")]
    Pair { pair: String, message: String },
}

impl PairPricing {
    pub fn name(&self) -> String {
        format!("{} -> {}", self.sell_asset, self.buy_asset)
    }

    /// Checks the pair against the sell asset's decimals.
    pub fn check(&self, sell_decimals: u32) -> Result<(), PricingConfigError> {
        let err = |message: String| PricingConfigError::Pair {
            pair: self.name(),
            message,
        };
        if self.sell_asset == self.buy_asset {
            return Err(err("sell and buy assets must differ".into()));
        }
        if sell_decimals > super::MAX_DECIMALS {
            return Err(err(format!(
                "{} has more than {} significant_decimals",
                self.sell_asset,
                super::MAX_DECIMALS
            )));
        }
        if sell_decimals == 0 {
            return Err(err(format!(
                "the fee asset {} needs positive significant_decimals (the AP refuses fees without)",
                self.sell_asset
            )));
        }
        if self.price.is_some_and(|p| p <= Decimal::ZERO) {
            return Err(err("price must be positive".into()));
        }
        if self.fee_percent < Decimal::ZERO || self.fee_percent >= Decimal::ONE_HUNDRED {
            return Err(err("fee_percent must be at least 0 and below 100".into()));
        }
        if self.markup_bps > 10_000 {
            return Err(err("markup_bps must be at most 10000".into()));
        }
        let fixed = std::iter::once(("fee_fixed".to_owned(), self.fee_fixed)).chain(
            self.delivery_methods
                .iter()
                .map(|d| (format!("delivery method {} fee_fixed", d.name), d.fee_fixed)),
        );
        for (what, amount) in fixed {
            if amount < Decimal::ZERO {
                return Err(err(format!("{what} must not be negative")));
            }
            if decimals_of(amount) > sell_decimals {
                return Err(err(format!(
                    "{what} {amount} has more decimals than {} allows ({sell_decimals})",
                    self.sell_asset
                )));
            }
        }
        let mut names: Vec<&str> = self
            .delivery_methods
            .iter()
            .map(|d| d.name.as_str())
            .collect();
        names.sort_unstable();
        if names.windows(2).any(|w| w[0] == w[1]) || names.iter().any(|n| n.is_empty()) {
            return Err(err(
                "delivery method names must be unique and not empty".into()
            ));
        }
        Ok(())
    }

    pub fn delivery_method(&self, name: &str) -> Option<&DeliveryFee> {
        self.delivery_methods.iter().find(|d| d.name == name)
    }
}

/// Every priced pair and the per-client markups.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pricing {
    pairs: Vec<PairPricing>,
    client_markups: BTreeMap<String, u32>,
}

impl Pricing {
    pub fn new(
        pairs: Vec<PairPricing>,
        client_markups: BTreeMap<String, u32>,
    ) -> Result<Self, PricingConfigError> {
        let mut seen = std::collections::BTreeSet::new();
        for p in &pairs {
            if !seen.insert((p.sell_asset.clone(), p.buy_asset.clone())) {
                return Err(PricingConfigError::DuplicatePair(p.name()));
            }
        }
        Ok(Self {
            pairs,
            client_markups,
        })
    }

    pub fn pair(&self, sell: &AssetId, buy: &AssetId) -> Option<&PairPricing> {
        self.pairs
            .iter()
            .find(|p| &p.sell_asset == sell && &p.buy_asset == buy)
    }

    pub fn pairs(&self) -> &[PairPricing] {
        &self.pairs
    }

    /// The markup for this client: its own, else the pair's.
    pub fn markup_bps(&self, pair: &PairPricing, client_id: Option<&str>) -> u32 {
        client_id
            .and_then(|c| self.client_markups.get(c))
            .copied()
            .unwrap_or(pair.markup_bps)
    }
}

/// Everything one exchange is priced from.
#[derive(Debug, Clone)]
pub struct PriceInputs<'a> {
    pub pair: &'a PairPricing,
    /// Sell units per buy unit, before markup.
    pub mid: Decimal,
    pub markup_bps: u32,
    pub requested: Requested,
    pub delivery: Option<&'a DeliveryFee>,
    pub sell_decimals: u32,
    pub buy_decimals: u32,
}

fn up(d: Decimal, dp: u32) -> Decimal {
    d.round_dp_with_strategy(dp, RoundingStrategy::ToPositiveInfinity)
}

fn down(d: Decimal, dp: u32) -> Decimal {
    d.round_dp_with_strategy(dp, RoundingStrategy::ToZero)
}

/// Whether `|sell − (price·buy + fee)|` is under half a unit of the sell
/// asset's last decimal, computed exactly (as the AP's BigDecimal does):
/// in `i128` when every step fits (ordinary amounts; the search for the
/// shortest price asks up to 29 times per quote), else in big integers.
fn within_half_unit(
    sell: Decimal,
    fee: Decimal,
    price: Decimal,
    buy: Decimal,
    sell_decimals: u32,
) -> bool {
    within_half_unit_i128(sell, fee, price, buy, sell_decimals)
        .unwrap_or_else(|| within_half_unit_big(sell, fee, price, buy, sell_decimals))
}

/// [`within_half_unit`] in `i128`; `None` when a step would overflow.
fn within_half_unit_i128(
    sell: Decimal,
    fee: Decimal,
    price: Decimal,
    buy: Decimal,
    sell_decimals: u32,
) -> Option<bool> {
    let pow10 = |e: u32| 10i128.checked_pow(e);
    let product = (
        price.mantissa().checked_mul(buy.mantissa())?,
        price.scale() + buy.scale(),
    );
    let k = product.1.max(sell.scale()).max(fee.scale());
    let at = |(m, s): (i128, u32)| m.checked_mul(pow10(k - s)?);
    let diff = at((sell.mantissa(), sell.scale()))?
        .checked_sub(at((fee.mantissa(), fee.scale()))?)?
        .checked_sub(at(product)?)?;
    // |diff| / 10^k < 1/2 · 10^-d  ⇔  2 · |diff| · 10^d < 10^k
    let lhs = diff
        .checked_abs()?
        .checked_mul(2)?
        .checked_mul(pow10(sell_decimals)?)?;
    Some(lhs < pow10(k)?)
}

/// [`within_half_unit`] in big integers, for any size.
fn within_half_unit_big(
    sell: Decimal,
    fee: Decimal,
    price: Decimal,
    buy: Decimal,
    sell_decimals: u32,
) -> bool {
    let exact = |d: Decimal| (BigInt::from(d.mantissa()), d.scale());
    let (pm, ps) = exact(price);
    let (bm, bs) = exact(buy);
    let product = (pm * bm, ps + bs);
    let k = product.1.max(sell.scale()).max(fee.scale());
    let at = |(m, s): (BigInt, u32)| m * BigInt::from(10).pow(k - s);
    let diff = at(exact(sell)) - at(exact(fee)) - at(product);
    // |diff| / 10^k < 1/2 · 10^-d  ⇔  2 · |diff| · 10^d < 10^k
    let lhs = diff.magnitude() * 2u32 * num_bigint::BigUint::from(10u32).pow(sell_decimals);
    lhs < num_bigint::BigUint::from(10u32).pow(k)
}

/// The shortest rounding of `exact` (≈ (sell − fee) / buy) that keeps the
/// AP's check true with half its tolerance to spare; `None` when even the
/// full-precision quotient does not (amounts too large for 28 digits).
fn shortest_price(
    sell: Decimal,
    fee: Decimal,
    buy: Decimal,
    exact: Decimal,
    sell_decimals: u32,
) -> Option<Decimal> {
    (0..=exact.scale())
        .map(|dp| exact.round_dp(dp))
        .find(|p| *p > Decimal::ZERO && within_half_unit(sell, fee, *p, buy, sell_decimals))
        .map(|p| p.normalize())
}

/// Whether an amount is small enough to quote: at most
/// [`MAX_AMOUNT_DIGITS`] digits before the point.
fn fits(amount: Decimal) -> bool {
    amount.trunc().abs() < Decimal::from(10u64.pow(MAX_AMOUNT_DIGITS))
}

/// Prices one exchange by the rounding rule of this module's parent.
pub fn price(inputs: &PriceInputs<'_>) -> Result<Priced, PricingError> {
    let large = || PricingError::TooLarge;
    let bps = Decimal::from(inputs.markup_bps);
    let factor = Decimal::ONE
        .checked_add(bps.checked_div(Decimal::from(10_000)).ok_or_else(large)?)
        .ok_or_else(large)?;
    let p = inputs.mid.checked_mul(factor).ok_or_else(large)?;
    if p <= Decimal::ZERO {
        return Err(PricingError::TooSmall);
    }
    let pair_fixed = inputs.pair.fee_fixed;
    let delivery_fixed = inputs.delivery.map_or(Decimal::ZERO, |d| d.fee_fixed);
    let fixed = pair_fixed.checked_add(delivery_fixed).ok_or_else(large)?;
    let rate = inputs
        .pair
        .fee_percent
        .checked_div(Decimal::ONE_HUNDRED)
        .ok_or_else(large)?;
    let (ds, db) = (inputs.sell_decimals, inputs.buy_decimals);

    let (sell, buy, percent_fee) = match inputs.requested {
        Requested::Sell(sell) => {
            let percent_fee = up(sell.checked_mul(rate).ok_or_else(large)?, ds);
            let net = sell - fixed - percent_fee;
            if net <= Decimal::ZERO {
                return Err(PricingError::TooSmall);
            }
            let buy = down(net.checked_div(p).ok_or_else(large)?, db);
            (sell, buy, percent_fee)
        }
        Requested::Buy(buy) => {
            let gross = p
                .checked_mul(buy)
                .ok_or_else(large)?
                .checked_add(fixed)
                .ok_or_else(large)?;
            let sell = up(
                gross.checked_div(Decimal::ONE - rate).ok_or_else(large)?,
                ds,
            );
            let percent_fee = up(sell.checked_mul(rate).ok_or_else(large)?, ds);
            (sell, buy, percent_fee)
        }
    };
    let total = fixed + percent_fee;
    let net = sell - total;
    if buy <= Decimal::ZERO || net <= Decimal::ZERO {
        return Err(PricingError::TooSmall);
    }
    if !fits(sell) || !fits(buy) {
        return Err(PricingError::TooLarge);
    }
    let quotient = net.checked_div(buy).ok_or_else(large)?;
    let price =
        shortest_price(sell, total, buy, quotient, inputs.sell_decimals).ok_or_else(large)?;

    let mut details = Vec::new();
    let mut detail = |name: String, description: Option<String>, amount: Decimal| {
        if amount > Decimal::ZERO {
            details.push(FeeDetail {
                name,
                description,
                amount,
            });
        }
    };
    detail("Service fee".into(), None, pair_fixed);
    detail(
        "Percentage fee".into(),
        Some(format!(
            "{}% of the sell amount",
            inputs.pair.fee_percent.normalize()
        )),
        percent_fee,
    );
    if let Some(d) = inputs.delivery {
        detail(
            format!("Delivery fee ({})", d.name),
            Some(format!("fee for delivery by {}", d.name)),
            delivery_fixed,
        );
    }
    Ok(Priced {
        price,
        sell_amount: sell,
        buy_amount: buy,
        fee: Fee {
            total,
            asset: inputs.pair.sell_asset.clone(),
            details,
        },
    })
}

#[cfg(test)]
mod tests {
    use num_bigint::BigInt;
    use proptest::prelude::*;
    use proptest::strategy::ValueTree;

    use super::*;

    fn d(s: &str) -> Decimal {
        s.parse().expect("decimal")
    }

    fn usdc() -> AssetId {
        AssetId::parse("stellar:USDC:GBBD47IF6LWK7P7MDEVSCWR7DPUWV3NY3DTQEVFL4NAT4AQH3ZLLFLA5")
            .expect("valid")
    }

    fn pair(price: &str, markup_bps: u32, fixed: &str, percent: &str) -> PairPricing {
        PairPricing {
            sell_asset: usdc(),
            buy_asset: AssetId::parse("iso4217:BRL").expect("valid"),
            price: Some(d(price)),
            markup_bps,
            fee_fixed: d(fixed),
            fee_percent: d(percent),
            delivery_methods: vec![DeliveryFee {
                name: "PIX".into(),
                fee_fixed: d("0.10"),
            }],
        }
    }

    fn inputs<'a>(
        pair: &'a PairPricing,
        requested: Requested,
        delivery: Option<&'a DeliveryFee>,
        ds: u32,
        db: u32,
    ) -> PriceInputs<'a> {
        PriceInputs {
            pair,
            mid: pair.price.expect("table price"),
            markup_bps: pair.markup_bps,
            requested,
            delivery,
            sell_decimals: ds,
            buy_decimals: db,
        }
    }

    /// `(mantissa, scale)` exactly.
    fn exact(x: Decimal) -> (BigInt, u32) {
        (BigInt::from(x.mantissa()), x.scale())
    }

    fn at_scale((m, s): (BigInt, u32), k: u32) -> BigInt {
        m * BigInt::from(10).pow(k - s)
    }

    /// Every check the AP applies to a rate response (RestRateIntegration
    /// .validateRateResponse, 2.9–4.3), in exact arithmetic as BigDecimal does.
    fn assert_ap_accepts(p: &Priced, requested: Requested, ds: u32, db: u32) {
        assert!(p.price > Decimal::ZERO, "price {p:?}");
        assert!(
            p.sell_amount > Decimal::ZERO && p.buy_amount > Decimal::ZERO,
            "{p:?}"
        );
        assert!(decimals_of(p.sell_amount) <= ds, "sell decimals {p:?}");
        assert!(decimals_of(p.buy_amount) <= db, "buy decimals {p:?}");
        match requested {
            Requested::Sell(s) => assert_eq!(p.sell_amount, s),
            Requested::Buy(b) => assert_eq!(p.buy_amount, b),
        }
        let fee = &p.fee;
        assert!(fee.total >= Decimal::ZERO);
        assert!(decimals_of(fee.total) <= ds, "fee decimals {p:?}");
        if fee.total.is_zero() {
            assert!(fee.details.is_empty());
        }
        let sum: Decimal = fee.details.iter().map(|f| f.amount).sum();
        assert_eq!(sum, fee.total);
        for detail in &fee.details {
            assert!(
                detail.amount > Decimal::ZERO && decimals_of(detail.amount) <= ds,
                "{detail:?}"
            );
            assert!(!detail.name.is_empty());
        }
        // |sell − (price·buy + fee)| < 10^-ds, the fee being in the sell asset.
        let (pm, ps) = exact(p.price);
        let (bm, bs) = exact(p.buy_amount);
        let product = (pm * bm, ps + bs);
        let k = product
            .1
            .max(p.sell_amount.scale())
            .max(fee.total.scale())
            .max(ds);
        let diff = at_scale(exact(p.sell_amount), k)
            - at_scale(product, k)
            - at_scale(exact(fee.total), k);
        let tolerance = BigInt::from(10).pow(k - ds);
        assert!(
            diff.magnitude() < tolerance.magnitude(),
            "sell ≉ price·buy + fee: {p:?}"
        );
    }

    #[test]
    fn the_ap_guide_example() {
        // 0.18 × 550 + 1 = 100
        let pair = pair("0.18", 0, "1.00", "0");
        let p = price(&inputs(&pair, Requested::Sell(d("100")), None, 2, 2)).expect("priced");
        assert_eq!(p.buy_amount, d("550"));
        assert_eq!(p.price, d("0.18"));
        assert_eq!(p.fee.total, d("1.00"));
        assert_eq!(p.fee.details.len(), 1);
        assert_ap_accepts(&p, Requested::Sell(d("100")), 2, 2);
    }

    #[test]
    fn the_issue_configuration_example() {
        let pair = pair("0.18", 50, "1.00", "0.5");
        let pix = pair.delivery_method("PIX").cloned();
        let p = price(&inputs(
            &pair,
            Requested::Sell(d("100")),
            pix.as_ref(),
            2,
            2,
        ))
        .expect("priced");
        // fees 1.00 + 0.50 + 0.10; (100 − 1.60) / (0.18 × 1.005) = 543.946…, rounded down
        assert_eq!(p.fee.total, d("1.60"));
        assert_eq!(p.buy_amount, d("543.94"));
        let names: Vec<_> = p.fee.details.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(
            names,
            ["Service fee", "Percentage fee", "Delivery fee (PIX)"]
        );
        assert_ap_accepts(&p, Requested::Sell(d("100")), 2, 2);
        let b =
            price(&inputs(&pair, Requested::Buy(d("550")), pix.as_ref(), 2, 2)).expect("priced");
        assert_eq!(b.buy_amount, d("550"));
        assert_ap_accepts(&b, Requested::Buy(d("550")), 2, 2);
    }

    #[test]
    fn no_fee_means_no_details() {
        let pair = pair("5.25", 0, "0", "0");
        let p = price(&inputs(&pair, Requested::Buy(d("10")), None, 2, 2)).expect("priced");
        assert!(p.fee.total.is_zero() && p.fee.details.is_empty());
        assert_eq!(p.sell_amount, d("52.50"));
        assert_ap_accepts(&p, Requested::Buy(d("10")), 2, 2);
    }

    #[test]
    fn too_small_to_cover_fees() {
        let pair = pair("0.18", 0, "1.00", "0");
        assert_eq!(
            price(&inputs(&pair, Requested::Sell(d("1.00")), None, 2, 2)),
            Err(PricingError::TooSmall)
        );
        assert_eq!(
            price(&inputs(&pair, Requested::Sell(d("1.001")), None, 3, 0)),
            Err(PricingError::TooSmall)
        );
    }

    #[test]
    fn config_checks() {
        assert!(pair("0.18", 50, "1.00", "0.5").check(2).is_ok());
        assert!(pair("0.18", 50, "1.001", "0.5").check(2).is_err());
        assert!(pair("0.18", 50, "1", "100").check(2).is_err());
        assert!(pair("0", 50, "1", "1").check(2).is_err());
        assert!(pair("0.18", 50, "1", "1").check(0).is_err());
        let mut twice = pair("0.18", 0, "1", "1");
        twice
            .delivery_methods
            .push(twice.delivery_methods[0].clone());
        assert!(twice.check(2).is_err());
        let same = pair("0.18", 0, "1", "1");
        assert!(Pricing::new(vec![same.clone(), same], BTreeMap::new()).is_err());
    }

    #[test]
    fn client_markup_replaces_the_pairs() {
        let pair = pair("0.18", 50, "0", "0");
        let pricing =
            Pricing::new(vec![pair.clone()], [("GCLIENT".to_owned(), 10)].into()).expect("valid");
        assert_eq!(pricing.markup_bps(&pair, Some("GCLIENT")), 10);
        assert_eq!(pricing.markup_bps(&pair, Some("GOTHER")), 50);
        assert_eq!(pricing.markup_bps(&pair, None), 50);
    }

    fn decimal(max_mantissa: i64, scale: u32) -> impl Strategy<Value = Decimal> {
        (1..=max_mantissa).prop_map(move |m| Decimal::new(m, scale))
    }

    /// An ordinary trade: the amounts, prices and fees anchors configure.
    #[derive(Debug, Clone)]
    struct Trade {
        pair: PairPricing,
        requested: Requested,
        ds: u32,
        db: u32,
    }

    fn ordinary_trade() -> impl Strategy<Value = Trade> {
        (
            (1u32..=7, 0u32..=7, any::<bool>(), 1i64..=1_000_000_000_000),
            (0u32..=8, 1i64..=100_000_000, 0u32..=1_000),
            (0i64..=100_000, 0i64..=1_000, 0i64..=10_000),
        )
            .prop_map(
                |(
                    (ds, db, sell_side, mantissa),
                    (price_scale, price_mantissa, markup_bps),
                    (fixed_units, percent_hundredths, delivery_units),
                )| {
                    let pair = PairPricing {
                        sell_asset: usdc(),
                        buy_asset: AssetId::parse("iso4217:BRL").expect("valid"),
                        price: Some(Decimal::new(price_mantissa, price_scale)),
                        markup_bps,
                        fee_fixed: Decimal::new(fixed_units, ds.min(2)),
                        fee_percent: Decimal::new(percent_hundredths, 2),
                        delivery_methods: vec![DeliveryFee {
                            name: "PIX".into(),
                            fee_fixed: Decimal::new(delivery_units, ds.min(2)),
                        }],
                    };
                    let requested = if sell_side {
                        Requested::Sell(Decimal::new(mantissa, ds))
                    } else {
                        Requested::Buy(Decimal::new(mantissa, db))
                    };
                    Trade {
                        pair,
                        requested,
                        ds,
                        db,
                    }
                },
            )
    }

    /// Prices a trade; a refusal is checked against its reason: `TooSmall`
    /// only when the fees, or one unit of rounding on either side, take
    /// what is sent; `TooLarge` only when the other side is genuinely huge.
    fn price_checked(t: &Trade) -> Result<Result<Priced, PricingError>, TestCaseError> {
        use rust_decimal::prelude::ToPrimitive;
        let delivery = t.pair.delivery_method("PIX").cloned();
        let answer = price(&inputs(&t.pair, t.requested, delivery.as_ref(), t.ds, t.db));
        let mid = t.pair.price.unwrap_or(Decimal::ONE);
        let p = mid * (Decimal::ONE + Decimal::from(t.pair.markup_bps) / Decimal::from(10_000));
        let unit = |decimals: u32| Decimal::new(1, decimals);
        match &answer {
            Ok(priced) => assert_ap_accepts(priced, t.requested, t.ds, t.db),
            Err(PricingError::TooSmall) => {
                let fixed = t.pair.fee_fixed + delivery.map_or(Decimal::ZERO, |d| d.fee_fixed);
                let rate = t.pair.fee_percent / Decimal::ONE_HUNDRED;
                match t.requested {
                    Requested::Sell(sell) => {
                        let net = sell - fixed - sell * rate;
                        prop_assert!(
                            net < unit(t.ds) + p * unit(t.db),
                            "TooSmall for {sell} sent: {net} left after fees at {p}"
                        );
                    }
                    Requested::Buy(buy) => {
                        prop_assert!(p * buy < unit(t.ds), "TooSmall for {buy} bought at {p}")
                    }
                }
            }
            Err(PricingError::TooLarge) => {
                let p = p.to_f64().unwrap_or(1.0);
                let other = match t.requested {
                    Requested::Sell(s) => s.to_f64().unwrap_or(0.0) / p,
                    Requested::Buy(b) => b.to_f64().unwrap_or(0.0) * p,
                };
                prop_assert!(
                    other > 1e14,
                    "TooLarge for an ordinary trade: {:?} at {p}",
                    t.requested
                );
            }
        }
        Ok(answer)
    }

    /// Refusals stay the exception over ordinary trades: the property below
    /// cannot pass by refusing everything.
    #[test]
    fn ordinary_trades_are_mostly_priced() {
        let mut runner = proptest::test_runner::TestRunner::deterministic();
        let strategy = ordinary_trade();
        let (mut priced, mut refused) = (0u32, 0u32);
        for _ in 0..4000 {
            let trade = strategy.new_tree(&mut runner).expect("a trade").current();
            match price_checked(&trade).expect("refusals are for their reason") {
                Ok(_) => priced += 1,
                Err(_) => refused += 1,
            }
        }
        assert!(
            refused * 4 < priced,
            "{refused} refused against {priced} priced: more than one in five"
        );
    }

    /// Any decimal, of any size and scale.
    fn any_decimal() -> impl Strategy<Value = Decimal> {
        (any::<i64>(), any::<u32>(), 0u32..=28, 0u8..3).prop_map(|(lo, hi, scale, size)| {
            let m = match size {
                0 => i128::from(lo % 1_000_000_000),
                1 => i128::from(lo),
                _ => (i128::from(hi) << 64) | i128::from(lo as u64),
            };
            Decimal::try_from_i128_with_scale(m, scale).unwrap_or(Decimal::MAX)
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]

        /// The `i128` path answers as the big-integer one wherever it answers.
        #[test]
        fn the_fast_half_unit_check_agrees_with_the_exact_one(
            sell in any_decimal(),
            fee in any_decimal(),
            price in any_decimal(),
            buy in any_decimal(),
            ds in 0u32..=28,
        ) {
            if let Some(fast) = within_half_unit_i128(sell, fee, price, buy, ds) {
                prop_assert_eq!(fast, within_half_unit_big(sell, fee, price, buy, ds));
            }
        }

        /// Ordinary amounts take the fast path for every price the search
        /// tries (up to the one it picks, each side of the boundary), and
        /// it answers as the big-integer check.
        #[test]
        fn ordinary_amounts_take_the_fast_path(trade in ordinary_trade()) {
            if let Ok(p) = price_checked(&trade)? {
                let (sell, fee, buy) = (p.sell_amount, p.fee.total, p.buy_amount);
                let quotient = (sell - fee) / buy;
                let mut passed = false;
                for dp in 0..=quotient.scale() {
                    let candidate = quotient.round_dp(dp);
                    if candidate <= Decimal::ZERO {
                        continue;
                    }
                    let fast = within_half_unit_i128(sell, fee, candidate, buy, trade.ds);
                    prop_assert!(fast.is_some(), "{candidate} took the slow path");
                    let big = within_half_unit_big(sell, fee, candidate, buy, trade.ds);
                    prop_assert_eq!(fast, Some(big), "at {}", candidate);
                    if big {
                        passed = true;
                        break;
                    }
                }
                prop_assert!(passed, "no candidate passed");
            }
        }

        #[test]
        fn every_answer_passes_the_ap_checks(trade in ordinary_trade()) {
            prop_assert!(trade.pair.check(trade.ds).is_ok());
            // Priced or refused, each is checked inside.
            let _priced_or_refused = price_checked(&trade)?;
        }

        #[test]
        fn big_and_tiny_prices_pass_too(
            ds in 1u32..=18,
            db in 0u32..=18,
            amount in prop_oneof![decimal(i64::MAX, 7), decimal(i64::MAX, 0), decimal(999_999_999_999_999, 0)],
            price_value in prop_oneof![decimal(i64::MAX, 0), decimal(1_000_000, 0), decimal(1_000, 9), decimal(1, 18)],
        ) {
            let pair = PairPricing {
                sell_asset: usdc(),
                buy_asset: AssetId::parse("iso4217:BRL").expect("valid"),
                price: Some(price_value),
                markup_bps: 0,
                fee_fixed: Decimal::ZERO,
                fee_percent: Decimal::ZERO,
                delivery_methods: vec![],
            };
            for requested in [
                Requested::Sell(amount.round_dp_with_strategy(ds, RoundingStrategy::ToZero)),
                Requested::Buy(amount.round_dp_with_strategy(db, RoundingStrategy::ToZero)),
            ] {
                if matches!(requested, Requested::Sell(a) | Requested::Buy(a) if a.is_zero()) {
                    continue;
                }
                match price(&inputs(&pair, requested, None, ds, db)) {
                    Ok(p) => assert_ap_accepts(&p, requested, ds, db),
                    Err(PricingError::TooSmall | PricingError::TooLarge) => {}
                }
            }
        }
    }
}
