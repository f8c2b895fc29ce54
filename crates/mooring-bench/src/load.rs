//! A small load generator on reqwest: closed loops (N workers, each sending
//! its next request when the last is answered) and an open loop (a fixed
//! rate), recording every latency.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// Builds request number `n` (unique per run).
pub type MakeRequest = Arc<dyn Fn(&reqwest::Client, u64) -> reqwest::RequestBuilder + Send + Sync>;

/// What one run measured.
#[derive(Debug, Clone, Default)]
pub struct Measured {
    pub requests: u64,
    pub errors: u64,
    pub seconds: f64,
    pub rps: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
}

impl Measured {
    pub fn json(&self) -> Value {
        json!({
            "requests": self.requests, "errors": self.errors, "seconds": self.seconds,
            "rps": self.rps, "p50_ms": self.p50_ms, "p99_ms": self.p99_ms, "p999_ms": self.p999_ms,
        })
    }

    fn from(latencies_us: &mut [u32], errors: u64, elapsed: Duration) -> Self {
        latencies_us.sort_unstable();
        let q = |p: f64| {
            if latencies_us.is_empty() {
                return 0.0;
            }
            let i = ((latencies_us.len() as f64 - 1.0) * p).round() as usize;
            f64::from(latencies_us[i]) / 1000.0
        };
        let seconds = elapsed.as_secs_f64();
        Self {
            requests: latencies_us.len() as u64,
            errors,
            seconds,
            rps: latencies_us.len() as f64 / seconds,
            p50_ms: q(0.50),
            p99_ms: q(0.99),
            p999_ms: q(0.999),
        }
    }
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(512)
        .timeout(Duration::from_secs(30))
        .build()
        .expect("an HTTP client")
}

async fn send(client: &reqwest::Client, make: &MakeRequest, n: u64) -> Result<u32, ()> {
    let started = Instant::now();
    match make(client, n).send().await {
        Ok(response) if response.status().is_success() => {
            let _ = response.bytes().await;
            Ok(started.elapsed().as_micros().min(u128::from(u32::MAX)) as u32)
        }
        _ => Err(()),
    }
}

/// `concurrency` workers for `duration` after `warmup`.
pub async fn closed_loop(
    make: MakeRequest,
    concurrency: usize,
    warmup: Duration,
    duration: Duration,
) -> Measured {
    let client = client();
    let counter = Arc::new(AtomicU64::new(0));
    let start = Instant::now() + warmup;
    let end = start + duration;
    let mut workers = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        let (client, make, counter) = (client.clone(), make.clone(), counter.clone());
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(4096);
            let mut errors = 0u64;
            loop {
                let now = Instant::now();
                if now >= end {
                    break;
                }
                let n = counter.fetch_add(1, Ordering::Relaxed);
                let result = send(&client, &make, n).await;
                if now >= start {
                    match result {
                        Ok(us) => latencies.push(us),
                        Err(()) => errors += 1,
                    }
                }
            }
            (latencies, errors)
        }));
    }
    let mut all = Vec::new();
    let mut errors = 0;
    for w in workers {
        if let Ok((l, e)) = w.await {
            all.extend(l);
            errors += e;
        }
    }
    Measured::from(&mut all, errors, duration)
}

/// About `rate` requests per second for `duration`, from a fixed set of
/// workers each keeping its own schedule (a request every
/// `WORKERS / rate`): latency under a given load, not at saturation. A
/// worker whose answer comes late sends its next request at once, so a
/// stalled server shows as a lower achieved rate and longer latencies.
pub async fn open_loop(make: MakeRequest, rate: f64, duration: Duration) -> Measured {
    const WORKERS: usize = 64;
    let client = client();
    let period = Duration::from_secs_f64(WORKERS as f64 / rate.max(1.0));
    let start = tokio::time::Instant::now() + Duration::from_millis(100);
    let end = start + duration;
    let mut workers = Vec::with_capacity(WORKERS);
    for w in 0..WORKERS {
        let (client, make) = (client.clone(), make.clone());
        let offset = period.mul_f64(w as f64 / WORKERS as f64);
        workers.push(tokio::spawn(async move {
            let mut next = start + offset;
            let mut latencies = Vec::new();
            let mut errors = 0u64;
            let mut n = w as u64;
            while next < end {
                tokio::time::sleep_until(next).await;
                match send(&client, &make, n).await {
                    Ok(us) => latencies.push(us),
                    Err(()) => errors += 1,
                }
                n += WORKERS as u64;
                next += period;
            }
            (latencies, errors)
        }));
    }
    let mut latencies = Vec::new();
    let mut errors = 0;
    for w in workers {
        if let Ok((l, e)) = w.await {
            latencies.extend(l);
            errors += e;
        }
    }
    Measured::from(&mut latencies, errors, duration)
}

/// Runs `op` from `concurrency` workers for `duration`; operations per
/// second (for the store's raw baseline).
pub async fn ops_per_second<F, Fut>(op: F, concurrency: usize, duration: Duration) -> f64
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send,
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
                if op(n).await {
                    done.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for w in workers {
        let _ = w.await;
    }
    done.load(Ordering::Relaxed) as f64 / duration.as_secs_f64()
}
