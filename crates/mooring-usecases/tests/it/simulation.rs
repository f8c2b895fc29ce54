//! A deterministic simulation of the payment engine, in the spirit of
//! FoundationDB's and TigerBeetle's: the real engine code runs as several
//! replicas on one current-thread tokio runtime with paused time (one clock
//! the test owns), against a strict fake provider and a faulty fake AP,
//! with every choice drawn from one seeded generator. The faults: replicas
//! crashing inside calls and between steps (their claims left to lapse),
//! clock skew between replicas, slow and lost answers from the rail and the
//! AP, 409s and 401s from the rail, AP 4.2's "-32603 retry", stale,
//! duplicated and reordered sightings, KYC that changes or is deleted
//! mid-payout. The faults last `CHAOS`; then the ones still queued are
//! dropped, and every entry must settle within `QUIET` (liveness). After
//! each run the invariants are checked.
//!
//! `MOORING_SIM_SEEDS` sets how many seeds run (5,000 by default; `cargo
//! xtask sim-test --seeds N`), `MOORING_SIM_SEED` replays one, and
//! `MOORING_SIM_TRACE` prints each transaction's changes as the run goes
//! (`--trace`). A failing seed is printed with the command that replays it.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;
use std::sync::Arc;

use chrono::Duration;
use mooring_domain::customer::{CustomerId, ReviewMode};
use mooring_domain::payout::{PayoutState, Sighting};
use mooring_domain::transaction::{TransactionChange, TransactionStatus};
use mooring_ports::{Clock, PayoutLedger};
use mooring_usecases::{CustomerUpdate, RetryMode};
use tokio::time::{Instant, sleep};

use crate::fakes::{ApFault, RailFault, TokioClock, who};
use crate::payout::{ACCOUNT, SENDER, World, funded_tx, id, usdc, world_on};

/// SplitMix64: small, fast, and the same sequence for the same seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    fn ms(&mut self, lo: u64, hi: u64) -> std::time::Duration {
        std::time::Duration::from_millis(lo + self.below(hi - lo + 1))
    }
}

/// What a transaction of the run is, and so what must become of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Funded, both parties ACCEPTED: must end completed, paid once.
    Good,
    /// Funded, the receiver's bank details change mid-payout: still paid
    /// once, with one body per key.
    KycChanges,
    /// Funded, the receiver deleted at some point: paid at most once.
    ReceiverDeleted,
    /// The sender is REJECTED: never paid.
    RejectedSender,
    /// The receiver is nobody this anchor knows: never paid.
    UnknownReceiver,
    /// The sender paid less than expected: never paid.
    Mismatched,
    /// Never funded: never paid.
    Unfunded,
}

const KINDS: [Kind; 7] = [
    Kind::Good,
    Kind::KycChanges,
    Kind::ReceiverDeleted,
    Kind::RejectedSender,
    Kind::UnknownReceiver,
    Kind::Mismatched,
    Kind::Unfunded,
];

const REJECTED_SENDER: &str = "5e4de000-0000-4000-8000-0000000000ee";
const LEASE_MS: i64 = 3000;
/// How long the faults last, then how long the quiet end may take: the
/// clocks' spread (skew of ±30 s: 60 s) plus backoffs and leases, with room
/// (`docs/payouts.md`, "Due times and skew"; the slowest of 100,000 seeds
/// took 78 s).
const CHAOS: std::time::Duration = std::time::Duration::from_secs(40);
const QUIET: std::time::Duration = std::time::Duration::from_secs(120);

/// How much of the hostile world a run met (so that a run that met none
/// cannot pass for a proof).
#[derive(Debug, Default, Clone, Copy)]
struct Met {
    crashes: u64,
    held_retried: u64,
    rail_calls: u64,
    payouts: u64,
    lies: u64,
    /// The longest a run took to settle once the chaos ended.
    settled: std::time::Duration,
}

struct Sim {
    w: World,
    rng: RefCell<Rng>,
    met: RefCell<Met>,
    txs: Vec<(String, Kind, String)>,
    chaos_until: Instant,
}

