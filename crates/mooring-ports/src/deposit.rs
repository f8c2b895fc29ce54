//! The custodian port and the deposit-address store: where a sender pays a
//! transaction (`GET /unique_address`), and the address kept for it.

use async_trait::async_trait;
use mooring_domain::deposit::DepositAddress;

/// Errors of a [`Custodian`] or a [`DepositAddressStore`].
#[derive(Debug, thiserror::Error)]
pub enum CustodianError {
    /// No custodian is configured to hand out addresses.
    #[error("{0}")]
    NotConfigured(String),
    /// The custodian did not answer usably (down, timed out, malformed).
    #[error("the custodian is unavailable: {0}")]
    Unavailable(String),
    #[error(transparent)]
    Unknown(#[from] anyhow::Error),
}

/// Who hands out deposit addresses: the anchor itself (one distribution
/// account, a memo per transaction) or a custodian service.
#[async_trait]
pub trait Custodian: Send + Sync + 'static {
    /// A deposit address for the transaction. An implementation should give
    /// the same transaction the same address; [`DepositAddressStore`] keeps
    /// the first one given regardless.
    async fn deposit_address(&self, transaction_id: &str)
    -> Result<DepositAddress, CustodianError>;
}

/// The deposit addresses given out, one per transaction, for good.
#[async_trait]
pub trait DepositAddressStore: Send + Sync + 'static {
    /// The address given to the transaction, if any.
    async fn deposit_address_of(
        &self,
        transaction_id: &str,
    ) -> Result<Option<DepositAddress>, CustodianError>;

    /// Records the transaction's address, unless one is recorded already:
    /// returns the one that stays (the first).
    async fn keep_first_deposit_address(
        &self,
        transaction_id: &str,
        address: &DepositAddress,
    ) -> Result<DepositAddress, CustodianError>;
}
