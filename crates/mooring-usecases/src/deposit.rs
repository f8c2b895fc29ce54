//! `GET /unique_address` (AP 2.x, `deposit_info_generator_type: api`): the
//! deposit address of a SEP-31 transaction, the same one every time.

use std::sync::Arc;

use mooring_domain::deposit::DepositAddress;
use mooring_domain::transaction::TransactionId;
use mooring_ports::{Custodian, CustodianError, DepositAddressStore};

/// Errors of the deposit-address use case.
#[derive(Debug, thiserror::Error)]
pub enum DepositError {
    #[error("{0}")]
    BadRequest(String),
    /// No custodian configured, or it cannot answer now.
    #[error("{0}")]
    Unavailable(String),
    #[error(transparent)]
    Unknown(anyhow::Error),
}

impl From<CustodianError> for DepositError {
    fn from(e: CustodianError) -> Self {
        match e {
            e @ (CustodianError::NotConfigured(_) | CustodianError::Unavailable(_)) => {
                Self::Unavailable(e.to_string())
            }
            CustodianError::Unknown(e) => Self::Unknown(e),
        }
    }
}

/// Hands out deposit addresses and keeps them.
#[derive(Clone)]
pub struct DepositService {
    custodian: Arc<dyn Custodian>,
    addresses: Arc<dyn DepositAddressStore>,
}

impl DepositService {
    pub fn new(custodian: Arc<dyn Custodian>, addresses: Arc<dyn DepositAddressStore>) -> Self {
        Self {
            custodian,
            addresses,
        }
    }

    /// The transaction's deposit address: the one already given, else a new
    /// one from the custodian, kept for good.
    pub async fn unique_address(
        &self,
        transaction_id: &str,
    ) -> Result<DepositAddress, DepositError> {
        TransactionId::parse(transaction_id)
            .map_err(|e| DepositError::BadRequest(e.to_string()))?;
        if let Some(address) = self.addresses.deposit_address_of(transaction_id).await? {
            return Ok(address);
        }
        let address = self.custodian.deposit_address(transaction_id).await?;
        let kept = self
            .addresses
            .keep_first_deposit_address(transaction_id, &address)
            .await?;
        tracing::info!(transaction.id = transaction_id, "deposit address given");
        Ok(kept)
    }
}

/// The custodian when none is configured: every request says how to set one.
pub struct NoCustodian;

#[async_trait::async_trait]
impl Custodian for NoCustodian {
    async fn deposit_address(
        &self,
        _transaction_id: &str,
    ) -> Result<DepositAddress, CustodianError> {
        Err(CustodianError::NotConfigured(
            "no custodian is configured: set custodian.distribution_account (MOORING__CUSTODIAN__DISTRIBUTION_ACCOUNT) or custodian.type = \"http\"".into(),
        ))
    }
}
