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
}

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
        }
    }

    /// Runs every check (each bounded by its adapter's own timeout).
    pub async fn readiness(&self) -> Readiness {
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

    pub async fn gauges(&self) -> Result<Gauges, OpsError> {
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
