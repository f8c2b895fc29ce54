use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::Arc;

use chrono::Duration;
use mooring_domain::customer::{CustomerTypes, ReviewMode};
use mooring_domain::quote::{
    DeliveryFee, FeeSchedule, FeeSchedules, PairPricing, Pricing, QuoteId, QuoteKind,
    QuoteLifetime, Requested,
};
use mooring_domain::{AssetCatalog, AssetId, AssetInfo, Memo, StellarAccount};
use mooring_ports::Clock;
use mooring_usecases::{
    CustomerUpdate, FeeAmount, FeeRequest, FeeService, KycService, QuoteError, QuoteService,
    QuoteServiceParts, RateRequest,
};
use rust_decimal::Decimal;

use crate::fakes::{FakeKycStore, FakeQuoteStore, FakeRates, TestClock};

pub const USDC: &str = "stellar:USDC:GBBD47IF6LWK7P7MDEVSCWR7DPUWV3NY3DTQEVFL4NAT4AQH3ZLLFLA5";

pub fn d(s: &str) -> Decimal {
    Decimal::from_str(s).expect("decimal")
}

fn asset(s: &str) -> AssetId {
    AssetId::parse(s).expect("asset")
}

fn catalog() -> AssetCatalog {
    let info = |id: &str, decimals| AssetInfo {
        id: asset(id),
        significant_decimals: decimals,
        sep31_sender_types: vec![],
        sep31_receiver_types: vec![],
    };
    AssetCatalog::new([
        info(USDC, 2),
        info("iso4217:BRL", 2),
        info("iso4217:MXN", 2),
    ])
}

pub struct World {
    pub quotes: QuoteService,
    pub rates: Arc<FakeRates>,
    pub clock: Arc<TestClock>,
}

pub fn world(liquidity: &[(&str, &str)]) -> World {
    let pair = PairPricing {
        sell_asset: asset(USDC),
        buy_asset: asset("iso4217:BRL"),
        price: Some(d("0.18")),
        markup_bps: 50,
        fee_fixed: d("1.00"),
        fee_percent: d("0.5"),
        delivery_methods: vec![
            DeliveryFee {
                name: "PIX".into(),
                fee_fixed: d("0.10"),
            },
            DeliveryFee {
                name: "WIRE".into(),
                fee_fixed: d("5.00"),
            },
        ],
    };
    let rates = Arc::new(FakeRates::default());
    rates
        .prices
        .lock()
        .expect("lock")
        .insert((asset(USDC), asset("iso4217:BRL")), d("0.18"));
    let clock = Arc::new(TestClock::default());
    let quotes = QuoteService::new(QuoteServiceParts {
        pricing: Pricing::new(vec![pair], [("GVIP".to_owned(), 10)].into()).expect("pricing"),
        assets: catalog(),
        rates: rates.clone(),
        store: Arc::new(FakeQuoteStore::default()),
        lifetime: QuoteLifetime {
            firm_ttl: Duration::seconds(300),
            max_ttl: Duration::seconds(86_400),
        },
        liquidity: liquidity.iter().map(|(a, l)| (asset(a), d(l))).collect(),
        clock: clock.clone(),
    });
    World {
        quotes,
        rates,
        clock,
    }
}

pub fn request(kind: QuoteKind, requested: Requested) -> RateRequest {
    RateRequest {
        kind,
        sell_asset: asset(USDC),
        buy_asset: asset("iso4217:BRL"),
        requested,
        sell_delivery_method: None,
        buy_delivery_method: Some("PIX".into()),
        country_code: Some("BRA".into()),
        expire_after: None,
        client_id: None,
    }
}

