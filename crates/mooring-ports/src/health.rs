//! The readiness port: a dependency (database, migrations, the AP) that
//! decides whether a replica takes traffic (`GET /ready`).

use async_trait::async_trait;

/// One dependency whose state decides whether this replica is ready to
/// take traffic (`GET /ready`): the database, its migrations, the AP.
#[async_trait]
pub trait ReadinessCheck: Send + Sync + 'static {
    /// A short, stable name for the check (`store`, `migrations`,
    /// `platform`).
    fn name(&self) -> &'static str;

    /// `Ok`, or why the dependency is not ready, for operators (no secret,
    /// no connection string).
    async fn check(&self) -> Result<(), String>;
}
