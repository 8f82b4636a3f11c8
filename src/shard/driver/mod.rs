//! The only code in `shard` that awaits: sockets, timers and the flush loop around one
//! [`Shard`], on either I/O backend.
//!
//! # Tasks on a shard thread
//! - one accept loop per listener;
//! - one reader task per connection, which feeds [`Shard::handle_read`];
//! - one flusher, woken when some connection has output; it starts a short-lived writer task
//!   per dirty connection that has none running. A writer drains the connection's output and
//!   exits, so an idle connection has no writer and no write buffer;
//! - one ticker (1 s) for keep-alive, CONNECT timeouts, `$SYS`, and handing freed allocator
//!   pages back ([`release_freed_memory`]).
//!
//! Why not one task per connection that both reads and writes: it would hold its write state
//! beside the io_uring read future, which alone is 104 of the 152 bytes that fit tokio's
//! 256-byte task cell, so every idle connection would pay 128 bytes more to save work that
//! only busy ones do. And that work is small: on the publish path (`loadgen pubsub`, QoS 1)
//! the driver, tokio and tokio-uring together take under 3% of the broker's CPU, against
//! ~60% in the shard, session and codec.
//!
//! Batching falls out of the scheduling order: reads that complete in the same tick all run
//! before the flusher, so each connection gets one write for everything encoded in that tick.
//!
//! # Memory per idle connection
//! At 10^4..10^6 mostly idle clients the broker's footprint is its per-connection footprint,
//! so every byte an idle connection holds is listed here. Measured with a counting allocator
//! at 10,000 idle 3.1.1 connections on one io_uring shard (RSS 1,087 B per connection when the
//! last one is up, ~1,000 a second later once the ticker has returned freed pages):
//!
//! | what | bytes | owner | why this size |
//! |---|---|---|---|
//! | reader task | 256 | here | tokio's task cell is `repr(align(128))` with 104 bytes of header and trailer, so a reader future of at most [`READER_FUTURE_BYTES_MAX`] takes two cache lines instead of three (a test checks both backends) |
//! | pending read buffer | 16 | here | [`IDLE_READ_BYTES`]; see below |
//! | `Rc<Stream>` | 24 | here | shared by the reader and, while one runs, the writer |
//! | handle slot | 24 | here | `Driver::handles`, a `Vec` indexed by connection slot and pre-sized like the shard's slabs: no hash entry, no copies left behind by growth; 8 of the 24 are the pointer to a TLS/WebSocket transport (`transport.rs`), `None` on plain MQTT |
//! | socket record | 56 | tokio-uring | its `SharedFd` (plus a slab entry for the pending op) |
//! | connection slot | 96 | `Shard` | `Conn`: the partial-frame buffer is boxed on demand and the peer address compact (a test keeps it at 96) |
//! | session slot | 240 | `session` | `SessionEntry` |
//! | client id | 16 + 24 | `Shard` | copied out of the CONNECT frame, so the frame is freed; 24 is the shared header of the clones held by the session, the client map and the home registry |
//! | client map, home registry | ~65 + ~120 | `Shard`, `peer.rs` | hash-table entries (40 and 72 bytes) at 7/8 load, amortised |
//!
//! Under epoll the reader task is also 256 bytes, with no read buffer, but tokio's readiness
//! record (`ScheduledIo`) is 256 bytes and its stream 40, about 160 bytes more than io_uring.
//! With several shards each thread has its own allocator heap, which costs ~150 bytes more
//! per connection at 10^4 connections (fixed per thread, so less at 10^5).
//!
//! Under io_uring a pending read owns its buffer until data arrives, so a naive 16 KiB read
//! per connection costs 16 KiB per idle client. Readers instead always post a tiny read
//! ([`IDLE_READ_BYTES`], enough for a PINGREQ or an ack); when a read fills it, the rest is
//! taken at once with non-blocking `recv` calls into the shard's pooled full-size buffer
//! (`uring::drain_ready`), as the epoll backend does, and the next posted read is tiny
//! again. The first read of a connection, which carries its CONNECT, uses
//! [`CONNECT_READ_BYTES`] so that a typical CONNECT takes one read.
//! Read buffers are a [`ReadBuf`] (16 bytes on the stack, a `Vec` is 24): tokio-uring's read
//! future holds its buffer three times over, and those 24 bytes are what fit the reader in
//! 256 bytes.
//!
//! Under epoll the reader waits for readiness and reads into one buffer shared by the whole
//! shard, so an idle connection holds no read buffer at all.
//!
//! # Closing
//! The shard decides to close; the writer flushes what is left and shuts the socket down, which
//! completes the reader's pending read with EOF. The reader then frees the connection. No
//! in-flight io_uring operation is ever cancelled by dropping its future.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::io;
use std::net::{Shutdown, SocketAddr};
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::{watch, Notify};

