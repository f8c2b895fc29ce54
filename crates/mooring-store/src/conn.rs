//! Connections: one type over both backends (diesel's `MultiConnection`),
//! how each is set up (SQLite's pragmas and busy wait), and the r2d2 manager.

use std::fmt;
use std::time::Duration;

use diesel::connection::{AnsiTransactionManager, SimpleConnection, TransactionManager};
use diesel::prelude::*;
use diesel::r2d2::ManageConnection;

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
                conn.batch_execute(&format!(
                    "PRAGMA busy_timeout = {}; PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
                     PRAGMA foreign_keys = ON; PRAGMA secure_delete = ON;",
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

impl ManageConnection for Manager {
    type Connection = AnyConnection;
    type Error = diesel::r2d2::Error;

    fn connect(&self) -> Result<AnyConnection, Self::Error> {
        self.connect_now()
            .map_err(diesel::r2d2::Error::ConnectionError)
    }

    fn is_valid(&self, conn: &mut AnyConnection) -> Result<(), Self::Error> {
        conn.batch_execute("SELECT 1")
            .map_err(diesel::r2d2::Error::QueryError)
    }

    fn has_broken(&self, conn: &mut AnyConnection) -> bool {
        // A connection left inside a transaction (a panic mid-work) is dropped.
        <AnyConnection as Connection>::TransactionManager::is_broken_transaction_manager(conn)
    }
}

/// Runs `f` in a write transaction. On SQLite it is `BEGIN IMMEDIATE`, so the
/// write lock is taken up front and two writers queue (on `busy_timeout`)
/// instead of deadlocking on a lock upgrade; on PostgreSQL a READ COMMITTED
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
