//! The command line: one subcommand per scenario, plus `compare`, with the flags they share.
//!
//! Parsing only; [`crate::scenario`] checks the values against each other and the limits
//! below and turns them into a plan.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// The longest run accepted, in seconds: every run stops by itself.
pub const DURATION_S_MAX: f64 = 3_600.0;
/// The largest payload accepted: the broker's default `packet_size_max` is 1 MiB.
pub const PAYLOAD_BYTES_MAX: usize = 1_000_000;
/// Clients in one process: the fd limit here is 20,000 and each client is one socket.
pub const CLIENTS_MAX: u64 = 19_900;

const ABOUT: &str = "MQTT load generator: one-way latency in HDR histograms, open-loop rates \
with coordinated-omission correction, loss/duplicate/reorder accounting, broker CPU per message";

const LONG_ABOUT: &str = "\
MQTT load generator: one-way latency in HDR histograms, open-loop rates with \
coordinated-omission correction, loss/duplicate/reorder accounting, broker CPU per message.

Every run is bounded by --duration (and --count where given) and stops by itself.
Each client is one TCP connection and one file descriptor. One process may open at most its \
RLIMIT_NOFILE hard limit of descriptors (20,000 on the benchmark machines), so `conn` beyond \
about 19,900 clients needs several ringmq-loadgen processes started side by side, each with \
its share of --clients (the broker's RSS per connection is then the sum of their deltas). \
Client source addresses are spread over 127.0.0.1..=127.0.0.K (--source-ips K) so that \
ephemeral ports do not run out on loopback.

Examples:
  ringmq-loadgen pubsub --shape p2p --publishers 10 --qos 1 --window 1000 --broker-pid $(pidof ringmq)
  ringmq-loadgen pubsub --rate 20000 --qos 1 --duration 30 --plot latency.svg
  ringmq-loadgen conn --clients 10000 --rate 2000 --broker-pid $(pidof mosquitto)
  ringmq-loadgen retained --topics 10000 --filter '+/7' --subscribers 4
  ringmq-loadgen compare --a 127.0.0.1:1883 --b 127.0.0.1:1884 --rounds 3 pubsub --qos 1
  ringmq-loadgen pubsub --port 8883 --tls --ca-file ca.crt --qos 1
  ringmq-loadgen conn --port 8883 --tls --insecure --clients 5000 --broker-pid $(pidof ringmq)
  ringmq-loadgen pubsub --port 8443 --tls --ws --insecure --ws-path /mqtt
  ringmq-loadgen compare --a mqtts://127.0.0.1:8883 --b mqtt://127.0.0.1:1883 pubsub --insecure --qos 1

Transports: --tls (mqtts), --ws (ws), --tls --ws (wss), for every scenario. In compare, a \
scheme in --a/--b (mqtt://, mqtts://, ws://HOST:PORT/PATH, wss://) sets that side's transport, \
so one broker's TLS can be compared with its plain TCP; a side without a scheme takes the \
scenario's --tls/--ws. The trust flags (--ca-file, --insecure, --server-name) go after the \
scenario name, like every scenario flag, and apply to the TLS sides.";

#[derive(Debug, Clone, Parser)]
#[command(name = "ringmq-loadgen", version, about = ABOUT, long_about = LONG_ABOUT)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Open N idle connections at a given rate and hold them: connect latency, connects/s,
    /// and with --broker-pid the broker's RSS per connection and CPU per connect. RSS rarely
    /// shrinks, so measure RSS per connection on a freshly started broker.
    Conn(ConnArgs),
    /// P publishers, S subscribers over T topics, in one of the standard shapes.
    Pubsub(PubsubArgs),
    /// Store R retained messages, then measure SUBSCRIBE -> last retained message for a
    /// wildcard filter, over and over.
    Retained(RetainedArgs),
    /// Run one scenario against two brokers, alternating A, B, A, B..., and print the medians
    /// side by side with the ratio A/B.
    Compare(CompareArgs),
    /// Start the broker binary once per shard count and I/O backend, measure each (idle memory,
    /// max-rate and fixed-rate publishing) and recommend a configuration for this host.
    Tune(TuneArgs),
}

/// Flags of `tune`.
#[derive(Debug, Clone, Args)]
pub struct TuneArgs {
    /// The broker binary [default: `ringmq` next to this program].
    #[arg(long, value_name = "PATH")]
    pub broker: Option<PathBuf>,
    /// Shard counts to try, e.g. `1,2,4` [default: 1 up to the CPUs].
    #[arg(long, value_delimiter = ',')]
    pub shards: Option<Vec<usize>>,
    /// I/O backends to try.
    #[arg(long, value_delimiter = ',', default_value = "uring,epoll")]
    pub io: Vec<String>,
    /// The port each broker listens on (127.0.0.1).
    #[arg(long, default_value_t = 18950)]
    pub port: u16,
    /// Seconds per publish run.
    #[arg(long, default_value_t = 5.0)]
    pub duration: f64,
    /// The fixed rate, msgs/s over all publishers, of the second publish run.
    #[arg(long, default_value_t = 20_000)]
    pub rate: u64,
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(0..=2))]
    pub qos: u8,
    #[arg(long, default_value_t = 16)]
    pub payload_bytes: usize,
    /// Publishers, and as many subscribers (point to point).
    #[arg(long, default_value_t = 10)]
    pub publishers: u32,
    /// Idle connections opened to measure memory per connection.
    #[arg(long, default_value_t = 2000)]
    pub idle_clients: u32,
    /// Write the table and the recommendation as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Draw every configuration's fixed-rate latency spectrum as SVG to this file.
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<PathBuf>,
}