use std::sync::Arc;

use crate::auth::Access;
use crate::mesh::Published;
use crate::metrics::{LatencyHistogram, ShardReport};

use super::{ConnectionId, Shard, VerifyRequest};

/// Bytes an idle connection's pending io_uring read holds: a PINGREQ, a DISCONNECT or a few
/// acks. A read that fills it moves the connection to full-size reads. (mimalloc's smallest
/// size classes are 8 and 16 bytes; 64 cost 48 bytes more per idle connection.)
pub const IDLE_READ_BYTES: usize = 16;

/// Bytes of a connection's first read, which carries its CONNECT. Freed when the read
/// completes; a socket that connects and says nothing holds it until `CONNECT_TIMEOUT`.
pub const CONNECT_READ_BYTES: usize = 256;

/// The largest reader future that still fits tokio's task cell in 256 bytes (the cell is
/// `repr(align(128))`; header, scheduler, task id, stage tag and trailer take 104 bytes).
/// One byte more costs 128 bytes per connection. `tests::reader_futures_fit_the_cell` checks
/// both backends.
pub const READER_FUTURE_BYTES_MAX: usize = 152;

/// Full-size read buffers kept for reuse per shard; more are freed after use.
pub const READ_POOL_MAX: usize = 256;

/// How long an orderly shutdown waits for connections to flush and close.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// 10 ms rounds without mesh traffic after which a shutting-down shard with a log takes its
/// last commit: every shard closed its connections by then, so nothing new is routed.
const MESH_QUIET_ROUNDS: u32 = 5;

/// A connected socket on either backend: what the writer and the shutdown path need.
pub trait Stream: 'static {
    fn write_all(&self, bytes: Bytes) -> impl Future<Output = io::Result<()>>;
    fn shutdown(&self);
}

/// A read buffer whose heap block never moves and whose bytes are all initialised: a boxed
/// slice, 16 bytes where a `Vec` takes 24 (see the module docs for why that matters).
pub struct ReadBuf(Box<[u8]>);

impl ReadBuf {
    /// Zeroed once at allocation; full-size buffers are pooled, so that is once per buffer.
    fn new(len: usize) -> ReadBuf {
        ReadBuf(vec![0; len].into_boxed_slice())
    }

    fn len(&self) -> usize {
        self.0.len()
    }
}

// `stable_ptr` points into the boxed slice's heap block, which moving the `ReadBuf` does not
// move and which lives until the `ReadBuf` is dropped (tokio-uring owns the value for as long
// as the kernel may use the pointer). Every byte of the block is initialised (it is allocated
// zeroed), so `bytes_init == bytes_total == len`.
// SAFETY: a stable, fully initialised block, as just argued.
unsafe impl tokio_uring::buf::IoBuf for ReadBuf {
    fn stable_ptr(&self) -> *const u8 {
        self.0.as_ptr()
    }

    fn bytes_init(&self) -> usize {
        self.0.len()
    }

    fn bytes_total(&self) -> usize {
        self.0.len()
    }
}

// SAFETY: as for `IoBuf` above: the mutable pointer is the same stable heap block.
unsafe impl tokio_uring::buf::IoBufMut for ReadBuf {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.0.as_mut_ptr()
    }

    // SAFETY: nothing to record: every byte is initialised from the start.
    unsafe fn set_init(&mut self, _pos: usize) {}
}

