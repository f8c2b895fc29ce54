//! Customers: search by id or by account and memo; a detail page with the
//! status and each field with its status, and for reviewers and above its
//! value and files (every view written to the audit trail first); approve,
//! reject, and reject one field. Each decision carries the version of the
//! customer the page showed (`seen`): a customer who changed since is not
//! decided on unseen.
//!
//! A file is never rendered as HTML or run: an image of an allowed type is
//! served as that type (shown inline by an `<img>`), anything else as
//! `application/octet-stream` with `Content-Disposition: attachment`, and
//! every file carries `Content-Security-Policy: sandbox`.

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use maud::html;
use mooring_domain::customer::{CustomerId, ProvidedValue};
use mooring_domain::staff::Duty;
use mooring_domain::{Memo, StellarAccount};
use mooring_usecases::{CustomerLookup, KycError};
use serde::Deserialize;

use crate::BackOffice;
use crate::page::{PageError, badge, csrf_field, layout, ok, redirect, when};
use crate::session::Person;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/customers", web::get().to(search))
        .route("/customers/{id}", web::get().to(detail))
        .route("/customers/{id}/files/{name}", web::get().to(file))
        .route("/customers/{id}/approve", web::post().to(approve))
        .route("/customers/{id}/reject", web::post().to(reject))
        .route(
            "/customers/{id}/fields/{name}/reject",
            web::post().to(reject_field),
        );
}

/// Image types shown inline; every other file is downloaded.
const INLINE_IMAGES: &[&str] = &["image/png", "image/jpeg", "image/gif", "image/webp"];

fn kyc_error(e: KycError) -> PageError {
    match e {
        KycError::NotFound => PageError::NotFound,
        KycError::BadRequest(m) => PageError::BadRequest(m),
        e @ KycError::Changed => PageError::Conflict(e.to_string()),
        other => PageError::unavailable(&other),
    }
}

fn customer_id(text: &str) -> Result<CustomerId, PageError> {
    CustomerId::parse(text.trim())
        .map_err(|_| PageError::BadRequest("a customer id is a UUID".into()))
}

#[derive(Deserialize)]
pub struct SearchQuery {
    #[serde(default)]
    id: String,
    #[serde(default)]
    account: String,
    #[serde(default)]
    memo: String,
}

async fn search(
    req: HttpRequest,
    office: web::Data<BackOffice>,
    query: web::Query<SearchQuery>,
) -> Result<HttpResponse, PageError> {
    let person = Person::of(&req, &office).await?;
    person.require(&office, Duty::See).await?;
    let (id, account, memo) = (query.id.trim(), query.account.trim(), query.memo.trim());
    let mut message = None;
    if !id.is_empty() {
        return Ok(redirect(&format!("/customers/{}", customer_id(id)?)));
    }
    if !account.is_empty() {
        let account = StellarAccount::parse(account)
            .map_err(|e| PageError::BadRequest(format!("account: {e}")))?;
        let memo = if memo.is_empty() {
            None
        } else {
            Some(Memo::parse(memo, None).map_err(|e| PageError::BadRequest(format!("memo: {e}")))?)
        };
        let view = office
            .kyc
            .get(CustomerLookup {
                id: None,
                account: Some(account),
                memo,
                customer_type: None,
            })
            .await
            .map_err(kyc_error)?;
        match view.id {
            Some(id) => return Ok(redirect(&format!("/customers/{id}"))),
            None => message = Some("No customer has this account and memo."),
        }
    }
    let body = html! {
        @if let Some(m) = message { p role="status" { (m) } }
        form method="get" action="/customers" class="stack" {
            label for="id" { "Customer id" }
            input id="id" name="id" type="text" value=(id);
            p { "or" }
            label for="account" { "Stellar account (G… or M…)" }
            input id="account" name="account" type="text" value=(account);
            label for="memo" { "Memo (if any)" }
            input id="memo" name="memo" type="text" value=(memo);
            button type="submit" { "Find" }
        }
    };
    Ok(ok(layout(&person.who, "Customers", body)))
}

