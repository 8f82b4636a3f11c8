//! Configuration: command line and TOML file, validated into [`Config`] and [`Limits`].
//!
//! Owns: every tunable number of the broker and its default. Does not own: how the numbers are
//! used (each `*_max` names the module that enforces it).
//!
//! Precedence: built-in defaults, then the TOML file (`--config`), then command-line flags.
//! With no file and no flags the broker listens on 127.0.0.1:1883 only, like mosquitto 2:
//! an anonymous broker should not be reachable from the network until someone says so.
//!
//! A file is parsed strictly: an unknown key or a value out of range is an error that names the
//! key, and the broker exits non-zero rather than run with a setting nobody asked for.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

mod check;
mod listener;
mod persistence;
mod print;
mod protocol;
pub use check::{check_config_file, CheckFailed};
pub use listener::{ListenerConfig, ListenerProtocol, TlsFiles};
pub use persistence::{Durability, Persistence, PERSISTED_BYTES_MAX_DEFAULT};
pub use print::systemd_unit;
pub use protocol::{ProtocolOptions, SharedStrategy};

/// Every bound the broker enforces. Each limit says what happens when it is reached.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Largest packet accepted from a client, fixed header included. A larger one is refused from
    /// its fixed header alone, before its body is buffered, and the connection is closed
    /// (5.0: DISCONNECT 0x95). Default 1 MiB, as EMQX; mosquitto's default is unlimited.
    pub packet_size_max: u32,
    /// Outgoing QoS 1/2 messages awaiting acknowledgement per session (mosquitto's
    /// `max_inflight_messages`). Further messages wait in the session queue.
    pub inflight_max: u16,
    /// QoS 1/2 messages queued per session beyond the inflight window, online or offline
    /// (mosquitto's `max_queued_messages`). When full, new messages for that session are
    /// dropped and counted (`$SYS/broker/publish/messages/dropped`). Before that happens to an
    /// online client that is still acknowledging, flow control (`shard::flow`) pauses the
    /// publishers feeding it once its queue passes a quarter of this; messages already in the
    /// mesh from paused publishers on other shards may exceed it by `mesh_ring_capacity` +
    /// `mesh_backlog_max` per peer shard (what each can have in flight), because they were
    /// already acknowledged to their publishers.
    pub queued_messages_max: u32,
    /// Topic and payload bytes of the messages queued per session (mosquitto's
    /// `max_queued_bytes`); a message that would take the queue past it is dropped and counted
    /// like one over `queued_messages_max`. Bounds what a session of large messages holds in
    /// memory and in the log.
    pub queued_bytes_max: u32,
    /// Bytes of encoded output buffered per connection before QoS 0 messages to it are dropped
    /// (counted). QoS 1/2 output is bounded by the inflight window instead.
    pub outbound_buffer_max_bytes: u32,
    /// Concurrent connections per broker, enforced as an equal share per shard: each of N
    /// shards holds at most ceil(connections_max / N), so no shard takes a lock or asks
    /// another to count. The kernel spreads new connections evenly over the shards
    /// (SO_REUSEPORT), so the broker fills to about this total; a shard whose share is full
    /// accepts and closes at once, even if another still has room.
    pub connections_max: u32,
    /// Sessions (online and offline) per broker, enforced as an equal share per shard like
    /// `connections_max` (a session lives on the shard its client connected to). A CONNECT
    /// that would create one more gets CONNACK "server unavailable" (5.0: 0x97 quota exceeded).
    pub sessions_max: u32,
    /// Subscriptions per session. A SUBSCRIBE entry beyond it gets a 0x80 (5.0: 0x97) code.
    pub subscriptions_per_session_max: u32,
    /// Retained messages per broker. A new retained topic beyond it is not stored (counted);
    /// replacing or deleting an existing one always works.
    pub retained_messages_max: u32,
    /// Longest client identifier accepted, in bytes; longer ones get CONNACK 0x02 / 0x85.
    pub client_id_len_max: u16,
    /// Bytes a connection may read into its buffer per read operation once it is busy. Idle
    /// connections read into a much smaller buffer; see `shard::driver`.
    pub read_buffer_bytes: u32,
    /// Messages each shard-to-shard ring holds. A full ring leaves messages in the sender's
    /// local backlog.
    pub mesh_ring_capacity: u32,
    /// Messages a shard may hold in its local mesh backlog. Beyond it the shard stops reading
    /// from its connections until the backlog drains (so QoS 1/2 is never dropped), and QoS 0
    /// messages for other shards are dropped and counted.
    pub mesh_backlog_max: u32,
    /// Messages a shard takes from the mesh per tick before it serves its sockets again.
    pub mesh_batch_max: u32,
    /// Seconds a closing connection may take to flush what is left for it. A peer that does
    /// not read it by then has its socket shut down hard (counted), so it cannot hold a slot,
    /// a file descriptor and its output forever.
    pub close_timeout_s: u32,
    /// Password checks (PBKDF2/argon2, run on the verifier threads) a shard may have waiting.
    /// A password CONNECT beyond it gets CONNACK 0x89 Server busy (3.1.1: 0x03) at once, so a
    /// flood of logins is refused instead of queued without end.
    pub auth_verify_queue_max: u32,
    /// Users per shard whose last successful password check is remembered (a keyed digest,
    /// not the password) until the next reload, so reconnects skip the verifier. When full
    /// the cache starts afresh; 0 turns it off.
    pub auth_cache_max: u32,
    /// Seconds a TLS handshake and a WebSocket upgrade together may take from accept. A
    /// connection still handshaking then is closed (counted; an upgrade in progress gets 408).
    pub tls_handshake_timeout_s: u32,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            packet_size_max: 1024 * 1024,
            inflight_max: 20,
            queued_messages_max: 1000,
            queued_bytes_max: 64 * 1024 * 1024,
            outbound_buffer_max_bytes: 4 * 1024 * 1024,
            connections_max: 1_000_000,
            sessions_max: 1_000_000,
            subscriptions_per_session_max: 10_000,
            retained_messages_max: 1_000_000,
            client_id_len_max: 65_535,
            read_buffer_bytes: 16 * 1024,
            mesh_ring_capacity: 4096,
            mesh_backlog_max: 65_536,
            mesh_batch_max: 1024,
            close_timeout_s: 10,
            auth_verify_queue_max: 1024,
            auth_cache_max: 100_000,
            tls_handshake_timeout_s: 10,
        }
    }
}

