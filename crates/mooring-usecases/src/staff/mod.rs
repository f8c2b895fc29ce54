//! The back office's people: users managed from the CLI and by admins,
//! sign-in with a password (argon2id) and, for every role that can change
//! something, a TOTP code (RFC 6238); sessions with an idle and an absolute
//! timeout; lock-out after failed sign-ins. Every sign-in, failure,
//! sign-out and change of a user is written to the audit trail.
//!
//! A session's token is shown to the browser once and kept only as its
//! SHA-256; the token and the TOTP secret come from the operating system's
//! generator. A failure never says which of the name, the password or the
//! code was wrong.

use std::sync::Arc;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use mooring_domain::audit::{Actor, AuditAction};
use mooring_domain::staff::{
    PasswordError, Role, SessionLife, SessionPolicy, StaffName, StaffNameError, check_new_password,
};
use mooring_ports::{Clock, StaffError, StaffSession, StaffStore, StaffUser};
use rand::RngCore as _;

use crate::AuditTrail;

mod totp;

pub use totp::{TOTP_DIGITS, TOTP_SECRET_LEN, TOTP_STEP, base32, token_hash, totp_code, totp_step};
use totp::{matching_step, random_token, uri_component};

/// What the back office's people can get wrong, or the store can fail at.
#[derive(Debug, thiserror::Error)]
pub enum StaffOpError {
    #[error(transparent)]
    Name(#[from] StaffNameError),
    #[error(transparent)]
    Password(#[from] PasswordError),
    #[error("a user of that name exists")]
    Exists,
    #[error("no such user")]
    NotFound,
    /// One message for a wrong name, password or code, and a disabled
    /// user: a guess learns nothing.
    #[error("the name, password or code is wrong")]
    Refused,
    #[error("too many failed sign-ins: try again after {0} (UTC)")]
    LockedOut(String),
    /// The session is over (idle, too old, signed out, or its user changed).
    #[error("the session is over; sign in again")]
    SessionOver,
    #[error("the audit trail could not record this: {0}")]
    Audit(String),
    #[error(transparent)]
    Store(anyhow::Error),
}

impl From<StaffError> for StaffOpError {
    fn from(e: StaffError) -> Self {
        match e {
            StaffError::NotFound => Self::NotFound,
            StaffError::Exists => Self::Exists,
            StaffError::Unknown(e) => Self::Store(e),
        }
    }
}

impl From<mooring_ports::AuditError> for StaffOpError {
    fn from(e: mooring_ports::AuditError) -> Self {
        Self::Audit(e.to_string())
    }
}

/// What comes after the password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NextStep {
    /// Signed in (a viewer needs no second factor).
    Done,
    /// A TOTP code from the enrolled authenticator.
    Code,
    /// Enrol an authenticator first: show the secret, then take a code.
    Enrol(Enrolment),
}

/// A TOTP secret being enrolled, as an authenticator app takes it.
#[derive(Clone, PartialEq, Eq)]
pub struct Enrolment {
    /// The secret in base32, without padding (shown as text).
    pub secret_base32: String,
    /// The `otpauth://totp/…` URI (shown as a QR code).
    pub uri: String,
}

impl std::fmt::Debug for Enrolment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Enrolment(..)")
    }
}

/// A session begun: its token for the cookie, and what comes next.
#[derive(Clone)]
pub struct Started {
    pub token: String,
    pub next: NextStep,
}

impl std::fmt::Debug for Started {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Started")
            .field("next", &self.next)
            .finish_non_exhaustive()
    }
}

/// A live session, as a request sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedIn {
    pub name: StaffName,
    /// The user's role now (a change takes effect on the next request).
    pub role: Role,
    /// The second factor was given (or the role needs none).
    pub verified: bool,
    /// The token each state-changing form carries.
    pub csrf: String,
    /// Not enrolled yet: the enrolment page is next.
    pub enrolling: bool,
}

