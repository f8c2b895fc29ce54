//! The platform client port: what the engine asks of the Anchor Platform's
//! Platform API (read transactions, page through them, move them on),
//! whichever wire (REST on 2.x, JSON-RPC on 2.3+) the adapter speaks.

use async_trait::async_trait;
use mooring_domain::transaction::{
    Transaction, TransactionId, TransactionStatus, TransactionUpdate,
};

/// How a page of transactions is sorted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderBy {
    CreatedAt,
    TransferReceivedAt,
}

/// Ascending or descending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    Asc,
    Desc,
}

/// One page of SEP-31 transactions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionQuery {
    pub order_by: OrderBy,
    pub order: Order,
    /// Empty: every status.
    pub statuses: Vec<TransactionStatus>,
    /// 0-based.
    pub page_number: u32,
    pub page_size: u32,
}

/// Errors of a [`PlatformClient`].
#[derive(Debug, thiserror::Error)]
pub enum PlatformError {
    #[error("transaction not found")]
    NotFound,
    /// The AP refused the request (a 4xx, or a JSON-RPC invalid request or
    /// params): retrying it unchanged cannot succeed.
    #[error("the platform refused the request: {0}")]
    Rejected(String),
    /// The AP could not be reached or failed (network, timeout, 5xx), after
    /// the client's own retries.
    #[error("the platform is unavailable: {0}")]
    Unavailable(String),
}

/// The Anchor Platform's Platform API, REST (AP 2.x) or JSON-RPC (AP 2.3+).
#[async_trait]
pub trait PlatformClient: Send + Sync + 'static {
    /// One page of SEP-31 transactions.
    async fn transactions(
        &self,
        query: &TransactionQuery,
    ) -> Result<Vec<Transaction>, PlatformError>;

    /// One transaction; `NotFound` when the AP does not know it.
    async fn transaction(&self, id: &TransactionId) -> Result<Transaction, PlatformError>;

    /// Applies one update and returns the transaction as the AP has it after.
    async fn update(&self, update: &TransactionUpdate) -> Result<Transaction, PlatformError>;
}