#[tokio::test]
async fn indicative_quotes_have_no_id_nor_expiry() {
    let w = world(&[]);
    let view = w
        .quotes
        .rate(request(QuoteKind::Indicative, Requested::Sell(d("100"))))
        .await
        .expect("priced");
    assert_eq!(view.id, None);
    assert_eq!(view.expires_at, None);
    assert_eq!(view.priced.sell_amount, d("100"));
    assert_eq!(view.priced.fee.total, d("1.60"));
    assert_eq!(
        w.quotes.list(10).await.expect("list").len(),
        0,
        "indicative quotes are not stored"
    );
}

#[tokio::test]
async fn firm_quotes_are_stored_with_an_expiry() {
    let w = world(&[]);
    let view = w
        .quotes
        .rate(request(QuoteKind::Firm, Requested::Buy(d("500"))))
        .await
        .expect("priced");
    let id = view.id.clone().expect("an id");
    assert_eq!(
        view.expires_at,
        Some(w.clock.now() + Duration::seconds(300))
    );
    let stored = w.quotes.get(&id).await.expect("stored");
    // What was stored, by value: 500 BRL at 0.18 marked up 0.5 % (0.1809)
    // is 90.45, plus 1.00 + 0.10 (PIX) fixed, grossed up for the 0.5 % fee
    // to 92.02 USDC sent, whose fees are 1.10 + 0.47.
    assert_eq!(stored.id, id);
    assert_eq!(stored.priced.buy_amount, d("500"));
    assert_eq!(stored.priced.sell_amount, d("92.02"));
    assert_eq!(stored.priced.fee.total, d("1.57"));
    assert_eq!(Some(stored.expires_at), view.expires_at);
    assert_eq!(stored.used_by, None);
    assert_eq!(stored.buy_delivery_method.as_deref(), Some("PIX"));
    let mut later = request(QuoteKind::Firm, Requested::Buy(d("500")));
    later.expire_after = Some(w.clock.now() + Duration::hours(2));
    assert_eq!(
        w.quotes.rate(later).await.expect("priced").expires_at,
        Some(w.clock.now() + Duration::hours(2))
    );
    let mut too_far = request(QuoteKind::Firm, Requested::Buy(d("500")));
    too_far.expire_after = Some(w.clock.now() + Duration::days(400));
    assert!(
        matches!(w.quotes.rate(too_far).await, Err(QuoteError::BadRequest(m)) if m.contains("too far"))
    );
    assert!(matches!(
        w.quotes.get(&QuoteId::generate()).await,
        Err(QuoteError::NotFound)
    ));
}

#[tokio::test]
async fn bad_requests_and_unsupported_pairs() {
    let w = world(&[]);
    for amount in ["0", "-1", "100.001", "1000000000000000"] {
        let r = request(QuoteKind::Indicative, Requested::Sell(d(amount)));
        assert!(
            matches!(w.quotes.rate(r).await, Err(QuoteError::BadRequest(_))),
            "{amount}"
        );
    }
    let mut both = request(QuoteKind::Indicative, Requested::Sell(d("100")));
    both.sell_delivery_method = Some("PIX".into());
    assert!(matches!(
        w.quotes.rate(both).await,
        Err(QuoteError::BadRequest(_))
    ));
    let mut unknown = request(QuoteKind::Indicative, Requested::Sell(d("100")));
    unknown.buy_delivery_method = Some("CARRIER_PIGEON".into());
    assert!(
        matches!(w.quotes.rate(unknown).await, Err(QuoteError::BadRequest(m)) if m.contains("CARRIER_PIGEON"))
    );
    let mut pair = request(QuoteKind::Indicative, Requested::Sell(d("100")));
    pair.buy_asset = asset("iso4217:MXN");
    assert!(
        matches!(w.quotes.rate(pair).await, Err(QuoteError::Unprocessable(m)) if m.contains("not supported"))
    );
    let tiny = request(QuoteKind::Indicative, Requested::Sell(d("1.00")));
    assert!(matches!(
        w.quotes.rate(tiny).await,
        Err(QuoteError::Unprocessable(_))
    ));
}