impl SignedIn {
    /// The actor this person is in the audit trail.
    pub fn actor(&self, origin: &str) -> Actor {
        Actor::operator(self.name.as_str(), &format!("backoffice@{origin}"))
    }
}

/// The back office's users and sessions.
#[derive(Clone)]
pub struct StaffService {
    store: Arc<dyn StaffStore>,
    audit: AuditTrail,
    clock: Arc<dyn Clock>,
    policy: SessionPolicy,
    issuer: String,
    hasher: Argon2<'static>,
}

/// OWASP's first argon2id choice: 19 MiB, two passes, one lane.
fn argon2_params() -> Params {
    Params::new(19 * 1024, 2, 1, None).unwrap_or_default()
}

/// Verified against when the user is unknown, so that an unknown name takes
/// as long as a wrong password. What [`argon2_params`] make of "no user has
/// this password" under the salt "mooring-dummy-salt", written out rather
/// than hashed at start-up, which took 25 ms of every start (a test checks
/// that they agree).
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$bW9vcmluZy1kdW1teS1zYWx0$gQYhlTTVEa83SUT78iLqPqzwNW5Oau/1NApWu3u6lj8";

impl StaffService {
    /// `issuer` names the anchor in authenticator apps.
    pub fn new(
        store: Arc<dyn StaffStore>,
        audit: AuditTrail,
        clock: Arc<dyn Clock>,
        policy: SessionPolicy,
        issuer: &str,
    ) -> Self {
        let hasher = Argon2::new(Algorithm::Argon2id, Version::V0x13, argon2_params());
        Self {
            store,
            audit,
            clock,
            policy,
            issuer: issuer.to_owned(),
            hasher,
        }
    }

    pub fn policy(&self) -> SessionPolicy {
        self.policy
    }

    /// Hashes a password off the async runtime (argon2 takes tens of ms).
    async fn hash(&self, password: String) -> Result<String, StaffOpError> {
        let hasher = self.hasher.clone();
        tokio::task::spawn_blocking(move || {
            let mut salt = [0u8; 16];
            rand::rng().fill_bytes(&mut salt);
            let salt = SaltString::encode_b64(&salt)
                .map_err(|e| StaffOpError::Store(anyhow::anyhow!("salt: {e}")))?;
            hasher
                .hash_password(password.as_bytes(), &salt)
                .map(|h| h.to_string())
                .map_err(|e| StaffOpError::Store(anyhow::anyhow!("hashing: {e}")))
        })
        .await
        .map_err(|e| StaffOpError::Store(anyhow::anyhow!("hashing task: {e}")))?
    }

    /// Whether `password` matches `hash`, off the async runtime.
    async fn verify(&self, password: String, hash: String) -> bool {
        let hasher = self.hasher.clone();
        tokio::task::spawn_blocking(move || {
            PasswordHash::new(&hash)
                .is_ok_and(|h| hasher.verify_password(password.as_bytes(), &h).is_ok())
        })
        .await
        .unwrap_or(false)
    }

    async fn audit(
        &self,
        actor: &Actor,
        action: AuditAction,
        detail: &str,
    ) -> Result<(), StaffOpError> {
        let entry = self.audit.entry(actor, action).detail(detail);
        Ok(self.audit.record(entry).await?)
    }

    /// Adds a user, who enrols TOTP at first sign-in.
    pub async fn add_user(
        &self,
        name: &str,
        role: Role,
        password: &str,
        actor: &Actor,
    ) -> Result<StaffUser, StaffOpError> {
        let name = StaffName::parse(name)?;
        check_new_password(password)?;
        let user = StaffUser {
            name: name.clone(),
            role,
            password_hash: self.hash(password.to_owned()).await?,
            disabled: false,
            failures: 0,
            locked_until: None,
            totp_enrolled: false,
            created_at: self.clock.now(),
        };
        self.store.add_user(&user).await?;
        self.audit(
            actor,
            AuditAction::UserAdded,
            &format!("user {name} as {role}"),
        )
        .await?;
        Ok(user)
    }