impl Sim {
    fn rng(&self) -> std::cell::RefMut<'_, Rng> {
        self.rng.borrow_mut()
    }

    fn chaos(&self) -> bool {
        Instant::now() < self.chaos_until
    }

    /// The chaos ends: the faults still queued are dropped, so that the
    /// quiet end is quiet (queued during 40 s of chaos and drawn one per
    /// call, they once kept the last entry failing for ten minutes).
    fn calm(&self) {
        self.w.rail.faults.lock().expect("lock").clear();
        self.w.platform.update_faults.lock().expect("lock").clear();
        self.w.platform.read_hangs.lock().expect("lock").clear();
        *self.w.platform.reads_down.lock().expect("lock") = 0;
    }

    fn done(&self) -> bool {
        self.txs
            .iter()
            .filter(|(_, k, _)| *k == Kind::Good || *k == Kind::KycChanges)
            .all(|(t, _, _)| self.w.platform.tx(t).status == TransactionStatus::Completed)
            && self.txs.iter().all(|(t, k, _)| {
                *k == Kind::Unfunded
                    || self
                        .w
                        .state(t)
                        .is_some_and(|s| !s.is_active() && s != PayoutState::Held)
            })
    }
}

/// One replica's life: it works, crashes now and then (inside a call or
/// between steps, its claims left to lapse), and comes back with a new name
/// and a skewed clock.
async fn replica(sim: Rc<Sim>, index: usize, until: Instant) {
    let mut generation = 0;
    while Instant::now() < until && !sim.done() {
        let skew = Duration::milliseconds(sim.rng().below(60_000) as i64 - 30_000);
        let clock: Arc<dyn Clock> = Arc::new(TokioClock::new(skew));
        let engine = sim.w.replica_on(&format!("r{index}-{generation}"), clock);
        'life: while Instant::now() < until && !sim.done() {
            let action = sim.rng().below(10);
            match action {
                0 => {
                    let _ = engine.poll().await;
                }
                1 => {
                    let _ = engine.reconcile().await;
                }
                2 => {
                    let _ = engine.apply_events().await;
                }
                _ => {
                    let claimed = engine.claim(4).await.unwrap_or_default();
                    for work in claimed {
                        let crash = sim.chaos() && sim.rng().chance(20);
                        if crash {
                            let after = sim.rng().ms(0, 4000);
                            tokio::select! {
                                biased;
                                _ = engine.run(work) => {}
                                _ = sleep(after) => {
                                    sim.met.borrow_mut().crashes += 1;
                                    break 'life;
                                }
                            }
                        } else {
                            let _ = engine.run(work).await;
                        }
                    }
                }
            }
            let pause = sim.rng().ms(10, 300);
            sleep(pause).await;
        }
        generation += 1;
        let down = sim.rng().ms(0, 3000);
        sleep(down).await;
    }
}

/// The hostile world: faults queued for the AP and the rail, lying
/// sightings, KYC changed and deleted, and an operator who retries held
/// payouts under the same key.
async fn world_outside(sim: Rc<Sim>, until: Instant, trace: Option<Trace>) {
    let mut calm = false;
    while Instant::now() < until && !sim.done() {
        if let Some(trace) = &trace {
            trace.sample(&sim);
        }
        if !sim.chaos() && !calm {
            sim.calm();
            calm = true;
        }
        if sim.chaos() {
            let pick = sim.rng().below(12);
            match pick {
                0 => sim
                    .w
                    .rail
                    .faults
                    .lock()
                    .expect("lock")
                    .push_back(RailFault::Down),
                1 => sim
                    .w
                    .rail
                    .faults
                    .lock()
                    .expect("lock")
                    .push_back(RailFault::AnswerLost),
                2 => sim
                    .w
                    .rail
                    .faults
                    .lock()
                    .expect("lock")
                    .push_back(RailFault::Conflict),
                3 => {
                    let ms = sim.rng().below(6000);
                    sim.w
                        .rail
                        .faults
                        .lock()
                        .expect("lock")
                        .push_back(RailFault::Slow(ms));
                }
                4 => sim
                    .w
                    .rail
                    .faults
                    .lock()
                    .expect("lock")
                    .push_back(RailFault::Unauthorised),
                5 => {
                    let f = [ApFault::Down, ApFault::AnswerLost, ApFault::LockedApplied]
                        [sim.rng().below(3) as usize];
                    sim.w
                        .platform
                        .update_faults
                        .lock()
                        .expect("lock")
                        .push_back(f);
                }
                6 => *sim.w.platform.reads_down.lock().expect("lock") += 1,
                7 => {
                    let ms = sim.rng().below(5000);
                    sim.w
                        .platform
                        .read_hangs
                        .lock()
                        .expect("lock")
                        .push_back(ms);
                }
                8 => {
                    // A lying, stale, duplicated or reordered sighting.
                    let (t, _, _) = &sim.txs[sim.rng().below(sim.txs.len() as u64) as usize];
                    let s = [Sighting::Unfunded, Sighting::Funded, Sighting::Finished]
                        [sim.rng().below(3) as usize];
                    let _ = sim.w.ledger.sight(&id(t), s, sim.w.parts.clock.now()).await;
                    sim.met.borrow_mut().lies += 1;
                }
                9 => {
                    for (t, kind, receiver) in &sim.txs {
                        if *kind == Kind::KycChanges {
                            let number = format!("{:010}", sim.rng().below(10_000_000_000));
                            let _ = sim
                                .w
                                .kyc
                                .put(CustomerUpdate {
                                    id: Some(CustomerId::parse(receiver).expect("id")),
                                    text: vec![("bank_account_number".into(), number)],
                                    ..Default::default()
                                })
                                .await;
                            let _ = t;
                        }
                    }
                }
                10 => {
                    for (_, kind, receiver) in &sim.txs {
                        if *kind == Kind::ReceiverDeleted && sim.rng().chance(30) {
                            let _ = sim
                                .w
                                .kyc
                                .delete(&CustomerId::parse(receiver).expect("id"), &who())
                                .await;
                        }
                    }
                }
                _ => {}
            }
        }
        // The operator: a held payout is sent again under its key.
        if sim.rng().chance(20) {
            let held = sim
                .w
                .engine
                .list(&[PayoutState::Held], 100)
                .await
                .unwrap_or_default();
            for p in held {
                sim.met.borrow_mut().held_retried += 1;
                let _ = sim
                    .w
                    .engine
                    .retry(&p.transaction_id, RetryMode::SameKey, &who())
                    .await;
            }
        }
        let pause = sim.rng().ms(20, 400);
        sleep(pause).await;
    }
    if let Some(trace) = &trace {
        trace.sample(&sim);
    }
}