/// The writer's handle on one connection, in `Driver::handles` at the connection's slot.
struct Handle<S> {
    stream: Rc<S>,
    /// A writer task is running for this connection.
    writing: bool,
    /// TLS and/or WebSocket between the socket and the shard (`transport.rs`); `None` for
    /// plain MQTT, which pays 8 bytes for it.
    transport: Option<Box<crate::transport::Transport>>,
}

/// Everything the tasks of one shard thread share. Single-threaded: `Rc` and `RefCell`.
pub struct Driver<S> {
    pub shard: RefCell<Shard>,
    /// Indexed by `ConnectionId::index`. The shard's connection slab frees a slot only in
    /// `on_closed`, which also empties this one, so the two stay in step and a slot here is
    /// never stale. Pre-sized like the slab: untouched capacity is never paged in.
    handles: RefCell<Vec<Option<Handle<S>>>>,
    /// Rung when the shard has dirty connections; holds one permit, so bursts coalesce.
    flush: Notify,
    /// Full-size read buffers for reuse (io_uring) or the shared read buffer (epoll).
    pool: RefCell<Vec<ReadBuf>>,
    read_buffer_bytes: usize,
    /// Set while the mesh backlog is over `mesh_backlog_max`: readers post no new reads, so
    /// QoS 1/2 messages for other shards wait in the client's socket instead of being dropped.
    reads_paused: Cell<bool>,
    reads_resumed: Notify,
    mesh_backlog_max: usize,
    /// Where password checks go (set by [`Driver::serve_verifier`]); without it they fail.
    verifier: RefCell<Option<super::verifier::Submitter>>,
    /// The access policy the runtime replaces on SIGHUP, and the generation last taken.
    access: RefCell<Option<(Arc<Published<Access>>, u64)>>,
    /// Handshake deadlines and scratch space of TLS and WebSocket connections.
    transports: transport::Transports,
    /// Where the ticker leaves this shard's `/metrics` report (set by [`Driver::report_to`]).
    report: RefCell<Option<Arc<Published<ShardReport>>>>,
    /// The oldest read since the last flush that carried a PUBLISH, and the histogram of how
    /// long such reads waited for their flush (`ShardReport::latency`).
    oldest_publish_read: Cell<Option<Instant>>,
    latency: RefCell<LatencyHistogram>,
    /// Rung when an acknowledgement waits for the log (`sync` durability, `wal.rs`), and at
    /// shutdown.
    wal_kick: Notify,
    wal_stopping: Cell<bool>,
}

impl<S: Stream> Driver<S> {
    pub fn new(shard: Shard) -> Rc<Driver<S>> {
        let read_buffer_bytes = shard.limits().read_buffer_bytes as usize;
        let mesh_backlog_max = shard.limits().mesh_backlog_max as usize;
        let shards = shard.mesh_endpoint().shard_count();
        let handles_max = (shard.limits().connections_max as usize).div_ceil(shards);
        Rc::new(Driver {
            reads_paused: Cell::new(false),
            reads_resumed: Notify::new(),
            mesh_backlog_max,
            shard: RefCell::new(shard),
            handles: RefCell::new(Vec::with_capacity(handles_max)),
            flush: Notify::new(),
            pool: RefCell::new(Vec::new()),
            read_buffer_bytes,
            verifier: RefCell::new(None),
            access: RefCell::new(None),
            transports: Default::default(),
            report: RefCell::new(None),
            oldest_publish_read: Cell::new(None),
            latency: RefCell::new(LatencyHistogram::default()),
            wal_kick: Notify::new(),
            wal_stopping: Cell::new(false),
        })
    }

    /// Makes the shard take each access policy the runtime publishes (checked once a tick).
    /// `seen` is the generation of the policy the shard already has.
    pub fn follow_access(&self, published: Arc<Published<Access>>, seen: u64) {
        *self.access.borrow_mut() = Some((published, seen));
    }

    /// Makes the ticker publish this shard's report for `/metrics` once a second.
    pub fn report_to(&self, published: Arc<Published<ShardReport>>) {
        *self.report.borrow_mut() = Some(published);
    }

