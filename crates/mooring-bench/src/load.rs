//! The load generator, built never to be the limit: hyper's HTTP/1.1
//! client on raw keep-alive connections, one current-thread runtime per
//! core, requests prepared up front (a body that must be unique is a
//! prefix, the request's number and a suffix), and each answer checked by
//! its status and its length, nothing more.
//!
//! - [`closed_loop`]: N connections, each sending its next request when the
//!   last is answered (throughput).
//! - [`open_loop`]: a fixed rate, each connection keeping its own schedule;
//!   a request that could not go out when it was **due**, because its
//!   connection still waited for the answer before it, counts from then, so
//!   a stalled server shows as latency instead of hiding as a lower rate (no
//!   coordinated omission); one sent late on an idle connection counts from
//!   when it went out (that lateness is the generator's timer).
//! - `wrk` (the `wrk` module): the same closed loop run by `wrk` when it is
//!   installed, the calibration of the generator.
//!
//! Any answer that is not 2xx, a socket error, a short body or a worker that
//! panicked is an error; [`Measured::ensure_clean`] fails the scenario on
//! any.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};

pub use crate::histogram::Histogram;

/// The generator a figure came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Generator {
    /// This crate's hyper client.
    #[default]
    Hyper,
    /// `wrk`, driven as a process.
    Wrk,
}

impl Generator {
    pub fn name(self) -> &'static str {
        match self {
            Self::Hyper => "hyper",
            Self::Wrk => "wrk",
        }
    }
}

/// A request, prepared up front. Its body is `head` alone, or, when
/// `tail` is set, `head`, the request's number and `tail` (a new customer
/// per request, say).
#[derive(Debug, Clone)]
pub struct Template {
    method: Method,
    path: String,
    /// The path ends with a number from 1 to this, spread by the request's
    /// number (every stored customer read in turn).
    spread: Option<u64>,
    content_type: Option<String>,
    head: Bytes,
    tail: Option<Bytes>,
}

impl Template {
    pub fn get(path: &str) -> Self {
        Self {
            method: Method::GET,
            path: path.to_owned(),
            spread: None,
            content_type: None,
            head: Bytes::new(),
            tail: None,
        }
    }

    /// A GET of `path` followed by a number from 1 to `size`, a different
    /// one per request (Fibonacci hashing of its number).
    pub fn get_spread(path: &str, size: u64) -> Self {
        Self {
            spread: Some(size.max(1)),
            ..Self::get(path)
        }
    }

    /// A request whose body carries its number between `head` and `tail`.
    pub fn numbered(
        method: Method,
        path: &str,
        content_type: &str,
        head: Vec<u8>,
        tail: Vec<u8>,
    ) -> Self {
        Self {
            method,
            path: path.to_owned(),
            spread: None,
            content_type: Some(content_type.to_owned()),
            head: Bytes::from(head),
            tail: Some(Bytes::from(tail)),
        }
    }

    fn body(&self, n: u64) -> Bytes {
        match &self.tail {
            None => self.head.clone(),
            Some(tail) => {
                let number = n.to_string();
                let mut body = BytesMut::with_capacity(self.head.len() + number.len() + tail.len());
                body.extend_from_slice(&self.head);
                body.extend_from_slice(number.as_bytes());
                body.extend_from_slice(tail);
                body.freeze()
            }
        }
    }

    fn request(&self, host: &str, n: u64) -> Request<Full<Bytes>> {
        let builder = Request::builder().method(self.method.clone());
        let builder = match self.spread {
            None => builder.uri(self.path.as_str()),
            Some(size) => {
                let k = 1 + n.wrapping_mul(2_654_435_761) % size;
                builder.uri(format!("{}{k}", self.path))
            }
        };
        let mut request = builder.header(hyper::header::HOST, host);
        if let Some(t) = &self.content_type {
            request = request.header(hyper::header::CONTENT_TYPE, t.as_str());
        }
        request
            .body(Full::new(self.body(n)))
            .expect("a request built from a checked template")
    }
}

/// What one run measured.
#[derive(Debug, Clone, Default)]
pub struct Measured {
    pub generator: Generator,
    pub connections: usize,
    pub requests: u64,
    pub errors: u64,
    /// The first error seen, to say what went wrong.
    pub first_error: Option<String>,
    pub seconds: f64,
    pub rps: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

impl Measured {
    pub fn json(&self) -> Value {
        json!({
            "generator": self.generator.name(), "connections": self.connections,
            "requests": self.requests, "errors": self.errors, "seconds": self.seconds,
            "rps": self.rps, "p50_ms": self.p50_ms, "p99_ms": self.p99_ms, "p999_ms": self.p999_ms,
            "max_ms": self.max_ms,
        })
    }

