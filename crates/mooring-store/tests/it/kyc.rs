//! The KYC store contract, on both backends.

use std::sync::Arc;

use chrono::{TimeZone, Utc};
use mooring_domain::customer::{CustomerId, ProvidedValue, Review};
use mooring_domain::{Memo, StellarAccount};
use mooring_ports::{CustomerTarget, FileUpload, KycStore, KycStoreError, PutCustomer};
use mooring_testsupport::{Engine, TestDb, on_both_backends, read_if_exists};

use crate::migrated_store;

const ACCOUNT: &str = "GDJUOFZGW5WYBK4GIETCSSM6MTTIJ4SUMCQITPTLUWMQ6B4UIX2IEX47";

fn account() -> StellarAccount {
    StellarAccount::parse(ACCOUNT).expect("valid")
}

fn memo(value: &str, memo_type: &str) -> Option<Memo> {
    Some(Memo::parse(value, Some(memo_type)).expect("valid"))
}

/// A time with nanoseconds, which neither backend keeps.
fn now() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 24, 12, 0, 0)
        .single()
        .expect("valid")
        + chrono::Duration::nanoseconds(123_456_789)
}

fn by_account(memo: Option<Memo>, text: &[(&str, Option<&str>)]) -> PutCustomer {
    PutCustomer {
        target: CustomerTarget::Account {
            account: account(),
            memo,
            new_id: CustomerId::generate(),
        },
        customer_type: Some("sep31-sender".into()),
        text: text
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.map(str::to_owned)))
            .collect(),
        files: vec![],
        transaction_id: None,
        now: now(),
    }
}

fn text(value: &str) -> ProvidedValue {
    ProvidedValue::Text(value.to_owned())
}

async fn creates_finds_and_updates_only_the_fields_sent(db: TestDb) {
    let store = migrated_store(&db).await;
    let created = store
        .put(by_account(
            memo("780284017", "id"),
            &[("first_name", Some("John")), ("last_name", Some("Doe"))],
        ))
        .await
        .expect("created");
    assert_eq!(created.fields.get("first_name"), Some(&text("John")));
    assert_eq!(created.customer_type.as_deref(), Some("sep31-sender"));
    // Stored to the microsecond, and what put returns is what get returns.
    assert_eq!(
        created.created_at,
        now() - chrono::Duration::nanoseconds(789)
    );

    let found = store
        .find(&account(), memo("780284017", "id").as_ref())
        .await
        .expect("query")
        .expect("found");
    assert_eq!(found, created);
    assert_eq!(
        store.get(&created.id).await.expect("query"),
        Some(created.clone())
    );
    assert_eq!(store.find(&account(), None).await.expect("query"), None);

    let mut update = by_account(None, &[("last_name", Some("Roe")), ("first_name", None)]);
    update.target = CustomerTarget::Id(created.id.clone());
    update.customer_type = None;
    let updated = store.put(update).await.expect("updated");
    assert_eq!(updated.id, created.id);
    assert_eq!(updated.fields.len(), 1);
    assert_eq!(updated.fields.get("last_name"), Some(&text("Roe")));
    // Not named in the update: the stored type stays.
    assert_eq!(updated.customer_type.as_deref(), Some("sep31-sender"));
}

async fn unknown_ids_are_not_found(db: TestDb) {
    let store = migrated_store(&db).await;
    let id = CustomerId::generate();
    assert_eq!(store.get(&id).await.expect("query"), None);
    let mut update = by_account(None, &[("first_name", Some("x"))]);
    update.target = CustomerTarget::Id(id.clone());
    assert!(matches!(
        store.put(update).await,
        Err(KycStoreError::NotFound)
    ));
    assert!(matches!(
        store.delete(&id).await,
        Err(KycStoreError::NotFound)
    ));
    assert!(matches!(
        store.set_review(&id, Review::Approved, None, now()).await,
        Err(KycStoreError::NotFound)
    ));
}

async fn one_customer_per_account_and_memo_whatever_the_memo_type(db: TestDb) {
    let store = migrated_store(&db).await;
    let a = store
        .put(by_account(memo("42", "id"), &[("first_name", Some("A"))]))
        .await
        .expect("stored");
    let b = store
        .put(by_account(memo("42", "text"), &[("last_name", Some("B"))]))
        .await
        .expect("stored");
    assert_eq!(a.id, b.id);
    assert_eq!(b.fields.len(), 2);
    let c = store
        .put(by_account(None, &[("first_name", Some("C"))]))
        .await
        .expect("stored");
    assert_ne!(c.id, a.id, "no memo is another customer than memo 42");
}

