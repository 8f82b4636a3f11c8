//! Start-up and shutdown: picks the I/O backend, binds listeners, starts the shard threads,
//! waits for SIGINT/SIGTERM, and stops everything in order.
//!
//! Owns threads, listeners, core pinning and signals. Does not own any MQTT behaviour: that is `shard` and below.
//!
//! Shutdown order: stop accepting, close every connection (5.0 clients get DISCONNECT 0x8B),
//! flush, wait up to `driver::SHUTDOWN_GRACE`, then join the shard threads.

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::rc::Rc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use std::sync::Arc;

use crate::auth::Access;
use crate::config::{Config, IoBackend, ListenerConfig, ListenerProtocol, TlsFiles};
use crate::mesh::Endpoint;
use crate::mesh::Published;
use crate::shard::driver::wal::{BlockingSegment, SegmentFile};
use crate::shard::driver::{epoll, uring, Driver, ListenerRuntime};
use crate::shard::verifier::{ShardVerifier, VerifierPool};
use crate::shard::{ListenerId, ListenerPolicy, LISTENERS_MAX};
use crate::shard::{Shard, ShardMessage};
use crate::transport::{load_server_config, ws::WsSettings, TransportSpec};

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
    /// With `Config::shard_listeners`: shard i's own address.
    shard_addrs: Vec<SocketAddr>,
    backend: Backend,
    stop: watch::Sender<bool>,
    threads: Vec<JoinHandle<()>>,
    /// The access policy every shard follows, and what to read it from again on reload.
    access: Arc<Published<Access>>,
    access_config: Config,
    verifiers: Option<VerifierPool>,
    /// Certificates of the TLS listeners, reloaded with the access policy.
    tls: Vec<TlsSource>,
    /// The `/metrics` server, with `metrics_listen`.
    admin: Option<crate::admin::Admin>,
}

/// Where a TLS listener's certificate comes from and where the shards pick it up.
#[derive(Debug)]
struct TlsSource {
    files: TlsFiles,
    alpn: &'static [&'static [u8]],
    published: Arc<Published<rustls::ServerConfig>>,
}

/// What a reload could not read; everything else was reloaded.
#[derive(Debug, thiserror::Error)]
#[error("{}", failures.join("; "))]
pub struct ReloadError {
    pub failures: Vec<String>,
}

impl Broker {
    /// The bound addresses, in `Config::listeners` order (useful with port 0).
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.local_addrs
    }

    /// Shard i's own listening address (only with `Config::shard_listeners`), for tests that
    /// place connections on chosen shards.
    pub fn shard_addrs(&self) -> &[SocketAddr] {
        &self.shard_addrs
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Reads the password and ACL files and the TLS certificates again (SIGHUP) and hands
    /// them to every shard: the policy within a tick (1 s), a certificate at the next accept.
    /// Connected clients stay connected and keep their TLS sessions. A file that fails to
    /// parse changes nothing of its own part: the error names it (`file:line` where there is
    /// a line).
    pub fn reload(&self) -> Result<(), ReloadError> {
        let mut failures = Vec::new();
        let generation = self.access.current().0.generation() + 1;
        match Access::load(self.access_config.access_settings(), generation) {
            Ok(access) => {
                log_access(&access);
                self.access.publish(Arc::new(access));
            }
            Err(error) => failures.push(error.to_string()),
        }
        for source in &self.tls {
            match load_server_config(&source.files, source.alpn) {
                Ok(config) => source.published.publish(config),
                Err(error) => failures.push(format!("TLS certificate: {error}")),
            }
        }
        if failures.is_empty() {
            Ok(())
        } else {
            Err(ReloadError { failures })
        }
    }

    /// Where `/metrics` is served (with `metrics_listen`; useful with port 0).
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().map(crate::admin::Admin::addr)
    }

    /// Stops accepting, closes every connection, and joins the shard threads.
    pub fn shutdown(mut self) {
        self.stop_and_join();
    }

    fn stop_and_join(&mut self) {
        if let Some(mut admin) = self.admin.take() {
            admin.stop();
        }
        let _ = self.stop.send(true);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
        if let Some(pool) = self.verifiers.take() {
            pool.join();
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

/// Makes a panic on any thread end the process (the broker binary calls this at start): a
/// shard that died would leave the others running against a dead peer (its rings filling,
/// claims homed on it hanging), which is worse than a restart by the supervisor. The default
/// hook prints the panic to stderr first. Not for tests, which need a panic to fail one test.
pub fn abort_on_panic() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        default(info);
        eprintln!("ringmq: a thread panicked; aborting so that a supervisor restarts the broker");
        std::process::abort();
    }));
}

