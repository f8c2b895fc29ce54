//! The domain of Mooring, the business server for the Stellar Anchor Platform.
//!
//! This crate holds the types and rules of the business: Stellar accounts and
//! memos, SEP-38 asset names and their decimals, customers and their SEP-9
//! fields, and how a customer's KYC status follows from what they provided;
//! quotes and fees, priced so that the Anchor Platform accepts every answer.
//! SEP-31 transactions as the AP holds them, and the payout ledger's state
//! machine with the checks made before paying; and the audit trail's
//! actors, actions and entries; and the back office's people, roles,
//! sessions and maker-checker rule.
//!
//! It must not know HTTP, SQL, JSON or any I/O: it depends on no workspace
//! crate and on no I/O crate (actix, diesel, reqwest, tokio, serde). Values
//! are parsed once at the edge into types that cannot hold an invalid state
//! ("parse, don't validate"); adapters convert to and from their own wire and
//! row types.

pub mod asset;
pub mod audit;
pub mod customer;
pub mod deposit;
pub mod payout;
pub mod quote;
pub mod staff;
pub mod stellar;
pub mod transaction;

pub use asset::{AssetCatalog, AssetId, AssetInfo, Sep31Types};
pub use stellar::{Memo, MemoType, StellarAccount};
