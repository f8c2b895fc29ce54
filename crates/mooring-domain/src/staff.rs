//! The people of the back office: their names and roles, what each role may
//! do, how long a session lives, when failed sign-ins lock a user out, and
//! the maker-checker rule (a change one person asks for is carried out only
//! when a different person approves it).
//!
//! Roles are ordered: each may do what the one below it may, and more.
//! Every role that can change something signs in with a second factor.

use chrono::{DateTime, Duration, Utc};

use crate::transaction::TransactionId;

/// A back-office role, from the least to the most it may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// Sees states and counts, never a customer's value.
    Viewer,
    /// Reviews KYC: sees values and files, approves and rejects customers.
    Reviewer,
    /// Deals with payouts: asks for and approves retries and refunds,
    /// releases payouts held for approval, sees frozen orders.
    Operator,
    /// Manages users and reads the audit trail.
    Admin,
}

impl Role {
    pub const ALL: [Self; 4] = [Self::Viewer, Self::Reviewer, Self::Operator, Self::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Viewer => "viewer",
            Self::Reviewer => "reviewer",
            Self::Operator => "operator",
            Self::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// Whether signing in takes a TOTP code as well as the password: every
    /// role that can change something.
    pub fn needs_second_factor(self) -> bool {
        self != Self::Viewer
    }

    /// Whether this role may do `what`.
    pub fn may(self, what: Duty) -> bool {
        self >= what.least_role()
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Something a person does in the back office, each with the least role
/// that may do it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Duty {
    /// Dashboards, lists, states and ids.
    See,
    /// A customer's field values and files.
    ReadCustomerData,
    /// Approve or reject a customer, or one of their fields.
    ReviewCustomer,
    /// A payout's frozen order (its values).
    ReadPayoutOrder,
    /// Ask for, approve or refuse a retry or a refund; release a payout
    /// held for approval.
    ActOnPayouts,
    /// Read and export the audit trail.
    ReadAudit,
    /// Add, disable and change users.
    ManageUsers,
}

impl Duty {
    pub const ALL: [Self; 7] = [
        Self::See,
        Self::ReadCustomerData,
        Self::ReviewCustomer,
        Self::ReadPayoutOrder,
        Self::ActOnPayouts,
        Self::ReadAudit,
        Self::ManageUsers,
    ];

    pub fn least_role(self) -> Role {
        match self {
            Self::See => Role::Viewer,
            Self::ReadCustomerData | Self::ReviewCustomer => Role::Reviewer,
            Self::ReadPayoutOrder | Self::ActOnPayouts => Role::Operator,
            Self::ReadAudit | Self::ManageUsers => Role::Admin,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::See => "see",
            Self::ReadCustomerData => "read customer data",
            Self::ReviewCustomer => "review customers",
            Self::ReadPayoutOrder => "read payout orders",
            Self::ActOnPayouts => "act on payouts",
            Self::ReadAudit => "read the audit trail",
            Self::ManageUsers => "manage users",
        }
    }
}

/// The longest user name.
pub const MAX_NAME: usize = 64;
/// The shortest password a user may have.
pub const MIN_PASSWORD: usize = 12;
/// The longest password read (argon2 takes any length; this bounds work).
pub const MAX_PASSWORD: usize = 256;

/// A user's name: 1 to 64 of `a-z 0-9 . _ -`, starting with a letter or a
/// digit. It is shown, logged and audited, so it can hold nothing else.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StaffName(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StaffNameError {
    #[error("a user name is 1 to {MAX_NAME} characters")]
    Length,
    #[error(
        "a user name is lower-case letters, digits, '.', '_' and '-', starting with a letter or digit"
    )]
    Characters,
}

