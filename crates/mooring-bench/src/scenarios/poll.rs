//! The steady-state poll with a small and a large history at the AP,
//! timed in process.

use std::sync::Arc;
use std::time::{Duration, Instant};

use diesel::RunQueryDsl;
use mooring_apsim::{SimAuth, Simulator};
use mooring_store::Store;
use mooring_testsupport::TestDb;
use serde_json::json;

use super::server::store;
use super::{Report, Timing};

/// The steady-state poll (nothing new since the last one) with a small and
/// a large history at the AP, timed in-process: both set up first, then
/// rounds of polls alternating between them (the median round per size),
/// so that drift in the machine's speed hits both alike.
pub(super) async fn poll_growth(t: &Timing, report: &mut Report) -> anyhow::Result<()> {
    eprintln!("bench: poll cost growth");
    let mut setups = Vec::new();
    for history in [1_000, t.poll_history] {
        let sim = mooring_apsim::spawn(Simulator::new(false), SimAuth::None)?;
        sim.sim.seed_history(history);
        let db = TestDb::postgres();
        let store = store(&db).await?;
        store.migrate().await?;
        // The ledger has paid the history (as after the first poll; a
        // `closed` entry is sighted again, by design).
        store
            .with_connection(move |c| {
                diesel::sql_query(format!(
                    "INSERT INTO payouts (transaction_id, state, attempt, told_pending, failures, created_at, updated_at, due_at) \
                     SELECT 'hist-' || lpad(g::text, 7, '0'), 'completed', 1, 0, 0, now()::timestamp, now()::timestamp, now()::timestamp \
                     FROM generate_series(0, {}) AS g",
                    history - 1
                ))
                .execute(c)
            })
            .await?;
        let engine = poll_engine(&sim.url, store);
        anyhow::ensure!(
            engine.poll().await? == 0,
            "the ledger knows the history: nothing is new"
        );
        for _ in 0..100 {
            engine.poll().await?;
        }
        setups.push((history, engine, sim, db));
    }
    let rounds = 7;
    let polls = 150u32;
    let mut per_size: Vec<Vec<f64>> = vec![Vec::new(); setups.len()];
    for _ in 0..rounds {
        for (i, (_, engine, _, _)) in setups.iter().enumerate() {
            let started = Instant::now();
            for _ in 0..polls {
                engine.poll().await?;
            }
            per_size[i].push(started.elapsed().as_secs_f64() * 1e6 / f64::from(polls));
        }
    }
    let medians: Vec<(usize, f64)> = setups
        .iter()
        .zip(per_size.iter_mut())
        .map(|((history, ..), us)| {
            us.sort_by(f64::total_cmp);
            (*history, us[us.len() / 2])
        })
        .collect();
    for (history, us) in &medians {
        eprintln!("bench:   history {history}: {us:.0} µs per poll");
    }
    let cost = medians[1].1 / medians[0].1;
    report.figures.insert(
        "poll_growth".into(),
        json!(
            medians
                .iter()
                .map(|(h, us)| json!({"history": h, "median_us_per_poll": us}))
                .collect::<Vec<_>>()
        ),
    );
    report.target(
        &format!(
            "poll cost at {} vs 1,000 transactions of history (PostgreSQL)",
            t.poll_history
        ),
        format!(
            "{cost:.2}× ({:.0} vs {:.0} µs per poll)",
            medians[1].1, medians[0].1
        ),
        "≤ 1.05×",
        cost <= 1.05,
    );
    Ok(())
}

/// A payment engine over `store` and the simulator at `url` (the poll uses
/// only the platform client and the ledger; the rest is inert).
pub(super) fn poll_engine(url: &str, store: Store) -> mooring_usecases::PayoutEngine {
    use mooring_domain::AssetCatalog;
    use mooring_domain::customer::{CustomerTypes, ReviewMode};
    use mooring_domain::quote::{Pricing, QuoteLifetime};
    use mooring_platform::{ApiStyle, HttpPlatform, PlatformAuth, PlatformConfig};
    use mooring_ports::SystemClock;
    use mooring_usecases::{
        DepositService, EngineConfig, EngineParts, KycService, NoCustodian, QuoteService,
        QuoteServiceParts,
    };
    let platform = HttpPlatform::new(PlatformConfig {
        base_url: url.to_owned(),
        api: ApiStyle::Rest,
        auth: PlatformAuth::None,
        timeout: Duration::from_secs(5),
        max_attempts: 1,
        backoff_base: Duration::from_millis(10),
        backoff_max: Duration::from_millis(10),
    })
    .expect("a platform client");
    let pricing = Pricing::new(vec![], Default::default()).expect("empty pricing");
    let quotes = QuoteService::new(QuoteServiceParts {
        rates: Arc::new(mooring_rates::TableRates::from_pricing(&pricing)),
        pricing,
        assets: AssetCatalog::new([]),
        store: Arc::new(store.clone()),
        lifetime: QuoteLifetime {
            firm_ttl: chrono::Duration::seconds(300),
            max_ttl: chrono::Duration::seconds(3600),
        },
        liquidity: Default::default(),
        clock: Arc::new(SystemClock),
    });
    let kyc = KycService::new(
        Arc::new(store.clone()),
        CustomerTypes::builtin(),
        ReviewMode::Auto,
        mooring_usecases::AuditTrail::new(Arc::new(store.clone()), Arc::new(SystemClock)),
        Arc::new(SystemClock),
    );
    let mut config = EngineConfig::new("bench".into());
    config.page_size = 50;
    let ledger = Arc::new(store.clone());
    mooring_usecases::PayoutEngine::new(
        EngineParts {
            platform: Arc::new(platform),
            ledger: ledger.clone(),
            events: ledger.clone(),
            marks: ledger,
            rail: Arc::new(mooring_rails::SimulatedRail::new(Duration::ZERO, 0.0)),
            audit: kyc.audit().clone(),
            kyc,
            quotes,
            deposits: DepositService::new(Arc::new(NoCustodian), Arc::new(store)),
            clock: Arc::new(SystemClock),
        },
        config,
    )
}
