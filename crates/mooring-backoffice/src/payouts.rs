//! Payouts: a list filtered by state, date and transaction id; a detail
//! page with the entry, the people's actions on it (from the audit trail),
//! the frozen order (values for operators, audited) and the rail's last
//! answer; an operator's retry that cannot pay twice (a held payout again
//! under the same key and order, a rejection checked again, a backoff cut
//! short); and the maker-checker desk: a retry under a new attempt or a
//! refund is asked for by one operator and approved by another.

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::NaiveDate;
use maud::{Markup, html};
use mooring_domain::payout::{Payout, PayoutState};
use mooring_domain::staff::{Duty, PayoutRequest, RequestKind, RequestState};
use mooring_domain::transaction::TransactionId;
use mooring_ports::{AuditQuery, LedgerError};
use mooring_usecases::{EngineError, PayoutEngine, PayoutRequests, RequestOpError, RetryMode};
use serde::Deserialize;

use crate::BackOffice;
use crate::page::{PageError, badge, csrf_field, layout, ok, redirect, when};
use crate::session::Person;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/payouts", web::get().to(list))
        .route("/payouts/{id}", web::get().to(detail))
        .route("/payouts/{id}/requests", web::post().to(ask))
        .route("/payouts/{id}/retry", web::post().to(retry))
        .route("/payouts/{id}/release", web::post().to(release))
        .route("/payouts/{id}/decline", web::post().to(decline))
        .route("/requests", web::get().to(requests))
        .route("/requests/{id}/approve", web::post().to(approve))
        .route("/requests/{id}/refuse", web::post().to(refuse));
}

/// The most entries a list reads.
const LIST_LIMIT: u32 = 500;

fn engine(office: &BackOffice) -> Result<&(PayoutEngine, PayoutRequests), PageError> {
    office.payouts.as_ref().ok_or_else(|| {
        PageError::Conflict("the payment engine is off (platform.enabled = false)".into())
    })
}

fn engine_error(e: EngineError) -> PageError {
    match e {
        EngineError::Ledger(LedgerError::NotFound) => PageError::NotFound,
        EngineError::Ledger(LedgerError::WrongState(s)) => {
            PageError::Conflict(format!("not possible while the payout is {s}"))
        }
        EngineError::BadRequest(m) => PageError::Conflict(m),
        other => PageError::unavailable(&other),
    }
}

fn request_error(e: RequestOpError) -> PageError {
    match e {
        RequestOpError::Forbidden(what) => PageError::Forbidden(what),
        RequestOpError::NotFound => PageError::NotFound,
        RequestOpError::Check(c) => PageError::Conflict(c.to_string()),
        RequestOpError::Pending => PageError::Conflict(RequestOpError::Pending.to_string()),
        RequestOpError::BadRequest(m) => PageError::BadRequest(m),
        RequestOpError::Engine(e) => engine_error(e),
        other => PageError::unavailable(&other),
    }
}

fn transaction_id(text: &str) -> Result<TransactionId, PageError> {
    TransactionId::parse(text.trim())
        .map_err(|e| PageError::BadRequest(format!("transaction id: {e}")))
}

fn date(key: &str, text: &str) -> Result<Option<NaiveDate>, PageError> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map(Some)
        .map_err(|_| PageError::BadRequest(format!("{key}: a date is YYYY-MM-DD")))
}

#[derive(Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    state: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    tx: String,
}