impl Limits {
    fn validate(&self) -> Result<(), ConfigError> {
        let positive = [
            ("limits.packet_size_max", self.packet_size_max as u64),
            ("limits.inflight_max", self.inflight_max as u64),
            ("limits.queued_bytes_max", self.queued_bytes_max as u64),
            (
                "limits.outbound_buffer_max_bytes",
                self.outbound_buffer_max_bytes as u64,
            ),
            ("limits.connections_max", self.connections_max as u64),
            ("limits.sessions_max", self.sessions_max as u64),
            (
                "limits.subscriptions_per_session_max",
                self.subscriptions_per_session_max as u64,
            ),
            ("limits.client_id_len_max", self.client_id_len_max as u64),
            ("limits.mesh_ring_capacity", self.mesh_ring_capacity as u64),
            ("limits.mesh_backlog_max", self.mesh_backlog_max as u64),
            ("limits.mesh_batch_max", self.mesh_batch_max as u64),
            (
                "limits.auth_verify_queue_max",
                self.auth_verify_queue_max as u64,
            ),
            (
                "limits.tls_handshake_timeout_s",
                self.tls_handshake_timeout_s as u64,
            ),
        ];
        for (key, value) in positive {
            if value == 0 {
                return Err(ConfigError::Invalid {
                    key,
                    why: "must be at least 1".into(),
                });
            }
        }
        if self.packet_size_max < 64 || self.packet_size_max > crate::codec::REMAINING_LENGTH_MAX {
            return Err(ConfigError::Invalid {
                key: "limits.packet_size_max",
                why: "must be between 64 and 268435455".into(),
            });
        }
        if self.read_buffer_bytes < 512 {
            return Err(ConfigError::Invalid {
                key: "limits.read_buffer_bytes",
                why: "must be at least 512".into(),
            });
        }
        Ok(())
    }
}

/// Which I/O backend a shard runs on.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, clap::ValueEnum, Default,
)]
#[serde(rename_all = "lowercase")]
pub enum IoBackend {
    /// io_uring when the kernel allows it, epoll otherwise.
    #[default]
    Auto,
    Uring,
    Epoll,
}