async fn detail(
    req: HttpRequest,
    office: web::Data<BackOffice>,
    path: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    let person = Person::of(&req, &office).await?;
    person.require(&office, Duty::See).await?;
    let id = customer_id(&path)?;
    let with_values = person.who.role.may(Duty::ReadCustomerData);
    // A reviewer's view reads the values, and is audited as such; a
    // viewer's shows names and statuses, audited as a look.
    let (customer, view) = if with_values {
        let (customer, view) = office
            .kyc
            .values(&id, &person.actor())
            .await
            .map_err(kyc_error)?;
        (Some(customer), view)
    } else {
        let view = office
            .kyc
            .show(&id, &person.actor())
            .await
            .map_err(kyc_error)?;
        (None, view)
    };
    let a = &view.assessment;
    // A decision needs the values seen: a reviewer reads them.
    let seen = customer.as_ref().map(|c| c.updated_at.timestamp_micros());
    let may_review = person.who.role.may(Duty::ReviewCustomer) && seen.is_some();
    let body = html! {
        dl {
            dt { "Id" } dd { code { (id) } }
            dt { "Status" } dd { (badge(a.status.as_str())) }
            @if let Some(m) = &a.message { dt { "Message" } dd { (m) } }
            @if let Some(c) = &customer {
                dt { "Account" } dd { code { (c.account) } }
                @if let Some(memo) = &c.memo { dt { "Memo" } dd { code { (memo.value()) } } }
                dt { "Created" } dd { (when(c.created_at)) }
                dt { "Updated" } dd { (when(c.updated_at)) }
                @if !c.transaction_ids.is_empty() {
                    dt { "Transactions" }
                    dd { ul { @for t in &c.transaction_ids { li { a href={ "/payouts/" (t) } { code { (t) } } } } } }
                }
            }
        }
        h2 { "Fields provided" }
        table {
            thead { tr {
                th scope="col" { "Field" } th scope="col" { "Status" }
                @if with_values { th scope="col" { "Value" } }
                @if may_review { th scope="col" { "Reject this field" } }
            } }
            tbody {
                @for f in &a.provided {
                    tr {
                        th scope="row" { (f.field.name) }
                        td { (badge(f.status.as_str())) @if let Some(e) = &f.error { " " span class="why" { (e) } } }
                        @if let Some(c) = &customer {
                            td {
                                @match c.fields.get(f.field.name) {
                                    Some(ProvidedValue::Text(v)) => { (v) }
                                    Some(ProvidedValue::File { size, content_type }) => {
                                        @let href = format!("/customers/{id}/files/{}", f.field.name);
                                        @if content_type.as_deref().is_some_and(|t| INLINE_IMAGES.contains(&t)) {
                                            img src=(href) alt={ (f.field.name) " of the customer" } class="kyc-image";
                                        }
                                        a href=(href) { "Download (" (size) " bytes)" }
                                    }
                                    None => { "—" }
                                }
                            }
                        }
                        @if may_review {
                            td {
                                @let input = format!("reason-{}", f.field.name);
                                form method="post" action={ "/customers/" (id) "/fields/" (f.field.name) "/reject" } class="inline" {
                                    (csrf_field(&person.who))
                                    input type="hidden" name="seen" value=[seen];
                                    label for=(input) class="visually-hidden" { "Reason for rejecting " (f.field.name) }
                                    input id=(input) name="reason" type="text" required maxlength="500" placeholder="Reason";
                                    button type="submit" class="danger" data-confirm={ "Reject " (f.field.name) "? The customer will be asked for it again." } { "Reject field" }
                                }
                            }
                        }
                    }
                }
            }
        }
        @if !a.fields.is_empty() {
            h2 { "Fields still asked for" }
            ul { @for f in &a.fields { li { (f.field.name) @if f.optional { " (optional)" } } } }
        }
        @if may_review {
            h2 { "Decision" }
            form method="post" action={ "/customers/" (id) "/approve" } class="inline" {
                (csrf_field(&person.who))
                input type="hidden" name="seen" value=[seen];
                button type="submit" data-confirm="Approve this customer?" { "Approve" }
            }
            form method="post" action={ "/customers/" (id) "/reject" } class="stack" {
                (csrf_field(&person.who))
                input type="hidden" name="seen" value=[seen];
                label for="reason" { "Reason for rejecting (shown to the sender)" }
                input id="reason" name="reason" type="text" required maxlength="500";
                button type="submit" class="danger" data-confirm="Reject this customer?" { "Reject" }
            }
        }
    };
    Ok(ok(layout(&person.who, "Customer", body)))
}

