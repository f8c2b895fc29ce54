//! The HTTP payout rail: the provider's API (`docs/payout-provider.md`),
//! with an idempotency key per payout and a status read to follow one up;
//! it sends the receiver fields the frozen order holds, nothing more.

use std::time::Duration;

use async_trait::async_trait;
use mooring_ports::{PayoutOrder, PayoutRail, RailError, RailReceipt, RailStatus};
use reqwest::StatusCode;
use reqwest::header::{HeaderName, HeaderValue};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{Map, Value, json};

/// How Mooring authenticates to the provider: a header and its secret value
/// (`payout.http.auth_header`, `payout.http.auth_token`), never logged.
#[derive(Clone)]
pub struct RailAuth {
    pub header: String,
    pub token: SecretString,
}

/// A payout provider over HTTP (the protocol is in the crate's docs and in
/// docs/payouts.md).
pub struct HttpRail {
    url: String,
    client: reqwest::Client,
    auth: Option<(HeaderName, HeaderValue)>,
}

#[derive(Deserialize)]
struct Answer {
    id: String,
    status: String,
    /// A provider's code for the outcome (`code`, or `failure_code`): kept
    /// only when it is a short token, never a provider's free text.
    #[serde(default)]
    code: Option<Value>,
    #[serde(default)]
    failure_code: Option<Value>,
}

/// A provider's code, if it is a plain token (letters, digits, `_ . -`, at
/// most 64): free text (which may name the receiver) is never kept.
fn safe_code(v: Option<&Value>) -> Option<String> {
    let code = v?.as_str()?;
    (!code.is_empty()
        && code.len() <= 64
        && code
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-')))
    .then(|| code.to_owned())
}

/// `" (code X)"`, or nothing.
fn with_code(code: Option<String>) -> String {
    code.map(|c| format!(" (code {c})")).unwrap_or_default()
}

/// Which call an answer is to: a 404 means something else for each.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Call {
    Submit,
    Status,
}

impl HttpRail {
    pub fn new(url: String, timeout: Duration, auth: Option<RailAuth>) -> Result<Self, RailError> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            // A redirect could carry the order (and its key) elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| RailError::Unknown(e.without_url().to_string()))?;
        let auth = match auth {
            None => None,
            Some(a) => {
                let name = HeaderName::from_bytes(a.header.as_bytes()).map_err(|_| {
                    RailError::Held("payout.http.auth_header is not a header name".into())
                })?;
                let mut value = HeaderValue::from_str(a.token.expose_secret()).map_err(|_| {
                    RailError::Held("payout.http.auth_token is not a header value".into())
                })?;
                value.set_sensitive(true);
                Some((name, value))
            }
        };
        Ok(Self {
            url: url.trim_end_matches('/').to_owned(),
            client,
            auth,
        })
    }

    fn authed(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.auth {
            Some((name, value)) => request.header(name.clone(), value.clone()),
            None => request,
        }
    }

    /// The JSON body of an order: the same bytes for the same order, so
    /// every retry under one key sends the same body.
    pub fn body(order: &PayoutOrder) -> Vec<u8> {
        let mut receiver = Map::new();
        for (name, value) in &order.receiver_fields {
            receiver.insert(name.clone(), json!(value));
        }
        receiver.insert("id".into(), json!(order.receiver_id));
        let mut body = json!({
            "transaction_id": order.transaction_id,
            "amount": order.amount.to_string(),
            "asset": order.asset,
            "receiver": receiver,
        });
        if let Some(method) = &order.delivery_method {
            body["delivery_method"] = json!(method);
        }
        // A tree of strings always serialises.
        serde_json::to_vec(&body).unwrap_or_default()
    }

    /// Reads an answer as real providers speak (docs/payouts.md):
    /// - unknown (retry with the same key and body): a network error or a
    ///   timeout, a 5xx, 408, 429, 409 (the key is still being processed),
    ///   a 404 or a 400 on the status of a payout (it was made: only an order
    ///   can be refused), an unreadable 2xx;
    /// - refused (no payout exists): a 400 to an order;
    /// - held for a person: 422 (the key was used with other parameters),
    ///   401 or 403 (credentials), and any other 4xx.
    ///
    /// Errors never carry the URL (its credentials or query).
    async fn read(
        call: Call,
        response: Result<reqwest::Response, reqwest::Error>,
    ) -> Result<RailReceipt, RailError> {
        let response = response
            .map_err(|e| RailError::Unknown(format!("the request failed: {}", e.without_url())))?;
        let status = response.status();
        let text = response.text().await.map_err(|e| {
            RailError::Unknown(format!("reading the answer failed: {}", e.without_url()))
        })?;
        if status.is_server_error()
            || status == StatusCode::TOO_MANY_REQUESTS
            || status == StatusCode::REQUEST_TIMEOUT
            || status == StatusCode::CONFLICT
            || (call == Call::Status
                && (status == StatusCode::NOT_FOUND || status == StatusCode::BAD_REQUEST))
        {
            return Err(RailError::Unknown(format!(
                "the provider answered {status}"
            )));
        }
        if status == StatusCode::BAD_REQUEST {
            // The provider's text is not kept (it may name the receiver or
            // their account); a short code is.
            let code = serde_json::from_str::<Value>(&text).ok().and_then(|v| {
                safe_code(v.get("code"))
                    .or_else(|| safe_code(v.get("error_code")))
                    .or_else(|| safe_code(v.get("error")))
            });
            return Err(RailError::Refused(format!(
                "the provider answered {status}{}",
                with_code(code)
            )));
        }
        if status == StatusCode::UNPROCESSABLE_ENTITY {
            return Err(RailError::Held(format!(
                "the provider answered {status}: the idempotency key was used with other parameters"
            )));
        }
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return Err(RailError::Held(format!(
                "the provider refused Mooring's credentials ({status}); check payout.http.auth_header and auth_token"
            )));
        }
        if !status.is_success() {
            return Err(RailError::Held(format!(
                "the provider answered {status}, which Mooring cannot read as an outcome"
            )));
        }
        // serde's message may quote the answer: only where it broke is kept.
        let answer: Answer = serde_json::from_str(&text).map_err(|e| {
            RailError::Unknown(format!(
                "the provider's answer is not the expected JSON (line {}, column {})",
                e.line(),
                e.column()
            ))
        })?;
        let status = match answer.status.as_str() {
            "pending" => RailStatus::Pending,
            "completed" => RailStatus::Completed,
            "failed" => RailStatus::Failed(format!(
                "the provider reports the payout failed{}",
                with_code(
                    safe_code(answer.failure_code.as_ref()).or(safe_code(answer.code.as_ref()))
                )
            )),
            _ => {
                return Err(RailError::Unknown(
                    "the provider answered an unknown status".into(),
                ));
            }
        };
        Ok(RailReceipt {
            id: answer.id,
            status,
        })
    }
}

