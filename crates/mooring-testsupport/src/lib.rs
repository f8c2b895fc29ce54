//! Test support for Mooring's crates: an isolated database per test on
//! each backend, dropped when the test ends. Only ever a dev-dependency.
//!
//! A test's database is a copy of a **template** migrated once: on
//! PostgreSQL `CREATE DATABASE … TEMPLATE mooring_template_<hash>` (the
//! template is kept between runs, named by a hash of the migrations, and
//! rebuilt when they change); on SQLite a copy of a migrated file kept under
//! `target/test-templates/`. Tests of migrating itself take an empty one
//! ([`TestDb::new_empty`]).
//!
//! PostgreSQL is found at `MOORING_TEST_POSTGRES_URL`, else at a
//! `postgres://` `DATABASE_URL`, else at `127.0.0.1:5432` (user `postgres`).
//! `cargo xtask test` sets `MOORING_TEST_POSTGRES_URL`, starting a throwaway
//! cluster when none is running. When no server answers, PostgreSQL tests
//! fail with a message saying so: they are never skipped.
//!
//! [`contract`] holds the ports' contract suites, run against each fake and
//! each real adapter.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use diesel::{Connection, PgConnection, RunQueryDsl, SqliteConnection};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

pub mod contract;

/// The environment variable naming the PostgreSQL server for tests (a URL
/// whose database is used only to create and drop test databases).
pub const POSTGRES_URL_ENV: &str = "MOORING_TEST_POSTGRES_URL";

/// A key-encryption key for tests (`MOORING__PII__KEY`): bytes 0 to 31, in
/// standard base64. Never a key for real data.
pub const TEST_PII_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

/// The store's own migrations (the same directories `mooring-store`
/// embeds), so a template is what `Store::migrate` makes.
const POSTGRES_MIGRATIONS: EmbeddedMigrations =
    embed_migrations!("../mooring-store/migrations/postgres");
const SQLITE_MIGRATIONS: EmbeddedMigrations =
    embed_migrations!("../mooring-store/migrations/sqlite");