    fn from(
        hist: &Histogram,
        errors: u64,
        first_error: Option<String>,
        connections: usize,
        elapsed: Duration,
    ) -> Self {
        let seconds = elapsed.as_secs_f64();
        let requests = hist.count();
        Self {
            generator: Generator::Hyper,
            connections,
            requests,
            errors,
            first_error,
            seconds,
            rps: requests as f64 / seconds,
            p50_ms: hist.quantile_ms(0.50),
            p99_ms: hist.quantile_ms(0.99),
            p999_ms: hist.quantile_ms(0.999),
            max_ms: hist.max_us as f64 / 1000.0,
        }
    }

    /// Fails on any error, and on a run that measured nothing: a figure
    /// made of failures is no figure.
    pub fn ensure_clean(&self, what: &str) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.errors == 0,
            "{what}: {} of {} requests failed ({}), so the run measures nothing",
            self.errors,
            self.requests + self.errors,
            self.first_error.as_deref().unwrap_or("no detail")
        );
        anyhow::ensure!(self.requests > 0, "{what}: no request was answered");
        Ok(())
    }
}

/// One connection's tally.
#[derive(Default)]
struct Tally {
    hist: Histogram,
    errors: u64,
    first_error: Option<String>,
}

impl Tally {
    fn error(&mut self, what: String) {
        self.errors += 1;
        self.first_error.get_or_insert(what);
    }

    fn merge(&mut self, other: Tally) {
        self.hist.merge(&other.hist);
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }
}

type Sender = http1::SendRequest<Full<Bytes>>;

async fn connect(addr: SocketAddr) -> Result<Sender, String> {
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    stream
        .set_nodelay(true)
        .map_err(|e| format!("nodelay: {e}"))?;
    let (sender, connection) = http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    tokio::spawn(connection);
    Ok(sender)
}

/// Sends one request and reads its answer whole: `Ok` only for a 2xx whose
/// body is as long as it said.
async fn exchange(sender: &mut Sender, request: Request<Full<Bytes>>) -> Result<(), String> {
    sender
        .ready()
        .await
        .map_err(|e| format!("connection: {e}"))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("request: {e}"))?;
    let status = response.status();
    let declared = response
        .headers()
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("body: {e}"))?
        .to_bytes();
    if !status.is_success() {
        return Err(format!("status {status}"));
    }
    if declared.is_some_and(|d| d != body.len()) {
        return Err(format!("a body of {} bytes, not {declared:?}", body.len()));
    }
    Ok(())
}

/// The shape of one run, shared by every connection.
struct Plan {
    addr: SocketAddr,
    host: String,
    template: Template,
    counter: AtomicU64,
    /// Requests answered before this count for nothing (warm-up).
    record_from: Instant,
    until: Instant,
    /// An open loop's period per connection; `None` for a closed loop.
    period: Option<Duration>,
    connections: usize,
}