    /// Sends this shard's password checks to the verifier threads and feeds their answers
    /// back. Runs until the verifier pool is gone.
    pub async fn serve_verifier(self: Rc<Self>, verifier: super::verifier::ShardVerifier) {
        let super::verifier::ShardVerifier {
            submitter,
            mut answers,
        } = verifier;
        *self.verifier.borrow_mut() = Some(submitter);
        while let Some(verified) = answers.recv().await {
            self.shard
                .borrow_mut()
                .handle_verified(Instant::now(), verified);
            self.wake_released();
            self.flush.notify_one();
        }
    }

    /// Hands the checks the shard queued to the verifier threads. A check that cannot be
    /// handed over is answered "refused" at once.
    fn submit_verifications(&self, requests: &mut Vec<VerifyRequest>) {
        self.shard.borrow_mut().drain_verify_requests(requests);
        if requests.is_empty() {
            return;
        }
        let verifier = self.verifier.borrow();
        for request in requests.drain(..) {
            let refused = match verifier.as_ref() {
                Some(submitter) => submitter.submit(request).err(),
                None => Some(request.refuse()),
            };
            if let Some(verified) = refused {
                self.shard
                    .borrow_mut()
                    .handle_verified(Instant::now(), verified);
            }
        }
    }

    /// Shuts down the sockets of connections whose close timed out. The blocked write then
    /// fails and the reader sees EOF, which frees the connection the usual way; no in-flight
    /// operation is cancelled.
    fn force_close(&self, ids: &mut Vec<ConnectionId>) {
        self.shard.borrow_mut().drain_force_closed(ids);
        let handles = self.handles.borrow();
        for id in ids.drain(..) {
            if let Some(Some(handle)) = handles.get(id.index as usize) {
                handle.stream.shutdown();
            }
        }
    }

    /// Takes a reloaded access policy, if the runtime published one since the last tick.
    fn take_new_access(&self) {
        let mut slot = self.access.borrow_mut();
        let Some((published, seen)) = slot.as_mut() else {
            return;
        };
        if let Some(access) = published.newer_than(seen) {
            self.shard.borrow_mut().set_access(access);
        }
    }

    /// Registers an accepted socket; `None` if the shard refuses it (`connections_max`, the
    /// listener's `max_connections`).
    pub fn register(
        &self,
        stream: Rc<S>,
        peer: SocketAddr,
        listener: &ListenerRuntime,
    ) -> Option<ConnectionId> {
        let now = Instant::now();
        let transport = match listener.start_transport() {
            Ok(transport) => transport.map(Box::new),
            Err(error) => {
                tracing::error!(%error, "cannot start a TLS session; refusing the connection");
                return None;
            }
        };
        let id = self.shard.borrow_mut().accept_on(now, peer, listener.id)?;
        if transport.is_some() {
            self.handshake_started(id, now);
        }
        let mut handles = self.handles.borrow_mut();
        let slot = id.index as usize;
        if handles.len() <= slot {
            handles.resize_with(slot + 1, || None);
        }
        assert!(
            handles[slot].is_none(),
            "connection slot {slot} still has a handle"
        );
        handles[slot] = Some(Handle {
            stream,
            writing: false,
            transport,
        });
        Some(id)
    }

    /// Feeds received bytes to the shard (through the connection's transport, if it has one)
    /// and wakes the flusher if anything became writable.
    pub fn on_read(self: &Rc<Self>, id: ConnectionId, data: &[u8]) {
        let now = Instant::now();
        let publishes_before = self.shard.borrow().stats().publish_received;
        if !self.transport_read(id, data) {
            self.shard.borrow_mut().handle_read(now, id, data);
        }
        if self.oldest_publish_read.get().is_none()
            && self.shard.borrow().stats().publish_received > publishes_before
        {
            self.oldest_publish_read.set(Some(now));
        }
        self.kick_wal();
        self.wake_released();
        self.flush.notify_one();
    }

    /// The reader saw EOF or an error: the connection is gone.
    pub fn on_closed(&self, id: ConnectionId) {
        self.shard.borrow_mut().handle_closed(Instant::now(), id);
        if let Some(slot) = self.handles.borrow_mut().get_mut(id.index as usize) {
            *slot = None;
        }
        self.wake_released();
        self.flush.notify_one();
    }

