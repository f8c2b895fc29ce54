//! Mooring's use cases: the application services that the inbound adapters
//! (HTTP, CLI) call, and that drive the domain through the ports.
//!
//! A use case takes domain values, applies the domain's rules and calls
//! ports. It must not know HTTP, SQL or JSON, and must not depend on any
//! adapter crate.

pub mod audit;
pub mod deposit;
pub mod kyc;
pub mod ops;
pub mod payout;
pub mod quotes;
pub mod requests;
pub mod retention;
pub mod staff;

pub use audit::AuditTrail;
pub use deposit::{DepositError, DepositService, NoCustodian};
pub use kyc::{CustomerLookup, CustomerUpdate, CustomerView, KycError, KycService, PartyKyc};
pub use ops::{Gauges, Operations, OpsError, Readiness};
pub use payout::{
    EngineConfig, EngineError, EngineParts, EventInbox, PayoutEngine, ReceivedEvent, RetryMode,
    Settlement, Work,
};
pub use quotes::{
    FeeAmount, FeeRequest, FeeService, QuoteError, QuoteService, QuoteServiceParts, RateRequest,
    RateView,
};
pub use requests::{PayoutRequests, RequestOpError};
pub use retention::{Pruned, Pruner, RetentionPolicy};
pub use staff::{Enrolment, NextStep, SignedIn, StaffOpError, StaffService, Started};
