//! The back office's people against a fake `StaffStore` and a clock the
//! test moves: sign-in answers alike for every refusal, failures lock out
//! at the limit and the lock lapses, TOTP enrolment and each code used
//! once, the idle and absolute timeouts, and a disabled user's session
//! ending at once.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use mooring_domain::audit::AuditAction;
use mooring_domain::staff::{Role, SessionPolicy, StaffName};
use mooring_ports::{Clock, StaffError, StaffSession, StaffStore, StaffUser};
use mooring_usecases::staff::{totp_code, totp_step};
use mooring_usecases::{AuditTrail, NextStep, StaffOpError, StaffService};

use crate::fakes::{FakeAuditLog, TestClock, who};

/// A user as the fake keeps them: the record, the secret, the last step.
type Kept = (StaffUser, Option<Vec<u8>>, Option<u64>);

/// The port's rules in memory: one lock, so every call is atomic.
#[derive(Default)]
struct FakeStaff {
    users: Mutex<BTreeMap<String, Kept>>,
    sessions: Mutex<BTreeMap<String, StaffSession>>,
}

impl FakeStaff {
    fn with<T>(&self, name: &StaffName, f: impl FnOnce(&mut Kept) -> T) -> Result<T, StaffError> {
        let mut users = self.users.lock().expect("lock");
        users
            .get_mut(name.as_str())
            .map(f)
            .ok_or(StaffError::NotFound)
    }
}

#[async_trait]
impl StaffStore for FakeStaff {
    async fn add_user(&self, user: &StaffUser) -> Result<(), StaffError> {
        let mut users = self.users.lock().expect("lock");
        if users.contains_key(user.name.as_str()) {
            return Err(StaffError::Exists);
        }
        users.insert(user.name.to_string(), (user.clone(), None, None));
        Ok(())
    }

    async fn user(&self, name: &StaffName) -> Result<Option<StaffUser>, StaffError> {
        Ok(self
            .users
            .lock()
            .expect("lock")
            .get(name.as_str())
            .map(|k| k.0.clone()))
    }

    async fn users(&self) -> Result<Vec<StaffUser>, StaffError> {
        Ok(self
            .users
            .lock()
            .expect("lock")
            .values()
            .map(|k| k.0.clone())
            .collect())
    }

    async fn set_disabled(&self, name: &StaffName, disabled: bool) -> Result<(), StaffError> {
        self.with(name, |k| k.0.disabled = disabled)
    }

    async fn set_role(&self, name: &StaffName, role: Role) -> Result<(), StaffError> {
        self.with(name, |k| k.0.role = role)
    }

    async fn set_password(&self, name: &StaffName, hash: &str) -> Result<(), StaffError> {
        self.with(name, |k| k.0.password_hash = hash.to_owned())
    }

    async fn count_failure(
        &self,
        name: &StaffName,
        (limit, until): (u32, DateTime<Utc>),
    ) -> Result<bool, StaffError> {
        self.with(name, |k| {
            k.0.failures += 1;
            if k.0.failures >= limit {
                k.0.failures = 0;
                k.0.locked_until = Some(until);
                true
            } else {
                false
            }
        })
    }

    async fn clear_failures(&self, name: &StaffName) -> Result<(), StaffError> {
        self.with(name, |k| {
            k.0.failures = 0;
            k.0.locked_until = None;
        })
    }

    async fn set_totp_secret(
        &self,
        name: &StaffName,
        secret: Option<&[u8]>,
    ) -> Result<(), StaffError> {
        self.with(name, |k| {
            k.1 = secret.map(<[u8]>::to_vec);
            k.0.totp_enrolled = false;
            k.2 = None;
        })
    }

    async fn totp_secret(&self, name: &StaffName) -> Result<Option<Vec<u8>>, StaffError> {
        Ok(self
            .users
            .lock()
            .expect("lock")
            .get(name.as_str())
            .and_then(|k| k.1.clone()))
    }

    async fn use_totp_step(&self, name: &StaffName, step: u64) -> Result<bool, StaffError> {
        self.with(name, |k| {
            if k.2.is_some_and(|last| step <= last) {
                return false;
            }
            k.2 = Some(step);
            k.0.totp_enrolled = true;
            true
        })
    }