    pub async fn users(&self) -> Result<Vec<StaffUser>, StaffOpError> {
        Ok(self.store.users().await?)
    }

    pub async fn user(&self, name: &StaffName) -> Result<StaffUser, StaffOpError> {
        self.store.user(name).await?.ok_or(StaffOpError::NotFound)
    }

    /// Disables (or enables) a user; a disabled user's sessions end.
    pub async fn set_disabled(
        &self,
        name: &str,
        disabled: bool,
        actor: &Actor,
    ) -> Result<(), StaffOpError> {
        let name = StaffName::parse(name)?;
        self.store.set_disabled(&name, disabled).await?;
        if disabled {
            self.store.end_sessions_of(&name).await?;
        }
        let what = if disabled { "disabled" } else { "enabled" };
        self.audit(
            actor,
            AuditAction::UserChanged,
            &format!("user {name} {what}"),
        )
        .await
    }

    /// Changes a user's role; their sessions end (the new role signs in
    /// afresh, with TOTP where it needs it).
    pub async fn set_role(
        &self,
        name: &str,
        role: Role,
        actor: &Actor,
    ) -> Result<(), StaffOpError> {
        let name = StaffName::parse(name)?;
        self.store.set_role(&name, role).await?;
        self.store.end_sessions_of(&name).await?;
        self.audit(
            actor,
            AuditAction::UserChanged,
            &format!("user {name} role {role}"),
        )
        .await
    }

    /// Forgets a user's authenticator: they enrol again at next sign-in.
    pub async fn reset_totp(&self, name: &str, actor: &Actor) -> Result<(), StaffOpError> {
        let name = StaffName::parse(name)?;
        self.store.set_totp_secret(&name, None).await?;
        self.store.end_sessions_of(&name).await?;
        self.audit(
            actor,
            AuditAction::UserChanged,
            &format!("user {name} TOTP reset"),
        )
        .await
    }

    /// The name as the audit trail may show it: as typed when it is a valid
    /// name, else only that it was not one.
    fn typed_name(name: &str) -> String {
        StaffName::parse(name).map_or_else(|_| "<not a user name>".to_owned(), |n| n.to_string())
    }

    /// Counts a failure and says what the person sees.
    async fn failed(
        &self,
        name: &StaffName,
        origin: &str,
        step: &str,
    ) -> Result<StaffOpError, StaffOpError> {
        let now = self.clock.now();
        let until = now + self.policy.lockout;
        let locked = self
            .store
            .count_failure(name, (self.policy.max_failures, until))
            .await?;
        let actor = Actor::operator(name.as_str(), &format!("backoffice@{origin}"));
        let detail = if locked {
            format!("{step}; locked out")
        } else {
            step.to_owned()
        };
        self.audit(&actor, AuditAction::SignInFailed, &detail)
            .await?;
        Ok(if locked {
            self.store.end_sessions_of(name).await?;
            StaffOpError::LockedOut(until.format("%Y-%m-%d %H:%M").to_string())
        } else {
            StaffOpError::Refused
        })
    }