/// Creating a ring is what seccomp profiles and `kernel.io_uring_disabled` forbid, so a ring
/// that can be created means tokio-uring can run.
fn probe_uring() -> io::Result<()> {
    io_uring::IoUring::new(4).map(drop)
}

/// A shard's io_uring runtime. `IORING_SETUP_COOP_TASKRUN` (Linux 5.19): completions that
/// arrive while the shard is running wait for its next syscall instead of interrupting it
/// with an IPI. Without it, 14% of the shard's CPU at max-rate QoS 1 was the interrupt path
/// (`irqentry_exit_to_user_mode`), and QoS 1 cost 1.11 against 1.03 CPU-s per million
/// messages with it. Older kernels refuse the flag; they get a plain ring.
fn uring_runtime() -> io::Result<tokio_uring::Runtime> {
    let mut coop = tokio_uring::builder();
    coop.uring_builder(tokio_uring::uring_builder().setup_coop_taskrun());
    tokio_uring::Runtime::new(&coop).or_else(|_| tokio_uring::Runtime::new(&tokio_uring::builder()))
}

/// Binds the listeners and starts the shards. Returns once every shard is serving.
pub fn start(mut config: Config) -> io::Result<Broker> {
    // A config built in code (tests, embedders) gets the same ring sizing as a parsed one.
    config.fit_mesh_rings();
    // Salt and hash the SCRAM passwords once, then forget them: no shard keeps a plain one.
    let authenticator = crate::auth::Authenticator::from_scram_users(&config.auth.scram_sha256)
        .map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("auth.scram_sha256: {e}"),
            )
        })?;
    let authenticator = std::sync::Arc::new(authenticator);
    config.auth.scram_sha256.clear();
    let access = Access::load(config.access_settings(), 0)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
    log_access(&access);
    warn_if_open(&config, &access, &authenticator);
    let access = Arc::new(Published::new(Arc::new(access)));
    let verifiers = VerifierPool::start(
        config.auth.verify_threads,
        config.shards,
        config.limits.auth_verify_queue_max,
    )?;
    let backend = select_backend(config.io)?;
    let shards = config.shards;
    let mut logs = recover_logs(&config)?;
    let plans = Arc::new(plan_listeners(&config)?);
    let tls = plans
        .iter()
        .zip(&config.listeners)
        .filter_map(|(plan, listener)| {
            Some(TlsSource {
                files: listener.tls.clone()?,
                alpn: alpn_for(listener),
                published: plan.tls.clone()?,
            })
        })
        .collect();
    let (mut per_shard, local_addrs) = bind_all(&config)?;
    let mut shard_addrs = Vec::new();
    if config.shard_listeners {
        // Plain listeners with no rules of their own, after the configured ones.
        let id = ListenerId(plans.len() as u8);
        for listeners in &mut per_shard {
            let listener = bind(SocketAddr::from(([127, 0, 0, 1], 0)))?;
            shard_addrs.push(listener.local_addr()?);
            listeners.push((listener, id));
        }
    }
    let endpoints = crate::mesh::build(shards, config.limits.mesh_ring_capacity as usize);
    let reports: Vec<Arc<Published<crate::metrics::ShardReport>>> = (0..shards)
        .map(|shard| {
            Arc::new(Published::new(Arc::new(crate::metrics::ShardReport {
                shard,
                ..Default::default()
            })))
        })
        .collect();
    let admin = match config.metrics_listen {
        Some(addr) => Some(crate::admin::Admin::start(addr, reports.clone())?),
        None => None,
    };
    let cores = if config.pin_cores {
        core_affinity::get_core_ids().unwrap_or_default()
    } else {
        Vec::new()
    };
    let (stop, stop_rx) = watch::channel(false);
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<()>();
    let mut threads = Vec::with_capacity(shards);
    for (index, (endpoint, listeners)) in endpoints.into_iter().zip(per_shard).enumerate() {
        let log = logs
            .as_mut()
            .map(|(starts, retained)| (starts.remove(0), retained.clone()));
        let shard = ShardStart {
            log,
            config: config.clone(),
            listeners,
            endpoint,
            backend,
            core: cores.get(index % cores.len().max(1)).copied(),
            authenticator: authenticator.clone(),
            access: access.clone(),
            verifier: verifiers.for_shard(config.limits.auth_verify_queue_max),
            plans: plans.clone(),
            report: reports[index].clone(),
        };
        let (stop_rx, ready_tx) = (stop_rx.clone(), ready_tx.clone());
        let thread = std::thread::Builder::new()
            .name(format!("ringmq-shard-{index}"))
            .spawn(move || run_shard(shard, stop_rx, ready_tx))?;
        threads.push(thread);
    }
    drop(ready_tx);
    for _ in 0..shards {
        // Each shard signals once its listeners are registered with its runtime.
        ready_rx
            .recv()
            .map_err(|_| io::Error::other("a shard thread exited during start-up"))?;
    }
    let urls: Vec<String> = config
        .listeners
        .iter()
        .zip(&local_addrs)
        .map(|(l, addr)| match l.protocol {
            ListenerProtocol::Mqtt => format!("{}://{addr}", l.scheme()),
            ListenerProtocol::Ws => format!("{}://{addr}{}", l.scheme(), l.path),
        })
        .collect();
    tracing::info!(?backend, shards, addrs = ?local_addrs, listeners = ?urls, "RingMQ {} serving", crate::VERSION);
    Ok(Broker {
        local_addrs,
        shard_addrs,
        backend,
        stop,
        threads,
        access,
        access_config: config,
        verifiers: Some(verifiers),
        tls,
        admin,
    })
}

