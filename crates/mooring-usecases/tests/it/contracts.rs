//! The ports' contract suites against the in-memory fakes (the store's
//! tests run the same suites against the real adapters, on both backends).

use std::sync::Arc;

use chrono::Duration;
use mooring_testsupport::contract;

use crate::fakes::{FakeDepositAddresses, FakeKycStore, FakeLedger, TestClock};

#[tokio::test]
async fn the_fake_ledger_keeps_the_ledgers_contract() {
    let clock = Arc::new(TestClock::default());
    let ledger = FakeLedger::on_clock(clock.clone());
    let short = Duration::milliseconds(300);
    contract::payout_ledger(&ledger, short, async || {
        clock.advance(short + Duration::milliseconds(150));
    })
    .await;
}

#[tokio::test]
async fn the_fake_kyc_store_keeps_the_kyc_stores_contract() {
    contract::kyc_store(&FakeKycStore::default()).await;
}

#[tokio::test]
async fn the_fake_deposit_addresses_keep_their_contract() {
    contract::deposit_addresses(&FakeDepositAddresses::default()).await;
}
