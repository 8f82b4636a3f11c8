//! The coordinator: deals the plan's clients to worker threads, moves them through the
//! phases together, prints a progress line every second, samples the broker and our own CPU
//! at the phase boundaries, and merges what the workers measured.
//!
//! It runs on the caller's thread and only reads the workers' counters; it never touches a
//! socket. Every wait is bounded: setup by the per-connection connect timeout, the run by
//! `--duration`, the drain by `--drain-timeout`, priming and cleanup by [`PRIME_TIMEOUT`].
//! Dropping a coordinator stops and joins its workers, so an error path cannot leak threads.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use mio::{Poll, Waker};

use crate::accounting::PublisherTally;
use crate::clock::{self, MonoNs};
use crate::error::LoadgenError;
use crate::measure::{Counters, Measure};
use crate::phase::{Phase, RunWindow};
use crate::plan::{ClientSpec, Plan};
use crate::procfs::{self, ProcSample};
use crate::shared::Shared;
use crate::sys;
use crate::transport::TransportSpec;
use crate::worker::{Worker, WorkerConfig, WorkerOutput};

/// How often the coordinator looks at the counters.
const TICK: Duration = Duration::from_millis(5);
/// How often a progress line is printed.
const PROGRESS_PERIOD: Duration = Duration::from_secs(1);
/// Lead time between announcing the run and its first scheduled message, so that every
/// worker has seen the window before anything is due.
const RUN_START_DELAY: Duration = Duration::from_millis(20);
/// A drain ends early when nothing has moved for this long (QoS 0 losses never arrive).
const DRAIN_IDLE: Duration = Duration::from_secs(1);
/// The longest a retained flood or its cleanup may take.
pub const PRIME_TIMEOUT: Duration = Duration::from_secs(300);
/// File descriptors kept free beyond one per connection: epoll, timerfd, waker per thread,
/// stdio, output files.
const FDS_RESERVED: u64 = 64;

/// How to run a plan.
#[derive(Debug, Clone)]
pub struct RunSpec {
    pub target: SocketAddr,
    /// TCP, TLS, WebSocket or both, for every connection.
    pub transport: TransportSpec,
    pub threads: usize,
    pub source_ips: u8,
    pub connect_timeout: Duration,
    pub connect_rate_per_s: u64,
    pub duration: Duration,
    pub drain_timeout: Duration,
    pub broker_pid: Option<u32>,
    pub progress: bool,
}

/// Wall-clock marks of a run.
#[derive(Debug, Clone, Copy, Default)]
pub struct Timeline {
    pub setup_start: MonoNs,
    pub setup_end: MonoNs,
    pub run_start: MonoNs,
    /// When `Drain` began: the deadline, or earlier if every publisher finished its count.
    pub run_end: MonoNs,
    pub drain_end: MonoNs,
}

/// Our CPU time at the phase marks, in µs.
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuMarks {
    pub setup_start_us: u64,
    pub setup_end_us: u64,
    pub run_start_us: u64,
    pub run_end_us: u64,
    pub drain_end_us: u64,
}

/// Broker readings at the phase marks.
#[derive(Debug, Clone, Copy, Default)]
pub struct BrokerMarks {
    pub pid: u32,
    pub setup_start: ProcSample,
    pub setup_end: ProcSample,
    pub run_start: ProcSample,
    pub drain_end: ProcSample,
}

/// Everything a run measured, merged over the workers.
#[derive(Debug)]
pub struct RunOutput {
    pub measure: Measure,
    pub tallies: Vec<PublisherTally>,
    pub timeline: Timeline,
    pub cpu: CpuMarks,
    pub broker: Option<BrokerMarks>,
    pub threads: usize,
    pub clients: u64,
    pub errors: Vec<String>,
    pub errors_total: u64,
}

pub struct Coordinator {
    spec: RunSpec,
    plan_publishers: u64,
    plan_clients: u64,
    qos_acked: bool,
    shared: Arc<Shared>,
    wakers: Vec<Waker>,
    handles: Vec<JoinHandle<WorkerOutput>>,
    timeline: Timeline,
    cpu: CpuMarks,
    broker: Option<BrokerMarks>,
    /// When the last progress line was printed, the counters then, and our CPU µs then.
    last_progress: (MonoNs, Counters, u64),
}

