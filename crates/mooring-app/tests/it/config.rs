//! Configuration layers, and bad configuration named by its key.

use std::collections::HashMap;

use mooring_app::Settings;
use mooring_domain::customer::ReviewMode;
use mooring_store::DatabaseUrl;

use crate::helpers::config_file;

fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn load_err(pairs: &[(&str, &str)]) -> String {
    Settings::load(&env(pairs))
        .expect_err("bad configuration accepted")
        .to_string()
}

#[test]
fn defaults_start_with_no_setup() {
    let s = Settings::load(&HashMap::new()).expect("defaults");
    assert_eq!(s.server.port, 8081);
    assert_eq!(
        s.database.url.clone(),
        DatabaseUrl::Sqlite("data/mooring.db".into())
    );
    assert!(s.database.auto_migrate);
    assert_eq!(s.callback_auth.kind(), "none");
    assert_eq!(s.review_mode, ReviewMode::Auto);
    let types = s.customer_types.clone();
    assert_eq!(
        types.names().collect::<Vec<_>>(),
        ["sep31-receiver", "sep31-sender"]
    );
}

#[test]
fn layers_apply_in_order() {
    let file = config_file(
        "[server]\nport = 9000\n[kyc]\nreview = \"manual\"\n[database]\nurl = \"sqlite://from-file.db\"\n\
         [callback_api]\nauth_type = \"api_key\"\nauth_secret = \"from-file\"\n\
         [kyc.types.org-receiver]\nrequired = [\"first_name\", \"bank_account_number\"]\noptional = [\"birth_date\"]\n",
    );
    let path = file.path().to_str().expect("utf-8 path");
    let s = Settings::load(&env(&[("MOORING_CONFIG", path)])).expect("file layer");
    assert_eq!(s.server.port, 9000);
    assert_eq!(s.review_mode, ReviewMode::Manual);
    assert!(s.customer_types.clone().contains("org-receiver"));
    assert!(
        s.customer_types.clone().contains("sep31-sender"),
        "file types add to the defaults"
    );
    assert_eq!(
        s.database.url.clone(),
        DatabaseUrl::Sqlite("from-file.db".into())
    );

    let s = Settings::load(&env(&[
        ("MOORING_CONFIG", path),
        ("MOORING__SERVER__PORT", "9100"),
        ("MOORING__DATABASE__URL", "sqlite://from-env.db"),
        ("MOORING__CALLBACK_API__AUTH_TYPE", "jwt"),
    ]))
    .err()
    .map(|e| e.to_string());
    // jwt from MOORING__ with the file's 9-byte secret is refused...
    assert!(s.is_some_and(|e| e.contains("SECRET_CALLBACK_API_AUTH_SECRET")));
    // ...and the AP's own names come last.
    let s = Settings::load(&env(&[
        ("MOORING_CONFIG", path),
        ("MOORING__SERVER__PORT", "9100"),
        ("MOORING__DATABASE__URL", "sqlite://from-env.db"),
        ("MOORING__CALLBACK_API__AUTH_TYPE", "jwt"),
        ("DATABASE_URL", "postgres://mooring:pw@db:5432/mooring"),
        ("MOORING__PII__KEY", mooring_testsupport::TEST_PII_KEY),
        ("CALLBACK_API_AUTH_TYPE", "none"),
    ]))
    .expect("all layers");
    assert_eq!(s.server.port, 9100);
    assert!(matches!(s.database.url.clone(), DatabaseUrl::Postgres(_)));
    assert_eq!(s.callback_auth.kind(), "none");
}

#[test]
fn absolute_and_relative_sqlite_paths() {
    let s = Settings::load(&env(&[("DATABASE_URL", "sqlite:///var/lib/mooring/m.db")]))
        .expect("absolute");
    assert_eq!(
        s.database.url.clone(),
        DatabaseUrl::Sqlite("/var/lib/mooring/m.db".into())
    );
    let s =
        Settings::load(&env(&[("MOORING__DATABASE__DATA_DIR", "/srv/mooring")])).expect("data dir");
    assert_eq!(
        s.database.url.clone(),
        DatabaseUrl::Sqlite("/srv/mooring/mooring.db".into())
    );
}

