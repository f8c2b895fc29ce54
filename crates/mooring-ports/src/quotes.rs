//! The quote store port: firm quotes, the liquidity they reserve, and the
//! fee details `GET /rate` hands back.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mooring_domain::AssetId;
use mooring_domain::quote::{Quote, QuoteId};
use rust_decimal::Decimal;

/// Errors of a [`QuoteStore`].
#[derive(Debug, thiserror::Error)]
pub enum QuoteStoreError {
    #[error("quote not found")]
    NotFound,
    #[error("quote expired")]
    Expired,
    #[error("quote already used by transaction {transaction_id}")]
    AlreadyUsed { transaction_id: String },
    #[error("insufficient liquidity")]
    InsufficientLiquidity,
    #[error(transparent)]
    Unknown(#[from] anyhow::Error),
}

/// Where firm quotes live, and the liquidity they hold.
///
/// An unexpired quote that no transaction has used reserves its buy amount
/// of the buy asset; an expired or used one reserves nothing, with no
/// background job needed.
#[async_trait]
pub trait QuoteStore: Send + Sync + 'static {
    /// Stores a firm quote. With a `limit`, refuses with
    /// `InsufficientLiquidity` when the quotes reserving the buy asset at
    /// `now`, this one included, would hold more than `limit`. Atomic: of
    /// concurrent calls racing for the last liquidity, exactly the ones
    /// that fit succeed, across processes sharing the database.
    async fn create_firm(
        &self,
        quote: &Quote,
        limit: Option<Decimal>,
        now: DateTime<Utc>,
    ) -> Result<(), QuoteStoreError>;

    /// A quote by id, if any.
    async fn get(&self, id: &QuoteId) -> Result<Option<Quote>, QuoteStoreError>;

    /// Marks the quote used by a transaction: single use. The same
    /// transaction again succeeds (a retry); another transaction gets
    /// `AlreadyUsed`; an expired quote `Expired`; an unknown one `NotFound`.
    async fn mark_used(
        &self,
        id: &QuoteId,
        transaction_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Quote, QuoteStoreError>;

    /// The newest quotes first, at most `limit`.
    async fn list(&self, limit: usize) -> Result<Vec<Quote>, QuoteStoreError>;

    /// The buy amount of `asset` the reserving quotes hold at `now`.
    async fn reserved(
        &self,
        asset: &AssetId,
        now: DateTime<Utc>,
    ) -> Result<Decimal, QuoteStoreError>;
}