async fn concurrent_first_puts_make_one_customer(db: TestDb) {
    let store = Arc::new(migrated_store(&db).await);
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let fields: [(&str, Option<&str>); 1] = [(
                    if i % 2 == 0 {
                        "first_name"
                    } else {
                        "last_name"
                    },
                    Some("X"),
                )];
                store
                    .put(by_account(memo("7", "id"), &fields))
                    .await
                    .expect("stored")
                    .id
            })
        })
        .collect();
    let mut ids = Vec::new();
    for t in tasks {
        ids.push(t.await.expect("task"));
    }
    ids.dedup();
    assert_eq!(
        ids.len(),
        1,
        "racing PUTs for one account and memo made several customers"
    );
    let stored = store
        .find(&account(), memo("7", "id").as_ref())
        .await
        .expect("query")
        .expect("found");
    assert_eq!(stored.fields.len(), 2);
}

/// A new customer is answered from what was written, without reading it
/// back: that answer must be what a read finds.
async fn a_new_customer_as_put_returns_it_is_what_is_stored(db: TestDb) {
    let store = migrated_store(&db).await;
    let mut change = by_account(
        memo("a text memo", "text"),
        &[("first_name", Some("Ann")), ("last_name", None)],
    );
    change.files = vec![
        (
            "photo_id_front".into(),
            Some(FileUpload {
                content: vec![7; 10],
                content_type: Some("image/png".into()),
            }),
        ),
        ("photo_id_back".into(), None),
    ];
    change.transaction_id = Some("tx-1".into());
    let created = store.put(change).await.expect("created");
    assert_eq!(created.fields.len(), 2, "the cleared ones are not there");
    assert_eq!(created.transaction_ids, ["tx-1"]);
    assert_eq!(created.review, Review::Pending);
    assert_eq!(store.get(&created.id).await.expect("get"), Some(created));
}

async fn files_are_stored_replaced_and_cleared(db: TestDb) {
    let store = migrated_store(&db).await;
    let mut change = by_account(None, &[]);
    change.files = vec![(
        "photo_id_front".into(),
        Some(FileUpload {
            content: vec![7; 2048],
            content_type: Some("image/png".into()),
        }),
    )];
    let c = store.put(change).await.expect("stored");
    assert_eq!(
        c.fields.get("photo_id_front"),
        Some(&ProvidedValue::File {
            size: 2048,
            content_type: Some("image/png".into())
        })
    );
    let mut replace = by_account(None, &[]);
    replace.files = vec![(
        "photo_id_front".into(),
        Some(FileUpload {
            content: vec![1, 2, 3],
            content_type: None,
        }),
    )];
    let c = store.put(replace).await.expect("stored");
    assert_eq!(
        c.fields.get("photo_id_front"),
        Some(&ProvidedValue::File {
            size: 3,
            content_type: None
        })
    );
    let mut clear = by_account(None, &[]);
    clear.files = vec![("photo_id_front".into(), None)];
    assert!(store.put(clear).await.expect("stored").fields.is_empty());
}

async fn an_approval_lapses_when_a_value_changes_and_a_rejection_stays(db: TestDb) {
    let store = migrated_store(&db).await;
    let c = store
        .put(by_account(None, &[("first_name", Some("Ann"))]))
        .await
        .expect("stored");
    assert_eq!(c.review, Review::Pending);
    assert_eq!(
        store
            .set_review(&c.id, Review::Approved, None, now())
            .await
            .expect("approved")
            .review,
        Review::Approved
    );
    let same = store
        .put(by_account(None, &[("first_name", Some("Ann"))]))
        .await
        .expect("stored");
    assert_eq!(
        same.review,
        Review::Approved,
        "re-sending a value is no change"
    );
    let changed = store
        .put(by_account(None, &[("first_name", Some("Anne"))]))
        .await
        .expect("stored");
    assert_eq!(changed.review, Review::Pending);
    let rejected = Review::Rejected {
        reason: "sanctions list match".into(),
    };
    assert_eq!(
        store
            .set_review(&c.id, rejected.clone(), None, now())
            .await
            .expect("rejected")
            .review,
        rejected
    );
    let after = store
        .put(by_account(None, &[("first_name", Some("Annie"))]))
        .await
        .expect("stored");
    assert_eq!(after.review, rejected);
}

async fn transaction_links_are_recorded_once(db: TestDb) {
    let store = migrated_store(&db).await;
    for t in ["txn-b", "txn-a", "txn-b"] {
        let mut change = by_account(None, &[]);
        change.transaction_id = Some(t.into());
        store.put(change).await.expect("stored");
    }
    let c = store
        .find(&account(), None)
        .await
        .expect("query")
        .expect("found");
    assert_eq!(c.transaction_ids, ["txn-a", "txn-b"]);
}