    /// A full-size read buffer, reused when one is free.
    fn take_buffer(&self) -> ReadBuf {
        self.pool
            .borrow_mut()
            .pop()
            .unwrap_or_else(|| ReadBuf::new(self.read_buffer_bytes))
    }

    /// Keeps a full-size buffer for reuse; frees smaller ones (and any beyond the pool limit).
    fn return_buffer(&self, buf: ReadBuf) {
        let mut pool = self.pool.borrow_mut();
        // Contents are left as they are: readers only look at the bytes a read reports.
        if pool.len() < READ_POOL_MAX && buf.len() == self.read_buffer_bytes {
            pool.push(buf);
        }
    }

    /// True while a reader must not post a read: the mesh is backed up or flow control
    /// throttles this connection.
    fn read_gated(&self, id: ConnectionId) -> bool {
        self.reads_paused.get() || self.shard.borrow().is_throttled(id)
    }

    /// Waits until [`Driver::read_gated`] is false. Readers box this future: it is rarely
    /// needed, and inline it would make every idle reader bigger.
    async fn read_gate(&self, id: ConnectionId) {
        while self.read_gated(id) {
            self.reads_resumed.notified().await;
        }
    }

    /// Wakes paused readers if the shard lifted a throttle. Call after any shard work.
    fn wake_released(&self) {
        if self.shard.borrow_mut().take_released() {
            self.reads_resumed.notify_waiters();
        }
    }

    /// Pauses reads above `mesh_backlog_max` and resumes them below half of it.
    fn update_read_gate(&self, backlog: usize) {
        if backlog >= self.mesh_backlog_max {
            if !self.reads_paused.replace(true) {
                self.shard.borrow_mut().set_reads_paused(true);
            }
        } else if self.reads_paused.get() && backlog < self.mesh_backlog_max / 2 {
            self.reads_paused.set(false);
            self.shard.borrow_mut().set_reads_paused(false);
            self.reads_resumed.notify_waiters();
        }
    }

    /// Takes messages from the other shards, then pushes this shard's batch to them. Sleeps on
    /// the doorbell when there is nothing to do. Runs forever.
    pub async fn mesh_pump(self: Rc<Self>) {
        let doorbells = self.shard.borrow().mesh_endpoint().doorbells();
        let me = self.shard.borrow().id().index();
        let batch_max = self.shard.borrow().limits().mesh_batch_max as usize;
        loop {
            let (taken, backlog) = {
                let mut shard = self.shard.borrow_mut();
                let taken = shard.handle_mesh(Instant::now());
                (taken, shard.flush_mesh())
            };
            self.kick_wal();
            self.update_read_gate(backlog);
            self.wake_released();
            self.flush.notify_one();
            if backlog > 0 {
                // A peer's ring is full: let this shard's sockets run, then try again. The peer
                // is draining on its own core; a timer sleep here (1 ms granularity) measured
                // 40% less cross-shard throughput than yielding.
                tokio::task::yield_now().await;
            } else if taken >= batch_max {
                // More may be waiting; let the sockets have a turn first.
                tokio::task::yield_now().await;
            } else if self.shard.borrow().mesh_endpoint().prepare_sleep() {
                doorbells[me].sleep().await;
            }
        }
    }

    /// Starts a writer for every dirty connection that has none, and pushes the tick's mesh
    /// messages. Runs forever.
    pub async fn flusher(self: Rc<Self>) {
        let mut dirty = Vec::new();
        let mut verifications = Vec::new();
        loop {
            self.flush.notified().await;
            self.submit_verifications(&mut verifications);
            let backlog = {
                let mut shard = self.shard.borrow_mut();
                shard.drain_dirty(&mut dirty);
                shard.flush_mesh()
            };
            self.update_read_gate(backlog);
            for id in dirty.drain(..) {
                self.ensure_writer(id);
            }
            if let Some(read_at) = self.oldest_publish_read.take() {
                self.latency.borrow_mut().record(read_at.elapsed());
            }
        }
    }