async fn file(
    req: HttpRequest,
    office: web::Data<BackOffice>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, PageError> {
    let person = Person::of(&req, &office).await?;
    person.require(&office, Duty::ReadCustomerData).await?;
    let (id, name) = path.into_inner();
    let id = customer_id(&id)?;
    let (bytes, content_type) = office
        .kyc
        .file(&id, &name, &person.actor())
        .await
        .map_err(kyc_error)?;
    let safe_name: String = name
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    let mut response = HttpResponse::Ok();
    response.insert_header(("Content-Security-Policy", "sandbox; default-src 'none'"));
    match content_type
        .as_deref()
        .filter(|t| INLINE_IMAGES.contains(t))
    {
        Some(image) => {
            response.content_type(image.to_owned()).insert_header((
                "Content-Disposition",
                format!("inline; filename=\"{safe_name}\""),
            ));
        }
        None => {
            response
                .content_type("application/octet-stream")
                .insert_header((
                    "Content-Disposition",
                    format!("attachment; filename=\"{safe_name}.bin\""),
                ));
        }
    }
    Ok(response.body(bytes))
}

/// A decision's form: the CSRF token, and the version of the customer the
/// page showed.
#[derive(Deserialize)]
pub struct DecisionForm {
    csrf: String,
    /// Optional here so that the role and the CSRF token are checked
    /// first; a decision without it is refused.
    #[serde(default)]
    seen: Option<i64>,
    #[serde(default)]
    reason: String,
}

impl DecisionForm {
    fn seen(&self) -> Result<Option<DateTime<Utc>>, PageError> {
        self.seen
            .and_then(DateTime::from_timestamp_micros)
            .map(Some)
            .ok_or_else(|| {
                PageError::BadRequest(
                    "the form does not say which version of the customer it decides on; reload the page"
                        .into(),
                )
            })
    }
}

async fn approve(
    req: HttpRequest,
    office: web::Data<BackOffice>,
    path: web::Path<String>,
    form: web::Form<DecisionForm>,
) -> Result<HttpResponse, PageError> {
    let person = Person::of(&req, &office).await?;
    person
        .may_change(&office, Duty::ReviewCustomer, &form.csrf)
        .await?;
    let id = customer_id(&path)?;
    office
        .kyc
        .approve(&id, form.seen()?, &person.actor())
        .await
        .map_err(kyc_error)?;
    Ok(redirect(&format!("/customers/{id}")))
}

async fn reject(
    req: HttpRequest,
    office: web::Data<BackOffice>,
    path: web::Path<String>,
    form: web::Form<DecisionForm>,
) -> Result<HttpResponse, PageError> {
    let person = Person::of(&req, &office).await?;
    person
        .may_change(&office, Duty::ReviewCustomer, &form.csrf)
        .await?;
    let id = customer_id(&path)?;
    office
        .kyc
        .reject(&id, &form.reason, form.seen()?, &person.actor())
        .await
        .map_err(kyc_error)?;
    Ok(redirect(&format!("/customers/{id}")))
}

async fn reject_field(
    req: HttpRequest,
    office: web::Data<BackOffice>,
    path: web::Path<(String, String)>,
    form: web::Form<DecisionForm>,
) -> Result<HttpResponse, PageError> {
    let person = Person::of(&req, &office).await?;
    person
        .may_change(&office, Duty::ReviewCustomer, &form.csrf)
        .await?;
    let (id, field) = path.into_inner();
    let id = customer_id(&id)?;
    office
        .kyc
        .reject_field(&id, &field, &form.reason, form.seen()?, &person.actor())
        .await
        .map_err(kyc_error)?;
    Ok(redirect(&format!("/customers/{id}")))
}
