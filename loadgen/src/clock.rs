//! One monotonic clock for the whole process, in nanoseconds since a process-wide epoch.
//!
//! Publishers stamp payloads with it and subscribers read it back in the same process, so a
//! one-way latency is a subtraction of two readings of the same clock: no clock sync, no skew.
//! The epoch is fixed by the first reading; u64 nanoseconds last 584 years from there.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

static EPOCH: OnceLock<Instant> = OnceLock::new();

/// A reading of the process clock: nanoseconds since the epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct MonoNs(pub u64);

impl MonoNs {
    pub const ZERO: MonoNs = MonoNs(0);
    pub const MAX: MonoNs = MonoNs(u64::MAX);

    /// Nanoseconds from `earlier` to `self`; zero if `earlier` is later.
    pub fn since(self, earlier: MonoNs) -> u64 {
        self.0.saturating_sub(earlier.0)
    }

    /// Microseconds from `earlier` to `self`, rounded down; zero if `earlier` is later.
    pub fn since_us(self, earlier: MonoNs) -> u64 {
        self.since(earlier) / 1_000
    }

    pub fn plus(self, duration: Duration) -> MonoNs {
        let ns = u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX);
        MonoNs(self.0.saturating_add(ns))
    }

    pub fn plus_ns(self, ns: u64) -> MonoNs {
        MonoNs(self.0.saturating_add(ns))
    }

    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / 1e9
    }
}

/// Fixes the epoch if no one has yet; call early so that readings stay small.
pub fn init() {
    let _ = EPOCH.get_or_init(Instant::now);
}

/// The current reading of the process clock.
pub fn now() -> MonoNs {
    let epoch = *EPOCH.get_or_init(Instant::now);
    MonoNs(u64::try_from(epoch.elapsed().as_nanos()).unwrap_or(u64::MAX))
}

/// Seconds between two readings, for rates.
pub fn seconds_between(start: MonoNs, end: MonoNs) -> f64 {
    end.since(start) as f64 / 1e9
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readings_are_monotonic_and_saturating() {
        let a = now();
        let b = now();
        assert!(b >= a);
        assert_eq!(a.since(b.plus_ns(1)), 0);
        assert_eq!(MonoNs(5_000).since_us(MonoNs(1_999)), 3);
        assert_eq!(MonoNs::MAX.plus(Duration::from_secs(1)), MonoNs::MAX);
    }
}