    /// Starts a writer for connection `id` unless one is running.
    fn ensure_writer(self: &Rc<Self>, id: ConnectionId) {
        let mut handles = self.handles.borrow_mut();
        let Some(Some(handle)) = handles.get_mut(id.index as usize) else {
            return;
        };
        if !handle.writing {
            handle.writing = true;
            let stream = handle.stream.clone();
            tokio::task::spawn_local(self.clone().writer(id, stream));
        }
    }

    /// Drains one connection's output, one write per chunk gathered since the last write.
    async fn writer(self: Rc<Self>, id: ConnectionId, stream: Rc<S>) {
        loop {
            let (bytes, close) = self.shard.borrow_mut().take_output(id);
            // Taking the output may have let a client that was over its output limit be read
            // again.
            if bytes.is_some() && self.shard.borrow_mut().resume_after_output(Instant::now()) {
                self.wake_released();
                self.flush.notify_one();
            }
            let (bytes, close) = self.wire_output(id, bytes, close);
            match bytes {
                Some(bytes) => {
                    if stream.write_all(bytes).await.is_err() {
                        stream.shutdown();
                        break;
                    }
                }
                None => {
                    if close {
                        stream.shutdown();
                    }
                    break;
                }
            }
        }
        // The slot may hold a newer connection by now if this one closed while the last write
        // was in flight; its stream is a different `Rc`.
        if let Some(Some(handle)) = self.handles.borrow_mut().get_mut(id.index as usize) {
            if Rc::ptr_eq(&handle.stream, &stream) {
                handle.writing = false;
            }
        }
    }

    /// Keep-alive, CONNECT timeouts and `$SYS`, once a second.
    pub async fn ticker(self: Rc<Self>) {
        let mut interval = tokio::time::interval(Duration::from_secs(1));
        let mut forced = Vec::new();
        loop {
            let scheduled = interval.tick().await.into_std();
            let lag = Instant::now().saturating_duration_since(scheduled);
            release_freed_memory();
            self.take_new_access();
            self.expire_handshakes(Instant::now());
            self.shard.borrow_mut().handle_tick(Instant::now());
            self.publish_report(lag);
            self.force_close(&mut forced);
            self.wake_released();
            self.flush.notify_one();
        }
    }

    /// Hands the admin thread this shard's numbers (a copy: nothing is shared while counting).
    fn publish_report(&self, loop_lag: Duration) {
        let report = self.report.borrow();
        let Some(published) = report.as_ref() else {
            return;
        };
        let mut numbers = self.shard.borrow().report();
        numbers.loop_lag = loop_lag;
        numbers.latency = self.latency.borrow().clone();
        published.publish(Arc::new(numbers));
    }

    /// Returns once the stop signal is raised (or its sender is gone).
    pub async fn wait_for_stop(self: Rc<Self>, mut stop: watch::Receiver<bool>) {
        while !*stop.borrow_and_update() {
            if stop.changed().await.is_err() {
                break;
            }
        }
    }

    /// Closes every connection and waits, at most `SHUTDOWN_GRACE`, for them to flush. With
    /// a log, also lets the mesh settle (publishes already acknowledged on another shard may
    /// still be on their way here) before the last commit.
    pub async fn shut_down(self: Rc<Self>) {
        self.shard.borrow_mut().shut_down(Instant::now());
        self.flush.notify_one();
        let deadline = Instant::now() + SHUTDOWN_GRACE;
        while self.shard.borrow().connection_count() > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        if self.shard.borrow().persists() {
            let mut quiet = 0;
            while quiet < MESH_QUIET_ROUNDS && Instant::now() < deadline {
                let before = self.shard.borrow().mesh_received();
                tokio::time::sleep(Duration::from_millis(10)).await;
                let shard = self.shard.borrow();
                let settled =
                    shard.mesh_received() == before && shard.mesh_endpoint().backlog() == 0;
                quiet = if settled { quiet + 1 } else { 0 };
            }
        }
    }
}

pub mod epoll;
mod transport;
pub mod uring;
pub mod wal;

pub use transport::ListenerRuntime;

