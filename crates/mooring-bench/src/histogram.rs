//! Latencies kept in log-linear buckets, so that a run of millions of
//! requests costs a fixed, small amount of memory.

/// Latencies in microseconds, in log-linear buckets: exact below 2,048 µs,
/// then 128 buckets per power of two (under 0.8 % apart).
#[derive(Clone)]
pub struct Histogram {
    counts: Vec<u64>,
    pub(crate) max_us: u64,
}

const EXACT: u64 = 2048;
const SUB_BITS: u32 = 7;

impl Default for Histogram {
    fn default() -> Self {
        Self {
            counts: vec![0; EXACT as usize + (64 - 11) * (1 << SUB_BITS)],
            max_us: 0,
        }
    }
}

impl Histogram {
    fn index(us: u64) -> usize {
        if us < EXACT {
            return us as usize;
        }
        let e = 63 - us.leading_zeros();
        let sub = (us >> (e - SUB_BITS)) & ((1 << SUB_BITS) - 1);
        EXACT as usize + ((e - 11) as usize) * (1 << SUB_BITS) + sub as usize
    }

    fn lower_bound(index: usize) -> u64 {
        if index < EXACT as usize {
            return index as u64;
        }
        let i = index - EXACT as usize;
        let e = (i >> SUB_BITS) as u32 + 11;
        let sub = (i & ((1 << SUB_BITS) - 1)) as u64;
        ((1 << SUB_BITS) + sub) << (e - SUB_BITS)
    }

    pub fn record(&mut self, us: u64) {
        self.counts[Self::index(us)] += 1;
        self.max_us = self.max_us.max(us);
    }

    pub(crate) fn merge(&mut self, other: &Self) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.max_us = self.max_us.max(other.max_us);
    }

    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// The latency at quantile `q` (0..=1), in ms.
    pub fn quantile_ms(&self, q: f64) -> f64 {
        let total = self.count();
        if total == 0 {
            return 0.0;
        }
        let rank = ((total as f64 - 1.0) * q).round() as u64;
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen > rank {
                return Self::lower_bound(i) as f64 / 1000.0;
            }
        }
        self.max_us as f64 / 1000.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_histogram_keeps_quantiles_within_its_resolution() {
        let mut h = Histogram::default();
        for us in 1..=100_000u64 {
            h.record(us);
        }
        for (q, want) in [(0.5, 50.0), (0.99, 99.0), (0.999, 99.9)] {
            let got = h.quantile_ms(q);
            assert!(
                (got - want).abs() / want < 0.01,
                "q{q}: {got} ms, not {want}"
            );
        }
        assert_eq!(h.count(), 100_000);
        for us in [0, 1, 2047, 2048, 2049, 5_000, 1 << 20, 1 << 40] {
            let lb = Histogram::lower_bound(Histogram::index(us));
            assert!(
                lb <= us && (us - lb) as f64 <= us as f64 / 128.0 + 1.0,
                "{us}: {lb}"
            );
        }
    }
}
