//! Mooring's payout rails, behind the `PayoutRail` port.
//!
//! - [`SimulatedRail`]: for development and tests. Pays after a configurable
//!   delay, fails a configurable share of payouts, and keeps a record of
//!   every payout (in memory, so one process only).
//! - [`HttpRail`]: a payout provider over HTTP. `POST {url}` with an
//!   `Idempotency-Key` header (the same on every retry of one payout) and
//!   `{"transaction_id", "amount", "asset", "delivery_method"?, "receiver":
//!   {"id", <SEP-9 fields>}}`; the provider answers 200/201 `{"id", "status":
//!   "pending" | "completed" | "failed", "message"?}`, the same payout for a
//!   repeated key; `GET {url}/{id}` follows a pending payout.
//!
//! This crate must not know the store, the HTTP server or any other adapter.

mod http;
mod simulated;

pub use http::{HttpRail, RailAuth};
pub use simulated::{SimulatedPayout, SimulatedRail};