/// The advisory lock that serialises building the PostgreSQL template
/// between test processes.
const TEMPLATE_LOCK_KEY: i64 = 0x6d6f_6f72_746d_706c; // "moortmpl"

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
    /// A migrated SQLite file (a copy of the template) in a temporary
    /// directory.
    pub fn sqlite() -> Self {
        Self::sqlite_from(Some(sqlite_template()))
    }

    /// An empty SQLite file's path (nothing created yet), for tests of
    /// migrating.
    pub fn sqlite_empty() -> Self {
        Self::sqlite_from(None)
    }

    fn sqlite_from(template: Option<&Path>) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("mooring-test-")
            .tempdir()
            .expect("create a temporary directory");
        let path = dir.path().join("mooring.db");
        if let Some(template) = template {
            std::fs::copy(template, &path).expect("copy the SQLite template");
        }
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

    /// A migrated PostgreSQL database, made from the template.
    pub fn postgres() -> Self {
        Self::postgres_from(Some(postgres_template()))
    }

    /// A new, empty PostgreSQL database, for tests of migrating.
    pub fn postgres_empty() -> Self {
        Self::postgres_from(None)
    }

    fn postgres_from(template: Option<&str>) -> Self {
        let admin_url = postgres_admin_url();
        let name = format!("mooring_test_{}", uuid::Uuid::new_v4().simple());
        let mut admin =
            PgConnection::establish(admin_url).expect("connect to the test PostgreSQL server");
        let create = match template {
            Some(t) => format!("CREATE DATABASE {name} TEMPLATE {t}"),
            None => format!("CREATE DATABASE {name}"),
        };
        diesel::sql_query(create)
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

    /// A migrated database on `engine`.
    pub fn new(engine: Engine) -> Self {
        match engine {
            Engine::Sqlite => Self::sqlite(),
            Engine::Postgres => Self::postgres(),
        }
    }

    /// An empty database on `engine`, for tests of migrating.
    pub fn new_empty(engine: Engine) -> Self {
        match engine {
            Engine::Sqlite => Self::sqlite_empty(),
            Engine::Postgres => Self::postgres_empty(),
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

/// A hash of a backend's migration files (names and contents), naming its
/// template: a changed migration makes a new template.
fn migrations_hash(backend: &str) -> u64 {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../mooring-store/migrations")
        .join(backend);
    let mut files = Vec::new();
    let mut stack = vec![dir.clone()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d)
            .unwrap_or_else(|e| panic!("read {}: {e}", d.display()))
            .flatten()
        {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files.sort();
    let mut hasher = DefaultHasher::new();
    for file in files {
        file.strip_prefix(&dir).unwrap_or(&file).hash(&mut hasher);
        std::fs::read(&file)
            .unwrap_or_else(|e| panic!("read {}: {e}", file.display()))
            .hash(&mut hasher);
    }
    hasher.finish()
}

/// The migrated SQLite template: `target/test-templates/sqlite-<hash>.db`,
/// made once (written aside, then moved into place, so a test process
/// never copies half a file) and reused by every test process after.
fn sqlite_template() -> &'static Path {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/test-templates");
        std::fs::create_dir_all(&dir).expect("create target/test-templates");
        let path = dir.join(format!("sqlite-{:016x}.db", migrations_hash("sqlite")));
        if !path.is_file() {
            let building = dir.join(format!("building-{}.db", uuid::Uuid::new_v4().simple()));
            {
                let mut conn = SqliteConnection::establish(&building.display().to_string())
                    .expect("create the SQLite template");
                conn.run_pending_migrations(SQLITE_MIGRATIONS)
                    .expect("migrate the SQLite template");
            }
            std::fs::rename(&building, &path).expect("move the SQLite template into place");
        }
        path
    })
}

/// The migrated PostgreSQL template's name, made once per set of
/// migrations under an advisory lock (built under another name, then
/// renamed, so a crash never leaves half a template), with connections to
/// it refused so that `CREATE DATABASE … TEMPLATE` always may copy it.
fn postgres_template() -> &'static str {
    static NAME: OnceLock<String> = OnceLock::new();
    NAME.get_or_init(|| {
        let admin_url = postgres_admin_url();
        let name = format!("mooring_template_{:016x}", migrations_hash("postgres"));
        let mut admin =
            PgConnection::establish(admin_url).expect("connect to the test PostgreSQL server");
        let run = |admin: &mut PgConnection, sql: String| {
            diesel::sql_query(&sql)
                .execute(admin)
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
        };
        run(
            &mut admin,
            format!("SELECT pg_advisory_lock({TEMPLATE_LOCK_KEY})"),
        );
        #[derive(diesel::QueryableByName)]
        struct Name {
            #[diesel(sql_type = diesel::sql_types::Text)]
            datname: String,
        }
        let templates: Vec<String> = diesel::sql_query(
            "SELECT datname FROM pg_database WHERE datname LIKE 'mooring\\_template\\_%'",
        )
        .load::<Name>(&mut admin)
        .expect("list the templates")
        .into_iter()
        .map(|n| n.datname)
        .collect();
        if !templates.contains(&name) {
            // Templates of other migrations: no test of this tree uses them.
            for old in &templates {
                run(
                    &mut admin,
                    format!("ALTER DATABASE {old} IS_TEMPLATE false"),
                );
                run(
                    &mut admin,
                    format!("DROP DATABASE IF EXISTS {old} WITH (FORCE)"),
                );
            }
            let building = format!("mooring_building_{}", uuid::Uuid::new_v4().simple());
            run(&mut admin, format!("CREATE DATABASE {building}"));
            {
                let mut conn = PgConnection::establish(&with_database(admin_url, &building))
                    .expect("connect to the template being built");
                conn.run_pending_migrations(POSTGRES_MIGRATIONS)
                    .expect("migrate the PostgreSQL template");
            }
            run(
                &mut admin,
                format!("ALTER DATABASE {building} RENAME TO {name}"),
            );
            run(
                &mut admin,
                format!("ALTER DATABASE {name} WITH IS_TEMPLATE true ALLOW_CONNECTIONS false"),
            );
        }
        run(
            &mut admin,
            format!("SELECT pg_advisory_unlock({TEMPLATE_LOCK_KEY})"),
        );
        name
    })
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

/// A PostgreSQL URL with another database name (its path), the rest kept.
fn with_database(url: &str, name: &str) -> String {
    let mut parsed = url::Url::parse(url)
        .unwrap_or_else(|e| panic!("the test PostgreSQL URL is not a URL ({e})"));
    parsed.set_path(&format!("/{name}"));
    parsed.to_string()
}

/// A URL without its user and password.
fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            let had_credentials = !parsed.username().is_empty() || parsed.password().is_some();
            let _ = parsed.set_password(None);
            let _ = parsed.set_username("");
            let text = parsed.to_string();
            match (had_credentials, text.split_once("://")) {
                (true, Some((scheme, rest))) => format!("{scheme}://…@{rest}"),
                _ => text,
            }
        }
        Err(_) => "(not a URL)".to_owned(),
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

    #[test]
    fn redacts_credentials() {
        assert_eq!(
            redact("postgres://u:secret@h:5432/db?sslmode=disable"),
            "postgres://…@h:5432/db?sslmode=disable"
        );
        assert_eq!(redact("postgres://h/db"), "postgres://h/db");
        assert!(!redact("postgres://u:secret@h/db").contains("secret"));
    }
}
