//! What operators and their tools ask of a running replica: is it ready,
//! and the gauges its metrics report (payouts by state, the event inbox,
//! quote reservations, how long ago the AP was last polled).

use std::sync::Arc;

use chrono::Duration;
use mooring_domain::AssetId;
use mooring_domain::payout::PayoutState;
use mooring_ports::{Clock, LedgerError, PayoutLedger, ReadinessCheck};
use rust_decimal::Decimal;

use crate::{EventInbox, PayoutEngine, QuoteError, QuoteService};

/// The outcome of every readiness check, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Readiness {
    pub checks: Vec<(&'static str, Result<(), String>)>,
}

impl Readiness {
    pub fn is_ready(&self) -> bool {
        self.checks.iter().all(|(_, r)| r.is_ok())
    }
}

/// A snapshot of the gauges.
#[derive(Debug, Clone, PartialEq)]
pub struct Gauges {
    /// Ledger entries in each state (every state, zeros included).
    pub payouts: Vec<(PayoutState, u64)>,
    /// Events received and not yet applied.
    pub inbox_depth: u64,
    /// Per asset bought by a configured pair: the buy amount that unexpired,
    /// unused firm quotes hold, and the configured limit if any.
    pub reservations: Vec<(AssetId, Decimal, Option<Decimal>)>,
    /// Time since this replica's last successful poll of the AP; `None`
    /// before the first one or with the engine off.
    pub poll_lag: Option<Duration>,
}

/// Errors reading the gauges.
#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error(transparent)]
    Quotes(#[from] QuoteError),
}

/// Readiness and gauges.
#[derive(Clone)]
pub struct Operations {
    checks: Vec<Arc<dyn ReadinessCheck>>,
    ledger: Arc<dyn PayoutLedger>,
    inbox: EventInbox,
    quotes: QuoteService,
    engine: Option<PayoutEngine>,
    clock: Arc<dyn Clock>,
    /// The last readiness and gauges, with when they were read: probes and
    /// scrapers, however many, cost one read per [`READINESS_TTL_MS`] and
    /// [`GAUGES_TTL_MS`] (one at a time: the lock makes callers share it).
    readiness_cache: Cached<Readiness>,
    gauges_cache: Cached<Gauges>,
}

/// A value read at a time, shared by the clones of [`Operations`].
type Cached<T> = Arc<tokio::sync::Mutex<Option<(chrono::DateTime<chrono::Utc>, T)>>>;

/// How long a readiness answer and the gauges are reused (by the clock).
pub const READINESS_TTL_MS: i64 = 2000;
pub const GAUGES_TTL_MS: i64 = 5000;

impl Operations {
    pub fn new(
        checks: Vec<Arc<dyn ReadinessCheck>>,
        ledger: Arc<dyn PayoutLedger>,
        inbox: EventInbox,
        quotes: QuoteService,
        engine: Option<PayoutEngine>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            checks,
            ledger,
            inbox,
            quotes,
            engine,
            clock,
            readiness_cache: Arc::default(),
            gauges_cache: Arc::default(),
        }
    }

    /// Every check's result, read at most once per [`READINESS_TTL_MS`].
    pub async fn readiness(&self) -> Readiness {
        let mut cache = self.readiness_cache.lock().await;
        let now = self.clock.now();
        if let Some((at, r)) = cache.as_ref()
            && (now - *at) < Duration::milliseconds(READINESS_TTL_MS)
            && now >= *at
        {
            return r.clone();
        }
        let fresh = self.check_now().await;
        *cache = Some((now, fresh.clone()));
        fresh
    }

    /// The gauges, read at most once per [`GAUGES_TTL_MS`].
    pub async fn gauges(&self) -> Result<Gauges, OpsError> {
        let mut cache = self.gauges_cache.lock().await;
        let now = self.clock.now();
        if let Some((at, g)) = cache.as_ref()
            && (now - *at) < Duration::milliseconds(GAUGES_TTL_MS)
            && now >= *at
        {
            return Ok(g.clone());
        }
        let fresh = self.gauges_now().await?;
        *cache = Some((now, fresh.clone()));
        Ok(fresh)
    }

    /// Runs every check (each bounded by its adapter's own timeout).
    async fn check_now(&self) -> Readiness {
        let mut checks = Vec::with_capacity(self.checks.len());
        for check in &self.checks {
            let result = check.check().await;
            if let Err(reason) = &result {
                tracing::warn!(check = check.name(), reason = %reason, "not ready");
            }
            checks.push((check.name(), result));
        }
        Readiness { checks }
    }

    async fn gauges_now(&self) -> Result<Gauges, OpsError> {
        let counted = self.ledger.counts().await?;
        let payouts = PayoutState::ALL
            .into_iter()
            .map(|state| {
                let n = counted
                    .iter()
                    .find(|(s, _)| *s == state)
                    .map_or(0, |(_, n)| *n);
                (state, n)
            })
            .collect();
        Ok(Gauges {
            payouts,
            inbox_depth: self.inbox.depth().await?,
            reservations: self.quotes.reserved_by_asset().await?,
            poll_lag: self
                .engine
                .as_ref()
                .and_then(PayoutEngine::last_poll)
                .map(|at| self.clock.now() - at),
        })
    }
}