/// The whole validated configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `listen` / `--listen` addresses (plain MQTT) followed by the `[[listener]]` tables.
    pub listeners: Vec<ListenerConfig>,
    /// Shard threads; each owns one core's share of the connections. Default: the CPUs this
    /// process may run on.
    pub shards: usize,
    /// Pin shard i to the i-th CPU this process may run on.
    pub pin_cores: bool,
    /// Tests and debugging: each shard also listens on its own port on 127.0.0.1, so that a
    /// client can pick its shard (`Broker::shard_addrs`). Off in production.
    pub shard_listeners: bool,
    pub io: IoBackend,
    /// `tracing` filter, e.g. `info` or `ringmq=debug`.
    pub log_level: String,
    /// Seconds between `$SYS` updates; 0 turns `$SYS` off.
    pub sys_interval_s: u32,
    /// Where the admin thread serves Prometheus `/metrics` (`src/admin.rs`); off when unset.
    pub metrics_listen: Option<SocketAddr>,
    pub limits: Limits,
    /// MQTT 5.0 server capabilities (`[protocol]`), announced in CONNACK and enforced.
    pub protocol: ProtocolOptions,
    /// Enhanced authentication (`[auth]`).
    pub auth: AuthConfig,
    /// The write-ahead logs (`persistence_dir`, `durability`...).
    pub persistence: Persistence,
}

/// Access control (`[auth]`): who may connect, what they may do, and the users for MQTT 5.0
/// enhanced authentication. mosquitto's keys, with mosquitto's file formats.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// Clients without a user name may connect. Unset: allowed only while every listener is
    /// on loopback (mosquitto 2's rule), so a broker reachable from a network is closed to
    /// anonymous clients unless someone says otherwise.
    pub allow_anonymous: Option<bool>,
    /// mosquitto_passwd's format (`user:$7$...`, `$6$`, `$argon2id$`). A client with a user
    /// name must match it; unknown user and wrong password both get 0x86 (3.1.1: 0x04).
    pub password_file: Option<PathBuf>,
    /// mosquitto's ACL format. Without one every topic is allowed; with one only what it grants.
    pub acl_file: Option<PathBuf>,
    /// Anonymous clients may read `$SYS`.
    pub sys_anonymous: bool,
    /// Threads that check passwords, at low priority, so PBKDF2/argon2 never run on a shard.
    pub verify_threads: u32,
    /// User name to password for the SCRAM-SHA-256 method: either the plain password (salted
    /// and hashed at start-up, then forgotten) or a stored verifier in PostgreSQL's format
    /// `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`. Empty: the method is off,
    /// and a client asking for it gets CONNACK 0x8C.
    pub scram_sha256: std::collections::BTreeMap<String, String>,
}

impl Default for AuthConfig {
    fn default() -> AuthConfig {
        AuthConfig {
            allow_anonymous: None,
            password_file: None,
            acl_file: None,
            sys_anonymous: true,
            verify_threads: 1,
            scram_sha256: Default::default(),
        }
    }
}

impl Config {
    /// Gives each mesh ring fewer slots when the shard count would make the mesh exceed
    /// [`MESH_RING_BYTES_MAX`] (at least [`MESH_RING_CAPACITY_MIN`]; `SHARDS_MAX` keeps that
    /// within the cap too).
    pub(crate) fn fit_mesh_rings(&mut self) {
        let rings = self
            .shards
            .saturating_mul(self.shards.saturating_sub(1))
            .max(1);
        let slot = std::mem::size_of::<crate::shard::ShardMessage>();
        let fits = MESH_RING_BYTES_MAX / rings.saturating_mul(slot);
        let fits = u32::try_from(fits)
            .unwrap_or(u32::MAX)
            .max(MESH_RING_CAPACITY_MIN);
        self.limits.mesh_ring_capacity = self.limits.mesh_ring_capacity.min(fits);
    }

    /// Bytes the mesh rings reserve: one ring per ordered pair of shards.
    pub fn mesh_ring_bytes(&self) -> usize {
        self.shards
            .saturating_mul(self.shards.saturating_sub(1))
            .saturating_mul(self.limits.mesh_ring_capacity as usize)
            .saturating_mul(std::mem::size_of::<crate::shard::ShardMessage>())
    }

    /// Whether anonymous clients may connect: as configured, else only on loopback.
    pub fn allow_anonymous(&self) -> bool {
        self.auth
            .allow_anonymous
            .unwrap_or_else(|| self.loopback_only())
    }

    /// Every listener is bound to a loopback address.
    pub fn loopback_only(&self) -> bool {
        self.listeners.iter().all(|l| l.bind.ip().is_loopback())
    }

