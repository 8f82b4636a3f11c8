//! `tune`: which shard count and I/O backend suit this host. Starts the broker binary once per
//! (shards, backend), each on freshly started processes, and measures:
//!
//! 1. bytes of RSS per idle connection (`conn`, first, while the broker is fresh: RSS rarely
//!    shrinks), and connects per second;
//! 2. the chosen publish scenario at max rate: msgs/s, broker CPU-s per million, p99;
//! 3. the same at a fixed rate (`--rate`): p99, the latency a deployment below saturation sees.
//!
//! The broker's shards are pinned to CPUs 0..N (`--pin-cores`); the load generator's threads
//! to the CPUs left over, when there are any (it says so when there are none, and the figures
//! for that row include the two competing for the same cores). The recommendation is the
//! configuration with the highest max-rate msgs/s, preferring fewer shards within 5 %: more
//! shards than that buy nothing but cross-shard traffic.

use std::fmt::Write as _;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde::Serialize;

use clap::Parser as _;

use crate::cli::{Cli, TuneArgs};
use crate::error::LoadgenError;
use crate::latency::Latency;
use crate::report::Report;
use crate::scenario::usage;

/// How long a started broker may take to listen.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// Within this fraction of the best msgs/s, fewer shards win.
const FEWER_SHARDS_MARGIN: f64 = 0.05;

/// One configuration's figures.
#[derive(Debug, Clone, Serialize)]
pub struct TuneRow {
    pub shards: usize,
    pub io: String,
    /// Why the configuration could not be measured, if it could not.
    pub unavailable: Option<String>,
    pub loadgen_pinned: bool,
    pub max_rate_msgs_per_s: f64,
    pub cpu_s_per_million_msgs: Option<f64>,
    pub max_rate_p99_us: f64,
    pub fixed_rate_p99_us: f64,
    pub idle_bytes_per_connection: Option<f64>,
    pub connects_per_s: f64,
    #[serde(skip)]
    fixed_rate_latency: Latency,
}

#[derive(Debug, Clone, Serialize)]
pub struct Tuning {
    pub host_cpus: usize,
    pub rows: Vec<TuneRow>,
    /// `--shards N --io X`, or `None` if nothing could be measured.
    pub recommendation: Option<String>,
}

pub fn run(args: &TuneArgs) -> Result<Tuning, LoadgenError> {
    let cpus = crate::sys::available_cpus();
    let broker = match &args.broker {
        Some(path) => path.clone(),
        None => {
            default_broker().ok_or_else(|| usage("cannot find the broker; give --broker PATH"))?
        }
    };
    if !broker.exists() {
        return Err(usage(format!(
            "broker binary {} not found; give --broker PATH",
            broker.display()
        )));
    }
    let shard_counts: Vec<usize> = match &args.shards {
        Some(list) => list.clone(),
        None => (1..=cpus).collect(),
    };
    let mut rows = Vec::new();
    for &shards in &shard_counts {
        for io in &args.io {
            eprintln!("tune: --shards {shards} --io {io}");
            rows.push(measure(args, &broker, shards, io, cpus)?);
        }
    }
    let recommendation = recommend(&rows);
    Ok(Tuning {
        host_cpus: cpus,
        rows,
        recommendation,
    })
}