/// The transactions of a run: one of each kind or more, in a seeded order.
fn setup(seed: u64) -> Sim {
    let db_clock: Arc<dyn Clock> = Arc::new(TokioClock::new(Duration::zero()));
    let w = world_on(ReviewMode::Auto, Some(db_clock.clone()), |c| {
        c.lease = Duration::milliseconds(LEASE_MS);
        c.backoff_base = Duration::milliseconds(100);
        c.backoff_max = Duration::seconds(5);
        c.kyc_recheck = Duration::milliseconds(500);
        c.rail_follow = Duration::milliseconds(200);
        c.page_size = 3;
    });
    let mut rng = Rng(seed);
    let now = db_clock.now();
    w.kyc_store
        .insert_accepted(REJECTED_SENDER, ACCOUNT, "rejected", now);
    let count = 7 + rng.below(5);
    let mut txs = Vec::new();
    for i in 0..count {
        let kind = if i < 7 {
            KINDS[i as usize]
        } else {
            KINDS[rng.below(KINDS.len() as u64) as usize]
        };
        let t = format!("tx{i:02}");
        let receiver = format!("7ece1000-0000-4000-8000-{i:012}");
        if kind != Kind::UnknownReceiver {
            w.kyc_store
                .insert_accepted(&receiver, ACCOUNT, &format!("r{i}"), now);
        }
        let at = now - Duration::seconds(rng.below(120) as i64);
        let mut tx = funded_tx(&t, &receiver, at);
        match kind {
            Kind::RejectedSender => tx.sender_id = Some(REJECTED_SENDER.into()),
            Kind::Mismatched => tx.amount_in = Some(usdc("90")),
            Kind::Unfunded => {
                tx.amount_in = None;
                tx.transfer_received_at = None;
            }
            _ => {}
        }
        w.platform.insert(tx);
        txs.push((t, kind, receiver));
    }
    assert_eq!(SENDER.len(), REJECTED_SENDER.len());
    Sim {
        w,
        rng: RefCell::new(rng),
        met: RefCell::default(),
        txs,
        chaos_until: Instant::now() + CHAOS,
    }
}

/// What a run did, to compare two runs of one seed.
fn fingerprint(sim: &Sim, started: Instant) -> String {
    let mut out = format!("{:?}", Instant::now() - started);
    for (t, _, _) in &sim.txs {
        out += &format!("|{t}:{:?}:{:?}", sim.w.state(t), sim.w.platform.moves(t));
    }
    for o in sim.w.rail.calls() {
        out += &format!("|{}", o.idempotency_key);
    }
    out
}

