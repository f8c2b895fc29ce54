//! The audit trail's vocabulary: who acted ([`Actor`]), what they did
//! ([`AuditAction`]), and the entry that records it ([`AuditEntry`]), to
//! which customer or payout, when, and from where.
//!
//! An entry never holds a PII value: it names a customer by id, a payout by
//! transaction id, and fields by their SEP-9 names. Names and origins are
//! bounded and printable, so an entry cannot smuggle a log line or grow
//! without limit.

use chrono::{DateTime, Utc};

use crate::customer::CustomerId;
use crate::transaction::TransactionId;

/// The longest actor name and origin kept; longer ones are cut.
pub const MAX_ACTOR_TEXT: usize = 128;
/// The longest detail kept; a longer one is cut.
pub const MAX_DETAIL: usize = 512;

/// What kind of party acted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ActorKind {
    /// A person at the CLI or in the back office.
    Operator,
    /// The Anchor Platform, through the callbacks.
    Platform,
    /// Mooring itself (a background job).
    System,
}

impl ActorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Operator => "operator",
            Self::Platform => "platform",
            Self::System => "system",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "operator" => Some(Self::Operator),
            "platform" => Some(Self::Platform),
            "system" => Some(Self::System),
            _ => None,
        }
    }
}

/// Who did something, and from where (a host name, an address).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    kind: ActorKind,
    name: String,
    origin: String,
}

/// Keeps printable characters only, at most `max` of them.
fn bounded(text: &str, max: usize) -> String {
    text.chars()
        .filter(|c| !c.is_control())
        .take(max)
        .collect::<String>()
        .trim()
        .to_owned()
}

impl Actor {
    pub fn new(kind: ActorKind, name: &str, origin: &str) -> Self {
        let name = bounded(name, MAX_ACTOR_TEXT);
        let origin = bounded(origin, MAX_ACTOR_TEXT);
        Self {
            kind,
            name: if name.is_empty() {
                "unknown".into()
            } else {
                name
            },
            origin: if origin.is_empty() {
                "unknown".into()
            } else {
                origin
            },
        }
    }

    /// A person at a terminal: their user name, and the host.
    pub fn operator(name: &str, origin: &str) -> Self {
        Self::new(ActorKind::Operator, name, origin)
    }

    /// The Anchor Platform calling back, from a peer address.
    pub fn platform(origin: &str) -> Self {
        Self::new(ActorKind::Platform, "anchor-platform", origin)
    }

    /// One of Mooring's own jobs, on a host.
    pub fn system(job: &str, origin: &str) -> Self {
        Self::new(ActorKind::System, job, origin)
    }

    pub fn kind(&self) -> ActorKind {
        self.kind
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn origin(&self) -> &str {
        &self.origin
    }
}

impl std::fmt::Display for Actor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}@{}", self.kind.as_str(), self.name, self.origin)
    }
}

/// A field name as an entry may name it: as given when it is a SEP-9-like
/// token (letters, digits, `_`, at most 64), else only that it was not.
pub fn field_token(name: &str) -> String {
    if !name.is_empty()
        && name.len() <= 64
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        name.to_owned()
    } else {
        "<not a field name>".to_owned()
    }
}

/// What was done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuditAction {
    /// A customer's record was looked at (status and field names).
    CustomerShown,
    /// A customer's PII values were read by a person.
    PiiRead,
    CustomerApproved,
    CustomerRejected,
    /// One provided field of a customer was rejected (the detail names the
    /// field, never the reason).
    FieldRejected,
    CustomerDeleted,
    PayoutRetried,
    PayoutSettled,
    PayoutRefunded,
    /// Data keys were re-wrapped under a new key-encryption key.
    KeysRotated,
    /// A payout's frozen order (its values) was read by a person.
    PayoutOrderRead,
    /// An operator asked for a change that a second one must approve.
    PayoutRequested,
    /// A second operator approved or refused a request, or its maker
    /// withdrew it (the detail says which, and how it ended).
    PayoutRequestDecided,
    /// A payout held for approval (over `payout.approval_above`) released.
    PayoutReleased,
    /// A payout held for approval declined: nothing paid, the AP told.
    PayoutDeclined,
    /// A back-office user signed in (password and, where needed, TOTP).
    SignedIn,
    /// A sign-in failed (the detail says at which step, never what was typed).
    SignInFailed,
    SignedOut,
    /// A user enrolled their TOTP authenticator.
    TotpEnrolled,
    UserAdded,
    /// A user was disabled or enabled, changed role, or had TOTP reset.
    UserChanged,
    /// A signed-in user asked for something their role may not do.
    AccessRefused,
}

