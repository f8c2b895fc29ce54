//! POST /event (AP 2.2.1+): the AP's events, kept durably in the inbox
//! before the 200, once per event id; applied later, in order, by the
//! payment engine.

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use mooring_apwire::EventDto;
use mooring_usecases::{EventInbox, ReceivedEvent};
use utoipa::ToSchema;

use crate::body::read_limited;
use crate::error::ErrorBody;
use crate::{ApiError, JSON_LIMIT_BYTES};

/// The event types the AP sends (2.x–4.x); others are kept and logged.
const KNOWN_TYPES: &[&str] = &[
    "transaction_created",
    "transaction_status_changed",
    "transaction_error",
    "quote_created",
    "customer_updated",
];

/// Reads an event; 400 with the reason when it is not one. Only parses
/// (the AP's JSON is read in `mooring-apwire`; the event's meaning is the
/// domain's, [`mooring_domain::payout::EventFacts::meaning`]).
pub(crate) fn parse(body: &[u8], now: DateTime<Utc>) -> Result<ReceivedEvent, ApiError> {
    let event = EventDto::parse(body).map_err(|e| ApiError::bad_request(e.to_string()))?;
    Ok(ReceivedEvent {
        id: event.id,
        kind: event.kind,
        occurred_at: event.occurred_at.unwrap_or(now),
        received_at: now,
        facts: event.facts,
        body: String::from_utf8_lossy(body).into_owned(),
    })
}

/// An event as the AP sends it (the fields Mooring reads; the whole body is
/// kept).
#[derive(ToSchema)]
#[allow(dead_code)]
pub(crate) struct EventRequest {
    /// Unique per event: a repeated id is acknowledged and not kept twice.
    id: String,
    /// `transaction_created`, `transaction_status_changed`,
    /// `transaction_error`, `quote_created`, `customer_updated`; others are
    /// kept and logged.
    #[schema(rename = "type")]
    kind: String,
    /// When it happened (RFC 3339); events apply in this order.
    #[schema(format = DateTime)]
    timestamp: Option<String>,
    /// `transaction` (with `id`, `sep`, `status`, `transfer_received_at`)
    /// or `customer` (with `id`).
    payload: Option<serde_json::Value>,
}

/// Keeps an AP event durably before answering; the payment engine applies
/// it later, as a hint to read the AP again.
#[utoipa::path(post, path = "/event", tag = "Events", request_body = EventRequest,
    responses(
        (status = 200, description = "Kept (or kept before): the AP goes on to its next event"),
        (status = 400, description = "Not an event (malformed JSON, no id, no type)", body = ErrorBody),
        (status = 401, description = "Missing or bad callback credentials", body = ErrorBody),
        (status = 413, description = "The body is over 1 MiB", body = ErrorBody),
    ),
    security((), ("jwt" = []), ("api_key" = [])))]
#[tracing::instrument(skip_all)]
pub(crate) async fn post_event(
    req: HttpRequest,
    payload: web::Payload,
    inbox: web::Data<EventInbox>,
) -> Result<HttpResponse, ApiError> {
    let body = read_limited(&req, payload, JSON_LIMIT_BYTES).await?;
    let event = parse(&body, Utc::now())?;
    if !KNOWN_TYPES.contains(&event.kind.as_str()) {
        tracing::warn!(event.id = %event.id, event.kind = %event.kind, "unknown event type; acknowledged");
    }
    inbox
        .receive(event)
        .await
        .map_err(|e| ApiError::internal(&anyhow::Error::new(e)))?;
    Ok(HttpResponse::Ok().json(serde_json::json!({})))
}

#[cfg(test)]
mod tests {
    use super::*;
    use mooring_domain::payout::Sighting;
    use mooring_ports::InboxEvent;

    fn event(body: &str) -> Result<InboxEvent, String> {
        parse(body.as_bytes(), Utc::now())
            .map(ReceivedEvent::into_inbox)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn reads_a_transaction_event() {
        let e = event(r#"{"id":"e1","type":"transaction_status_changed","timestamp":"2024-01-01T00:00:00Z",
            "payload":{"transaction":{"id":"t1","sep":31,"status":"pending_receiver","transfer_received_at":"2024-01-01T00:00:00Z"}}}"#)
        .expect("event");
        assert_eq!(
            (e.id.as_str(), e.kind.as_str()),
            ("e1", "transaction_status_changed")
        );
        assert_eq!(e.sighting, Some(Sighting::Funded));
        assert_eq!(e.transaction_id.as_ref().map(|t| t.as_str()), Some("t1"));
        assert_eq!(e.occurred_at.to_rfc3339(), "2024-01-01T00:00:00+00:00");
        let e = event(r#"{"id":"e2","type":"transaction_created","payload":{"transaction":{"id":"t1","sep":"31","status":"pending_sender"}}}"#)
            .expect("event");
        assert_eq!(e.sighting, Some(Sighting::Unfunded));
        let e = event(r#"{"id":"e3","type":"transaction_created","payload":{"transaction":{"id":"t1","sep":"24","status":"completed"}}}"#)
            .expect("event");
        assert_eq!((e.sighting, e.transaction_id), (None, None));
        let e =
            event(r#"{"id":"e4","type":"customer_updated","payload":{"customer":{"id":"c1"}}}"#)
                .expect("event");
        assert_eq!(e.customer_id.as_deref(), Some("c1"));
        let e = event(r#"{"id":"e5","type":"something_new"}"#).expect("unknown types are kept");
        assert_eq!(e.kind, "something_new");
    }

    #[test]
    fn refuses_what_is_not_an_event() {
        for (body, why) in [
            ("[1]", "JSON object"),
            ("\"x\"", "JSON object"),
            ("{", "not valid JSON"),
            (r#"{"type":"transaction_created"}"#, "no id"),
            (r#"{"id":"","type":"transaction_created"}"#, "no id"),
            (r#"{"id":"e1"}"#, "no type"),
            (r#"{"id":7,"type":"x"}"#, "no id"),
        ] {
            let err = event(body).expect_err(body);
            assert!(err.contains(why), "{body}: {err}");
        }
    }
}
