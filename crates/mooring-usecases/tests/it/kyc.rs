use std::sync::Arc;

use mooring_domain::audit::{Actor, AuditAction};
use mooring_domain::customer::{
    CustomerId, CustomerStatus, CustomerTypes, FieldStatus, ReviewMode,
};
use mooring_domain::{Memo, StellarAccount};
use mooring_ports::{AuditQuery, FileUpload};
use mooring_usecases::{AuditTrail, CustomerLookup, CustomerUpdate, KycError, KycService};

use crate::fakes::{FailingAuditLog, FakeAuditLog, FakeKycStore, TestClock, who};

const ACCOUNT: &str = "GDJUOFZGW5WYBK4GIETCSSM6MTTIJ4SUMCQITPTLUWMQ6B4UIX2IEX47";
const OTHER: &str = "GBBD47IF6LWK7P7MDEVSCWR7DPUWV3NY3DTQEVFL4NAT4AQH3ZLLFLA5";

fn service(mode: ReviewMode) -> (KycService, Arc<FakeKycStore>) {
    service_auditing(mode, Arc::new(FakeAuditLog::default()))
}

fn service_auditing(
    mode: ReviewMode,
    audit: Arc<dyn mooring_ports::AuditLog>,
) -> (KycService, Arc<FakeKycStore>) {
    let store = Arc::new(FakeKycStore::default());
    let service = KycService::new(
        store.clone(),
        CustomerTypes::builtin(),
        mode,
        AuditTrail::new(audit, Arc::new(TestClock::default())),
        Arc::new(TestClock::default()),
    );
    (service, store)
}

fn account(a: &str) -> Option<StellarAccount> {
    Some(StellarAccount::parse(a).expect("valid account"))
}

fn memo(m: &str) -> Option<Memo> {
    Some(Memo::parse(m, None).expect("valid memo"))
}