#[async_trait]
impl PayoutRail for HttpRail {
    #[tracing::instrument(skip_all, fields(transaction.id = %order.transaction_id))]
    async fn submit(&self, order: &PayoutOrder) -> Result<RailReceipt, RailError> {
        let request = self
            .client
            .post(&self.url)
            .header("Idempotency-Key", &order.idempotency_key)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(Self::body(order));
        Self::read(Call::Submit, self.authed(request).send().await).await
    }

    async fn status(&self, id: &str) -> Result<RailReceipt, RailError> {
        let request = self.client.get(format!("{}/{}", self.url, urlencode(id)));
        Self::read(Call::Status, self.authed(request).send().await).await
    }
}

/// Percent-encodes a path segment.
fn urlencode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal::Decimal;
    use wiremock::matchers::{body_partial_json, header, method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    fn order() -> PayoutOrder {
        PayoutOrder {
            idempotency_key: "tx-1".into(),
            transaction_id: "tx-1".into(),
            amount: Decimal::new(55000, 2),
            asset: "iso4217:BRL".into(),
            delivery_method: Some("PIX".into()),
            receiver_id: "cust-1".into(),
            receiver_fields: vec![("bank_account_number".into(), "12345".into())],
        }
    }

    fn rail(url: String, timeout_ms: u64) -> HttpRail {
        HttpRail::new(url, Duration::from_millis(timeout_ms), None).expect("rail")
    }

    #[tokio::test]
    async fn submits_with_the_key_the_auth_header_and_the_receivers_sep9_fields() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/payouts"))
            .and(header("Idempotency-Key", "tx-1"))
            .and(header("Authorization", "Bearer s3cret"))
            .and(body_partial_json(json!({
                "transaction_id": "tx-1", "amount": "550.00", "asset": "iso4217:BRL",
                "delivery_method": "PIX",
                "receiver": {"id": "cust-1", "bank_account_number": "12345"}
            })))
            .respond_with(
                ResponseTemplate::new(201).set_body_json(json!({"id": "P1", "status": "pending"})),
            )
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path("/payouts/P1"))
            .and(header("Authorization", "Bearer s3cret"))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(json!({"id": "P1", "status": "completed"})),
            )
            .mount(&server)
            .await;
        let auth = RailAuth {
            header: "Authorization".into(),
            token: SecretString::from("Bearer s3cret"),
        };
        let rail = HttpRail::new(
            format!("{}/payouts/", server.uri()),
            Duration::from_secs(2),
            Some(auth),
        )
        .expect("rail");
        let r = rail.submit(&order()).await.expect("submit");
        assert_eq!((r.id.as_str(), r.status), ("P1", RailStatus::Pending));
        assert_eq!(
            rail.status("P1").await.expect("status").status,
            RailStatus::Completed
        );
    }

    #[test]
    fn the_same_order_is_the_same_body_byte_for_byte() {
        let a = HttpRail::body(&order());
        assert_eq!(a, HttpRail::body(&order().clone()));
        let mut other = order();
        other.receiver_fields[0].1 = "99999".into();
        assert_ne!(a, HttpRail::body(&other));
    }

    /// Mounts `POST {p}` answering `status` (with a JSON error body).
    async fn answering(server: &MockServer, p: &str, status: u16) {
        Mock::given(method("POST"))
            .and(path(p))
            .respond_with(
                ResponseTemplate::new(status).set_body_json(json!({"error": "invalid account"})),
            )
            .mount(server)
            .await;
    }

    #[tokio::test]
    async fn answers_are_read_as_real_providers_speak() {
        let server = MockServer::start().await;
        for (p, status) in [
            ("/down", 503),
            ("/conflict", 409),
            ("/throttled", 429),
            ("/bad", 400),
            ("/reused", 422),
            ("/unauthorised", 401),
            ("/forbidden", 403),
            ("/gone", 404),
            ("/teapot", 418),
        ] {
            answering(&server, p, status).await;
        }
        Mock::given(method("POST"))
            .and(path("/slow"))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_delay(Duration::from_millis(500))
                    .set_body_json(json!({"id": "P", "status": "completed"})),
            )
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(path("/failed"))
            .respond_with(
                ResponseTemplate::new(200).set_body_json(
                    json!({"id": "P", "status": "failed", "message": "account closed"}),
                ),
            )
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(path("/odd"))
            .respond_with(ResponseTemplate::new(200).set_body_string("<html>"))
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path("/new/P9"))
            .respond_with(ResponseTemplate::new(404))
            .mount(&server)
            .await;
        let at = |p: &str| rail(format!("{}{p}", server.uri()), 200);
        for p in ["/down", "/conflict", "/throttled", "/slow", "/odd"] {
            assert!(
                matches!(at(p).submit(&order()).await, Err(RailError::Unknown(_))),
                "{p} is an unknown outcome"
            );
        }
        // A payout just created may not be visible yet.
        assert!(matches!(
            at("/new").status("P9").await,
            Err(RailError::Unknown(_))
        ));
        // A payout that exists is never "refused".
        Mock::given(method("GET"))
            .and(path("/new/P8"))
            .respond_with(ResponseTemplate::new(400).set_body_json(json!({"error": "bad id"})))
            .mount(&server)
            .await;
        assert!(matches!(
            at("/new").status("P8").await,
            Err(RailError::Unknown(_))
        ));
        // A refusal keeps no provider text, only a short code.
        match at("/bad").submit(&order()).await {
            Err(RailError::Refused(m)) => {
                assert!(!m.contains("invalid account"), "{m}");
                assert!(m.contains("400"), "{m}");
            }
            other => panic!("400 is a refusal: {other:?}"),
        }
        Mock::given(method("POST"))
            .and(path("/coded"))
            .respond_with(ResponseTemplate::new(400).set_body_json(
                json!({"code": "account_closed", "message": "Maria Silva's account 123 is closed"}),
            ))
            .mount(&server)
            .await;
        match at("/coded").submit(&order()).await {
            Err(RailError::Refused(m)) => {
                assert_eq!(
                    m,
                    "the provider answered 400 Bad Request (code account_closed)"
                );
            }
            other => panic!("400 is a refusal: {other:?}"),
        }
        for p in ["/reused", "/unauthorised", "/forbidden", "/gone", "/teapot"] {
            match at(p).submit(&order()).await {
                Err(RailError::Held(m)) => assert!(!m.contains("invalid account"), "{m}"),
                other => panic!("{p} is held for a person: {other:?}"),
            }
        }
        assert_eq!(
            at("/failed").submit(&order()).await.expect("answer").status,
            RailStatus::Failed("the provider reports the payout failed".into()),
            "the provider's text is not kept"
        );
    }

    #[tokio::test]
    async fn redirects_are_not_followed_and_errors_keep_no_url() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/moved"))
            .respond_with(
                ResponseTemplate::new(307)
                    .insert_header("Location", "http://127.0.0.1:9/elsewhere"),
            )
            .mount(&server)
            .await;
        let moved = rail(format!("{}/moved", server.uri()), 2000);
        assert!(matches!(
            moved.submit(&order()).await,
            Err(RailError::Held(_))
        ));
        // Nothing listens on port 9: the error names no URL, user or query.
        let nowhere = rail("http://user:pw@127.0.0.1:9/payouts?token=abc".into(), 500);
        match nowhere.submit(&order()).await {
            Err(RailError::Unknown(m)) => {
                for secret in ["pw", "token", "abc", "127.0.0.1"] {
                    assert!(!m.contains(secret), "{m}");
                }
            }
            other => panic!("{other:?}"),
        }
    }
}