impl AuditAction {
    pub const ALL: [Self; 22] = [
        Self::CustomerShown,
        Self::PiiRead,
        Self::CustomerApproved,
        Self::CustomerRejected,
        Self::FieldRejected,
        Self::CustomerDeleted,
        Self::PayoutRetried,
        Self::PayoutSettled,
        Self::PayoutRefunded,
        Self::KeysRotated,
        Self::PayoutOrderRead,
        Self::PayoutRequested,
        Self::PayoutRequestDecided,
        Self::PayoutReleased,
        Self::PayoutDeclined,
        Self::SignedIn,
        Self::SignInFailed,
        Self::SignedOut,
        Self::TotpEnrolled,
        Self::UserAdded,
        Self::UserChanged,
        Self::AccessRefused,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::CustomerShown => "customer.shown",
            Self::PiiRead => "customer.pii_read",
            Self::CustomerApproved => "customer.approved",
            Self::CustomerRejected => "customer.rejected",
            Self::FieldRejected => "customer.field_rejected",
            Self::CustomerDeleted => "customer.deleted",
            Self::PayoutRetried => "payout.retried",
            Self::PayoutSettled => "payout.settled",
            Self::PayoutRefunded => "payout.refunded",
            Self::KeysRotated => "keys.rotated",
            Self::PayoutOrderRead => "payout.order_read",
            Self::PayoutRequested => "payout.requested",
            Self::PayoutRequestDecided => "payout.request_decided",
            Self::PayoutReleased => "payout.released",
            Self::PayoutDeclined => "payout.declined",
            Self::SignedIn => "staff.signed_in",
            Self::SignInFailed => "staff.sign_in_failed",
            Self::SignedOut => "staff.signed_out",
            Self::TotpEnrolled => "staff.totp_enrolled",
            Self::UserAdded => "staff.user_added",
            Self::UserChanged => "staff.user_changed",
            Self::AccessRefused => "staff.access_refused",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == s)
    }
}

impl std::fmt::Display for AuditAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One line of the audit trail. `detail` says how (a mode, field names, a
/// count), never a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    pub at: DateTime<Utc>,
    pub actor: Actor,
    pub action: AuditAction,
    pub customer: Option<CustomerId>,
    pub transaction: Option<TransactionId>,
    pub detail: String,
}

impl AuditEntry {
    pub fn new(at: DateTime<Utc>, actor: &Actor, action: AuditAction) -> Self {
        Self {
            at,
            actor: actor.clone(),
            action,
            customer: None,
            transaction: None,
            detail: String::new(),
        }
    }

    pub fn customer(mut self, id: &CustomerId) -> Self {
        self.customer = Some(id.clone());
        self
    }

    pub fn transaction(mut self, id: &TransactionId) -> Self {
        self.transaction = Some(id.clone());
        self
    }

    /// How it was done: bounded and printable; never pass a PII value.
    pub fn detail(mut self, detail: &str) -> Self {
        self.detail = bounded(detail, MAX_DETAIL);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actors_are_bounded_and_printable() {
        let a = Actor::operator(&format!("ali\nce{}", "x".repeat(500)), "");
        assert!(!a.name().contains('\n'));
        assert_eq!(a.name().chars().count(), MAX_ACTOR_TEXT);
        assert_eq!(a.origin(), "unknown");
        assert_eq!(
            Actor::platform("10.0.0.7").to_string(),
            "platform:anchor-platform@10.0.0.7"
        );
    }

    #[test]
    fn every_action_parses_back_from_its_name() {
        for action in AuditAction::ALL {
            assert_eq!(AuditAction::parse(action.as_str()), Some(action));
        }
        assert_eq!(AuditAction::parse("customer.sold"), None);
        for kind in [ActorKind::Operator, ActorKind::Platform, ActorKind::System] {
            assert_eq!(ActorKind::parse(kind.as_str()), Some(kind));
        }
    }

    #[test]
    fn a_detail_is_cut_to_its_bound() {
        let e = AuditEntry::new(
            Utc::now(),
            &Actor::system("t", "h"),
            AuditAction::KeysRotated,
        )
        .detail(&"d".repeat(MAX_DETAIL * 2));
        assert_eq!(e.detail.len(), MAX_DETAIL);
    }
}