impl StaffName {
    pub fn parse(text: &str) -> Result<Self, StaffNameError> {
        if text.is_empty() || text.len() > MAX_NAME {
            return Err(StaffNameError::Length);
        }
        let first_ok = text
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
        let rest_ok = text
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'));
        if first_ok && rest_ok {
            Ok(Self(text.to_owned()))
        } else {
            Err(StaffNameError::Characters)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for StaffName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why a password is not taken. It never echoes the password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    #[error("a password is at least {MIN_PASSWORD} characters")]
    TooShort,
    #[error("a password is at most {MAX_PASSWORD} characters")]
    TooLong,
}

/// Checks a new password's length (the only rule NIST SP 800-63B asks for).
pub fn check_new_password(password: &str) -> Result<(), PasswordError> {
    let n = password.chars().count();
    if n < MIN_PASSWORD {
        Err(PasswordError::TooShort)
    } else if n > MAX_PASSWORD {
        Err(PasswordError::TooLong)
    } else {
        Ok(())
    }
}

/// How long sessions live and when sign-ins lock a user out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionPolicy {
    /// A session unused this long is over.
    pub idle: Duration,
    /// A session is over this long after sign-in, however busy.
    pub absolute: Duration,
    /// Failed sign-ins in a row that lock the user out.
    pub max_failures: u32,
    /// How long a lock-out lasts.
    pub lockout: Duration,
}

impl Default for SessionPolicy {
    fn default() -> Self {
        Self {
            idle: Duration::minutes(15),
            absolute: Duration::hours(8),
            max_failures: 5,
            lockout: Duration::minutes(15),
        }
    }
}

/// Where a session stands at a moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionLife {
    Live,
    /// Unused for longer than the idle timeout.
    Idle,
    /// Older than the absolute timeout.
    Expired,
}

impl SessionPolicy {
    /// A session made at `created` and last used at `last_seen`, at `now`.
    /// A clock that went back counts as no time passing.
    pub fn life(
        &self,
        created: DateTime<Utc>,
        last_seen: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> SessionLife {
        if now - created >= self.absolute {
            SessionLife::Expired
        } else if now - last_seen >= self.idle {
            SessionLife::Idle
        } else {
            SessionLife::Live
        }
    }
}

/// A change to a payout that takes two people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestKind {
    /// Another attempt under a new idempotency key (rail-checked when it is
    /// carried out).
    RetryNewAttempt,
    /// The funds were returned; the AP is told with the Stellar hash.
    Refund { stellar_hash: String },
}

impl RequestKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::RetryNewAttempt => "retry_new_attempt",
            Self::Refund { .. } => "refund",
        }
    }
}

/// Where a request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RequestState {
    Pending,
    /// Approved by a second person, and being carried out. A request left
    /// here (a crash between the approval and the engine's answer) is never
    /// run again: an operator looks at the payout and refuses it, and asks
    /// again if the change did not happen.
    Approving,
    /// Approved by a second person and carried out.
    Approved,
    /// Refused by a second person, or withdrawn by its maker.
    Refused,
    /// Approved, but the engine would not carry it out (the rail said no).
    Failed,
}

impl RequestState {
    pub const ALL: [Self; 5] = [
        Self::Pending,
        Self::Approving,
        Self::Approved,
        Self::Refused,
        Self::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Approving => "approving",
            Self::Approved => "approved",
            Self::Refused => "refused",
            Self::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// A maker's request, waiting for a checker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayoutRequest {
    pub id: String,
    pub transaction: TransactionId,
    pub kind: RequestKind,
    /// The payout's attempt when it was asked for: the request is carried
    /// out only on that attempt (a later one means it was, or something
    /// else moved the payout on).
    pub attempt: u32,
    pub maker: StaffName,
    pub made_at: DateTime<Utc>,
    pub state: RequestState,
    pub checker: Option<StaffName>,
    pub decided_at: Option<DateTime<Utc>>,
    /// Why it was refused or failed (never a PII value).
    pub outcome: String,
}

/// Why a checker may not decide a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckError {
    #[error("the person who asked for a change cannot also approve it; another operator must")]
    SamePerson,
    #[error("this request was already {0}")]
    Decided(&'static str),
}

impl PayoutRequest {
    /// Whether `checker` may approve this request: not its maker, and the
    /// request pending. It is approved, and carried out, once.
    pub fn may_approve(&self, checker: &StaffName) -> Result<(), CheckError> {
        if &self.maker == checker {
            return Err(CheckError::SamePerson);
        }
        match self.state {
            RequestState::Pending => Ok(()),
            other => Err(CheckError::Decided(other.as_str())),
        }
    }

    /// Whether `checker` may refuse it: not its maker, and pending, or
    /// left `approving` by a run cut short (closing it, never running it
    /// again). Its maker may only withdraw it ([`Self::may_withdraw`]).
    pub fn may_refuse(&self, checker: &StaffName) -> Result<(), CheckError> {
        if &self.maker == checker {
            return Err(CheckError::SamePerson);
        }
        match self.state {
            RequestState::Pending | RequestState::Approving => Ok(()),
            other => Err(CheckError::Decided(other.as_str())),
        }
    }

    /// Whether `who` may withdraw it: its maker, while it is pending.
    pub fn may_withdraw(&self, who: &StaffName) -> bool {
        self.state == RequestState::Pending && &self.maker == who
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + secs, 0).expect("valid")
    }

