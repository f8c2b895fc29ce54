//! Connections: one type over both backends (diesel's `MultiConnection`),
//! how each is set up (SQLite's pragmas and busy wait), the r2d2 manager
//! (which checks a connection only when it has sat idle), and SQLite's
//! in-process write queue.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use diesel::connection::{AnsiTransactionManager, SimpleConnection, TransactionManager};
use diesel::prelude::*;
use diesel::r2d2::ManageConnection;
use parking_lot::FairMutex;

use crate::{DatabaseUrl, StoreError};

/// One connection, to either backend. Queries written against this type
/// compile once and run on both.
#[derive(diesel::MultiConnection)]
pub enum AnyConnection {
    Postgresql(diesel::PgConnection),
    Sqlite(diesel::SqliteConnection),
}

/// Which database engine a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Sqlite => "SQLite",
            Self::Postgres => "PostgreSQL",
        })
    }
}

/// Opens connections of the backend the URL names (never guessing, as
/// `MultiConnection::establish` would) and prepares each one.
pub(crate) struct Manager {
    url: DatabaseUrl,
    /// SQLite's `busy_timeout`, and PostgreSQL's `connect_timeout`.
    busy_timeout: Duration,
}

impl Manager {
    pub(crate) fn new(url: DatabaseUrl, busy_timeout: Duration) -> Result<Self, StoreError> {
        if let DatabaseUrl::Sqlite(path) = &url
            && let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        {
            std::fs::create_dir_all(dir).map_err(|e| {
                StoreError::Config(format!(
                    "cannot create the data directory {}: {e}",
                    dir.display()
                ))
            })?;
        }
        Ok(Self { url, busy_timeout })
    }

    pub(crate) fn backend(&self) -> Backend {
        match self.url {
            DatabaseUrl::Sqlite(_) => Backend::Sqlite,
            DatabaseUrl::Postgres(_) => Backend::Postgres,
        }
    }

    pub(crate) fn connect_now(&self) -> Result<AnyConnection, diesel::ConnectionError> {
        match &self.url {
            DatabaseUrl::Postgres(url) => {
                let url = with_connect_timeout(url, self.busy_timeout);
                Ok(AnyConnection::Postgresql(diesel::PgConnection::establish(
                    &url,
                )?))
            }
            DatabaseUrl::Sqlite(path) => {
                let path = path.to_str().ok_or_else(|| {
                    diesel::ConnectionError::InvalidConnectionUrl(
                        "the SQLite path is not valid UTF-8".into(),
                    )
                })?;
                let mut conn = diesel::SqliteConnection::establish(path)?;
                // WAL lets readers run beside the writer; busy_timeout makes a
                // writer wait for the lock instead of failing; secure_delete
                // overwrites deleted PII instead of leaving it in free pages.
                // No checkpoint on commit: the write queue's thread runs them
                // (see `checkpoint_in_background`).
                conn.batch_execute(&format!(
                    "PRAGMA busy_timeout = {}; PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
                     PRAGMA foreign_keys = ON; PRAGMA secure_delete = ON; PRAGMA wal_autocheckpoint = 0;",
                    self.busy_timeout.as_millis()
                ))
                .map_err(diesel::ConnectionError::CouldntSetupConfiguration)?;
                crate::payout::register_db_clock(&mut conn)
                    .map_err(diesel::ConnectionError::CouldntSetupConfiguration)?;
                Ok(AnyConnection::Sqlite(conn))
            }
        }
    }
}

/// Adds libpq's `connect_timeout` (whole seconds, at least 2) unless the URL
/// sets one.
fn with_connect_timeout(url: &str, timeout: Duration) -> String {
    if url.contains("connect_timeout=") {
        return url.to_owned();
    }
    let seconds = timeout.as_secs().max(2);
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}connect_timeout={seconds}")
}

/// A pooled connection and when it last went back to the pool healthy.
pub(crate) struct Pooled {
    pub(crate) conn: AnyConnection,
    returned: Instant,
}