fn measure(
    args: &TuneArgs,
    broker: &Path,
    shards: usize,
    io: &str,
    cpus: usize,
) -> Result<TuneRow, LoadgenError> {
    let mut row = TuneRow {
        shards,
        io: io.to_string(),
        unavailable: None,
        loadgen_pinned: false,
        max_rate_msgs_per_s: 0.0,
        cpu_s_per_million_msgs: None,
        max_rate_p99_us: 0.0,
        fixed_rate_p99_us: 0.0,
        idle_bytes_per_connection: None,
        connects_per_s: 0.0,
        fixed_rate_latency: Latency::default(),
    };
    let mut child = match Broker::start(broker, args.port, shards, io) {
        Ok(child) => child,
        Err(why) => {
            eprintln!("tune: --shards {shards} --io {io} unavailable: {why}");
            row.unavailable = Some(why);
            return Ok(row);
        }
    };
    // The load generator takes the CPUs the shards leave free.
    let spare: Vec<usize> = (shards..cpus).collect();
    row.loadgen_pinned = !spare.is_empty() && crate::sys::pin_process(&spare).is_ok();
    if !row.loadgen_pinned {
        eprintln!(
            "tune: {shards} shards use all {cpus} CPUs: the load generator shares them (not pinned)"
        );
    }
    let threads = spare.len().max(1).to_string();
    let pid = child.pid().to_string();
    let port = args.port.to_string();
    let common = [
        "--port",
        &port,
        "--threads",
        &threads,
        "--broker-pid",
        &pid,
        "--quiet",
    ];
    let idle = args.idle_clients.to_string();
    let conn = scenario(
        &[
            &["conn", "--clients", &idle, "--rate", "0", "--duration", "1"],
            &common[..],
        ]
        .concat(),
    )?;
    row.connects_per_s = conn.connections.connects_per_s;
    row.idle_bytes_per_connection = conn
        .broker
        .as_ref()
        .and_then(|b| b.rss_bytes_per_connection);
    let duration = args.duration.to_string();
    let qos = args.qos.to_string();
    let payload = args.payload_bytes.to_string();
    let publishers = args.publishers.to_string();
    let pubsub = [
        "pubsub",
        "--shape",
        "p2p",
        "--publishers",
        &publishers,
        "--subscribers",
        &publishers,
        "--qos",
        &qos,
        "--payload-bytes",
        &payload,
        "--window",
        "1000",
        "--duration",
        &duration,
    ];
    let max = scenario(&[&pubsub[..], &common[..]].concat())?;
    if let Some(m) = &max.messages {
        row.max_rate_msgs_per_s = m.delivered_msgs_per_s;
        row.max_rate_p99_us = m.latency.p99_us as f64;
    }
    row.cpu_s_per_million_msgs = max.broker.as_ref().and_then(|b| b.cpu_s_per_million_msgs);
    let rate = args.rate.to_string();
    let fixed = scenario(&[&pubsub[..], &common[..], &["--rate", &rate]].concat())?;
    if let Some(m) = &fixed.messages {
        row.fixed_rate_p99_us = m.latency.p99_us as f64;
    }
    row.fixed_rate_latency = fixed.latency.clone();
    crate::sys::pin_process(&(0..cpus).collect::<Vec<_>>()).ok();
    child.stop();
    Ok(row)
}

/// Runs one scenario given as load generator arguments.
fn scenario(argv: &[&str]) -> Result<Report, LoadgenError> {
    let cli = Cli::try_parse_from(std::iter::once("ringmq-loadgen").chain(argv.iter().copied()))
        .map_err(|e| usage(e.to_string()))?;
    match cli.command {
        crate::cli::Command::Conn(a) => crate::scenario::conn::run(&a),
        crate::cli::Command::Pubsub(a) => crate::scenario::pubsub::run(&a),
        _ => Err(usage("tune runs conn and pubsub only")),
    }
}

/// The highest max-rate msgs/s; among those within [`FEWER_SHARDS_MARGIN`] of it, the fewest
/// shards, then io_uring.
fn recommend(rows: &[TuneRow]) -> Option<String> {
    let measured: Vec<&TuneRow> = rows.iter().filter(|r| r.unavailable.is_none()).collect();
    let best = measured
        .iter()
        .map(|r| r.max_rate_msgs_per_s)
        .fold(0.0, f64::max);
    if best <= 0.0 {
        return None;
    }
    measured
        .into_iter()
        .filter(|r| r.max_rate_msgs_per_s >= best * (1.0 - FEWER_SHARDS_MARGIN))
        .min_by_key(|r| (r.shards, r.io != "uring"))
        .map(|r| format!("--shards {} --io {}", r.shards, r.io))
}