async fn list(
    req: HttpRequest,
    office: web::Data<BackOffice>,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, PageError> {
    let person = Person::of(&req, &office).await?;
    person.require(&office, Duty::See).await?;
    if !query.tx.trim().is_empty() {
        return Ok(redirect(&format!(
            "/payouts/{}",
            transaction_id(&query.tx)?
        )));
    }
    let (engine, _) = engine(&office)?;
    let state =
        match query.state.trim() {
            "" => None,
            s => Some(PayoutState::parse(s).ok_or_else(|| {
                PageError::BadRequest(format!("state: {s:?} is not a payout state"))
            })?),
        };
    let (from, to) = (date("from", &query.from)?, date("to", &query.to)?);
    let states: Vec<PayoutState> = state.into_iter().collect();
    let payouts: Vec<Payout> = engine
        .list(&states, LIST_LIMIT)
        .await
        .map_err(engine_error)?
        .into_iter()
        .filter(|p| from.is_none_or(|d| p.created_at.date_naive() >= d))
        .filter(|p| to.is_none_or(|d| p.created_at.date_naive() <= d))
        .collect();
    let body = html! {
        form method="get" action="/payouts" class="filters" {
            label for="state" { "State" }
            select id="state" name="state" {
                option value="" { "any" }
                @for s in PayoutState::ALL {
                    option value=(s.as_str()) selected[state == Some(s)] { (s.as_str()) }
                }
            }
            label for="from" { "Created from" }
            input id="from" name="from" type="date" value=(query.from);
            label for="to" { "to" }
            input id="to" name="to" type="date" value=(query.to);
            label for="tx" { "Transaction id" }
            input id="tx" name="tx" type="text";
            button type="submit" { "Filter" }
        }
        p role="status" { (payouts.len()) " payouts (of the " (LIST_LIMIT) " most recent that match the state)" }
        table {
            thead { tr {
                th scope="col" { "Transaction" } th scope="col" { "State" } th scope="col" class="num" { "Attempt" }
                th scope="col" class="num" { "Amount out" } th scope="col" { "Created" } th scope="col" { "Updated" }
            } }
            tbody {
                @for p in &payouts {
                    tr {
                        td { a href={ "/payouts/" (p.transaction_id) } { code { (p.transaction_id) } } }
                        td { (badge(p.state().as_str())) }
                        td class="num" { (p.attempt) }
                        td class="num" { @if let Some(a) = &p.amount_out { (a.amount) " " (a.asset) } }
                        td { (when(p.created_at)) }
                        td { (when(p.updated_at)) }
                    }
                }
            }
        }
    };
    Ok(ok(layout(&person.who, "Payouts", body)))
}

fn request_row(person: &Person, r: &PayoutRequest, show_payout: bool) -> Markup {
    let open = matches!(r.state, RequestState::Pending | RequestState::Approving);
    let may_act = person.who.role.may(Duty::ActOnPayouts);
    html! {
        tr {
            @if show_payout { td { a href={ "/payouts/" (r.transaction) } { code { (r.transaction) } } } }
            td {
                (r.kind.as_str())
                @if let RequestKind::Refund { stellar_hash } = &r.kind { br; code class="hash" { (stellar_hash) } }
            }
            td class="num" { (r.attempt) }
            td { (r.maker) br; (when(r.made_at)) }
            td { (badge(r.state.as_str())) @if !r.outcome.is_empty() { br; span class="why" { (r.outcome) } } }
            td { @if let Some(c) = &r.checker { (c) } }
            td {
                @if open && may_act {
                    @if r.maker != person.who.name && r.state == RequestState::Pending {
                        form method="post" action={ "/requests/" (r.id) "/approve" } class="inline" {
                            (csrf_field(&person.who))
                            button type="submit" data-confirm="Approve and carry out this request?" { "Approve" }
                        }
                    }
                    @if r.state == RequestState::Pending || r.maker != person.who.name {
                        form method="post" action={ "/requests/" (r.id) "/refuse" } class="inline" {
                            (csrf_field(&person.who))
                            button type="submit" class="danger" {
                                @if r.maker == person.who.name { "Withdraw" } @else { "Refuse" }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn request_table(person: &Person, requests: &[PayoutRequest], show_payout: bool) -> Markup {
    html! {
        table {
            thead { tr {
                @if show_payout { th scope="col" { "Payout" } }
                th scope="col" { "Change" } th scope="col" class="num" { "On attempt" } th scope="col" { "Asked by" }
                th scope="col" { "State" } th scope="col" { "Decided by" } th scope="col" { "Actions" }
            } }
            tbody { @for r in requests { (request_row(person, r, show_payout)) } }
        }
    }
}

async fn detail(
    req: HttpRequest,
    office: web::Data<BackOffice>,
    path: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    let person = Person::of(&req, &office).await?;
    person.require(&office, Duty::See).await?;
    let id = transaction_id(&path)?;
    let (engine, desk) = engine(&office)?;
    let p = engine.get(&id).await.map_err(engine_error)?;
    let order = if person.who.role.may(Duty::ReadPayoutOrder) {
        engine
            .order_for(&id, &person.actor())
            .await
            .map_err(engine_error)?
    } else {
        None
    };
    let timeline = engine.history(&id).await.map_err(engine_error)?;
    let history = office
        .audit
        .list(AuditQuery {
            transaction: Some(id.clone()),
            limit: 200,
            ..AuditQuery::default()
        })
        .await
        .map_err(|e| PageError::unavailable(&e))?;
    let asked = desk.list(&[], Some(&id), 50).await.map_err(request_error)?;
    let may_act = person.who.role.may(Duty::ActOnPayouts);
    let body = html! {
        dl {
            dt { "Transaction" } dd { code { (p.transaction_id) } }
            dt { "State" } dd { (badge(p.state().as_str())) }
            dt { "Attempt" } dd { (p.attempt) }
            @if let Some(r) = p.reason() { dt { "Reason" } dd { (r) } }
            @if let Some(e) = &p.last_error { dt { "Last error (being retried)" } dd { (e) } }
            @if let Some(id) = p.payout_id() { dt { "Rail's payout id" } dd { code { (id) } } }
            @if let Some(r) = p.at_rail().filter(|_| p.state().payout_possible()) {
                dt { "At the rail since" } dd { (when(r.submitted_at)) }
                dt { "The AP told it is pending" } dd { (if r.told_pending { "yes" } else { "no" }) }
            }
            @if let Some(r) = p.refund_reference() { dt { "Refund (Stellar hash)" } dd { code { (r) } } }
            @if let Some(a) = &p.amount_in { dt { "Amount in" } dd { (a.amount) " " (a.asset) } }
            @if let Some(a) = &p.amount_out { dt { "Amount out" } dd { (a.amount) " " (a.asset) } }
            @if let Some(q) = &p.quote_id { dt { "Quote" } dd { code { (q) } } }
            @if let Some(s) = &p.sender_id { dt { "Sender" } dd { a href={ "/customers/" (s) } { code { (s) } } } }
            @if let Some(r) = &p.receiver_id { dt { "Receiver" } dd { a href={ "/customers/" (r) } { code { (r) } } } }
            dt { "Created" } dd { (when(p.created_at)) }
            dt { "Updated" } dd { (when(p.updated_at)) }
            dt { "Next step due" } dd { (when(p.due_at)) }
        }
        @if let Some(o) = &order {
            h2 { "Frozen order" }
            dl {
                dt { "Idempotency key" } dd { code { (o.idempotency_key) } }
                dt { "Amount" } dd { (o.amount) " " (o.asset) }
                @if let Some(m) = &o.delivery_method { dt { "Delivery method" } dd { (m) } }
                @for (name, value) in &o.receiver_fields { dt { (name) } dd { (value) } }
            }
        }
        h2 { "Timeline" }
        table {
            thead { tr {
                th scope="col" { "When" } th scope="col" { "From" } th scope="col" { "To" }
                th scope="col" { "Cause" } th scope="col" { "Rail's payout id" } th scope="col" { "Reason" }
            } }
            tbody {
                @for c in &timeline {
                    tr {
                        td { (when(c.at)) }
                        td { @if let Some(f) = c.from { (badge(f.as_str())) } @else { "created" } }
                        td { (badge(c.to.as_str())) }
                        td { (c.cause) }
                        td { @if let Some(id) = &c.payout_id { code { (id) } } }
                        td { @if let Some(r) = &c.reason { (r) } }
                    }
                }
            }
        }
        h2 { "Actions by people (the audit trail)" }
        table {
            thead { tr { th scope="col" { "When" } th scope="col" { "What" } th scope="col" { "Who" } th scope="col" { "Detail" } } }
            tbody {
                @for r in history.iter().rev() {
                    tr {
                        td { (when(r.entry.at)) }
                        td { (r.entry.action.as_str()) }
                        td { (r.entry.actor.to_string()) }
                        td { (r.entry.detail) }
                    }
                }
            }
        }
        h2 { "Requests" }
        (request_table(&person, &asked, false))
        @if may_act && p.state() == PayoutState::AwaitingApproval {
            h2 { "Approval" }
            p { "This payout is over the approval limit for its asset (payout.approval_above). Nothing has been sent; releasing it sends the frozen order to the rail." }
            form method="post" action={ "/payouts/" (p.transaction_id) "/release" } class="inline" {
                (csrf_field(&person.who))
                input type="hidden" name="seen" value=(p.updated_at.timestamp_micros());
                button type="submit" data-confirm="Release this payout to the rail?" { "Release to the rail" }
            }
            form method="post" action={ "/payouts/" (p.transaction_id) "/decline" } class="stack" {
                (csrf_field(&person.who))
                label for="decline-reason" { "Or decline it: the reason (the AP is told, and nothing is paid)" }
                input id="decline-reason" name="reason" type="text" required maxlength="500";
                button type="submit" class="danger" data-confirm="Decline this payout?" { "Decline" }
            }
        }
        @if may_act {
            @if let Some((what, button)) = same_key_retry(&p) {
                h2 { "Retry" }
                form method="post" action={ "/payouts/" (p.transaction_id) "/retry" } class="stack" {
                    (csrf_field(&person.who))
                    p { (what) }
                    button type="submit" data-confirm="Retry this payout?" { (button) }
                }
            }
            h2 { "Ask for a change (a second operator approves it)" }
            form method="post" action={ "/payouts/" (p.transaction_id) "/requests" } class="stack" {
                (csrf_field(&person.who))
                input type="hidden" name="kind" value="retry_new_attempt";
                p { "Retry under a new attempt: only once the rail confirms the last attempt failed." }
                button type="submit" { "Ask for a retry" }
            }
            form method="post" action={ "/payouts/" (p.transaction_id) "/requests" } class="stack" {
                (csrf_field(&person.who))
                input type="hidden" name="kind" value="refund";
                label for="stellar_hash" { "Refund: the Stellar transaction hash that returned the funds" }
                input id="stellar_hash" name="stellar_hash" type="text" pattern="[0-9a-fA-F]{64}" required;
                button type="submit" { "Ask for a refund" }
            }
        }
    };
    Ok(ok(layout(&person.who, "Payout", body)))
}

#[derive(Deserialize)]
pub struct AskForm {
    csrf: String,
    kind: String,
    #[serde(default)]
    stellar_hash: String,
}

async fn ask(
    req: HttpRequest,
    office: web::Data<BackOffice>,
    path: web::Path<String>,
    form: web::Form<AskForm>,
) -> Result<HttpResponse, PageError> {
    let person = Person::of(&req, &office).await?;
    person
        .may_change(&office, Duty::ActOnPayouts, &form.csrf)
        .await?;
    let id = transaction_id(&path)?;
    let (_, desk) = engine(&office)?;
    let kind = match form.kind.as_str() {
        "retry_new_attempt" => RequestKind::RetryNewAttempt,
        "refund" => RequestKind::Refund {
            stellar_hash: form.stellar_hash.trim().to_ascii_lowercase(),
        },
        other => {
            return Err(PageError::BadRequest(format!(
                "kind: {other:?} is not retry_new_attempt or refund"
            )));
        }
    };
    desk.ask(&person.who, &person.origin, &id, kind)
        .await
        .map_err(request_error)?;
    Ok(redirect(&format!("/payouts/{id}")))
}

/// The retry one operator may do alone, since it cannot pay twice: what it
/// does and its button; `None` when the payout's state has none.
fn same_key_retry(p: &Payout) -> Option<(&'static str, &'static str)> {
    match p.state() {
        PayoutState::Held => Some((
            "Send the frozen order again under the same idempotency key, and follow the rail's answer: the rail pays a key once.",
            "Retry under the same key",
        )),
        PayoutState::Rejected => Some((
            "No payout was ever made: run every check again (amounts, quote, both parties' KYC); the AP's transaction leaves error.",
            "Check again",
        )),
        s if s.is_active() && p.failures > 0 => Some((
            "The engine is waiting out a backoff after an error: run the next step now.",
            "Retry now",
        )),
        _ => None,
    }
}

async fn retry(
    req: HttpRequest,
    office: web::Data<BackOffice>,
    path: web::Path<String>,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, PageError> {
    let person = Person::of(&req, &office).await?;
    person
        .may_change(&office, Duty::ActOnPayouts, &form.csrf)
        .await?;
    let id = transaction_id(&path)?;
    let (engine, _) = engine(&office)?;
    // Never a new key here: that takes a second operator (a request).
    engine
        .retry(&id, RetryMode::SameKey, &person.actor())
        .await
        .map_err(engine_error)?;
    Ok(redirect(&format!("/payouts/{id}")))
}

#[derive(Deserialize)]
pub struct ReleaseForm {
    csrf: String,
    /// The entry's `updated_at` (µs) as the page showed it.
    seen: i64,
}

async fn release(
    req: HttpRequest,
    office: web::Data<BackOffice>,
    path: web::Path<String>,
    form: web::Form<ReleaseForm>,
) -> Result<HttpResponse, PageError> {
    let person = Person::of(&req, &office).await?;
    person
        .may_change(&office, Duty::ActOnPayouts, &form.csrf)
        .await?;
    let id = transaction_id(&path)?;
    let (engine, _) = engine(&office)?;
    engine
        .release_approved(&id, Some(form.seen), &person.actor())
        .await
        .map_err(engine_error)?;
    Ok(redirect(&format!("/payouts/{id}")))
}

#[derive(Deserialize)]
pub struct DeclineForm {
    csrf: String,
    #[serde(default)]
    reason: String,
}

async fn decline(
    req: HttpRequest,
    office: web::Data<BackOffice>,
    path: web::Path<String>,
    form: web::Form<DeclineForm>,
) -> Result<HttpResponse, PageError> {
    let person = Person::of(&req, &office).await?;
    person
        .may_change(&office, Duty::ActOnPayouts, &form.csrf)
        .await?;
    let id = transaction_id(&path)?;
    let (engine, _) = engine(&office)?;
    engine
        .decline_approval(&id, &form.reason, &person.actor())
        .await
        .map_err(engine_error)?;
    Ok(redirect(&format!("/payouts/{id}")))
}

async fn requests(
    req: HttpRequest,
    office: web::Data<BackOffice>,
) -> Result<HttpResponse, PageError> {
    let person = Person::of(&req, &office).await?;
    person.require(&office, Duty::See).await?;
    let (_, desk) = engine(&office)?;
    let open = desk
        .list(&[RequestState::Pending, RequestState::Approving], None, 200)
        .await
        .map_err(request_error)?;
    let done = desk
        .list(
            &[
                RequestState::Approved,
                RequestState::Refused,
                RequestState::Failed,
            ],
            None,
            50,
        )
        .await
        .map_err(request_error)?;
    let body = html! {
        h2 { "Waiting for a second operator" }
        @if open.is_empty() { p role="status" { "Nothing is waiting." } }
        @else { (request_table(&person, &open, true)) }
        h2 { "Recently decided" }
        (request_table(&person, &done, true))
    };
    Ok(ok(layout(&person.who, "Approvals", body)))
}

#[derive(Deserialize)]
pub struct CsrfForm {
    csrf: String,
}

async fn approve(
    req: HttpRequest,
    office: web::Data<BackOffice>,
    path: web::Path<String>,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, PageError> {
    let person = Person::of(&req, &office).await?;
    person
        .may_change(&office, Duty::ActOnPayouts, &form.csrf)
        .await?;
    let (_, desk) = engine(&office)?;
    let r = desk
        .approve(&person.who, &person.origin, &path)
        .await
        .map_err(request_error)?;
    Ok(redirect(&format!("/payouts/{}", r.transaction)))
}

async fn refuse(
    req: HttpRequest,
    office: web::Data<BackOffice>,
    path: web::Path<String>,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, PageError> {
    let person = Person::of(&req, &office).await?;
    person
        .may_change(&office, Duty::ActOnPayouts, &form.csrf)
        .await?;
    let (_, desk) = engine(&office)?;
    let r = desk
        .refuse(&person.who, &person.origin, &path)
        .await
        .map_err(request_error)?;
    Ok(redirect(&format!("/payouts/{}", r.transaction)))
}
