//! Use-case tests against in-memory fake ports.

mod fakes;
mod kyc;
mod quotes;
