//! Who is asking: the session cookie, read into a [`Person`] through the
//! staff use case (which ends idle and expired sessions), the role check
//! every page makes, and the CSRF check every state-changing form passes.

use actix_web::HttpRequest;
use actix_web::cookie::time::Duration as CookieDuration;
use actix_web::cookie::{Cookie, SameSite};
use mooring_domain::staff::Duty;
use mooring_usecases::{SignedIn, StaffOpError};
use subtle::ConstantTimeEq as _;

use crate::BackOffice;
use crate::page::PageError;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "mooring_session";

/// Where a request came from, as the audit trail records it: the peer's
/// address (the back office listens on loopback or behind the operator's
/// own proxy; a forwarded header is not trusted).
pub fn origin(req: &HttpRequest) -> String {
    req.peer_addr()
        .map_or_else(|| "unknown".to_owned(), |a| a.ip().to_string())
}

/// The session cookie for a token: HttpOnly, SameSite=Strict, and Secure
/// when configured; it lives as long as the browser (the server ends the
/// session).
pub fn session_cookie(token: &str, secure: bool) -> Cookie<'static> {
    Cookie::build(SESSION_COOKIE, token.to_owned())
        .path("/")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(secure)
        .finish()
}

/// The cookie that removes the session cookie.
pub fn cleared_cookie(secure: bool) -> Cookie<'static> {
    Cookie::build(SESSION_COOKIE, "")
        .path("/")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(secure)
        .max_age(CookieDuration::ZERO)
        .finish()
}

/// The token in the request's session cookie.
pub fn token(req: &HttpRequest) -> Option<String> {
    req.cookie(SESSION_COOKIE)
        .map(|c| c.value().to_owned())
        .filter(|t| !t.is_empty())
}

/// A signed-in person and where they are.
pub struct Person {
    pub who: SignedIn,
    pub origin: String,
}

impl Person {
    /// The person behind the request, with the second factor given.
    pub async fn of(req: &HttpRequest, office: &BackOffice) -> Result<Self, PageError> {
        let person = Self::partly(req, office).await?;
        if person.who.verified {
            Ok(person)
        } else {
            Err(PageError::SecondFactor)
        }
    }

    /// The person behind the request, the second factor given or not (the
    /// sign-in pages).
    pub async fn partly(req: &HttpRequest, office: &BackOffice) -> Result<Self, PageError> {
        let token = token(req).ok_or(PageError::SignIn)?;
        match office.staff.session(&token).await {
            Ok(who) => Ok(Self {
                who,
                origin: origin(req),
            }),
            Err(StaffOpError::SessionOver) => Err(PageError::SignIn),
            Err(e) => Err(PageError::unavailable(&e)),
        }
    }

    /// The person's role may do `duty`; a refusal is written to the audit
    /// trail, with what was asked.
    pub async fn require(&self, office: &BackOffice, duty: Duty) -> Result<(), PageError> {
        if self.who.role.may(duty) {
            Ok(())
        } else {
            office
                .staff
                .refused(&self.who, &self.origin, duty.as_str())
                .await;
            Err(PageError::Forbidden(duty.as_str()))
        }
    }

    /// The form's CSRF token is this session's.
    pub fn check_csrf(&self, sent: &str) -> Result<(), PageError> {
        if bool::from(sent.as_bytes().ct_eq(self.who.csrf.as_bytes())) {
            Ok(())
        } else {
            Err(PageError::Csrf)
        }
    }

    /// A change: the CSRF token first, then the role.
    pub async fn may_change(
        &self,
        office: &BackOffice,
        duty: Duty,
        csrf: &str,
    ) -> Result<(), PageError> {
        self.check_csrf(csrf)?;
        self.require(office, duty).await
    }

    pub fn actor(&self) -> mooring_domain::audit::Actor {
        self.who.actor(&self.origin)
    }
}