    /// The password step. A viewer is signed in; another role is asked for
    /// its TOTP code next, or to enrol an authenticator first.
    pub async fn sign_in(
        &self,
        name: &str,
        password: &str,
        origin: &str,
    ) -> Result<Started, StaffOpError> {
        let now = self.clock.now();
        let Ok(parsed) = StaffName::parse(name) else {
            self.verify(password.to_owned(), DUMMY_HASH.to_owned())
                .await;
            let actor = Actor::operator(&Self::typed_name(name), &format!("backoffice@{origin}"));
            self.audit(&actor, AuditAction::SignInFailed, "unknown user")
                .await?;
            return Err(StaffOpError::Refused);
        };
        let actor = Actor::operator(parsed.as_str(), &format!("backoffice@{origin}"));
        let Some(user) = self.store.user(&parsed).await? else {
            self.verify(password.to_owned(), DUMMY_HASH.to_owned())
                .await;
            self.audit(&actor, AuditAction::SignInFailed, "unknown user")
                .await?;
            return Err(StaffOpError::Refused);
        };
        if let Some(until) = user.locked_until.filter(|u| *u > now) {
            self.audit(&actor, AuditAction::SignInFailed, "locked out")
                .await?;
            return Err(StaffOpError::LockedOut(
                until.format("%Y-%m-%d %H:%M").to_string(),
            ));
        }
        if !self
            .verify(password.to_owned(), user.password_hash.clone())
            .await
        {
            return Err(self.failed(&parsed, origin, "password").await?);
        }
        if user.disabled {
            self.audit(&actor, AuditAction::SignInFailed, "disabled")
                .await?;
            return Err(StaffOpError::Refused);
        }
        let token = random_token();
        let needs_code = user.role.needs_second_factor();
        let session = StaffSession {
            token_hash: token_hash(&token),
            user: parsed.clone(),
            verified: !needs_code,
            csrf: random_token(),
            created_at: now,
            last_seen: now,
        };
        self.store.add_session(&session).await?;
        let next = if !needs_code {
            self.store.clear_failures(&parsed).await?;
            self.audit(&actor, AuditAction::SignedIn, "password")
                .await?;
            NextStep::Done
        } else if user.totp_enrolled {
            NextStep::Code
        } else {
            NextStep::Enrol(self.begin_enrolment(&parsed).await?)
        };
        Ok(Started { token, next })
    }

    /// Provisions an authenticator out of band (the CLI's `--with-totp`, a
    /// demo stack): a fresh secret, enrolled at once, returned to be given
    /// to the user. Their sessions end.
    pub async fn provision_totp(
        &self,
        name: &str,
        actor: &Actor,
    ) -> Result<Enrolment, StaffOpError> {
        let name = StaffName::parse(name)?;
        let enrolment = self.begin_enrolment(&name).await?;
        // Step 0 is long past: enrolled, and every real code is later.
        self.store.use_totp_step(&name, 0).await?;
        self.store.end_sessions_of(&name).await?;
        self.audit(
            actor,
            AuditAction::TotpEnrolled,
            &format!("user {name} provisioned"),
        )
        .await?;
        Ok(enrolment)
    }

    /// A fresh secret for a user who has no confirmed authenticator.
    async fn begin_enrolment(&self, name: &StaffName) -> Result<Enrolment, StaffOpError> {
        let mut secret = [0u8; TOTP_SECRET_LEN];
        rand::rng().fill_bytes(&mut secret);
        self.store.set_totp_secret(name, Some(&secret)).await?;
        Ok(self.enrolment(name, &secret))
    }

    fn enrolment(&self, name: &StaffName, secret: &[u8]) -> Enrolment {
        let secret_base32 = base32(secret);
        let label = format!("{}:{}", self.issuer, name);
        Enrolment {
            uri: format!(
                "otpauth://totp/{}?secret={secret_base32}&issuer={}&algorithm=SHA1&digits={TOTP_DIGITS}&period={TOTP_STEP}",
                uri_component(&label),
                uri_component(&self.issuer)
            ),
            secret_base32,
        }
    }

    /// The enrolment under way of a signed-in, not yet verified user (the
    /// page shown again after a wrong code).
    pub async fn pending_enrolment(&self, token: &str) -> Result<Enrolment, StaffOpError> {
        let session = self.live_session(token).await?;
        let secret = self
            .store
            .totp_secret(&session.user)
            .await?
            .ok_or(StaffOpError::SessionOver)?;
        Ok(self.enrolment(&session.user, &secret))
    }

