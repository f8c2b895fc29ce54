//! The store's readiness checks: the database answers, and its schema is
//! the one this build expects.

use async_trait::async_trait;
use diesel::RunQueryDsl;
use mooring_ports::ReadinessCheck;

use crate::{Store, StoreError};

/// The database answers a query within the pool's connect timeout.
pub struct StoreReachable(pub Store);

/// Every migration this build carries is applied.
pub struct MigrationsCurrent(pub Store);

#[async_trait]
impl ReadinessCheck for StoreReachable {
    fn name(&self) -> &'static str {
        "store"
    }

    async fn check(&self) -> Result<(), String> {
        self.0
            .run(|conn| {
                diesel::sql_query("SELECT 1")
                    .execute(conn)
                    .map_err(StoreError::from)
            })
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

#[async_trait]
impl ReadinessCheck for MigrationsCurrent {
    fn name(&self) -> &'static str {
        "migrations"
    }

    async fn check(&self) -> Result<(), String> {
        let pending = self
            .0
            .pending_migrations()
            .await
            .map_err(|e| e.to_string())?;
        if pending.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "{} migration(s) not applied: {}",
                pending.len(),
                pending.join(", ")
            ))
        }
    }
}