    #[test]
    fn roles_are_ordered_and_each_does_what_the_one_below_does() {
        for duty in Duty::ALL {
            let mut allowed = false;
            for role in Role::ALL {
                // Once allowed, every higher role is allowed too.
                assert!(!allowed || role.may(duty), "{role} lost {}", duty.as_str());
                allowed = role.may(duty);
            }
            assert!(Role::Admin.may(duty));
        }
        assert!(Role::Viewer.may(Duty::See));
        assert!(!Role::Viewer.may(Duty::ReadCustomerData));
        assert!(Role::Reviewer.may(Duty::ReviewCustomer));
        assert!(!Role::Reviewer.may(Duty::ActOnPayouts));
        assert!(!Role::Reviewer.may(Duty::ReadPayoutOrder));
        assert!(Role::Operator.may(Duty::ActOnPayouts));
        assert!(!Role::Operator.may(Duty::ManageUsers));
        assert!(!Role::Operator.may(Duty::ReadAudit));
    }

    #[test]
    fn every_role_that_changes_something_needs_a_second_factor() {
        for role in Role::ALL {
            let changes = [Duty::ReviewCustomer, Duty::ActOnPayouts, Duty::ManageUsers]
                .into_iter()
                .any(|d| role.may(d));
            assert_eq!(role.needs_second_factor(), changes, "{role}");
            assert_eq!(Role::parse(role.as_str()), Some(role));
        }
        assert_eq!(Role::parse("root"), None);
    }

    #[test]
    fn names_are_tokens() {
        assert!(StaffName::parse("alice").is_ok());
        assert!(StaffName::parse("ops.bob-2").is_ok());
        assert_eq!(StaffName::parse(""), Err(StaffNameError::Length));
        assert_eq!(
            StaffName::parse(&"a".repeat(MAX_NAME + 1)),
            Err(StaffNameError::Length)
        );
        for bad in ["Alice", "-bob", "a b", "al\nice", "ali<ce", "élise"] {
            assert_eq!(
                StaffName::parse(bad),
                Err(StaffNameError::Characters),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn passwords_are_checked_by_length_only() {
        assert_eq!(check_new_password("short"), Err(PasswordError::TooShort));
        assert_eq!(check_new_password("twelve chars"), Ok(()));
        assert_eq!(
            check_new_password(&"x".repeat(MAX_PASSWORD + 1)),
            Err(PasswordError::TooLong)
        );
    }

    proptest! {
        /// A session is live exactly while it is younger than the absolute
        /// timeout and was used within the idle one.
        #[test]
        fn a_session_is_live_only_within_both_timeouts(
            age in 0i64..40_000,
            idle_for in 0i64..40_000,
        ) {
            let p = SessionPolicy::default();
            let now = at(50_000);
            let created = now - Duration::seconds(age);
            let last_seen = now - Duration::seconds(idle_for.min(age));
            let life = p.life(created, last_seen, now);
            let live = age < p.absolute.num_seconds() && idle_for.min(age) < p.idle.num_seconds();
            prop_assert_eq!(life == SessionLife::Live, live);
            if age >= p.absolute.num_seconds() {
                prop_assert_eq!(life, SessionLife::Expired);
            }
        }

        /// Whoever made a request can never decide it, whatever its state.
        #[test]
        fn the_maker_never_checks(maker in "[a-z]{1,8}", checker in "[a-z]{1,8}", state in 0usize..5) {
            let maker = StaffName::parse(&maker).expect("name");
            let checker = StaffName::parse(&checker).expect("name");
            let r = PayoutRequest {
                id: "r".into(),
                transaction: TransactionId::parse("tx-1").expect("id"),
                kind: RequestKind::RetryNewAttempt,
                attempt: 1,
                maker: maker.clone(),
                made_at: at(0),
                state: RequestState::ALL[state],
                checker: None,
                decided_at: None,
                outcome: String::new(),
            };
            prop_assert_eq!(r.may_approve(&maker), Err(CheckError::SamePerson));
            prop_assert_eq!(r.may_refuse(&maker), Err(CheckError::SamePerson));
            let open = matches!(r.state, RequestState::Pending | RequestState::Approving);
            prop_assert_eq!(
                r.may_approve(&checker).is_ok(),
                checker != maker && r.state == RequestState::Pending
            );
            prop_assert_eq!(r.may_refuse(&checker).is_ok(), checker != maker && open);
            prop_assert_eq!(r.may_withdraw(&checker), checker == maker && r.state == RequestState::Pending);
        }
    }
}
