//! Statistics on measured values: latency histograms and their percentiles, and the soak's
//! "is it flat" rule.
//!
//! Invariants: latencies are recorded in microseconds, clamped into the histogram's range (1 µs to
//! 10 min) so recording never fails; a summary of an empty histogram has no percentiles.

use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Largest recordable latency, µs.
const MAX_US: u64 = 600 * 1_000_000;

/// A latency histogram in microseconds.
#[derive(Debug, Clone)]
pub struct Latencies(Histogram<u64>);

impl Default for Latencies {
    fn default() -> Self {
        Self::new()
    }
}

impl Latencies {
    pub fn new() -> Self {
        // Three significant digits over 1 µs..10 min; construction only fails on bad bounds.
        match Histogram::new_with_bounds(1, MAX_US, 3) {
            Ok(h) => Self(h),
            Err(_) => Self(Histogram::new(3).unwrap_or_else(|_| unreachable!("3 digits is valid"))),
        }
    }

    pub fn record(&mut self, d: Duration) {
        let us = (d.as_micros() as u64).clamp(1, MAX_US);
        // In range by construction.
        let _ = self.0.record(us);
    }

    pub fn add(&mut self, other: &Latencies) {
        let _ = self.0.add(&other.0);
    }

    pub fn count(&self) -> u64 {
        self.0.len()
    }

    pub fn clear(&mut self) {
        self.0.reset();
    }

    pub fn summary(&self) -> Summary {
        if self.0.is_empty() {
            return Summary::default();
        }
        let ms = |us: u64| us as f64 / 1000.0;
        Summary {
            count: self.0.len(),
            p50_ms: Some(ms(self.0.value_at_quantile(0.50))),
            p90_ms: Some(ms(self.0.value_at_quantile(0.90))),
            p99_ms: Some(ms(self.0.value_at_quantile(0.99))),
            max_ms: Some(ms(self.0.max())),
            mean_ms: Some(self.0.mean() / 1000.0),
        }
    }
}

/// Percentiles of a latency histogram, in milliseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub count: u64,
    pub p50_ms: Option<f64>,
    pub p90_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub max_ms: Option<f64>,
    pub mean_ms: Option<f64>,
}

/// `a − b` when both are known.
pub fn minus(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    Some(a? - b?)
}

/// `a / b` when both are known and `b` is not zero.
pub fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    let (a, b) = (a?, b?);
    (b != 0.0).then(|| a / b)
}

/// How far a series may grow before it counts as growing: last third's mean over first third's.
pub const FLAT_LIMIT: f64 = 1.25;

/// The soak's verdict on one series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trend {
    pub first_third_mean: f64,
    pub last_third_mean: f64,
    /// `last / first`.
    pub growth: f64,
    pub flat: bool,
}

/// Compares the mean of the last third of `series` with the mean of its first third; `None`
/// with fewer than three samples (no thirds to compare).
pub fn trend(series: &[f64]) -> Option<Trend> {
    let third = series.len() / 3;
    if third == 0 {
        return None;
    }
    let mean = |s: &[f64]| s.iter().sum::<f64>() / s.len() as f64;
    let first = mean(&series[..third]);
    let last = mean(&series[series.len() - third..]);
    let growth = if first > 0.0 {
        last / first
    } else if last > 0.0 {
        f64::INFINITY
    } else {
        1.0
    };
    Some(Trend {
        first_third_mean: first,
        last_third_mean: last,
        growth,
        flat: growth <= FLAT_LIMIT,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_a_known_distribution() {
        let mut h = Latencies::new();
        // 1..=1000 ms, one each.
        for ms in 1..=1000u64 {
            h.record(Duration::from_millis(ms));
        }
        let s = h.summary();
        assert_eq!(s.count, 1000);
        let close = |got: Option<f64>, want: f64| {
            got.is_some_and(|g| (g - want).abs() <= want * 0.002 + 0.001)
        };
        assert!(close(s.p50_ms, 500.0), "{s:?}");
        assert!(close(s.p90_ms, 900.0), "{s:?}");
        assert!(close(s.p99_ms, 990.0), "{s:?}");
        assert!(close(s.max_ms, 1000.0), "{s:?}");
        assert!(close(s.mean_ms, 500.5), "{s:?}");
    }

    #[test]
    fn merging_and_out_of_range_values() {
        let mut a = Latencies::new();
        let mut b = Latencies::new();
        a.record(Duration::ZERO);
        b.record(Duration::from_secs(3600));
        a.add(&b);
        assert_eq!(a.count(), 2);
        let s = a.summary();
        assert_eq!(s.p50_ms, Some(0.001));
        assert!(s.max_ms.is_some_and(|m| m >= 599_000.0));
        assert_eq!(Latencies::new().summary(), Summary::default());
    }

    #[test]
    fn differences_and_ratios_need_both_sides() {
        assert_eq!(minus(Some(3.0), Some(1.0)), Some(2.0));
        assert_eq!(minus(None, Some(1.0)), None);
        assert_eq!(ratio(Some(3.0), Some(2.0)), Some(1.5));
        assert_eq!(ratio(Some(3.0), Some(0.0)), None);
    }

    #[test]
    fn flat_and_growing_series() {
        assert_eq!(trend(&[1.0, 2.0]), None);
        let flat = trend(&[100.0, 101.0, 99.0, 102.0, 100.0, 110.0]);
        assert!(flat.as_ref().is_some_and(|t| t.flat), "{flat:?}");
        let growing = trend(&[100.0, 100.0, 150.0, 200.0, 250.0, 300.0]);
        assert!(
            growing
                .as_ref()
                .is_some_and(|t| !t.flat && (t.growth - 2.75).abs() < 1e-9),
            "{growing:?}"
        );
        assert!(trend(&[0.0, 0.0, 0.0]).is_some_and(|t| t.flat));
    }
}
