//! For admins: the audit trail (searchable, paged, exported as CSV) and
//! the users (add, disable and enable, reset TOTP, change a role).

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, NaiveDate, Utc};
use maud::html;
use mooring_domain::audit::AuditAction;
use mooring_domain::customer::CustomerId;
use mooring_domain::staff::{Duty, Role};
use mooring_domain::transaction::TransactionId;
use mooring_ports::{AuditQuery, AuditRecord};
use mooring_usecases::StaffOpError;
use serde::Deserialize;

use crate::BackOffice;
use crate::page::{PageError, badge, csrf_field, layout, ok, redirect, when};
use crate::session::Person;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/audit", web::get().to(audit))
        .route("/audit.csv", web::get().to(audit_csv))
        .route("/users", web::get().to(users))
        .route("/users", web::post().to(add_user))
        .route("/users/{name}", web::post().to(change_user));
}

/// Entries on one page of the audit trail.
const PAGE: u32 = 100;
/// The most entries one CSV export holds.
const EXPORT_LIMIT: u32 = 1_000;

#[derive(Deserialize, Default)]
pub struct AuditFilter {
    #[serde(default)]
    customer: String,
    #[serde(default)]
    transaction: String,
    #[serde(default)]
    actor: String,
    #[serde(default)]
    action: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    /// The sequence to page from (entries older than it).
    #[serde(default)]
    before: Option<i64>,
}

fn day_start(key: &str, text: &str, add_days: i64) -> Result<Option<DateTime<Utc>>, PageError> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let day = NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map_err(|_| PageError::BadRequest(format!("{key}: a date is YYYY-MM-DD")))?;
    Ok(
        (day + chrono::Days::new(u64::try_from(add_days).unwrap_or(0)))
            .and_hms_opt(0, 0, 0)
            .map(|t| t.and_utc()),
    )
}

impl AuditFilter {
    fn query(&self, limit: u32) -> Result<AuditQuery, PageError> {
        let text = |s: &str| Some(s.trim()).filter(|s| !s.is_empty()).map(str::to_owned);
        Ok(AuditQuery {
            customer: text(&self.customer)
                .map(|c| CustomerId::parse(&c))
                .transpose()
                .map_err(|_| PageError::BadRequest("customer: a customer id is a UUID".into()))?,
            transaction: text(&self.transaction)
                .map(|t| TransactionId::parse(&t))
                .transpose()
                .map_err(|e| PageError::BadRequest(format!("transaction: {e}")))?,
            actor: text(&self.actor),
            action: text(&self.action)
                .map(|a| {
                    AuditAction::parse(&a)
                        .ok_or_else(|| PageError::BadRequest(format!("action: {a:?} is not one")))
                })
                .transpose()?,
            since: day_start("from", &self.from, 0)?,
            until: day_start("to", &self.to, 1)?,
            before: self.before,
            limit,
        })
    }

    /// The filter as a query string, without the paging.
    fn to_query_string(&self) -> String {
        [
            ("customer", &self.customer),
            ("transaction", &self.transaction),
            ("actor", &self.actor),
            ("action", &self.action),
            ("from", &self.from),
            ("to", &self.to),
        ]
        .iter()
        .filter(|(_, v)| !v.trim().is_empty())
        .map(|(k, v)| format!("{k}={}", percent(v.trim())))
        .collect::<Vec<_>>()
        .join("&")
    }
}