async fn delete_leaves_no_trace(db: TestDb) {
    let store = migrated_store(&db).await;
    let secret_name = format!("Zebediah{}", uuid_like());
    let mut change = by_account(
        memo("99", "id"),
        &[
            ("first_name", Some(&secret_name)),
            ("email_address", Some("z@example.com")),
        ],
    );
    change.files = vec![(
        "photo_id_front".into(),
        Some(FileUpload {
            content: secret_name.clone().into_bytes(),
            content_type: None,
        }),
    )];
    change.transaction_id = Some("txn-1".into());
    let c = store.put(change).await.expect("stored");
    // Another customer stays untouched.
    let other = store
        .put(by_account(
            memo("100", "id"),
            &[("first_name", Some("Other"))],
        ))
        .await
        .expect("stored");

    store.delete(&c.id).await.expect("deleted");
    assert_eq!(store.get(&c.id).await.expect("query"), None);
    assert_eq!(
        store
            .find(&account(), memo("99", "id").as_ref())
            .await
            .expect("query"),
        None
    );
    assert!(store.get(&other.id).await.expect("query").is_some());
    assert!(matches!(
        store.delete(&c.id).await,
        Err(KycStoreError::NotFound)
    ));

    // On both backends: no row of theirs is left in any table, their data
    // key included (what it sealed, in any copy, cannot be opened).
    let id = c.id.to_string();
    let left = store
        .with_connection(move |conn| {
            use diesel::RunQueryDsl;
            #[derive(diesel::QueryableByName)]
            struct Count {
                #[diesel(sql_type = diesel::sql_types::BigInt)]
                n: i64,
            }
            let mut total = 0;
            for (table, key) in [
                ("customers", "id"),
                ("customer_fields", "customer_id"),
                ("customer_files", "customer_id"),
                ("customer_transactions", "customer_id"),
                ("data_keys", "customer_id"),
            ] {
                let counted: Vec<Count> = diesel::sql_query(format!(
                    "SELECT COUNT(*) AS n FROM {table} WHERE {key} = '{id}'"
                ))
                .load(conn)?;
                total += counted.first().map_or(0, |c| c.n);
            }
            Ok::<_, diesel::result::Error>(total)
        })
        .await
        .expect("count");
    assert_eq!(left, 0, "rows of a deleted customer are left");

    match (db.engine(), db.sqlite_path()) {
        (Engine::Sqlite, Some(path)) => {
            // Nor on disk: not in the database file, nor in its write-ahead log.
            let mut wal = path.clone().into_os_string();
            wal.push("-wal");
            for file in [path.clone(), wal.into()] {
                let bytes = read_if_exists(&file);
                let found = bytes
                    .windows(secret_name.len())
                    .any(|w| w == secret_name.as_bytes());
                assert!(!found, "deleted PII is still in {}", file.display());
            }
        }
        // PostgreSQL's files may be on another host: its dead tuples are
        // shredded by the data key's deletion, checked above.
        (Engine::Postgres, None) => {}
        (engine, path) => panic!("a {engine:?} database with file {path:?}"),
    }
}

fn uuid_like() -> String {
    CustomerId::generate().to_string().replace('-', "")
}

on_both_backends!(
    creates_finds_and_updates_only_the_fields_sent,
    unknown_ids_are_not_found,
    one_customer_per_account_and_memo_whatever_the_memo_type,
    concurrent_first_puts_make_one_customer,
    a_new_customer_as_put_returns_it_is_what_is_stored,
    files_are_stored_replaced_and_cleared,
    an_approval_lapses_when_a_value_changes_and_a_rejection_stays,
    transaction_links_are_recorded_once,
    delete_leaves_no_trace,
);

/// PostgreSQL plans the customer's one-statement read once per connection,
/// not on every call (planning it costs several times running it).
#[tokio::test]
async fn on_postgres_a_customer_is_read_through_a_statement_prepared_once() {
    let db = TestDb::postgres();
    let store = crate::postgres_on_one_connection(&db).await;
    let created = store
        .put(by_account(
            memo("42", "id"),
            &[("first_name", Some("Jane"))],
        ))
        .await
        .expect("put");
    for _ in 0..3 {
        let found = store
            .find(&account(), memo("42", "id").as_ref())
            .await
            .expect("find")
            .expect("found");
        assert_eq!(found.id, created.id);
        assert_eq!(store.get(&created.id).await.expect("get"), Some(found));
    }
    let prepared = crate::prepared_like(&store, "%JOIN customer_transactions t%").await;
    assert_eq!(
        prepared, 2,
        "one read by id and one by account and memo, each prepared once"
    );
}
