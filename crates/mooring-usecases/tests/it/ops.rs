//! Readiness and the gauges against fake ports.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::Duration;
use mooring_domain::AssetId;
use mooring_domain::payout::{PayoutState, Sighting};
use mooring_domain::quote::{QuoteKind, Requested};
use mooring_domain::transaction::TransactionId;
use mooring_ports::{Clock, EventStore, InboxEvent, PayoutLedger, ReadinessCheck};
use mooring_usecases::{
    DepositService, EngineConfig, EngineParts, EventInbox, KycService, Operations, PayoutEngine,
};

use crate::fakes::{
    FakeCustodian, FakeDepositAddresses, FakeKycStore, FakeLedger, FakePlatform, FakeRail,
};
use crate::quotes::{d, request};

struct Check(&'static str, Result<(), String>);

#[async_trait]
impl ReadinessCheck for Check {
    fn name(&self) -> &'static str {
        self.0
    }

    async fn check(&self) -> Result<(), String> {
        self.1.clone()
    }
}

#[tokio::test]
async fn ready_only_when_every_check_passes_and_each_is_reported() {
    let q = crate::quotes::world(&[]);
    let fake = Arc::new(FakeLedger::default());
    let ledger: Arc<dyn PayoutLedger> = fake.clone();
    let ops = |checks: Vec<Arc<dyn ReadinessCheck>>| {
        Operations::new(
            checks,
            ledger.clone(),
            EventInbox::new(fake.clone()),
            q.quotes.clone(),
            None,
            q.clock.clone(),
        )
    };

    let ready = ops(vec![
        Arc::new(Check("store", Ok(()))),
        Arc::new(Check("migrations", Ok(()))),
    ])
    .readiness()
    .await;
    assert!(ready.is_ready());
    assert_eq!(ready.checks.len(), 2);

    let not = ops(vec![
        Arc::new(Check("store", Ok(()))),
        Arc::new(Check("platform", Err("connection refused".into()))),
    ])
    .readiness()
    .await;
    assert!(!not.is_ready());
    assert_eq!(
        not.checks,
        vec![
            ("store", Ok(())),
            ("platform", Err("connection refused".to_owned()))
        ]
    );
}

#[tokio::test]
async fn gauges_count_payouts_events_reservations_and_the_poll_lag() {
    let q = crate::quotes::world(&[("iso4217:BRL", "100000")]);
    let clock = q.clock.clone();
    let ledger = Arc::new(FakeLedger::default());
    let now = clock.now();
    for (id, sighting) in [
        ("a", Sighting::Funded),
        ("b", Sighting::Funded),
        ("c", Sighting::Unfunded),
    ] {
        ledger
            .sight(&TransactionId::parse(id).expect("id"), sighting, now)
            .await
            .expect("sight");
    }
    ledger
        .accept_event(&InboxEvent {
            id: "e1".into(),
            kind: "transaction_created".into(),
            occurred_at: now,
            received_at: now,
            transaction_id: None,
            sighting: None,
            customer_id: None,
            body: "{}".into(),
        })
        .await
        .expect("accept");
    let firm = q
        .quotes
        .rate(request(QuoteKind::Firm, Requested::Buy(d("500"))))
        .await
        .expect("firm quote");
    let kyc = KycService::new(
        Arc::new(FakeKycStore::default()),
        mooring_domain::customer::CustomerTypes::builtin(),
        mooring_domain::customer::ReviewMode::Auto,
        mooring_usecases::AuditTrail::new(
            Arc::new(crate::fakes::FakeAuditLog::default()),
            clock.clone(),
        ),
        clock.clone(),
    );
    let engine = PayoutEngine::new(
        EngineParts {
            audit: kyc.audit().clone(),
            platform: Arc::new(FakePlatform::default()),
            ledger: ledger.clone(),
            events: ledger.clone(),
            marks: ledger.clone(),
            rail: Arc::new(FakeRail::default()),
            kyc,
            quotes: q.quotes.clone(),
            deposits: DepositService::new(
                Arc::new(FakeCustodian::default()),
                Arc::new(FakeDepositAddresses::default()),
            ),
            clock: clock.clone(),
        },
        EngineConfig::new("a".into()),
    );
    let ops = Operations::new(
        vec![],
        ledger.clone(),
        EventInbox::new(ledger.clone()),
        q.quotes.clone(),
        Some(engine.clone()),
        clock.clone(),
    );

    let before = ops.gauges().await.expect("gauges");
    assert_eq!(before.poll_lag, None, "no poll yet");
    assert_eq!(
        before.payouts.len(),
        PayoutState::ALL.len(),
        "zeros included"
    );
    assert!(before.payouts.contains(&(PayoutState::Received, 2)));
    assert!(before.payouts.contains(&(PayoutState::New, 1)));
    assert!(before.payouts.contains(&(PayoutState::Completed, 0)));
    assert_eq!(before.inbox_depth, 1);
    let brl = AssetId::parse("iso4217:BRL").expect("asset");
    assert_eq!(
        before.reservations,
        vec![(brl, firm.priced.buy_amount, Some(d("100000")))]
    );

    engine.poll().await.expect("poll");
    // Within five seconds the gauges are the ones read before (one read
    // per interval, whoever scrapes).
    clock.advance(Duration::seconds(2));
    assert_eq!(ops.gauges().await.expect("gauges"), before);
    clock.advance(Duration::seconds(5));
    assert_eq!(
        ops.gauges().await.expect("gauges").poll_lag,
        Some(Duration::seconds(7))
    );
}
