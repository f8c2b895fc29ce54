//! The Anchor Platform's JSON, in one place: the transaction object of the
//! Platform API (AP 2.x REST, 2.3+ JSON-RPC) and of the events it sends
//! (`POST /event`), read through serde DTOs and turned into the domain's
//! types.
//!
//! The AP is read leniently, as its own clients do: only a transaction's
//! `id` and `status` are required. A field of the wrong type, an empty
//! string, an unreadable time or an amount whose asset is no asset reads as
//! absent, never as an error of the whole object, so that one odd field of
//! a newer AP cannot stop the engine. What the engine then finds missing
//! (no `amount_in`, say) it rejects with its own reason.
//!
//! The Platform client and the HTTP adapter both use this crate; it is a
//! wire library, not an adapter (it does no I/O), and depends on the domain
//! alone.

mod de;
mod event;
mod transaction;

pub use event::{Event, EventDto, EventError, MAX_EVENT_ID_LEN};
pub use transaction::{InvalidTransaction, TransactionDto};
