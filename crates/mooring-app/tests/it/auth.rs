//! Callback authentication as the AP sends it: 401 and the handler never runs.

use chrono::Utc;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use mooring_testsupport::{TestDb, on_both_backends};
use serde_json::json;

use crate::helpers::jwt as token;
use crate::helpers::{
    ACCOUNT, JWT_SECRET, TestApp, assert_error, sender, spawn_app_with, status_and_json,
};

async fn put_with(
    app: &TestApp,
    header: Option<(&str, String)>,
    memo: &str,
) -> (u16, serde_json::Value) {
    let mut request = app.client.put(app.url("/customer")).json(&sender(memo));
    if let Some((name, value)) = header {
        request = request.header(name, value);
    }
    status_and_json(request.send().await.expect("sent")).await
}

async fn jwt_callbacks(db: TestDb) {
    let app = spawn_app_with(
        db,
        &[
            ("CALLBACK_API_AUTH_TYPE", "jwt"),
            ("SECRET_CALLBACK_API_AUTH_SECRET", JWT_SECRET),
        ],
    )
    .await;
    let bearer = |t: String| Some(("Authorization", format!("Bearer {t}")));
    let refused = [
        ("missing", None),
        (
            "not bearer",
            Some((
                "Authorization",
                format!("Basic {}", token(JWT_SECRET, 0, 30, Algorithm::HS256)),
            )),
        ),
        ("garbage", bearer("not.a.jwt".into())),
        (
            "wrong secret",
            bearer(token(
                "another-secret-that-is-32-bytes-long!!",
                0,
                30,
                Algorithm::HS256,
            )),
        ),
        (
            "expired",
            bearer(token(JWT_SECRET, -120, -60, Algorithm::HS256)),
        ),
        (
            "issued in the future",
            bearer(token(JWT_SECRET, 600, 630, Algorithm::HS256)),
        ),
        (
            "other algorithm",
            bearer(token(JWT_SECRET, 0, 30, Algorithm::HS512)),
        ),
    ];
    for (case, header) in refused {
        let answer = put_with(&app, header, "1").await;
        assert_error(&answer, 401);
        assert_eq!(answer.0, 401, "{case}");
    }
    let no_iat = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &json!({"exp": Utc::now().timestamp() + 30}),
        &EncodingKey::from_secret(JWT_SECRET.as_bytes()),
    )
    .expect("signed");
    assert_error(&put_with(&app, bearer(no_iat), "1").await, 401);
    // Not valid before a time to come (nbf), and a token living two hours:
    // refused, though signed right and current.
    let now = Utc::now().timestamp();
    let signed = |claims: serde_json::Value| {
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(JWT_SECRET.as_bytes()),
        )
        .expect("signed")
    };
    let not_yet = signed(json!({"iat": now, "exp": now + 600, "nbf": now + 300}));
    assert_error(&put_with(&app, bearer(not_yet), "1").await, 401);
    let long = signed(json!({"iat": now, "exp": now + 7200}));
    let message = assert_error(&put_with(&app, bearer(long), "1").await, 401);
    assert!(message.contains("jwt_max_lifetime_seconds"), "{message}");
    let nbf_past = signed(json!({"iat": now, "exp": now + 30, "nbf": now - 5}));
    assert_eq!(
        put_with(&app, bearer(nbf_past), "9").await.0,
        200,
        "a past nbf is fine"
    );

    // None of the refused PUTs reached the handler: the customer does not exist.
    let good = || format!("Bearer {}", token(JWT_SECRET, 0, 30, Algorithm::HS256));
    let lookup = app
        .client
        .get(app.url("/customer"))
        .query(&[
            ("account", ACCOUNT),
            ("memo", "1"),
            ("type", "sep31-sender"),
        ])
        .header("Authorization", good())
        .send()
        .await
        .expect("sent");
    let lookup = status_and_json(lookup).await;
    assert_eq!(lookup.0, 200);
    assert!(
        lookup.1.get("id").is_none(),
        "a refused PUT was stored: {lookup:?}"
    );

    // The AP's token: HS256 over the secret's bytes with iat and exp only.
    let put = put_with(&app, Some(("Authorization", good())), "1").await;
    assert_eq!(put.0, 200);
    let id = put.1["id"].as_str().expect("id").to_owned();
    let unauthenticated_get = app
        .client
        .get(app.url("/customer"))
        .query(&[("id", &id)])
        .send()
        .await
        .expect("sent");
    assert_error(&status_and_json(unauthenticated_get).await, 401);
    let unauthenticated_delete = app
        .client
        .delete(app.url(&format!("/customer/{id}")))
        .send()
        .await
        .expect("sent");
    assert_error(&status_and_json(unauthenticated_delete).await, 401);
    let delete = app
        .client
        .delete(app.url(&format!("/customer/{id}")))
        .header("Authorization", good())
        .send()
        .await
        .expect("sent");
    assert_eq!(delete.status().as_u16(), 204);
}

async fn api_key_callbacks(db: TestDb) {
    let key = "an-api-key-shared-with-the-platform";
    let app = spawn_app_with(
        db,
        &[
            ("CALLBACK_API_AUTH_TYPE", "api_key"),
            ("SECRET_CALLBACK_API_AUTH_SECRET", key),
        ],
    )
    .await;
    assert_error(&put_with(&app, None, "2").await, 401);
    assert_error(
        &put_with(&app, Some(("X-Api-Key", "wrong".into())), "2").await,
        401,
    );
    assert_error(
        &put_with(&app, Some(("X-Api-Key", format!("{key}x"))), "2").await,
        401,
    );
    assert_error(
        &put_with(&app, Some(("Authorization", key.into())), "2").await,
        401,
    );
    let lookup = app
        .client
        .get(app.url("/customer"))
        .query(&[("account", ACCOUNT), ("memo", "2")])
        .header("X-Api-Key", key)
        .send()
        .await
        .expect("sent");
    assert!(status_and_json(lookup).await.1.get("id").is_none());
    assert_eq!(
        put_with(&app, Some(("X-Api-Key", key.into())), "2").await.0,
        200
    );
}

/// AP 2.7+ sends the key in its configured header; AP 3.x+ always in
/// X-Api-Key. One shared `dev.env` serves both.
async fn api_key_in_the_configured_header_or_x_api_key(db: TestDb) {
    let key = "an-api-key-shared-with-the-platform";
    let app = spawn_app_with(
        db,
        &[
            ("CALLBACK_API_AUTH_TYPE", "api_key"),
            ("SECRET_CALLBACK_API_AUTH_SECRET", key),
            ("CALLBACK_API_AUTH_API_KEY_HTTP_HEADER", "X-Anchor-Key"),
        ],
    )
    .await;
    assert_eq!(
        put_with(&app, Some(("X-Anchor-Key", key.into())), "3")
            .await
            .0,
        200
    );
    assert_eq!(
        put_with(&app, Some(("X-Api-Key", key.into())), "3").await.0,
        200
    );
    assert_error(
        &put_with(&app, Some(("X-Anchor-Key", "wrong".into())), "3").await,
        401,
    );
    assert_error(&put_with(&app, None, "3").await, 401);
}

on_both_backends!(
    jwt_callbacks,
    api_key_callbacks,
    api_key_in_the_configured_header_or_x_api_key
);
