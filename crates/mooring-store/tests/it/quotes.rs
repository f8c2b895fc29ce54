//! The quote store contract, on both backends: reservations, the race for
//! the last liquidity, single use.

use std::str::FromStr;
use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use mooring_domain::AssetId;
use mooring_domain::quote::{Fee, FeeDetail, Priced, Quote, QuoteId};
use mooring_ports::{QuoteStore, QuoteStoreError};
use mooring_testsupport::{TestDb, on_both_backends};
use rust_decimal::Decimal;

use crate::migrated_store;

fn d(s: &str) -> Decimal {
    Decimal::from_str(s).expect("decimal")
}

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 24, 12, 0, 0)
        .single()
        .expect("valid")
}

fn brl() -> AssetId {
    AssetId::parse("iso4217:BRL").expect("valid")
}

fn quote(buy_amount: &str, expires_in_seconds: i64) -> Quote {
    let usdc =
        AssetId::parse("stellar:USDC:GBBD47IF6LWK7P7MDEVSCWR7DPUWV3NY3DTQEVFL4NAT4AQH3ZLLFLA5")
            .expect("valid");
    Quote {
        id: QuoteId::generate(),
        sell_asset: usdc.clone(),
        buy_asset: brl(),
        priced: Priced {
            price: d("0.1809000000000000000001"),
            sell_amount: d("100.00"),
            buy_amount: d(buy_amount),
            fee: Fee {
                total: d("1.60"),
                asset: usdc,
                details: vec![
                    FeeDetail {
                        name: "Service fee".into(),
                        description: None,
                        amount: d("1.00"),
                    },
                    FeeDetail {
                        name: "Percentage fee".into(),
                        description: Some("0.5% of the sell amount".into()),
                        amount: d("0.50"),
                    },
                    FeeDetail {
                        name: "Delivery fee (PIX)".into(),
                        description: Some("PIX".into()),
                        amount: d("0.10"),
                    },
                ],
            },
        },
        sell_delivery_method: None,
        buy_delivery_method: Some("PIX".into()),
        country_code: Some("BRA".into()),
        client_id: Some("GDJUOFZGW5WYBK4GIETCSSM6MTTIJ4SUMCQITPTLUWMQ6B4UIX2IEX47".into()),
        created_at: now(),
        expires_at: now() + Duration::seconds(expires_in_seconds),
        used_by: None,
        used_at: None,
    }
}

async fn firm_quotes_round_trip_exactly(db: TestDb) {
    let store = migrated_store(&db).await;
    let q = quote("543.94", 300);
    store.create_firm(&q, None, now()).await.expect("stored");
    let got = store.get(&q.id).await.expect("read").expect("found");
    assert_eq!(got, q);
    assert_eq!(
        got.priced.sell_amount.to_string(),
        "100.00",
        "the scale is kept"
    );
    assert_eq!(store.get(&QuoteId::generate()).await.expect("read"), None);
}

async fn reservations_count_only_unexpired_unused_quotes(db: TestDb) {
    let store = migrated_store(&db).await;
    let limit = Some(d("100"));
    store
        .create_firm(&quote("60", 300), limit, now())
        .await
        .expect("fits");
    let refused = store.create_firm(&quote("40.01", 300), limit, now()).await;
    assert!(
        matches!(refused, Err(QuoteStoreError::InsufficientLiquidity)),
        "{refused:?}"
    );
    store
        .create_firm(&quote("40", 300), limit, now())
        .await
        .expect("exactly fills");
    assert_eq!(store.reserved(&brl(), now()).await.expect("sum"), d("100"));
    // Without a limit nothing is refused (and the quote still reserves).
    store
        .create_firm(&quote("5", 300), None, now())
        .await
        .expect("unlimited");
    // Later, once the 300 s quotes expired, the liquidity is free again.
    let later = now() + Duration::seconds(301);
    assert_eq!(
        store.reserved(&brl(), later).await.expect("sum"),
        Decimal::ZERO
    );
    store
        .create_firm(&quote("100", 600), limit, later)
        .await
        .expect("freed by expiry");
}