async fn connection(plan: Arc<Plan>, index: usize) -> Tally {
    let mut tally = Tally::default();
    let mut sender = None;
    let mut last_done: Option<Instant> = None;
    // An open loop spreads the connections' schedules over one period.
    let mut due = plan
        .period
        .map(|p| plan.record_from + p.mul_f64(index as f64 / plan.connections as f64));
    loop {
        if let Some(d) = due {
            if d >= plan.until {
                break;
            }
            tokio::time::sleep_until(d.into()).await;
        } else if Instant::now() >= plan.until {
            break;
        }
        if sender.is_none() {
            match connect(plan.addr).await {
                Ok(s) => sender = Some(s),
                Err(e) => {
                    tally.error(e);
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            }
        }
        let Some(s) = sender.as_mut() else { continue };
        let n = plan.counter.fetch_add(1, Ordering::Relaxed);
        let request = plan.template.request(&plan.host, n);
        let sent = Instant::now();
        let result = exchange(s, request).await;
        let done = Instant::now();
        // Open loop: from when it was due if the connection was still busy
        // with the one before then (the server's delay, counted: no
        // coordinated omission); else from when it went out, since a late
        // start on an idle connection is the generator's (tokio's timers
        // wake on whole milliseconds). Closed loop: from when it was sent.
        let start = match due {
            Some(d) if last_done.is_some_and(|l| l > d) => d,
            _ => sent,
        };
        last_done = Some(done);
        if sent >= plan.record_from {
            match result {
                Ok(()) => tally.hist.record((done - start).as_micros() as u64),
                Err(e) => {
                    tally.error(e);
                    sender = None;
                }
            }
        } else if result.is_err() {
            sender = None;
        }
        if let (Some(d), Some(p)) = (due.as_mut(), plan.period) {
            *d += p;
        }
    }
    tally
}

/// Runs the plan's connections spread over one current-thread runtime per
/// core, and adds up what they measured. A worker that panicked is an error.
async fn run(plan: Plan) -> Measured {
    let plan = Arc::new(plan);
    let cores = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .min(plan.connections)
        .max(1);
    let measured_from = plan.record_from;
    let until = plan.until;
    let connections = plan.connections;
    let total = tokio::task::spawn_blocking(move || {
        let threads: Vec<_> = (0..cores)
            .map(|core| {
                let plan = plan.clone();
                std::thread::spawn(move || {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .expect("a runtime");
                    runtime.block_on(async move {
                        let tasks: Vec<_> = (core..plan.connections)
                            .step_by(cores)
                            .map(|i| tokio::spawn(connection(plan.clone(), i)))
                            .collect();
                        let mut tally = Tally::default();
                        for t in tasks {
                            match t.await {
                                Ok(t) => tally.merge(t),
                                Err(e) => tally.error(format!("a connection's task failed: {e}")),
                            }
                        }
                        tally
                    })
                })
            })
            .collect();
        let mut total = Tally::default();
        for t in threads {
            match t.join() {
                Ok(t) => total.merge(t),
                Err(_) => total.error("a generator thread panicked".into()),
            }
        }
        total
    })
    .await
    .unwrap_or_else(|e| {
        let mut t = Tally::default();
        t.error(format!("the generator failed: {e}"));
        t
    });
    Measured::from(
        &total.hist,
        total.errors,
        total.first_error,
        connections,
        until.saturating_duration_since(measured_from),
    )
}

fn plan(
    base: &str,
    template: &Template,
    connections: usize,
    warmup: Duration,
    duration: Duration,
    period: Option<Duration>,
) -> anyhow::Result<Plan> {
    let host = base
        .strip_prefix("http://")
        .ok_or_else(|| anyhow::anyhow!("{base} is not an http:// address"))?
        .trim_end_matches('/')
        .to_owned();
    let addr: SocketAddr = host.parse()?;
    let record_from = Instant::now() + warmup;
    // Each run numbers its requests apart from every other run's, so that a
    // body made unique by its number (a new customer) is never sent twice.
    static RUNS: AtomicU64 = AtomicU64::new(0);
    let first = RUNS.fetch_add(1, Ordering::Relaxed) << 32;
    Ok(Plan {
        addr,
        host,
        template: template.clone(),
        counter: AtomicU64::new(first),
        record_from,
        until: record_from + duration,
        period,
        connections: connections.max(1),
    })
}

/// `connections` closed loops on `base` (`http://127.0.0.1:port`) for
/// `duration` after `warmup`.
pub async fn closed_loop(
    base: &str,
    template: &Template,
    connections: usize,
    warmup: Duration,
    duration: Duration,
) -> anyhow::Result<Measured> {
    Ok(run(plan(base, template, connections, warmup, duration, None)?).await)
}

/// About `rate` requests per second for `duration`, over 64 connections
/// each keeping its own schedule; latency as the module says.
pub async fn open_loop(
    base: &str,
    template: &Template,
    rate: f64,
    duration: Duration,
) -> anyhow::Result<Measured> {
    const CONNECTIONS: usize = 64;
    let period = Duration::from_secs_f64(CONNECTIONS as f64 / rate.max(1.0));
    Ok(run(plan(
        base,
        template,
        CONNECTIONS,
        Duration::from_millis(100),
        duration,
        Some(period),
    )?)
    .await)
}

/// Runs `op` from `concurrency` workers for `duration`; operations per
/// second (the store's raw baseline). A failed operation fails the run.
pub async fn ops_per_second<F, Fut>(
    op: F,
    concurrency: usize,
    duration: Duration,
) -> anyhow::Result<f64>
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    let op = Arc::new(op);
    let counter = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let end = Instant::now() + duration;
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let (op, counter, done) = (op.clone(), counter.clone(), done.clone());
        workers.push(tokio::spawn(async move {
            while Instant::now() < end {
                let n = counter.fetch_add(1, Ordering::Relaxed);
                op(n).await?;
                done.fetch_add(1, Ordering::Relaxed);
            }
            Ok::<_, anyhow::Error>(())
        }));
    }
    for w in workers {
        w.await
            .map_err(|e| anyhow::anyhow!("a baseline worker failed: {e}"))??;
    }
    let n = done.load(Ordering::Relaxed);
    anyhow::ensure!(n > 0, "the baseline loop did nothing");
    Ok(n as f64 / duration.as_secs_f64())
}
