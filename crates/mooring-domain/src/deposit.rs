//! Where a sending organization pays a SEP-31 transaction: a Stellar account
//! and a memo unique to the transaction (AP 2.x `GET /unique_address`).

use crate::{Memo, MemoType, StellarAccount};

/// A deposit address: the account, and the memo that tells this
/// transaction's payment apart from every other one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DepositAddress {
    pub account: StellarAccount,
    pub memo: Option<Memo>,
}

/// Which memos the anchor's own custodian hands out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DepositMemoKind {
    /// A 64-bit number from a sequence that never goes back.
    Id,
    /// 32 random bytes, base64 (as the AP validates hash memos).
    Hash,
}

impl DepositMemoKind {
    pub fn memo_type(self) -> MemoType {
        match self {
            Self::Id => MemoType::Id,
            Self::Hash => MemoType::Hash,
        }
    }
}
