//! The AP's events (`POST /event`, AP 2.2.1+): the envelope, and the
//! transaction or customer its payload carries.

use chrono::{DateTime, Utc};
use mooring_domain::payout::{EventFacts, EventTransaction};
use mooring_domain::transaction::TransactionStatus;
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::error::Category;

use crate::de::{object, string};
use crate::transaction::{IdDto, TransactionDto};

/// The longest event id kept (AP ids are UUIDs).
pub const MAX_EVENT_ID_LEN: usize = 256;

/// An event as the AP sends it: the fields Mooring reads.
#[derive(Debug, Deserialize)]
pub struct EventDto {
    /// A string: the AP's event ids are UUIDs.
    #[serde(default, deserialize_with = "string")]
    pub id: Option<String>,
    #[serde(rename = "type", default, deserialize_with = "string")]
    pub kind: Option<String>,
    #[serde(default, deserialize_with = "string")]
    pub timestamp: Option<String>,
    #[serde(default, deserialize_with = "object")]
    pub payload: Option<PayloadDto>,
}

/// What an event is about.
#[derive(Debug, Default, Deserialize)]
pub struct PayloadDto {
    #[serde(default, deserialize_with = "object")]
    pub transaction: Option<TransactionDto>,
    #[serde(default, deserialize_with = "object")]
    pub customer: Option<IdDto>,
}

/// Why a body is not an event; the text is for the sender's 400.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    #[error("the event is not valid JSON: {0}")]
    NotJson(String),
    #[error("the event must be a JSON object")]
    NotAnObject,
    #[error("the event has no id")]
    NoId,
    #[error("the event id must be 1 to {MAX_EVENT_ID_LEN} characters, without control characters")]
    BadId,
    #[error("the event has no type")]
    NoType,
}

/// An event read: its id and type, when it happened, and what it says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub id: String,
    pub kind: String,
    pub occurred_at: Option<DateTime<Utc>>,
    pub facts: EventFacts,
}

impl EventDto {
    /// Reads an event from its body. Only parses: the event's meaning is
    /// the domain's ([`EventFacts::meaning`]).
    pub fn parse(body: &[u8]) -> Result<Event, EventError> {
        if body.trim_ascii_start().first() != Some(&b'{') {
            // serde reads a struct from an array too: only an object is one.
            return Err(match serde_json::from_slice::<IgnoredAny>(body) {
                Ok(_) => EventError::NotAnObject,
                Err(e) => EventError::NotJson(e.to_string()),
            });
        }
        let dto: Self = serde_json::from_slice(body).map_err(|e| match e.classify() {
            Category::Data => EventError::NotAnObject,
            Category::Io | Category::Syntax | Category::Eof => EventError::NotJson(e.to_string()),
        })?;
        let id = dto.id.ok_or(EventError::NoId)?;
        if id.len() > MAX_EVENT_ID_LEN || id.chars().any(char::is_control) {
            return Err(EventError::BadId);
        }
        let kind = plain_type(&dto.kind.ok_or(EventError::NoType)?);
        let occurred_at = dto
            .timestamp
            .as_deref()
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc));
        let payload = dto.payload.unwrap_or_default();
        let transaction = payload.transaction.map(|t| EventTransaction {
            id: t.transaction_id(),
            sep: t.sep.clone().unwrap_or_default(),
            status: t.status.as_deref().map(TransactionStatus::parse),
            funded: t.transfer_received_at.is_some(),
        });
        Ok(Event {
            id,
            kind,
            occurred_at,
            facts: EventFacts {
                transaction,
                customer_id: payload.customer.and_then(|c| c.id),
            },
        })
    }
}

/// Longest event type kept; the AP's are short snake_case names.
pub const MAX_EVENT_TYPE_LEN: usize = 64;

/// An event's type as it may be logged and stored: at most
/// [`MAX_EVENT_TYPE_LEN`] characters, each a letter, digit or one of `_ . -
/// :`; any other becomes `?` (an unknown type is acknowledged, not refused,
/// so that the AP moves on).
pub fn plain_type(kind: &str) -> String {
    kind.chars()
        .take(MAX_EVENT_TYPE_LEN)
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | ':') {
                c
            } else {
                '?'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_type_is_bounded_and_plain_before_it_is_logged() {
        assert_eq!(
            plain_type("transaction_status_changed"),
            "transaction_status_changed"
        );
        assert_eq!(plain_type("a\nb\u{1b}[31m c\"d"), "a?b??31m?c?d");
        assert_eq!(plain_type(&"x".repeat(500)).len(), MAX_EVENT_TYPE_LEN);
    }

    #[test]
    fn reads_a_transaction_event() {
        let e = EventDto::parse(
            br#"{"id":"e1","type":"transaction_status_changed","timestamp":"2026-12-01T10:00:00Z",
                "payload":{"transaction":{"id":"t1","sep":"31","status":"pending_receiver",
                "transfer_received_at":"2026-12-01T09:59:00Z","amount_in":7}}}"#,
        )
        .expect("an event");
        assert_eq!(
            (e.id.as_str(), e.kind.as_str()),
            ("e1", "transaction_status_changed")
        );
        assert!(e.occurred_at.is_some());
        let t = e.facts.transaction.expect("a transaction");
        assert_eq!(t.id.map(|i| i.to_string()).as_deref(), Some("t1"));
        assert_eq!(t.sep, "31");
        assert_eq!(t.status, Some(TransactionStatus::PendingReceiver));
        assert!(t.funded);
        assert_eq!(e.facts.customer_id, None);
    }

    #[test]
    fn reads_a_customer_event_and_odd_payloads() {
        let e = EventDto::parse(
            br#"{"id":"e2","type":"customer_updated","payload":{"customer":{"id":"c1"}}}"#,
        )
        .expect("an event");
        assert_eq!(e.facts.customer_id.as_deref(), Some("c1"));
        assert!(e.facts.transaction.is_none() && e.occurred_at.is_none());
        let e = EventDto::parse(br#"{"id":"e3","type":"x","timestamp":"soon","payload":[1]}"#)
            .expect("an event");
        assert_eq!(
            e.facts,
            EventFacts {
                transaction: None,
                customer_id: None
            }
        );
    }

    #[test]
    fn says_why_a_body_is_not_an_event() {
        let long = format!(
            r#"{{"id":"{}","type":"x"}}"#,
            "e".repeat(MAX_EVENT_ID_LEN + 1)
        );
        for (body, error) in [
            (&b"{"[..], "not valid JSON"),
            (b"[1]", "must be a JSON object"),
            (b"{}", "no id"),
            (br#"{"id":"","type":"x"}"#, "no id"),
            (br#"{"id":"a\nb","type":"x"}"#, "1 to 256"),
            (long.as_bytes(), "1 to 256"),
            (br#"{"id":"e"}"#, "no type"),
            (br#"{"id":7,"type":"x"}"#, "no id"),
        ] {
            let e = EventDto::parse(body).expect_err("not an event");
            assert!(e.to_string().contains(error), "{e}");
        }
    }
}