#[tokio::test]
async fn a_client_markup_replaces_the_pairs() {
    let w = world(&[]);
    let mut vip = request(QuoteKind::Indicative, Requested::Sell(d("100")));
    vip.client_id = Some("GVIP".into());
    let vip = w.quotes.rate(vip).await.expect("priced");
    let anyone = w
        .quotes
        .rate(request(QuoteKind::Indicative, Requested::Sell(d("100"))))
        .await
        .expect("priced");
    assert!(
        vip.priced.buy_amount > anyone.priced.buy_amount,
        "10 bps beats 50 bps"
    );
}

#[tokio::test]
async fn no_fresh_price_is_unavailable() {
    let w = world(&[]);
    *w.rates.stale.lock().expect("lock") = true;
    let r = w
        .quotes
        .rate(request(QuoteKind::Indicative, Requested::Sell(d("100"))))
        .await;
    assert!(matches!(r, Err(QuoteError::Unavailable(_))), "{r:?}");
    *w.rates.stale.lock().expect("lock") = false;
    w.rates.prices.lock().expect("lock").clear();
    let r = w
        .quotes
        .rate(request(QuoteKind::Indicative, Requested::Sell(d("100"))))
        .await;
    assert!(matches!(r, Err(QuoteError::Unavailable(_))), "{r:?}");
}

#[tokio::test]
async fn firm_quotes_hold_liquidity_and_are_single_use() {
    let w = world(&[("iso4217:BRL", "1000")]);
    let first = w
        .quotes
        .rate(request(QuoteKind::Firm, Requested::Buy(d("600"))))
        .await
        .expect("fits");
    let refused = w
        .quotes
        .rate(request(QuoteKind::Firm, Requested::Buy(d("500"))))
        .await;
    assert!(matches!(refused, Err(QuoteError::Unprocessable(m)) if m == "insufficient liquidity"));
    // Indicative quotes reserve nothing and are never refused for liquidity.
    assert!(
        w.quotes
            .rate(request(QuoteKind::Indicative, Requested::Buy(d("5000"))))
            .await
            .is_ok()
    );
    let reservations = w.quotes.reservations().await.expect("reservations");
    assert_eq!(reservations, [(asset("iso4217:BRL"), d("600"), d("1000"))]);
    let id = first.id.expect("id");
    w.quotes.mark_used(&id, "txn-1").await.expect("used");
    assert!(
        matches!(w.quotes.mark_used(&id, "txn-2").await, Err(QuoteError::AlreadyUsed(t)) if t == "txn-1")
    );
    w.quotes
        .rate(request(QuoteKind::Firm, Requested::Buy(d("1000"))))
        .await
        .expect("the used quote freed its liquidity");
}

async fn kyc_with(customers: &[(&str, bool)]) -> (KycService, Vec<String>) {
    let kyc = KycService::new(
        Arc::new(FakeKycStore::default()),
        CustomerTypes::builtin(),
        ReviewMode::Auto,
        mooring_usecases::AuditTrail::new(
            Arc::new(crate::fakes::FakeAuditLog::default()),
            Arc::new(TestClock::default()),
        ),
        Arc::new(TestClock::default()),
    );
    let mut ids = Vec::new();
    for (memo, complete) in customers {
        let mut text = vec![
            ("first_name".to_owned(), "Ann".to_owned()),
            ("last_name".to_owned(), "Lee".to_owned()),
        ];
        if *complete {
            text.push(("email_address".to_owned(), "ann@example.com".to_owned()));
        }
        let view = kyc
            .put(CustomerUpdate {
                account: Some(
                    StellarAccount::parse(
                        "GDJUOFZGW5WYBK4GIETCSSM6MTTIJ4SUMCQITPTLUWMQ6B4UIX2IEX47",
                    )
                    .expect("valid"),
                ),
                memo: Some(Memo::parse(memo, None).expect("memo")),
                customer_type: Some("sep31-sender".into()),
                text,
                ..Default::default()
            })
            .await
            .expect("stored");
        ids.push(view.id.expect("id").to_string());
    }
    (kyc, ids)
}