/// A configured listener as every shard serves it.
struct ListenerPlan {
    spec: TransportSpec,
    tls: Option<Arc<Published<rustls::ServerConfig>>>,
    policy: ListenerPolicy,
}

/// ALPN a listener's TLS offers: `mqtt` for MQTT, `http/1.1` for WebSocket (browsers offer
/// it; a client that offers none is served too).
fn alpn_for(listener: &ListenerConfig) -> &'static [&'static [u8]] {
    match listener.protocol {
        ListenerProtocol::Mqtt => &[b"mqtt"],
        ListenerProtocol::Ws => &[b"http/1.1"],
    }
}

/// Loads each listener's certificates and works out its rules. A certificate or key that
/// cannot be used stops the start, naming the file.
fn plan_listeners(config: &Config) -> io::Result<Vec<ListenerPlan>> {
    if config.listeners.len() >= LISTENERS_MAX {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("at most {} listeners", LISTENERS_MAX - 1),
        ));
    }
    let mut plans = Vec::with_capacity(config.listeners.len());
    for listener in &config.listeners {
        let tls = match &listener.tls {
            Some(files) => {
                let server = load_server_config(files, alpn_for(listener)).map_err(|e| {
                    io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!("listener {}: {e}", listener.bind),
                    )
                })?;
                Some(Arc::new(Published::new(server)))
            }
            None => None,
        };
        let ws = (listener.protocol == ListenerProtocol::Ws).then(|| {
            Arc::new(WsSettings {
                path: listener.path.clone(),
                frame_payload_max: u64::from(config.limits.packet_size_max),
            })
        });
        plans.push(ListenerPlan {
            spec: TransportSpec {
                tls: tls.as_ref().map(|p| p.current().0),
                ws,
            },
            tls,
            policy: ListenerPolicy {
                allow_anonymous: listener.allow_anonymous,
                connections_share: listener
                    .max_connections
                    .map(|max| max.div_ceil(config.shards as u32)),
                use_identity_as_username: listener
                    .tls
                    .as_ref()
                    .is_some_and(|t| t.use_identity_as_username),
                transport: match (listener.protocol, listener.tls.is_some()) {
                    (ListenerProtocol::Mqtt, false) => crate::metrics::Transport::Mqtt,
                    (ListenerProtocol::Mqtt, true) => crate::metrics::Transport::Mqtts,
                    (ListenerProtocol::Ws, false) => crate::metrics::Transport::Ws,
                    (ListenerProtocol::Ws, true) => crate::metrics::Transport::Wss,
                },
            },
        });
    }
    Ok(plans)
}

