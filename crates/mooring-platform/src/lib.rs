//! Mooring's client of the Anchor Platform's Platform API, behind the
//! `PlatformClient` port: REST (`GET /transactions`, `PATCH /transactions`,
//! AP 2.x) or JSON-RPC (`POST /`, AP 2.3+, 3.x, 4.x), with the AP's
//! authentication, timeouts, and retries with jittered exponential backoff
//! on network errors and 5xx (never on a 4xx).
//!
//! The AP's transaction JSON is read leniently (`sep` as a string or a
//! number, unknown fields ignored, absent fields as none). This crate must
//! not know the store, the HTTP server or any other adapter.

mod wire;

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use mooring_domain::transaction::{
    Transaction, TransactionChange, TransactionId, TransactionUpdate,
};
use mooring_ports::{
    Order, OrderBy, PlatformClient, PlatformError, ReadinessCheck, TransactionQuery,
};
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

/// REST (AP 2.x) or JSON-RPC (AP 2.3+).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiStyle {
    Rest,
    Rpc,
}

/// How Mooring authenticates to the Platform API (the AP's
/// `platform_api.auth` / 2.x `platform_server.auth`).
#[derive(Clone)]
pub enum PlatformAuth {
    None,
    /// The secret in `X-Api-Key`.
    ApiKey(SecretString),
    /// `Authorization: Bearer` HS256 tokens signed with the secret's bytes.
    Jwt(SecretString),
}

/// Where the Platform API is and how to talk to it.
#[derive(Clone)]
pub struct PlatformConfig {
    pub base_url: String,
    pub api: ApiStyle,
    pub auth: PlatformAuth,
    /// Per attempt.
    pub timeout: Duration,
    /// Attempts per call, the first included.
    pub max_attempts: u32,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
}

impl PlatformConfig {
    /// The longest wait before retry `attempt` (1-based): `base · 2^attempt`
    /// (the exponent at most 20), at most `max`, at least 1 ms. The client
    /// waits a random time below it (full jitter).
    pub fn backoff_ceiling(&self, attempt: u32) -> Duration {
        self.backoff_base
            .saturating_mul(1u32 << attempt.min(20))
            .min(self.backoff_max)
            .max(Duration::from_millis(1))
    }

    /// The longest one call can take with all its retries: every attempt
    /// timing out, every wait at its ceiling. The engine's lease must hold a
    /// step's calls (the settings check it).
    pub fn longest_call(&self) -> Duration {
        let waits: Duration = (1..self.max_attempts)
            .map(|k| self.backoff_ceiling(k))
            .sum();
        self.timeout.saturating_mul(self.max_attempts) + waits
    }
}

/// How long a signed token is valid, and how long before its expiry a new
/// one is signed.
const TOKEN_LIFETIME_SECONDS: i64 = 300;
const TOKEN_RENEW_BEFORE_SECONDS: i64 = 60;

/// The Platform API over HTTP.
pub struct HttpPlatform {
    config: PlatformConfig,
    client: reqwest::Client,
    token: Mutex<Option<(String, i64)>>,
    rpc_id: AtomicU64,
}

/// What went wrong with one attempt, and whether another may help.
enum Attempt {
    Retry(String),
    Fail(PlatformError),
}

impl HttpPlatform {
    pub fn new(config: PlatformConfig) -> Result<Self, PlatformError> {
        let client = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .build()
            .map_err(|e| PlatformError::Unavailable(e.to_string()))?;
        Ok(Self {
            config,
            client,
            token: Mutex::new(None),
            rpc_id: AtomicU64::new(1),
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.config.base_url.trim_end_matches('/'))
    }

    /// A token signed at most `TOKEN_LIFETIME - TOKEN_RENEW_BEFORE` ago:
    /// reused, not signed per request.
    fn bearer(&self, secret: &SecretString) -> Result<String, PlatformError> {
        let now = chrono::Utc::now().timestamp();
        let mut cached = self
            .token
            .lock()
            .map_err(|_| PlatformError::Unavailable("token cache poisoned".into()))?;
        if let Some((token, exp)) = cached.as_ref()
            && *exp - now > TOKEN_RENEW_BEFORE_SECONDS
        {
            return Ok(token.clone());
        }
        let exp = now + TOKEN_LIFETIME_SECONDS;
        let token = jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            &json!({"iat": now, "exp": exp}),
            &jsonwebtoken::EncodingKey::from_secret(secret.expose_secret().as_bytes()),
        )
        .map_err(|e| PlatformError::Unavailable(format!("cannot sign the platform token: {e}")))?;
        *cached = Some((token.clone(), exp));
        Ok(token)
    }

    /// The delay before retry `attempt` (1-based): exponential, capped, with
    /// full jitter.
    fn backoff(&self, attempt: u32) -> Duration {
        let ceiling = self.config.backoff_ceiling(attempt);
        Duration::from_micros(rand::random_range(0..ceiling.as_micros().max(1) as u64))
    }

