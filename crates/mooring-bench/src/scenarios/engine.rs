//! Payouts per second end to end, against the simulator: every payment
//! paid exactly once through its provider and completed at the AP.

use std::path::Path;
use std::time::{Duration, Instant};

use mooring_apsim::{SimAuth, Simulator};
use serde_json::{Value, json};

use mooring_testsupport::TestDb;

use super::server::{Mooring, base_env, watch_rss};
use super::{ACCOUNT, Report, Timing, USDC, db};

/// Payouts per second end to end on each backend.
pub(super) async fn engine(bin: &Path, t: &Timing, report: &mut Report) -> anyhow::Result<()> {
    for backend in ["sqlite", "postgres"] {
        let target = if backend == "sqlite" { 2000.0 } else { 1200.0 };
        let rate = payouts(bin, backend, &db(backend), t.payouts, report, "").await?;
        report.target(
            &format!(
                "payouts end to end against the simulator, {backend} ({} payments)",
                t.payouts
            ),
            format!("{rate:.0}/s, each paid exactly once"),
            &format!("≥ {target:.0}/s, exactly once"),
            rate >= target,
        );
    }
    Ok(())
}

/// Payouts per second end to end on `db`: the simulator's payments
/// received at once, paid through its provider, completed at the AP; an
/// error unless each was paid exactly once. `label` tells the figure apart.
pub(super) async fn payouts(
    bin: &Path,
    backend: &str,
    db: &TestDb,
    count: usize,
    report: &mut Report,
    label: &str,
) -> anyhow::Result<f64> {
    {
        eprintln!("bench: payment engine on {backend}{label}");
        let sim = mooring_apsim::spawn(Simulator::new(false), SimAuth::None)?;
        let mut env = base_env(db);
        env.retain(|(k, _)| {
            k != "MOORING__PLATFORM__ENABLED" && k != "MOORING__DATABASE__POOL_SIZE"
        });
        env.extend(
            [
                ("MOORING__PLATFORM__ENABLED", "true"),
                ("MOORING__PLATFORM__API", "rest"),
                ("MOORING__PLATFORM__POLL_INTERVAL_MS", "50"),
                ("MOORING__PLATFORM__PAGE_SIZE", "200"),
                ("MOORING__PAYOUT__RAIL", "http"),
                ("MOORING__PAYOUT__CONCURRENCY", "64"),
                ("MOORING__DATABASE__POOL_SIZE", "16"),
            ]
            .map(|(k, v)| (k.to_owned(), v.to_owned())),
        );
        env.push(("PLATFORM_API_BASE_URL".into(), sim.url.clone()));
        env.push(("MOORING__PAYOUT__HTTP__URL".into(), sim.rail_url()));
        let server = Mooring::start(bin, &env).await?;
        let receiver: Value = reqwest::Client::new()
            .put(server.url("/customer"))
            .json(&json!({"account": ACCOUNT, "memo": "7", "memo_type": "id", "type": "sep31-receiver",
                "first_name": "Maria", "last_name": "Silva", "email_address": "maria@example.com",
                "bank_account_number": "0001234567", "bank_account_type": "checking", "bank_number": "341"}))
            .send()
            .await?
            .json()
            .await?;
        let receiver = receiver["id"].as_str().unwrap_or_default().to_owned();
        let sender: Value = reqwest::Client::new()
            .put(server.url("/customer"))
            .json(
                &json!({"account": ACCOUNT, "memo": "8", "memo_type": "id", "type": "sep31-sender",
                "first_name": "Ana", "last_name": "Costa", "email_address": "ana@example.com"}),
            )
            .send()
            .await?
            .json()
            .await?;
        let sender = sender["id"].as_str().unwrap_or_default().to_owned();
        let ids: Vec<String> = (0..count)
            .map(|_| {
                sim.sim.create(json!({
                    "amount_expected": {"amount": "100", "asset": USDC},
                    "amount_in": {"amount": "100", "asset": USDC},
                    "amount_out": {"amount": "99", "asset": USDC},
                    "amount_fee": {"amount": "1", "asset": USDC},
                    "customers": {"sender": {"id": sender}, "receiver": {"id": receiver}},
                }))
            })
            .collect();
        let (stop, peak) = watch_rss(server.child.id());
        let started = Instant::now();
        for id in &ids {
            sim.sim.receive(id, None);
        }
        let deadline = started + Duration::from_secs(300);
        // Asking only about those not completed yet, so that the waiting
        // costs the simulator (and the shared cores) less as it goes.
        let mut pending = ids.clone();
        let completed = loop {
            pending = sim.sim.not_in(&pending, "completed");
            if pending.is_empty() || Instant::now() > deadline {
                break ids.len() - pending.len();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let elapsed = started.elapsed();
        let _ = stop.send(true);
        let rss = peak
            .await?
            .ok_or_else(|| anyhow::anyhow!("the server's RSS could not be read"))?;
        let mut per_tx = std::collections::BTreeMap::<String, usize>::new();
        for p in sim.sim.payouts() {
            *per_tx.entry(p.transaction_id).or_default() += 1;
        }
        let exactly_once =
            completed == ids.len() && ids.iter().all(|id| per_tx.get(id) == Some(&1));
        let rate = completed as f64 / elapsed.as_secs_f64();
        report.figures.insert(
            format!("{backend}{label}_engine"),
            json!({"payments": ids.len(), "completed": completed, "seconds": elapsed.as_secs_f64(),
                   "payouts_per_s": rate, "exactly_once": exactly_once, "peak_rss_kib": rss}),
        );
        anyhow::ensure!(
            exactly_once,
            "{completed} of {} payments completed; {} not paid exactly once",
            ids.len(),
            ids.iter().filter(|id| per_tx.get(*id) != Some(&1)).count()
        );
        Ok(rate)
    }
}