#[test]
fn provider_fields_come_from_the_file_or_the_environment() {
    let settings = Settings::load(&env(&[
        (
            "MOORING__PAYOUT__HTTP__FIELDS__DEFAULT",
            "last_name, bank_account_number",
        ),
        (
            "MOORING__PAYOUT__HTTP__FIELDS__MOBILE",
            "first_name,mobile_money_number",
        ),
    ]))
    .expect("settings");
    let fields = settings.engine.config.provider_fields.clone();
    let names = |m: Option<&str>| fields.for_method(m).iter().cloned().collect::<Vec<_>>();
    assert_eq!(names(None), ["bank_account_number", "last_name"]);
    assert_eq!(names(Some("MOBILE")), ["first_name", "mobile_money_number"]);
    let built_in = Settings::load(&env(&[])).expect("settings");
    assert!(
        built_in
            .engine
            .config
            .provider_fields
            .clone()
            .for_method(Some("SEPA"))
            .contains("bank_number")
    );
}

#[test]
fn bad_configuration_names_the_key() {
    let cases: &[(&[(&str, &str)], &str)] = &[
        (
            &[(
                "MOORING__PAYOUT__HTTP__FIELDS__DEFAULT",
                "first_name,bank_acount",
            )],
            "payout.http.fields.default",
        ),
        (
            &[("MOORING__PAYOUT__HTTP__FIELDS__SEPA", "photo_id_front")],
            "payout.http.fields.sepa",
        ),
        (
            &[("MOORING__RETENTION__EVENTS_DAYS", "0")],
            "retention.events_days",
        ),
        (
            &[("MOORING__RETENTION__INTERVAL_SECONDS", "1")],
            "retention.interval_seconds",
        ),
        (&[("MOORING__SERVER__PORT", "eighty")], "server.port"),
        (&[("MOORING__SERVER__PORT", "70000")], "server.port"),
        (&[("MOORING__SERVER__PROT", "1")], "prot"),
        (
            &[("MOORING__DATABASE__AUTO_MIGRATE", "perhaps")],
            "database.auto_migrate",
        ),
        (&[("DATABASE_URL", "mysql://db/mooring")], "DATABASE_URL"),
        (
            &[("CALLBACK_API_AUTH_TYPE", "basic")],
            "CALLBACK_API_AUTH_TYPE",
        ),
        (
            &[("CALLBACK_API_AUTH_TYPE", "jwt")],
            "SECRET_CALLBACK_API_AUTH_SECRET",
        ),
        (
            &[
                ("CALLBACK_API_AUTH_TYPE", "jwt"),
                ("SECRET_CALLBACK_API_AUTH_SECRET", "short"),
            ],
            "at least 32 bytes",
        ),
        (
            &[("CALLBACK_API_AUTH_TYPE", "api_key")],
            "SECRET_CALLBACK_API_AUTH_SECRET",
        ),
        (&[("MOORING__KYC__REVIEW", "sometimes")], "kyc.review"),
        (
            &[
                ("CALLBACK_API_AUTH_TYPE", "api_key"),
                ("SECRET_CALLBACK_API_AUTH_SECRET", "k"),
                ("CALLBACK_API_AUTH_API_KEY_HTTP_HEADER", "bad header"),
            ],
            "callback_api.api_key_header",
        ),
        (
            &[("MOORING__KYC__DEFAULT_TYPE", "nobody")],
            "kyc.default_type",
        ),
        (
            &[
                ("ASSETS_TYPE", "file"),
                ("ASSETS_VALUE", "/no/such/assets.yaml"),
            ],
            "ASSETS_VALUE",
        ),
        (
            &[("ASSETS_TYPE", "url"), ("ASSETS_VALUE", "http://x")],
            "ASSETS_TYPE",
        ),
        (
            &[("MOORING_CONFIG", "/no/such/mooring.toml")],
            "MOORING_CONFIG",
        ),
        (
            &[("MOORING__SERVER__MULTIPART_LIMIT_BYTES", "0")],
            "server.multipart_limit_bytes",
        ),
    ];
    for (pairs, key) in cases {
        let message = load_err(pairs);
        assert!(
            message.contains(key),
            "{pairs:?}: {message:?} does not name {key}"
        );
    }
    let file = config_file("[kyc.types.org]\nrequired = [\"first_nme\"]\n");
    let message = load_err(&[("MOORING_CONFIG", file.path().to_str().expect("utf-8"))]);
    assert!(
        message.contains("kyc.types.org") && message.contains("first_nme"),
        "{message}"
    );
}

