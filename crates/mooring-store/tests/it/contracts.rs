//! The ports' contract suites against the real store, on both backends
//! (the use cases' tests run the same suites against the fakes).

use chrono::Duration;
use mooring_testsupport::{TestDb, contract, on_both_backends};

use crate::migrated_store;

async fn the_store_keeps_the_ledgers_contract(db: TestDb) {
    let store = migrated_store(&db).await;
    let short = Duration::milliseconds(300);
    contract::payout_ledger(&store, short, async || {
        // The database's clock: only real time moves it.
        tokio::time::sleep(std::time::Duration::from_millis(450)).await;
    })
    .await;
}

async fn the_store_keeps_the_kyc_stores_contract(db: TestDb) {
    contract::kyc_store(&migrated_store(&db).await).await;
}

async fn the_store_keeps_the_field_review_contract(db: TestDb) {
    contract::kyc_field_review(&migrated_store(&db).await).await;
}

async fn the_store_keeps_the_deposit_addresses_contract(db: TestDb) {
    contract::deposit_addresses(&migrated_store(&db).await).await;
}

on_both_backends!(
    the_store_keeps_the_ledgers_contract,
    the_store_keeps_the_kyc_stores_contract,
    the_store_keeps_the_field_review_contract,
    the_store_keeps_the_deposit_addresses_contract
);