impl Coordinator {
    /// Checks the fd budget, samples the broker, and starts the workers in `Setup`.
    pub fn start(spec: RunSpec, plan: Plan) -> Result<Coordinator, LoadgenError> {
        let clients = plan.clients.len() as u64;
        let fd_limit = sys::raise_fd_limit().map_err(|e| LoadgenError::io("RLIMIT_NOFILE", e))?;
        if clients + FDS_RESERVED > fd_limit {
            return Err(LoadgenError::Usage(format!(
                "{clients} connections need {} file descriptors; this process may open {fd_limit}. \
                 Run several ringmq-loadgen processes side by side, each with fewer clients.",
                clients + FDS_RESERVED
            )));
        }
        let threads = spec.threads.clamp(1, plan.clients.len().max(1));
        let shared = Arc::new(Shared::new(threads));
        let now = clock::now();
        let mut coordinator = Coordinator {
            plan_publishers: plan.publishers().count() as u64,
            plan_clients: clients,
            qos_acked: plan.settings.qos != ringmq::codec::QoS::AtMostOnce,
            spec: RunSpec { threads, ..spec },
            shared,
            wakers: Vec::with_capacity(threads),
            handles: Vec::with_capacity(threads),
            timeline: Timeline {
                setup_start: now,
                ..Timeline::default()
            },
            cpu: CpuMarks {
                setup_start_us: sys::process_cpu_us(),
                ..CpuMarks::default()
            },
            broker: None,
            last_progress: (now, Counters::default(), sys::process_cpu_us()),
        };
        if let Some(pid) = coordinator.spec.broker_pid {
            let s = procfs::sample(pid)
                .map_err(|e| LoadgenError::io(format!("--broker-pid {pid}"), e))?;
            coordinator.broker = Some(BrokerMarks {
                pid,
                setup_start: s,
                setup_end: s,
                run_start: s,
                drain_end: s,
            });
        }
        coordinator.spawn(plan)?;
        Ok(coordinator)
    }

    fn spawn(&mut self, plan: Plan) -> Result<(), LoadgenError> {
        let threads = self.spec.threads;
        let mut shares: Vec<Vec<ClientSpec>> = (0..threads).map(|_| Vec::new()).collect();
        for (i, client) in plan.clients.into_iter().enumerate() {
            shares[i % threads].push(client);
        }
        for (index, specs) in shares.into_iter().enumerate() {
            let poll = Poll::new().map_err(|e| LoadgenError::io("epoll", e))?;
            let waker = Worker::waker(&poll).map_err(|e| LoadgenError::io("eventfd", e))?;
            let config = WorkerConfig {
                index,
                threads,
                target: self.spec.target,
                transport: self.spec.transport.clone(),
                source_ips: self.spec.source_ips,
                connect_timeout: self.spec.connect_timeout,
                connect_rate_per_s: self.spec.connect_rate_per_s,
                settings: plan.settings.clone(),
            };
            let worker = Worker::new(config, self.shared.clone(), poll, specs)
                .map_err(|e| LoadgenError::io("worker set-up", e))?;
            let handle = std::thread::Builder::new()
                .name(format!("loadgen-{index}"))
                .spawn(move || worker.run())
                .map_err(|e| LoadgenError::io("spawning a worker thread", e))?;
            self.wakers.push(waker);
            self.handles.push(handle);
        }
        Ok(())
    }

    fn set_phase(&self, phase: Phase) {
        self.shared.set_phase(phase);
        for waker in &self.wakers {
            let _ = waker.wake();
        }
    }

    /// Waits until every client is ready or failed. With `require_all`, any failure is an
    /// error (message accounting needs every client).
    pub fn wait_setup(&mut self, require_all: bool) -> Result<(), LoadgenError> {
        let stall_limit = self.spec.connect_timeout + Duration::from_secs(1);
        let mut last_change = (clock::now(), 0u64);
        loop {
            let t = self.shared.totals();
            let settled = t.ready + t.failed;
            let now = clock::now();
            self.progress(Phase::Setup, now, &t);
            if settled >= self.plan_clients {
                break;
            }
            if require_all && t.failed > 0 {
                return Err(self.setup_error(&t));
            }
            if settled != last_change.1 {
                last_change = (now, settled);
            } else if now.since(last_change.0) > stall_limit.as_nanos() as u64 {
                return Err(LoadgenError::Setup(format!(
                    "setup stalled: {settled} of {} clients settled",
                    self.plan_clients
                )));
            }
            std::thread::sleep(TICK);
        }
        let t = self.shared.totals();
        if require_all && t.failed > 0 {
            return Err(self.setup_error(&t));
        }
        self.timeline.setup_end = clock::now();
        self.cpu.setup_end_us = sys::process_cpu_us();
        self.sample_broker(|b, s| b.setup_end = s);
        Ok(())
    }