#[test]
fn bad_pricing_configuration_names_the_key() {
    let cases: &[(&str, &str)] = &[
        ("[pricing]\nsource = \"oracle\"\n", "pricing.source"),
        ("[pricing]\nsource = \"http\"\n", "pricing.feed.url"),
        (
            "[quotes]\nfirm_ttl_seconds = 0\nmax_ttl_seconds = 10\n",
            "quotes.firm_ttl_seconds",
        ),
        (
            "[liquidity]\n\"iso4217:BRL\" = \"lots\"\n",
            "liquidity.iso4217:BRL",
        ),
        ("[liquidity]\n\"BRL\" = \"10\"\n", "liquidity.BRL"),
        ("[assets.decimals]\n\"usdc\" = 2\n", "assets.decimals.usdc"),
        (
            "[[pricing.pairs]]\nsell_asset = \"stellar:USDC:GBBD47IF6LWK7P7MDEVSCWR7DPUWV3NY3DTQEVFL4NAT4AQH3ZLLFLA5\"\nbuy_asset = \"iso4217:BRL\"\nprice = \"cheap\"\n",
            "pricing.pairs[0].price",
        ),
        (
            "[[pricing.pairs]]\nsell_asset = \"stellar:USDC:GBBD47IF6LWK7P7MDEVSCWR7DPUWV3NY3DTQEVFL4NAT4AQH3ZLLFLA5\"\nbuy_asset = \"iso4217:BRL\"\n",
            "pricing.pairs[0].price is required",
        ),
        (
            "[[pricing.pairs]]\nsell_asset = \"stellar:USDC:GBBD47IF6LWK7P7MDEVSCWR7DPUWV3NY3DTQEVFL4NAT4AQH3ZLLFLA5\"\nbuy_asset = \"iso4217:JPY\"\nprice = \"1\"\n",
            "pricing.pairs[0].buy_asset",
        ),
        (
            "[[pricing.pairs]]\nsell_asset = \"stellar:USDC:GBBD47IF6LWK7P7MDEVSCWR7DPUWV3NY3DTQEVFL4NAT4AQH3ZLLFLA5\"\nbuy_asset = \"iso4217:BRL\"\nprice = \"1\"\nfee_fixed = \"0.001\"\n",
            "pricing.pairs[0]",
        ),
        (
            "[[fees.schedule]]\nsend_asset = \"iso4217:JPY\"\n",
            "fees.schedule[0].send_asset",
        ),
        (
            "[[fees.clients]]\nsend_asset = \"iso4217:BRL\"\npercent = \"1\"\n",
            "fees.clients[0].client_id",
        ),
    ];
    for (content, key) in cases {
        let file = config_file(content);
        let message = load_err(&[("MOORING_CONFIG", file.path().to_str().expect("utf-8"))]);
        assert!(
            message.contains(key),
            "{content}: {message:?} does not name {key}"
        );
    }
}