/// Runs one seed: `Err` names the invariant broken; with what it did.
async fn run(seed: u64) -> (Result<(), String>, String) {
    let (result, trace, _) = run_met(seed, false).await;
    (result, trace)
}

async fn run_met(seed: u64, traced: bool) -> (Result<(), String>, String, Met) {
    let started = Instant::now();
    let sim = Rc::new(setup(seed));
    sim.w
        .kyc
        .reject(
            &CustomerId::parse(REJECTED_SENDER).expect("id"),
            "sanctions screening",
            None,
            &who(),
        )
        .await
        .expect("reject");
    let until = Instant::now() + CHAOS + QUIET;
    let replicas = 2 + sim.rng().below(2) as usize;
    let mut lives = Vec::new();
    for i in 0..replicas {
        lives.push(replica(sim.clone(), i, until));
    }
    let trace = traced.then(Trace::new);
    tokio::join!(
        futures_join_all(lives),
        world_outside(sim.clone(), until, trace)
    );
    let mut met = *sim.met.borrow();
    met.rail_calls = sim.w.rail.calls().len() as u64;
    met.payouts = sim.w.rail.made().len() as u64;
    met.settled = Instant::now().saturating_duration_since(sim.chaos_until);
    (check(&sim), fingerprint(&sim, started), met)
}

/// With `MOORING_SIM_TRACE` set, prints each change of a transaction's
/// state (the ledger's entry and the AP's status), to trace a failing seed.
/// It only reads, and never yields (the fakes answer at once), so a traced
/// run is the run it traces.
struct Trace {
    started: Instant,
    last: RefCell<BTreeMap<String, String>>,
}

impl Trace {
    fn new() -> Self {
        Self {
            started: Instant::now(),
            last: RefCell::default(),
        }
    }

    fn sample(&self, sim: &Sim) {
        let now = sim.w.parts.clock.now();
        for (t, kind, _) in &sim.txs {
            let entry = sim.w.ledger.entry(t);
            let seen = format!(
                "{kind:?} ledger={:?} failures={:?} err={:?} claim={:?} ap={} calls={} made={}",
                entry.as_ref().map(|p| p.state()),
                entry.as_ref().map(|p| p.failures),
                entry.as_ref().and_then(|p| p.last_error.clone()),
                sim.w.ledger.claimed_by(t),
                sim.w.platform.tx(t).status.as_str(),
                sim.w
                    .rail
                    .calls()
                    .iter()
                    .filter(|o| o.transaction_id == *t)
                    .count(),
                sim.w
                    .rail
                    .made()
                    .iter()
                    .filter(|o| o.transaction_id == *t)
                    .count(),
            );
            let mut last = self.last.borrow_mut();
            if last.get(t) != Some(&seen) {
                eprintln!(
                    "{:>9.3}s {t} {seen} due_in={:?}ms",
                    (Instant::now() - self.started).as_secs_f64(),
                    entry.as_ref().map(|p| (p.due_at - now).num_milliseconds()),
                );
                last.insert(t.clone(), seen);
            }
        }
    }
}

