//! Signing in and out: the password, then (for every role that can change
//! something) a TOTP code, with enrolment at the first sign-in: the secret
//! shown as a QR code and as text.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use maud::{Markup, PreEscaped, html};
use mooring_usecases::{NextStep, StaffOpError};
use qrcode::QrCode;
use qrcode::render::svg;
use serde::Deserialize;

use crate::BackOffice;
use crate::page::{PageError, bare, ok, redirect};
use crate::session::{Person, cleared_cookie, origin, session_cookie, token};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/signin", web::get().to(form))
        .route("/signin", web::post().to(password))
        .route("/signin/enrol", web::get().to(enrol))
        .route("/signin/code", web::get().to(code_form))
        .route("/signin/code", web::post().to(code))
        .route("/signout", web::post().to(sign_out));
}

fn signin_page(error: Option<&str>) -> Markup {
    bare(
        "Sign in",
        html! {
            h1 { "Sign in" }
            @if let Some(e) = error { p role="alert" class="error" { (e) } }
            form method="post" action="/signin" class="stack" {
                label for="name" { "User name" }
                input id="name" name="name" type="text" autocomplete="username" required autofocus;
                label for="password" { "Password" }
                input id="password" name="password" type="password" autocomplete="current-password" required;
                button type="submit" { "Sign in" }
            }
        },
    )
}

async fn form(req: HttpRequest, office: web::Data<BackOffice>) -> HttpResponse {
    match Person::partly(&req, &office).await {
        Ok(p) if p.who.verified => redirect("/"),
        _ => ok(signin_page(None)),
    }
}

#[derive(Deserialize)]
pub struct PasswordForm {
    name: String,
    password: String,
}

/// A refused sign-in: the page again, with why, as 401.
fn refused(message: &str) -> HttpResponse {
    HttpResponse::build(StatusCode::UNAUTHORIZED)
        .content_type("text/html; charset=utf-8")
        .body(signin_page(Some(message)).into_string())
}

async fn password(
    req: HttpRequest,
    office: web::Data<BackOffice>,
    form: web::Form<PasswordForm>,
) -> Result<HttpResponse, PageError> {
    let started = match office
        .staff
        .sign_in(form.name.trim(), &form.password, &origin(&req))
        .await
    {
        Ok(s) => s,
        Err(e @ (StaffOpError::Refused | StaffOpError::LockedOut(_))) => {
            return Ok(refused(&e.to_string()));
        }
        Err(e) => return Err(PageError::unavailable(&e)),
    };
    let to = match started.next {
        NextStep::Done => "/",
        NextStep::Code => "/signin/code",
        NextStep::Enrol(_) => "/signin/enrol",
    };
    let mut response = redirect(to);
    response
        .add_cookie(&session_cookie(&started.token, office.secure_cookies))
        .map_err(|e| PageError::unavailable(&e))?;
    Ok(response)
}

fn code_fields(csrf: &str) -> Markup {
    html! {
        form method="post" action="/signin/code" class="stack" {
            input type="hidden" name="csrf" value=(csrf);
            label for="code" { "Six-digit code from your authenticator" }
            input id="code" name="code" type="text" inputmode="numeric" pattern="[0-9]{6}"
                autocomplete="one-time-code" maxlength="6" required autofocus;
            button type="submit" { "Continue" }
        }
    }
}

fn qr_svg(uri: &str) -> Option<String> {
    let code = QrCode::new(uri.as_bytes()).ok()?;
    Some(
        code.render::<svg::Color<'_>>()
            .min_dimensions(220, 220)
            .quiet_zone(true)
            .build(),
    )
}