    async fn attempt(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<Value, Attempt> {
        let mut request = self.client.request(method, self.url(path)).query(query);
        request = match &self.config.auth {
            PlatformAuth::None => request,
            PlatformAuth::ApiKey(key) => request.header("X-Api-Key", key.expose_secret()),
            PlatformAuth::Jwt(secret) => {
                let token = self.bearer(secret).map_err(Attempt::Fail)?;
                request.header("Authorization", format!("Bearer {token}"))
            }
        };
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request
            .send()
            .await
            .map_err(|e| Attempt::Retry(format!("request failed: {}", e.without_url())))?;
        let status = response.status();
        let text = response.text().await.map_err(|e| {
            Attempt::Retry(format!("reading the answer failed: {}", e.without_url()))
        })?;
        if status.is_server_error() {
            return Err(Attempt::Retry(format!("it answered {status}")));
        }
        let value: Value = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).map_err(|_| {
                Attempt::Fail(PlatformError::Rejected(format!(
                    "{status}, and the answer is not JSON"
                )))
            })?
        };
        if status.is_success() {
            return Ok(value);
        }
        let message = value
            .get("error")
            .and_then(Value::as_str)
            .unwrap_or("no message")
            .to_owned();
        let not_found = status == StatusCode::NOT_FOUND || message.contains("not found");
        Err(Attempt::Fail(if not_found {
            PlatformError::NotFound
        } else {
            PlatformError::Rejected(format!("{status}: {message}"))
        }))
    }

    /// One call, retried on network errors and 5xx.
    async fn call(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<Value, PlatformError> {
        let attempts = self.config.max_attempts.max(1);
        let mut last = String::new();
        for attempt in 1..=attempts {
            match self.attempt(method.clone(), path, query, body).await {
                Ok(value) => return Ok(value),
                Err(Attempt::Fail(e)) => return Err(e),
                Err(Attempt::Retry(reason)) => {
                    if attempt < attempts {
                        let delay = self.backoff(attempt);
                        tracing::warn!(attempt, retry_in_ms = delay.as_millis() as u64, reason = %reason, "platform call failed; retrying");
                        tokio::time::sleep(delay).await;
                    }
                    last = reason;
                }
            }
        }
        Err(PlatformError::Unavailable(last))
    }

    /// One JSON-RPC request (sent as a batch of one, as the AP expects).
    async fn rpc(&self, method: &str, params: Value) -> Result<Value, PlatformError> {
        self.rpc_reply(method, params)
            .await?
            .map_err(|(code, message)| match code {
                -32603 => PlatformError::Unavailable(format!("{method}: {message}")),
                _ if message.contains("is not found") => PlatformError::NotFound,
                _ => PlatformError::Rejected(format!("{method} ({code}): {message}")),
            })
    }

    /// One JSON-RPC request: its result, or its error's code and message.
    async fn rpc_reply(
        &self,
        method: &str,
        params: Value,
    ) -> Result<Result<Value, (i64, String)>, PlatformError> {
        let id = self.rpc_id.fetch_add(1, Ordering::Relaxed);
        let body = json!([{"jsonrpc": "2.0", "id": id, "method": method, "params": params}]);
        let answer = self.call(Method::POST, "/", &[], Some(&body)).await?;
        let reply = answer
            .as_array()
            .and_then(|a| {
                a.iter()
                    .find(|r| r.get("id").and_then(Value::as_u64) == Some(id))
            })
            .or_else(|| answer.as_array().and_then(|a| a.first()))
            .ok_or_else(|| {
                PlatformError::Rejected(format!("{method}: the answer is not a JSON-RPC batch"))
            })?;
        if let Some(error) = reply.get("error") {
            let code = error.get("code").and_then(Value::as_i64).unwrap_or(0);
            let message = error
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("no message")
                .to_owned();
            return Ok(Err((code, message)));
        }
        reply.get("result").cloned().map(Ok).ok_or_else(|| {
            PlatformError::Rejected(format!("{method}: the answer has neither result nor error"))
        })
    }
}

/// JSON-RPC's "method not found".
const METHOD_NOT_FOUND: i64 = -32601;

fn order_by(o: OrderBy) -> &'static str {
    match o {
        OrderBy::CreatedAt => "created_at",
        OrderBy::TransferReceivedAt => "transfer_received_at",
    }
}

fn order(o: Order) -> &'static str {
    match o {
        Order::Asc => "asc",
        Order::Desc => "desc",
    }
}

fn records(value: &Value) -> Result<Vec<Transaction>, PlatformError> {
    value
        .get("records")
        .and_then(Value::as_array)
        .ok_or_else(|| PlatformError::Rejected("the answer has no records".into()))?
        .iter()
        .map(wire::transaction)
        .collect()
}