/// Polls every future to its end, in order (no spawn: one task, one order).
async fn futures_join_all(futures: Vec<impl std::future::Future<Output = ()>>) {
    let mut futures: Vec<_> = futures.into_iter().map(|f| Some(Box::pin(f))).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for slot in futures.iter_mut() {
            if let Some(f) = slot {
                if f.as_mut().poll(cx).is_ready() {
                    *slot = None;
                } else {
                    pending = true;
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
}

fn check(sim: &Sim) -> Result<(), String> {
    let w = &sim.w;
    let in_flight = *w.rail.most_in_flight.lock().expect("lock");
    if in_flight > 1 {
        return Err(format!(
            "{in_flight} rail calls with one key were in flight at once"
        ));
    }
    let mut made: BTreeMap<String, usize> = BTreeMap::new();
    for order in w.rail.made() {
        *made.entry(order.transaction_id.clone()).or_default() += 1;
    }
    if let Some((t, n)) = made.iter().find(|(_, n)| **n > 1) {
        return Err(format!("{t} was paid {n} times"));
    }
    let mut bodies: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for order in w.rail.calls() {
        bodies
            .entry(order.idempotency_key.clone())
            .or_default()
            .insert(format!("{order:?}|{:?}", order.receiver_fields));
    }
    if let Some((key, b)) = bodies.iter().find(|(_, b)| b.len() > 1) {
        return Err(format!(
            "key {key} was sent with {} different bodies",
            b.len()
        ));
    }
    for (t, kind, _) in &sim.txs {
        let paid = made.contains_key(t);
        let ap = w.platform.tx(t);
        let state = w.state(t);
        let moves = w.platform.moves(t);
        if let Some(i) = moves.iter().position(|m| *m == "funds_sent")
            && moves[i + 1..].iter().any(|m| *m != "funds_sent")
        {
            return Err(format!("{t}: moves after completion: {moves:?}"));
        }
        match kind {
            Kind::Good | Kind::KycChanges => {
                if !paid || ap.status != TransactionStatus::Completed {
                    return Err(format!(
                        "{t} ({kind:?}) ended {} / {state:?}, paid: {paid}",
                        ap.status.as_str()
                    ));
                }
                if state != Some(PayoutState::Completed) {
                    return Err(format!(
                        "{t}: the AP completed it but the ledger says {state:?}"
                    ));
                }
            }
            Kind::ReceiverDeleted => {
                if ap.status == TransactionStatus::Completed && !paid {
                    return Err(format!("{t}: completed at the AP without a payout"));
                }
            }
            Kind::RejectedSender | Kind::UnknownReceiver | Kind::Mismatched | Kind::Unfunded => {
                if paid || w.rail.calls().iter().any(|o| o.transaction_id == *t) {
                    return Err(format!("{t} ({kind:?}) reached the rail"));
                }
                if ap.status == TransactionStatus::Completed {
                    return Err(format!("{t} ({kind:?}) was completed"));
                }
            }
        }
        // What the AP was told about a payout matches what the rail did.
        let applied = w.platform.applied.lock().expect("lock").clone();
        for u in applied.iter().filter(|u| u.id.as_str() == t) {
            if let TransactionChange::OffchainFundsSent { .. } = u.change
                && !paid
            {
                return Err(format!("{t}: the AP was told of a payout never made"));
            }
        }
    }
    Ok(())
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("runtime")
}

#[test]
fn the_engine_keeps_its_invariants_under_every_seeded_fault() {
    let seeds: Vec<u64> = match std::env::var("MOORING_SIM_SEED") {
        Ok(one) => vec![one.parse().expect("MOORING_SIM_SEED is a number")],
        Err(_) => {
            let n: u64 = std::env::var("MOORING_SIM_SEEDS")
                .ok()
                .and_then(|n| n.parse().ok())
                .unwrap_or(5000);
            (1..=n).collect()
        }
    };
    let traced = std::env::var_os("MOORING_SIM_TRACE").is_some();
    let mut failures = Vec::new();
    let mut met = Met::default();
    for seed in &seeds {
        let (result, _, m) = runtime().block_on(run_met(*seed, traced));
        met.crashes += m.crashes;
        met.held_retried += m.held_retried;
        met.rail_calls += m.rail_calls;
        met.payouts += m.payouts;
        met.lies += m.lies;
        met.settled = met.settled.max(m.settled);
        if let Err(broken) = result {
            failures.push(format!(
                "seed {seed}: {broken}\n  replay: MOORING_SIM_SEED={seed} cargo test -p mooring-usecases --test it simulation"
            ));
        }
    }
    eprintln!("simulation: {} seeds met {met:?}", seeds.len());
    assert!(
        failures.is_empty(),
        "{} of {} seeds broke an invariant:\n{}",
        failures.len(),
        seeds.len(),
        failures.join("\n")
    );
    if seeds.len() >= 100 {
        assert!(
            met.crashes > 0 && met.held_retried > 0 && met.lies > 0 && met.rail_calls > met.payouts,
            "the runs met too little of the hostile world to prove anything: {met:?}"
        );
    }
}

#[test]
fn a_seed_replays_exactly() {
    let (first, trace) = runtime().block_on(run(7));
    let (again, retrace) = runtime().block_on(run(7));
    assert_eq!((first, trace.clone()), (again, retrace));
    let (_, other) = runtime().block_on(run(8));
    assert_ne!(trace, other, "another seed, another run");
}

#[test]
fn a_traced_run_is_the_run_it_traces() {
    let (plain, trace) = runtime().block_on(run(11));
    let (traced, retrace, _) = runtime().block_on(run_met(11, true));
    assert_eq!((plain, trace), (traced, retrace));
}
