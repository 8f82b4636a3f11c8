//! One worker thread: a single-threaded epoll loop (mio) that owns a share of the clients,
//! like a broker shard owns a share of the connections.
//!
//! Each loop turn, in order: follow the coordinator's phase, start due connects, expire slow
//! ones, fire due timers, pump the runnable clients, do housekeeping, then write every dirty
//! connection's output once (batch, then flush), and wait for readiness. Clients are pumped
//! only when something can have changed for them: a phase change, an ack, a drained socket,
//! or a due time. Due times come from a heap and wake a timerfd, so open-loop sends are not
//! rounded up to epoll's millisecond timeout.
//!
//! Everything is bounded: at most [`CONNECTS_IN_FLIGHT_MAX`] connects at once, at most
//! [`READS_PER_EVENT_MAX`] reads per readiness event, output per connection per
//! `client::OUTBOUND_MAX_BYTES`, and the stop flush by [`STOP_FLUSH_TIMEOUT`].

mod io;
pub(crate) mod net;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use mio::{Events, Poll, Token, Waker};

use crate::accounting::DeliveryCounts;
use crate::client::{Client, Ctx, Pump};
use crate::clock::{self, MonoNs};
use crate::measure::Measure;
use crate::phase::{Phase, RunWindow};
use crate::plan::{ClientSpec, Settings};
use crate::schedule::RateSchedule;
use crate::shared::Shared;
use crate::stamp::PublisherId;
use crate::sys::TimerFd;
use crate::transport::{Transport, TransportSpec};

/// Connects started and not yet ready, per worker: enough to fill the broker's accept queue
/// quickly, few enough not to overflow its listen backlog.
pub const CONNECTS_IN_FLIGHT_MAX: u64 = 256;
/// Reads per readiness event before the connection goes to the back of the line.
pub const READS_PER_EVENT_MAX: usize = 16;
/// Bytes per read, reused by every connection of the thread.
pub const READ_CHUNK_BYTES: usize = 64 * 1024;
/// Client bytes wrapped per write over TLS or WebSocket: one WebSocket frame and four TLS
/// records. Batches are usually far smaller; this bounds the copy a stalled socket leaves.
pub const SEAL_BATCH_MAX_BYTES: usize = 64 * 1024;
/// Readiness events taken per poll.
pub const EVENTS_MAX: usize = 1024;
/// How long a worker keeps flushing DISCONNECTs and deletions after `Stop`.
pub const STOP_FLUSH_TIMEOUT: Duration = Duration::from_secs(2);
/// The longest the loop sleeps when nothing is due: bounds how late a connect timeout or a
/// keep-alive is noticed.
pub const POLL_TIMEOUT_MAX: Duration = Duration::from_millis(50);
/// Period of the keep-alive scan.
pub const HOUSEKEEPING_PERIOD: Duration = Duration::from_secs(1);

pub(crate) const WAKER_TOKEN: Token = Token(usize::MAX - 1);
pub(crate) const TIMER_TOKEN: Token = Token(usize::MAX - 2);

/// What a worker is told at start.
#[derive(Debug, Clone)]
pub(crate) struct WorkerConfig {
    pub index: usize,
    pub threads: usize,
    pub target: SocketAddr,
    pub transport: TransportSpec,
    pub source_ips: u8,
    pub connect_timeout: Duration,
    /// Connects per second over all workers; 0 starts them as fast as the in-flight cap allows.
    pub connect_rate_per_s: u64,
    pub settings: Settings,
}

/// What a worker hands back.
#[derive(Debug, Default)]
pub(crate) struct WorkerOutput {
    pub measure: Measure,
    /// (publisher, sent, fanout) for each publisher of this worker.
    pub publishers: Vec<(PublisherId, u64, u32)>,
    /// Deliveries per publisher over this worker's subscribers.
    pub deliveries: HashMap<PublisherId, DeliveryCounts>,
}

/// One connection slot. The token of connection `i` is `Token(i)`.
struct Conn {
    client: Client,
    stream: Option<mio::net::TcpStream>,
    /// TLS / WebSocket between the socket and the client; plain and unstarted until connect.
    transport: Transport,
    /// Transformed bytes waiting for the socket (TLS records, frames). Always empty on plain
    /// TCP, where the client's own output buffer is written directly.
    wire: BytesMut,
    /// A write hit WouldBlock: wait for a writable event before writing or pumping.
    write_blocked: bool,
    queued: bool,
    dirty: bool,
    timer_at: Option<MonoNs>,
    last_write_at: MonoNs,
}