/// How long a PostgreSQL connection may sit in the pool and still be handed
/// out without a `SELECT 1` first. A connection the server closed while it
/// was in use is never handed out again: libpq reports the transaction
/// status as unknown after the failed query, diesel marks its transaction
/// manager broken, and `has_broken` drops it on its way back. What the
/// check still catches is a connection the server (or a proxy's idle
/// timeout) closed while nobody used it, which takes longer than this.
const CHECK_AFTER_IDLE: Duration = Duration::from_secs(1);

impl ManageConnection for Manager {
    type Connection = Pooled;
    type Error = diesel::r2d2::Error;

    fn connect(&self) -> Result<Pooled, Self::Error> {
        self.connect_now()
            .map(|conn| Pooled {
                conn,
                returned: Instant::now(),
            })
            .map_err(diesel::r2d2::Error::ConnectionError)
    }

    fn is_valid(&self, pooled: &mut Pooled) -> Result<(), Self::Error> {
        match &mut pooled.conn {
            // A file cannot hang up: nothing to check.
            AnyConnection::Sqlite(_) => Ok(()),
            AnyConnection::Postgresql(_) if pooled.returned.elapsed() < CHECK_AFTER_IDLE => Ok(()),
            AnyConnection::Postgresql(pg) => pg
                .batch_execute("SELECT 1")
                .map_err(diesel::r2d2::Error::QueryError),
        }
    }

    fn has_broken(&self, pooled: &mut Pooled) -> bool {
        // Called as the connection goes back to the pool: a connection left
        // inside a transaction (a panic mid-work), or whose server went away
        // (see CHECK_AFTER_IDLE), is dropped.
        let broken =
            <AnyConnection as Connection>::TransactionManager::is_broken_transaction_manager(
                &mut pooled.conn,
            );
        pooled.returned = Instant::now();
        broken
    }
}

/// The in-process write queue of one SQLite database file: its one writer
/// connection, behind a mutex that the writers of this process take in
/// turn. One connection writes, so its page cache stays warm: a SQLite
/// connection drops its whole cache whenever another connection has
/// written since its last transaction, and with every connection of the
/// pool writing in turn each write read its pages afresh.
///
/// The writers take their turns in the order they came: a fair mutex hands
/// the writer to the longest waiter when it is let go. With std's mutex a
/// writer that had just let go, or one just arriving, could take it again
/// before a woken waiter ran, so some waited many turns: `PUT /customer` at
/// 16 connections had a p99 of three times its p50 (docs/benchmarks-notes.md).
pub(crate) struct WriteQueue {
    writer: FairMutex<Option<AnyConnection>>,
    /// How the writer connection is opened (again, after a failure).
    manager: Manager,
}

impl WriteQueue {
    /// Makes `conn` the writer if there is none yet: the connection a store
    /// opened to check the database, kept instead of closed. Closing the
    /// process's last connection to a file checkpoints and deletes its log,
    /// which the next connection creates again: about a fifth of a start.
    /// A writer busy writing has a connection already: nothing waits here.
    pub(crate) fn adopt(&self, conn: AnyConnection) {
        if let Some(mut writer) = self.writer.try_lock()
            && writer.is_none()
            && matches!(conn, AnyConnection::Sqlite(_))
        {
            *writer = Some(conn);
        }
    }

    /// Runs `f` on the writer connection, waiting for it first. A writer
    /// that cannot be opened leaves `f` on `fallback` (the caller's pooled
    /// connection), still in turn. A writer left broken (a failed rollback)
    /// or by a panic is closed, and opened again by the next write.
    fn write<T>(&self, fallback: &mut AnyConnection, f: impl FnOnce(&mut AnyConnection) -> T) -> T {
        let mut writer = self.writer.lock();
        if writer.is_none() {
            match self.manager.connect_now() {
                Ok(conn) => *writer = Some(conn),
                Err(e) => tracing::warn!(
                    error = %e,
                    "cannot open the SQLite writer connection; writing on a pooled one"
                ),
            }
        }
        let Some(conn) = writer.as_mut() else {
            return f(fallback);
        };
        // A panic in `f` may leave the writer inside its transaction, with
        // SQLite's write lock held: it is closed before the panic goes on,
        // not when the next write of this process finds it.
        let result = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(conn))) {
            Ok(result) => result,
            Err(panic) => {
                *writer = None;
                drop(writer);
                std::panic::resume_unwind(panic)
            }
        };
        if <AnyConnection as Connection>::TransactionManager::is_broken_transaction_manager(conn) {
            *writer = None;
        }
        result
    }
}

