//! The ports' contract suites against the in-memory fakes (the store's
//! tests run the same suites against the real adapters, on both backends).

use std::sync::Arc;

use chrono::{Duration, Utc};
use mooring_domain::transaction::{Amount, Transaction, TransactionId, TransactionStatus};
use mooring_testsupport::contract;

use crate::fakes::{FakeDepositAddresses, FakeKycStore, FakeLedger, FakePlatform, TestClock};

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
async fn the_fake_kyc_store_keeps_the_field_review_contract() {
    contract::kyc_field_review(&FakeKycStore::default()).await;
}

#[tokio::test]
async fn the_fake_deposit_addresses_keep_their_contract() {
    contract::deposit_addresses(&FakeDepositAddresses::default()).await;
}

/// The fake AP, creating transactions as AP 2.x (`pending_sender`) or
/// 3.x+ (`pending_receiver`, unfunded) does.
struct FakeAp {
    platform: FakePlatform,
    v3: bool,
}

impl contract::ApUnderTest for FakeAp {
    fn create(&self, id: &str, amount: &Amount) {
        let now = Utc::now();
        self.platform.insert(Transaction {
            id: TransactionId::parse(id).expect("id"),
            sep: "31".into(),
            kind: Some("receive".into()),
            status: if self.v3 {
                TransactionStatus::PendingReceiver
            } else {
                TransactionStatus::PendingSender
            },
            amount_expected: Some(amount.clone()),
            amount_in: None,
            amount_out: None,
            fee: None,
            quote_id: None,
            sender_id: Some("sender".into()),
            receiver_id: Some("receiver".into()),
            started_at: Some(now),
            updated_at: Some(now),
            transfer_received_at: None,
            completed_at: None,
            stellar_transaction_ids: vec![],
            external_transaction_id: None,
            message: None,
            unreadable: vec![],
        });
    }

    fn pay(&self, id: &str) {
        let expected = self.platform.tx(id).amount_expected.expect("expected");
        self.platform.fund(id, expected, Utc::now());
    }
}

#[tokio::test]
async fn the_fake_platform_keeps_the_aps_rules_as_2x_creates_transactions() {
    let ap = FakeAp {
        platform: FakePlatform::default(),
        v3: false,
    };
    contract::platform_client(&ap.platform, &ap, "v2").await;
}

#[tokio::test]
async fn the_fake_platform_keeps_the_aps_rules_as_3x_creates_transactions() {
    let ap = FakeAp {
        platform: FakePlatform::default(),
        v3: true,
    };
    contract::platform_client(&ap.platform, &ap, "v3").await;
}
