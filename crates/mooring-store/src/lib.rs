//! Mooring's persistence adapter: diesel over SQLite (the embedded default,
//! one file under a data directory) or PostgreSQL (production, several
//! replicas), with one set of queries for both through diesel's
//! `MultiConnection` and one migration tree per backend.
//!
//! Diesel is synchronous: queries run on tokio's blocking pool, bounded by a
//! semaphore the size of the connection pool, so the async runtime never
//! waits on the database; only reads on SQLite (a customer's, and the
//! read-only raw SQL of `Store::with_read_connection`) run on the caller's
//! thread when a connection is free at once (`Store::run_read`: a read in
//! WAL mode waits for no writer). This crate implements the store ports (the
//! KYC store, the quote store, the deposit addresses, the payout ledger and
//! its event inbox, the audit trail, retention) and the anchor's own custodian; it must not know HTTP or any other adapter.
//! Customer data is sealed at rest under each customer's data key (`pii`):
//! a store reads and writes it only once [`Store::unlock`]ed with the
//! key-encryption key.

mod audit;
mod conn;
mod deposit;
mod error;
mod health;
mod kyc;
mod migrate;
mod payout;
mod pii;
mod quotes;
mod retention;
pub mod schema;
mod staff;
mod url;

use std::sync::Arc;
use std::time::Duration;

use diesel::r2d2::Pool;
use tokio::sync::Semaphore;

pub use conn::{AnyConnection, Backend};
pub use deposit::SelfCustodian;
pub use health::{MigrationsCurrent, StoreReachable};
pub use pii::{Rotation, Unlocked};
pub use url::DatabaseUrl;

use conn::Manager;
use pii::Pii;

/// How to reach the database.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    pub url: DatabaseUrl,
    /// Most connections held at once (and most queries running at once).
    pub pool_size: u32,
    /// How long a new connection may take, and how long a query waits for a
    /// free connection.
    pub connect_timeout: Duration,
}

