//! Mooring's HTTP custodian adapter, behind the `Custodian` port: asks a
//! custodian service for the deposit address of a SEP-31 transaction.
//!
//! The protocol: `POST {url}` with `{"transaction_id": "…"}`; the service
//! answers 200 `{"stellar_address": "G… or M…", "memo": "…", "memo_type":
//! "id" | "hash" | "text"}` (`memo` and `memo_type` optional) and should
//! answer the same transaction the same way. Mooring keeps the first answer
//! per transaction whatever the service does later. This crate must not know
//! the store, the HTTP server or any other adapter.

use std::time::Duration;

use async_trait::async_trait;
use mooring_domain::deposit::DepositAddress;
use mooring_domain::{Memo, StellarAccount};
use mooring_ports::{Custodian, CustodianError};
use serde::Deserialize;

/// A custodian service over HTTP.
pub struct HttpCustodian {
    url: String,
    client: reqwest::Client,
}

#[derive(Deserialize)]
struct Answer {
    stellar_address: String,
    memo: Option<String>,
    memo_type: Option<String>,
}

impl HttpCustodian {
    pub fn new(url: String, timeout: Duration) -> Result<Self, CustodianError> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| CustodianError::Unknown(e.without_url().into()))?;
        Ok(Self { url, client })
    }
}

fn unavailable(what: impl std::fmt::Display) -> CustodianError {
    CustodianError::Unavailable(what.to_string())
}

#[async_trait]
impl Custodian for HttpCustodian {
    #[tracing::instrument(skip_all, fields(transaction.id = %transaction_id))]
    async fn deposit_address(
        &self,
        transaction_id: &str,
    ) -> Result<DepositAddress, CustodianError> {
        let response = self
            .client
            .post(&self.url)
            .json(&serde_json::json!({ "transaction_id": transaction_id }))
            .send()
            .await
            .map_err(|e| unavailable(format!("request failed: {}", e.without_url())))?;
        let status = response.status();
        if !status.is_success() {
            return Err(unavailable(format!("it answered {status}")));
        }
        let answer: Answer = response.json().await.map_err(|e| {
            unavailable(format!(
                "its answer is not the expected JSON: {}",
                e.without_url()
            ))
        })?;
        let account = StellarAccount::parse(&answer.stellar_address)
            .map_err(|e| unavailable(format!("stellar_address: {e}")))?;
        let memo = Memo::parse_optional(answer.memo.as_deref(), answer.memo_type.as_deref())
            .map_err(|e| unavailable(format!("memo: {e}")))?;
        Ok(DepositAddress { account, memo })
    }
}