async fn enrol_page(
    req: &HttpRequest,
    office: &BackOffice,
    error: Option<&str>,
) -> Result<Markup, PageError> {
    let person = Person::partly(req, office).await?;
    let token = token(req).ok_or(PageError::SignIn)?;
    let enrolment = office
        .staff
        .pending_enrolment(&token)
        .await
        .map_err(|e| match e {
            StaffOpError::SessionOver => PageError::SignIn,
            other => PageError::unavailable(&other),
        })?;
    let svg = qr_svg(&enrolment.uri).unwrap_or_default();
    Ok(bare(
        "Set up your authenticator",
        html! {
            h1 { "Set up your authenticator" }
            @if let Some(e) = error { p role="alert" class="error" { (e) } }
            p { "Your role needs a second factor. Scan this code with an authenticator app (TOTP, RFC 6238), or type the secret below into it; then give the code it shows." }
            figure class="qr" {
                (PreEscaped(svg))
                figcaption { "QR code of your TOTP secret" }
            }
            p { "Secret: " code id="totp-secret" { (enrolment.secret_base32) } }
            (code_fields(&person.who.csrf))
        },
    ))
}

async fn enrol(req: HttpRequest, office: web::Data<BackOffice>) -> Result<HttpResponse, PageError> {
    let person = Person::partly(&req, &office).await?;
    if person.who.verified {
        return Ok(redirect("/"));
    }
    if !person.who.enrolling {
        return Ok(redirect("/signin/code"));
    }
    Ok(ok(enrol_page(&req, &office, None).await?))
}

fn code_page(csrf: &str, error: Option<&str>) -> Markup {
    bare(
        "Second factor",
        html! {
            h1 { "Second factor" }
            @if let Some(e) = error { p role="alert" class="error" { (e) } }
            (code_fields(csrf))
        },
    )
}

async fn code_form(
    req: HttpRequest,
    office: web::Data<BackOffice>,
) -> Result<HttpResponse, PageError> {
    let person = Person::partly(&req, &office).await?;
    if person.who.verified {
        return Ok(redirect("/"));
    }
    if person.who.enrolling {
        return Ok(redirect("/signin/enrol"));
    }
    Ok(ok(code_page(&person.who.csrf, None)))
}

#[derive(Deserialize)]
pub struct CodeForm {
    csrf: String,
    code: String,
}

async fn code(
    req: HttpRequest,
    office: web::Data<BackOffice>,
    form: web::Form<CodeForm>,
) -> Result<HttpResponse, PageError> {
    let person = Person::partly(&req, &office).await?;
    person.check_csrf(&form.csrf)?;
    let token = token(&req).ok_or(PageError::SignIn)?;
    match office
        .staff
        .second_factor(&token, &form.code, &person.origin)
        .await
    {
        Ok(()) => Ok(redirect("/")),
        Err(StaffOpError::Refused) => {
            let message = StaffOpError::Refused.to_string();
            let page = if person.who.enrolling {
                enrol_page(&req, &office, Some(&message)).await?
            } else {
                code_page(&person.who.csrf, Some(&message))
            };
            Ok(HttpResponse::build(StatusCode::UNAUTHORIZED)
                .content_type("text/html; charset=utf-8")
                .body(page.into_string()))
        }
        Err(e @ (StaffOpError::LockedOut(_) | StaffOpError::SessionOver)) => {
            let mut response = refused(&e.to_string());
            response
                .add_cookie(&cleared_cookie(office.secure_cookies))
                .map_err(|e| PageError::unavailable(&e))?;
            Ok(response)
        }
        Err(e) => Err(PageError::unavailable(&e)),
    }
}

#[derive(Deserialize)]
pub struct CsrfForm {
    csrf: String,
}

async fn sign_out(
    req: HttpRequest,
    office: web::Data<BackOffice>,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, PageError> {
    let person = Person::partly(&req, &office).await?;
    person.check_csrf(&form.csrf)?;
    let token = token(&req).ok_or(PageError::SignIn)?;
    office
        .staff
        .sign_out(&token, &person.origin)
        .await
        .map_err(|e| PageError::unavailable(&e))?;
    let mut response = redirect("/signin");
    response
        .add_cookie(&cleared_cookie(office.secure_cookies))
        .map_err(|e| PageError::unavailable(&e))?;
    Ok(response)
}