/// Every SQLite database this process writes to, with its write queue.
static WRITE_QUEUES: LazyLock<Mutex<HashMap<PathBuf, Weak<WriteQueue>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// The in-process write queue of the SQLite database at `path`, shared by
/// every store of this process on that file; its writer connection is
/// opened with `busy_timeout` (of the first store to ask) when first used.
pub(crate) fn write_queue(path: &Path, busy_timeout: Duration) -> Arc<WriteQueue> {
    let key = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned());
    let mut queues = WRITE_QUEUES.lock().unwrap_or_else(PoisonError::into_inner);
    queues.retain(|_, queue| queue.strong_count() > 0);
    if let Some(queue) = queues.get(&key).and_then(Weak::upgrade) {
        return queue;
    }
    let manager = || Manager {
        url: DatabaseUrl::Sqlite(path.to_owned()),
        busy_timeout,
    };
    let queue = Arc::new(WriteQueue {
        writer: FairMutex::new(None),
        manager: manager(),
    });
    queues.insert(key, Arc::downgrade(&queue));
    checkpoint_in_background(Arc::downgrade(&queue), manager());
    queue
}

/// How often the write queue's thread checkpoints the write-ahead log.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(200);

/// Moves the write-ahead log into the database file every
/// [`CHECKPOINT_EVERY`] (a `PASSIVE` checkpoint, on a connection of its
/// own), for as long as `queue` is in use. SQLite's own checkpoint runs in
/// the commit that passes 1,000 pages of log, with the write lock held
/// through its two `fsync`s: every writer stalled behind it, about a fifth
/// of the time under the engine's load. A passive checkpoint never blocks a
/// writer; the log is reused from its start once a checkpoint has caught up.
fn checkpoint_in_background(queue: Weak<WriteQueue>, manager: Manager) {
    let spawned = std::thread::Builder::new()
        .name("sqlite-checkpoint".into())
        .spawn(move || {
            let mut conn: Option<AnyConnection> = None;
            loop {
                std::thread::sleep(CHECKPOINT_EVERY);
                if queue.strong_count() == 0 {
                    return;
                }
                if conn.is_none() {
                    conn = manager.connect_now().ok();
                }
                if let Some(c) = conn.as_mut()
                    && let Err(e) = diesel::sql_query("PRAGMA wal_checkpoint(PASSIVE)").execute(c)
                {
                    tracing::warn!(error = %e, "a checkpoint of the SQLite log failed; retrying");
                    conn = None;
                }
            }
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "cannot start the SQLite checkpoint thread");
    }
}

thread_local! {
    /// The write queue of the store whose call runs on this thread, set by
    /// [`QueueScope`] for the call's length.
    static WRITE_QUEUE: RefCell<Option<Arc<WriteQueue>>> = const { RefCell::new(None) };
}

/// Makes `queue` the one [`write_tx`] waits on, on this thread, until dropped.
pub(crate) struct QueueScope(Option<Arc<WriteQueue>>);

impl QueueScope {
    pub(crate) fn enter(queue: Option<Arc<WriteQueue>>) -> Self {
        Self(WRITE_QUEUE.replace(queue))
    }
}

impl Drop for QueueScope {
    fn drop(&mut self) {
        WRITE_QUEUE.set(self.0.take());
    }
}

