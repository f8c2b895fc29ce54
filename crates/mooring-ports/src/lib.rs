//! The ports of Mooring: the traits through which the use cases reach the
//! world: the KYC store, the quote store, the rate source, the custodian and
//! the deposit addresses it gave, the Anchor Platform's Platform API, the
//! clock, the payout ledger with its event inbox, the payout rail, the
//! key-encryption key that guards customer data at rest, the audit trail,
//! retention, the back office's users, sessions and maker-checker
//! requests, and the readiness check of each dependency.
//!
//! A port speaks only in domain types. It must not know HTTP, SQL, JSON or
//! any runtime: implementations live in adapter crates, and each port's
//! error enum says which variant an implementation must return when.

mod audit;
mod clock;
mod deposit;
mod health;
mod keys;
mod kyc;
mod payout;
mod platform;
mod quotes;
mod rates;
mod retention;
mod staff;

pub use audit::{AuditError, AuditLog, AuditQuery, AuditRecord};
pub use clock::{Clock, SystemClock};
pub use deposit::{Custodian, CustodianError, DepositAddressStore};
pub use health::ReadinessCheck;
pub use keys::{DataKey, KEY_LEN, KeyEncryptionKey, KeyError, WrappedKey};
pub use kyc::{CustomerTarget, FileUpload, KycStore, KycStoreError, PutCustomer};
pub use payout::{
    Claim, Claimed, EventStore, InboxEvent, LedgerError, OperatorEdit, PayoutChange, PayoutLedger,
    PayoutOrder, PayoutRail, PollMarks, RailError, RailReceipt, RailStatus,
};
pub use platform::{Order, OrderBy, PlatformClient, PlatformError, TransactionQuery};
pub use quotes::{QuoteStore, QuoteStoreError};
pub use rates::{RateSource, RateSourceError};
pub use retention::{Retention, RetentionError};
pub use staff::{RequestBook, RequestError, StaffError, StaffSession, StaffStore, StaffUser};
