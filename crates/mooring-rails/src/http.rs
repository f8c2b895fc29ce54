use std::time::Duration;

use async_trait::async_trait;
use mooring_ports::{PayoutOrder, PayoutRail, RailError, RailReceipt, RailStatus};
use serde::Deserialize;
use serde_json::{Map, Value, json};

/// A payout provider over HTTP (the protocol is in the crate's docs).
pub struct HttpRail {
    url: String,
    client: reqwest::Client,
}

#[derive(Deserialize)]
struct Answer {
    id: String,
    status: String,
    #[serde(default)]
    message: Option<String>,
}

impl HttpRail {
    pub fn new(url: String, timeout: Duration) -> Result<Self, RailError> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .build()
            .map_err(|e| RailError::Unknown(e.to_string()))?;
        Ok(Self {
            url: url.trim_end_matches('/').to_owned(),
            client,
        })
    }

    /// Reads an answer: a 5xx, a timeout or an unreadable 2xx leaves the
    /// outcome unknown; another 4xx is a refusal.
    async fn read(
        response: Result<reqwest::Response, reqwest::Error>,
    ) -> Result<RailReceipt, RailError> {
        let response = response.map_err(|e| RailError::Unknown(format!("request failed: {e}")))?;
        let status = response.status();
        let text = response
            .text()
            .await
            .map_err(|e| RailError::Unknown(format!("reading the answer failed: {e}")))?;
        if status.is_server_error()
            || status == reqwest::StatusCode::TOO_MANY_REQUESTS
            || status == reqwest::StatusCode::REQUEST_TIMEOUT
        {
            return Err(RailError::Unknown(format!(
                "the provider answered {status}"
            )));
        }
        if !status.is_success() {
            let message = serde_json::from_str::<Value>(&text)
                .ok()
                .and_then(|v| {
                    v.get("error")
                        .or_else(|| v.get("message"))
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                })
                .unwrap_or_else(|| "no message".into());
            return Err(RailError::Refused(format!("{status}: {message}")));
        }
        let answer: Answer = serde_json::from_str(&text).map_err(|e| {
            RailError::Unknown(format!(
                "the provider's answer is not the expected JSON: {e}"
            ))
        })?;
        let status = match answer.status.as_str() {
            "pending" => RailStatus::Pending,
            "completed" => RailStatus::Completed,
            "failed" => {
                RailStatus::Failed(answer.message.unwrap_or_else(|| "no reason given".into()))
            }
            other => {
                return Err(RailError::Unknown(format!(
                    "the provider answered an unknown status {other:?}"
                )));
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
        let response = self
            .client
            .post(&self.url)
            .header("Idempotency-Key", &order.idempotency_key)
            .json(&body)
            .send()
            .await;
        Self::read(response).await
    }

    async fn status(&self, id: &str) -> Result<RailReceipt, RailError> {
        let response = self
            .client
            .get(format!("{}/{}", self.url, urlencode(id)))
            .send()
            .await;
        Self::read(response).await
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

    #[tokio::test]
    async fn submits_with_the_key_and_the_receivers_sep9_fields() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/payouts"))
            .and(header("Idempotency-Key", "tx-1"))
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
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(json!({"id": "P1", "status": "completed"})),
            )
            .mount(&server)
            .await;
        let rail = HttpRail::new(format!("{}/payouts/", server.uri()), Duration::from_secs(2))
            .expect("rail");
        let r = rail.submit(&order()).await.expect("submit");
        assert_eq!((r.id.as_str(), r.status), ("P1", RailStatus::Pending));
        assert_eq!(
            rail.status("P1").await.expect("status").status,
            RailStatus::Completed
        );
    }

    #[tokio::test]
    async fn a_5xx_or_timeout_is_unknown_a_4xx_is_a_refusal_and_failed_carries_the_reason() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/down"))
            .respond_with(ResponseTemplate::new(503))
            .mount(&server)
            .await;
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
            .and(path("/bad"))
            .respond_with(
                ResponseTemplate::new(422).set_body_json(json!({"error": "invalid account"})),
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
        let rail = |p: &str| {
            HttpRail::new(format!("{}{p}", server.uri()), Duration::from_millis(200)).expect("rail")
        };
        assert!(matches!(
            rail("/down").submit(&order()).await,
            Err(RailError::Unknown(_))
        ));
        assert!(matches!(
            rail("/slow").submit(&order()).await,
            Err(RailError::Unknown(_))
        ));
        assert!(matches!(
            rail("/odd").submit(&order()).await,
            Err(RailError::Unknown(_))
        ));
        match rail("/bad").submit(&order()).await {
            Err(RailError::Refused(m)) => assert!(m.contains("invalid account"), "{m}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            rail("/failed")
                .submit(&order())
                .await
                .expect("answer")
                .status,
            RailStatus::Failed("account closed".into())
        );
    }
}