/// Runs `f` in a write transaction. On SQLite it is `BEGIN IMMEDIATE`, so the
/// write lock is taken up front and two writers queue instead of
/// deadlocking on a lock upgrade: the writers of this process queue on its
/// write queue (a fair mutex, handed to the longest waiter at once) and write on
/// its one writer connection ([`WriteQueue`]), and only a
/// writer of another process (the CLI) waits in SQLite's busy handler,
/// which sleeps in steps of up to 100 ms; on PostgreSQL a READ COMMITTED
/// transaction, whatever the server's `default_transaction_isolation` says
/// (locks taken inside, `FOR UPDATE` and advisory ones, must see what their
/// holders committed), begun in one round trip; rows are locked explicitly
/// (see [`lock_row`]).
pub(crate) fn write_tx<T, E>(
    conn: &mut AnyConnection,
    f: impl FnOnce(&mut AnyConnection) -> Result<T, E>,
) -> Result<T, E>
where
    E: From<diesel::result::Error>,
{
    queued(conn, |c| in_write_tx(c, f))
}

/// Runs `f`, a write outside [`write_tx`] (statements each committed on its
/// own), in this process's SQLite write queue, on its writer connection
/// ([`WriteQueue`]), so that it waits its turn there rather than in SQLite's
/// busy handler, which sleeps in steps of up to 100 ms and gives up after
/// `busy_timeout`. Every write of the store goes through this or
/// [`write_tx`]. PostgreSQL needs nothing: its writers wait on row locks,
/// woken as soon as they are free.
pub(crate) fn queued<T, E>(
    conn: &mut AnyConnection,
    f: impl FnOnce(&mut AnyConnection) -> Result<T, E>,
) -> Result<T, E> {
    // Taken out while held, so that a nested call runs on the writer it
    // already holds instead of waiting on itself.
    let queue = match conn {
        AnyConnection::Sqlite(_) => WRITE_QUEUE.take(),
        AnyConnection::Postgresql(_) => None,
    };
    let Some(queue) = queue else {
        return f(conn);
    };
    let result = queue.write(conn, f);
    WRITE_QUEUE.set(Some(queue));
    result
}

fn in_write_tx<T, E>(
    conn: &mut AnyConnection,
    f: impl FnOnce(&mut AnyConnection) -> Result<T, E>,
) -> Result<T, E>
where
    E: From<diesel::result::Error>,
{
    match conn {
        AnyConnection::Sqlite(sqlite) => {
            AnsiTransactionManager::begin_transaction_sql(sqlite, "BEGIN IMMEDIATE")?;
        }
        AnyConnection::Postgresql(pg) => {
            AnsiTransactionManager::begin_transaction_sql(
                pg,
                "BEGIN ISOLATION LEVEL READ COMMITTED",
            )?;
        }
    }
    match f(conn) {
        Ok(value) => {
            <AnyConnection as Connection>::TransactionManager::commit_transaction(conn)?;
            Ok(value)
        }
        Err(user_error) => {
            match <AnyConnection as Connection>::TransactionManager::rollback_transaction(conn) {
                Ok(()) | Err(diesel::result::Error::BrokenTransactionManager) => Err(user_error),
                Err(rollback_error) => Err(rollback_error.into()),
            }
        }
    }
}

/// Hand-written SQL that the connection's statement cache prepares once,
/// unlike diesel's `sql_query` (never cached) and diesel's `UPDATE`s and
/// inserts with optional values (never cached either), so that PostgreSQL
/// parses and plans it once per connection rather than on every call. Each
/// `?` in `sql` is a bind, written as the backend's own placeholder (`$n`
/// or `?`); the SQL must hold no other `?`. Load rows with
/// `QueryableByName`, or `execute` it.
#[derive(Debug, Clone)]
pub(crate) struct CachedSql<'a> {
    sql: &'a str,
    binds: Vec<Bind<'a>>,
}