    /// The TOTP step: the session becomes verified. Each code works once.
    pub async fn second_factor(
        &self,
        token: &str,
        code: &str,
        origin: &str,
    ) -> Result<(), StaffOpError> {
        let session = self.live_session(token).await?;
        if session.verified {
            return Ok(());
        }
        let name = session.user.clone();
        let user = self.user(&name).await?;
        if user.disabled || user.locked_until.is_some_and(|u| u > self.clock.now()) {
            self.store.end_session(&session.token_hash).await?;
            return Err(StaffOpError::SessionOver);
        }
        let secret = self
            .store
            .totp_secret(&name)
            .await?
            .ok_or(StaffOpError::SessionOver)?;
        let Some(step) = matching_step(&secret, code, self.clock.now()) else {
            return Err(self.failed(&name, origin, "TOTP code").await?);
        };
        if !self.store.use_totp_step(&name, step).await? {
            return Err(self.failed(&name, origin, "TOTP code used before").await?);
        }
        self.store.verify_session(&session.token_hash).await?;
        self.store.clear_failures(&name).await?;
        let actor = Actor::operator(name.as_str(), &format!("backoffice@{origin}"));
        if !user.totp_enrolled {
            self.audit(&actor, AuditAction::TotpEnrolled, "").await?;
        }
        self.audit(&actor, AuditAction::SignedIn, "password and TOTP")
            .await
    }

    /// The stored session of a token while it lives; an idle or expired
    /// one is ended.
    async fn live_session(&self, token: &str) -> Result<StaffSession, StaffOpError> {
        let hash = token_hash(token);
        let session = self
            .store
            .session(&hash)
            .await?
            .ok_or(StaffOpError::SessionOver)?;
        match self
            .policy
            .life(session.created_at, session.last_seen, self.clock.now())
        {
            SessionLife::Live => Ok(session),
            SessionLife::Idle | SessionLife::Expired => {
                self.store.end_session(&hash).await?;
                Err(StaffOpError::SessionOver)
            }
        }
    }

    /// The person behind a session token, and marks the session used. A
    /// session over its timeouts, of a disabled user, or whose user is gone
    /// is ended: [`StaffOpError::SessionOver`].
    pub async fn session(&self, token: &str) -> Result<SignedIn, StaffOpError> {
        let session = self.live_session(token).await?;
        let user = match self.store.user(&session.user).await? {
            Some(u) if !u.disabled => u,
            _ => {
                self.store.end_session(&session.token_hash).await?;
                return Err(StaffOpError::SessionOver);
            }
        };
        self.store
            .touch_session(&session.token_hash, self.clock.now())
            .await?;
        Ok(SignedIn {
            name: user.name,
            role: user.role,
            verified: session.verified,
            csrf: session.csrf,
            enrolling: user.role.needs_second_factor() && !user.totp_enrolled,
        })
    }

    pub async fn sign_out(&self, token: &str, origin: &str) -> Result<(), StaffOpError> {
        let hash = token_hash(token);
        if let Some(session) = self.store.session(&hash).await? {
            self.store.end_session(&hash).await?;
            let actor = Actor::operator(session.user.as_str(), &format!("backoffice@{origin}"));
            self.audit(&actor, AuditAction::SignedOut, "").await?;
        }
        Ok(())
    }

    /// Records that a signed-in person asked for what their role may not do.
    pub async fn refused(&self, who: &SignedIn, origin: &str, what: &str) {
        let entry = self
            .audit
            .entry(&who.actor(origin), AuditAction::AccessRefused)
            .detail(what);
        // Logged by the trail when it fails; the refusal stands either way.
        let _ = self.audit.record(entry).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dummy_hash_is_what_the_hasher_makes() {
        let hasher = Argon2::new(Algorithm::Argon2id, Version::V0x13, argon2_params());
        let salt = SaltString::encode_b64(b"mooring-dummy-salt").expect("salt");
        let made = hasher
            .hash_password(b"no user has this password", &salt)
            .expect("hash")
            .to_string();
        assert_eq!(DUMMY_HASH, made);
        // And verifying against it costs a real verification.
        let parsed = PasswordHash::new(DUMMY_HASH).expect("a PHC string");
        assert!(
            hasher
                .verify_password(b"no user has this password", &parsed)
                .is_ok()
        );
    }
}