/// Flags every scenario has.
#[derive(Debug, Clone, Args)]
pub struct CommonArgs {
    /// Broker host (an address, or a name resolving to one). Only brokers you name are used.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    #[arg(long, default_value_t = 1883)]
    pub port: u16,
    /// MQTT protocol level: 3 (3.1), 4 (3.1.1) or 5 (5.0).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u8).range(3..=5))]
    pub mqtt_version: u8,
    /// Worker threads, each one event loop owning a share of the clients [default: CPUs].
    #[arg(long)]
    pub threads: Option<usize>,
    /// Bind client sockets to 127.0.0.1..=127.0.0.K, round-robin (IPv4 loopback targets).
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u8).range(1..))]
    pub source_ips: u8,
    /// Seconds to run (conn: seconds to hold the connections once all are up).
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Seconds a client may take from TCP connect to CONNACK (and SUBACK).
    #[arg(long, default_value_t = 10.0)]
    pub connect_timeout: f64,
    /// Seconds to wait after the run for acks and deliveries still in flight.
    #[arg(long, default_value_t = 5.0)]
    pub drain_timeout: f64,
    /// Write the result as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Draw the latency percentile spectrum (log x-axis) as SVG to this file.
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<PathBuf>,
    /// The broker's pid: report its CPU seconds per million messages and its RSS (from /proc).
    #[arg(long, value_name = "PID")]
    pub broker_pid: Option<u32>,
    /// No progress line on stderr.
    #[arg(long)]
    pub quiet: bool,
    /// User name every CONNECT carries (with `--users N`: a prefix, numbered per client).
    #[arg(long)]
    pub username: Option<String>,
    /// Password every CONNECT carries (a benchmark credential, not a secret).
    #[arg(long, requires = "username")]
    pub password: Option<String>,
    /// Spread the clients over this many users, `<username>0` .. `<username>N-1`.
    #[arg(long, default_value_t = 1, requires = "username")]
    pub users: u32,
    #[command(flatten)]
    pub transport: TransportArgs,
}

/// The help section of the transport flags (per flag: a section on the group would also take
/// in the flags flattened after it).
const TRANSPORT: &str = "Transport (compare also takes mqtts://, ws://, wss:// in --a/--b)";

