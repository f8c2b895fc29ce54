//! No PII and no secret in any log line.

use jsonwebtoken::Algorithm;
use mooring_testsupport::{TestDb, on_both_backends};
use serde_json::json;

use crate::helpers::{ACCOUNT, JWT_SECRET, captured_logs, jwt, spawn_app_with, status_and_json};

async fn no_pii_or_secret_reaches_the_logs(db: TestDb) {
    let app = spawn_app_with(
        db,
        &[
            ("CALLBACK_API_AUTH_TYPE", "jwt"),
            ("SECRET_CALLBACK_API_AUTH_SECRET", JWT_SECRET),
        ],
    )
    .await;
    let unique = uuid::Uuid::new_v4().simple().to_string();
    let memo = format!("{}", u64::from_str_radix(&unique[..12], 16).expect("hex"));
    let first_name = format!("Zephyrine{}", &unique[..10]);
    let email = format!("z{}@example.com", &unique[..12]);
    let bank = format!("9{}", &memo[..9.min(memo.len())]);
    let token = jwt(JWT_SECRET, 0, 30, Algorithm::HS256);
    let auth = format!("Bearer {token}");

    let body = json!({"account": ACCOUNT, "memo": memo, "type": "sep31-receiver", "first_name": first_name,
        "last_name": "Quux", "email_address": email, "bank_account_number": bank, "bank_number": "not valid? fine",
        "bank_account_type": "invalid-choice", "birth_date": "not-a-date"});
    let put = app
        .client
        .put(app.url("/customer"))
        .header("Authorization", &auth)
        .json(&body)
        .send()
        .await
        .expect("sent");
    let put = status_and_json(put).await;
    assert_eq!(put.0, 200);
    let id = put.1["id"].as_str().expect("id").to_owned();
    let form = reqwest::multipart::Form::new()
        .text("id", id.clone())
        .text("last_name", first_name.clone())
        .part(
            "photo_id_front",
            reqwest::multipart::Part::bytes(email.clone().into_bytes()).file_name("id.png"),
        );
    let multipart = app
        .client
        .put(app.url("/customer"))
        .header("Authorization", &auth)
        .multipart(form)
        .send()
        .await
        .expect("sent");
    assert_eq!(multipart.status().as_u16(), 200);
    let get = app
        .client
        .get(app.url("/customer"))
        .header("Authorization", &auth)
        .query(&[
            ("account", ACCOUNT),
            ("memo", memo.as_str()),
            ("type", "sep31-receiver"),
        ])
        .send()
        .await
        .expect("sent");
    assert_eq!(get.status().as_u16(), 200);
    // Refused and failing requests are logged too: still without PII.
    let refused = app
        .client
        .get(app.url("/customer"))
        .query(&[("account", ACCOUNT), ("memo", memo.as_str())])
        .send()
        .await
        .expect("sent");
    assert_eq!(refused.status().as_u16(), 401);
    let bad = app
        .client
        .put(app.url("/customer"))
        .header("Authorization", &auth)
        .json(&json!({"account": ACCOUNT, "memo": memo, "memo_type": "hash", "first_name": first_name}))
        .send()
        .await
        .expect("sent");
    assert_eq!(bad.status().as_u16(), 400);
    let delete = app
        .client
        .delete(app.url(&format!("/customer/{id}")))
        .header("Authorization", &auth)
        .send()
        .await
        .expect("sent");
    assert_eq!(delete.status().as_u16(), 204);

    let logs = captured_logs();
    assert!(
        logs.contains(&id),
        "the logs should show the customer id at least: the capture is not working"
    );
    for secret in [
        first_name.as_str(),
        email.as_str(),
        memo.as_str(),
        bank.as_str(),
        ACCOUNT,
        JWT_SECRET,
        token.as_str(),
        "Quux",
    ] {
        assert!(!logs.contains(secret), "a log line contains {secret:?}");
    }
}

on_both_backends!(no_pii_or_secret_reaches_the_logs);