    async fn add_session(&self, session: &StaffSession) -> Result<(), StaffError> {
        self.sessions
            .lock()
            .expect("lock")
            .insert(session.token_hash.clone(), session.clone());
        Ok(())
    }

    async fn session(&self, token_hash: &str) -> Result<Option<StaffSession>, StaffError> {
        Ok(self.sessions.lock().expect("lock").get(token_hash).cloned())
    }

    async fn touch_session(&self, token_hash: &str, now: DateTime<Utc>) -> Result<(), StaffError> {
        if let Some(s) = self.sessions.lock().expect("lock").get_mut(token_hash) {
            s.last_seen = now;
        }
        Ok(())
    }

    async fn verify_session(&self, token_hash: &str) -> Result<(), StaffError> {
        self.sessions
            .lock()
            .expect("lock")
            .get_mut(token_hash)
            .map(|s| s.verified = true)
            .ok_or(StaffError::NotFound)
    }

    async fn end_session(&self, token_hash: &str) -> Result<(), StaffError> {
        self.sessions.lock().expect("lock").remove(token_hash);
        Ok(())
    }

    async fn end_sessions_of(&self, name: &StaffName) -> Result<u64, StaffError> {
        let mut sessions = self.sessions.lock().expect("lock");
        let before = sessions.len();
        sessions.retain(|_, s| &s.user != name);
        Ok((before - sessions.len()) as u64)
    }
}

struct Desk {
    staff: StaffService,
    clock: Arc<TestClock>,
    audit: Arc<FakeAuditLog>,
}

const PASSWORD: &str = "correct horse battery";

fn desk() -> Desk {
    let clock = Arc::new(TestClock::default());
    let audit = Arc::new(FakeAuditLog::default());
    let trail = AuditTrail::new(audit.clone(), clock.clone());
    Desk {
        staff: StaffService::new(
            Arc::new(FakeStaff::default()),
            trail,
            clock.clone(),
            SessionPolicy::default(),
            "Mooring",
        ),
        clock,
        audit,
    }
}

impl Desk {
    fn count(&self, action: AuditAction) -> usize {
        self.audit
            .all()
            .iter()
            .filter(|e| e.action == action)
            .count()
    }

    /// The code of `secret` at the test clock's now.
    fn code(&self, secret: &[u8], ahead: u64) -> String {
        totp_code(secret, totp_step(self.clock.now()) + ahead)
    }
}

fn base32_decode(text: &str) -> Vec<u8> {
    const ALPHABET: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let (mut buffer, mut bits, mut out) = (0u32, 0u32, Vec::new());
    for c in text.chars() {
        buffer = (buffer << 5) | u32::try_from(ALPHABET.find(c).expect("base32")).expect("small");
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push(u8::try_from((buffer >> bits) & 0xff).expect("byte"));
        }
    }
    out
}

#[tokio::test]
async fn every_refusal_answers_alike_and_failures_lock_out_until_the_lock_lapses() {
    let d = desk();
    d.staff
        .add_user("vera", Role::Viewer, PASSWORD, &who())
        .await
        .expect("added");
    assert!(matches!(
        d.staff
            .add_user("vera", Role::Admin, PASSWORD, &who())
            .await,
        Err(StaffOpError::Exists)
    ));
    assert!(matches!(
        d.staff
            .add_user("Vera!", Role::Admin, PASSWORD, &who())
            .await,
        Err(StaffOpError::Name(_))
    ));
    assert!(matches!(
        d.staff
            .add_user("short", Role::Admin, "short", &who())
            .await,
        Err(StaffOpError::Password(_))
    ));
    for (name, password) in [
        ("vera", "wrong password!"),
        ("nobody", PASSWORD),
        ("No One", PASSWORD),
    ] {
        let refused = d.staff.sign_in(name, password, "10.0.0.1").await;
        assert!(matches!(refused, Err(StaffOpError::Refused)), "{name}");
    }
    // Four more wrong passwords reach the limit of five.
    for _ in 0..3 {
        assert!(d.staff.sign_in("vera", "wrong", "10.0.0.1").await.is_err());
    }
    let locked = d.staff.sign_in("vera", "wrong", "10.0.0.1").await;
    assert!(
        matches!(locked, Err(StaffOpError::LockedOut(_))),
        "{locked:?}"
    );
    let right = d.staff.sign_in("vera", PASSWORD, "10.0.0.1").await;
    assert!(
        matches!(right, Err(StaffOpError::LockedOut(_))),
        "the right password waits too"
    );
    // The lock lapses.
    d.clock.advance(Duration::minutes(16));
    let started = d
        .staff
        .sign_in("vera", PASSWORD, "10.0.0.1")
        .await
        .expect("signed in");
    assert_eq!(
        started.next,
        NextStep::Done,
        "a viewer needs no second factor"
    );
    assert_eq!(d.count(AuditAction::SignInFailed), 3 + 3 + 1 + 1);
    assert_eq!(d.count(AuditAction::SignedIn), 1);
}

