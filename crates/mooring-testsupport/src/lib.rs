//! Test support for Mooring's crates: a fresh, isolated database per test on
//! each backend, dropped when the test ends. Only ever a dev-dependency.
//!
//! PostgreSQL is found at `MOORING_TEST_POSTGRES_URL`, else at a
//! `postgres://` `DATABASE_URL`, else at `127.0.0.1:5432` (user `postgres`).
//! `cargo xtask test` sets `MOORING_TEST_POSTGRES_URL`, starting a throwaway
//! cluster when none is running. When no server answers, PostgreSQL tests
//! fail with a message saying so: they are never skipped.
//!
//! [`contract`] holds the ports' contract suites, run against each fake and
//! each real adapter.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use diesel::{Connection, PgConnection, RunQueryDsl};

pub mod contract;

/// The environment variable naming the PostgreSQL server for tests (a URL
/// whose database is used only to create and drop test databases).
pub const POSTGRES_URL_ENV: &str = "MOORING_TEST_POSTGRES_URL";

/// A key-encryption key for tests (`MOORING__PII__KEY`): bytes 0 to 31, in
/// standard base64. Never a key for real data.
pub const TEST_PII_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

/// Which engine a test database runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

/// A database that exists for one test.
pub struct TestDb {
    url: String,
    engine: Engine,
    cleanup: Cleanup,
}

enum Cleanup {
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    Postgres { admin_url: String, name: String },
}

impl TestDb {
    /// A new SQLite file in a temporary directory.
    pub fn sqlite() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("mooring-test-")
            .tempdir()
            .expect("create a temporary directory");
        let path = dir.path().join("mooring.db");
        Self {
            url: format!("sqlite://{}", path.display()),
            engine: Engine::Sqlite,
            cleanup: Cleanup::Sqlite(dir),
        }
    }

    /// What a server on this database needs for its customer data's key:
    /// `MOORING__PII__KEY`, the test key, on both backends (the key file a
    /// SQLite install makes without one has a test of its own).
    pub fn pii_env(&self) -> Vec<(String, String)> {
        vec![("MOORING__PII__KEY".into(), TEST_PII_KEY.into())]
    }

    /// A new, empty PostgreSQL database.
    pub fn postgres() -> Self {
        let admin_url = postgres_admin_url();
        let name = format!("mooring_test_{}", uuid::Uuid::new_v4().simple());
        let mut admin =
            PgConnection::establish(admin_url).expect("connect to the test PostgreSQL server");
        diesel::sql_query(format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .expect("create a test database");
        Self {
            url: with_database(admin_url, &name),
            engine: Engine::Postgres,
            cleanup: Cleanup::Postgres {
                admin_url: admin_url.to_owned(),
                name,
            },
        }
    }

    pub fn new(engine: Engine) -> Self {
        match engine {
            Engine::Sqlite => Self::sqlite(),
            Engine::Postgres => Self::postgres(),
        }
    }

    /// The database URL, as `DATABASE_URL` takes it.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn engine(&self) -> Engine {
        self.engine
    }

    /// The SQLite file, for tests that look at what is on disk.
    pub fn sqlite_path(&self) -> Option<PathBuf> {
        match &self.cleanup {
            Cleanup::Sqlite(_) => self.url.strip_prefix("sqlite://").map(PathBuf::from),
            Cleanup::Postgres { .. } => None,
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Cleanup::Postgres { admin_url, name } = &self.cleanup
            && let Ok(mut admin) = PgConnection::establish(admin_url)
        {
            // FORCE ends connections the test's pool still holds.
            let _ = diesel::sql_query(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .execute(&mut admin);
        }
    }
}

/// The URL of the PostgreSQL server used for tests, checked once.
pub fn postgres_admin_url() -> &'static str {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| {
        let url = std::env::var(POSTGRES_URL_ENV)
            .ok()
            .or_else(|| {
                std::env::var("DATABASE_URL")
                    .ok()
                    .filter(|u| u.starts_with("postgres"))
            })
            .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
        if let Err(e) = PgConnection::establish(&url) {
            panic!(
                "the PostgreSQL tests need a server and none answers at {} ({e}). \
                 Run `cargo xtask test`, which starts one, or set {POSTGRES_URL_ENV}",
                redact(&url)
            );
        }
        url
    })
}

/// Replaces the database name of a PostgreSQL URL.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let base = match base[scheme_end..].find('/') {
        Some(slash) => &base[..scheme_end + slash],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{name}?{q}"),
        None => format!("{base}/{name}"),
    }
}

fn redact(url: &str) -> String {
    match url.split_once('@') {
        Some((_, host)) => format!("postgres://…@{host}"),
        None => url.to_owned(),
    }
}

/// Reads a whole file, or nothing if it does not exist.
pub fn read_if_exists(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_default()
}

/// Declares each listed `async fn name(db: TestDb)` as two tests, one per
/// backend, in modules `sqlite` and `postgres`.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::TestDb::sqlite()).await
                }
            )*
        }
        mod postgres {
            $(
                #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::TestDb::postgres()).await
                }
            )*
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_database_name() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/postgres", "t1"),
            "postgres://postgres@127.0.0.1:5432/t1"
        );
        assert_eq!(
            with_database("postgres://u:p@h:1/db?sslmode=disable", "t2"),
            "postgres://u:p@h:1/t2?sslmode=disable"
        );
        assert_eq!(with_database("postgres://u@h", "t3"), "postgres://u@h/t3");
    }
}
