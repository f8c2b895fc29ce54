//! The `mooring` binary: migrate, the back office's customer and quote
//! commands, and refusing to start on bad configuration.

use std::process::{Command, Output};

use mooring_testsupport::{TestDb, on_both_backends};
use serde_json::json;

use crate::helpers::{sender, spawn_app_with};

fn mooring(db: &TestDb, args: &[&str], extra_env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_mooring"));
    command
        .env_clear()
        .env("DATABASE_URL", db.url())
        .env("MOORING__BACKOFFICE__BIND", "127.0.0.1:0")
        .envs(db.pii_env())
        .args(args);
    for (k, v) in extra_env {
        command.env(k, v);
    }
    command.output().expect("mooring runs")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

async fn migrate_then_serve_without_auto_migrate(db: TestDb) {
    // A database nothing has migrated (test databases are migrated copies).
    let db = TestDb::new_empty(db.engine());
    let strict = [
        ("MOORING__DATABASE__AUTO_MIGRATE", "false"),
        ("MOORING__SERVER__PORT", "0"),
        ("MOORING__SERVER__HOST", "127.0.0.1"),
    ];
    // A fresh database and auto_migrate off: serving refuses, naming the fix.
    let refused = tokio::task::block_in_place(|| mooring(&db, &["serve"], &strict));
    assert!(!refused.status.success());
    assert!(
        text(&refused).contains("mooring migrate"),
        "{}",
        text(&refused)
    );
    let migrated = tokio::task::block_in_place(|| mooring(&db, &["migrate"], &[]));
    assert!(migrated.status.success(), "{}", text(&migrated));
    assert!(text(&migrated).contains("up to date"));
    let again = tokio::task::block_in_place(|| mooring(&db, &["migrate"], &[]));
    assert!(again.status.success());
    // Now the server starts without migrating.
    let app = spawn_app_with(db, &[("MOORING__DATABASE__AUTO_MIGRATE", "false")]).await;
    assert_eq!(app.put_customer(&sender("1")).await.0, 200);
}

async fn operators_approve_and_reject_under_manual_review(db: TestDb) {
    let manual = [
        ("MOORING__KYC__REVIEW", "manual"),
        ("MOORING_OPERATOR", "alice"),
    ];
    let app = spawn_app_with(db, &manual).await;
    let put = app.put_customer(&sender("90")).await;
    assert_eq!(put.1["status"], "PROCESSING");
    let id = put.1["id"].as_str().expect("id").to_owned();

    let approved =
        tokio::task::block_in_place(|| mooring(&app.db, &["customers", "approve", &id], &manual));
    assert!(
        approved.status.success(),
        "{:?}: {}",
        approved.status,
        text(&approved)
    );
    assert!(text(&approved).contains("ACCEPTED"));
    assert_eq!(
        app.get_customer(&[("id", &id), ("type", "sep31-sender")])
            .await
            .1["status"],
        "ACCEPTED"
    );

    // A changed value needs a new review.
    let changed = app
        .put_customer(&json!({"id": id, "last_name": "Doe-Smith"}))
        .await;
    assert_eq!(changed.1["status"], "PROCESSING");

    let rejected = tokio::task::block_in_place(|| {
        mooring(
            &app.db,
            &[
                "customers",
                "reject",
                &id,
                "--reason",
                "identity document could not be verified",
            ],
            &manual,
        )
    });
    assert!(rejected.status.success(), "{}", text(&rejected));
    let got = app
        .get_customer(&[("id", &id), ("type", "sep31-sender")])
        .await;
    assert_eq!(got.1["status"], "REJECTED");
    assert_eq!(got.1["message"], "identity document could not be verified");
    // Rejection stays whatever the customer sends.
    let after = app
        .put_customer(&json!({"id": id, "first_name": "Johnny"}))
        .await;
    assert_eq!(after.1["status"], "REJECTED");

    let shown =
        tokio::task::block_in_place(|| mooring(&app.db, &["customers", "show", &id], &manual));
    assert!(
        text(&shown).contains("REJECTED") && !text(&shown).contains("Johnny"),
        "{}",
        text(&shown)
    );
    let unknown = tokio::task::block_in_place(|| {
        mooring(
            &app.db,
            &[
                "customers",
                "approve",
                "8e4a7f0e-5a7c-4a8e-9a37-2f1c3c9d0b11",
            ],
            &manual,
        )
    });
    assert!(!unknown.status.success());
    assert!(text(&unknown).contains("not found"));

    // The audit trail has each action, by whom, and nothing of the values.
    assert_eq!(app.delete_customer(&id).await.0, 204);
    let audit = tokio::task::block_in_place(|| {
        mooring(
            &app.db,
            &["audit", "list", "--customer", &id, "--since", "1h"],
            &manual,
        )
    });
    assert!(audit.status.success(), "{}", text(&audit));
    let lines: Vec<String> = String::from_utf8_lossy(&audit.stdout)
        .lines()
        .skip(1)
        .map(str::to_owned)
        .collect();
    let actions: Vec<&str> = lines
        .iter()
        .filter_map(|l| l.split_whitespace().nth(1))
        .collect();
    assert_eq!(
        actions,
        [
            "customer.deleted",
            "customer.shown",
            "customer.rejected",
            "customer.approved"
        ],
        "{}",
        text(&audit)
    );
    assert!(
        lines[0].contains("platform:anchor-platform@127.0.0.1"),
        "{}",
        lines[0]
    );
    assert!(
        lines[1..].iter().all(|l| l.contains("operator:alice@cli@")),
        "{lines:?}"
    );
    let all = text(&audit);
    assert!(
        !all.contains("Johnny") && !all.contains("could not be verified"),
        "{all}"
    );
    let bad = tokio::task::block_in_place(|| {
        mooring(&app.db, &["audit", "list", "--since", "yesterday"], &manual)
    });
    assert!(!bad.status.success());
    assert!(text(&bad).contains("RFC 3339"), "{}", text(&bad));
    let pruned = tokio::task::block_in_place(|| mooring(&app.db, &["prune"], &manual));
    assert!(pruned.status.success(), "{}", text(&pruned));
    assert!(
        text(&pruned).contains("events: 0 removed"),
        "{}",
        text(&pruned)
    );
}

async fn operators_list_and_show_quotes(db: TestDb) {
    let file = crate::helpers::config_file("[liquidity]\n\"iso4217:BRL\" = \"1000000\"\n");
    let config = file.path().to_str().expect("utf-8").to_owned();
    let app = spawn_app_with(db, &[("MOORING_CONFIG", &config)]).await;
    let usdc = "stellar:USDC:GBBD47IF6LWK7P7MDEVSCWR7DPUWV3NY3DTQEVFL4NAT4AQH3ZLLFLA5";
    let query = [
        ("type", "firm"),
        ("sell_asset", usdc),
        ("buy_asset", "iso4217:BRL"),
        ("buy_amount", "250"),
        ("buy_delivery_method", "PIX"),
    ];
    let response = app
        .client
        .get(app.url("/rate"))
        .query(&query)
        .send()
        .await
        .expect("sent");
    let (status, body) = crate::helpers::status_and_json(response).await;
    assert_eq!(status, 200, "{body}");
    let id = body["rate"]["id"].as_str().expect("id").to_owned();
    let list = tokio::task::block_in_place(|| {
        mooring(&app.db, &["quotes", "list"], &[("MOORING_CONFIG", &config)])
    });
    assert!(list.status.success(), "{}", text(&list));
    let listed = text(&list);
    assert!(
        listed.contains(&id) && listed.contains("reserving") && listed.contains("USDC->BRL"),
        "{listed}"
    );
    assert!(
        listed.contains("liquidity: iso4217:BRL reserved 250 of 1000000"),
        "{listed}"
    );
    let show = tokio::task::block_in_place(|| mooring(&app.db, &["quotes", "show", &id], &[]));
    assert!(show.status.success(), "{}", text(&show));
    let shown = text(&show);
    assert!(
        shown.contains("Delivery fee (PIX)") && shown.contains("buy_amount:  250"),
        "{shown}"
    );
    let unknown = tokio::task::block_in_place(|| {
        mooring(
            &app.db,
            &["quotes", "show", "8e4a7f0e-5a7c-4a8e-9a37-2f1c3c9d0b11"],
            &[],
        )
    });
    assert!(!unknown.status.success());
}

on_both_backends!(
    migrate_then_serve_without_auto_migrate,
    operators_approve_and_reject_under_manual_review,
    operators_list_and_show_quotes,
);

#[test]
fn bad_configuration_stops_the_start() {
    let output = Command::new(env!("CARGO_BIN_EXE_mooring"))
        .env_clear()
        .env("MOORING__SERVER__PORT", "eighty")
        .output()
        .expect("mooring runs");
    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output).contains("server.port"), "{}", text(&output));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_read_the_platforms_transactions() {
    let platform = wiremock::MockServer::start().await;
    let transaction = json!({"id": "82fhs729f63dh0v4", "sep": "31", "status": "pending_receiver",
        "amount_in": {"amount": "100", "asset": "stellar:USDC:GBBD47IF6LWK7P7MDEVSCWR7DPUWV3NY3DTQEVFL4NAT4AQH3ZLLFLA5"},
        "amount_out": {"amount": "543.94", "asset": "iso4217:BRL"}});
    wiremock::Mock::given(wiremock::matchers::method("GET"))
        .and(wiremock::matchers::path("/transactions"))
        .and(wiremock::matchers::query_param(
            "statuses",
            "pending_receiver",
        ))
        .and(wiremock::matchers::header("x-api-key", "k-1"))
        .respond_with(
            wiremock::ResponseTemplate::new(200)
                .set_body_json(json!({"records": [transaction.clone()]})),
        )
        .mount(&platform)
        .await;
    wiremock::Mock::given(wiremock::matchers::method("GET"))
        .and(wiremock::matchers::path("/transactions/82fhs729f63dh0v4"))
        .respond_with(wiremock::ResponseTemplate::new(200).set_body_json(transaction))
        .mount(&platform)
        .await;
    let run = |args: &[&str], base: &str| {
        Command::new(env!("CARGO_BIN_EXE_mooring"))
            .env_clear()
            .env("PLATFORM_API_BASE_URL", base)
            .env("PLATFORM_API_AUTH_TYPE", "api_key")
            .env("SECRET_PLATFORM_API_AUTH_SECRET", "k-1")
            .env("MOORING__PLATFORM__MAX_ATTEMPTS", "2")
            .args(args)
            .output()
            .expect("mooring runs")
    };
    let uri = platform.uri();
    let listed = tokio::task::block_in_place(|| {
        run(
            &["platform", "transactions", "--status", "pending_receiver"],
            &uri,
        )
    });
    assert!(listed.status.success(), "{}", text(&listed));
    assert!(
        text(&listed).contains("82fhs729f63dh0v4") && text(&listed).contains("543.94 BRL"),
        "{}",
        text(&listed)
    );
    let shown =
        tokio::task::block_in_place(|| run(&["platform", "show", "82fhs729f63dh0v4"], &uri));
    assert!(
        shown.status.success() && text(&shown).contains("pending_receiver"),
        "{}",
        text(&shown)
    );
    let down = tokio::task::block_in_place(|| {
        run(
            &["platform", "show", "82fhs729f63dh0v4"],
            "http://127.0.0.1:9",
        )
    });
    assert!(!down.status.success());
    assert!(text(&down).contains("unavailable"), "{}", text(&down));
}