pub(crate) struct Worker {
    config: WorkerConfig,
    shared: Arc<Shared>,
    poll: Poll,
    events: Events,
    timer: TimerFd,
    timer_armed: Option<MonoNs>,
    conns: Vec<Conn>,
    next_connect: usize,
    connect_schedule: Option<RateSchedule>,
    /// (ready-by deadline, connection), in start order, so deadlines are sorted.
    connecting: VecDeque<(MonoNs, usize)>,
    runnable: VecDeque<usize>,
    timers: BinaryHeap<Reverse<(MonoNs, usize)>>,
    dirty: Vec<usize>,
    read_again: Vec<usize>,
    scratch: Box<[u8]>,
    measure: Measure,
    phase: Phase,
    run: RunWindow,
    next_housekeeping: MonoNs,
    stop_deadline: MonoNs,
    /// Seeds each connection's WebSocket key and masks (splitmix64 over a random start).
    seed: u64,
}

impl Worker {
    /// Builds a worker on the coordinator's thread; `waker` must have been made from `poll`.
    pub(crate) fn new(
        config: WorkerConfig,
        shared: Arc<Shared>,
        poll: Poll,
        specs: Vec<ClientSpec>,
    ) -> std::io::Result<Worker> {
        let timer = TimerFd::new()?;
        poll.registry().register(
            &mut mio::unix::SourceFd(&timer.raw()),
            TIMER_TOKEN,
            mio::Interest::READABLE,
        )?;
        let conns: Vec<Conn> = specs
            .iter()
            .map(|spec| Conn {
                client: Client::new(spec, &config.settings),
                stream: None,
                transport: Transport::unstarted(),
                wire: BytesMut::new(),
                write_blocked: false,
                queued: false,
                dirty: false,
                timer_at: None,
                last_write_at: MonoNs::ZERO,
            })
            .collect();
        let n = conns.len();
        Ok(Worker {
            config,
            shared,
            poll,
            events: Events::with_capacity(EVENTS_MAX),
            timer,
            timer_armed: None,
            conns,
            next_connect: 0,
            connect_schedule: None,
            connecting: VecDeque::with_capacity(n),
            runnable: VecDeque::with_capacity(n),
            timers: BinaryHeap::with_capacity(2 * n),
            dirty: Vec::with_capacity(n),
            read_again: Vec::with_capacity(n),
            scratch: vec![0u8; READ_CHUNK_BYTES].into_boxed_slice(),
            measure: Measure::default(),
            phase: Phase::Setup,
            run: RunWindow::UNSET,
            next_housekeeping: MonoNs::ZERO,
            stop_deadline: MonoNs::MAX,
            // Without the OS's randomness the clock still makes keys differ between runs.
            seed: getrandom::u64().unwrap_or_else(|_| clock::now().since(MonoNs::ZERO)),
        })
    }

    /// A waker for the coordinator, registered on this worker's poll.
    pub(crate) fn waker(poll: &Poll) -> std::io::Result<Waker> {
        Waker::new(poll.registry(), WAKER_TOKEN)
    }

    /// Runs until the coordinator says `Stop` and the goodbyes are flushed.
    pub(crate) fn run(mut self) -> WorkerOutput {
        let start = clock::now();
        if self.config.connect_rate_per_s > 0 {
            let (threads, index) = (self.config.threads as u64, self.config.index as u64);
            self.connect_schedule = Some(RateSchedule::new(
                start,
                self.config.connect_rate_per_s,
                threads,
                index,
            ));
        }
        loop {
            let now = clock::now();
            self.follow_phase(now);
            if self.phase == Phase::Stop && (self.all_closed() || now >= self.stop_deadline) {
                break;
            }
            self.start_connects(now);
            self.expire_connects(now);
            self.fire_timers(now);
            self.pump_runnable(now);
            self.housekeeping(now);
            self.flush_dirty(now);
            self.shared
                .worker(self.config.index)
                .store(&self.measure.counters);
            let timeout = self.poll_timeout(clock::now());
            if let Err(error) = self.poll.poll(&mut self.events, Some(timeout)) {
                if error.kind() != std::io::ErrorKind::Interrupted {
                    self.shared
                        .record_error(format!("worker {}: poll: {error}", self.config.index));
                    break;
                }
            }
            self.handle_events(clock::now());
        }
        self.shared
            .worker(self.config.index)
            .store(&self.measure.counters);
        self.output()
    }