/// One listening socket per configured address per shard, all on the same port (SO_REUSEPORT
/// lets the kernel spread accepts). Port 0 is resolved by the first bind.
type ShardListeners = Vec<(TcpListener, ListenerId)>;

fn bind_all(config: &Config) -> io::Result<(Vec<ShardListeners>, Vec<SocketAddr>)> {
    let mut per_shard: Vec<ShardListeners> = (0..config.shards).map(|_| Vec::new()).collect();
    let mut local_addrs = Vec::with_capacity(config.listeners.len());
    for (index, listener) in config.listeners.iter().enumerate() {
        let id = ListenerId(index as u8);
        let first = bind(listener.bind)?;
        let actual = first.local_addr()?;
        per_shard[0].push((first, id));
        for listeners in per_shard.iter_mut().skip(1) {
            listeners.push((bind(actual)?, id));
        }
        local_addrs.push(actual);
    }
    Ok((per_shard, local_addrs))
}

/// Starts the broker and runs it until SIGINT or SIGTERM.
pub fn run(config: Config) -> io::Result<()> {
    let loopback_only = config.loopback_only();
    // The handlers are installed before the broker says it is serving: a SIGTERM that comes
    // right after that line must shut down cleanly, not kill the process (a CI flake).
    let signals = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (mut term, mut int, mut hangup) = {
        let _context = signals.enter();
        use tokio::signal::unix::{signal, SignalKind};
        (
            signal(SignalKind::terminate())?,
            signal(SignalKind::interrupt())?,
            signal(SignalKind::hangup())?,
        )
    };
    let broker = start(config)?;
    if loopback_only {
        tracing::info!(
            "listening on loopback only; to accept remote clients pass --listen 0.0.0.0:1883 \
             (and set [auth] password_file, or pass --allow-anonymous)"
        );
    }
    signals.block_on(async {
        loop {
            tokio::select! {
                _ = int.recv() => return tracing::info!("SIGINT: shutting down"),
                _ = term.recv() => return tracing::info!("SIGTERM: shutting down"),
                _ = hangup.recv() => match broker.reload() {
                    Ok(()) => tracing::info!("SIGHUP: access policy reloaded"),
                    Err(error) => tracing::error!(%error, "SIGHUP: reload failed; keeping the old policy"),
                },
            }
        }
    });
    broker.shutdown();
    tracing::info!("stopped");
    Ok(())
}

/// Says at start and on reload what the policy is, without naming a user or a password.
fn log_access(access: &Access) {
    tracing::info!(
        allow_anonymous = access.allows_anonymous(),
        password_users = access.password_users(),
        acl_rules = access.acl_rules(),
        "access policy"
    );
}

/// A broker reachable from the network should not be open to everyone by accident, nor
/// closed to everyone: say so at start.
fn warn_if_open(config: &Config, access: &Access, authenticator: &crate::auth::Authenticator) {
    let public = !config.loopback_only();
    if !public {
        return;
    }
    let can_authenticate = access.has_password_file() || !authenticator.is_empty();
    if access.allows_anonymous() {
        tracing::warn!("a listener is not on loopback and anonymous clients are allowed");
    } else if !can_authenticate {
        tracing::warn!(
            "a listener is not on loopback, anonymous clients are refused, and there is no \
             password_file or [auth.scram_sha256] user: no client can connect"
        );
    }
}