#[test]
fn any_positive_firm_ttl_is_accepted() {
    let file = config_file("[quotes]\nfirm_ttl_seconds = 100000\nmax_ttl_seconds = 86400\n");
    let s = Settings::load(&env(&[(
        "MOORING_CONFIG",
        file.path().to_str().expect("utf-8"),
    )]))
    .expect("loads");
    assert_eq!(s.quotes.lifetime.firm_ttl.num_seconds(), 100_000);
}

#[test]
fn a_configured_pair_list_replaces_the_default_one() {
    let file = config_file(
        "[[pricing.pairs]]\nsell_asset = \"stellar:USDC:GBBD47IF6LWK7P7MDEVSCWR7DPUWV3NY3DTQEVFL4NAT4AQH3ZLLFLA5\"\nbuy_asset = \"iso4217:BRL\"\nprice = \"0.2\"\n",
    );
    let s = Settings::load(&env(&[(
        "MOORING_CONFIG",
        file.path().to_str().expect("utf-8"),
    )]))
    .expect("loads");
    let setup = s.quotes;
    assert_eq!(setup.pricing.pairs().len(), 1);
    assert_eq!(
        setup.pricing.pairs()[0]
            .price
            .map(|p| p.to_string())
            .as_deref(),
        Some("0.2")
    );
}

#[test]
fn secrets_are_not_echoed_in_errors() {
    let message = load_err(&[
        ("CALLBACK_API_AUTH_TYPE", "jwt"),
        ("SECRET_CALLBACK_API_AUTH_SECRET", "tiny-secret"),
    ]);
    assert!(!message.contains("tiny-secret"), "{message}");
    let message = load_err(&[("DATABASE_URL", "mysql://root:hunter2@db/mooring")]);
    assert!(!message.contains("hunter2"), "{message}");
}

#[test]
fn the_ap_assets_file_adds_its_types() {
    let assets = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/ap-v2.1.0_4c793164dc_service-runner-assets.yaml"
    );
    let s =
        Settings::load(&env(&[("ASSETS_TYPE", "file"), ("ASSETS_VALUE", assets)])).expect("assets");
    let types = s.customer_types.clone();
    for t in [
        "sep31-sender",
        "sep31-large-sender",
        "sep31-foreign-sender",
        "sep31-receiver",
    ] {
        assert!(types.contains(t), "{t}");
    }
    assert_eq!(types.default_type().name(), "sep31-sender");
    let catalog = s.assets_file.clone().expect("present").catalog;
    assert!(catalog.iter().any(|a| a.significant_decimals == 4));
    let v4 = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/ap-v4.3.0_e3b99d8906_service-runner-assets.yaml"
    );
    let s = Settings::load(&env(&[("ASSETS_TYPE", "file"), ("ASSETS_VALUE", v4)]))
        .expect("3.x+ format");
    assert_eq!(s.customer_types.clone().names().count(), 2);
}

#[test]
fn the_example_configuration_loads() {
    let example = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../deploy/mooring.example.toml"
    );
    let assets = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/ap-v2.1.0_4c793164dc_service-runner-assets.yaml"
    );
    let s = Settings::load(&env(&[
        ("MOORING_CONFIG", example),
        ("ASSETS_VALUE", assets),
        (
            "SECRET_CALLBACK_API_AUTH_SECRET",
            "an-example-secret-of-32-bytes-or-more",
        ),
        ("DATABASE_URL", "postgres://mooring@db:5432/mooring"),
        ("MOORING__PII__KEY", mooring_testsupport::TEST_PII_KEY),
    ]))
    .expect("deploy/mooring.example.toml is a valid configuration");
    assert_eq!(s.callback_auth.kind(), "jwt");
    assert_eq!(s.review_mode, ReviewMode::Manual);
    assert!(s.customer_types.clone().contains("sep31-business-receiver"));
}