    fn setup_error(&self, t: &Counters) -> LoadgenError {
        let (errors, _) = self.shared.errors();
        let first = errors.first().cloned().unwrap_or_default();
        LoadgenError::Setup(format!(
            "{} of {} clients could not connect to {} (first: {first})",
            t.failed, self.plan_clients, self.spec.target
        ))
    }

    /// Runs `Prime` until `flooders` report their retained messages stored.
    pub fn prime(&mut self, flooders: u64) -> Result<Duration, LoadgenError> {
        self.wait_for(
            Phase::Prime,
            |t| t.primed >= flooders,
            "storing the retained messages",
        )
    }

    /// Runs `Cleanup` until `flooders` report their retained messages deleted.
    pub fn cleanup(&mut self, flooders: u64) -> Result<Duration, LoadgenError> {
        self.wait_for(
            Phase::Cleanup,
            |t| t.cleaned >= flooders,
            "deleting the retained messages",
        )
    }

    fn wait_for(
        &mut self,
        phase: Phase,
        done: impl Fn(&Counters) -> bool,
        what: &str,
    ) -> Result<Duration, LoadgenError> {
        let start = clock::now();
        self.set_phase(phase);
        loop {
            let t = self.shared.totals();
            let now = clock::now();
            self.progress(phase, now, &t);
            if done(&t) {
                return Ok(Duration::from_nanos(now.since(start)));
            }
            if t.dropped > 0 || now.since(start) > PRIME_TIMEOUT.as_nanos() as u64 {
                let (errors, _) = self.shared.errors();
                return Err(LoadgenError::Setup(format!(
                    "{what} did not complete: {errors:?}"
                )));
            }
            std::thread::sleep(TICK);
        }
    }

    /// Runs for the duration, or until every publisher has sent its count (or, with
    /// `rounds_total`, every reader has done its rounds).
    pub fn run(&mut self, rounds_total: Option<u64>) {
        self.cpu.run_start_us = sys::process_cpu_us();
        self.sample_broker(|b, s| b.run_start = s);
        let start = clock::now().plus(RUN_START_DELAY);
        let run = RunWindow {
            start,
            end: start.plus(self.spec.duration),
        };
        self.shared.set_run_window(run);
        self.set_phase(Phase::Run);
        self.timeline.run_start = start;
        loop {
            let t = self.shared.totals();
            let now = clock::now();
            self.progress(Phase::Run, now, &t);
            let publishers_done =
                self.plan_publishers > 0 && t.publishers_done >= self.plan_publishers;
            let rounds_done = rounds_total.is_some_and(|r| t.rounds >= r);
            if now >= run.end || publishers_done || rounds_done {
                break;
            }
            std::thread::sleep(TICK.min(Duration::from_nanos(run.end.since(now).max(1))));
        }
        self.timeline.run_end = clock::now().max(start);
        self.cpu.run_end_us = sys::process_cpu_us();
    }

    /// Waits for what is in flight: acks, deliveries, an open-loop backlog, a reader's round.
    pub fn drain(&mut self) {
        self.set_phase(Phase::Drain);
        let start = clock::now();
        let mut last_change = (start, 0u64);
        loop {
            let t = self.shared.totals();
            let now = clock::now();
            self.progress(Phase::Drain, now, &t);
            let outstanding = self.outstanding(&t);
            let settled = t.publishers_done >= self.plan_publishers
                && outstanding == 0
                && t.delivered >= t.expected
                && t.rounds_started <= t.rounds;
            let motion = t.sent + t.acked + t.delivered + t.rounds;
            if motion != last_change.1 {
                last_change = (now, motion);
            }
            let idle = now.since(last_change.0) >= DRAIN_IDLE.as_nanos() as u64;
            let expired = now.since(start) >= self.spec.drain_timeout.as_nanos() as u64;
            if settled || idle || expired {
                break;
            }
            std::thread::sleep(TICK);
        }
        self.timeline.drain_end = clock::now();
        self.cpu.drain_end_us = sys::process_cpu_us();
        self.sample_broker(|b, s| b.drain_end = s);
    }