fn sender_fields() -> Vec<(String, String)> {
    [
        ("first_name", "John"),
        ("last_name", "Doe"),
        ("email_address", "john@example.com"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

fn put_by_account(
    memo_value: &str,
    customer_type: &str,
    text: Vec<(String, String)>,
) -> CustomerUpdate {
    CustomerUpdate {
        account: account(ACCOUNT),
        memo: memo(memo_value),
        customer_type: Some(customer_type.to_owned()),
        text,
        ..Default::default()
    }
}

#[tokio::test]
async fn unknown_account_needs_info_without_id() {
    let (kyc, _) = service(ReviewMode::Auto);
    let view = kyc
        .get(CustomerLookup {
            account: account(ACCOUNT),
            memo: memo("1"),
            customer_type: Some("sep31-receiver".into()),
            ..Default::default()
        })
        .await
        .expect("answered");
    assert_eq!(view.id, None);
    assert_eq!(view.assessment.status, CustomerStatus::NeedsInfo);
    assert_eq!(view.assessment.fields.len(), 6);
}

#[tokio::test]
async fn unknown_id_is_not_found() {
    let (kyc, _) = service(ReviewMode::Auto);
    let lookup = CustomerLookup {
        id: Some(CustomerId::generate()),
        ..Default::default()
    };
    assert!(matches!(kyc.get(lookup).await, Err(KycError::NotFound)));
    let update = CustomerUpdate {
        id: Some(CustomerId::generate()),
        text: sender_fields(),
        ..Default::default()
    };
    assert!(matches!(kyc.put(update).await, Err(KycError::NotFound)));
}

#[tokio::test]
async fn neither_id_nor_account_is_a_bad_request() {
    let (kyc, _) = service(ReviewMode::Auto);
    assert!(matches!(
        kyc.get(CustomerLookup::default()).await,
        Err(KycError::BadRequest(_))
    ));
    assert!(matches!(
        kyc.put(CustomerUpdate::default()).await,
        Err(KycError::BadRequest(_))
    ));
}

#[tokio::test]
async fn unknown_type_is_a_bad_request_naming_the_known_ones() {
    let (kyc, _) = service(ReviewMode::Auto);
    let err = kyc
        .put(put_by_account("1", "sep31-banker", sender_fields()))
        .await
        .expect_err("refused");
    let KycError::BadRequest(message) = err else {
        panic!("wrong error: {err:?}")
    };
    assert!(
        message.contains("sep31-banker") && message.contains("sep31-receiver"),
        "{message}"
    );
}

#[tokio::test]
async fn complete_sender_is_accepted_and_found_by_account_and_memo() {
    let (kyc, _) = service(ReviewMode::Auto);
    let put = kyc
        .put(put_by_account("780284017", "sep31-sender", sender_fields()))
        .await
        .expect("stored");
    assert_eq!(put.assessment.status, CustomerStatus::Accepted);
    let id = put.id.expect("an id");
    let got = kyc
        .get(CustomerLookup {
            account: account(ACCOUNT),
            memo: memo("780284017"),
            customer_type: Some("sep31-sender".into()),
            ..Default::default()
        })
        .await
        .expect("found");
    assert_eq!(got.id, Some(id));
    assert_eq!(got.assessment.status, CustomerStatus::Accepted);
}

#[tokio::test]
async fn one_id_per_account_and_memo_whatever_the_type() {
    let (kyc, store) = service(ReviewMode::Auto);
    let first = kyc
        .put(put_by_account("42", "sep31-sender", sender_fields()))
        .await
        .expect("stored");
    let bank = vec![("bank_account_number".to_owned(), "123".to_owned())];
    let second = kyc
        .put(put_by_account("42", "sep31-receiver", bank))
        .await
        .expect("stored");
    assert_eq!(first.id, second.id);
    // The same memo as text is still the same (account, memo).
    let mut as_text = put_by_account("42", "sep31-sender", vec![]);
    as_text.memo = Some(Memo::parse("42", Some("text")).expect("valid"));
    assert_eq!(kyc.put(as_text).await.expect("stored").id, first.id);
    // Another memo is another customer.
    let third = kyc
        .put(put_by_account("43", "sep31-sender", sender_fields()))
        .await
        .expect("stored");
    assert_ne!(third.id, first.id);
    assert_eq!(store.len(), 2);
}

#[tokio::test]
async fn only_the_fields_sent_change_and_empty_clears() {
    let (kyc, _) = service(ReviewMode::Auto);
    let id = kyc
        .put(put_by_account("1", "sep31-sender", sender_fields()))
        .await
        .expect("stored")
        .id;
    let update = CustomerUpdate {
        id: id.clone(),
        text: vec![
            ("last_name".into(), "Roe".into()),
            ("first_name".into(), String::new()),
        ],
        ..Default::default()
    };
    let view = kyc.put(update).await.expect("updated");
    let provided: Vec<_> = view
        .assessment
        .provided
        .iter()
        .map(|f| f.field.name)
        .collect();
    assert_eq!(provided, ["last_name", "email_address"]);
    assert_eq!(view.assessment.status, CustomerStatus::NeedsInfo);
    assert_eq!(
        view.assessment
            .fields
            .iter()
            .map(|f| f.field.name)
            .collect::<Vec<_>>(),
        ["first_name"]
    );
}

#[tokio::test]
async fn id_with_an_account_that_does_not_own_it_is_not_found() {
    let (kyc, _) = service(ReviewMode::Auto);
    let id = kyc
        .put(put_by_account("1", "sep31-sender", sender_fields()))
        .await
        .expect("stored")
        .id;
    for (acct, m) in [(OTHER, Some("1")), (ACCOUNT, Some("2")), (ACCOUNT, None)] {
        let lookup = CustomerLookup {
            id: id.clone(),
            account: account(acct),
            memo: m.and_then(memo),
            ..Default::default()
        };
        assert!(
            matches!(kyc.get(lookup).await, Err(KycError::NotFound)),
            "{acct} {m:?}"
        );
        let update = CustomerUpdate {
            id: id.clone(),
            account: account(acct),
            memo: m.and_then(memo),
            text: vec![("first_name".into(), "Mallory".into())],
            ..Default::default()
        };
        assert!(
            matches!(kyc.put(update).await, Err(KycError::NotFound)),
            "{acct} {m:?}"
        );
    }
    // A memo alone beside the id must be the customer's too.
    let wrong_memo = CustomerLookup {
        id: id.clone(),
        memo: memo("2"),
        ..Default::default()
    };
    assert!(matches!(kyc.get(wrong_memo).await, Err(KycError::NotFound)));
    let right_memo = CustomerLookup {
        id: id.clone(),
        memo: memo("1"),
        ..Default::default()
    };
    assert_eq!(kyc.get(right_memo).await.expect("found").id, id);
    let owner = CustomerLookup {
        id: id.clone(),
        account: account(ACCOUNT),
        memo: memo("1"),
        ..Default::default()
    };
    assert_eq!(kyc.get(owner).await.expect("found").id, id);
}

#[tokio::test]
async fn without_type_the_stored_type_answers() {
    let (kyc, _) = service(ReviewMode::Auto);
    let id = kyc
        .put(put_by_account("1", "sep31-receiver", sender_fields()))
        .await
        .expect("stored")
        .id;
    let view = kyc
        .get(CustomerLookup {
            id: id.clone(),
            ..Default::default()
        })
        .await
        .expect("found");
    // Assessed as a receiver: the bank fields are still missing.
    assert_eq!(view.assessment.status, CustomerStatus::NeedsInfo);
    assert_eq!(view.assessment.fields.len(), 3);
}

#[tokio::test]
async fn manual_review_processing_approve_change_reject() {
    let (kyc, _) = service(ReviewMode::Manual);
    let put = kyc
        .put(put_by_account("1", "sep31-sender", sender_fields()))
        .await
        .expect("stored");
    assert_eq!(put.assessment.status, CustomerStatus::Processing);
    assert!(
        put.assessment
            .provided
            .iter()
            .all(|f| f.status == FieldStatus::Processing)
    );
    let id = put.id.expect("id");
    assert_eq!(
        kyc.approve(&id, None, &who())
            .await
            .expect("approved")
            .assessment
            .status,
        CustomerStatus::Accepted
    );
    // Re-sending the same value changes nothing; a new value needs a new review.
    let same = put_by_account(
        "1",
        "sep31-sender",
        vec![("first_name".into(), "John".into())],
    );
    assert_eq!(
        kyc.put(same).await.expect("stored").assessment.status,
        CustomerStatus::Accepted
    );
    let changed = put_by_account(
        "1",
        "sep31-sender",
        vec![("first_name".into(), "Jon".into())],
    );
    assert_eq!(
        kyc.put(changed).await.expect("stored").assessment.status,
        CustomerStatus::Processing
    );
    let rejected = kyc
        .reject(&id, "document does not match", None, &who())
        .await
        .expect("rejected");
    assert_eq!(rejected.assessment.status, CustomerStatus::Rejected);
    assert_eq!(
        rejected.assessment.message.as_deref(),
        Some("document does not match")
    );
    let again = put_by_account(
        "1",
        "sep31-sender",
        vec![("first_name".into(), "Johnny".into())],
    );
    let after = kyc.put(again).await.expect("stored");
    assert_eq!(after.assessment.status, CustomerStatus::Rejected);
    assert!(matches!(
        kyc.reject(&id, "  ", None, &who()).await,
        Err(KycError::BadRequest(_))
    ));
    assert!(matches!(
        kyc.approve(&CustomerId::generate(), None, &who()).await,
        Err(KycError::NotFound)
    ));
}

#[tokio::test]
async fn files_count_as_provided_and_empty_files_clear() {
    let (kyc, _) = service(ReviewMode::Auto);
    let mut update = put_by_account("1", "sep31-sender", sender_fields());
    update.files = vec![(
        "photo_id_front".into(),
        FileUpload {
            content: vec![0xff, 0xd8, 0xff],
            content_type: Some("image/jpeg".into()),
        },
    )];
    let view = kyc.put(update).await.expect("stored");
    let photo = view
        .assessment
        .provided
        .iter()
        .find(|f| f.field.name == "photo_id_front")
        .expect("provided");
    assert_eq!(photo.status, FieldStatus::Accepted);
    assert!(photo.optional);
    let mut clear = put_by_account("1", "sep31-sender", vec![]);
    clear.files = vec![(
        "photo_id_front".into(),
        FileUpload {
            content: vec![],
            content_type: None,
        },
    )];
    let view = kyc.put(clear).await.expect("stored");
    assert!(
        view.assessment
            .provided
            .iter()
            .all(|f| f.field.name != "photo_id_front")
    );
    let mut misplaced = put_by_account("1", "sep31-sender", vec![]);
    misplaced.files = vec![(
        "first_name".into(),
        FileUpload {
            content: vec![1],
            content_type: None,
        },
    )];
    assert!(matches!(
        kyc.put(misplaced).await,
        Err(KycError::BadRequest(_))
    ));
}

#[tokio::test]
async fn delete_removes_the_customer() {
    let (kyc, store) = service(ReviewMode::Auto);
    let id = kyc
        .put(put_by_account("1", "sep31-sender", sender_fields()))
        .await
        .expect("stored")
        .id
        .expect("id");
    kyc.delete(&id, &who()).await.expect("deleted");
    assert_eq!(store.len(), 0);
    assert!(matches!(
        kyc.delete(&id, &who()).await,
        Err(KycError::NotFound)
    ));
    let view = kyc
        .get(CustomerLookup {
            account: account(ACCOUNT),
            memo: memo("1"),
            ..Default::default()
        })
        .await
        .expect("answered");
    assert_eq!(view.id, None);
}

#[tokio::test]
async fn values_no_store_can_keep_are_bad_requests() {
    let (kyc, store) = service(ReviewMode::Auto);
    let nul = put_by_account(
        "1",
        "sep31-sender",
        vec![("first_name".into(), "a\0b".into())],
    );
    assert!(matches!(kyc.put(nul).await, Err(KycError::BadRequest(_))));
    let mut long = put_by_account("1", "sep31-sender", sender_fields());
    long.transaction_id = Some("t".repeat(mooring_domain::transaction::TransactionId::MAX_LEN + 1));
    assert!(matches!(kyc.put(long).await, Err(KycError::BadRequest(_))));
    assert_eq!(store.len(), 0);
}

#[tokio::test]
async fn transaction_id_links_the_customer() {
    let (kyc, store) = service(ReviewMode::Auto);
    let mut update = put_by_account("1", "sep31-receiver", sender_fields());
    update.transaction_id = Some("txn-1".into());
    let id = kyc.put(update).await.expect("stored").id.expect("id");
    let stored = mooring_ports::KycStore::get(store.as_ref(), &id)
        .await
        .expect("read")
        .expect("present");
    assert_eq!(stored.transaction_ids, ["txn-1"]);
}

async fn trail(kyc: &KycService, id: &CustomerId) -> Vec<(AuditAction, Actor)> {
    kyc.audit()
        .list(AuditQuery {
            customer: Some(id.clone()),
            limit: 100,
            ..Default::default()
        })
        .await
        .expect("listed")
        .into_iter()
        .rev()
        .map(|r| (r.entry.action, r.entry.actor))
        .collect()
}

#[tokio::test]
async fn a_rejected_field_asks_the_customer_again_until_a_new_value_comes() {
    let (kyc, _) = service(ReviewMode::Auto);
    let id = kyc
        .put(put_by_account("1", "sep31-sender", sender_fields()))
        .await
        .expect("stored")
        .id
        .expect("id");
    // Refused with why, and nothing recorded: not a field, not provided,
    // no reason, a stale page.
    for (field, reason) in [
        ("favourite_colour", "blurred"),
        ("photo_id_front", "blurred"),
        ("last_name", "  "),
    ] {
        assert!(
            matches!(
                kyc.reject_field(&id, field, reason, None, &who()).await,
                Err(KycError::BadRequest(_))
            ),
            "{field}"
        );
    }
    let before = kyc.assessment(&id).await.expect("assessed");
    assert_eq!(before.assessment.status, CustomerStatus::Accepted);
    let stale = chrono::DateTime::UNIX_EPOCH;
    assert!(matches!(
        kyc.reject_field(&id, "last_name", "misspelt", Some(stale), &who())
            .await,
        Err(KycError::Changed)
    ));
    assert!(trail(&kyc, &id).await.is_empty());

    let view = kyc
        .reject_field(
            &id,
            "last_name",
            "does not match the passport",
            None,
            &who(),
        )
        .await
        .expect("rejected");
    assert_eq!(view.assessment.status, CustomerStatus::NeedsInfo);
    let last = view
        .assessment
        .provided
        .iter()
        .find(|f| f.field.name == "last_name")
        .expect("provided");
    assert_eq!(
        (last.status, last.error.as_deref()),
        (FieldStatus::Rejected, Some("does not match the passport"))
    );
    assert_eq!(
        trail(&kyc, &id).await,
        [(AuditAction::FieldRejected, who())]
    );
    let entry = &kyc
        .audit()
        .list(AuditQuery {
            customer: Some(id.clone()),
            limit: 1,
            ..Default::default()
        })
        .await
        .expect("listed")[0]
        .entry;
    assert_eq!(
        entry.detail, "field: last_name",
        "the field, never the reason"
    );

    // The same name again changes nothing; a new one is accepted (auto).
    let same = kyc
        .put(put_by_account("1", "sep31-sender", sender_fields()))
        .await
        .expect("stored");
    assert_eq!(same.assessment.status, CustomerStatus::NeedsInfo);
    let mut fields = sender_fields();
    for (name, value) in &mut fields {
        if name == "last_name" {
            *value = "Doe-Smith".into();
        }
    }
    let fixed = kyc
        .put(put_by_account("1", "sep31-sender", fields))
        .await
        .expect("stored");
    assert_eq!(fixed.assessment.status, CustomerStatus::Accepted);
}

#[tokio::test]
async fn each_persons_action_on_a_customer_is_audited_once_done() {
    let (kyc, _) = service(ReviewMode::Manual);
    let id = kyc
        .put(put_by_account("1", "sep31-sender", sender_fields()))
        .await
        .expect("stored")
        .id
        .expect("id");
    assert!(
        trail(&kyc, &id).await.is_empty(),
        "a PUT is the AP's, not a person's"
    );
    kyc.show(&id, &who()).await.expect("shown");
    kyc.approve(&id, None, &who()).await.expect("approved");
    // Refused actions did nothing, so they record nothing.
    assert!(kyc.reject(&id, " ", None, &who()).await.is_err());
    let other = Actor::operator("second", "cli@elsewhere");
    kyc.reject(&id, "the passport is someone else's", None, &other)
        .await
        .expect("rejected");
    let platform = Actor::platform("10.1.2.3");
    kyc.delete(&id, &platform).await.expect("deleted");
    assert!(kyc.delete(&id, &platform).await.is_err());
    assert_eq!(
        trail(&kyc, &id).await,
        [
            (AuditAction::CustomerShown, who()),
            (AuditAction::CustomerApproved, who()),
            (AuditAction::CustomerRejected, other),
            (AuditAction::CustomerDeleted, platform),
        ]
    );
    // No entry holds the reason (free text) or a value.
    let all = kyc
        .audit()
        .list(AuditQuery {
            limit: 100,
            ..Default::default()
        })
        .await
        .expect("listed");
    for r in &all {
        assert!(!r.entry.detail.contains("passport"), "{:?}", r.entry);
        assert!(!r.entry.detail.contains("John"), "{:?}", r.entry);
    }
}

#[tokio::test]
async fn nothing_is_shown_when_the_view_cannot_be_audited_but_an_erasure_stands() {
    let (kyc, store) = service_auditing(ReviewMode::Manual, Arc::new(FailingAuditLog));
    let id = kyc
        .put(put_by_account("1", "sep31-sender", sender_fields()))
        .await
        .expect("stored")
        .id
        .expect("id");
    assert!(
        matches!(kyc.show(&id, &who()).await, Err(KycError::Audit(_))),
        "an unaudited look is refused"
    );
    assert!(
        matches!(
            kyc.approve(&id, None, &who()).await,
            Err(KycError::Audit(_))
        ),
        "the approval is reported as not audited"
    );
    kyc.delete(&id, &who())
        .await
        .expect("the erasure is answered as done");
    assert_eq!(store.len(), 0);
}