/// Errors of opening, migrating or querying the store outside a port call.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0}")]
    Config(String),
    #[error("cannot connect to the {backend} database at {url}: {message}")]
    Connect {
        backend: Backend,
        url: String,
        message: String,
    },
    #[error("database migration failed: {0}")]
    Migration(String),
    #[error("database query failed: {0}")]
    Query(#[from] diesel::result::Error),
    #[error("no database connection available: {0}")]
    Pool(#[from] diesel::r2d2::PoolError),
    #[error("database task failed: {0}")]
    Task(String),
    /// The key given cannot open the customer data already stored.
    #[error("{0}")]
    WrongKey(String),
    /// A data key could not be wrapped or unwrapped, or a value opened.
    #[error("customer data: {0}")]
    Keys(#[from] mooring_ports::KeyError),
    /// Customer data was read or written on a store never unlocked.
    #[error("customer data is locked: the store was opened without a PII key")]
    Locked,
}

/// A pool of connections to one database, SQLite or PostgreSQL.
#[derive(Clone)]
pub struct Store {
    pool: Pool<Manager>,
    permits: Arc<Semaphore>,
    /// SQLite's in-process write queue (see `conn::write_tx`).
    write_queue: Option<Arc<conn::WriteQueue>>,
    backend: Backend,
    /// Set by [`Store::unlock`]: the keys of the customer data.
    pii: Option<Arc<Pii>>,
    /// The payout engine's saves waiting for their batch.
    saves: Arc<payout::SaveQueue>,
}

impl Store {
    /// Opens the database (creating a SQLite file and its directory if
    /// needed) and checks that a connection can be made. Does not migrate.
    pub async fn connect(config: StoreConfig) -> Result<Self, StoreError> {
        tokio::task::spawn_blocking(move || Self::connect_blocking(config))
            .await
            .map_err(|e| StoreError::Task(e.to_string()))?
    }

    fn connect_blocking(config: StoreConfig) -> Result<Self, StoreError> {
        let manager = Manager::new(config.url.clone(), config.connect_timeout)?;
        let backend = manager.backend();
        // One connection first: its error is precise where the pool's is a timeout.
        let first = manager.connect_now().map_err(|e| StoreError::Connect {
            backend,
            url: config.url.redacted(),
            message: e.to_string(),
        })?;
        let write_queue = match &config.url {
            DatabaseUrl::Sqlite(path) => Some(conn::write_queue(path, config.connect_timeout)),
            DatabaseUrl::Postgres(_) => None,
        };
        // On SQLite the first connection becomes the writer (if the file's
        // queue has none yet); it was opened as the writer would be.
        match &write_queue {
            Some(queue) => queue.adopt(first),
            None => drop(first),
        }
        let pool_size = config.pool_size.max(1);
        let pool = Pool::builder()
            .max_size(pool_size)
            // No idle minimum: r2d2 would refill it from its own threads in
            // the background, and a process exiting (the CLI) while one of
            // them is inside libpq's connect can crash at exit.
            .min_idle(Some(0))
            .connection_timeout(config.connect_timeout)
            .build(manager)
            .map_err(|e| StoreError::Connect {
                backend,
                url: config.url.redacted(),
                message: e.to_string(),
            })?;
        Ok(Self {
            pool,
            permits: Arc::new(Semaphore::new(pool_size as usize)),
            write_queue,
            backend,
            pii: None,
            saves: Arc::default(),
        })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Runs `f` with a pooled connection on the blocking pool. The caller's
    /// span follows the work; a panic in `f` resumes in the caller.
    pub(crate) async fn run<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut AnyConnection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| StoreError::Task(e.to_string()))?;
        let pool = self.pool.clone();
        let queue = self.write_queue.clone();
        let span = tracing::Span::current();
        let task = tokio::task::spawn_blocking(move || {
            let _entered = span.enter();
            let _permit = permit;
            let _queue = conn::QueueScope::enter(queue);
            let mut pooled = pool.get().map_err(StoreError::from)?;
            f(&mut pooled.conn)
        });
        match task.await {
            Ok(result) => result,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => Err(StoreError::Task(e.to_string()).into()),
        }
    }

    /// [`Store::run`] for a call that only reads: on SQLite, when a permit
    /// and an idle pooled connection are free at once, `f` runs here, on the
    /// caller's thread, without the two thread switches of the hand-off to
    /// the blocking pool (a fifth of the server's work in `GET /customer`;
    /// docs/benchmarks-notes.md). A SQLite read in WAL mode waits for no
    /// writer, so it holds the thread for its own work only: tens of
    /// microseconds for a customer. Otherwise it is [`Store::run`]: always on
    /// PostgreSQL (whose every query is a round trip to wait for), and when
    /// the key-encryption key is not local (a key service, which a data key
    /// not remembered would call).
    pub(crate) async fn run_read<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut AnyConnection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let local_keys = self.pii.as_ref().is_none_or(|pii| pii.kek_is_local());
        if self.backend == Backend::Sqlite
            && local_keys
            && let Ok(permit) = self.permits.clone().try_acquire_owned()
        {
            if let Some(mut pooled) = self.pool.try_get() {
                let result = {
                    let _queue = conn::QueueScope::enter(self.write_queue.clone());
                    f(&mut pooled.conn)
                };
                // The connection back in the pool before the permit, as in
                // `run`: the next holder of the permit finds it idle.
                drop(pooled);
                drop(permit);
                return result;
            }
            drop(permit);
        }
        self.run(f).await
    }

    /// [`Store::run`] for a call that writes outside [`conn::write_tx`] (each
    /// statement committed on its own): on SQLite it waits its turn in the
    /// process's write queue ([`conn::queued`]), never in the busy handler.
    pub(crate) async fn run_write<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut AnyConnection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        self.run(move |conn| conn::queued(conn, f)).await
    }

    /// Runs `f` on a pooled connection, through the same semaphore as every
    /// port call: for tools (benchmarks, seeding) that need raw SQL. Never
    /// build its SQL from anything a caller sent.
    pub async fn with_connection<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        F: FnOnce(&mut AnyConnection) -> Result<T, diesel::result::Error> + Send + 'static,
        T: Send + 'static,
    {
        self.run(move |conn| f(conn).map_err(StoreError::from))
            .await
    }

    /// [`Store::with_connection`] for raw SQL that only reads, run as the
    /// store's own reads are ([`Store::run_read`]): the benchmarks' raw
    /// select loop. It must not write: on SQLite it may run on the caller's
    /// thread, where a write would wait for the write queue.
    pub async fn with_read_connection<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        F: FnOnce(&mut AnyConnection) -> Result<T, diesel::result::Error> + Send + 'static,
        T: Send + 'static,
    {
        self.run_read(move |conn| f(conn).map_err(StoreError::from))
            .await
    }

    /// Applies pending migrations; returns the versions applied.
    pub async fn migrate(&self) -> Result<Vec<String>, StoreError> {
        self.run_write(migrate::run_pending).await
    }

    /// Migrations not yet applied.
    pub async fn pending_migrations(&self) -> Result<Vec<String>, StoreError> {
        self.run(migrate::pending).await
    }
}
