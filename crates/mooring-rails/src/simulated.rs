//! The simulated payout rail: pays instantly or after a delay, fails at a
//! configured rate, and remembers each idempotency key (local stacks, tests
//! and benchmarks).

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use mooring_ports::{PayoutOrder, PayoutRail, RailError, RailReceipt, RailStatus};
use rust_decimal::Decimal;

/// A payout the simulated rail made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimulatedPayout {
    pub id: String,
    pub idempotency_key: String,
    pub transaction_id: String,
    pub amount: Decimal,
    pub asset: String,
    /// How many times the key was submitted (1 + the retries).
    pub submissions: u32,
    pub failed: bool,
    created: Instant,
}

/// A rail that pays nobody: payouts complete after `delay`, and a share
/// `failure_rate` of them (chosen by a hash of the key, so a payout's
/// fate is the same on every retry) fail.
pub struct SimulatedRail {
    delay: Duration,
    failure_rate: f64,
    payouts: Mutex<HashMap<String, SimulatedPayout>>,
}

impl SimulatedRail {
    /// `failure_rate` is clamped to 0..=1.
    pub fn new(delay: Duration, failure_rate: f64) -> Self {
        Self {
            delay,
            failure_rate: if failure_rate.is_finite() {
                failure_rate.clamp(0.0, 1.0)
            } else {
                0.0
            },
            payouts: Mutex::default(),
        }
    }

    /// Every payout made, in no particular order.
    pub fn payouts(&self) -> Vec<SimulatedPayout> {
        self.lock().values().cloned().collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, SimulatedPayout>> {
        self.payouts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn fails(&self, key: &str) -> bool {
        let mut h = DefaultHasher::new();
        key.hash(&mut h);
        // The hash as a fraction of the range.
        (h.finish() as f64 / u64::MAX as f64) < self.failure_rate
    }

    fn receipt(&self, p: &SimulatedPayout) -> RailReceipt {
        let status = if p.failed {
            RailStatus::Failed("the simulated rail failed this payout".into())
        } else if p.created.elapsed() >= self.delay {
            RailStatus::Completed
        } else {
            RailStatus::Pending
        };
        RailReceipt {
            id: p.id.clone(),
            status,
        }
    }
}

#[async_trait]
impl PayoutRail for SimulatedRail {
    async fn submit(&self, order: &PayoutOrder) -> Result<RailReceipt, RailError> {
        let fails = self.fails(&order.idempotency_key);
        let mut payouts = self.lock();
        let next = payouts.len() + 1;
        let payout = payouts
            .entry(order.idempotency_key.clone())
            .and_modify(|p| p.submissions += 1)
            .or_insert_with(|| SimulatedPayout {
                id: format!("SIM-{next:08}"),
                idempotency_key: order.idempotency_key.clone(),
                transaction_id: order.transaction_id.clone(),
                amount: order.amount,
                asset: order.asset.clone(),
                submissions: 1,
                failed: fails,
                created: Instant::now(),
            });
        Ok(self.receipt(payout))
    }

    async fn status(&self, id: &str) -> Result<RailReceipt, RailError> {
        let payouts = self.lock();
        payouts
            .values()
            .find(|p| p.id == id)
            .map(|p| self.receipt(p))
            // A payout it made may be unknown to this process (a restart):
            // never a refusal, which would mean no payout exists.
            .ok_or_else(|| RailError::Unknown(format!("no payout {id} in this process")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(key: &str) -> PayoutOrder {
        PayoutOrder {
            idempotency_key: key.into(),
            transaction_id: key.into(),
            amount: Decimal::from(550),
            asset: "iso4217:BRL".into(),
            delivery_method: None,
            receiver_id: "r".into(),
            receiver_fields: vec![],
        }
    }

    #[tokio::test]
    async fn one_payout_per_key_and_it_completes_after_the_delay() {
        let rail = SimulatedRail::new(Duration::from_millis(50), 0.0);
        let first = rail.submit(&order("k1")).await.expect("submit");
        assert_eq!(first.status, RailStatus::Pending);
        let again = rail.submit(&order("k1")).await.expect("again");
        assert_eq!(again.id, first.id);
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert_eq!(
            rail.status(&first.id).await.expect("status").status,
            RailStatus::Completed
        );
        let payouts = rail.payouts();
        assert_eq!(payouts.len(), 1);
        assert_eq!(payouts[0].submissions, 2);
        // Unknown to this process (made before a restart, say): never a
        // refusal.
        assert!(matches!(
            rail.status("nope").await,
            Err(RailError::Unknown(_))
        ));
    }

    #[tokio::test]
    async fn a_failure_rate_of_one_fails_every_payout_and_zero_none() {
        let failing = SimulatedRail::new(Duration::ZERO, 1.0);
        let ok = SimulatedRail::new(Duration::ZERO, 0.0);
        for k in ["a", "b", "c"] {
            assert!(matches!(
                failing.submit(&order(k)).await.expect("submit").status,
                RailStatus::Failed(_)
            ));
            assert_eq!(
                ok.submit(&order(k)).await.expect("submit").status,
                RailStatus::Completed
            );
        }
        let half = SimulatedRail::new(Duration::ZERO, 0.5);
        let mut failed = 0;
        for i in 0..200 {
            if matches!(
                half.submit(&order(&format!("k{i}")))
                    .await
                    .expect("submit")
                    .status,
                RailStatus::Failed(_)
            ) {
                failed += 1;
            }
        }
        assert!((60..=140).contains(&failed), "{failed} of 200 failed");
    }
}
