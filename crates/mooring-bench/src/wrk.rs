//! `wrk`, driven as a process when it is installed: the calibration of the
//! load generator on the same route, with every error wrk counts.

use std::process::Command;
use std::time::Duration;

use crate::load::{Generator, Measured};

/// Whether `wrk` is on the `PATH`.
pub fn wrk_installed() -> bool {
    Command::new("wrk")
        .arg("--version")
        .output()
        .is_ok_and(|o| {
            String::from_utf8_lossy(&o.stdout).contains("wrk")
                || String::from_utf8_lossy(&o.stderr).contains("wrk")
        })
}

/// `wrk -t<cores> -c<connections>` on a GET for `duration`, when `wrk` is
/// installed: the calibration of this generator. Its latencies are wrk's
/// (`--latency`).
pub fn wrk(url: &str, connections: usize, duration: Duration) -> anyhow::Result<Option<Measured>> {
    if !wrk_installed() {
        return Ok(None);
    }
    let cores = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .min(connections)
        .max(1);
    let output = Command::new("wrk")
        .args([
            format!("-t{cores}"),
            format!("-c{connections}"),
            format!("-d{}s", duration.as_secs().max(1)),
            "--latency".into(),
            url.to_owned(),
        ])
        .output()?;
    anyhow::ensure!(
        output.status.success(),
        "wrk failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(Some(parse_wrk(
        &String::from_utf8_lossy(&output.stdout),
        connections,
    )?))
}

/// wrk's report: requests/sec, the latency distribution, and every error
/// it counts (non-2xx/3xx answers, socket errors).
pub(crate) fn parse_wrk(text: &str, connections: usize) -> anyhow::Result<Measured> {
    let duration_ms = |s: &str| -> Option<f64> {
        let s = s.trim();
        let (number, unit) = s.split_at(s.find(|c: char| c.is_ascii_alphabetic())?);
        let n: f64 = number.parse().ok()?;
        Some(match unit {
            "us" => n / 1000.0,
            "ms" => n,
            "s" => n * 1000.0,
            "m" => n * 60_000.0,
            _ => return None,
        })
    };
    let mut m = Measured {
        generator: Generator::Wrk,
        connections,
        ..Measured::default()
    };
    for line in text.lines().map(str::trim) {
        let mut words = line.split_whitespace();
        match (words.next(), words.next()) {
            (Some("50%"), Some(v)) => m.p50_ms = duration_ms(v).unwrap_or_default(),
            (Some("99%"), Some(v)) => m.p99_ms = duration_ms(v).unwrap_or_default(),
            (Some("Requests/sec:"), Some(v)) => m.rps = v.parse().unwrap_or_default(),
            (Some("Latency"), Some(_)) => {
                // "Latency  avg  stdev  max  +/- stdev"
                if let Some(max) = line.split_whitespace().nth(3) {
                    m.max_ms = duration_ms(max).unwrap_or_default();
                }
            }
            _ => {}
        }
        if let Some(rest) = line.strip_prefix("Non-2xx or 3xx responses:") {
            m.errors += rest.trim().parse::<u64>().unwrap_or(1);
            m.first_error.get_or_insert("non-2xx answers".into());
        }
        if let Some(rest) = line.strip_prefix("Socket errors:") {
            let count: u64 = rest
                .split(',')
                .filter_map(|part| part.split_whitespace().last()?.parse::<u64>().ok())
                .sum();
            m.errors += count;
            if count > 0 {
                m.first_error.get_or_insert(format!("socket errors:{rest}"));
            }
        }
        if let Some((requests, _)) = line.split_once(" requests in ") {
            m.requests = requests.trim().parse().unwrap_or_default();
            if let Some(secs) = line
                .split(" requests in ")
                .nth(1)
                .and_then(|r| r.split(',').next())
            {
                m.seconds = duration_ms(secs).unwrap_or_default() / 1000.0;
            }
        }
    }
    anyhow::ensure!(
        m.rps > 0.0,
        "wrk's report had no Requests/sec line:\n{text}"
    );
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrks_report_is_read_with_its_errors() {
        let text = "Running 3s test @ http://127.0.0.1:1/health
  2 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   520.10us  300.00us  12.50ms   90.00%
    Req/Sec    60.00k     2.00k   65.00k    70.00%
  Latency Distribution
     50%  480.00us
     75%  600.00us
     90%  800.00us
     99%    1.50ms
  363000 requests in 3.00s, 40.00MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 5
Requests/sec: 121000.00
Transfer/sec:     13.33MB
";
        let m = parse_wrk(text, 64).expect("parsed");
        assert_eq!(m.rps, 121_000.0);
        assert_eq!(m.requests, 363_000);
        assert!((m.p50_ms - 0.48).abs() < 1e-9 && (m.p99_ms - 1.5).abs() < 1e-9);
        assert_eq!(m.max_ms, 12.5);
        assert_eq!(m.errors, 8);
        assert!(m.ensure_clean("wrk").is_err());
    }
}
