//! `schema.rs` matches what the migrations create, on both backends.

use std::collections::BTreeSet;

use diesel::prelude::*;
use diesel::sql_types::{Integer, Text};
use mooring_store::AnyConnection;
use mooring_testsupport::{Engine, TestDb, on_both_backends};

use crate::migrated_store;

#[derive(QueryableByName)]
struct Column {
    #[diesel(sql_type = Text)]
    table_name: String,
    #[diesel(sql_type = Text)]
    column_name: String,
    #[diesel(sql_type = Text)]
    data_type: String,
    #[diesel(sql_type = Integer)]
    not_null: i32,
    /// SQLite's `INTEGER PRIMARY KEY`: the 64-bit rowid (diesel's BigInt).
    #[diesel(sql_type = Integer)]
    rowid: i32,
}

/// (table, column, diesel type, nullable) as declared in src/schema.rs.
fn declared() -> BTreeSet<(String, String, String, bool)> {
    let source = include_str!("../../src/schema.rs");
    let mut out = BTreeSet::new();
    let mut table = None;
    for line in source.lines().map(str::trim) {
        if let Some(rest) = line.strip_suffix('{').map(str::trim)
            && let Some((name, _pk)) = rest.split_once(' ')
            && !name.contains("table!")
        {
            table = Some(name.to_owned());
        } else if line == "}" {
            table = None;
        } else if let (Some(t), Some((column, ty))) =
            (&table, line.trim_end_matches(',').split_once(" -> "))
        {
            let (ty, nullable) = match ty
                .strip_prefix("Nullable<")
                .and_then(|t| t.strip_suffix('>'))
            {
                Some(inner) => (inner, true),
                None => (ty, false),
            };
            out.insert((t.clone(), column.to_owned(), ty.to_owned(), nullable));
        }
    }
    out
}

fn diesel_type(engine: Engine, sql_type: &str) -> String {
    let t = sql_type.to_lowercase();
    match (engine, t.as_str()) {
        (_, "text") => "Text",
        (_, "bigint") => "BigInt",
        (_, "integer") => "Integer",
        (_, "boolean") => "Bool",
        (Engine::Postgres, "bytea") | (Engine::Sqlite, "blob") => "Binary",
        (Engine::Postgres, "timestamp without time zone") | (Engine::Sqlite, "timestamp") => {
            "Timestamp"
        }
        _ => "UNKNOWN",
    }
    .to_owned()
}

async fn schema_rs_matches_the_migrations(db: TestDb) {
    // What the store's own migrations make, not the tests' template.
    let db = TestDb::new_empty(db.engine());
    let _store = migrated_store(&db).await;
    let engine = db.engine();
    let url = db.url().to_owned();
    let columns: Vec<Column> = tokio::task::spawn_blocking(move || {
        let mut conn = match engine {
            Engine::Postgres => AnyConnection::Postgresql(PgConnection::establish(&url).expect("connect")),
            Engine::Sqlite => AnyConnection::Sqlite(
                SqliteConnection::establish(url.trim_start_matches("sqlite://")).expect("connect"),
            ),
        };
        let query = match engine {
            Engine::Postgres => {
                "SELECT table_name::text AS table_name, column_name::text AS column_name, data_type::text AS data_type, \
                 CASE WHEN is_nullable = 'NO' THEN 1 ELSE 0 END AS not_null, 0 AS rowid \
                 FROM information_schema.columns WHERE table_schema = 'public' \
                 AND table_name <> '__diesel_schema_migrations'"
            }
            Engine::Sqlite => {
                "SELECT m.name AS table_name, p.name AS column_name, p.type AS data_type, \
                 CASE WHEN p.\"notnull\" = 1 OR p.pk > 0 THEN 1 ELSE 0 END AS not_null, \
                 CASE WHEN p.pk = 1 AND lower(p.type) = 'integer' \
                 AND (SELECT count(*) FROM pragma_table_info(m.name) k WHERE k.pk > 0) = 1 \
                 THEN 1 ELSE 0 END AS rowid \
                 FROM sqlite_master m JOIN pragma_table_info(m.name) p \
                 WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' AND m.name <> '__diesel_schema_migrations'"
            }
        };
        diesel::sql_query(query).load(&mut conn).expect("introspect")
    })
    .await
    .expect("introspection task");
    let actual: BTreeSet<_> = columns
        .into_iter()
        .map(|c| {
            (
                c.table_name,
                c.column_name,
                if c.rowid == 1 {
                    "BigInt".to_owned()
                } else {
                    diesel_type(engine, &c.data_type)
                },
                c.not_null == 0,
            )
        })
        .collect();
    let declared = declared();
    assert!(
        declared.len() >= 20,
        "the schema.rs parser found too little: {declared:?}"
    );
    assert_eq!(
        actual, declared,
        "src/schema.rs and the {engine:?} migrations disagree"
    );
}

async fn migrating_twice_applies_nothing_the_second_time(db: TestDb) {
    let db = TestDb::new_empty(db.engine());
    let store = migrated_store(&db).await;
    assert!(
        store
            .pending_migrations()
            .await
            .expect("pending")
            .is_empty()
    );
    assert!(store.migrate().await.expect("second run").is_empty());
}

/// A test's database (a copy of the template `mooring-testsupport`
/// migrates) holds every migration the store knows: nothing is pending.
async fn a_test_database_is_migrated_as_the_store_would(db: TestDb) {
    let store = mooring_store::Store::connect(mooring_store::StoreConfig {
        url: mooring_store::DatabaseUrl::parse(db.url()).expect("test URL"),
        pool_size: 1,
        connect_timeout: std::time::Duration::from_secs(5),
    })
    .await
    .expect("connect");
    assert_eq!(
        store.pending_migrations().await.expect("pending"),
        Vec::<String>::new()
    );
    assert!(store.migrate().await.expect("migrate").is_empty());
}

on_both_backends!(
    schema_rs_matches_the_migrations,
    migrating_twice_applies_nothing_the_second_time,
    a_test_database_is_migrated_as_the_store_would
);