impl Tuning {
    /// The table and the recommendation.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "tune on {} CPUs", self.host_cpus);
        let _ = writeln!(
            s,
            "{:>6} {:>6} {:>12} {:>9} {:>12} {:>14} {:>12} {:>11}  loadgen",
            "shards",
            "io",
            "msgs/s",
            "CPU-s/M",
            "p99 max us",
            "p99 fixed us",
            "B/idle conn",
            "connects/s"
        );
        for r in &self.rows {
            if let Some(why) = &r.unavailable {
                let _ = writeln!(s, "{:>6} {:>6}  unavailable: {why}", r.shards, r.io);
                continue;
            }
            let opt = |v: Option<f64>, digits: usize| {
                v.map_or("-".to_string(), |v| format!("{v:.digits$}"))
            };
            let _ = writeln!(
                s,
                "{:>6} {:>6} {:>12.0} {:>9} {:>12.0} {:>14.0} {:>12} {:>11.0}  {}",
                r.shards,
                r.io,
                r.max_rate_msgs_per_s,
                opt(r.cpu_s_per_million_msgs, 3),
                r.max_rate_p99_us,
                r.fixed_rate_p99_us,
                opt(r.idle_bytes_per_connection, 0),
                r.connects_per_s,
                if r.loadgen_pinned {
                    "pinned apart"
                } else {
                    "shares the CPUs"
                },
            );
        }
        match &self.recommendation {
            Some(flags) => {
                let _ = writeln!(s, "recommended: ringmq {flags}");
            }
            None => {
                let _ = writeln!(s, "no configuration could be measured");
            }
        }
        s
    }

    /// The fixed-rate latency spectra of every measured configuration on one chart.
    pub fn plot(&self, path: &Path) -> Result<(), LoadgenError> {
        let series: Vec<(String, &Latency)> = self
            .rows
            .iter()
            .filter(|r| r.unavailable.is_none())
            .map(|r| {
                (
                    format!("{} shards, {}", r.shards, r.io),
                    &r.fixed_rate_latency,
                )
            })
            .collect();
        crate::plot::write_svg(path, "tune: latency at the fixed rate", &series)
    }
}

/// A broker child process, stopped (SIGTERM, then SIGKILL) when dropped.
struct Broker(Child);

impl Broker {
    fn start(binary: &Path, port: u16, shards: usize, io: &str) -> Result<Broker, String> {
        let child = Command::new(binary)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--shards", &shards.to_string(), "--io", io, "--pin-cores"])
            .args(["--log-level", "warn"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", binary.display()))?;
        let mut broker = Broker(child);
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + START_TIMEOUT;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = broker.0.try_wait() {
                let mut why = String::new();
                if let Some(mut err) = broker.0.stderr.take() {
                    let _ = std::io::Read::read_to_string(&mut err, &mut why);
                }
                return Err(format!("the broker exited ({status}): {}", why.trim()));
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok() {
                return Ok(broker);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(format!("not listening on {addr} after {START_TIMEOUT:?}"))
    }

    fn pid(&self) -> u32 {
        self.0.id()
    }

    fn stop(&mut self) {
        // SAFETY: kill(2) with our own child's pid and a valid signal number.
        unsafe { libc::kill(self.0.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            self.stop();
        }
    }
}

/// Where `tune` looks for the broker when not told: next to this binary.
pub fn default_broker() -> Option<PathBuf> {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join("ringmq")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(shards: usize, io: &str, rate: f64) -> TuneRow {
        TuneRow {
            shards,
            io: io.into(),
            unavailable: None,
            loadgen_pinned: true,
            max_rate_msgs_per_s: rate,
            cpu_s_per_million_msgs: Some(1.0),
            max_rate_p99_us: 1.0,
            fixed_rate_p99_us: 1.0,
            idle_bytes_per_connection: Some(1000.0),
            connects_per_s: 1.0,
            fixed_rate_latency: Latency::default(),
        }
    }

    #[test]
    fn the_fastest_wins_and_fewer_shards_win_within_five_percent() {
        let rows = [
            row(1, "uring", 100.0),
            row(2, "uring", 104.0),
            row(4, "epoll", 200.0),
        ];
        assert_eq!(recommend(&rows).as_deref(), Some("--shards 4 --io epoll"));
        let rows = [
            row(1, "epoll", 100.0),
            row(2, "uring", 104.0),
            row(1, "uring", 99.0),
        ];
        assert_eq!(recommend(&rows).as_deref(), Some("--shards 1 --io uring"));
        let mut gone = row(8, "uring", 0.0);
        gone.unavailable = Some("io_uring is blocked".into());
        assert_eq!(recommend(&[gone.clone()]), None);
        let tuning = Tuning {
            host_cpus: 8,
            rows: vec![row(1, "uring", 100.0), gone],
            recommendation: Some("--shards 1 --io uring".into()),
        };
        let text = tuning.render();
        assert!(text.contains("unavailable: io_uring is blocked"), "{text}");
        assert!(
            text.contains("recommended: ringmq --shards 1 --io uring"),
            "{text}"
        );
    }
}
