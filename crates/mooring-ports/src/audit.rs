//! The audit trail (`mooring_domain::audit`): an append-only log of who did
//! what to which customer or payout. An implementation must refuse to
//! change or remove an entry once written, and must keep entries in the
//! order they were appended.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mooring_domain::audit::AuditEntry;
use mooring_domain::customer::CustomerId;
use mooring_domain::transaction::TransactionId;

/// Errors of the [`AuditLog`].
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error(transparent)]
    Unknown(#[from] anyhow::Error),
}

/// Which entries to read: all filters must hold. Newest first.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    pub customer: Option<CustomerId>,
    pub transaction: Option<TransactionId>,
    /// Entries at or after this instant.
    pub since: Option<DateTime<Utc>>,
    /// Entries by this actor name.
    pub actor: Option<String>,
    pub action: Option<mooring_domain::audit::AuditAction>,
    /// Entries before this instant.
    pub until: Option<DateTime<Utc>>,
    /// Entries older than this one (by sequence), for paging.
    pub before: Option<i64>,
    pub limit: u32,
}

/// An entry as stored, with its place in the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    /// Increases with every append.
    pub sequence: i64,
    pub entry: AuditEntry,
}

#[async_trait]
pub trait AuditLog: Send + Sync + 'static {
    /// Appends an entry. Durable when it returns.
    async fn append(&self, entry: &AuditEntry) -> Result<(), AuditError>;

    /// The entries that match, newest first, at most `query.limit`.
    async fn entries(&self, query: &AuditQuery) -> Result<Vec<AuditRecord>, AuditError>;
}
