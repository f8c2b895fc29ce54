//! GET /rate and GET /fee through the real server, on both backends.

use std::str::FromStr;

use chrono::{DateTime, Duration, Utc};
use mooring_testsupport::{TestDb, on_both_backends};
use rust_decimal::Decimal;
use serde_json::{Value, json};

use crate::helpers::{
    ACCOUNT, TestApp, assert_error, config_file, sender, spawn_app, spawn_app_with, status_and_json,
};

const USDC: &str = "stellar:USDC:GBBD47IF6LWK7P7MDEVSCWR7DPUWV3NY3DTQEVFL4NAT4AQH3ZLLFLA5";

fn d(v: &Value) -> Decimal {
    Decimal::from_str(v.as_str().unwrap_or_else(|| panic!("not a string: {v}"))).expect("decimal")
}

impl TestApp {
    async fn rate(&self, query: &[(&str, &str)]) -> (u16, Value) {
        let response = self
            .client
            .get(self.url("/rate"))
            .query(query)
            .send()
            .await
            .expect("sent");
        status_and_json(response).await
    }

    async fn fee(&self, query: &[(&str, &str)]) -> (u16, Value) {
        let response = self
            .client
            .get(self.url("/fee"))
            .query(query)
            .send()
            .await
            .expect("sent");
        status_and_json(response).await
    }
}

/// The AP's checks on a rate answer (2 decimals for every default asset).
fn assert_ap_accepts(rate: &Value, firm: bool) {
    let sell = d(&rate["sell_amount"]);
    let buy = d(&rate["buy_amount"]);
    let price = d(&rate["price"]);
    let total = d(&rate["fee"]["total"]);
    assert!(
        sell > Decimal::ZERO && buy > Decimal::ZERO && price > Decimal::ZERO,
        "{rate}"
    );
    assert!(
        sell.normalize().scale() <= 2
            && buy.normalize().scale() <= 2
            && total.normalize().scale() <= 2,
        "{rate}"
    );
    assert_eq!(rate["fee"]["asset"], USDC);
    let details = rate["fee"]["details"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let sum: Decimal = details.iter().map(|f| d(&f["amount"])).sum();
    assert_eq!(sum, total, "{rate}");
    assert!(
        details
            .iter()
            .all(|f| d(&f["amount"]) > Decimal::ZERO && f["name"].is_string())
    );
    assert!(
        (sell - (price * buy + total)).abs() < Decimal::new(1, 2),
        "{rate}"
    );
    assert_eq!(rate.get("id").is_some(), firm);
    assert_eq!(rate.get("expires_at").is_some(), firm);
}

fn expires_at(rate: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(rate["expires_at"].as_str().expect("expires_at"))
        .expect("ISO 8601")
        .with_timezone(&Utc)
}

async fn indicative_and_firm_rates(db: TestDb) {
    let app = spawn_app(db).await;
    let (status, body) = app
        .rate(&[
            ("type", "indicative"),
            ("sell_asset", USDC),
            ("buy_asset", "iso4217:BRL"),
            ("sell_amount", "100.00"),
            ("buy_delivery_method", "PIX"),
            ("country_code", "BRA"),
        ])
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["rate"]["sell_amount"], "100.00",
        "the requested amount is echoed exactly"
    );
    assert_ap_accepts(&body["rate"], false);
    assert_eq!(
        body["rate"]["fee"]["details"].as_array().map(Vec::len),
        Some(3)
    );

    let before = Utc::now();
    let (status, firm) = app
        .rate(&[
            ("type", "firm"),
            ("sell_asset", USDC),
            ("buy_asset", "iso4217:MXN"),
            ("buy_amount", "1000"),
            ("client_id", ACCOUNT),
        ])
        .await;
    assert_eq!(status, 200, "{firm}");
    assert_ap_accepts(&firm["rate"], true);
    assert_eq!(firm["rate"]["buy_amount"], "1000");
    let expiry = expires_at(&firm["rate"]);
    assert!(
        expiry >= before + Duration::seconds(299) && expiry <= Utc::now() + Duration::seconds(301),
        "{expiry}"
    );
    // AP 2.x may fetch it again by id: the same quote, unchanged.
    let id = firm["rate"]["id"].as_str().expect("id");
    assert_eq!(app.rate(&[("id", id)]).await, (200, firm.clone()));
    assert_error(
        &app.rate(&[("id", "8e4a7f0e-5a7c-4a8e-9a37-2f1c3c9d0b11")])
            .await,
        404,
    );
    assert_error(&app.rate(&[("id", "no-such-quote")]).await, 404);
}

