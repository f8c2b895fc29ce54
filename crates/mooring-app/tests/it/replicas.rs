//! Several `mooring` processes on one PostgreSQL database share the work:
//! two thousand payments, three replicas, one killed (SIGKILL) and
//! restarted mid-run, the AP failing a third of its calls, the rail losing
//! some answers. Every transaction is paid exactly once and completed.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use mooring_apsim::{Faults, SimAuth, Simulator, spawn};
use mooring_testsupport::TestDb;

use crate::engine::{assert_paid_once, engine_env, receiver, transaction, wait_for};
use crate::helpers::{base_env, spawn_app};

const PAYMENTS: usize = 2000;

fn replica(env: &[(String, String)]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_mooring"))
        .envs(env.iter().cloned())
        .env("MOORING__LOG__LEVEL", "warn")
        .env("MOORING__BACKOFFICE__BIND", "127.0.0.1:0")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("mooring starts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_pay_two_thousand_payments_exactly_once_through_a_kill() {
    let sim = spawn(Simulator::new(false), SimAuth::None).expect("simulator");
    sim.sim.set_faults(Faults {
        fail_every: 3,
        rail_lose_every: 7,
        ..Faults::default()
    });
    // One server in-process for the KYC (its engine off), three replicas.
    let app = spawn_app(TestDb::postgres()).await;
    let receiver = receiver(&app, "42", true).await;
    let mut env: Vec<(String, String)> = base_env(&app.db).into_iter().collect();
    env.extend(engine_env(&sim, "rest"));
    env.push(("MOORING__PAYOUT__CONCURRENCY".into(), "16".into()));
    env.push(("MOORING__DATABASE__POOL_SIZE".into(), "6".into()));
    let mut replicas: Vec<Child> = (0..3).map(|_| replica(&env)).collect();

    let ids: Vec<String> = (0..PAYMENTS)
        .map(|_| sim.sim.create(transaction(&receiver)))
        .collect();
    for id in &ids {
        assert!(sim.sim.receive(id, None));
    }
    // Kill one replica once a third is done, and start it again.
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        let done = sim.sim.count_in(&ids, "completed");
        if done >= PAYMENTS / 3 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "only {done} completed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    replicas[0].kill().expect("killed");
    replicas[0].wait().expect("reaped");
    replicas[0] = replica(&env);

    wait_for(&sim.sim, &ids, "completed", Duration::from_secs(240)).await;
    for r in &mut replicas {
        let _ = r.kill();
        let _ = r.wait();
    }
    assert_paid_once(&sim.sim, &ids, "99");
    // The AP may hear a completion twice where its answer was lost: the
    // killed replica's steps in flight (at most `concurrency`), or a PATCH
    // that timed out after the AP applied it. PATCH has no transition rules,
    // so the repeat rewrites the same fields; the payout is never repeated.
    let twice = ids
        .iter()
        .filter(|id| {
            sim.sim
                .updates(id)
                .iter()
                .filter(|u| *u == "PATCH completed")
                .count()
                > 1
        })
        .count();
    assert!(twice <= 16, "{twice} transactions were completed twice");
}
