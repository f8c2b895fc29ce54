//! Customer data at rest, on both backends: nothing of a customer's values,
//! files or frozen orders in any column, a deleted customer's data key gone,
//! the wrong key refused with nothing changed, plaintext of an earlier
//! version sealed at unlock, and a rotation after which the new key alone
//! opens everything.

use std::sync::Arc;

use chrono::{Duration, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Binary, Nullable, Text};
use mooring_domain::customer::{CustomerId, ProvidedValue};
use mooring_domain::payout::{PayoutOrder, PayoutState, Sighting};
use mooring_domain::transaction::TransactionId;
use mooring_domain::{Memo, StellarAccount};
use mooring_keys::Keyring;
use mooring_ports::{CustomerTarget, DataKey, FileUpload, KycStore, PayoutLedger, PutCustomer};
use mooring_store::{Store, StoreError};
use mooring_testsupport::{TestDb, on_both_backends, read_if_exists};

const ACCOUNT: &str = "GDJUOFZGW5WYBK4GIETCSSM6MTTIJ4SUMCQITPTLUWMQ6B4UIX2IEX47";
const NAME: &str = "Zebulon-Plaintext";
const BANK: &str = "9988776655443";
const PHOTO: &[u8] = b"JPEG-PASSPORT-PIXELS-0123456789";

pub(crate) async fn connected(db: &TestDb) -> Store {
    let store = crate::opened(db, 2).await;
    store.migrate().await.expect("migrate");
    store
}

pub(crate) fn ring(key: &DataKey, previous: &[&DataKey]) -> Arc<Keyring> {
    Arc::new(Keyring::new(
        key.clone(),
        previous.iter().map(|k| (*k).clone()).collect(),
    ))
}

fn put_receiver() -> PutCustomer {
    PutCustomer {
        target: CustomerTarget::Account {
            account: StellarAccount::parse(ACCOUNT).expect("account"),
            memo: Some(Memo::parse("77", Some("id")).expect("memo")),
            new_id: CustomerId::generate(),
        },
        customer_type: Some("sep31-receiver".into()),
        text: vec![
            ("first_name".into(), Some(NAME.into())),
            ("bank_account_number".into(), Some(BANK.into())),
        ],
        files: vec![(
            "photo_id_front".into(),
            Some(FileUpload {
                content: PHOTO.to_vec(),
                content_type: Some("image/jpeg".into()),
            }),
        )],
        transaction_id: None,
        now: Utc::now(),
    }
}

#[derive(QueryableByName)]
struct Cell {
    #[diesel(sql_type = Nullable<Text>)]
    text: Option<String>,
    #[diesel(sql_type = Nullable<Binary>)]
    bytes: Option<Vec<u8>>,
}