/// A non-blocking listener with SO_REUSEPORT, so that each shard can bind its own socket.
/// TCP_NODELAY is set here, once: Linux copies it to every accepted socket (the accepted
/// socket is cloned from the listener), which saves a `setsockopt` per connect. Latency
/// comes from our batching, not Nagle's.
fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nodelay(true)?;
    socket.set_nonblocking(true)?;
    socket
        .bind(&addr.into())
        .map_err(|e| io::Error::new(e.kind(), format!("bind {addr}: {e}")))?;
    socket.listen(LISTEN_BACKLOG)?;
    Ok(socket.into())
}

/// Reads the logs back (`persist::recover`) and writes this run's first snapshot, when
/// persistence is on. Each shard's part, and the retained messages every shard keeps.
type LogStarts = (
    Vec<crate::persist::ShardStart>,
    Arc<Vec<Arc<crate::session::Message>>>,
);

fn recover_logs(config: &Config) -> io::Result<Option<LogStarts>> {
    let Some(dir) = config.persistence.dir.as_deref() else {
        return Ok(None);
    };
    if !config.persistence.enabled() {
        tracing::info!(dir = %dir.display(), "durability = \"none\": sessions and retained messages are kept in memory only");
        return Ok(None);
    }
    // A file-size limit (`ulimit -f`, systemd's LimitFSIZE) must fail a log write with EFBIG,
    // which the log handles like a full disk, not kill the broker with SIGXFSZ.
    // SAFETY: installs the predefined "ignore" disposition; no handler code runs.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
    let began = Instant::now();
    let clock = crate::persist::Clock::new(began);
    let recovered = crate::persist::recover(dir, &clock)
        .map_err(|e| io::Error::new(e.kind(), format!("persistence_dir {}: {e}", dir.display())))?;
    let report = recovered.report.clone();
    let sessions = recovered.sessions.len();
    let retained_count = recovered.retained.len();
    let shards = config.shards;
    let (starts, retained) = recovered
        .start(dir, shards, clock, |text| {
            crate::persist::home_of(text, shards)
        })
        .map_err(|e| io::Error::new(e.kind(), format!("persistence_dir {}: {e}", dir.display())))?;
    tracing::info!(dir = %dir.display(), durability = ?config.persistence.durability,
        sessions, retained = retained_count, segments = report.segments, records = report.records,
        bytes = report.bytes, torn_tails = report.truncated.len(), corrupt_segments = report.corrupt.len(),
        bad_records = report.bad_records, lost_messages = report.lost_messages,
        redelivered = report.redelivered,
        elapsed_ms = began.elapsed().as_millis() as u64, "recovered the logs");
    Ok(Some((starts, Arc::new(retained))))
}

/// What a shard thread starts with.
struct ShardStart {
    /// Its log and restored state, with persistence on.
    log: Option<(
        crate::persist::ShardStart,
        Arc<Vec<Arc<crate::session::Message>>>,
    )>,
    config: Config,
    listeners: ShardListeners,
    plans: Arc<Vec<ListenerPlan>>,
    report: Arc<Published<crate::metrics::ShardReport>>,
    endpoint: Endpoint<ShardMessage>,
    backend: Backend,
    core: Option<core_affinity::CoreId>,
    authenticator: std::sync::Arc<crate::auth::Authenticator>,
    access: Arc<Published<Access>>,
    verifier: ShardVerifier,
}

