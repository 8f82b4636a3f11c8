//! Open-loop pacing: when the k-th message (or connection) of one sender is due.
//!
//! A run at `rate` per second over `stride` senders interleaves them evenly: sender `offset`'s
//! k-th event is the run's global event `k * stride + offset`, due at
//! `start + (k * stride + offset) / rate`. Computing each time from `k` in u128 arithmetic
//! rather than adding an interval keeps rounding from drifting over long runs.
//!
//! The schedule is the truth for latency: a message that goes out late (window full, socket
//! full, loop busy) still carries its scheduled time, so the wait counts against the broker
//! instead of being silently skipped. That is the coordinated-omission correction.

use crate::clock::MonoNs;

/// One sender's share of a constant total rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateSchedule {
    start: MonoNs,
    rate_per_s: u64,
    stride: u64,
    offset: u64,
}

impl RateSchedule {
    /// Sender `offset` of `stride` senders sharing `rate_per_s` events per second in total.
    ///
    /// Panics on a zero rate or `offset >= stride`: the CLI maps rate 0 to max-rate mode, so
    /// either would be a programmer's error.
    pub fn new(start: MonoNs, rate_per_s: u64, stride: u64, offset: u64) -> RateSchedule {
        assert!(rate_per_s > 0, "a schedule needs a positive rate");
        assert!(
            offset < stride,
            "sender {offset} outside a stride of {stride}"
        );
        RateSchedule {
            start,
            rate_per_s,
            stride,
            offset,
        }
    }

    /// When the event numbered `k` (from 0) of this sender is due.
    pub fn due(&self, k: u64) -> MonoNs {
        let global = u128::from(k) * u128::from(self.stride) + u128::from(self.offset);
        let ns = global * 1_000_000_000 / u128::from(self.rate_per_s);
        MonoNs(
            self.start
                .0
                .saturating_add(u64::try_from(ns).unwrap_or(u64::MAX)),
        )
    }

    /// How many of this sender's events are due strictly before `end`.
    pub fn count_before(&self, end: MonoNs) -> u64 {
        let span_ns = u128::from(end.since(self.start));
        // Global events g with floor(g * 1e9 / rate) < span: g < span * rate / 1e9.
        let global = (span_ns * u128::from(self.rate_per_s)).div_ceil(1_000_000_000);
        let offset = u128::from(self.offset);
        if global <= offset {
            return 0;
        }
        u64::try_from((global - offset).div_ceil(u128::from(self.stride))).unwrap_or(u64::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_sender_is_evenly_spaced() {
        let s = RateSchedule::new(MonoNs(1_000), 1_000, 1, 0);
        assert_eq!(s.due(0), MonoNs(1_000));
        assert_eq!(s.due(1), MonoNs(1_001_000));
        assert_eq!(s.due(1_000), MonoNs(1_000_001_000));
    }

    #[test]
    fn senders_interleave_without_bursts() {
        let senders: Vec<_> = (0..3)
            .map(|i| RateSchedule::new(MonoNs(0), 3_000, 3, i))
            .collect();
        let mut all: Vec<u64> = senders
            .iter()
            .flat_map(|s| (0..100).map(|k| s.due(k).0))
            .collect();
        all.sort_unstable();
        for pair in all.windows(2) {
            let gap = pair[1] - pair[0];
            assert!((333_333..=333_334).contains(&gap), "gap {gap} ns");
        }
    }

    #[test]
    fn no_drift_over_long_runs() {
        // 7 per second does not divide a second evenly; the billionth event must still be exact.
        let s = RateSchedule::new(MonoNs(0), 7, 1, 0);
        assert_eq!(s.due(7_000_000_000), MonoNs(1_000_000_000_000_000_000));
    }

    #[test]
    fn count_before_matches_due() {
        for (rate, stride, offset) in [(1_000, 1, 0), (3_000, 3, 2), (7, 2, 1), (20_000, 10, 9)] {
            let s = RateSchedule::new(MonoNs(500), rate, stride, offset);
            for end in [
                0,
                500,
                501,
                1_000_500,
                333_833,
                2_000_000_000,
                2_000_000_499,
            ] {
                let brute = (0..100_000).take_while(|&k| s.due(k) < MonoNs(end)).count() as u64;
                assert_eq!(
                    s.count_before(MonoNs(end)),
                    brute,
                    "{rate}/{stride}/{offset} end {end}"
                );
            }
        }
    }

    #[test]
    #[should_panic(expected = "positive rate")]
    fn zero_rate_is_a_bug() {
        let _ = RateSchedule::new(MonoNs(0), 0, 1, 0);
    }
}