    /// The access policy's settings, for [`crate::auth::Access::load`].
    pub fn access_settings(&self) -> crate::auth::AccessSettings<'_> {
        crate::auth::AccessSettings {
            allow_anonymous: self.allow_anonymous(),
            sys_anonymous: self.auth.sys_anonymous,
            password_file: self.auth.password_file.as_deref(),
            acl_file: self.auth.acl_file.as_deref(),
        }
    }
}

impl Default for Config {
    fn default() -> Config {
        Config {
            listeners: vec![ListenerConfig::mqtt(SocketAddr::from((
                [127, 0, 0, 1],
                1883,
            )))],
            shards: available_cpus(),
            pin_cores: false,
            shard_listeners: false,
            io: IoBackend::Auto,
            log_level: "info".into(),
            sys_interval_s: 10,
            metrics_listen: None,
            limits: Limits::default(),
            protocol: ProtocolOptions::default(),
            auth: AuthConfig::default(),
            persistence: Persistence::default(),
        }
    }
}

/// The TOML file's shape. Every key is optional; absent keys keep their defaults.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct FileConfig {
    listen: Option<Vec<String>>,
    /// `[[listener]]` tables.
    listener: Vec<ListenerConfig>,
    shards: Option<usize>,
    pin_cores: Option<bool>,
    io: Option<IoBackend>,
    log_level: Option<String>,
    sys_interval_s: Option<u32>,
    metrics_listen: Option<SocketAddr>,
    persistence_dir: Option<PathBuf>,
    durability: Option<Durability>,
    fsync_interval_ms: Option<u32>,
    persisted_bytes_max: Option<u64>,
    limits: Limits,
    protocol: ProtocolOptions,
    auth: AuthConfig,
}

/// Command-line flags. Those given override the file.
#[derive(Debug, Default, Clone, clap::Parser)]
#[command(
    name = "ringmq",
    version,
    about = "A thread-per-core MQTT 3.1/3.1.1/5.0 broker"
)]
pub struct Cli {
    /// TOML configuration file. Without one, embedded defaults apply.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Address to listen on, ADDR:PORT; repeat for several. Default 127.0.0.1:1883.
    #[arg(long, value_name = "ADDR:PORT")]
    pub listen: Vec<String>,
    /// Number of shard threads (default: the CPUs available to the process).
    #[arg(long)]
    pub shards: Option<usize>,
    /// Pin shard i to CPU i (of those available to the process).
    #[arg(long)]
    pub pin_cores: bool,
    /// I/O backend: auto picks io_uring and falls back to epoll when it is blocked.
    #[arg(long, value_enum)]
    pub io: Option<IoBackend>,
    /// Log filter, e.g. `info`, `debug`, `ringmq=trace`.
    #[arg(long)]
    pub log_level: Option<String>,
    /// Let clients without a user name connect even on a non-loopback listener
    /// (`[auth] allow_anonymous = true`).
    #[arg(long)]
    pub allow_anonymous: bool,
    /// Serve Prometheus metrics at http://ADDR:PORT/metrics (`metrics_listen`).
    #[arg(long, value_name = "ADDR:PORT")]
    pub metrics_listen: Option<SocketAddr>,
    /// Keep sessions and retained messages in write-ahead logs in DIR (`persistence_dir`).
    #[arg(long, value_name = "DIR")]
    pub persistence_dir: Option<PathBuf>,
    /// What an acknowledgement promises (`durability`): none, batch or sync.
    #[arg(long, value_enum)]
    pub durability: Option<Durability>,
    /// Check FILE and the password, ACL and certificate files it names, without starting;
    /// print what is wrong as `file:line` and exit non-zero if anything is.
    #[arg(long, value_name = "FILE", conflicts_with = "config")]
    pub check_config: Option<PathBuf>,
    /// Print the effective configuration (file and flags, every default included) as TOML and
    /// exit.
    #[arg(long)]
    pub print_config: bool,
    /// Print a hardened systemd unit that runs this binary with `--config` and exit.
    #[arg(long)]
    pub print_systemd_unit: bool,
}

/// A configuration mistake, naming the key at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid `{key}`: {why}")]
    Invalid { key: &'static str, why: String },
}