/// Every text and binary column where PII could sit, raw.
async fn raw_cells(store: &Store) -> Vec<u8> {
    let cells = store
        .with_connection(|c| {
            diesel::sql_query(
                "SELECT legacy_value AS text, sealed AS bytes FROM customer_fields \
                 UNION ALL SELECT content_type, legacy_content FROM customer_files \
                 UNION ALL SELECT NULL, sealed FROM customer_files \
                 UNION ALL SELECT legacy_order, sealed_order FROM payouts \
                 UNION ALL SELECT reason, NULL FROM payouts \
                 UNION ALL SELECT last_error, NULL FROM payouts",
            )
            .load::<Cell>(c)
        })
        .await
        .expect("raw read");
    let mut all = Vec::new();
    for c in cells {
        all.extend(c.text.unwrap_or_default().into_bytes());
        all.extend(c.bytes.unwrap_or_default());
    }
    all
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn assert_no_plaintext(bytes: &[u8], what: &str) {
    for secret in [NAME.as_bytes(), BANK.as_bytes(), PHOTO] {
        assert!(
            !contains(bytes, secret),
            "{what} holds {:?} in plaintext",
            String::from_utf8_lossy(secret)
        );
    }
}

fn sqlite_files(db: &TestDb) -> Vec<u8> {
    let Some(path) = db.sqlite_path() else {
        return Vec::new();
    };
    let mut wal = path.clone().into_os_string();
    wal.push("-wal");
    let wal: std::path::PathBuf = wal.into();
    [read_if_exists(&path), read_if_exists(&wal)].concat()
}

async fn freeze_order_for(store: &Store, receiver: &str) -> TransactionId {
    let now = Utc::now();
    let t = TransactionId::parse("enc-1").expect("id");
    store.sight(&t, Sighting::Funded, now).await.expect("sight");
    let c = store
        .claim("a", 1, now, Duration::seconds(30))
        .await
        .expect("claim")
        .remove(0);
    let mut p = c.payout.clone();
    p.receiver_id = Some(receiver.to_owned());
    p.submit(
        PayoutOrder {
            idempotency_key: "enc-1".into(),
            transaction_id: "enc-1".into(),
            amount: "10".parse().expect("amount"),
            asset: "iso4217:BRL".into(),
            delivery_method: None,
            receiver_id: receiver.to_owned(),
            receiver_fields: vec![
                ("first_name".into(), NAME.into()),
                ("bank_account_number".into(), BANK.into()),
            ],
        },
        now,
    )
    .expect("submit");
    store
        .save(&c.claim, PayoutState::Received, &p, None)
        .await
        .expect("save");
    t
}

async fn nothing_of_a_customer_is_stored_in_plaintext_and_erasure_destroys_the_key(db: TestDb) {
    let key = DataKey::generate();
    let (store, _) = connected(&db)
        .await
        .unlock(ring(&key, &[]))
        .await
        .expect("unlock");
    let c = store.put(put_receiver()).await.expect("put");
    assert_eq!(
        c.fields.get("bank_account_number"),
        Some(&ProvidedValue::Text(BANK.into()))
    );
    let t = freeze_order_for(&store, c.id.as_str()).await;
    let order = PayoutLedger::get(&store, &t)
        .await
        .expect("get")
        .expect("entry");
    assert_eq!(order.order().map(|o| o.receiver_fields.len()), Some(2));

    assert_no_plaintext(&raw_cells(&store).await, "a column");
    assert_no_plaintext(&sqlite_files(&db), "the SQLite file or its WAL");

    // Erased: the rows and the data key; the frozen order reads as erased.
    store.delete(&c.id).await.expect("delete");
    let keys: i64 = store
        .with_connection(|c| {
            mooring_store::schema::data_keys::table
                .count()
                .get_result(c)
        })
        .await
        .expect("count");
    assert_eq!(keys, 0, "the data key is gone");
    let erased = PayoutLedger::get(&store, &t)
        .await
        .expect("get")
        .expect("entry");
    let at_rail = erased.at_rail().expect("at the rail");
    assert!(
        at_rail.order_erased && at_rail.order.is_none(),
        "{at_rail:?}"
    );
    // A later save keeps it erased (it is never rebuilt from live KYC).
    let c2 = store
        .claim(
            "b",
            1,
            Utc::now() + Duration::hours(1),
            Duration::seconds(30),
        )
        .await
        .expect("claim")
        .remove(0);
    let mut p = c2.payout.clone();
    p.last_error = Some("x".into());
    store
        .save(&c2.claim, PayoutState::Submitted, &p, None)
        .await
        .expect("save");
    let again = PayoutLedger::get(&store, &t)
        .await
        .expect("get")
        .expect("entry");
    assert!(again.at_rail().is_some_and(|r| r.order_erased));
}

async fn the_wrong_key_is_refused_and_changes_nothing(db: TestDb) {
    let right = DataKey::generate();
    let (store, unlocked) = connected(&db)
        .await
        .unlock(ring(&right, &[]))
        .await
        .expect("unlock");
    assert!(unlocked.check_created);
    let c = store.put(put_receiver()).await.expect("put");
    let before = raw_cells(&store).await;

    let wrong = connected(&db)
        .await
        .unlock(ring(&DataKey::generate(), &[]))
        .await;
    let Err(StoreError::WrongKey(message)) = wrong else {
        panic!("the wrong key was accepted");
    };
    assert!(message.contains("pii.key"), "{message}");
    assert_eq!(raw_cells(&store).await, before, "nothing changed");
    // The right key still opens everything.
    let (again, unlocked) = connected(&db)
        .await
        .unlock(ring(&right, &[]))
        .await
        .expect("unlock");
    assert!(!unlocked.check_created);
    assert_eq!(KycStore::get(&again, &c.id).await.expect("get"), Some(c));
}

async fn plaintext_of_an_earlier_version_is_sealed_at_the_first_unlock(db: TestDb) {
    let store = connected(&db).await;
    let now = Utc::now().naive_utc();
    store
        .with_connection(move |c| {
            use mooring_store::schema::{customer_fields, customer_files, customers};
            diesel::insert_into(customers::table)
                .values((
                    customers::id.eq("5e4de000-0000-4000-8000-000000000001"),
                    customers::account.eq(ACCOUNT),
                    customers::memo.eq(""),
                    customers::review.eq("pending"),
                    customers::created_at.eq(now),
                    customers::updated_at.eq(now),
                ))
                .execute(c)?;
            diesel::insert_into(customer_fields::table)
                .values((
                    customer_fields::customer_id.eq("5e4de000-0000-4000-8000-000000000001"),
                    customer_fields::name.eq("bank_account_number"),
                    customer_fields::legacy_value.eq(BANK),
                    customer_fields::updated_at.eq(now),
                ))
                .execute(c)?;
            diesel::insert_into(customer_files::table)
                .values((
                    customer_files::customer_id.eq("5e4de000-0000-4000-8000-000000000001"),
                    customer_files::name.eq("photo_id_front"),
                    customer_files::legacy_content.eq(PHOTO),
                    customer_files::size_bytes.eq(PHOTO.len() as i64),
                    customer_files::updated_at.eq(now),
                ))
                .execute(c)
        })
        .await
        .expect("legacy rows");
    let (store, unlocked) = store
        .unlock(ring(&DataKey::generate(), &[]))
        .await
        .expect("unlock");
    assert_eq!((unlocked.sealed_fields, unlocked.sealed_files), (1, 1));
    assert_no_plaintext(&raw_cells(&store).await, "a column");
    let c = KycStore::get(
        &store,
        &CustomerId::parse("5e4de000-0000-4000-8000-000000000001").expect("id"),
    )
    .await
    .expect("get")
    .expect("customer");
    assert_eq!(
        c.fields.get("bank_account_number"),
        Some(&ProvidedValue::Text(BANK.into()))
    );
}

async fn after_a_rotation_the_new_key_alone_opens_everything(db: TestDb) {
    let (old, new) = (DataKey::generate(), DataKey::generate());
    let (store, _) = connected(&db)
        .await
        .unlock(ring(&old, &[]))
        .await
        .expect("unlock");
    let mut ids = Vec::new();
    for n in 0..3 {
        let mut put = put_receiver();
        if let CustomerTarget::Account { memo, .. } = &mut put.target {
            *memo = Some(Memo::parse(&format!("{n}"), Some("id")).expect("memo"));
        }
        ids.push(store.put(put).await.expect("put").id);
    }
    // Without the old key among the previous ones, the new key is refused.
    assert!(matches!(
        connected(&db).await.unlock(ring(&new, &[])).await,
        Err(StoreError::WrongKey(_))
    ));
    let (rotating, _) = connected(&db)
        .await
        .unlock(ring(&new, &[&old]))
        .await
        .expect("unlock with the old key as previous");
    let mut rewrapped = 0;
    loop {
        let step = rotating.rotate_keys().await.expect("rotate");
        rewrapped += step.rewrapped;
        if step.left == 0 {
            break;
        }
    }
    assert_eq!(rewrapped, 3);
    // Resumable: a second run finds nothing left.
    let step = rotating.rotate_keys().await.expect("rotate again");
    assert_eq!((step.rewrapped, step.left), (0, 0));
    // The new key alone; the old one alone is refused now.
    let (after, _) = connected(&db)
        .await
        .unlock(ring(&new, &[]))
        .await
        .expect("new key");
    for id in &ids {
        let c = KycStore::get(&after, id)
            .await
            .expect("get")
            .expect("customer");
        assert_eq!(
            c.fields.get("bank_account_number"),
            Some(&ProvidedValue::Text(BANK.into()))
        );
    }
    assert!(matches!(
        connected(&db).await.unlock(ring(&old, &[])).await,
        Err(StoreError::WrongKey(_))
    ));
}

#[tokio::test]
async fn a_store_never_unlocked_refuses_customer_data() {
    let db = TestDb::sqlite();
    let store = connected(&db).await;
    let e = store.put(put_receiver()).await.expect_err("locked");
    assert!(e.to_string().contains("locked"), "{e}");
}

/// A replica never seals with a key it remembers but whose row is gone
/// (deleted on another replica, or rolled back): the key in the table wins.
async fn a_remembered_key_whose_row_is_gone_is_never_used(db: TestDb) {
    let key = DataKey::generate();
    let (a, _) = connected(&db)
        .await
        .unlock(ring(&key, &[]))
        .await
        .expect("a");
    let (b, _) = connected(&db)
        .await
        .unlock(ring(&key, &[]))
        .await
        .expect("b");
    let c = a.put(put_receiver()).await.expect("put");
    assert!(
        KycStore::get(&a, &c.id).await.expect("get").is_some(),
        "a remembers the key"
    );
    b.delete(&c.id).await.expect("deleted on b");
    // a freezes an order for the receiver (its step read them before the
    // deletion): sealed under a key that is in the table, so b reads it.
    let t = freeze_order_for(&a, c.id.as_str()).await;
    let read = PayoutLedger::get(&b, &t)
        .await
        .expect("get")
        .expect("entry");
    assert_eq!(
        read.order().map(|o| o.receiver_fields.len()),
        Some(2),
        "{read:?}"
    );
}

/// A frozen order an earlier version kept for a receiver since deleted is
/// erased at the first unlock, not sealed under a key made for it.
async fn an_earlier_versions_order_for_a_deleted_receiver_is_erased(db: TestDb) {
    let store = connected(&db).await;
    let now = Utc::now();
    store
        .with_connection(move |c| {
            use mooring_store::schema::payouts;
            diesel::insert_into(payouts::table)
                .values((
                    payouts::transaction_id.eq("old-1"),
                    payouts::state.eq("submitted"),
                    payouts::attempt.eq(1),
                    payouts::receiver_id.eq("5e4de000-0000-4000-8000-0000000000aa"),
                    payouts::told_pending.eq(0),
                    payouts::failures.eq(0),
                    payouts::claim_token.eq(0_i64),
                    payouts::created_at.eq(now.naive_utc()),
                    payouts::updated_at.eq(now.naive_utc()),
                    payouts::due_at.eq(now.naive_utc()),
                    payouts::submitted_at.eq(Some(now.naive_utc())),
                    payouts::legacy_order.eq(Some(format!(
                        r#"{{"idempotency_key":"old-1","transaction_id":"old-1","amount":"1","asset":"iso4217:BRL","delivery_method":null,"receiver_id":"x","receiver_fields":[["bank_account_number","{BANK}"]]}}"#
                    ))),
                ))
                .execute(c)
        })
        .await
        .expect("legacy row");
    let (store, unlocked) = store
        .unlock(ring(&DataKey::generate(), &[]))
        .await
        .expect("unlock");
    assert_eq!(unlocked.sealed_orders, 1);
    assert_no_plaintext(&raw_cells(&store).await, "a column");
    let entry = PayoutLedger::get(&store, &TransactionId::parse("old-1").expect("id"))
        .await
        .expect("get")
        .expect("entry");
    assert!(entry.at_rail().is_some_and(|r| r.order_erased), "{entry:?}");
    let keys: i64 = store
        .with_connection(|c| {
            mooring_store::schema::data_keys::table
                .count()
                .get_result(c)
        })
        .await
        .expect("count");
    assert_eq!(keys, 0, "no key made for a customer who is gone");
}

on_both_backends!(
    a_remembered_key_whose_row_is_gone_is_never_used,
    an_earlier_versions_order_for_a_deleted_receiver_is_erased,
    nothing_of_a_customer_is_stored_in_plaintext_and_erasure_destroys_the_key,
    the_wrong_key_is_refused_and_changes_nothing,
    plaintext_of_an_earlier_version_is_sealed_at_the_first_unlock,
    after_a_rotation_the_new_key_alone_opens_everything,
);