#[test]
fn the_documented_defaults_are_the_real_ones() {
    let doc = include_str!("../../../../docs/configuration.md");
    assert!(
        doc.contains(mooring_app::settings::DEFAULTS),
        "docs/configuration.md must quote default.toml verbatim"
    );
}

#[test]
fn the_pii_key_is_required_on_postgres_and_refused_when_malformed() {
    let e = load_err(&[("DATABASE_URL", "postgres://mooring@db:5432/mooring")]);
    assert!(
        e.contains("pii.key (MOORING__PII__KEY) is required on PostgreSQL"),
        "{e}"
    );
    for bad in ["short", "c2VjcmV0LWJ1dC1ub3QtMzItYnl0ZXM="] {
        let e = load_err(&[("MOORING__PII__KEY", bad)]);
        assert!(
            e.contains("pii.key is not the standard base64 of 32 bytes"),
            "{e}"
        );
        assert!(!e.contains(bad), "the value is not echoed: {e}");
    }
    let e = load_err(&[
        ("MOORING__PII__KEY", mooring_testsupport::TEST_PII_KEY),
        ("MOORING__PII__PREVIOUS_KEYS", "x"),
    ]);
    assert!(e.contains("pii.previous_keys"), "{e}");
    // SQLite without a key: accepted (a key file is made at start).
    Settings::load(&env(&[])).expect("zero set-up");
}

#[test]
fn with_callback_auth_off_the_default_bind_is_loopback() {
    let s = Settings::load(&env(&[])).expect("defaults");
    assert_eq!(
        (s.server.host.clone(), s.server.loopback_only),
        ("127.0.0.1".to_owned(), true)
    );
    let secret = "a-callback-secret-of-32-bytes-or-more";
    let s = Settings::load(&env(&[
        ("CALLBACK_API_AUTH_TYPE", "jwt"),
        ("SECRET_CALLBACK_API_AUTH_SECRET", secret),
    ]))
    .expect("jwt");
    assert_eq!(
        (s.server.host.clone(), s.server.loopback_only),
        ("0.0.0.0".to_owned(), false)
    );
    let s = Settings::load(&env(&[("MOORING__SERVER__HOST", "0.0.0.0")])).expect("explicit");
    assert_eq!(
        (s.server.host.clone(), s.server.loopback_only),
        ("0.0.0.0".to_owned(), false)
    );
}

#[test]
fn a_wrong_kind_is_refused_by_its_key_with_the_names_it_takes() {
    let cases: &[(&str, &str, &str)] = &[
        ("MOORING__PAYOUT__RAIL", "wire", "payout.rail"),
        ("MOORING__CUSTODIAN__TYPE", "bank", "custodian.type"),
        (
            "MOORING__CUSTODIAN__MEMO_TYPE",
            "text",
            "custodian.memo_type",
        ),
        ("MOORING__PLATFORM__API", "grpc", "platform.api"),
        ("MOORING__PRICING__SOURCE", "oracle", "pricing.source"),
        ("MOORING__LOG__FORMAT", "xml", "log.format"),
        ("PLATFORM_API_AUTH_TYPE", "basic", "PLATFORM_API_AUTH_TYPE"),
    ];
    for (name, value, key) in cases {
        let message = load_err(&[(name, value)]);
        assert!(
            message.contains(key) && message.contains(value),
            "{name}={value}: {message:?} does not name {key} and the value"
        );
        assert!(
            message.contains("expected"),
            "{name}={value}: {message:?} does not say what is expected"
        );
    }
    // Auth types are read in any case, as the AP reads them.
    let s = Settings::load(&env(&[
        ("CALLBACK_API_AUTH_TYPE", "API_KEY"),
        ("SECRET_CALLBACK_API_AUTH_SECRET", "a-key"),
    ]))
    .expect("upper case auth type");
    assert_eq!(s.callback_auth.kind(), "api_key");
    // A name read in any case is refused as the operator wrote it.
    let message = load_err(&[("PLATFORM_API_AUTH_TYPE", "Basic")]);
    assert!(message.contains("\"Basic\""), "{message:?}");
}