impl Config {
    /// Builds the configuration from the command line (and the file it names).
    pub fn from_cli(cli: &Cli) -> Result<Config, ConfigError> {
        let file = match &cli.config {
            Some(path) => Self::read_file(path)?,
            None => FileConfig::default(),
        };
        let mut config = Config::default();
        config.apply_file(file)?;
        if !cli.listen.is_empty() {
            // `--listen` replaces the file's `listen` addresses; its `[[listener]]` tables stay.
            config.listeners.retain(|l| l.from_table);
            let mut plain = parse_listeners("--listen", &cli.listen)?;
            plain.append(&mut config.listeners);
            config.listeners = plain;
        }
        if let Some(shards) = cli.shards {
            config.shards = shards;
        }
        if let Some(io) = cli.io {
            config.io = io;
        }
        if cli.pin_cores {
            config.pin_cores = true;
        }
        if let Some(level) = &cli.log_level {
            config.log_level = level.clone();
        }
        if cli.allow_anonymous {
            config.auth.allow_anonymous = Some(true);
        }
        if let Some(addr) = cli.metrics_listen {
            config.metrics_listen = Some(addr);
        }
        if let Some(dir) = &cli.persistence_dir {
            config.persistence.dir = Some(dir.clone());
        }
        if let Some(durability) = cli.durability {
            config.persistence.durability = durability;
        }
        config.validate()?;
        config.fit_mesh_rings();
        Ok(config)
    }

    /// Parses a TOML document, as `--config` would.
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        let file = toml::from_str::<FileConfig>(text).map_err(|e| ConfigError::Parse {
            path: PathBuf::from("<inline>"),
            message: e.to_string(),
        })?;
        let mut config = Config::default();
        config.apply_file(file)?;
        config.validate()?;
        config.fit_mesh_rings();
        Ok(config)
    }

    fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        })
    }

    fn apply_file(&mut self, file: FileConfig) -> Result<(), ConfigError> {
        if let Some(listen) = file.listen {
            self.listeners = parse_listeners("listen", &listen)?;
        } else if !file.listener.is_empty() {
            // `[[listener]]` tables alone replace the default listener.
            self.listeners.clear();
        }
        for mut listener in file.listener {
            listener.from_table = true;
            self.listeners.push(listener);
        }
        if let Some(shards) = file.shards {
            self.shards = shards;
        }
        if let Some(pin) = file.pin_cores {
            self.pin_cores = pin;
        }
        if let Some(io) = file.io {
            self.io = io;
        }
        if let Some(level) = file.log_level {
            self.log_level = level;
        }
        if let Some(sys) = file.sys_interval_s {
            self.sys_interval_s = sys;
        }
        if let Some(addr) = file.metrics_listen {
            self.metrics_listen = Some(addr);
        }
        let persistence = &mut self.persistence;
        persistence.dir = file.persistence_dir.or(persistence.dir.take());
        persistence.durability = file.durability.unwrap_or(persistence.durability);
        persistence.fsync_interval_ms = file
            .fsync_interval_ms
            .unwrap_or(persistence.fsync_interval_ms);
        persistence.bytes_max = file.persisted_bytes_max.unwrap_or(persistence.bytes_max);
        self.limits = file.limits;
        self.protocol = file.protocol;
        self.auth = file.auth;
        Ok(())
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if self.listeners.is_empty() {
            return Err(ConfigError::Invalid {
                key: "listen",
                why: "no address given".into(),
            });
        }
        for listener in &self.listeners {
            listener.validate()?;
        }
        if self.shards == 0 || self.shards > SHARDS_MAX {
            return Err(ConfigError::Invalid {
                key: "shards",
                why: format!("{} is not between 1 and {SHARDS_MAX}", self.shards),
            });
        }
        if self.auth.verify_threads == 0 || self.auth.verify_threads > VERIFY_THREADS_MAX {
            return Err(ConfigError::Invalid {
                key: "auth.verify_threads",
                why: format!("must be between 1 and {VERIFY_THREADS_MAX}"),
            });
        }
        self.limits.validate()?;
        self.persistence.validate()?;
        self.protocol.validate()
    }
}

/// Most password-verifier threads: more than the cores only adds contention.
pub const VERIFY_THREADS_MAX: u32 = 256;

/// Most shards a broker runs. The mesh has N x (N - 1) rings; [`MESH_RING_BYTES_MAX`] bounds
/// their memory for any N.
pub const SHARDS_MAX: usize = 256;

