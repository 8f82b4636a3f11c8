//! Start-up and shutdown: picks the I/O backend, binds listeners, starts the shard threads,
//! waits for SIGINT/SIGTERM, and stops everything in order.
//!
//! Owns threads and signals. Does not own any MQTT behaviour: that is `shard` and below.
//!
//! Shutdown order: stop accepting, close every connection (5.0 clients get DISCONNECT 0x8B),
//! flush, wait up to `driver::SHUTDOWN_GRACE`, then join the shard threads.

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::rc::Rc;
use std::thread::JoinHandle;
use std::time::Instant;

use tokio::sync::watch;

use crate::config::{Config, IoBackend};
use crate::shard::driver::{epoll, uring, Driver};
use crate::shard::Shard;

/// Pending connections the kernel queues per listener before `accept`.
pub const LISTEN_BACKLOG: i32 = 4096;

/// The backend a broker actually runs on, after detection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Uring,
    Epoll,
}

/// A running broker: its listening addresses and the means to stop it.
#[derive(Debug)]
pub struct Broker {
    local_addrs: Vec<SocketAddr>,
    backend: Backend,
    stop: watch::Sender<bool>,
    threads: Vec<JoinHandle<()>>,
}

impl Broker {
    /// The bound addresses, in `Config::listeners` order (useful with port 0).
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.local_addrs
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Stops accepting, closes every connection, and joins the shard threads.
    pub fn shutdown(mut self) {
        self.stop_and_join();
    }

    fn stop_and_join(&mut self) {
        let _ = self.stop.send(true);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}

/// Decides the backend: io_uring if asked for or available, epoll otherwise.
pub fn select_backend(choice: IoBackend) -> io::Result<Backend> {
    match choice {
        IoBackend::Epoll => Ok(Backend::Epoll),
        IoBackend::Uring => probe_uring().map(|()| Backend::Uring).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("--io uring requested but io_uring is unusable: {e}"),
            )
        }),
        IoBackend::Auto => match probe_uring() {
            Ok(()) => Ok(Backend::Uring),
            Err(error) => {
                tracing::warn!(%error,
                    "io_uring is unavailable (seccomp or kernel.io_uring_disabled?); falling back to epoll");
                Ok(Backend::Epoll)
            }
        },
    }
}

/// Creating a ring is what seccomp profiles and `kernel.io_uring_disabled` forbid, so a ring
/// that can be created means tokio-uring can run.
fn probe_uring() -> io::Result<()> {
    io_uring::IoUring::new(4).map(drop)
}

/// Binds the listeners and starts the shards. Returns once every shard is serving.
pub fn start(config: Config) -> io::Result<Broker> {
    let backend = select_backend(config.io)?;
    let mut listeners = Vec::with_capacity(config.listeners.len());
    for addr in &config.listeners {
        listeners.push(bind(*addr)?);
    }
    let local_addrs = listeners
        .iter()
        .map(|l| l.local_addr())
        .collect::<io::Result<Vec<_>>>()?;
    let (stop, stop_rx) = watch::channel(false);
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("ringmq-shard-0".into())
        .spawn(move || {
            run_shard(config, listeners, backend, stop_rx, ready_tx);
        })?;
    // The shard signals once its listeners are registered with its runtime.
    ready_rx
        .recv()
        .map_err(|_| io::Error::other("shard thread exited during start-up"))?;
    tracing::info!(?backend, addrs = ?local_addrs, "RingMQ {} serving", crate::VERSION);
    Ok(Broker {
        local_addrs,
        backend,
        stop,
        threads: vec![thread],
    })
}

/// Starts the broker and runs it until SIGINT or SIGTERM.
pub fn run(config: Config) -> io::Result<()> {
    let loopback_only = config.listeners.iter().all(|a| a.ip().is_loopback());
    let broker = start(config)?;
    if loopback_only {
        tracing::info!(
            "listening on loopback only with anonymous access; to accept remote clients pass \
             --listen 0.0.0.0:1883 or set `listen` in a config file"
        );
    }
    let signals = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    signals.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: shutting down"),
            _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        }
        io::Result::Ok(())
    })?;
    broker.shutdown();
    tracing::info!("stopped");
    Ok(())
}

/// A non-blocking listener with SO_REUSEPORT, so that each shard can bind its own socket.
fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket
        .bind(&addr.into())
        .map_err(|e| io::Error::new(e.kind(), format!("bind {addr}: {e}")))?;
    socket.listen(LISTEN_BACKLOG)?;
    Ok(socket.into())
}

fn run_shard(
    config: Config,
    listeners: Vec<TcpListener>,
    backend: Backend,
    stop: watch::Receiver<bool>,
    ready: std::sync::mpsc::Sender<()>,
) {
    let shard = Shard::new(Instant::now(), config.limits.clone(), config.sys_interval_s);
    match backend {
        Backend::Uring => tokio_uring::start(async move {
            let driver = Driver::new(shard);
            let mut accepts = Vec::new();
            for listener in listeners {
                let listener = tokio_uring::net::TcpListener::from_std(listener);
                accepts.push(tokio::task::spawn_local(uring::accept_loop(
                    driver.clone(),
                    listener,
                )));
            }
            serve(driver, accepts, stop, ready).await;
        }),
        Backend::Epoll => {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(error) => return tracing::error!(%error, "cannot build the epoll runtime"),
            };
            let local = tokio::task::LocalSet::new();
            local.block_on(&runtime, async move {
                let driver = Driver::new(shard);
                let mut accepts = Vec::new();
                for listener in listeners {
                    match tokio::net::TcpListener::from_std(listener) {
                        Ok(l) => accepts.push(tokio::task::spawn_local(epoll::accept_loop(
                            driver.clone(),
                            l,
                        ))),
                        Err(error) => tracing::error!(%error, "cannot register listener"),
                    }
                }
                serve(driver, accepts, stop, ready).await;
            });
        }
    }
}

/// Runs a shard's background tasks until the stop signal, then shuts it down in order.
async fn serve<S: crate::shard::driver::Stream>(
    driver: Rc<Driver<S>>,
    accepts: Vec<tokio::task::JoinHandle<()>>,
    stop: watch::Receiver<bool>,
    ready: std::sync::mpsc::Sender<()>,
) {
    tokio::task::spawn_local(driver.clone().flusher());
    tokio::task::spawn_local(driver.clone().ticker());
    let _ = ready.send(());
    driver.clone().wait_for_stop(stop).await;
    // An accept has no buffer for the kernel to own, so aborting it is safe.
    for accept in accepts {
        accept.abort();
    }
    driver.shut_down().await;
}