#[async_trait]
impl PlatformClient for HttpPlatform {
    #[tracing::instrument(skip_all, fields(page = query.page_number))]
    async fn transactions(
        &self,
        query: &TransactionQuery,
    ) -> Result<Vec<Transaction>, PlatformError> {
        let statuses: Vec<&str> = query.statuses.iter().map(|s| s.as_str()).collect();
        match self.config.api {
            ApiStyle::Rest => {
                let mut params = vec![
                    ("sep", "31".to_owned()),
                    ("order_by", order_by(query.order_by).to_owned()),
                    ("order", order(query.order).to_owned()),
                    ("page_number", query.page_number.to_string()),
                    ("page_size", query.page_size.to_string()),
                ];
                if !statuses.is_empty() {
                    params.push(("statuses", statuses.join(",")));
                }
                records(
                    &self
                        .call(Method::GET, "/transactions", &params, None)
                        .await?,
                )
            }
            ApiStyle::Rpc => {
                // The AP's code reads upper-case enum values and explicit paging.
                let mut params = json!({
                    "sep": "31",
                    "order_by": order_by(query.order_by).to_uppercase(),
                    "order": order(query.order).to_uppercase(),
                    "page_number": query.page_number,
                    "page_size": query.page_size,
                });
                if !statuses.is_empty() {
                    params["statuses"] = json!(statuses);
                }
                records(&self.rpc("get_transactions", params).await?)
            }
        }
    }

    #[tracing::instrument(skip_all, fields(transaction.id = %id))]
    async fn transaction(&self, id: &TransactionId) -> Result<Transaction, PlatformError> {
        let value = match self.config.api {
            ApiStyle::Rest => {
                let path = format!("/transactions/{}", path_segment(id.as_str()));
                self.call(Method::GET, &path, &[], None).await?
            }
            ApiStyle::Rpc => {
                self.rpc("get_transaction", json!({"transaction_id": id.as_str()}))
                    .await?
            }
        };
        wire::transaction(&value)
    }

    #[tracing::instrument(skip_all, fields(transaction.id = %update.id))]
    async fn update(&self, update: &TransactionUpdate) -> Result<Transaction, PlatformError> {
        match self.config.api {
            ApiStyle::Rest => {
                let body = json!({"records": [{"transaction": wire::patch(update)?}]});
                let answer = self
                    .call(Method::PATCH, "/transactions", &[], Some(&body))
                    .await?;
                records(&answer)?
                    .into_iter()
                    .next()
                    .ok_or_else(|| PlatformError::Rejected("PATCH answered no record".into()))
            }
            ApiStyle::Rpc => {
                let (method, params) = wire::rpc(update);
                if let TransactionChange::CustomerInfoNeeded { .. } = update.change {
                    // AP 2.3–2.12 has request_customer_info_update; 3.x removed
                    // it, and its notify_customer_info_updated reads the
                    // customer's status from GET /customer instead.
                    let mut request = json!({"transaction_id": update.id.as_str()});
                    if let Some(message) = &update.message {
                        request["message"] = json!(message);
                    }
                    match self
                        .rpc_reply("request_customer_info_update", request)
                        .await?
                    {
                        Ok(value) => return wire::transaction(&value),
                        Err((METHOD_NOT_FOUND, _)) => {}
                        Err((code, message)) => {
                            return Err(PlatformError::Rejected(format!(
                                "request_customer_info_update ({code}): {message}"
                            )));
                        }
                    }
                }
                wire::transaction(&self.rpc(method, params).await?)
            }
        }
    }
}

/// How long the readiness check waits for the AP.
const READY_TIMEOUT: Duration = Duration::from_secs(2);

/// Ready when the AP answers one cheap read, once (no retries), within
/// [`READY_TIMEOUT`], and does not refuse Mooring's credentials.
#[async_trait]
impl ReadinessCheck for HttpPlatform {
    fn name(&self) -> &'static str {
        "platform"
    }

    async fn check(&self) -> Result<(), String> {
        let probe = async {
            match self.config.api {
                ApiStyle::Rest => {
                    let params = [
                        ("sep", "31".to_owned()),
                        ("page_number", "0".to_owned()),
                        ("page_size", "1".to_owned()),
                    ];
                    self.attempt(Method::GET, "/transactions", &params, None)
                        .await
                }
                ApiStyle::Rpc => {
                    // AP 2.x has no get_transactions: its "method not found"
                    // answer still shows the AP up and the credentials good.
                    let body = json!([{"jsonrpc": "2.0", "id": 0, "method": "get_transactions",
                        "params": {"sep": "31", "page_number": 0, "page_size": 1}}]);
                    self.attempt(Method::POST, "/", &[], Some(&body)).await
                }
            }
        };
        match tokio::time::timeout(READY_TIMEOUT, probe).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(Attempt::Retry(reason))) => {
                Err(format!("the platform is unreachable: {reason}"))
            }
            Ok(Err(Attempt::Fail(e))) => Err(e.to_string()),
            Err(_) => Err(format!(
                "the platform did not answer within {} ms",
                READY_TIMEOUT.as_millis()
            )),
        }
    }
}

/// `text` as one URL path segment: every byte but the unreserved ones
/// (RFC 3986: letters, digits, `-._~`) percent-encoded, so that an id with a
/// `/`, `?` or `#` names one transaction and nothing else.
fn path_segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_id_is_one_path_segment() {
        assert_eq!(super::path_segment("t-1_a.b~"), "t-1_a.b~");
        assert_eq!(
            super::path_segment("../a/b?c=1#d e%ü"),
            "..%2Fa%2Fb%3Fc%3D1%23d%20e%25%C3%BC"
        );
    }
}
