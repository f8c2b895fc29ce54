//! The page around every page (header, navigation by role, sign-out), the
//! errors a page answers with, and small helpers for forms and times.
//!
//! maud escapes every value it writes; nothing here writes raw markup but
//! the QR code's SVG, which the qrcode crate builds from the secret alone.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use chrono::{DateTime, Utc};
use maud::{DOCTYPE, Markup, html};
use mooring_domain::staff::Duty;
use mooring_usecases::SignedIn;

/// What a page answers when it cannot do what was asked. Each is a page
/// with its status, never a stack trace; a store failure says only that.
#[derive(Debug, thiserror::Error)]
pub enum PageError {
    /// Not signed in (or the session is over): to the sign-in page.
    #[error("sign in")]
    SignIn,
    /// Signed in with a password, with the second factor still to give.
    #[error("the second factor is still to give")]
    SecondFactor,
    #[error("{0}")]
    BadRequest(String),
    #[error("your role may not {0}")]
    Forbidden(&'static str),
    #[error(
        "the form was not sent from this session's page (its CSRF token is missing or wrong); reload the page and try again"
    )]
    Csrf,
    #[error("not found")]
    NotFound,
    #[error("{0}")]
    Conflict(String),
    /// The database or another dependency failed; the log has the cause.
    #[error(
        "the back office could not do this now; try again, and tell an administrator if it goes on"
    )]
    Unavailable,
}

impl PageError {
    /// A dependency's failure: logged (ids and kinds only), shown as
    /// [`PageError::Unavailable`].
    pub fn unavailable(e: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %e, "back office request failed");
        Self::Unavailable
    }
}

impl ResponseError for PageError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::SignIn | Self::SecondFactor => StatusCode::SEE_OTHER,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Forbidden(_) | Self::Csrf => StatusCode::FORBIDDEN,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            Self::SignIn => redirect("/signin"),
            Self::SecondFactor => redirect("/signin/code"),
            other => {
                let title = match other.status_code() {
                    StatusCode::BAD_REQUEST => "Not done",
                    StatusCode::FORBIDDEN => "Not allowed",
                    StatusCode::NOT_FOUND => "Not found",
                    StatusCode::CONFLICT => "Not done",
                    _ => "Unavailable",
                };
                let body = bare(
                    title,
                    html! {
                        h1 { (title) }
                        p role="alert" class="error" { (other.to_string()) }
                        p { a href="/" { "Back to the dashboard" } }
                    },
                );
                HttpResponse::build(other.status_code())
                    .content_type("text/html; charset=utf-8")
                    .body(body.into_string())
            }
        }
    }
}

pub async fn not_found() -> HttpResponse {
    PageError::NotFound.error_response()
}

/// A 303 to `to` (after a form, or to sign in).
pub fn redirect(to: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header(("Location", to))
        .finish()
}

/// An HTML page.
pub fn ok(markup: Markup) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(markup.into_string())
}

fn head(title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            title { (title) " · Mooring back office" }
            link rel="stylesheet" href="/static/backoffice.css";
            script src="/static/backoffice.js" defer {}
        }
    }
}

/// A page with no navigation (sign-in, errors).
pub fn bare(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body {
                header class="top" { span class="brand" { "Mooring back office" } }
                main id="main" { (body) }
            }
        }
    }
}

/// A page for a signed-in person: navigation shows what their role may do.
pub fn layout(who: &SignedIn, title: &str, body: Markup) -> Markup {
    let links: [(&str, &str, Duty); 7] = [
        ("/", "Dashboard", Duty::See),
        ("/customers", "Customers", Duty::See),
        ("/payouts", "Payouts", Duty::See),
        ("/requests", "Approvals", Duty::See),
        ("/quotes", "Quotes", Duty::See),
        ("/audit", "Audit trail", Duty::ReadAudit),
        ("/users", "Users", Duty::ManageUsers),
    ];
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body {
                a class="skip" href="#main" { "Skip to content" }
                header class="top" {
                    span class="brand" { "Mooring back office" }
                    nav aria-label="Main" {
                        ul {
                            @for (href, label, duty) in links {
                                @if who.role.may(duty) {
                                    li { a href=(href) { (label) } }
                                }
                            }
                        }
                    }
                    form method="post" action="/signout" class="signout" {
                        (csrf_field(who))
                        span { (who.name) " (" (who.role) ")" }
                        button type="submit" { "Sign out" }
                    }
                }
                main id="main" {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

/// The hidden CSRF field every state-changing form carries.
pub fn csrf_field(who: &SignedIn) -> Markup {
    html! { input type="hidden" name="csrf" value=(who.csrf); }
}

/// A time as staff read it.
pub fn when(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// A status shown as text, with a class for colour (never colour alone).
pub fn badge(text: &str) -> Markup {
    html! { span class={ "badge badge-" (text.to_ascii_lowercase().replace(' ', "_")) } { (text) } }
}
