//! The back office's people (`mooring_domain::staff`): users with their
//! password hash and TOTP secret, their sessions, and the maker-checker
//! requests on payouts.
//!
//! Several replicas share one store, so every counter and every decision
//! is one atomic write: a failed sign-in counts once whichever replica saw
//! it, a TOTP time step is used once, and a request is decided once.
//! An implementation keeps the TOTP secret sealed at rest, and a session
//! only by the hash of its token.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mooring_domain::staff::{PayoutRequest, RequestState, Role, StaffName};
use mooring_domain::transaction::TransactionId;

/// Errors of the [`StaffStore`].
#[derive(Debug, thiserror::Error)]
pub enum StaffError {
    #[error("no such user")]
    NotFound,
    #[error("a user of that name exists")]
    Exists,
    #[error(transparent)]
    Unknown(#[from] anyhow::Error),
}

/// A user as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaffUser {
    pub name: StaffName,
    pub role: Role,
    /// The argon2id hash, in its PHC string form.
    pub password_hash: String,
    pub disabled: bool,
    /// Failed sign-ins in a row.
    pub failures: u32,
    pub locked_until: Option<DateTime<Utc>>,
    /// The user has confirmed a TOTP authenticator (a secret alone, not yet
    /// confirmed by a code, is an enrolment under way).
    pub totp_enrolled: bool,
    pub created_at: DateTime<Utc>,
}

/// A session as stored: by the hash of its token, never the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaffSession {
    pub token_hash: String,
    pub user: StaffName,
    /// The second factor was given (or the role needs none).
    pub verified: bool,
    /// The token every state-changing form carries.
    pub csrf: String,
    pub created_at: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
}

#[async_trait]
pub trait StaffStore: Send + Sync + 'static {
    /// Adds a user; [`StaffError::Exists`] when the name is taken.
    async fn add_user(&self, user: &StaffUser) -> Result<(), StaffError>;

    async fn user(&self, name: &StaffName) -> Result<Option<StaffUser>, StaffError>;

    /// Every user, by name.
    async fn users(&self) -> Result<Vec<StaffUser>, StaffError>;

    async fn set_disabled(&self, name: &StaffName, disabled: bool) -> Result<(), StaffError>;

    async fn set_role(&self, name: &StaffName, role: Role) -> Result<(), StaffError>;

    async fn set_password(&self, name: &StaffName, hash: &str) -> Result<(), StaffError>;

    /// Counts one failed sign-in, atomically, and once the count reaches
    /// `lock_at_limit.0` locks the user out until `lock_at_limit.1` (and
    /// starts the count again). Returns true when this failure locked them.
    async fn count_failure(
        &self,
        name: &StaffName,
        lock_at_limit: (u32, DateTime<Utc>),
    ) -> Result<bool, StaffError>;

    /// Clears the failure count and any lock-out (a good sign-in).
    async fn clear_failures(&self, name: &StaffName) -> Result<(), StaffError>;

    /// Stores a new TOTP secret (sealed), not yet enrolled; `None` removes
    /// it (a reset), and with it the enrolment and the last step used.
    async fn set_totp_secret(
        &self,
        name: &StaffName,
        secret: Option<&[u8]>,
    ) -> Result<(), StaffError>;

    /// The user's TOTP secret, opened.
    async fn totp_secret(&self, name: &StaffName) -> Result<Option<Vec<u8>>, StaffError>;

    /// Uses a TOTP time step: true when it is later than every step the
    /// user used before (so each code works once), and then marks the user
    /// enrolled.
    async fn use_totp_step(&self, name: &StaffName, step: u64) -> Result<bool, StaffError>;

    async fn add_session(&self, session: &StaffSession) -> Result<(), StaffError>;

    async fn session(&self, token_hash: &str) -> Result<Option<StaffSession>, StaffError>;

    /// Marks the session used at `now`.
    async fn touch_session(&self, token_hash: &str, now: DateTime<Utc>) -> Result<(), StaffError>;

    /// Marks the session's second factor given.
    async fn verify_session(&self, token_hash: &str) -> Result<(), StaffError>;

    async fn end_session(&self, token_hash: &str) -> Result<(), StaffError>;

    /// Ends every session of a user (disabled, role changed, TOTP reset).
    async fn end_sessions_of(&self, name: &StaffName) -> Result<u64, StaffError>;
}

/// Errors of the [`RequestBook`].
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error("no such request")]
    NotFound,
    /// Another request for the same payout is pending.
    #[error("a request for this payout is already waiting for approval")]
    Pending,
    /// The request was decided by someone else first, or its maker is the
    /// checker.
    #[error("the request is no longer pending")]
    Decided,
    #[error(transparent)]
    Unknown(#[from] anyhow::Error),
}

#[async_trait]
pub trait RequestBook: Send + Sync + 'static {
    /// Adds a pending request; [`RequestError::Pending`] when the payout
    /// already has one.
    async fn add_request(&self, request: &PayoutRequest) -> Result<(), RequestError>;

    async fn request(&self, id: &str) -> Result<Option<PayoutRequest>, RequestError>;

    /// Requests in these states (all when empty), newest first.
    async fn requests(
        &self,
        states: &[RequestState],
        transaction: Option<&TransactionId>,
        limit: u32,
    ) -> Result<Vec<PayoutRequest>, RequestError>;

    /// Decides a request, atomically, with its checker. `Approving` is
    /// taken only from `Pending` (so a request runs once), `Refused` from
    /// `Pending` or `Approving` (closing a run cut short); neither when the
    /// checker is the maker, except that a maker may withdraw (`Refused`,
    /// `withdraw` true). Returns false when the request was not in a state
    /// it could be taken from.
    async fn decide(
        &self,
        id: &str,
        checker: &StaffName,
        state: RequestState,
        withdraw: bool,
        at: DateTime<Utc>,
        outcome: &str,
    ) -> Result<bool, RequestError>;

    /// Records how an approved request ended (`Approved` or `Failed`).
    async fn finish(
        &self,
        id: &str,
        state: RequestState,
        outcome: &str,
    ) -> Result<(), RequestError>;
}
