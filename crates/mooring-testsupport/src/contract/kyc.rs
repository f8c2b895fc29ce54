//! The KYC store's contract: re-uploads, approvals and a reviewer's field
//! rejections, run against the real store on both backends and the fake.

use chrono::{Duration, Utc};
use mooring_domain::customer::{CustomerId, Review};
use mooring_domain::{Memo, StellarAccount};
use mooring_ports::{FileUpload, KycStore, KycStoreError, PutCustomer};

use super::ACCOUNT;

/// The KYC store: an identical re-upload is no change (an approval stays),
/// a different one lapses the approval.
pub async fn kyc_store(store: &impl KycStore) {
    let now = Utc::now();
    let file = |content: &[u8]| FileUpload {
        content: content.to_vec(),
        content_type: Some("image/png".into()),
    };
    let put = |files: Vec<(String, Option<FileUpload>)>, target| PutCustomer {
        target,
        customer_type: Some("sep31-receiver".into()),
        text: vec![("first_name".into(), Some("Maria".into()))],
        files,
        transaction_id: None,
        now,
    };
    let account = StellarAccount::parse(ACCOUNT).expect("account");
    let created = store
        .put(put(
            vec![("photo_id_front".into(), Some(file(b"front")))],
            mooring_ports::CustomerTarget::Account {
                account,
                memo: Some(Memo::parse("77", None).expect("memo")),
                new_id: CustomerId::generate(),
            },
        ))
        .await
        .expect("put");
    let approved = store
        .set_review(&created.id, Review::Approved, None, now)
        .await
        .expect("approve");
    assert_eq!(approved.review, Review::Approved);
    let again = store
        .put(put(
            vec![("photo_id_front".into(), Some(file(b"front")))],
            mooring_ports::CustomerTarget::Id(created.id.clone()),
        ))
        .await
        .expect("put");
    assert_eq!(
        again.review,
        Review::Approved,
        "an identical re-upload changes nothing"
    );
    let changed = store
        .put(put(
            vec![("photo_id_front".into(), Some(file(b"another")))],
            mooring_ports::CustomerTarget::Id(created.id.clone()),
        ))
        .await
        .expect("put");
    assert_ne!(
        changed.review,
        Review::Approved,
        "a different file lapses the approval"
    );
}

/// A reviewer's field rejection: fenced by the version seen, kept until a
/// new value replaces the one rejected (an identical one does not), cleared
/// by an approval; refused for a field not provided.
pub async fn kyc_field_review(store: &impl KycStore) {
    let t0 = Utc::now();
    let at = |s: i64| t0 + Duration::seconds(s);
    let put = |text: &str, target, now| PutCustomer {
        target,
        customer_type: Some("sep31-receiver".into()),
        text: vec![("first_name".into(), Some(text.to_owned()))],
        files: vec![(
            "photo_id_front".into(),
            Some(FileUpload {
                content: b"front".to_vec(),
                content_type: Some("image/png".into()),
            }),
        )],
        transaction_id: None,
        now,
    };
    let created = store
        .put(put(
            "Maria",
            mooring_ports::CustomerTarget::Account {
                account: StellarAccount::parse(ACCOUNT).expect("account"),
                memo: Some(Memo::parse("78", None).expect("memo")),
                new_id: CustomerId::generate(),
            },
            t0,
        ))
        .await
        .expect("put");
    let id = created.id.clone();
    assert!(created.rejected_fields.is_empty());

    let stale = Some(created.updated_at - Duration::seconds(1));
    assert!(matches!(
        store
            .reject_field(&id, "first_name", "blurred", stale, at(1))
            .await,
        Err(KycStoreError::Changed)
    ));
    assert!(matches!(
        store
            .reject_field(&id, "last_name", "blurred", None, at(1))
            .await,
        Err(KycStoreError::NoSuchField)
    ));
    assert!(matches!(
        store
            .reject_field(&CustomerId::generate(), "first_name", "x", None, at(1))
            .await,
        Err(KycStoreError::NotFound)
    ));
    let rejected = store
        .reject_field(
            &id,
            "first_name",
            "does not match the ID",
            Some(created.updated_at),
            at(1),
        )
        .await
        .expect("rejected");
    assert_eq!(
        rejected
            .rejected_fields
            .get("first_name")
            .map(String::as_str),
        Some("does not match the ID")
    );
    let rejected = store
        .reject_field(
            &id,
            "photo_id_front",
            "too dark",
            Some(rejected.updated_at),
            at(2),
        )
        .await
        .expect("a file is rejected too");
    let read = store.get(&id).await.expect("get").expect("there");
    assert_eq!(read.rejected_fields, rejected.rejected_fields);
    assert_eq!(read.rejected_fields.len(), 2);

    // The same values again: nothing new to look at, the rejections stay.
    let same = store
        .put(put(
            "Maria",
            mooring_ports::CustomerTarget::Id(id.clone()),
            at(3),
        ))
        .await
        .expect("put");
    assert_eq!(
        same.rejected_fields.len(),
        2,
        "an identical value is no new value"
    );
    // A new first name clears its rejection; the photo's stays.
    let fixed = store
        .put(put(
            "María",
            mooring_ports::CustomerTarget::Id(id.clone()),
            at(4),
        ))
        .await
        .expect("put");
    let still: Vec<&str> = fixed.rejected_fields.keys().map(String::as_str).collect();
    assert_eq!(still, ["photo_id_front"]);
    assert_eq!(
        store
            .get(&id)
            .await
            .expect("get")
            .expect("there")
            .rejected_fields,
        fixed.rejected_fields
    );

    // An approval on a stale page is refused; on the current one it clears
    // every rejection.
    assert!(matches!(
        store
            .set_review(&id, Review::Approved, Some(rejected.updated_at), at(5))
            .await,
        Err(KycStoreError::Changed)
    ));
    let approved = store
        .set_review(&id, Review::Approved, Some(fixed.updated_at), at(5))
        .await
        .expect("approved");
    assert!(approved.rejected_fields.is_empty());
    assert!(
        store
            .get(&id)
            .await
            .expect("get")
            .expect("there")
            .rejected_fields
            .is_empty()
    );
}
