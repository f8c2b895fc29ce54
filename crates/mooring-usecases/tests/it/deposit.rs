use std::sync::Arc;

use mooring_usecases::{DepositError, DepositService, NoCustodian};

use crate::fakes::{FakeCustodian, FakeDepositAddresses};

#[tokio::test]
async fn the_first_address_is_kept_and_the_custodian_asked_once() {
    let custodian = Arc::new(FakeCustodian::default());
    let deposits =
        DepositService::new(custodian.clone(), Arc::new(FakeDepositAddresses::default()));
    let first = deposits.unique_address("txn-1").await.expect("address");
    assert_eq!(
        deposits.unique_address("txn-1").await.expect("address"),
        first
    );
    assert_eq!(*custodian.calls.lock().expect("lock"), 1);
    assert_ne!(
        deposits.unique_address("txn-2").await.expect("address"),
        first
    );
}

#[tokio::test]
async fn bad_ids_and_a_missing_custodian() {
    let deposits = DepositService::new(
        Arc::new(NoCustodian),
        Arc::new(FakeDepositAddresses::default()),
    );
    assert!(matches!(
        deposits.unique_address("").await,
        Err(DepositError::BadRequest(_))
    ));
    assert!(matches!(
        deposits.unique_address(&"x".repeat(300)).await,
        Err(DepositError::BadRequest(_))
    ));
    let missing = deposits.unique_address("txn-1").await;
    assert!(
        matches!(missing, Err(DepositError::Unavailable(m)) if m.contains("distribution_account"))
    );
}