#[test]
fn the_memo_type_is_read_only_for_the_anchors_own_custody() {
    // Another custodian chooses its own memos: the key is not its concern,
    // as before the settings were typed.
    let s = Settings::load(&env(&[
        ("MOORING__CUSTODIAN__TYPE", "http"),
        (
            "MOORING__CUSTODIAN__HTTP__URL",
            "http://127.0.0.1:9/custodian",
        ),
        ("MOORING__CUSTODIAN__MEMO_TYPE", "text"),
    ]))
    .expect("an http custodian ignores memo_type");
    assert!(matches!(
        s.custodian,
        mooring_app::settings::CustodianSetting::Http { .. }
    ));
}

#[test]
fn amounts_are_read_exactly_even_when_written_as_toml_numbers() {
    let file = config_file(
        "[[pricing.pairs]]\nsell_asset = \"stellar:USDC:GBBD47IF6LWK7P7MDEVSCWR7DPUWV3NY3DTQEVFL4NAT4AQH3ZLLFLA5\"\n\
         buy_asset = \"iso4217:BRL\"\nprice = 5.1\nfee_fixed = 0.1\nfee_percent = \"0.5\"\n\
         [liquidity]\n\"iso4217:BRL\" = \"1000000.01\"\n",
    );
    let s = Settings::load(&env(&[(
        "MOORING_CONFIG",
        file.path().to_str().expect("utf-8"),
    )]))
    .expect("loads");
    let pair = &s.raw.pricing.pairs[0];
    assert_eq!(pair.price.map(|p| p.to_string()).as_deref(), Some("5.1"));
    assert_eq!(pair.fee_fixed.to_string(), "0.1");
    assert_eq!(pair.fee_percent.to_string(), "0.5");
    let brl = mooring_domain::AssetId::parse("iso4217:BRL").expect("valid");
    assert_eq!(
        s.quotes
            .liquidity
            .get(&brl)
            .map(ToString::to_string)
            .as_deref(),
        Some("1000000.01")
    );
}

#[test]
fn a_toml_number_that_a_float_may_have_rounded_is_refused() {
    // 5.123456789012345678 has 19 significant digits: as a TOML number it
    // arrives as the float 5.123456789012345, not what was written.
    let pair = "[[pricing.pairs]]\nsell_asset = \"stellar:USDC:GBBD47IF6LWK7P7MDEVSCWR7DPUWV3NY3DTQEVFL4NAT4AQH3ZLLFLA5\"\n\
         buy_asset = \"iso4217:BRL\"\nfee_fixed = 0.1\nprice = ";
    let file = config_file(&format!("{pair}5.123456789012345678\n"));
    let message = load_err(&[("MOORING_CONFIG", file.path().to_str().expect("utf-8"))]);
    assert!(
        message.contains("price") && message.contains("write it as a string"),
        "{message:?}"
    );
    // Quoted, it is read exactly.
    let file = config_file(&format!("{pair}\"5.123456789012345678\"\n"));
    let s = Settings::load(&env(&[(
        "MOORING_CONFIG",
        file.path().to_str().expect("utf-8"),
    )]))
    .expect("loads");
    assert_eq!(
        s.raw.pricing.pairs[0]
            .price
            .map(|p| p.to_string())
            .as_deref(),
        Some("5.123456789012345678")
    );
}

#[test]
fn the_engine_owner_comes_from_the_environment_passed_in() {
    let s = Settings::load(&env(&[("HOSTNAME", "replica-7")])).expect("loads");
    assert!(
        s.engine.config.owner.starts_with("replica-7-"),
        "{}",
        s.engine.config.owner
    );
    let s = Settings::load(&env(&[])).expect("loads");
    assert!(
        s.engine.config.owner.starts_with("mooring-"),
        "no HOSTNAME in the environment given: {}",
        s.engine.config.owner
    );
}
