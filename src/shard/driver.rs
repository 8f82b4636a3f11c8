//! The only code in `shard` that awaits: sockets, timers and the flush loop around one
//! [`Shard`], on either I/O backend.
//!
//! # Tasks on a shard thread
//! - one accept loop per listener;
//! - one reader task per connection, which feeds [`Shard::handle_read`];
//! - one flusher, woken when some connection has output; it starts a short-lived writer task
//!   per dirty connection that has none running. A writer drains the connection's output and
//!   exits, so an idle connection has no writer and no write buffer;
//! - one ticker (1 s) for keep-alive, CONNECT timeouts and `$SYS`.
//!
//! Batching falls out of the scheduling order: reads that complete in the same tick all run
//! before the flusher, so each connection gets one write for everything encoded in that tick.
//!
//! # Memory per idle connection
//! Under io_uring a pending read owns its buffer until data arrives, so a naive 16 KiB read per
//! connection costs 16 KiB per idle client. Readers instead post a small read
//! ([`IDLE_READ_BYTES`]); only when a read fills it does the next read use a full-size buffer
//! from the shard's pool, and a read that does not fill its buffer (the socket is drained)
//! drops back to small. Under epoll the reader waits for readiness and reads into one buffer
//! shared by the whole shard, so an idle connection holds no read buffer at all.
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

use ahash::AHashMap;
use bytes::Bytes;
use tokio::sync::{watch, Notify};

use super::{ConnectionId, Shard};

/// Bytes an idle connection's pending io_uring read holds. Large enough for a PINGREQ, a
/// small PUBLISH or an ack; anything bigger moves the connection to full-size reads.
pub const IDLE_READ_BYTES: usize = 64;

/// Full-size read buffers kept for reuse per shard; more are freed after use.
pub const READ_POOL_MAX: usize = 256;

/// How long an orderly shutdown waits for connections to flush and close.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// A connected socket on either backend: what the writer and the shutdown path need.
pub trait Stream: 'static {
    fn write_all(&self, bytes: Bytes) -> impl Future<Output = io::Result<()>>;
    fn shutdown(&self);
    fn set_nodelay(&self) -> io::Result<()>;
}

/// The writer's handle on one connection.
struct Handle<S> {
    stream: Rc<S>,
    /// A writer task is running for this connection.
    writing: bool,
}

/// Everything the tasks of one shard thread share. Single-threaded: `Rc` and `RefCell`.
pub struct Driver<S> {
    pub shard: RefCell<Shard>,
    handles: RefCell<AHashMap<ConnectionId, Handle<S>>>,
    /// Rung when the shard has dirty connections; holds one permit, so bursts coalesce.
    flush: Notify,
    /// Full-size read buffers for reuse (io_uring) or the shared read buffer (epoll).
    pool: RefCell<Vec<Vec<u8>>>,
    read_buffer_bytes: usize,
    /// Set while the mesh backlog is over `mesh_backlog_max`: readers post no new reads, so
    /// QoS 1/2 messages for other shards wait in the client's socket instead of being dropped.
    reads_paused: Cell<bool>,
    reads_resumed: Notify,
    mesh_backlog_max: usize,
}

impl<S: Stream> Driver<S> {
    pub fn new(shard: Shard) -> Rc<Driver<S>> {
        let read_buffer_bytes = shard.limits().read_buffer_bytes as usize;
        let mesh_backlog_max = shard.limits().mesh_backlog_max as usize;
        Rc::new(Driver {
            reads_paused: Cell::new(false),
            reads_resumed: Notify::new(),
            mesh_backlog_max,
            shard: RefCell::new(shard),
            handles: RefCell::new(AHashMap::new()),
            flush: Notify::new(),
            pool: RefCell::new(Vec::new()),
            read_buffer_bytes,
        })
    }

    /// Registers an accepted socket; `None` if the shard refuses it (`connections_max`).
    pub fn register(&self, stream: Rc<S>, peer: SocketAddr) -> Option<ConnectionId> {
        let id = self.shard.borrow_mut().accept(Instant::now(), peer)?;
        self.handles.borrow_mut().insert(
            id,
            Handle {
                stream,
                writing: false,
            },
        );
        Some(id)
    }

