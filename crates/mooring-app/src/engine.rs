//! Runs the payment engine: the poll, reconciliation, event and payout
//! loops on tokio, for as long as the server runs. The engine's rules are
//! in `mooring_usecases::payout`; this module only schedules its calls.

use std::sync::Arc;
use std::time::Duration;

use mooring_ports::LedgerError;
use mooring_usecases::{EngineError, PayoutEngine};
use tokio::sync::{Notify, watch};
use tokio::task::{JoinHandle, JoinSet};

/// How often the payout loop looks for due work when nothing wakes it.
const WORK_TICK: Duration = Duration::from_millis(250);
/// How often the event inbox is applied when nothing wakes it.
const EVENT_TICK: Duration = Duration::from_millis(250);
/// The longest wait between retries of a failing poll.
const MAX_POLL_BACKOFF: Duration = Duration::from_secs(60);

/// The schedule of the engine's loops.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    pub poll_interval: Duration,
    pub reconcile_interval: Duration,
    pub concurrency: u32,
}

/// The running loops; [`EngineHandle::stop`] ends them.
pub struct EngineHandle {
    engine: PayoutEngine,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    wake: Arc<Notify>,
}

impl EngineHandle {
    /// Wakes the event and payout loops (after `POST /event`).
    pub fn wake(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    /// Stops taking new work and lets the payout steps under way finish (up
    /// to `grace`). Each step that ends gives its claim back; the claim of a
    /// step still running at the end (a call may be in flight) is left to
    /// lapse, so no other replica calls the rail while it might.
    pub async fn stop(self, grace: Duration) {
        let _ = self.stop.send(true);
        let deadline = tokio::time::Instant::now() + grace;
        for task in self.tasks {
            if tokio::time::timeout_at(deadline, task).await.is_err() {
                tracing::warn!(
                    "an engine loop did not stop in time; the claims of its running steps lapse"
                );
            }
        }
        tracing::info!(owner = %self.engine.config().owner, "payment engine stopped");
    }
}

/// Starts the loops on the current tokio runtime.
pub fn start(engine: PayoutEngine, schedule: Schedule) -> EngineHandle {
    let (stop, stopped) = watch::channel(false);
    let wake = Arc::new(Notify::new());
    let tasks = vec![
        tokio::spawn(poll_loop(
            engine.clone(),
            schedule,
            stopped.clone(),
            wake.clone(),
        )),
        tokio::spawn(reconcile_loop(
            engine.clone(),
            schedule,
            stopped.clone(),
            wake.clone(),
        )),
        tokio::spawn(event_loop(engine.clone(), stopped.clone(), wake.clone())),
        tokio::spawn(work_loop(engine.clone(), schedule, stopped, wake.clone())),
    ];
    tracing::info!(
        owner = %engine.config().owner,
        poll_interval_ms = schedule.poll_interval.as_millis() as u64,
        reconcile_interval_ms = schedule.reconcile_interval.as_millis() as u64,
        concurrency = schedule.concurrency,
        "payment engine started"
    );
    EngineHandle {
        engine,
        stop,
        tasks,
        wake,
    }
}

/// Sleeps `d`, or less when stopped; true when stopped.
async fn pause(stopped: &mut watch::Receiver<bool>, d: Duration) -> bool {
    if *stopped.borrow() {
        return true;
    }
    tokio::select! {
        _ = tokio::time::sleep(d) => *stopped.borrow(),
        _ = stopped.changed() => true,
    }
}

async fn poll_loop(
    engine: PayoutEngine,
    schedule: Schedule,
    mut stopped: watch::Receiver<bool>,
    wake: Arc<Notify>,
) {
    let mut wait = schedule.poll_interval;
    loop {
        match engine.poll().await {
            Ok(new) => {
                if new > 0 {
                    tracing::debug!(new, "poll found transactions");
                    wake.notify_waiters();
                }
                wait = schedule.poll_interval;
            }
            Err(e) => {
                wait = (wait * 2).min(MAX_POLL_BACKOFF).max(schedule.poll_interval);
                tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "poll of the platform failed; backing off");
            }
        }
        if pause(&mut stopped, wait).await {
            return;
        }
    }
}

async fn reconcile_loop(
    engine: PayoutEngine,
    schedule: Schedule,
    mut stopped: watch::Receiver<bool>,
    wake: Arc<Notify>,
) {
    loop {
        match engine.reconcile().await {
            Ok(seen) => {
                tracing::debug!(seen, "reconciliation pass done");
                wake.notify_waiters();
            }
            Err(e) => {
                tracing::warn!(error = %e, retry_in_ms = schedule.reconcile_interval.as_millis() as u64, "reconciliation pass failed")
            }
        }
        if pause(&mut stopped, schedule.reconcile_interval).await {
            return;
        }
    }
}

async fn event_loop(engine: PayoutEngine, mut stopped: watch::Receiver<bool>, wake: Arc<Notify>) {
    loop {
        match engine.apply_events().await {
            Ok(0) => {}
            Ok(n) => {
                tracing::debug!(applied = n, "events applied");
                wake.notify_waiters();
            }
            Err(e) => tracing::warn!(error = %e, "applying events failed; retrying"),
        }
        tokio::select! {
            _ = wake.notified() => {}
            stop = pause(&mut stopped, EVENT_TICK) => if stop { return },
        }
    }
}

async fn work_loop(
    engine: PayoutEngine,
    schedule: Schedule,
    mut stopped: watch::Receiver<bool>,
    wake: Arc<Notify>,
) {
    let mut running: JoinSet<()> = JoinSet::new();
    // A claim is a write transaction: after a payout ends, claim only once
    // a batch of places is free; a wake-up or the tick claims what is free.
    let batch = (schedule.concurrency / 4).max(1);
    let mut after_join = false;
    loop {
        while running.try_join_next().is_some() {}
        let free = schedule.concurrency.saturating_sub(running.len() as u32);
        if free >= if after_join { batch } else { 1 } {
            match engine.claim(free).await {
                Ok(claimed) => {
                    for work in claimed {
                        let engine = engine.clone();
                        running.spawn(async move {
                            let id = work.transaction_id().clone();
                            match engine.run(work).await {
                                Ok(_) => {}
                                Err(EngineError::Ledger(LedgerError::LostClaim)) => {
                                    tracing::info!(transaction.id = %id, "payout claimed elsewhere; left to its owner");
                                }
                                Err(e) => tracing::warn!(transaction.id = %id, error = %e, "payout step could not be saved; it resumes when its claim lapses"),
                            }
                        });
                    }
                }
                Err(e) => tracing::warn!(error = %e, "claiming payouts failed; retrying"),
            }
        }
        after_join = false;
        tokio::select! {
            _ = wake.notified() => {}
            Some(_) = running.join_next(), if !running.is_empty() => after_join = true,
            stop = pause(&mut stopped, WORK_TICK) => if stop { break },
        }
    }
    // Finish the steps under way: each commits before it returns.
    while running.join_next().await.is_some() {}
}