fn schedules() -> FeeSchedules {
    let usdc = asset(USDC);
    FeeSchedules {
        by_asset: BTreeMap::from([(
            usdc.clone(),
            FeeSchedule {
                fixed: d("0.10"),
                percent: d("2"),
                min: Some(d("0.10")),
                max: Some(d("50")),
            },
        )]),
        by_client: BTreeMap::from([(
            ("GVIP".to_owned(), usdc),
            FeeSchedule {
                fixed: d("0"),
                percent: d("1"),
                min: None,
                max: None,
            },
        )]),
    }
}

#[tokio::test]
async fn fees_need_accepted_sender_and_receiver() {
    let (kyc, ids) = kyc_with(&[("1", true), ("2", true), ("3", false)]).await;
    let fees = FeeService::new(schedules(), catalog(), kyc);
    let request = |sender: &str, receiver: &str, client: Option<&str>| FeeRequest {
        send_asset: asset(USDC),
        receive_asset: asset(USDC),
        amount: FeeAmount::Send(d("100")),
        client_id: client.map(str::to_owned),
        sender_id: sender.to_owned(),
        receiver_id: receiver.to_owned(),
    };
    assert_eq!(
        fees.fee(request(&ids[0], &ids[1], None))
            .await
            .expect("fee"),
        (d("2.10"), asset(USDC))
    );
    assert_eq!(
        fees.fee(request(&ids[0], &ids[1], Some("GVIP")))
            .await
            .expect("fee")
            .0,
        d("1.00")
    );
    let unknown = fees
        .fee(request(
            "8e4a7f0e-5a7c-4a8e-9a37-2f1c3c9d0b11",
            &ids[1],
            None,
        ))
        .await;
    assert!(
        matches!(unknown, Err(QuoteError::Unprocessable(m)) if m.contains("sender") && m.contains("not a known customer"))
    );
    let garbage = fees.fee(request(&ids[0], "nope", None)).await;
    assert!(matches!(garbage, Err(QuoteError::Unprocessable(m)) if m.contains("receiver")));
    let incomplete = fees.fee(request(&ids[0], &ids[2], None)).await;
    assert!(
        matches!(incomplete, Err(QuoteError::Unprocessable(m)) if m.contains("receiver's KYC is NEEDS_INFO"))
    );
    let mut no_schedule = request(&ids[0], &ids[1], None);
    no_schedule.send_asset = asset("iso4217:BRL");
    assert!(
        matches!(fees.fee(no_schedule).await, Err(QuoteError::Unprocessable(m)) if m.contains("no fee schedule"))
    );
    // The percentage is of what is sent: receiving 100 means sending 100 + fee.
    let mut received = request(&ids[0], &ids[1], None);
    received.amount = FeeAmount::Receive(d("100"));
    assert_eq!(
        fees.fee(received).await.expect("fee").0,
        d("2.15"),
        "0.10 + 2% of 102.15, rounded up"
    );
    let mut cross = request(&ids[0], &ids[1], None);
    cross.amount = FeeAmount::Receive(d("100"));
    cross.receive_asset = asset("iso4217:BRL");
    assert!(matches!(
        fees.fee(cross).await,
        Err(QuoteError::Unprocessable(_))
    ));
    let mut uncovered = request(&ids[0], &ids[1], None);
    uncovered.amount = FeeAmount::Send(d("0.10"));
    assert!(
        matches!(fees.fee(uncovered).await, Err(QuoteError::Unprocessable(m)) if m.contains("does not cover"))
    );
    let mut too_precise = request(&ids[0], &ids[1], None);
    too_precise.amount = FeeAmount::Send(d("1.001"));
    assert!(matches!(
        fees.fee(too_precise).await,
        Err(QuoteError::BadRequest(_))
    ));
}
