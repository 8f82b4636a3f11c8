//! The only state the coordinator and the worker threads share: the phase, the run window,
//! one cache-line-padded block of counters per worker, and the first few error messages.
//!
//! Each worker *stores* its own counters (it owns them; no read-modify-write across threads)
//! once per loop turn; the coordinator only reads, to print progress and decide when a phase
//! is over. The phase is published with Release after the run window, and read with Acquire,
//! so a worker that sees `Run` also sees when the run starts and ends.

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Mutex;

use crate::clock::MonoNs;
use crate::measure::Counters;
use crate::phase::{Phase, RunWindow};

/// Error messages kept for the report; later ones are only counted.
pub const ERRORS_KEPT_MAX: usize = 8;

/// One worker's counters as the coordinator sees them.
#[derive(Debug, Default)]
#[repr(align(64))]
pub struct WorkerCounters {
    ready: AtomicU64,
    failed: AtomicU64,
    dropped: AtomicU64,
    sent: AtomicU64,
    expected: AtomicU64,
    acked: AtomicU64,
    abandoned: AtomicU64,
    delivered: AtomicU64,
    duplicates: AtomicU64,
    publishers_done: AtomicU64,
    primed: AtomicU64,
    cleaned: AtomicU64,
    rounds_started: AtomicU64,
    rounds: AtomicU64,
}

impl WorkerCounters {
    /// Called by the owning worker only.
    pub fn store(&self, c: &Counters) {
        let pairs = [
            (&self.ready, c.ready),
            (&self.failed, c.failed),
            (&self.dropped, c.dropped),
            (&self.sent, c.sent),
            (&self.expected, c.expected),
            (&self.acked, c.acked),
            (&self.abandoned, c.abandoned),
            (&self.delivered, c.delivered),
            (&self.duplicates, c.duplicates),
            (&self.publishers_done, c.publishers_done),
            (&self.primed, c.primed),
            (&self.cleaned, c.cleaned),
            (&self.rounds_started, c.rounds_started),
            (&self.rounds, c.rounds),
        ];
        for (atomic, value) in pairs {
            atomic.store(value, Ordering::Relaxed);
        }
    }

    pub fn load(&self) -> Counters {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        Counters {
            ready: get(&self.ready),
            failed: get(&self.failed),
            dropped: get(&self.dropped),
            sent: get(&self.sent),
            expected: get(&self.expected),
            acked: get(&self.acked),
            abandoned: get(&self.abandoned),
            delivered: get(&self.delivered),
            duplicates: get(&self.duplicates),
            publishers_done: get(&self.publishers_done),
            primed: get(&self.primed),
            cleaned: get(&self.cleaned),
            rounds_started: get(&self.rounds_started),
            rounds: get(&self.rounds),
            ..Counters::default()
        }
    }
}

/// Shared between the coordinator and every worker of one run.
#[derive(Debug)]
pub struct Shared {
    phase: AtomicU8,
    run_start_ns: AtomicU64,
    run_end_ns: AtomicU64,
    workers: Vec<WorkerCounters>,
    errors: Mutex<(Vec<String>, u64)>,
}

impl Shared {
    pub fn new(workers: usize) -> Shared {
        Shared {
            phase: AtomicU8::new(Phase::Setup as u8),
            run_start_ns: AtomicU64::new(RunWindow::UNSET.start.0),
            run_end_ns: AtomicU64::new(RunWindow::UNSET.end.0),
            workers: (0..workers).map(|_| WorkerCounters::default()).collect(),
            errors: Mutex::new((Vec::new(), 0)),
        }
    }

    pub fn phase(&self) -> Phase {
        Phase::from_u8(self.phase.load(Ordering::Acquire))
    }

    pub fn run_window(&self) -> RunWindow {
        RunWindow {
            start: MonoNs(self.run_start_ns.load(Ordering::Relaxed)),
            end: MonoNs(self.run_end_ns.load(Ordering::Relaxed)),
        }
    }

    /// Moves every worker to `phase`; the caller then wakes them.
    pub fn set_phase(&self, phase: Phase) {
        self.phase.store(phase as u8, Ordering::Release);
    }

    /// Sets when the run starts and ends; must precede `set_phase(Run)`.
    pub fn set_run_window(&self, run: RunWindow) {
        self.run_start_ns.store(run.start.0, Ordering::Relaxed);
        self.run_end_ns.store(run.end.0, Ordering::Relaxed);
    }

    pub fn worker(&self, index: usize) -> &WorkerCounters {
        &self.workers[index]
    }

    /// The sum over all workers.
    pub fn totals(&self) -> Counters {
        let mut totals = Counters::default();
        for worker in &self.workers {
            totals.add(&worker.load());
        }
        totals
    }

    pub fn record_error(&self, message: String) {
        if let Ok(mut errors) = self.errors.lock() {
            errors.1 += 1;
            if errors.0.len() < ERRORS_KEPT_MAX {
                errors.0.push(message);
            }
        }
    }

    /// The first errors, and how many there were in all.
    pub fn errors(&self) -> (Vec<String>, u64) {
        self.errors.lock().map(|e| e.clone()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_sum_workers_and_errors_are_bounded() {
        let shared = Shared::new(2);
        let mut c = Counters {
            sent: 5,
            delivered: 4,
            ..Counters::default()
        };
        shared.worker(0).store(&c);
        c.sent = 2;
        shared.worker(1).store(&c);
        let totals = shared.totals();
        assert_eq!((totals.sent, totals.delivered), (7, 8));
        for i in 0..20 {
            shared.record_error(format!("e{i}"));
        }
        let (kept, all) = shared.errors();
        assert_eq!((kept.len(), all), (ERRORS_KEPT_MAX, 20));
        shared.set_run_window(RunWindow {
            start: MonoNs(1),
            end: MonoNs(2),
        });
        shared.set_phase(Phase::Run);
        assert_eq!(
            (shared.phase(), shared.run_window().end),
            (Phase::Run, MonoNs(2))
        );
    }
}