/// Zero set-up on SQLite: the first start makes `<data_dir>/pii.key` (0600)
/// and says so once; a start with another key is refused, naming
/// `pii.key`; `mooring keys rotate` moves the data to a new key, after
/// which the new key alone opens it and the old one is refused.
#[test]
fn a_sqlite_install_makes_its_own_key_and_rotation_moves_it_to_a_new_one() {
    let db = TestDb::sqlite();
    let dir = db
        .sqlite_path()
        .and_then(|p| p.parent().map(std::path::Path::to_path_buf))
        .expect("a directory");
    let run = |args: &[&str], env: &[(&str, &str)]| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_mooring"));
        command
            .env_clear()
            .env("DATABASE_URL", db.url())
            .env("MOORING__DATABASE__DATA_DIR", &dir)
            .args(args);
        for (k, v) in env {
            command.env(k, v);
        }
        command.output().expect("mooring runs")
    };
    let first = run(&["migrate"], &[]);
    assert!(first.status.success(), "{}", text(&first));
    assert!(
        text(&first).contains("created a key file"),
        "{}",
        text(&first)
    );
    let key_file = dir.join("pii.key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_file)
            .expect("key file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let file_key = std::fs::read_to_string(&key_file)
        .expect("key")
        .trim()
        .to_owned();
    let again = run(&["migrate"], &[]);
    assert!(again.status.success(), "{}", text(&again));
    assert!(!text(&again).contains("created a key file"));

    let new_key = mooring_testsupport::TEST_PII_KEY;
    let wrong = run(&["migrate"], &[("MOORING__PII__KEY", new_key)]);
    assert!(!wrong.status.success());
    assert!(
        text(&wrong).contains("pii.key cannot open"),
        "{}",
        text(&wrong)
    );
    assert!(!text(&wrong).contains(new_key) && !text(&wrong).contains(&file_key));

    let rotated = run(
        &["keys", "rotate"],
        &[
            ("MOORING__PII__KEY", new_key),
            ("MOORING__PII__PREVIOUS_KEYS", &file_key),
        ],
    );
    assert!(rotated.status.success(), "{}", text(&rotated));
    assert!(text(&rotated).contains("pii.previous_keys can be dropped"));
    let alone = run(&["migrate"], &[("MOORING__PII__KEY", new_key)]);
    assert!(alone.status.success(), "{}", text(&alone));
    let old = run(&["migrate"], &[("MOORING__PII__KEY", &file_key)]);
    assert!(!old.status.success(), "the old key alone is refused now");
}
