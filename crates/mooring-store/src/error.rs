//! The store's one error inside a port call: what went wrong, and what the
//! store was doing with which record when it did. Each port's trait impl
//! turns it into the port's own error with one `From`: the refusals the
//! port names become its variants, and everything else its `Unknown`,
//! carrying this error's message (ids and kinds, never a value).

use std::fmt;

use mooring_domain::payout::PayoutState;

use crate::StoreError;

/// What a store call was doing: a verb phrase and the record's id
/// ("saving payout", "tx-1").
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Doing {
    what: &'static str,
    id: String,
}

impl fmt::Display for Doing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.what, self.id)
    }
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum Failure {
    /// The database, a connection, the blocking pool or the keys failed.
    #[error("{}{source}", .doing.as_ref().map(|d| format!("{d}: ")).unwrap_or_default())]
    Store {
        doing: Option<Doing>,
        #[source]
        source: StoreError,
    },
    /// A stored record that cannot be read back (`what` names its kind).
    #[error("stored {what} {id} is unreadable: {reason}")]
    Corrupt {
        what: &'static str,
        id: String,
        reason: String,
    },
    /// The record asked for is not there.
    #[error("not found")]
    NotFound,
    /// The customer has no value for the field named.
    #[error("no such field")]
    NoField,
    /// The record changed after the version the caller saw.
    #[error("changed since seen")]
    Changed,
    /// A firm quote past its expiry.
    #[error("quote expired")]
    Expired,
    /// A firm quote another transaction took.
    #[error("quote already used by {0}")]
    AlreadyUsed(String),
    /// Reserving the quote would pass the asset's liquidity cap.
    #[error("insufficient liquidity")]
    InsufficientLiquidity,
    /// Another replica holds the payout's claim now.
    #[error("lost claim")]
    LostClaim,
    /// The payout is not in a state that allows the change.
    #[error("wrong state")]
    WrongState(PayoutState),
    /// The custodian handed out an address another transaction holds.
    #[error("the address {0} is already given to another transaction")]
    Taken(String),
}

impl From<StoreError> for Failure {
    fn from(source: StoreError) -> Self {
        Self::Store {
            doing: None,
            source,
        }
    }
}

impl From<diesel::result::Error> for Failure {
    fn from(e: diesel::result::Error) -> Self {
        StoreError::Query(e).into()
    }
}

impl From<mooring_ports::KeyError> for Failure {
    fn from(e: mooring_ports::KeyError) -> Self {
        StoreError::Keys(e).into()
    }
}

impl Failure {
    /// Says what the store was doing, if nothing closer to the failure
    /// said it first.
    pub(crate) fn during(self, what: &'static str, id: impl fmt::Display) -> Self {
        match self {
            Self::Store {
                doing: None,
                source,
            } => Self::Store {
                doing: Some(Doing {
                    what,
                    id: id.to_string(),
                }),
                source,
            },
            other => other,
        }
    }

    /// The failure as a port's `Unknown`: its message, chained to the cause.
    pub(crate) fn unknown(self) -> anyhow::Error {
        anyhow::Error::new(self)
    }
}

/// [`Failure::during`] on a result.
pub(crate) trait During<T> {
    fn during(self, what: &'static str, id: impl fmt::Display) -> Result<T, Failure>;
}

impl<T, E: Into<Failure>> During<T> for Result<T, E> {
    fn during(self, what: &'static str, id: impl fmt::Display) -> Result<T, Failure> {
        self.map_err(|e| e.into().during(what, id))
    }
}

/// Runs one query-builder expression on whichever backend `conn` is, for
/// what diesel's `MultiConnection` cannot run itself (`ON CONFLICT`,
/// `RETURNING`, `FOR UPDATE`, batch inserts): the expression is written
/// once and compiled for each backend. `by_backend!(conn, |c| q.execute(c))`.
macro_rules! by_backend {
    ($conn:expr, |$c:ident| $body:expr) => {
        match $conn {
            $crate::AnyConnection::Postgresql($c) => $body,
            $crate::AnyConnection::Sqlite($c) => $body,
        }
    };
}
pub(crate) use by_backend;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_says_what_was_being_done_to_which_record_once() {
        let failure = Failure::from(StoreError::Task("pool closed".into()))
            .during("saving payout", "tx-1")
            .during("claiming payouts", "batch");
        assert_eq!(
            failure.to_string(),
            "saving payout tx-1: database task failed: pool closed"
        );
        let bare = Failure::from(StoreError::Task("pool closed".into()));
        assert_eq!(bare.to_string(), "database task failed: pool closed");
        let corrupt = Failure::Corrupt {
            what: "quote",
            id: "q1".into(),
            reason: "bad amount".into(),
        }
        .during("reading quote", "q1");
        assert_eq!(
            corrupt.to_string(),
            "stored quote q1 is unreadable: bad amount"
        );
    }
}
