//! Migrations: the embedded SQL of each backend, applied under an advisory
//! lock on PostgreSQL so replicas starting together migrate once.

use diesel::RunQueryDsl;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

use crate::{AnyConnection, StoreError};

const POSTGRES: EmbeddedMigrations = embed_migrations!("migrations/postgres");
const SQLITE: EmbeddedMigrations = embed_migrations!("migrations/sqlite");

/// A fixed key for the PostgreSQL advisory lock that serialises replicas
/// migrating at the same time.
const MIGRATION_LOCK_KEY: i64 = 0x006d_6f6f_7269_6e67; // "mooring" in ASCII

pub(crate) fn run_pending(conn: &mut AnyConnection) -> Result<Vec<String>, StoreError> {
    let err = |e: Box<dyn std::error::Error + Send + Sync>| StoreError::Migration(e.to_string());
    let applied = match conn {
        AnyConnection::Postgresql(pg) => {
            diesel::sql_query(format!("SELECT pg_advisory_lock({MIGRATION_LOCK_KEY})"))
                .execute(pg)?;
            let result = pg
                .run_pending_migrations(POSTGRES)
                .map(|versions| versions.iter().map(ToString::to_string).collect::<Vec<_>>())
                .map_err(err);
            diesel::sql_query(format!("SELECT pg_advisory_unlock({MIGRATION_LOCK_KEY})"))
                .execute(pg)?;
            result?
        }
        AnyConnection::Sqlite(sqlite) => sqlite
            .run_pending_migrations(SQLITE)
            .map_err(err)?
            .iter()
            .map(ToString::to_string)
            .collect(),
    };
    Ok(applied)
}

pub(crate) fn pending(conn: &mut AnyConnection) -> Result<Vec<String>, StoreError> {
    let err = |e: Box<dyn std::error::Error + Send + Sync>| StoreError::Migration(e.to_string());
    let pending = match conn {
        AnyConnection::Postgresql(pg) => versions(pg.pending_migrations(POSTGRES).map_err(err)?),
        AnyConnection::Sqlite(sqlite) => versions(sqlite.pending_migrations(SQLITE).map_err(err)?),
    };
    Ok(pending)
}

fn versions<DB: diesel::backend::Backend>(
    migrations: Vec<Box<dyn diesel::migration::Migration<DB>>>,
) -> Vec<String> {
    migrations
        .iter()
        .map(|m| m.name().version().to_string())
        .collect()
}