    fn follow_phase(&mut self, now: MonoNs) {
        let phase = self.shared.phase();
        if phase == self.phase {
            return;
        }
        self.phase = phase;
        self.run = self.shared.run_window();
        if phase == Phase::Stop {
            self.stop_deadline = now.plus(STOP_FLUSH_TIMEOUT);
            for i in 0..self.conns.len() {
                let mut ctx = Ctx {
                    now,
                    phase,
                    run: self.run,
                    measure: &mut self.measure,
                };
                self.conns[i].client.disconnect(&mut ctx);
                self.mark_dirty(i);
            }
            return;
        }
        // Each client decides what the new phase means for its role.
        for i in 0..self.conns.len() {
            if self.conns[i].client.is_ready() {
                self.enqueue(i);
            }
        }
    }

    fn pump_runnable(&mut self, now: MonoNs) {
        for _ in 0..self.runnable.len() {
            let Some(i) = self.runnable.pop_front() else {
                break;
            };
            self.conns[i].queued = false;
            if self.conns[i].write_blocked || self.conns[i].client.is_closed() {
                continue; // a writable event re-queues it
            }
            let mut ctx = Ctx {
                now,
                phase: self.phase,
                run: self.run,
                measure: &mut self.measure,
            };
            match self.conns[i].client.pump(&mut ctx) {
                Pump::Idle => {}
                Pump::Again => self.enqueue(i),
                Pump::At(at) => self.schedule(i, at),
            }
            self.mark_dirty(i);
        }
    }

    fn fire_timers(&mut self, now: MonoNs) {
        while let Some(&Reverse((at, i))) = self.timers.peek() {
            if at > now {
                break;
            }
            self.timers.pop();
            if self.conns[i].timer_at == Some(at) {
                self.conns[i].timer_at = None;
                self.enqueue(i);
            }
        }
    }

    fn schedule(&mut self, i: usize, at: MonoNs) {
        if self.conns[i].timer_at == Some(at) {
            return;
        }
        self.conns[i].timer_at = Some(at);
        self.timers.push(Reverse((at, i)));
    }

    fn enqueue(&mut self, i: usize) {
        if !self.conns[i].queued {
            self.conns[i].queued = true;
            self.runnable.push_back(i);
        }
    }

    fn mark_dirty(&mut self, i: usize) {
        if !self.conns[i].dirty {
            self.conns[i].dirty = true;
            self.dirty.push(i);
        }
    }

    /// Keep-alive pings for connections idle for half the keep-alive, and a second chance for
    /// reads cut short by the per-event budget.
    fn housekeeping(&mut self, now: MonoNs) {
        for i in std::mem::take(&mut self.read_again) {
            self.read(i, now);
        }
        if now < self.next_housekeeping {
            return;
        }
        self.next_housekeeping = now.plus(HOUSEKEEPING_PERIOD);
        let idle_ns = u64::from(self.config.settings.keep_alive_s) * 1_000_000_000 / 2;
        for i in 0..self.conns.len() {
            let conn = &mut self.conns[i];
            if conn.client.is_ready() && now.since(conn.last_write_at) >= idle_ns {
                conn.client.ping();
                conn.last_write_at = now;
                self.mark_dirty(i);
            }
        }
    }

    /// How long to sleep: zero if work is waiting; otherwise the timerfd is armed for the
    /// next due time and the poll timeout only bounds how late slow checks run.
    fn poll_timeout(&mut self, now: MonoNs) -> Duration {
        if !self.runnable.is_empty() || !self.read_again.is_empty() {
            return Duration::ZERO;
        }
        let mut next = self.timers.peek().map_or(MonoNs::MAX, |t| t.0 .0);
        if self.phase == Phase::Setup && self.next_connect < self.conns.len() {
            if let Some(schedule) = &self.connect_schedule {
                next = next.min(schedule.due(self.next_connect as u64));
            }
        }
        if next <= now {
            return Duration::ZERO;
        }
        if next != MonoNs::MAX && self.timer_armed != Some(next) {
            match self.timer.arm(Duration::from_nanos(next.since(now))) {
                Ok(()) => self.timer_armed = Some(next),
                Err(error) => self.shared.record_error(format!("timerfd: {error}")),
            }
        }
        POLL_TIMEOUT_MAX
    }

    /// The next connection's seed: splitmix64, so neighbouring connections differ in every bit.
    fn next_seed(&mut self) -> u64 {
        self.seed = self.seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.seed;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn all_closed(&self) -> bool {
        self.conns.iter().all(|c| c.stream.is_none())
    }

    fn output(self) -> WorkerOutput {
        let mut output = WorkerOutput {
            measure: self.measure,
            ..WorkerOutput::default()
        };
        for conn in &self.conns {
            if let Some(outcome) = conn.client.publisher_outcome() {
                output.publishers.push(outcome);
            }
            if let Some(streams) = conn.client.streams() {
                streams.sum_into(&mut output.deliveries);
            }
        }
        output
    }
}
