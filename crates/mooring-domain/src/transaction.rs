//! SEP-31 transactions as the Anchor Platform holds them, and the moves the
//! business server makes on them.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

use crate::{AssetId, Memo, StellarAccount};

/// An AP transaction id (a UUID in practice; kept as the AP sends it):
/// the one check of a transaction id, wherever one comes in.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TransactionId(String);

/// Why a string is not a transaction id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("transaction_id must be 1 to 256 characters, without control characters")]
pub struct InvalidTransactionId;

impl TransactionId {
    /// The longest id kept (AP ids are UUIDs).
    pub const MAX_LEN: usize = 256;

    pub fn parse(s: &str) -> Result<Self, InvalidTransactionId> {
        if s.is_empty() || s.len() > Self::MAX_LEN || s.chars().any(char::is_control) {
            return Err(InvalidTransactionId);
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for TransactionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(&self.0)
    }
}

/// The AP's transaction statuses that matter to a SEP-31 receiver; any
/// other is kept by name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TransactionStatus {
    PendingSender,
    PendingReceiver,
    PendingExternal,
    PendingCustomerInfoUpdate,
    PendingTransactionInfoUpdate,
    PendingStellar,
    Completed,
    Refunded,
    Expired,
    Error,
    Other(String),
}

impl TransactionStatus {
    pub fn parse(s: &str) -> Self {
        match s {
            "pending_sender" => Self::PendingSender,
            "pending_receiver" => Self::PendingReceiver,
            "pending_external" => Self::PendingExternal,
            "pending_customer_info_update" => Self::PendingCustomerInfoUpdate,
            "pending_transaction_info_update" => Self::PendingTransactionInfoUpdate,
            "pending_stellar" => Self::PendingStellar,
            "completed" => Self::Completed,
            "refunded" => Self::Refunded,
            "expired" => Self::Expired,
            "error" => Self::Error,
            other => Self::Other(other.to_owned()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Self::PendingSender => "pending_sender",
            Self::PendingReceiver => "pending_receiver",
            Self::PendingExternal => "pending_external",
            Self::PendingCustomerInfoUpdate => "pending_customer_info_update",
            Self::PendingTransactionInfoUpdate => "pending_transaction_info_update",
            Self::PendingStellar => "pending_stellar",
            Self::Completed => "completed",
            Self::Refunded => "refunded",
            Self::Expired => "expired",
            Self::Error => "error",
            Self::Other(s) => s,
        }
    }

    /// Completed or refunded: nothing more happens.
    pub fn is_final(&self) -> bool {
        matches!(self, Self::Completed | Self::Refunded)
    }
}

/// An amount of an asset. The asset is in its one SEP-38 spelling
/// ([`AssetId::from_ap`] reads the AP's others), so amounts of one asset
/// compare by equality.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Amount {
    pub amount: Decimal,
    pub asset: AssetId,
}

impl Amount {
    pub fn new(amount: Decimal, asset: AssetId) -> Self {
        Self { amount, asset }
    }
}

/// A SEP-31 transaction, as much of it as the business server uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transaction {
    pub id: TransactionId,
    pub sep: String,
    pub kind: Option<String>,
    pub status: TransactionStatus,
    pub amount_expected: Option<Amount>,
    pub amount_in: Option<Amount>,
    pub amount_out: Option<Amount>,
    /// `fee_details.total` (2.7+), else `amount_fee`; a fee written with
    /// no asset is in the asset received.
    pub fee: Option<Amount>,
    pub quote_id: Option<String>,
    pub sender_id: Option<String>,
    pub receiver_id: Option<String>,
    pub started_at: Option<DateTime<Utc>>,
    pub updated_at: Option<DateTime<Utc>>,
    pub transfer_received_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
    pub stellar_transaction_ids: Vec<String>,
    pub external_transaction_id: Option<String>,
    pub message: Option<String>,
    /// The money fields the AP wrote that could not be read (an amount
    /// that is no number, an asset that is no asset): the funds check
    /// refuses such a transaction rather than skip the field.
    pub unreadable: Vec<&'static str>,
}

/// A move the business server makes on a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransactionChange {
    /// The payout is under way off-chain (→ `pending_external`).
    OffchainFundsPending {
        external_transaction_id: Option<String>,
    },
    /// The payout was made (→ `completed`).
    OffchainFundsSent {
        external_transaction_id: Option<String>,
        funds_sent_at: DateTime<Utc>,
        amount_out: Option<Amount>,
    },
    /// The receiver must complete their KYC (→ `pending_customer_info_update`).
    CustomerInfoNeeded {
        customer_id: String,
        customer_type: String,
    },
    /// The receiver's KYC is complete again (→ `pending_receiver`).
    CustomerInfoUpdated {
        customer_id: String,
        customer_type: String,
    },
    /// The transaction failed; the message says why (→ `error`).
    Error,
    /// The operator fixed what failed; the transaction resumes
    /// (`error` → `pending_receiver`).
    Recover,
    /// The funds went back to the sender (→ `refunded`): the refund's
    /// reference (a Stellar transaction hash), the amount returned and the
    /// fee kept (their total is the amount received).
    RefundSent {
        reference: String,
        amount: Amount,
        fee: Amount,
        refunded_at: DateTime<Utc>,
    },
    /// AP 3.x+: ask the sender to pay (→ `pending_sender`).
    RequestOnchainFunds {
        amount_in: Amount,
        amount_out: Amount,
        fee: Amount,
        amount_expected: Amount,
        destination_account: StellarAccount,
        memo: Option<Memo>,
    },
}

/// One update of one transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionUpdate {
    pub id: TransactionId,
    pub message: Option<String>,
    pub change: TransactionChange,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_round_trip_and_unknown_ones_are_kept() {
        for s in [
            "pending_sender",
            "pending_receiver",
            "pending_external",
            "completed",
            "error",
            "expired",
            "refunded",
        ] {
            assert_eq!(TransactionStatus::parse(s).as_str(), s);
        }
        assert_eq!(
            TransactionStatus::parse("on_hold"),
            TransactionStatus::Other("on_hold".into())
        );
        assert!(
            TransactionStatus::Completed.is_final()
                && !TransactionStatus::PendingReceiver.is_final()
        );
    }

    #[test]
    fn transaction_ids() {
        assert!(TransactionId::parse("82fhs729f63dh0v4").is_ok());
        assert!(TransactionId::parse("").is_err());
        assert!(TransactionId::parse("a\nb").is_err());
        assert!(TransactionId::parse(&"x".repeat(TransactionId::MAX_LEN)).is_ok());
        assert!(TransactionId::parse(&"x".repeat(TransactionId::MAX_LEN + 1)).is_err());
    }
}