async fn expire_after_is_honoured_clamped_and_bounded(db: TestDb) {
    let app = spawn_app(db).await;
    let base = [
        ("type", "firm"),
        ("sell_asset", USDC),
        ("buy_asset", "iso4217:BRL"),
        ("sell_amount", "50"),
    ];
    let in_two_hours =
        (Utc::now() + Duration::hours(2)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let (status, body) = app
        .rate(&[&base[..], &[("expire_after", in_two_hours.as_str())]].concat())
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["rate"]["expires_at"], in_two_hours.as_str());
    let (status, body) = app
        .rate(&[&base[..], &[("expire_after", "2020-01-01T00:00:00Z")]].concat())
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(
        expires_at(&body["rate"]) > Utc::now() + Duration::seconds(290),
        "a past expire_after counts as now"
    );
    let message = assert_error(
        &app.rate(&[&base[..], &[("expire_after", "9999-12-31T23:59:59Z")]].concat())
            .await,
        422,
    );
    assert!(message.contains("86400"), "{message}");
    assert_error(
        &app.rate(&[&base[..], &[("expire_after", "tomorrow")]].concat())
            .await,
        422,
    );
}

async fn bad_and_unservable_rate_requests_are_422_as_the_ap_specifies(db: TestDb) {
    let app = spawn_app(db).await;
    let ok = [
        ("type", "indicative"),
        ("sell_asset", USDC),
        ("buy_asset", "iso4217:BRL"),
        ("sell_amount", "100"),
    ];
    let with = |k: &'static str, v: &'static str| -> Vec<(&'static str, &'static str)> {
        let mut q: Vec<_> = ok.iter().copied().filter(|(key, _)| *key != k).collect();
        q.push((k, v));
        q
    };
    let without = |k: &str| -> Vec<(&'static str, &'static str)> {
        ok.iter().copied().filter(|(key, _)| *key != k).collect()
    };
    let cases: Vec<(&str, Vec<(&str, &str)>)> = vec![
        ("missing type", without("type")),
        ("unknown type", with("type", "indicative_prices")),
        ("neither amount", without("sell_amount")),
        ("both amounts", [&ok[..], &[("buy_amount", "10")]].concat()),
        ("zero", with("sell_amount", "0")),
        ("negative", with("sell_amount", "-5")),
        ("not a number", with("sell_amount", "ten")),
        ("exponent", with("sell_amount", "1e3")),
        ("too many decimals", with("sell_amount", "100.001")),
        ("too large", with("sell_amount", "99999999999999999")),
        (
            "more digits than can be kept",
            with("sell_amount", "100.00000000000000000000000000001"),
        ),
        ("malformed sell asset", with("sell_asset", "USDC")),
        ("malformed buy asset", with("buy_asset", "iso4217:brl")),
        ("missing asset", without("buy_asset")),
        (
            "unknown delivery method",
            with("buy_delivery_method", "SPEI"),
        ),
        (
            "both delivery methods",
            [
                &ok[..],
                &[
                    ("buy_delivery_method", "PIX"),
                    ("sell_delivery_method", "PIX"),
                ],
            ]
            .concat(),
        ),
        ("bad country", with("country_code", "BR")),
    ];
    for (case, query) in cases {
        let answer = app.rate(&query).await;
        assert_eq!(answer.0, 422, "{case}: {answer:?}");
        assert_error(&answer, 422);
    }
    assert_error(&app.rate(&with("buy_asset", "iso4217:EUR")).await, 422);
    // Understood, but too small to cover the 1.00 fixed fee.
    assert!(assert_error(&app.rate(&with("sell_amount", "1.00")).await, 422).contains("too small"));
}