fn run_shard(start: ShardStart, stop: watch::Receiver<bool>, ready: std::sync::mpsc::Sender<()>) {
    if let Some(core) = start.core {
        if !core_affinity::set_for_current(core) {
            tracing::warn!(core = core.id, "could not pin shard thread");
        }
    }
    let ShardStart {
        config,
        listeners,
        endpoint,
        backend,
        authenticator,
        access,
        verifier,
        plans,
        report,
        log,
        ..
    } = start;
    let runtime_of = |id: ListenerId| match plans.get(id.0 as usize) {
        Some(plan) => ListenerRuntime::new(id, plan.spec.clone(), plan.tls.clone()),
        None => ListenerRuntime::new(
            id,
            TransportSpec {
                tls: None,
                ws: None,
            },
            None,
        ),
    };
    let policies = plans.iter().map(|p| p.policy.clone()).collect();
    let (current, seen) = access.current();
    let services = Services {
        access,
        seen,
        verifier,
        report,
        persistence: config.persistence.clone(),
    };
    let shard = Shard::new(
        Instant::now(),
        endpoint,
        config.limits.clone(),
        config.sys_interval_s,
    )
    .with_protocol(config.protocol.clone())
    .with_auth(authenticator)
    .with_access(current)
    .with_listeners(policies);
    let persistence = config.persistence.clone();
    let shard = match log {
        Some((start, retained)) => {
            shard.with_persistence(Instant::now(), start, &retained, &persistence)
        }
        None => shard,
    };
    match backend {
        Backend::Uring => {
            let runtime = match uring_runtime() {
                Ok(runtime) => runtime,
                Err(error) => return tracing::error!(%error, "cannot build the io_uring runtime"),
            };
            runtime.block_on(async move {
                let driver = Driver::new(shard);
                let mut accepts = Vec::new();
                for (listener, id) in listeners {
                    let listener = tokio_uring::net::TcpListener::from_std(listener);
                    accepts.push(tokio::task::spawn_local(uring::accept_loop(
                        driver.clone(),
                        listener,
                        runtime_of(id),
                    )));
                }
                serve::<_, tokio_uring::fs::File>(driver, accepts, services, stop, ready).await;
            })
        }
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
                for (listener, id) in listeners {
                    match tokio::net::TcpListener::from_std(listener) {
                        Ok(l) => accepts.push(tokio::task::spawn_local(epoll::accept_loop(
                            driver.clone(),
                            l,
                            runtime_of(id),
                        ))),
                        Err(error) => tracing::error!(%error, "cannot register listener"),
                    }
                }
                serve::<_, BlockingSegment>(driver, accepts, services, stop, ready).await;
            });
        }
    }
}

/// What a shard uses besides its sockets and the mesh.
struct Services {
    access: Arc<Published<Access>>,
    /// The generation of the policy the shard was built with.
    seen: u64,
    verifier: ShardVerifier,
    report: Arc<Published<crate::metrics::ShardReport>>,
    persistence: crate::config::Persistence,
}

/// Runs a shard's background tasks until the stop signal, then shuts it down in order.
async fn serve<S: crate::shard::driver::Stream, F: SegmentFile>(
    driver: Rc<Driver<S>>,
    accepts: Vec<tokio::task::JoinHandle<()>>,
    services: Services,
    stop: watch::Receiver<bool>,
    ready: std::sync::mpsc::Sender<()>,
) {
    driver.follow_access(services.access, services.seen);
    driver.report_to(services.report);
    tokio::task::spawn_local(driver.clone().serve_verifier(services.verifier));
    tokio::task::spawn_local(driver.clone().flusher());
    tokio::task::spawn_local(driver.clone().ticker());
    tokio::task::spawn_local(driver.clone().mesh_pump());
    let persistence = services.persistence;
    let wal_writer = driver.shard.borrow().persists().then(|| {
        let interval = Duration::from_millis(persistence.fsync_interval_ms.into());
        tokio::task::spawn_local(
            driver
                .clone()
                .wal_writer::<F>(persistence.durability, interval),
        )
    });
    let _ = ready.send(());
    driver.clone().wait_for_stop(stop).await;
    // An accept has no buffer for the kernel to own, so aborting it is safe.
    for accept in accepts {
        accept.abort();
    }
    driver.clone().shut_down().await;
    if let Some(writer) = wal_writer {
        // The writer finishes any write in flight, then commits what the shutdown changed.
        driver.stop_wal();
        let _ = writer.await;
    }
}

#[cfg(test)]
mod tests {
    /// `bind` relies on accepted sockets inheriting TCP_NODELAY from the listener instead of
    /// setting it per connection; a kernel that did not copy it would bring Nagle back.
    #[test]
    fn accepted_sockets_inherit_nodelay_from_the_listener() {
        let listener = super::bind("127.0.0.1:0".parse().expect("addr")).expect("bind");
        listener.set_nonblocking(false).expect("blocking");
        let addr = listener.local_addr().expect("addr");
        let _client = std::net::TcpStream::connect(addr).expect("connect");
        let (accepted, _) = listener.accept().expect("accept");
        assert!(accepted.nodelay().expect("getsockopt"));
    }
}