fn percent(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b':' => {
                char::from(b).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

async fn entries(
    office: &BackOffice,
    filter: &AuditFilter,
    limit: u32,
) -> Result<Vec<AuditRecord>, PageError> {
    office
        .audit
        .list(filter.query(limit)?)
        .await
        .map_err(|e| PageError::unavailable(&e))
}

async fn audit(
    req: HttpRequest,
    office: web::Data<BackOffice>,
    filter: web::Query<AuditFilter>,
) -> Result<HttpResponse, PageError> {
    let person = Person::of(&req, &office).await?;
    person.require(&office, Duty::ReadAudit).await?;
    let records = entries(&office, &filter, PAGE).await?;
    let qs = filter.to_query_string();
    let next = (records.len() == PAGE as usize)
        .then(|| records.last().map(|r| r.sequence))
        .flatten();
    let f = &filter;
    let body = html! {
        form method="get" action="/audit" class="filters" {
            label for="actor" { "Who (user name)" } input id="actor" name="actor" type="text" value=(f.actor);
            label for="action" { "Action" }
            select id="action" name="action" {
                option value="" { "any" }
                @for a in AuditAction::ALL { option value=(a.as_str()) selected[f.action == a.as_str()] { (a.as_str()) } }
            }
            label for="customer" { "Customer id" } input id="customer" name="customer" type="text" value=(f.customer);
            label for="transaction" { "Transaction id" } input id="transaction" name="transaction" type="text" value=(f.transaction);
            label for="from" { "From" } input id="from" name="from" type="date" value=(f.from);
            label for="to" { "To" } input id="to" name="to" type="date" value=(f.to);
            button type="submit" { "Search" }
        }
        p { a href={ "/audit.csv?" (qs) } download { "Export these entries as CSV" } " (up to " (EXPORT_LIMIT) ", newest first)" }
        table {
            thead { tr {
                th scope="col" { "#" } th scope="col" { "When" } th scope="col" { "Action" } th scope="col" { "Who" }
                th scope="col" { "Customer" } th scope="col" { "Transaction" } th scope="col" { "Detail" }
            } }
            tbody {
                @for r in &records {
                    tr {
                        td class="num" { (r.sequence) }
                        td { (when(r.entry.at)) }
                        td { (r.entry.action.as_str()) }
                        td { (r.entry.actor.to_string()) }
                        td { @if let Some(c) = &r.entry.customer { a href={ "/customers/" (c) } { code { (c) } } } }
                        td { @if let Some(t) = &r.entry.transaction { a href={ "/payouts/" (t) } { code { (t) } } } }
                        td { (r.entry.detail) }
                    }
                }
            }
        }
        @if let Some(before) = next {
            p { a href={ "/audit?" (qs) @if !qs.is_empty() { "&" } "before=" (before) } rel="next" { "Older entries" } }
        }
    };
    Ok(ok(layout(&person.who, "Audit trail", body)))
}

/// A CSV cell: quoted, quotes doubled, and a leading `= + - @` neutralised
/// so that a spreadsheet never runs it as a formula.
fn cell(text: &str) -> String {
    let text = if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text.to_owned()
    };
    format!("\"{}\"", text.replace('"', "\"\""))
}

async fn audit_csv(
    req: HttpRequest,
    office: web::Data<BackOffice>,
    filter: web::Query<AuditFilter>,
) -> Result<HttpResponse, PageError> {
    let person = Person::of(&req, &office).await?;
    person.require(&office, Duty::ReadAudit).await?;
    let records = entries(&office, &filter, EXPORT_LIMIT).await?;
    let mut csv =
        String::from("sequence,at,action,actor_kind,actor,origin,customer,transaction,detail\r\n");
    for r in &records {
        let e = &r.entry;
        let row = [
            r.sequence.to_string(),
            e.at.to_rfc3339(),
            e.action.as_str().to_owned(),
            e.actor.kind().as_str().to_owned(),
            e.actor.name().to_owned(),
            e.actor.origin().to_owned(),
            e.customer
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default(),
            e.transaction
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default(),
            e.detail.clone(),
        ];
        csv.push_str(&row.iter().map(|c| cell(c)).collect::<Vec<_>>().join(","));
        csv.push_str("\r\n");
    }
    Ok(HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header((
            "Content-Disposition",
            "attachment; filename=\"mooring-audit.csv\"",
        ))
        .body(csv))
}

fn staff_error(e: StaffOpError) -> PageError {
    match e {
        StaffOpError::Name(_) | StaffOpError::Password(_) => PageError::BadRequest(e.to_string()),
        StaffOpError::Exists => PageError::Conflict(e.to_string()),
        StaffOpError::NotFound => PageError::NotFound,
        other => PageError::unavailable(&other),
    }
}

async fn users(req: HttpRequest, office: web::Data<BackOffice>) -> Result<HttpResponse, PageError> {
    let person = Person::of(&req, &office).await?;
    person.require(&office, Duty::ManageUsers).await?;
    let users = office.staff.users().await.map_err(staff_error)?;
    let body = html! {
        table {
            thead { tr {
                th scope="col" { "User" } th scope="col" { "Role" } th scope="col" { "State" }
                th scope="col" { "Authenticator" } th scope="col" { "Since" } th scope="col" { "Change" }
            } }
            tbody {
                @for u in &users {
                    tr {
                        th scope="row" { (u.name) }
                        td { (u.role) }
                        td { @if u.disabled { (badge("disabled")) } @else { (badge("active")) } }
                        td { @if u.totp_enrolled { "enrolled" } @else { "not enrolled" } }
                        td { (when(u.created_at)) }
                        td {
                            form method="post" action={ "/users/" (u.name) } class="inline" {
                                (csrf_field(&person.who))
                                label for={ "role-" (u.name) } class="visually-hidden" { "Role of " (u.name) }
                                select id={ "role-" (u.name) } name="role" {
                                    @for r in Role::ALL { option value=(r.as_str()) selected[r == u.role] { (r.as_str()) } }
                                }
                                button type="submit" name="change" value="role" { "Set role" }
                                @if u.disabled {
                                    button type="submit" name="change" value="enable" { "Enable" }
                                } @else {
                                    button type="submit" name="change" value="disable" class="danger" data-confirm="Disable this user?" { "Disable" }
                                }
                                button type="submit" name="change" value="reset_totp" data-confirm="Reset this user's authenticator?" { "Reset TOTP" }
                            }
                        }
                    }
                }
            }
        }
        h2 { "Add a user" }
        form method="post" action="/users" class="stack" {
            (csrf_field(&person.who))
            label for="name" { "User name (lower-case letters, digits, . _ -)" }
            input id="name" name="name" type="text" required maxlength="64";
            label for="role" { "Role" }
            select id="role" name="role" { @for r in Role::ALL { option value=(r.as_str()) { (r.as_str()) } } }
            label for="password" { "First password (at least 12 characters)" }
            input id="password" name="password" type="password" required minlength="12" autocomplete="new-password";
            button type="submit" { "Add" }
        }
    };
    Ok(ok(layout(&person.who, "Users", body)))
}

fn role(text: &str) -> Result<Role, PageError> {
    Role::parse(text).ok_or_else(|| PageError::BadRequest(format!("role: {text:?} is not a role")))
}

#[derive(Deserialize)]
pub struct AddUserForm {
    csrf: String,
    name: String,
    role: String,
    password: String,
}

async fn add_user(
    req: HttpRequest,
    office: web::Data<BackOffice>,
    form: web::Form<AddUserForm>,
) -> Result<HttpResponse, PageError> {
    let person = Person::of(&req, &office).await?;
    person
        .may_change(&office, Duty::ManageUsers, &form.csrf)
        .await?;
    office
        .staff
        .add_user(
            form.name.trim(),
            role(&form.role)?,
            &form.password,
            &person.actor(),
        )
        .await
        .map_err(staff_error)?;
    Ok(redirect("/users"))
}

#[derive(Deserialize)]
pub struct ChangeUserForm {
    csrf: String,
    change: String,
    #[serde(default)]
    role: String,
}

async fn change_user(
    req: HttpRequest,
    office: web::Data<BackOffice>,
    path: web::Path<String>,
    form: web::Form<ChangeUserForm>,
) -> Result<HttpResponse, PageError> {
    let person = Person::of(&req, &office).await?;
    person
        .may_change(&office, Duty::ManageUsers, &form.csrf)
        .await?;
    let name = path.into_inner();
    let actor = person.actor();
    let staff = &office.staff;
    match form.change.as_str() {
        "role" => staff.set_role(&name, role(&form.role)?, &actor).await,
        "disable" => staff.set_disabled(&name, true, &actor).await,
        "enable" => staff.set_disabled(&name, false, &actor).await,
        "reset_totp" => staff.reset_totp(&name, &actor).await,
        other => {
            return Err(PageError::BadRequest(format!(
                "change: {other:?} is not role, disable, enable or reset_totp"
            )));
        }
    }
    .map_err(staff_error)?;
    Ok(redirect("/users"))
}
