//! Use-case tests against in-memory fake ports.

mod deposit;
mod fakes;
mod kyc;
mod payout;
mod quotes;