    /// Feeds received bytes to the shard and wakes the flusher if anything became writable.
    pub fn on_read(&self, id: ConnectionId, data: &[u8]) {
        self.shard
            .borrow_mut()
            .handle_read(Instant::now(), id, data);
        self.wake_released();
        self.flush.notify_one();
    }

    /// The reader saw EOF or an error: the connection is gone.
    pub fn on_closed(&self, id: ConnectionId) {
        self.shard.borrow_mut().handle_closed(Instant::now(), id);
        self.handles.borrow_mut().remove(&id);
        self.wake_released();
        self.flush.notify_one();
    }

    /// A full-size read buffer, reused when one is free.
    pub fn take_buffer(&self) -> Vec<u8> {
        self.pool
            .borrow_mut()
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(self.read_buffer_bytes))
    }

    pub fn return_buffer(&self, buf: Vec<u8>) {
        let mut pool = self.pool.borrow_mut();
        // Contents are left as they are: readers only look at the bytes a read reports.
        if pool.len() < READ_POOL_MAX && buf.capacity() == self.read_buffer_bytes {
            pool.push(buf);
        }
    }

    pub fn read_buffer_bytes(&self) -> usize {
        self.read_buffer_bytes
    }

    /// Waits while the mesh is backed up or flow control throttles this connection. Readers
    /// call it before posting each read.
    pub async fn read_gate(&self, id: ConnectionId) {
        while self.reads_paused.get() || self.shard.borrow().is_throttled(id) {
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
            self.reads_paused.set(true);
        } else if self.reads_paused.get() && backlog < self.mesh_backlog_max / 2 {
            self.reads_paused.set(false);
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
        loop {
            self.flush.notified().await;
            let backlog = {
                let mut shard = self.shard.borrow_mut();
                shard.drain_dirty(&mut dirty);
                shard.flush_mesh()
            };
            self.update_read_gate(backlog);
            for id in dirty.drain(..) {
                let mut handles = self.handles.borrow_mut();
                let Some(handle) = handles.get_mut(&id) else {
                    continue;
                };
                if !handle.writing {
                    handle.writing = true;
                    let stream = handle.stream.clone();
                    tokio::task::spawn_local(self.clone().writer(id, stream));
                }
            }
        }
    }

    /// Drains one connection's output, one write per chunk gathered since the last write.
    async fn writer(self: Rc<Self>, id: ConnectionId, stream: Rc<S>) {
        loop {
            let (bytes, close) = self.shard.borrow_mut().take_output(id);
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
        if let Some(handle) = self.handles.borrow_mut().get_mut(&id) {
            handle.writing = false;
        }
    }

    /// Keep-alive, CONNECT timeouts and `$SYS`, once a second.
    pub async fn ticker(self: Rc<Self>) {
        let mut interval = tokio::time::interval(Duration::from_secs(1));
        loop {
            interval.tick().await;
            self.shard.borrow_mut().handle_tick(Instant::now());
            self.wake_released();
            self.flush.notify_one();
        }
    }

    /// Returns once the stop signal is raised (or its sender is gone).
    pub async fn wait_for_stop(self: Rc<Self>, mut stop: watch::Receiver<bool>) {
        while !*stop.borrow_and_update() {
            if stop.changed().await.is_err() {
                break;
            }
        }
    }

    /// Closes every connection and waits, at most `SHUTDOWN_GRACE`, for them to flush.
    pub async fn shut_down(self: Rc<Self>) {
        self.shard.borrow_mut().shut_down(Instant::now());
        self.flush.notify_one();
        let deadline = Instant::now() + SHUTDOWN_GRACE;
        while self.shard.borrow().connection_count() > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// io_uring sockets (tokio-uring).
pub mod uring {
    use super::*;

    impl Stream for tokio_uring::net::TcpStream {
        async fn write_all(&self, bytes: Bytes) -> io::Result<()> {
            let (result, _) = tokio_uring::net::TcpStream::write_all(self, bytes).await;
            result
        }

        fn shutdown(&self) {
            // Errors mean the socket is already gone, which is what we wanted.
            let _ = tokio_uring::net::TcpStream::shutdown(self, Shutdown::Both);
        }

        fn set_nodelay(&self) -> io::Result<()> {
            tokio_uring::net::TcpStream::set_nodelay(self, true)
        }
    }

    pub async fn accept_loop(
        driver: Rc<Driver<tokio_uring::net::TcpStream>>,
        listener: tokio_uring::net::TcpListener,
    ) {
        let listener = &listener;
        super::accept_loop(driver, move || listener.accept(), reader).await
    }

    async fn reader(
        driver: Rc<Driver<tokio_uring::net::TcpStream>>,
        stream: Rc<tokio_uring::net::TcpStream>,
        id: ConnectionId,
    ) {
        let mut busy = false;
        loop {
            driver.read_gate(id).await;
            let buf = if busy {
                driver.take_buffer()
            } else {
                Vec::with_capacity(IDLE_READ_BYTES)
            };
            let (result, buf) = stream.read(buf).await;
            match result {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    driver.on_read(id, &buf[..n]);
                    // A full buffer means more is probably waiting: read big next time.
                    busy = n == buf.capacity();
                    if buf.capacity() == driver.read_buffer_bytes() {
                        driver.return_buffer(buf);
                    }
                }
            }
        }
        driver.on_closed(id);
    }
}

/// epoll sockets (tokio's own), the fallback when io_uring is blocked.
pub mod epoll {
    use super::*;

    impl Stream for tokio::net::TcpStream {
        async fn write_all(&self, bytes: Bytes) -> io::Result<()> {
            let mut rest = &bytes[..];
            while !rest.is_empty() {
                self.writable().await?;
                match self.try_write(rest) {
                    Ok(n) => rest = &rest[n..],
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(())
        }

        fn shutdown(&self) {
            let _ = socket2::SockRef::from(self).shutdown(Shutdown::Both);
        }

        fn set_nodelay(&self) -> io::Result<()> {
            tokio::net::TcpStream::set_nodelay(self, true)
        }
    }

    pub async fn accept_loop(
        driver: Rc<Driver<tokio::net::TcpStream>>,
        listener: tokio::net::TcpListener,
    ) {
        let listener = &listener;
        super::accept_loop(driver, move || listener.accept(), reader).await
    }

    async fn reader(
        driver: Rc<Driver<tokio::net::TcpStream>>,
        stream: Rc<tokio::net::TcpStream>,
        id: ConnectionId,
    ) {
        loop {
            driver.read_gate(id).await;
            if stream.readable().await.is_err() {
                break;
            }
            // Readiness first, then a read into the shard's one shared buffer: an idle
            // connection holds no buffer at all.
            let mut buf = driver.take_buffer();
            if buf.len() < driver.read_buffer_bytes() {
                // Zeroed once per pooled buffer, not per read.
                buf.resize(driver.read_buffer_bytes(), 0);
            }
            let result = stream.try_read(&mut buf);
            match result {
                Ok(0) => {
                    driver.return_buffer(buf);
                    break;
                }
                Ok(n) => driver.on_read(id, &buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => {
                    driver.return_buffer(buf);
                    break;
                }
            }
            driver.return_buffer(buf);
        }
        driver.on_closed(id);
    }
}

/// Accepts connections forever on either backend: `accept` yields sockets, `reader` is the
/// backend's reader task.
async fn accept_loop<S, A, AF, R, RF>(driver: Rc<Driver<S>>, mut accept: A, reader: R)
where
    S: Stream,
    A: FnMut() -> AF,
    AF: Future<Output = io::Result<(S, SocketAddr)>>,
    R: Fn(Rc<Driver<S>>, Rc<S>, ConnectionId) -> RF,
    RF: Future<Output = ()> + 'static,
{
    loop {
        match accept().await {
            Ok((stream, peer)) => {
                // Latency comes from our batching, not Nagle's.
                let _ = stream.set_nodelay();
                let stream = Rc::new(stream);
                if let Some(id) = driver.register(stream.clone(), peer) {
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