/// Accepts connections forever on either backend: `accept` yields sockets, `reader` is the
/// backend's reader task.
async fn accept_loop<S, A, AF, R, RF>(
    driver: Rc<Driver<S>>,
    listener: ListenerRuntime,
    mut accept: A,
    reader: R,
) where
    S: Stream,
    A: FnMut() -> AF,
    AF: Future<Output = io::Result<(S, SocketAddr)>>,
    R: Fn(Rc<Driver<S>>, Rc<S>, ConnectionId) -> RF,
    RF: Future<Output = ()> + 'static,
{
    loop {
        match accept().await {
            Ok((stream, peer)) => {
                // TCP_NODELAY came with the socket: the listener has it (`runtime::bind`).
                let stream = Rc::new(stream);
                if let Some(id) = driver.register(stream.clone(), peer, &listener) {
                    tokio::task::spawn_local(reader(driver.clone(), stream, id));
                }
            }
            Err(error) => accept_failed(error).await,
        }
    }
}

/// Accept errors are operating errors (out of file descriptors, usually): log, back off
/// briefly so a full fd table does not spin the shard, and keep serving.
async fn accept_failed(error: io::Error) {
    tracing::warn!(%error, "accept failed");
    tokio::time::sleep(Duration::from_millis(50)).await;
}

/// Hands memory the allocator holds but no longer uses back to the OS. The shard ticker calls
/// it once a second on each shard thread.
///
/// mimalloc (the binary's allocator) returns freed pages only after a delay, and only when the
/// thread next calls into it for some bigger request; a shard that goes quiet after a burst of
/// connects (old hash tables, transient CONNECT state) would keep them resident indefinitely.
/// Measured with 10,000 idle connections on one shard, 1 s after they connected: 1,111 ->
/// 1,019 B of RSS per connection. The call visits the thread's pages, so it costs in
/// proportion to the heap: microseconds at 10^4 connections. Without mimalloc as the global
/// allocator (tests) it finds an empty heap and returns.
pub fn release_freed_memory() {
    // SAFETY: `mi_collect` takes no pointers and may be called from any thread at any time.
    unsafe { libmimalloc_sys::mi_collect(false) };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn driver<S: Stream>() -> Rc<Driver<S>> {
        let limits = crate::config::Limits::default();
        Driver::new(Shard::standalone(Instant::now(), limits, 10))
    }

    fn connected_pair() -> (std::net::TcpStream, std::net::TcpStream) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let client =
            std::net::TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
        let (server, _) = listener.accept().expect("accept");
        (client, server)
    }

    const ID: ConnectionId = ConnectionId {
        index: 0,
        generation: 1,
    };

    /// Every connection, idle or not, pays for its slot in the shard's connection slab.
    #[test]
    fn connection_slot_stays_small() {
        let bytes = std::mem::size_of::<super::super::Conn>();
        assert!(bytes <= 96, "Conn is {bytes} bytes; see the module docs");
        let handle = std::mem::size_of::<Option<Handle<tokio::net::TcpStream>>>();
        assert!(
            handle <= 24,
            "a handle slot is {handle} bytes; see the module docs"
        );
    }

    /// Every idle connection pays for its reader task; see `READER_FUTURE_BYTES_MAX`.
    #[test]
    fn reader_futures_fit_the_cell() {
        tokio_uring::start(async {
            let (_client, server) = connected_pair();
            let stream = Rc::new(tokio_uring::net::TcpStream::from_std(server));
            let reader = uring::reader(driver(), stream, ID);
            let bytes = std::mem::size_of_val(&reader);
            assert!(
                bytes <= READER_FUTURE_BYTES_MAX,
                "io_uring reader: {bytes} bytes"
            );
        });
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async {
            let (_client, server) = connected_pair();
            server.set_nonblocking(true).expect("nonblocking");
            let stream = Rc::new(tokio::net::TcpStream::from_std(server).expect("register"));
            let reader = epoll::reader(driver(), stream, ID);
            let bytes = std::mem::size_of_val(&reader);
            assert!(
                bytes <= READER_FUTURE_BYTES_MAX,
                "epoll reader: {bytes} bytes"
            );
        });
    }
}