async fn using_a_quote_frees_its_reservation(db: TestDb) {
    let store = migrated_store(&db).await;
    let limit = Some(d("100"));
    let q = quote("100", 300);
    store.create_firm(&q, limit, now()).await.expect("fits");
    assert!(matches!(
        store.create_firm(&quote("1", 300), limit, now()).await,
        Err(QuoteStoreError::InsufficientLiquidity)
    ));
    store.mark_used(&q.id, "txn-1", now()).await.expect("used");
    store
        .create_firm(&quote("100", 300), limit, now())
        .await
        .expect("freed by use");
}

async fn quotes_are_single_use(db: TestDb) {
    let store = migrated_store(&db).await;
    let q = quote("10", 300);
    store.create_firm(&q, None, now()).await.expect("stored");
    let used = store.mark_used(&q.id, "txn-1", now()).await.expect("used");
    assert_eq!(used.used_by.as_deref(), Some("txn-1"));
    assert_eq!(used.used_at, Some(now()));
    // A retry by the same transaction is fine; another transaction is not.
    assert_eq!(
        store
            .mark_used(&q.id, "txn-1", now())
            .await
            .expect("retry")
            .used_by
            .as_deref(),
        Some("txn-1")
    );
    let other = store.mark_used(&q.id, "txn-2", now()).await;
    assert!(
        matches!(other, Err(QuoteStoreError::AlreadyUsed { ref transaction_id }) if transaction_id == "txn-1"),
        "{other:?}"
    );
    let expired = quote("10", 60);
    store
        .create_firm(&expired, None, now())
        .await
        .expect("stored");
    let late = store
        .mark_used(&expired.id, "txn-3", now() + Duration::seconds(60))
        .await;
    assert!(matches!(late, Err(QuoteStoreError::Expired)), "{late:?}");
    assert!(matches!(
        store.mark_used(&QuoteId::generate(), "txn-4", now()).await,
        Err(QuoteStoreError::NotFound)
    ));
}

async fn racing_for_the_last_liquidity_exactly_the_ones_that_fit_win(db: TestDb) {
    let store = Arc::new(migrated_store(&db).await);
    let limit = Some(d("100"));
    store
        .create_firm(&quote("95", 300), limit, now())
        .await
        .expect("fits");
    // 5 left; 16 requests of 5 race for it.
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.create_firm(&quote("5", 300), limit, now()).await })
        })
        .collect();
    let mut won = 0;
    for t in tasks {
        match t.await.expect("task") {
            Ok(()) => won += 1,
            Err(QuoteStoreError::InsufficientLiquidity) => {}
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert_eq!(won, 1, "exactly one request may take the last liquidity");
    assert_eq!(store.reserved(&brl(), now()).await.expect("sum"), d("100"));
    // Many small ones: exactly as many as fit.
    let later = now() + Duration::seconds(1000);
    let tasks: Vec<_> = (0..24)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut q = quote("10", 300);
                q.created_at = later;
                q.expires_at = later + Duration::seconds(300);
                store.create_firm(&q, limit, later).await.is_ok()
            })
        })
        .collect();
    let mut won = 0;
    for t in tasks {
        won += usize::from(t.await.expect("task"));
    }
    assert_eq!(won, 10);
}

async fn list_is_newest_first(db: TestDb) {
    let store = migrated_store(&db).await;
    let mut ids = Vec::new();
    for i in 0..3 {
        let mut q = quote("1", 300);
        q.created_at = now() + Duration::seconds(i);
        store.create_firm(&q, None, now()).await.expect("stored");
        ids.push(q.id);
    }
    let listed: Vec<_> = store
        .list(2)
        .await
        .expect("list")
        .into_iter()
        .map(|q| q.id)
        .collect();
    assert_eq!(listed, [ids[2].clone(), ids[1].clone()]);
}

/// A quote expiring at `at`, made at `made`.
fn quote_until(buy_amount: &str, made: DateTime<Utc>, at: DateTime<Utc>) -> Quote {
    let mut q = quote(buy_amount, 0);
    q.created_at = made;
    q.expires_at = at;
    q
}