    fn outstanding(&self, t: &Counters) -> u64 {
        if self.qos_acked {
            t.sent.saturating_sub(t.acked + t.abandoned)
        } else {
            0
        }
    }

    /// Stops the workers, joins them and merges their results.
    pub fn finish(mut self) -> RunOutput {
        let outputs = self.stop_and_join();
        let mut measure = Measure::default();
        let mut sent: HashMap<_, (u64, u32)> = HashMap::new();
        let mut deliveries: HashMap<_, crate::accounting::DeliveryCounts> = HashMap::new();
        for output in &outputs {
            measure.merge(&output.measure);
            for &(id, n, fanout) in &output.publishers {
                sent.insert(id, (n, fanout));
            }
            for (id, counts) in &output.deliveries {
                deliveries.entry(*id).or_default().add(counts);
            }
        }
        let mut tallies: Vec<PublisherTally> = sent
            .iter()
            .map(|(id, &(n, fanout))| {
                PublisherTally::new(*id, n, fanout, deliveries.remove(id).unwrap_or_default())
            })
            .collect();
        // Deliveries from publishers that are not ours (another run on the same topics).
        for (id, counts) in deliveries {
            tallies.push(PublisherTally::new(id, 0, 0, counts));
        }
        tallies.sort_by_key(|t| t.publisher);
        let (errors, errors_total) = self.shared.errors();
        RunOutput {
            measure,
            tallies,
            timeline: self.timeline,
            cpu: self.cpu,
            broker: self.broker,
            threads: self.spec.threads,
            clients: self.plan_clients,
            errors,
            errors_total,
        }
    }

    fn stop_and_join(&mut self) -> Vec<WorkerOutput> {
        self.set_phase(Phase::Stop);
        let mut outputs = Vec::with_capacity(self.handles.len());
        for handle in self.handles.drain(..) {
            match handle.join() {
                Ok(output) => outputs.push(output),
                Err(_) => self.shared.record_error("a worker thread panicked".into()),
            }
        }
        outputs
    }

    fn sample_broker(&mut self, set: impl Fn(&mut BrokerMarks, ProcSample)) {
        if let Some(broker) = &mut self.broker {
            match procfs::sample(broker.pid) {
                Ok(sample) => set(broker, sample),
                Err(error) => self
                    .shared
                    .record_error(format!("broker pid {}: {error}", broker.pid)),
            }
        }
    }

    fn progress(&mut self, phase: Phase, now: MonoNs, t: &Counters) {
        let (last_at, last, last_cpu_us) = self.last_progress;
        if !self.spec.progress || now.since(last_at) < PROGRESS_PERIOD.as_nanos() as u64 {
            return;
        }
        let seconds = clock::seconds_between(last_at, now).max(1e-9);
        let per_s = |a: u64, b: u64| fmt_rate(a.saturating_sub(b) as f64 / seconds);
        let cpu_us = sys::process_cpu_us();
        let cpu_share =
            cpu_us.saturating_sub(last_cpu_us) as f64 / 1e6 / (self.spec.threads as f64 * seconds);
        eprintln!(
            "[{:>6.1}s] {:<7} ready {}/{}  sent {}/s  delivered {}/s  outstanding {}  failed {}  rounds {}  loadgen cpu {:.0}%",
            clock::seconds_between(self.timeline.setup_start, now),
            phase.name(),
            t.ready,
            self.plan_clients,
            per_s(t.sent, last.sent),
            per_s(t.delivered, last.delivered),
            self.outstanding(t),
            t.dropped + t.failed,
            t.rounds,
            cpu_share * 100.0,
        );
        self.last_progress = (now, *t, cpu_us);
    }
}

impl Drop for Coordinator {
    fn drop(&mut self) {
        if !self.handles.is_empty() {
            let _ = self.stop_and_join();
        }
    }
}

/// `95.1k`, `1.20M`, `812`.
pub fn fmt_rate(per_s: f64) -> String {
    if per_s >= 1e6 {
        format!("{:.2}M", per_s / 1e6)
    } else if per_s >= 1e3 {
        format!("{:.1}k", per_s / 1e3)
    } else {
        format!("{per_s:.0}")
    }
}
