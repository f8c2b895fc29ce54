//! Retention: what Mooring keeps, and for how long (`docs/security.md`,
//! "Retention"). A pass removes applied events past their retention,
//! expired or used quotes past theirs (never one a payout not yet final
//! names), and data keys left without a customer, a batch at a time until
//! nothing is left or the pass's bound is reached.

use std::sync::Arc;
use std::time::Duration;

use mooring_ports::{Clock, Retention, RetentionError};

/// Rows removed per transaction.
pub const BATCH: u32 = 500;
/// Batches per kind in one pass: a large backlog is worked off over
/// several passes, so one pass never holds the database for long.
pub const MAX_BATCHES: u32 = 20;
/// How old a customer-less data key must be before it is removed: longer
/// than any write transaction that makes a key and its customer together.
pub const ORPHAN_KEY_GRACE: Duration = Duration::from_secs(3600);

/// How long things are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// Applied events, after they were applied.
    pub events: Duration,
    /// Quotes, after they expired unused or were used.
    pub quotes: Duration,
}

impl Default for RetentionPolicy {
    fn default() -> Self {
        Self {
            events: Duration::from_secs(7 * 86_400),
            quotes: Duration::from_secs(90 * 86_400),
        }
    }
}

/// What one pass removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    pub events: u64,
    pub quotes: u64,
    pub data_keys: u64,
}

impl Pruned {
    /// (metric label, count) of each kind.
    pub fn kinds(&self) -> [(&'static str, u64); 3] {
        [
            ("events", self.events),
            ("quotes", self.quotes),
            ("data_keys", self.data_keys),
        ]
    }
}

/// Runs retention passes.
#[derive(Clone)]
pub struct Pruner {
    store: Arc<dyn Retention>,
    clock: Arc<dyn Clock>,
    policy: RetentionPolicy,
}

fn ago(now: chrono::DateTime<chrono::Utc>, d: Duration) -> chrono::DateTime<chrono::Utc> {
    chrono::Duration::from_std(d)
        .ok()
        .and_then(|d| now.checked_sub_signed(d))
        .unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC)
}

/// Runs `batch` until it removes less than a full batch, or
/// [`MAX_BATCHES`] times; returns the total removed.
async fn drain<F, Fut>(mut batch: F) -> Result<u64, RetentionError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<u64, RetentionError>>,
{
    let mut total = 0;
    for _ in 0..MAX_BATCHES {
        let n = batch().await?;
        total += n;
        if n < u64::from(BATCH) {
            break;
        }
    }
    Ok(total)
}

impl Pruner {
    pub fn new(store: Arc<dyn Retention>, clock: Arc<dyn Clock>, policy: RetentionPolicy) -> Self {
        Self {
            store,
            clock,
            policy,
        }
    }

    pub fn policy(&self) -> RetentionPolicy {
        self.policy
    }

    /// One pass. Safe beside other replicas' passes: each delete re-checks
    /// its condition.
    pub async fn prune(&self) -> Result<Pruned, RetentionError> {
        let now = self.clock.now();
        let events_before = ago(now, self.policy.events);
        let quotes_before = ago(now, self.policy.quotes);
        let keys_before = ago(now, ORPHAN_KEY_GRACE);
        let store = &self.store;
        Ok(Pruned {
            events: drain(|| store.prune_events(events_before, BATCH)).await?,
            quotes: drain(|| store.prune_quotes(quotes_before, BATCH)).await?,
            data_keys: drain(|| store.prune_orphan_keys(keys_before, BATCH)).await?,
        })
    }
}
