//! Use-case tests against in-memory fake ports.

mod approval;
mod contracts;
mod deposit;
mod fakes;
mod hostile;
mod kyc;
mod ops;
mod payout;
mod quotes;
mod requests;
mod retention;
mod simulation;
mod staff;
