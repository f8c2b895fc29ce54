//! The ports of Mooring: the traits through which the use cases reach the
//! world (the KYC store, the clock; the rate source, custodian, platform
//! client and payout rail join as their issues land).
//!
//! A port speaks only in domain types. It must not know HTTP, SQL, JSON or
//! any runtime: implementations live in adapter crates, and each port's
//! error enum says which variant an implementation must return when.

mod clock;
mod kyc;

pub use clock::{Clock, SystemClock};
pub use kyc::{CustomerTarget, FileUpload, KycStore, KycStoreError, PutCustomer};
