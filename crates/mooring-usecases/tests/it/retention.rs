//! The retention pass: what it asks the store to remove, and when it stops.

use std::sync::{Arc, Mutex};
use std::time::Duration as StdDuration;

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use mooring_ports::{Clock, Retention, RetentionError};
use mooring_usecases::retention::{BATCH, MAX_BATCHES, ORPHAN_KEY_GRACE};
use mooring_usecases::{Pruned, Pruner, RetentionPolicy};

use crate::fakes::TestClock;

/// Rows of each kind with their age stamps; records each call's cutoff.
#[derive(Default)]
struct FakeRetention {
    events: Mutex<Vec<DateTime<Utc>>>,
    quotes: Mutex<Vec<DateTime<Utc>>>,
    keys: Mutex<Vec<DateTime<Utc>>>,
    cutoffs: Mutex<Vec<(&'static str, DateTime<Utc>)>>,
}

fn take(rows: &Mutex<Vec<DateTime<Utc>>>, before: DateTime<Utc>, limit: u32) -> u64 {
    let mut rows = rows.lock().expect("lock");
    let mut n = 0;
    rows.retain(|t| {
        if *t < before && n < u64::from(limit) {
            n += 1;
            false
        } else {
            true
        }
    });
    n
}

#[async_trait]
impl Retention for FakeRetention {
    async fn prune_events(&self, before: DateTime<Utc>, limit: u32) -> Result<u64, RetentionError> {
        self.cutoffs.lock().expect("lock").push(("events", before));
        Ok(take(&self.events, before, limit))
    }
    async fn prune_quotes(&self, before: DateTime<Utc>, limit: u32) -> Result<u64, RetentionError> {
        self.cutoffs.lock().expect("lock").push(("quotes", before));
        Ok(take(&self.quotes, before, limit))
    }
    async fn prune_orphan_keys(
        &self,
        before: DateTime<Utc>,
        limit: u32,
    ) -> Result<u64, RetentionError> {
        self.cutoffs.lock().expect("lock").push(("keys", before));
        Ok(take(&self.keys, before, limit))
    }
}

#[tokio::test]
async fn a_pass_removes_exactly_what_is_past_each_kinds_retention() {
    let clock = Arc::new(TestClock::default());
    let now = clock.now();
    let store = Arc::new(FakeRetention::default());
    let day = Duration::days(1);
    *store.events.lock().expect("lock") = vec![
        now - day * 8,
        now - day * 6,
        now - day * 7 - Duration::seconds(1),
    ];
    *store.quotes.lock().expect("lock") = vec![now - day * 91, now - day * 89];
    *store.keys.lock().expect("lock") = vec![now - Duration::hours(2), now - Duration::minutes(10)];
    let pruner = Pruner::new(store.clone(), clock, RetentionPolicy::default());

    let pruned = pruner.prune().await.expect("pruned");

    assert_eq!(
        pruned,
        Pruned {
            events: 2,
            quotes: 1,
            data_keys: 1
        }
    );
    assert_eq!(*store.events.lock().expect("lock"), [now - day * 6]);
    assert_eq!(*store.quotes.lock().expect("lock"), [now - day * 89]);
    assert_eq!(
        *store.keys.lock().expect("lock"),
        [now - Duration::minutes(10)]
    );
    let cutoffs = store.cutoffs.lock().expect("lock").clone();
    let grace = Duration::from_std(ORPHAN_KEY_GRACE).expect("grace");
    assert_eq!(
        cutoffs,
        [
            ("events", now - day * 7),
            ("quotes", now - day * 90),
            ("keys", now - grace)
        ]
    );
    // Nothing is left to remove: a second pass removes nothing.
    assert_eq!(pruner.prune().await.expect("pruned"), Pruned::default());
}

#[tokio::test]
async fn a_backlog_is_removed_in_bounded_batches_over_passes() {
    let clock = Arc::new(TestClock::default());
    let old = clock.now() - Duration::days(30);
    let store = Arc::new(FakeRetention::default());
    let backlog = u64::from(BATCH) * u64::from(MAX_BATCHES) + 7;
    *store.events.lock().expect("lock") = vec![old; backlog as usize];
    let pruner = Pruner::new(
        store.clone(),
        clock,
        RetentionPolicy {
            events: StdDuration::from_secs(86_400),
            quotes: StdDuration::from_secs(86_400),
        },
    );
    let first = pruner.prune().await.expect("pruned");
    assert_eq!(first.events, u64::from(BATCH) * u64::from(MAX_BATCHES));
    let event_calls = store
        .cutoffs
        .lock()
        .expect("lock")
        .iter()
        .filter(|(k, _)| *k == "events")
        .count();
    assert_eq!(event_calls, MAX_BATCHES as usize);
    assert_eq!(pruner.prune().await.expect("pruned").events, 7);
    assert!(store.events.lock().expect("lock").is_empty());
}