/// One bind of a [`CachedSql`], with its SQL type.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Bind<'a> {
    Text(&'a str),
    OptText(Option<&'a str>),
    Int(i32),
    BigInt(i64),
    Time(chrono::NaiveDateTime),
    OptTime(Option<chrono::NaiveDateTime>),
    OptBytes(Option<&'a [u8]>),
}

impl<'a> CachedSql<'a> {
    /// Text binds only.
    pub(crate) fn new(sql: &'a str, binds: Vec<&'a str>) -> Self {
        Self::typed(sql, binds.into_iter().map(Bind::Text).collect())
    }

    pub(crate) fn typed(sql: &'a str, binds: Vec<Bind<'a>>) -> Self {
        Self { sql, binds }
    }
}

impl<DB> diesel::query_builder::QueryFragment<DB> for CachedSql<'_>
where
    DB: diesel::backend::Backend
        + diesel::sql_types::HasSqlType<diesel::sql_types::Text>
        + diesel::sql_types::HasSqlType<diesel::sql_types::Integer>
        + diesel::sql_types::HasSqlType<diesel::sql_types::BigInt>
        + diesel::sql_types::HasSqlType<diesel::sql_types::Timestamp>
        + diesel::sql_types::HasSqlType<diesel::sql_types::Binary>,
    str: diesel::serialize::ToSql<diesel::sql_types::Text, DB>,
    [u8]: diesel::serialize::ToSql<diesel::sql_types::Binary, DB>,
    i32: diesel::serialize::ToSql<diesel::sql_types::Integer, DB>,
    i64: diesel::serialize::ToSql<diesel::sql_types::BigInt, DB>,
    chrono::NaiveDateTime: diesel::serialize::ToSql<diesel::sql_types::Timestamp, DB>,
{
    fn walk_ast<'b>(
        &'b self,
        mut out: diesel::query_builder::AstPass<'_, 'b, DB>,
    ) -> QueryResult<()> {
        use diesel::sql_types::{BigInt, Binary, Integer, Nullable, Text, Timestamp};
        let mut parts = self.sql.split('?');
        if let Some(first) = parts.next() {
            out.push_sql(first);
        }
        let mut binds = self.binds.iter();
        for part in parts {
            let bind = binds.next().ok_or_else(|| {
                diesel::result::Error::QueryBuilderError("more placeholders than binds".into())
            })?;
            match bind {
                Bind::Text(v) => out.push_bind_param::<Text, str>(v)?,
                Bind::OptText(v) => out.push_bind_param::<Nullable<Text>, _>(v)?,
                Bind::Int(v) => out.push_bind_param::<Integer, i32>(v)?,
                Bind::BigInt(v) => out.push_bind_param::<BigInt, i64>(v)?,
                Bind::Time(v) => out.push_bind_param::<Timestamp, chrono::NaiveDateTime>(v)?,
                Bind::OptTime(v) => out.push_bind_param::<Nullable<Timestamp>, _>(v)?,
                Bind::OptBytes(v) => out.push_bind_param::<Nullable<Binary>, _>(v)?,
            }
            out.push_sql(part);
        }
        if binds.next().is_some() {
            return Err(diesel::result::Error::QueryBuilderError(
                "more binds than placeholders".into(),
            ));
        }
        Ok(())
    }
}

impl diesel::query_builder::QueryId for CachedSql<'_> {
    type QueryId = ();
    // No static id: the statement cache keys it by its SQL text.
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl diesel::query_builder::Query for CachedSql<'_> {
    type SqlType = diesel::sql_types::Untyped;
}

impl<Conn> RunQueryDsl<Conn> for CachedSql<'_> {}

/// Locks the row whose `key` column is `id` until the transaction ends
/// (`SELECT … FOR UPDATE` on PostgreSQL). SQLite needs nothing: its writer
/// holds the database lock.
pub(crate) fn lock_row(
    conn: &mut AnyConnection,
    table: &'static str,
    key: &'static str,
    id: &str,
) -> QueryResult<()> {
    if let AnyConnection::Postgresql(pg) = conn {
        // One statement text per table: prepared once per connection.
        let sql = format!("SELECT 1 FROM {table} WHERE {key} = ? FOR UPDATE");
        CachedSql::new(&sql, vec![id]).execute(pg)?;
    }
    Ok(())
}

