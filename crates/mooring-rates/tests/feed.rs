//! The HTTP feed against a local HTTP double.

use std::str::FromStr;
use std::time::Duration;

use mooring_domain::AssetId;
use mooring_domain::quote::{PairPricing, Pricing};
use mooring_ports::{RateSource, RateSourceError};
use mooring_rates::{FeedConfig, FeedRates, TableRates};
use rust_decimal::Decimal;
use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const USDC: &str = "stellar:USDC:GBBD47IF6LWK7P7MDEVSCWR7DPUWV3NY3DTQEVFL4NAT4AQH3ZLLFLA5";

fn a(s: &str) -> AssetId {
    AssetId::parse(s).expect("asset")
}

fn d(s: &str) -> Decimal {
    Decimal::from_str(s).expect("decimal")
}

fn config(server: &MockServer, max_age: Duration) -> FeedConfig {
    FeedConfig {
        url: format!("{}/mid.json", server.uri()),
        interval: Duration::from_millis(20),
        max_age,
        timeout: Duration::from_secs(2),
    }
}

async fn serve(server: &MockServer, status: u16, body: serde_json::Value) {
    server.reset().await;
    Mock::given(method("GET"))
        .and(path("/mid.json"))
        .respond_with(ResponseTemplate::new(status).set_body_json(body))
        .mount(server)
        .await;
}

fn prices(brl: &str) -> serde_json::Value {
    json!({"prices": [
        {"sell_asset": USDC, "buy_asset": "iso4217:BRL", "price": brl},
        {"sell_asset": USDC, "buy_asset": "iso4217:MXN", "price": 0.055},
        {"sell_asset": "not-an-asset", "buy_asset": "iso4217:MXN", "price": "1"},
        {"sell_asset": USDC, "buy_asset": "iso4217:EUR", "price": "-1"}
    ]})
}

#[tokio::test]
async fn serves_the_last_good_price_and_refuses_it_when_stale() {
    let server = MockServer::start().await;
    serve(&server, 200, prices("0.18")).await;
    let feed = FeedRates::new(config(&server, Duration::from_secs(60))).expect("client");
    assert!(matches!(
        feed.mid_price(&a(USDC), &a("iso4217:BRL")).await,
        Err(RateSourceError::NoPrice { .. })
    ));
    assert_eq!(
        feed.poll_once().await.expect("polled"),
        2,
        "the two valid entries"
    );
    assert_eq!(
        feed.mid_price(&a(USDC), &a("iso4217:BRL"))
            .await
            .expect("price"),
        d("0.18")
    );
    assert_eq!(
        feed.mid_price(&a(USDC), &a("iso4217:MXN"))
            .await
            .expect("price"),
        d("0.055")
    );
    assert!(matches!(
        feed.mid_price(&a(USDC), &a("iso4217:EUR")).await,
        Err(RateSourceError::NoPrice { .. })
    ));

    // The feed fails, or sends garbage: the last good price stays.
    serve(&server, 500, json!({"error": "down"})).await;
    assert!(feed.poll_once().await.is_err());
    serve(&server, 200, json!({"unexpected": true})).await;
    assert!(feed.poll_once().await.is_err());
    assert_eq!(
        feed.mid_price(&a(USDC), &a("iso4217:BRL"))
            .await
            .expect("price"),
        d("0.18")
    );

    // A new good document replaces it.
    serve(&server, 200, prices("0.19")).await;
    feed.poll_once().await.expect("polled");
    assert_eq!(
        feed.mid_price(&a(USDC), &a("iso4217:BRL"))
            .await
            .expect("price"),
        d("0.19")
    );

    // Once older than max_age, the price is refused.
    tokio::time::pause();
    tokio::time::advance(Duration::from_secs(61)).await;
    let stale = feed.mid_price(&a(USDC), &a("iso4217:BRL")).await;
    assert!(
        matches!(
            stale,
            Err(RateSourceError::Stale {
                age_seconds: 61,
                max_age_seconds: 60,
                ..
            })
        ),
        "{stale:?}"
    );
}

#[tokio::test]
async fn the_background_poller_fetches_on_its_own() {
    let server = MockServer::start().await;
    serve(&server, 200, prices("0.18")).await;
    let feed = FeedRates::start(config(&server, Duration::from_secs(60))).expect("started");
    let mut answer = feed.mid_price(&a(USDC), &a("iso4217:BRL")).await;
    for _ in 0..500 {
        if answer.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        answer = feed.mid_price(&a(USDC), &a("iso4217:BRL")).await;
    }
    assert_eq!(answer.expect("the poller fetched the feed"), d("0.18"));
    serve(&server, 200, prices("0.20")).await;
    let mut updated = false;
    for _ in 0..500 {
        if feed
            .mid_price(&a(USDC), &a("iso4217:BRL"))
            .await
            .is_ok_and(|p| p == d("0.20"))
        {
            updated = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(updated, "the poller keeps polling");
}

#[tokio::test]
async fn the_table_serves_configured_prices() {
    let pair = PairPricing {
        sell_asset: a(USDC),
        buy_asset: a("iso4217:BRL"),
        price: Some(d("0.18")),
        markup_bps: 0,
        fee_fixed: Decimal::ZERO,
        fee_percent: Decimal::ZERO,
        delivery_methods: vec![],
    };
    let table =
        TableRates::from_pricing(&Pricing::new(vec![pair], Default::default()).expect("pricing"));
    assert_eq!(
        table
            .mid_price(&a(USDC), &a("iso4217:BRL"))
            .await
            .expect("price"),
        d("0.18")
    );
    assert!(matches!(
        table.mid_price(&a("iso4217:BRL"), &a(USDC)).await,
        Err(RateSourceError::NoPrice { .. })
    ));
}
