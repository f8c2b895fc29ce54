//! The retention loop: a pass of `mooring_usecases::Pruner` a minute after
//! start and then every `retention.interval_seconds`, counting what it
//! removed in `mooring_pruned_total{kind}`.

use std::time::Duration;

use mooring_usecases::Pruner;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How long after start the first pass runs: after start-up's own work.
const FIRST_PASS: Duration = Duration::from_secs(60);

/// The running loop; [`Housekeeping::stop`] ends it.
pub struct Housekeeping {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Housekeeping {
    /// Stops the loop; a pass under way stops after the statement running.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// One pass, its counts added to the metric; a failure is logged and the
/// next pass tries again.
pub async fn pass(pruner: &Pruner) {
    match pruner.prune().await {
        Ok(pruned) => {
            for (kind, n) in pruned.kinds() {
                metrics::counter!("mooring_pruned_total", "kind" => kind).increment(n);
            }
            if pruned.kinds().iter().any(|(_, n)| *n > 0) {
                tracing::info!(
                    events = pruned.events,
                    quotes = pruned.quotes,
                    data_keys = pruned.data_keys,
                    "retention removed what had expired"
                );
            }
        }
        Err(e) => tracing::warn!(error = %e, "retention pass failed; the next one tries again"),
    }
}

/// Starts the loop on the current tokio runtime.
pub fn start(pruner: Pruner, interval: Duration) -> Housekeeping {
    metrics::describe_counter!(
        "mooring_pruned_total",
        "Rows removed by retention, by kind (events, quotes, data_keys)"
    );
    let (stop, mut stopped) = watch::channel(false);
    let task = tokio::spawn(async move {
        let mut wait = FIRST_PASS.min(interval);
        loop {
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = stopped.changed() => return,
            }
            if *stopped.borrow() {
                return;
            }
            // A stop ends the pass between statements: each batch is a
            // transaction of its own, committed whole or not at all.
            tokio::select! {
                () = pass(&pruner) => {}
                _ = stopped.changed() => return,
            }
            wait = interval;
        }
    });
    Housekeeping { stop, task }
}