async fn a_client_markup_applies(db: TestDb) {
    let file = config_file(&format!(
        "[[pricing.clients]]\nclient_id = \"{ACCOUNT}\"\nmarkup_bps = 0\n"
    ));
    let app = spawn_app_with(
        db,
        &[("MOORING_CONFIG", file.path().to_str().expect("utf-8"))],
    )
    .await;
    let query = |client: Option<&'static str>| {
        let mut q = vec![
            ("type", "indicative"),
            ("sell_asset", USDC),
            ("buy_asset", "iso4217:BRL"),
            ("buy_amount", "1000"),
        ];
        q.extend(client.map(|c| ("client_id", c)));
        q
    };
    let anyone = app.rate(&query(None)).await.1;
    let client = app.rate(&query(Some(ACCOUNT))).await.1;
    assert!(
        d(&client["rate"]["sell_amount"]) < d(&anyone["rate"]["sell_amount"]),
        "{client} vs {anyone}"
    );
    assert_ap_accepts(&client["rate"], false);
}

async fn racing_for_the_last_liquidity(db: TestDb) {
    // Asset-keyed maps are set in the file (environment names cannot carry `:`).
    let file = config_file("[liquidity]\n\"iso4217:BRL\" = \"1000\"\n");
    let app = spawn_app_with(
        db,
        &[("MOORING_CONFIG", file.path().to_str().expect("utf-8"))],
    )
    .await;
    let firm = [
        ("type", "firm"),
        ("sell_asset", USDC),
        ("buy_asset", "iso4217:BRL"),
        ("buy_amount", "100"),
    ];
    let answers = futures_util::future::join_all((0..24).map(|_| app.rate(&firm))).await;
    let won = answers.iter().filter(|a| a.0 == 200).count();
    assert_eq!(won, 10, "exactly as many as fit: {answers:?}");
    for lost in answers.iter().filter(|a| a.0 != 200) {
        assert_eq!(assert_error(lost, 422), "insufficient liquidity");
    }
    // Indicative quotes reserve nothing.
    let indicative = [
        ("type", "indicative"),
        ("sell_asset", USDC),
        ("buy_asset", "iso4217:BRL"),
        ("buy_amount", "100"),
    ];
    assert_eq!(app.rate(&indicative).await.0, 200);
}

async fn expired_quotes_free_their_liquidity(db: TestDb) {
    let file = config_file(
        "[quotes]\nfirm_ttl_seconds = 1\nmax_ttl_seconds = 60\n[liquidity]\n\"iso4217:BRL\" = \"100\"\n",
    );
    let app = spawn_app_with(
        db,
        &[("MOORING_CONFIG", file.path().to_str().expect("utf-8"))],
    )
    .await;
    let firm = [
        ("type", "firm"),
        ("sell_asset", USDC),
        ("buy_asset", "iso4217:BRL"),
        ("buy_amount", "100"),
    ];
    let (status, first) = app.rate(&firm).await;
    assert_eq!(status, 200, "{first}");
    assert_error(&app.rate(&firm).await, 422);
    // No background job: once the quote's expiry has passed, its liquidity is free.
    let expiry = expires_at(&first["rate"]);
    let wait =
        (expiry - Utc::now()).to_std().unwrap_or_default() + std::time::Duration::from_millis(50);
    tokio::time::sleep(wait).await;
    assert_eq!(app.rate(&firm).await.0, 200);
}

async fn a_price_feed_that_has_no_price_is_503(db: TestDb) {
    let feed = wiremock::MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::method("GET"))
        .respond_with(wiremock::ResponseTemplate::new(500))
        .mount(&feed)
        .await;
    let url = format!("{}/mid.json", feed.uri());
    let app = spawn_app_with(
        db,
        &[
            ("MOORING__PRICING__SOURCE", "http"),
            ("MOORING__PRICING__FEED__URL", &url),
            ("MOORING__PRICING__FEED__INTERVAL_MS", "50"),
        ],
    )
    .await;
    let query = [
        ("type", "indicative"),
        ("sell_asset", USDC),
        ("buy_asset", "iso4217:BRL"),
        ("sell_amount", "100"),
    ];
    assert_error(&app.rate(&query).await, 503);
    feed.reset().await;
    wiremock::Mock::given(wiremock::matchers::method("GET"))
        .respond_with(wiremock::ResponseTemplate::new(200).set_body_json(
            json!({"prices": [{"sell_asset": USDC, "buy_asset": "iso4217:BRL", "price": "0.2"}]}),
        ))
        .mount(&feed)
        .await;
    // Wait for the next poll.
    let mut answer = app.rate(&query).await;
    for _ in 0..150 {
        if answer.0 == 200 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        answer = app.rate(&query).await;
    }
    assert_eq!(answer.0, 200, "{answer:?}");
    assert_ap_accepts(&answer.1["rate"], false);
}

