//! The audit trail as the use cases write and read it.
//!
//! A change is recorded once it has happened; a read of PII is recorded
//! before anything is shown, and nothing is shown when it cannot be
//! recorded. A change whose entry cannot be written is not undone (it has
//! happened, and may have been told to the AP): the failure is logged, with
//! the action and ids only, and returned, so the person sees it
//! (`docs/security.md`, "The audit trail").

use std::sync::Arc;

use chrono::{DateTime, Utc};
use mooring_domain::audit::{Actor, AuditAction, AuditEntry};
use mooring_ports::{AuditError, AuditLog, AuditQuery, AuditRecord, Clock};

/// The most entries one read returns.
pub const MAX_PAGE: u32 = 1_000;

/// Appends to and reads the audit trail.
#[derive(Clone)]
pub struct AuditTrail {
    log: Arc<dyn AuditLog>,
    clock: Arc<dyn Clock>,
}

impl AuditTrail {
    pub fn new(log: Arc<dyn AuditLog>, clock: Arc<dyn Clock>) -> Self {
        Self { log, clock }
    }

    /// A new entry at the clock's now, to fill in and [`record`](Self::record).
    pub fn entry(&self, actor: &Actor, action: AuditAction) -> AuditEntry {
        AuditEntry::new(self.clock.now(), actor, action)
    }

    /// Appends `entry`; a failure is logged (without detail) and returned.
    pub async fn record(&self, entry: AuditEntry) -> Result<(), AuditError> {
        self.log.append(&entry).await.inspect_err(|e| {
            tracing::error!(
                audit.action = %entry.action,
                customer.id = entry.customer.as_ref().map(|c| c.as_str()),
                transaction.id = entry.transaction.as_ref().map(|t| t.as_str()),
                actor = %entry.actor,
                error = %e,
                "the audit trail could not record an action"
            );
        })
    }

    /// Entries matching `query`, newest first; the page is capped at
    /// [`MAX_PAGE`].
    pub async fn list(&self, mut query: AuditQuery) -> Result<Vec<AuditRecord>, AuditError> {
        query.limit = query.limit.clamp(1, MAX_PAGE);
        self.log.entries(&query).await
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }
}
