//! The event inbox as `POST /event` sees it: events kept durably, once
//! each; their meaning is applied by the engine's event loop
//! ([`mooring_ports::EventStore::apply_events`]).

use std::sync::Arc;

use chrono::{DateTime, Utc};
use mooring_domain::payout::EventFacts;
use mooring_domain::transaction::TransactionId;
use mooring_ports::{EventStore, InboxEvent, LedgerError};

/// An event as `POST /event` received and parsed it.
#[derive(Debug, Clone)]
pub struct ReceivedEvent {
    /// The AP's event id: the inbox's key.
    pub id: String,
    pub kind: String,
    /// The event's own `timestamp`, else when it arrived.
    pub occurred_at: DateTime<Utc>,
    pub received_at: DateTime<Utc>,
    pub facts: EventFacts,
    /// The event as received (JSON).
    pub body: String,
}

impl ReceivedEvent {
    /// The event as the inbox keeps it: with its meaning, which the domain
    /// gives ([`EventFacts::meaning`]).
    pub fn into_inbox(self) -> InboxEvent {
        let meaning = self.facts.meaning();
        let (transaction_id, sighting) = meaning
            .sighting
            .map_or((None, None), |(id, s)| (Some(id), Some(s)));
        InboxEvent {
            id: self.id,
            kind: self.kind,
            occurred_at: self.occurred_at,
            received_at: self.received_at,
            transaction_id,
            sighting,
            customer_id: meaning.wake_customer,
            body: self.body,
        }
    }
}

/// The event inbox as `POST /event` sees it.
#[derive(Clone)]
pub struct EventInbox {
    events: Arc<dyn EventStore>,
    /// Called after a new event is kept (wakes the engine's event loop).
    on_new: Option<Arc<dyn Fn() + Send + Sync>>,
}

impl EventInbox {
    pub fn new(events: Arc<dyn EventStore>) -> Self {
        Self {
            events,
            on_new: None,
        }
    }

    /// Calls `wake` after each new event is kept, so that it is applied at
    /// once rather than at the event loop's next tick.
    pub fn waking(mut self, wake: impl Fn() + Send + Sync + 'static) -> Self {
        self.on_new = Some(Arc::new(wake));
        self
    }

    /// Keeps a received event durably (once per id), with its meaning;
    /// whether it was new.
    pub async fn receive(&self, event: ReceivedEvent) -> Result<bool, LedgerError> {
        self.accept(&event.into_inbox()).await
    }

    /// Keeps the event durably (once per id); whether it was new.
    pub async fn accept(&self, event: &InboxEvent) -> Result<bool, LedgerError> {
        let new = self.events.accept_event(event).await?;
        if new {
            if let Some(wake) = &self.on_new {
                wake();
            }
            tracing::info!(event.id = %event.id, event.kind = %event.kind, transaction.id = ?event.transaction_id.as_ref().map(TransactionId::as_str), "event received");
        } else {
            tracing::info!(event.id = %event.id, "duplicate event acknowledged");
        }
        Ok(new)
    }

    pub async fn depth(&self) -> Result<u64, LedgerError> {
        self.events.inbox_depth().await
    }
}