async fn fees_need_known_accepted_customers(db: TestDb) {
    let app = spawn_app(db).await;
    let sender_id = app.put_customer(&sender("100")).await.1["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let receiver_id = app.put_customer(&sender("101")).await.1["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let mut partial = sender("102");
    partial
        .as_object_mut()
        .expect("object")
        .remove("email_address");
    let incomplete_id = app.put_customer(&partial).await.1["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let query = |s: &str, r: &str, amount: &str| {
        vec![
            ("send_asset", USDC.to_owned()),
            ("receive_asset", USDC.to_owned()),
            ("send_amount", amount.to_owned()),
            ("client_id", ACCOUNT.to_owned()),
            ("sender_id", s.to_owned()),
            ("receiver_id", r.to_owned()),
        ]
    };
    let borrowed =
        |q: &[(&'static str, String)]| q.iter().map(|(k, v)| (*k, v.clone())).collect::<Vec<_>>();
    let call = |q: Vec<(&'static str, String)>| {
        let app = &app;
        async move {
            let pairs: Vec<(&str, &str)> = q.iter().map(|(k, v)| (*k, v.as_str())).collect();
            app.fee(&pairs).await
        }
    };
    let (status, body) = call(query(&sender_id, &receiver_id, "100")).await;
    assert_eq!(
        (status, body),
        (200, json!({"fee": {"amount": "2.10", "asset": USDC}}))
    );
    let unknown = call(query(
        "8e4a7f0e-5a7c-4a8e-9a37-2f1c3c9d0b11",
        &receiver_id,
        "100",
    ))
    .await;
    assert!(assert_error(&unknown, 422).contains("sender"));
    let incomplete = call(query(&sender_id, &incomplete_id, "100")).await;
    let message = assert_error(&incomplete, 422);
    assert!(
        message.contains("receiver") && message.contains("NEEDS_INFO"),
        "{message}"
    );
    assert_error(&call(query(&sender_id, &receiver_id, "100.001")).await, 400);
    assert_error(&call(query(&sender_id, &receiver_id, "abc")).await, 400);
    let mut both = borrowed(&query(&sender_id, &receiver_id, "100"));
    both.push(("receive_amount", "90".to_owned()));
    assert_error(&call(both).await, 400);
    let no_sender: Vec<_> = query(&sender_id, &receiver_id, "100")
        .into_iter()
        .filter(|(k, _)| *k != "sender_id")
        .collect();
    assert_error(&call(no_sender).await, 400);
    let mut brl = query(&sender_id, &receiver_id, "100");
    brl[0].1 = "iso4217:BRL".to_owned();
    assert!(assert_error(&call(brl).await, 422).contains("no fee schedule"));
}

async fn quotes_and_fees_need_callback_auth(db: TestDb) {
    let app = spawn_app_with(
        db,
        &[
            ("CALLBACK_API_AUTH_TYPE", "api_key"),
            ("SECRET_CALLBACK_API_AUTH_SECRET", "k-123"),
        ],
    )
    .await;
    let query = [
        ("type", "indicative"),
        ("sell_asset", USDC),
        ("buy_asset", "iso4217:BRL"),
        ("sell_amount", "100"),
    ];
    assert_error(&app.rate(&query).await, 401);
    assert_error(&app.fee(&[("send_asset", USDC)]).await, 401);
    let ok = app
        .client
        .get(app.url("/rate"))
        .query(&query)
        .header("X-Api-Key", "k-123")
        .send()
        .await
        .expect("sent");
    assert_eq!(ok.status().as_u16(), 200);
}

on_both_backends!(
    indicative_and_firm_rates,
    expire_after_is_honoured_clamped_and_bounded,
    bad_and_unservable_rate_requests_are_422_as_the_ap_specifies,
    a_client_markup_applies,
    racing_for_the_last_liquidity,
    expired_quotes_free_their_liquidity,
    a_price_feed_that_has_no_price_is_503,
    fees_need_known_accepted_customers,
    quotes_and_fees_need_callback_auth,
);