/// What carries MQTT: TCP, TLS, WebSocket, or WebSocket over TLS. Connect times include the
/// TLS handshake and the WebSocket upgrade.
#[derive(Debug, Clone, Default, Args)]
#[command(
    next_help_heading = "Transport (every scenario; compare also takes mqtts://, ws://, wss:// in --a/--b)"
)]
pub struct TransportArgs {
    /// MQTT over TLS (mqtts; with --ws, wss). TLS 1.3 or 1.2, ALPN `mqtt` (`http/1.1` for
    /// wss), no session resumption: every connect is a full handshake.
    #[arg(long, help_heading = TRANSPORT)]
    pub tls: bool,
    /// Trust the CA certificates in this PEM file (for public CAs:
    /// /etc/ssl/certs/ca-certificates.crt). --tls needs this or --insecure.
    #[arg(long, help_heading = TRANSPORT, value_name = "PATH", conflicts_with = "insecure")]
    pub ca_file: Option<PathBuf>,
    /// Accept any server certificate without checking it: for self-signed test certificates
    /// on a broker you run yourself.
    #[arg(long, help_heading = TRANSPORT)]
    pub insecure: bool,
    /// The name the certificate must carry, also sent as SNI [default: --host].
    #[arg(long, help_heading = TRANSPORT, value_name = "NAME")]
    pub server_name: Option<String>,
    /// MQTT over WebSocket (ws; with --tls, wss): subprotocol `mqtt`, masked binary frames,
    /// one frame per write batch.
    #[arg(long, help_heading = TRANSPORT)]
    pub ws: bool,
    /// The path of the WebSocket upgrade request.
    #[arg(long, help_heading = TRANSPORT, default_value = "/mqtt", value_name = "PATH")]
    pub ws_path: String,
}

impl CommonArgs {
    /// The credentials for CONNECT, if a user name was given.
    pub fn login(&self) -> Option<crate::plan::Login> {
        self.username.as_ref().map(|username| crate::plan::Login {
            username: username.clone(),
            password: self.password.clone().unwrap_or_default(),
            users: self.users,
        })
    }
}

impl TransportArgs {
    /// The URL scheme these flags select: `mqtt`, `mqtts`, `ws` or `wss`.
    pub fn scheme(&self) -> &'static str {
        match (self.tls, self.ws) {
            (false, false) => "mqtt",
            (true, false) => "mqtts",
            (false, true) => "ws",
            (true, true) => "wss",
        }
    }
}

/// Flags of scenarios that publish.
#[derive(Debug, Clone, Args)]
pub struct MessageArgs {
    /// QoS of publishes and subscriptions: 0, 1 or 2.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=2))]
    pub qos: u8,
    /// Payload size; the first 16 bytes carry the send time, publisher and sequence number.
    #[arg(long, default_value_t = 16)]
    pub payload_bytes: usize,
    /// QoS 1/2 messages outstanding per publisher (also capped by the broker's Receive Maximum).
    #[arg(long, default_value_t = 100)]
    pub window: u32,
}

#[derive(Debug, Clone, Args)]
pub struct ConnArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Connections to open (at most 19,900 per process; start several processes for more).
    #[arg(long, default_value_t = 1000)]
    pub clients: u64,
    /// Connects per second over all threads; 0 opens them as fast as 256 per thread in flight allow.
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
}

/// Who publishes to whom.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Shape {
    /// Publisher i -> topic i -> subscriber i.
    P2p,
    /// Many publishers over T topics -> a few subscribers on a `+` wildcard.
    FanIn,
    /// Publishers on one topic -> many subscribers.
    FanOut,
    /// Publishers over T topics -> `$share/g{k}/...` groups; each message reaches one member per group.
    Shared,
}

impl Shape {
    /// The name as typed on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Shape::P2p => "p2p",
            Shape::FanIn => "fan-in",
            Shape::FanOut => "fan-out",
            Shape::Shared => "shared",
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct PubsubArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(flatten)]
    pub message: MessageArgs,
    /// Who publishes to whom.
    #[arg(long, value_enum, default_value_t = Shape::P2p)]
    pub shape: Shape,
    /// Publishers [default: p2p 10, fan-in 100, fan-out 1, shared 10].
    #[arg(long, alias = "clients")]
    pub publishers: Option<u64>,
    /// Subscribers [default: p2p = publishers, fan-in 1, fan-out 100, shared 10].
    #[arg(long)]
    pub subscribers: Option<u64>,
    /// Topics [default: p2p = publishers, fan-in 1, fan-out 1 (fixed), shared 1].
    #[arg(long)]
    pub topics: Option<u64>,
    /// Share groups for --shape shared; each subscriber j joins group j % G.
    #[arg(long, default_value_t = 1)]
    pub groups: u64,
    /// Messages per second over all publishers (open loop, latency from the scheduled time);
    /// 0 is max-rate mode with --window outstanding per publisher.
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    /// Messages in total over all publishers; the run ends at --count or --duration, whichever first.
    #[arg(long)]
    pub count: Option<u64>,
    /// Check counts against the broker's own `$SYS/broker/publish/messages/received`: read
    /// it before the run, then re-read it after the run until it has moved by what we sent,
    /// for at most this many seconds (more than the broker's $SYS interval; mosquitto's
    /// default is 10 s). The first reading may be one interval old, so start from a broker
    /// that has had no publishes for one interval. 0 turns the check off.
    #[arg(long, default_value_t = 0.0, value_name = "SECONDS")]
    pub sys_check_wait: f64,
    /// Persistent sessions (5.0 only): every CONNECT asks for this Session Expiry Interval,
    /// so a broker with durability logs each subscriber's queue and inflight window; each
    /// DISCONNECT sets it to 0, so no session outlives the run.
    #[arg(long, default_value_t = 0, value_name = "SECONDS")]
    pub session_expiry: u32,
}