/// The liquidity store sums whole seconds: a hold must still end exactly
/// at its quote's expiry, inside a second, whether the quote was made
/// under a cap or not.
async fn a_hold_ends_exactly_at_its_quotes_expiry(db: TestDb) {
    let store = migrated_store(&db).await;
    let at = |ms: i64| now() + Duration::milliseconds(ms);
    let limit = Some(d("1000"));
    for (amount, ends, capped) in [
        ("1", 250, true),
        ("2", 750, true),
        ("4", 1000, true),
        ("8", 1500, false),
        ("16", 2001, true),
    ] {
        let cap = if capped { limit } else { None };
        store
            .create_firm(&quote_until(amount, now(), at(ends)), cap, now())
            .await
            .expect("fits");
    }
    for (ms, held) in [
        (0, "31"),
        (249, "31"),
        (250, "30"),
        (500, "30"),
        (750, "28"),
        (999, "28"),
        (1000, "24"),
        (1499, "24"),
        (1500, "16"),
        (2000, "16"),
        (2001, "0"),
    ] {
        assert_eq!(
            store.reserved(&brl(), at(ms)).await.expect("sum"),
            d(held),
            "at +{ms} ms"
        );
    }
}

/// Any sequence of capped and uncapped quotes, uses and readings agrees
/// with the plain sum of the live quotes, and a cap refuses exactly what
/// that sum says does not fit.
async fn reservations_agree_with_the_live_quotes_for_any_sequence(db: TestDb) {
    let store = migrated_store(&db).await;
    let limit = d("60");
    // xorshift: repeatable, no dependency.
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = |n: u64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % n
    };
    struct Live {
        id: QuoteId,
        amount: Decimal,
        expires: DateTime<Utc>,
        used: bool,
    }
    let mut quotes: Vec<Live> = Vec::new();
    let held = |quotes: &[Live], t: DateTime<Utc>| -> Decimal {
        quotes
            .iter()
            .filter(|q| !q.used && q.expires > t)
            .map(|q| q.amount)
            .sum()
    };
    let mut t = now();
    for step in 0..120 {
        t += Duration::microseconds(i64::try_from(next(900_000)).expect("small"));
        match next(4) {
            0 | 1 => {
                let amount = Decimal::new(i64::try_from(next(2000)).expect("small") + 1, 2);
                let expires =
                    t + Duration::microseconds(i64::try_from(next(3_000_000)).expect("small"));
                let q = quote_until(&amount.to_string(), t, expires);
                let capped = next(3) != 0;
                let got = store.create_firm(&q, capped.then_some(limit), t).await;
                let fits = held(&quotes, t) + amount <= limit;
                match got {
                    Ok(()) => assert!(!capped || fits, "step {step}: took what does not fit"),
                    Err(QuoteStoreError::InsufficientLiquidity) => {
                        assert!(capped && !fits, "step {step}: refused what fits");
                        continue;
                    }
                    Err(e) => panic!("step {step}: {e:?}"),
                }
                quotes.push(Live {
                    id: q.id,
                    amount,
                    expires,
                    used: false,
                });
            }
            2 => {
                let live: Vec<usize> = (0..quotes.len())
                    .filter(|&i| !quotes[i].used && quotes[i].expires > t)
                    .collect();
                if let Some(&i) =
                    live.get(usize::try_from(next(live.len().max(1) as u64)).expect("small"))
                {
                    store
                        .mark_used(&quotes[i].id, &format!("txn-{step}"), t)
                        .await
                        .expect("live quote used");
                    quotes[i].used = true;
                }
            }
            _ => {
                let at = t + Duration::microseconds(i64::try_from(next(2_000_000)).expect("small"));
                assert_eq!(
                    store.reserved(&brl(), at).await.expect("sum"),
                    held(&quotes, at),
                    "step {step}"
                );
            }
        }
        assert_eq!(
            store.reserved(&brl(), t).await.expect("sum"),
            held(&quotes, t),
            "step {step}"
        );
    }
}

on_both_backends!(
    a_hold_ends_exactly_at_its_quotes_expiry,
    reservations_agree_with_the_live_quotes_for_any_sequence,
    firm_quotes_round_trip_exactly,
    reservations_count_only_unexpired_unused_quotes,
    using_a_quote_frees_its_reservation,
    quotes_are_single_use,
    racing_for_the_last_liquidity_exactly_the_ones_that_fit_win,
    list_is_newest_first,
);