#[tokio::test]
async fn a_role_that_changes_things_enrols_totp_and_each_code_works_once() {
    let d = desk();
    d.staff
        .add_user("rita", Role::Reviewer, PASSWORD, &who())
        .await
        .expect("added");
    let first = d
        .staff
        .sign_in("rita", PASSWORD, "h")
        .await
        .expect("password");
    let NextStep::Enrol(enrolment) = first.next.clone() else {
        panic!("a reviewer enrols first: {:?}", first.next);
    };
    assert!(enrolment.uri.contains("issuer=Mooring"));
    let secret = base32_decode(&enrolment.secret_base32);
    // Not verified yet: the session is partial.
    assert!(
        !d.staff
            .session(&first.token)
            .await
            .expect("session")
            .verified
    );
    assert!(matches!(
        d.staff.second_factor(&first.token, "000000", "h").await,
        Err(StaffOpError::Refused)
    ));
    let code = d.code(&secret, 0);
    d.staff
        .second_factor(&first.token, &code, "h")
        .await
        .expect("verified");
    let who_now = d.staff.session(&first.token).await.expect("session");
    assert!(who_now.verified && !who_now.enrolling);
    // A second sign-in: the same code is refused, the next one accepted.
    let second = d
        .staff
        .sign_in("rita", PASSWORD, "h")
        .await
        .expect("password");
    assert_eq!(second.next, NextStep::Code);
    assert!(matches!(
        d.staff.second_factor(&second.token, &code, "h").await,
        Err(StaffOpError::Refused)
    ));
    let next = d.code(&secret, 1);
    d.staff
        .second_factor(&second.token, &next, "h")
        .await
        .expect("verified");
    assert_eq!(d.count(AuditAction::TotpEnrolled), 1);
    assert_eq!(d.count(AuditAction::SignedIn), 2);
}

#[tokio::test]
async fn sessions_end_when_idle_when_old_and_when_their_user_is_disabled() {
    let d = desk();
    d.staff
        .add_user("ivy", Role::Viewer, PASSWORD, &who())
        .await
        .expect("added");
    let token = d
        .staff
        .sign_in("ivy", PASSWORD, "h")
        .await
        .expect("in")
        .token;
    d.clock.advance(Duration::minutes(14));
    assert!(
        d.staff.session(&token).await.is_ok(),
        "used within the idle timeout"
    );
    d.clock.advance(Duration::minutes(15));
    assert!(matches!(
        d.staff.session(&token).await,
        Err(StaffOpError::SessionOver)
    ));
    // Busy all along: still over after eight hours.
    let token = d
        .staff
        .sign_in("ivy", PASSWORD, "h")
        .await
        .expect("in")
        .token;
    for _ in 0..47 {
        d.clock.advance(Duration::minutes(10));
        assert!(d.staff.session(&token).await.is_ok());
    }
    d.clock.advance(Duration::minutes(10));
    assert!(matches!(
        d.staff.session(&token).await,
        Err(StaffOpError::SessionOver)
    ));
    // Disabled: the session ends at once, and signing in is refused alike.
    let token = d
        .staff
        .sign_in("ivy", PASSWORD, "h")
        .await
        .expect("in")
        .token;
    d.staff
        .set_disabled("ivy", true, &who())
        .await
        .expect("disabled");
    assert!(matches!(
        d.staff.session(&token).await,
        Err(StaffOpError::SessionOver)
    ));
    assert!(matches!(
        d.staff.sign_in("ivy", PASSWORD, "h").await,
        Err(StaffOpError::Refused)
    ));
    assert_eq!(d.count(AuditAction::UserChanged), 1);
}