#[derive(Debug, Clone, Args)]
pub struct RetainedArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(flatten)]
    pub message: MessageArgs,
    /// Retained topics to store: `lg/{run}/r/{i/100}/{i%100}`.
    #[arg(long, default_value_t = 1000)]
    pub topics: u64,
    /// Clients subscribing and unsubscribing concurrently.
    #[arg(long, default_value_t = 1)]
    pub subscribers: u64,
    /// Filter under the run's retained prefix: `#` matches all, `+/7` one per hundred, `3/#` a branch.
    #[arg(long, default_value = "#")]
    pub filter: String,
    /// Subscribe rounds per subscriber; the run ends at --count or --duration, whichever first.
    #[arg(long)]
    pub count: Option<u64>,
}

#[derive(Debug, Clone, Args)]
pub struct CompareArgs {
    /// Broker A: HOST:PORT, or SCHEME://HOST:PORT[/PATH] with scheme mqtt, mqtts, ws or wss
    /// to give A its own transport (the scenario's --ca-file/--insecure apply to TLS).
    #[arg(long, value_name = "[SCHEME://]HOST:PORT")]
    pub a: String,
    /// Broker B, as --a.
    #[arg(long, value_name = "[SCHEME://]HOST:PORT")]
    pub b: String,
    /// Rounds; each runs the scenario once against A, then once against B.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub rounds: u32,
    /// Broker A's pid, for CPU and RSS figures.
    #[arg(long)]
    pub a_pid: Option<u32>,
    /// Broker B's pid, for CPU and RSS figures.
    #[arg(long)]
    pub b_pid: Option<u32>,
    /// Write every round and the medians as JSON.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Draw A's and B's latency spectra (all rounds merged) as SVG.
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<PathBuf>,
    /// The scenario, with its own flags (its --host/--port/--broker-pid/--json/--plot are set
    /// by compare).
    #[command(subcommand)]
    pub scenario: Scenario,
}

/// The scenarios `compare` can run.
#[derive(Debug, Clone, Subcommand)]
pub enum Scenario {
    Conn(ConnArgs),
    Pubsub(PubsubArgs),
    Retained(RetainedArgs),
}

impl Scenario {
    pub fn common_mut(&mut self) -> &mut CommonArgs {
        match self {
            Scenario::Conn(a) => &mut a.common,
            Scenario::Pubsub(a) => &mut a.common,
            Scenario::Retained(a) => &mut a.common,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_is_well_formed() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn compare_takes_a_scenario_with_its_flags() {
        let cli = Cli::try_parse_from([
            "ringmq-loadgen",
            "compare",
            "--a",
            "127.0.0.1:1883",
            "--b",
            "127.0.0.1:1884",
            "--rounds",
            "2",
            "pubsub",
            "--shape",
            "fan-out",
            "--qos",
            "1",
            "--subscribers",
            "7",
        ])
        .expect("parses");
        let Command::Compare(compare) = cli.command else {
            panic!("not compare")
        };
        assert_eq!(compare.rounds, 2);
        let Scenario::Pubsub(p) = compare.scenario else {
            panic!("not pubsub")
        };
        assert_eq!(
            (p.shape, p.message.qos, p.subscribers),
            (Shape::FanOut, 1, Some(7))
        );
    }

    #[test]
    fn out_of_range_values_are_refused() {
        assert!(Cli::try_parse_from(["ringmq-loadgen", "pubsub", "--qos", "3"]).is_err());
        assert!(Cli::try_parse_from(["ringmq-loadgen", "conn", "--mqtt-version", "6"]).is_err());
    }
}
