//! Latency recording in HDR histograms, in microseconds, and the percentile summary we report.
//!
//! Each worker thread records into its own [`Latency`] without locks; the coordinator merges
//! them at the end (HDR histograms add exactly). Three significant digits keep every reported
//! percentile within 0.1 % of the truth at a few hundred KiB per histogram.

use hdrhistogram::Histogram;
use serde::Serialize;

/// The largest latency recorded exactly; larger values are clamped to it (and show as max).
pub const LATENCY_US_MAX: u64 = 60_000_000;
const SIGNIFICANT_DIGITS: u8 = 3;

/// One latency distribution, in microseconds.
#[derive(Debug, Clone)]
pub struct Latency {
    histogram: Histogram<u64>,
}

impl Latency {
    pub fn new() -> Latency {
        let histogram = Histogram::new_with_bounds(1, LATENCY_US_MAX, SIGNIFICANT_DIGITS)
            .expect("static histogram bounds are valid");
        Latency { histogram }
    }

    /// Records one value; values beyond [`LATENCY_US_MAX`] are clamped to it.
    pub fn record_us(&mut self, latency_us: u64) {
        self.histogram
            .saturating_record(latency_us.min(LATENCY_US_MAX));
    }

    pub fn merge(&mut self, other: &Latency) {
        // Same bounds on both sides, so `add` cannot fail.
        self.histogram
            .add(&other.histogram)
            .expect("histograms share bounds");
    }

    pub fn count(&self) -> u64 {
        self.histogram.len()
    }

    pub fn summary(&self) -> LatencySummary {
        let h = &self.histogram;
        if h.is_empty() {
            return LatencySummary::default();
        }
        LatencySummary {
            count: h.len(),
            min_us: h.min(),
            mean_us: h.mean(),
            p50_us: h.value_at_quantile(0.50),
            p90_us: h.value_at_quantile(0.90),
            p99_us: h.value_at_quantile(0.99),
            p99_9_us: h.value_at_quantile(0.999),
            p99_99_us: h.value_at_quantile(0.9999),
            max_us: h.max(),
        }
    }

    /// The percentile spectrum as (percentile in [0, 100), latency µs) points, HDR style:
    /// denser towards the tail, ending at the maximum.
    pub fn spectrum(&self) -> Vec<(f64, u64)> {
        const TICKS_PER_HALF_DISTANCE: u32 = 5;
        let mut points: Vec<(f64, u64)> = self
            .histogram
            .iter_quantiles(TICKS_PER_HALF_DISTANCE)
            .map(|v| (v.quantile_iterated_to() * 100.0, v.value_iterated_to()))
            .filter(|(p, _)| *p < 100.0)
            .collect();
        if !self.histogram.is_empty() {
            let last = points.last().map_or(0.0, |p| p.0);
            // The maximum sits at "one in count", the far right of an HDR plot.
            let count = self.histogram.len() as f64;
            points.push((
                (1.0 - 1.0 / (count + 1.0)).max(last / 100.0) * 100.0,
                self.histogram.max(),
            ));
        }
        points
    }
}

impl Default for Latency {
    fn default() -> Latency {
        Latency::new()
    }
}

/// Reported percentiles. Field names end in their unit (STYLE.md).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct LatencySummary {
    pub count: u64,
    pub min_us: u64,
    pub mean_us: f64,
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub p99_9_us: u64,
    pub p99_99_us: u64,
    pub max_us: u64,
}

impl LatencySummary {
    /// One line for the console: `p50 312 µs  p90 ...`.
    pub fn line(&self) -> String {
        if self.count == 0 {
            return "no samples".to_string();
        }
        format!(
            "p50 {}  p90 {}  p99 {}  p99.9 {}  p99.99 {}  max {}  (n={})",
            fmt_us(self.p50_us),
            fmt_us(self.p90_us),
            fmt_us(self.p99_us),
            fmt_us(self.p99_9_us),
            fmt_us(self.p99_99_us),
            fmt_us(self.max_us),
            self.count
        )
    }
}

/// `812 µs`, `2.41 ms`, `1.20 s`.
pub fn fmt_us(us: u64) -> String {
    if us < 1_000 {
        format!("{us} µs")
    } else if us < 1_000_000 {
        format!("{:.2} ms", us as f64 / 1e3)
    } else {
        format!("{:.2} s", us as f64 / 1e6)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_a_known_distribution() {
        let mut latency = Latency::new();
        for us in 1..=10_000 {
            latency.record_us(us);
        }
        let s = latency.summary();
        assert_eq!(s.count, 10_000);
        let near = |got: u64, want: u64| got.abs_diff(want) * 1000 <= want;
        assert!(near(s.p50_us, 5_000), "{s:?}");
        assert!(near(s.p90_us, 9_000), "{s:?}");
        assert!(near(s.p99_us, 9_900), "{s:?}");
        assert!(near(s.p99_9_us, 9_990), "{s:?}");
        assert!(near(s.max_us, 10_000), "{s:?}");
    }

    #[test]
    fn merge_adds_and_clamps() {
        let mut a = Latency::new();
        let mut b = Latency::new();
        a.record_us(10);
        b.record_us(LATENCY_US_MAX * 10);
        b.record_us(0);
        a.merge(&b);
        let s = a.summary();
        assert_eq!(s.count, 3);
        assert!(s.max_us >= LATENCY_US_MAX && s.max_us <= LATENCY_US_MAX + LATENCY_US_MAX / 500);
    }

    #[test]
    fn spectrum_rises_and_ends_at_max() {
        let mut latency = Latency::new();
        for us in 1..=1_000 {
            latency.record_us(us * us);
        }
        let points = latency.spectrum();
        assert!(points.len() > 10);
        assert!(points
            .windows(2)
            .all(|w| w[0].0 <= w[1].0 && w[0].1 <= w[1].1));
        assert_eq!(points.last().map(|p| p.1), Some(latency.summary().max_us));
        assert!(points.iter().all(|p| p.0 < 100.0));
    }

    #[test]
    fn summary_serializes_with_units() {
        let mut latency = Latency::new();
        latency.record_us(250);
        let json = serde_json::to_value(latency.summary()).expect("serializable");
        assert_eq!(json["p99_us"], serde_json::json!(latency.summary().p99_us));
        assert!(json.get("p99_9_us").is_some() && json.get("max_us").is_some());
        assert!(Latency::new().summary().line().contains("no samples"));
    }
}
