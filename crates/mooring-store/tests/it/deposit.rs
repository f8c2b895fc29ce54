//! Deposit addresses on both backends: a memo never given twice, the same
//! transaction always the same address, under concurrency.

use std::collections::BTreeSet;
use std::sync::Arc;

use mooring_domain::deposit::{DepositAddress, DepositMemoKind};
use mooring_domain::{Memo, MemoType, StellarAccount};
use mooring_ports::{Custodian, CustodianError, DepositAddressStore};
use mooring_store::SelfCustodian;
use mooring_testsupport::{TestDb, on_both_backends};

use crate::migrated_store;

const DISTRIBUTION: &str = "GBBD47IF6LWK7P7MDEVSCWR7DPUWV3NY3DTQEVFL4NAT4AQH3ZLLFLA5";

fn account() -> StellarAccount {
    StellarAccount::parse(DISTRIBUTION).expect("valid")
}

async fn id_memos_are_sequential_unique_and_stable(db: TestDb) {
    let store = migrated_store(&db).await;
    let custodian = Arc::new(SelfCustodian::new(
        store.clone(),
        account(),
        DepositMemoKind::Id,
    ));
    let first = custodian.deposit_address("txn-1").await.expect("assigned");
    assert_eq!(first.account, account());
    let memo = first.memo.clone().expect("a memo");
    assert_eq!((memo.memo_type(), memo.value()), (MemoType::Id, "1"));
    assert_eq!(
        custodian.deposit_address("txn-1").await.expect("again"),
        first,
        "same transaction, same address"
    );
    assert_eq!(
        custodian
            .deposit_address("txn-2")
            .await
            .expect("assigned")
            .memo
            .map(|m| m.value().to_owned())
            .as_deref(),
        Some("2")
    );
    assert_eq!(
        store.deposit_address_of("txn-1").await.expect("read"),
        Some(first)
    );
    assert_eq!(
        store.deposit_address_of("txn-unknown").await.expect("read"),
        None
    );

    // Many transactions at once: all different memos. One transaction many
    // times at once: one memo.
    let distinct: Vec<_> = (0..16)
        .map(|i| {
            let c = custodian.clone();
            tokio::spawn(async move {
                c.deposit_address(&format!("t-{i}"))
                    .await
                    .expect("assigned")
            })
        })
        .collect();
    let mut memos = BTreeSet::new();
    for t in distinct {
        memos.insert(
            t.await
                .expect("task")
                .memo
                .expect("memo")
                .value()
                .to_owned(),
        );
    }
    assert_eq!(memos.len(), 16);
    let same: Vec<_> = (0..8)
        .map(|_| {
            let c = custodian.clone();
            tokio::spawn(async move { c.deposit_address("t-same").await.expect("assigned") })
        })
        .collect();
    let mut answers = BTreeSet::new();
    for t in same {
        answers.insert(
            t.await
                .expect("task")
                .memo
                .expect("memo")
                .value()
                .to_owned(),
        );
    }
    assert_eq!(answers.len(), 1);
}

async fn hash_memos_are_32_bytes(db: TestDb) {
    let store = migrated_store(&db).await;
    let custodian = SelfCustodian::new(store, account(), DepositMemoKind::Hash);
    let a = custodian
        .deposit_address("txn-a")
        .await
        .expect("assigned")
        .memo
        .expect("memo");
    let b = custodian
        .deposit_address("txn-b")
        .await
        .expect("assigned")
        .memo
        .expect("memo");
    assert_eq!(a.memo_type(), MemoType::Hash);
    assert_ne!(a, b);
    assert!(
        Memo::parse(a.value(), Some("hash")).is_ok(),
        "base64 of 32 bytes"
    );
}

async fn the_first_address_kept_wins_and_no_address_serves_two(db: TestDb) {
    let store = migrated_store(&db).await;
    let address = |memo: &str| DepositAddress {
        account: account(),
        memo: Some(Memo::parse(memo, Some("id")).expect("memo")),
    };
    assert_eq!(
        store
            .keep_first_deposit_address("txn-1", &address("77"))
            .await
            .expect("kept"),
        address("77")
    );
    assert_eq!(
        store
            .keep_first_deposit_address("txn-1", &address("78"))
            .await
            .expect("kept"),
        address("77")
    );
    let reused = store
        .keep_first_deposit_address("txn-2", &address("77"))
        .await;
    assert!(
        matches!(reused, Err(CustodianError::Unavailable(_))),
        "{reused:?}"
    );
    let no_memo = DepositAddress {
        account: account(),
        memo: None,
    };
    store
        .keep_first_deposit_address("txn-3", &no_memo)
        .await
        .expect("a custodian may give bare accounts");
}

on_both_backends!(
    id_memos_are_sequential_unique_and_stable,
    hash_memos_are_32_bytes,
    the_first_address_kept_wins_and_no_address_serves_two,
);