/// Most memory the mesh rings may reserve. A ring slot is one `ShardMessage` (104 bytes), so
/// at the default `mesh_ring_capacity` (4096) 8 shards take 23 MiB and 64 shards would take
/// 1.6 GiB; past this cap each ring gets fewer slots instead (64 shards: 1,251 slots a ring,
/// 512 MiB of address space, paged in only as rings fill).
pub const MESH_RING_BYTES_MAX: usize = 512 << 20;

/// The fewest slots a ring gets when many shards shrink them (`Config::fit_mesh_rings`).
pub const MESH_RING_CAPACITY_MIN: u32 = 64;

/// CPUs this process may run on (respects affinity masks and cgroup quotas).
pub fn available_cpus() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

fn parse_listeners(
    key: &'static str,
    values: &[String],
) -> Result<Vec<ListenerConfig>, ConfigError> {
    values
        .iter()
        .map(|v| {
            v.parse::<SocketAddr>()
                .map(ListenerConfig::mqtt)
                .map_err(|e| ConfigError::Invalid {
                    key,
                    why: format!("{v:?} is not ADDR:PORT ({e})"),
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_listen_on_loopback_only() {
        let config = Config::from_cli(&Cli::default()).expect("defaults are valid");
        assert_eq!(
            config.listeners,
            vec![ListenerConfig::mqtt(SocketAddr::from((
                [127, 0, 0, 1],
                1883
            )))]
        );
        assert_eq!(config.limits.inflight_max, 20);
        assert_eq!(config.limits.queued_messages_max, 1000);
        assert_eq!(config.sys_interval_s, 10);
    }

    #[test]
    fn file_overrides_defaults() {
        let config = Config::from_toml(
            "listen = [\"0.0.0.0:1884\"]\nsys_interval_s = 5\n[limits]\ninflight_max = 7\n",
        )
        .expect("valid");
        assert_eq!(
            config.listeners,
            vec![ListenerConfig::mqtt(SocketAddr::from(([0, 0, 0, 0], 1884)))]
        );
        assert_eq!(config.sys_interval_s, 5);
        assert_eq!(config.limits.inflight_max, 7);
        assert_eq!(config.limits.queued_messages_max, 1000);
    }

    #[test]
    fn unknown_key_is_named() {
        let err = Config::from_toml("[limits]\ninflight_maxx = 7\n").expect_err("unknown key");
        assert!(err.to_string().contains("inflight_maxx"), "{err}");
    }

    #[test]
    fn zero_limit_is_named() {
        let err = Config::from_toml("[limits]\ninflight_max = 0\n").expect_err("zero");
        assert!(err.to_string().contains("limits.inflight_max"), "{err}");
    }

    #[test]
    fn protocol_and_auth_sections_parse() {
        let config = Config::from_toml(
            "[protocol]\ntopic_alias_max = 3\nshared_strategy = \"hash_client_id\"\n\
             [auth.scram_sha256]\nalice = \"secret\"\n",
        )
        .expect("valid");
        assert_eq!(config.protocol.topic_alias_max, 3);
        assert_eq!(
            config.protocol.shared_strategy,
            SharedStrategy::HashClientId
        );
        assert_eq!(config.auth.scram_sha256["alice"], "secret");
        assert!(
            !config.protocol.allow_control_characters,
            "refused by default"
        );
        let lenient = Config::from_toml("[protocol]\nallow_control_characters = true\n");
        assert!(lenient.expect("valid").protocol.allow_control_characters);
        let err = Config::from_toml("[protocol]\nmaximum_qos = 3\n").expect_err("qos 3");
        assert!(err.to_string().contains("protocol.maximum_qos"), "{err}");
    }

    #[test]
    fn mesh_ring_memory_is_capped() {
        let few = Config::from_toml("shards = 8\n").expect("valid");
        assert_eq!(
            few.limits.mesh_ring_capacity, 4096,
            "few shards keep their rings"
        );
        for shards in [64, SHARDS_MAX] {
            let config = Config::from_toml(&format!("shards = {shards}\n")).expect("valid");
            assert!(
                config.mesh_ring_bytes() <= MESH_RING_BYTES_MAX,
                "{shards} shards"
            );
            assert!(config.limits.mesh_ring_capacity < 4096);
        }
        let err = Config::from_toml("shards = 300\n").expect_err("over SHARDS_MAX");
        assert!(err.to_string().contains("shards"), "{err}");
    }

    #[test]
    fn bad_listen_address_is_named() {
        let err = Config::from_toml("listen = [\"nowhere\"]\n").expect_err("bad address");
        assert!(err.to_string().contains("listen"), "{err}");
    }
}
