//! Retention: what may be removed once it is no longer needed
//! (`docs/security.md`, "Retention"). Each call removes at most `limit`
//! rows, so a large backlog is pruned in short transactions.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

/// Errors of [`Retention`].
#[derive(Debug, thiserror::Error)]
pub enum RetentionError {
    #[error(transparent)]
    Unknown(#[from] anyhow::Error),
}

#[async_trait]
pub trait Retention: Send + Sync + 'static {
    /// Removes events applied before `applied_before`. An event not yet
    /// applied is never removed. Returns how many were removed.
    async fn prune_events(
        &self,
        applied_before: DateTime<Utc>,
        limit: u32,
    ) -> Result<u64, RetentionError>;

    /// Removes firm quotes that expired unused before `before`, or were
    /// used before `before`, with their fee details; never a quote that a
    /// payout may still take again names (any state but completed and
    /// refunded: a closed payout reopens, a rejected or failed one is
    /// retried). Returns how many were removed.
    async fn prune_quotes(&self, before: DateTime<Utc>, limit: u32) -> Result<u64, RetentionError>;

    /// Removes data keys made before `made_before` whose customer no longer
    /// exists and that no payout not yet final names as its receiver (a
    /// frozen order sealed under the key of a receiver deleted meanwhile,
    /// once its payout is final): what they sealed can no longer be opened.
    /// Returns how many were removed.
    async fn prune_orphan_keys(
        &self,
        made_before: DateTime<Utc>,
        limit: u32,
    ) -> Result<u64, RetentionError>;
}