/// Serialises writers on `key` until the transaction ends (a PostgreSQL
/// transaction-scoped advisory lock). SQLite needs nothing: its writer holds
/// the database lock.
pub(crate) fn lock_key(conn: &mut AnyConnection, key: &str) -> QueryResult<()> {
    if let AnyConnection::Postgresql(pg) = conn {
        CachedSql::new(
            "SELECT pg_advisory_xact_lock(hashtextextended(?, 0))",
            vec![key],
        )
        .execute(pg)?;
    }
    Ok(())
}

/// On SQLite, moves the write-ahead log into the database file and empties
/// it, so that deleted data (overwritten there by `secure_delete`) does not
/// linger in the log. A reader in the way is waited for briefly; past that
/// the next checkpoint finishes the work. Returns whether it completed.
pub(crate) fn checkpoint(conn: &mut AnyConnection) -> QueryResult<bool> {
    #[derive(QueryableByName)]
    struct Checkpoint {
        #[diesel(sql_type = diesel::sql_types::Integer)]
        busy: i32,
    }
    let AnyConnection::Sqlite(sqlite) = conn else {
        return Ok(true);
    };
    for _ in 0..10 {
        let result: Vec<Checkpoint> =
            diesel::sql_query("PRAGMA wal_checkpoint(TRUNCATE)").load(sqlite)?;
        if result.first().is_none_or(|r| r.busy == 0) {
            return Ok(true);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cached_sql_writes_each_backends_placeholders() {
        let q = CachedSql::new("SELECT 1 WHERE 'a' = ? OR 'b' = ?", vec!["x", "y"]);
        assert_eq!(
            diesel::debug_query::<diesel::pg::Pg, _>(&q).to_string(),
            r#"SELECT 1 WHERE 'a' = $1 OR 'b' = $2 -- binds: ["x", "y"]"#
        );
        assert_eq!(
            diesel::debug_query::<diesel::sqlite::Sqlite, _>(&q).to_string(),
            r#"SELECT 1 WHERE 'a' = ? OR 'b' = ? -- binds: ["x", "y"]"#
        );
    }

    #[test]
    fn cached_sql_refuses_binds_that_do_not_match_its_placeholders() {
        let mut conn = diesel::SqliteConnection::establish(":memory:").expect("sqlite");
        for q in [
            CachedSql::new("SELECT ?", vec![]),
            CachedSql::new("SELECT ?", vec!["a", "b"]),
        ] {
            assert!(matches!(
                q.execute(&mut conn),
                Err(diesel::result::Error::QueryBuilderError(_))
            ));
        }
        assert!(
            CachedSql::new("SELECT ?", vec!["a"])
                .execute(&mut conn)
                .is_ok()
        );
    }

    fn scratch_sqlite(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "mooring-conn-{name}-{}-{:?}",
            std::process::id(),
            Instant::now()
        ));
        std::fs::create_dir_all(&dir).expect("scratch dir");
        dir.join("db.sqlite")
    }

    /// A scratch SQLite file, a manager of connections to it (`busy_timeout`
    /// 50 ms) and its write queue.
    fn scratch_queue(name: &str) -> (PathBuf, Manager, Arc<WriteQueue>) {
        let path = scratch_sqlite(name);
        let manager = Manager::new(DatabaseUrl::Sqlite(path.clone()), Duration::from_millis(50))
            .expect("manager");
        let queue = write_queue(&path, Duration::from_millis(50));
        (path, manager, queue)
    }

    /// The numbers in table `t`, in order.
    fn numbers(c: &mut AnyConnection) -> Vec<i32> {
        #[derive(QueryableByName)]
        struct N {
            #[diesel(sql_type = diesel::sql_types::Integer)]
            n: i32,
        }
        let rows: Vec<N> = diesel::sql_query("SELECT n FROM t ORDER BY n")
            .load(c)
            .expect("rows");
        rows.into_iter().map(|r| r.n).collect()
    }

    fn insert(c: &mut AnyConnection, n: i32) -> QueryResult<usize> {
        diesel::sql_query(format!("INSERT INTO t VALUES ({n})")).execute(c)
    }

    /// The busy handler gives up after `busy_timeout`; a writer of the same
    /// process waits in the queue for as long as the one before it holds
    /// the lock, and then writes.
    #[test]
    fn writers_of_one_process_queue_instead_of_timing_out_on_the_lock() {
        let (path, manager, queue) = scratch_queue("queue");
        assert!(
            Arc::ptr_eq(&queue, &write_queue(&path, Duration::from_millis(50))),
            "one queue per database file"
        );
        let mut first = manager.connect_now().expect("connect");
        first
            .batch_execute("CREATE TABLE t (n INTEGER)")
            .expect("table");
        let (holding, held) = std::sync::mpsc::channel();
        let (release, released) = std::sync::mpsc::channel::<()>();
        let q = queue.clone();
        let holder = std::thread::spawn(move || {
            let _scope = QueueScope::enter(Some(q));
            write_tx(&mut first, |c| {
                holding.send(()).expect("signal");
                released.recv().expect("release");
                insert(c, 1)
            })
        });
        held.recv().expect("the first writer holds the lock");

        // Outside the queue (another process, in effect): SQLite's busy
        // handler gives up after 50 ms.
        let mut second = manager.connect_now().expect("connect");
        let busy = write_tx(&mut second, |c| insert(c, 2));
        assert!(
            matches!(&busy, Err(diesel::result::Error::DatabaseError(_, info)) if info.message().contains("locked")),
            "{busy:?}"
        );

        // In the queue: no timeout while the lock is held for longer.
        let q = queue.clone();
        let queued = std::thread::spawn(move || {
            let _scope = QueueScope::enter(Some(q));
            let written = write_tx(&mut second, |c| insert(c, 3));
            (written, second)
        });
        std::thread::sleep(Duration::from_millis(200));
        release.send(()).expect("release");
        assert_eq!(holder.join().expect("holder").expect("first write"), 1);
        let (written, mut second) = queued.join().expect("queued");
        assert_eq!(written.expect("queued write"), 1);

        assert_eq!(numbers(&mut second), [1, 3]);
        // The scope put the queue back after the write.
        let _scope = QueueScope::enter(Some(queue.clone()));
        write_tx(&mut second, |c| insert(c, 4)).expect("a second queued write");
        assert!(WRITE_QUEUE.with_borrow(|q| q.as_ref().is_some_and(|q| Arc::ptr_eq(q, &queue))));
    }

    /// The writes of the queue are made on its one connection, whichever
    /// pooled connection the caller holds: a temporary table (private to a
    /// connection) made by one write is there for the next.
    #[test]
    fn queued_writes_share_the_queues_one_writer_connection() {
        let (_, manager, queue) = scratch_queue("writer");
        let (mut a, mut b) = (
            manager.connect_now().expect("a"),
            manager.connect_now().expect("b"),
        );
        let _scope = QueueScope::enter(Some(queue));
        queued(&mut a, |c| {
            c.batch_execute("CREATE TEMP TABLE mine (n INTEGER)")
        })
        .expect("made on the writer");
        assert!(
            b.batch_execute("INSERT INTO mine VALUES (1)").is_err(),
            "not on b itself"
        );
        queued(&mut b, |c| c.batch_execute("INSERT INTO mine VALUES (1)"))
            .expect("b's queued write is on the writer too");
    }

    /// Writers take their turns in the order they came: one that lets the
    /// writer go and asks again at once goes after the writer already
    /// waiting, not ahead of it (std's mutex let it barge, nearly always).
    #[test]
    fn writers_take_turns_in_the_order_they_came() {
        let (_, manager, queue) = scratch_queue("fair");
        let order = Arc::new(Mutex::new(Vec::new()));
        for round in 0..20 {
            order.lock().expect("order").clear();
            let (holding, held) = std::sync::mpsc::channel();
            let (release, released) = std::sync::mpsc::channel::<()>();
            let (q, o) = (queue.clone(), order.clone());
            let mut a = manager.connect_now().expect("a");
            let first = std::thread::spawn(move || {
                q.write(&mut a, |_| {
                    o.lock().expect("order").push("a");
                    holding.send(()).expect("signal");
                    released.recv().expect("release");
                });
                // Straight back for another turn, as a busy writer does.
                q.write(&mut a, |_| o.lock().expect("order").push("a again"));
            });
            held.recv().expect("a holds the writer");
            let (q, o) = (queue.clone(), order.clone());
            let mut b = manager.connect_now().expect("b");
            let second = std::thread::spawn(move || {
                q.write(&mut b, |_| o.lock().expect("order").push("b"));
            });
            // b is parked on the writer before a lets go.
            std::thread::sleep(Duration::from_millis(20));
            release.send(()).expect("release");
            first.join().expect("a");
            second.join().expect("b");
            assert_eq!(
                *order.lock().expect("order"),
                ["a", "b", "a again"],
                "round {round}"
            );
        }
    }

    /// A writer a panic left inside its transaction is closed with the
    /// panic, so neither another process nor the next write finds the lock
    /// held or a transaction open.
    #[test]
    fn a_writer_left_by_a_panic_is_opened_again() {
        let (_, manager, queue) = scratch_queue("panic");
        let mut pooled = manager.connect_now().expect("connect");
        pooled
            .batch_execute("CREATE TABLE t (n INTEGER)")
            .expect("table");
        let mut other = manager.connect_now().expect("connect");
        let q = queue.clone();
        let panicked = std::thread::spawn(move || {
            let _scope = QueueScope::enter(Some(q));
            let _ = write_tx(&mut other, |c| -> QueryResult<usize> {
                insert(c, 1)?;
                panic!("a panic inside the transaction")
            });
        })
        .join();
        assert!(panicked.is_err());
        // The lock went with the panic: a writer of another process (no
        // queue; a busy_timeout of 50 ms) writes before this one does.
        let mut outside = manager.connect_now().expect("connect");
        write_tx(&mut outside, |c| insert(c, 3)).expect("the lock is free");
        let _scope = QueueScope::enter(Some(queue));
        write_tx(&mut pooled, |c| insert(c, 2)).expect("the next write");
        assert_eq!(numbers(&mut pooled), [2, 3]);
    }

    /// The queue's thread checkpoints the log (no commit does, since
    /// `wal_autocheckpoint` is off): after a pause, the next write starts
    /// the log again from its beginning, which it only does once every
    /// frame before was checkpointed.
    #[test]
    fn the_queues_thread_checkpoints_the_log_so_commits_never_do() {
        #[derive(QueryableByName)]
        struct Log {
            #[diesel(sql_type = diesel::sql_types::Integer)]
            log: i32,
        }
        let (_, manager, queue) = scratch_queue("checkpoint");
        let mut conn = manager.connect_now().expect("connect");
        conn.batch_execute("CREATE TABLE t (n INTEGER)")
            .expect("table");
        let _scope = QueueScope::enter(Some(queue));
        for n in 0..50 {
            write_tx(&mut conn, |c| insert(c, n)).expect("write");
        }
        std::thread::sleep(CHECKPOINT_EVERY * 3);
        write_tx(&mut conn, |c| insert(c, 50)).expect("write");
        let log: Vec<Log> = diesel::sql_query("PRAGMA wal_checkpoint(PASSIVE)")
            .load(&mut conn)
            .expect("log");
        assert!(
            log.first().is_some_and(|l| l.log < 10),
            "the log restarted after the thread's checkpoint: {} frames",
            log.first().map_or(-1, |l| l.log)
        );
    }

    #[test]
    fn connect_timeout_is_added_once() {
        let t = Duration::from_millis(5000);
        assert_eq!(
            with_connect_timeout("postgres://h/db", t),
            "postgres://h/db?connect_timeout=5"
        );
        assert_eq!(
            with_connect_timeout("postgres://h/db?sslmode=require", t),
            "postgres://h/db?sslmode=require&connect_timeout=5"
        );
        assert_eq!(
            with_connect_timeout("postgres://h/db?connect_timeout=9", t),
            "postgres://h/db?connect_timeout=9"
        );
        assert_eq!(
            with_connect_timeout("postgres://h/db", Duration::from_millis(100)),
            "postgres://h/db?connect_timeout=2"
        );
    }
}
