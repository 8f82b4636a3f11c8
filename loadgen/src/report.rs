//! The result of one run: what is printed, what `--json` writes, and the flat list of
//! figures that `compare` puts side by side.
//!
//! One [`Report`] type serves every scenario; the sections a scenario does not produce are
//! `None` and left out of the JSON. Field names end in their unit (STYLE.md), so the JSON
//! reads without a schema: `delivered_msgs_per_s`, `p99_us`, `cpu_s_per_million_msgs`.

use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

use crate::accounting::{DeliveryTotals, PublisherTally};
use crate::coordinator::fmt_rate;
use crate::error::LoadgenError;
use crate::latency::{Latency, LatencySummary};

/// Publishers listed one by one in the JSON; beyond this only the totals are written.
pub const PER_PUBLISHER_JSON_MAX: usize = 1000;
/// Our CPU time over threads x wall time at which the load generator may be the bottleneck.
pub const SATURATION_SHARE: f64 = 0.9;

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub scenario: &'static str,
    pub target: String,
    /// `mqtt`, `mqtts`, `ws` or `wss`.
    pub transport: &'static str,
    pub mqtt_version: u8,
    pub qos: u8,
    pub payload_bytes: usize,
    pub clients: u64,
    pub connections: Connections,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub messages: Option<Messages>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retained: Option<Retained>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub broker: Option<BrokerFigures>,
    pub loadgen: LoadgenFigures,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sys_check: Option<SysCheck>,
    pub warnings: Vec<String>,
    pub errors: Vec<String>,
    pub errors_total: u64,
    /// The main latency distribution, for plots and for merging across compare rounds.
    #[serde(skip)]
    pub latency: Latency,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Connections {
    pub ready: u64,
    pub failed: u64,
    /// Lost after becoming ready.
    pub dropped: u64,
    pub connects_per_s: f64,
    /// TCP connect start (its scheduled time when paced) -> CONNACK.
    pub connect_latency: LatencySummary,
}

#[derive(Debug, Clone, Serialize)]
pub struct Messages {
    pub shape: String,
    pub publishers: u64,
    pub subscribers: u64,
    pub topics: u64,
    /// 0 is max-rate mode.
    pub rate_target_msgs_per_s: u64,
    pub window: u32,
    pub run_s: f64,
    pub offered_msgs_per_s: f64,
    pub delivered_msgs_per_s: f64,
    #[serde(flatten)]
    pub totals: DeliveryTotals,
    /// QoS 1/2 messages never acknowledged.
    pub unacked: u64,
    pub rejected: u64,
    /// Open loop: scheduled messages never sent because the run ended first.
    pub backlog_unsent: u64,
    pub unstamped: u64,
    pub latency: LatencySummary,
    pub per_publisher: Vec<PublisherTally>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Retained {
    pub topics: u64,
    pub filter: String,
    /// Retained topics the filter matches: what each round waits for.
    pub matching: u64,
    pub stored_msgs_per_s: f64,
    pub rounds: u64,
    /// SUBSCRIBE -> the last matching retained message.
    pub subscribe_to_last: LatencySummary,
    pub suback: LatencySummary,
}

#[derive(Debug, Clone, Serialize)]
pub struct BrokerFigures {
    pub pid: u32,
    /// Over the measured phase: the run and drain (connect phase for `conn`).
    pub cpu_s: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_s_per_million_msgs: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_us_per_connect: Option<f64>,
    pub rss_bytes: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rss_bytes_per_connection: Option<f64>,
}

/// Our own CPU (getrusage, the whole process) over the measured phase: the run, or the
/// connect phase for `conn`.
#[derive(Debug, Clone, Serialize)]
pub struct LoadgenFigures {
    pub threads: usize,
    pub cpu_s: f64,
    pub wall_s: f64,
    /// cpu_s / (threads x wall_s): 1.0 means every worker thread was busy all the time.
    pub cpu_share: f64,
    pub saturated: bool,
}

impl LoadgenFigures {
    pub fn new(threads: usize, cpu_us: u64, wall_s: f64) -> LoadgenFigures {
        let cpu_s = cpu_us as f64 / 1e6;
        let cpu_share = if wall_s > 0.0 {
            cpu_s / (threads as f64 * wall_s)
        } else {
            0.0
        };
        LoadgenFigures {
            threads,
            cpu_s,
            wall_s,
            cpu_share,
            saturated: cpu_share >= SATURATION_SHARE,
        }
    }
}

/// The broker's own count of PUBLISH packets received, before and after the run.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct SysCheck {
    pub topic: &'static str,
    pub before: u64,
    pub after: u64,
    pub broker_delta: u64,
    pub loadgen_sent: u64,
    pub matches: bool,
}

/// One named number, for `compare`.
#[derive(Debug, Clone, PartialEq)]
pub struct Figure {
    pub name: &'static str,
    pub value: f64,
}

impl Report {
    /// The figures `compare` reports, in display order.
    pub fn figures(&self) -> Vec<Figure> {
        let mut f = Vec::new();
        let mut push = |name, value: f64| f.push(Figure { name, value });
        if let Some(m) = &self.messages {
            push("delivered msgs/s", m.delivered_msgs_per_s);
            push("offered msgs/s", m.offered_msgs_per_s);
            latency_figures(&m.latency, &mut push);
            push("lost", m.totals.lost as f64);
            push("duplicated", m.totals.counts.duplicated as f64);
            push("out of order", m.totals.counts.out_of_order as f64);
        }
        if let Some(r) = &self.retained {
            push("retained stored msgs/s", r.stored_msgs_per_s);
            push("subscribe rounds", r.rounds as f64);
            latency_figures(&r.subscribe_to_last, &mut push);
        }
        if self.messages.is_none() && self.retained.is_none() {
            push("connects/s", self.connections.connects_per_s);
            latency_figures(&self.connections.connect_latency, &mut push);
        }
        if let Some(b) = &self.broker {
            push("broker cpu s", b.cpu_s);
            if let Some(v) = b.cpu_s_per_million_msgs {
                push("broker cpu s/M msgs", v);
            }
            if let Some(v) = b.cpu_us_per_connect {
                push("broker cpu us/connect", v);
            }
            if let Some(v) = b.rss_bytes_per_connection {
                push("broker rss B/conn", v);
            }
            push("broker rss MiB", b.rss_bytes as f64 / 1_048_576.0);
        }
        push("loadgen cpu share", self.loadgen.cpu_share);
        f
    }

    pub fn write_json(&self, path: &Path) -> Result<(), LoadgenError> {
        write_json(path, self)
    }

    /// The human-readable summary printed after a run.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let _ = write!(
            s,
            "{} against {}://{}  MQTT level {}  clients {}",
            self.scenario, self.transport, self.target, self.mqtt_version, self.clients
        );
        if self.messages.is_some() || self.retained.is_some() {
            let _ = write!(s, "  QoS {}  payload {} B", self.qos, self.payload_bytes);
        }
        s.push('\n');
        let c = &self.connections;
        let _ = writeln!(
            s,
            "  connections   ready {}  failed {}  dropped {}  {} connects/s",
            c.ready,
            c.failed,
            c.dropped,
            fmt_rate(c.connects_per_s)
        );
        let _ = writeln!(s, "  connect       {}", c.connect_latency.line());
        if let Some(m) = &self.messages {
            render_messages(&mut s, m, self.qos);
        }
        if let Some(r) = &self.retained {
            render_retained(&mut s, r);
        }
        if let Some(b) = &self.broker {
            render_broker(&mut s, b);
        }
        self.render_tail(&mut s);
        s
    }

    /// The load generator's own CPU, the `$SYS` check, warnings and errors.
    fn render_tail(&self, s: &mut String) {
        let l = &self.loadgen;
        let _ = writeln!(
            s,
            "  loadgen       {:.2} cpu-s over {:.2} s on {} threads: {:.0}% of its threads{}",
            l.cpu_s,
            l.wall_s,
            l.threads,
            l.cpu_share * 100.0,
            if l.saturated {
                "  ** SATURATED: figures may be the load generator's limit **"
            } else {
                ""
            }
        );
        if let Some(sys) = &self.sys_check {
            let _ = writeln!(
                s,
                "  $SYS check    broker counted {} publishes ({} -> {}), loadgen sent {}: {}",
                sys.broker_delta,
                sys.before,
                sys.after,
                sys.loadgen_sent,
                if sys.matches { "match" } else { "MISMATCH" }
            );
        }
        for w in &self.warnings {
            let _ = writeln!(s, "  warning: {w}");
        }
        for e in &self.errors {
            let _ = writeln!(s, "  error: {e}");
        }
        if self.errors_total > self.errors.len() as u64 {
            let _ = writeln!(s, "  ... {} errors in all", self.errors_total);
        }
    }
}

fn render_retained(s: &mut String, r: &Retained) {
    let _ = writeln!(
        s,
        "  retained      {} topics stored at {}/s; filter {} matches {}; {} rounds",
        r.topics,
        fmt_rate(r.stored_msgs_per_s),
        r.filter,
        r.matching,
        r.rounds
    );
    let _ = writeln!(s, "  sub->last     {}", r.subscribe_to_last.line());
    let _ = writeln!(s, "  suback        {}", r.suback.line());
}

fn latency_figures(l: &LatencySummary, push: &mut impl FnMut(&'static str, f64)) {
    push("p50 us", l.p50_us as f64);
    push("p90 us", l.p90_us as f64);
    push("p99 us", l.p99_us as f64);
    push("p99.9 us", l.p99_9_us as f64);
    push("p99.99 us", l.p99_99_us as f64);
    push("max us", l.max_us as f64);
}

fn render_messages(s: &mut String, m: &Messages, qos: u8) {
    let _ = writeln!(
        s,
        "  shape         {}: {} publishers -> {} topics -> {} subscribers, {}",
        m.shape,
        m.publishers,
        m.topics,
        m.subscribers,
        if m.rate_target_msgs_per_s == 0 {
            format!("max rate, window {}", m.window)
        } else {
            format!("open loop at {} msgs/s", m.rate_target_msgs_per_s)
        }
    );
    let _ = writeln!(
        s,
        "  throughput    offered {} msgs/s  delivered {} msgs/s  over {:.2} s",
        fmt_rate(m.offered_msgs_per_s),
        fmt_rate(m.delivered_msgs_per_s),
        m.run_s
    );
    let t = &m.totals;
    let _ = writeln!(
        s,
        "  QoS {qos} counts   sent {}  expected {}  delivered {}  lost {}  duplicated {}  out of order {}  extra {}",
        t.sent, t.expected, t.counts.unique, t.lost, t.counts.duplicated, t.counts.out_of_order, t.extra
    );
    let _ = writeln!(s, "  latency       {}", m.latency.line());
}

fn render_broker(s: &mut String, b: &BrokerFigures) {
    let mut line = format!("  broker pid {}  {:.3} cpu-s", b.pid, b.cpu_s);
    if let Some(v) = b.cpu_s_per_million_msgs {
        let _ = write!(line, "  {v:.3} cpu-s per million msgs");
    }
    if let Some(v) = b.cpu_us_per_connect {
        let _ = write!(line, "  {v:.1} cpu-us per connect");
    }
    let _ = write!(line, "  rss {:.1} MiB", b.rss_bytes as f64 / 1_048_576.0);
    if let Some(v) = b.rss_bytes_per_connection {
        let _ = write!(line, "  {v:.0} B per connection");
    }
    let _ = writeln!(s, "{line}");
}

/// Writes any serializable value as pretty JSON.
pub fn write_json(path: &Path, value: &impl Serialize) -> Result<(), LoadgenError> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| LoadgenError::io("serializing the result", std::io::Error::other(e)))?;
    std::fs::write(path, text + "\n").map_err(|e| LoadgenError::io(path.display().to_string(), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_report() -> Report {
        let mut latency = Latency::new();
        latency.record_us(300);
        latency.record_us(2_400);
        Report {
            scenario: "pubsub",
            target: "127.0.0.1:1883".into(),
            transport: "mqtt",
            mqtt_version: 4,
            qos: 1,
            payload_bytes: 16,
            clients: 4,
            connections: Connections {
                ready: 4,
                ..Connections::default()
            },
            messages: Some(Messages {
                shape: "p2p".into(),
                publishers: 2,
                subscribers: 2,
                topics: 2,
                rate_target_msgs_per_s: 0,
                window: 100,
                run_s: 1.0,
                offered_msgs_per_s: 1000.0,
                delivered_msgs_per_s: 990.0,
                totals: DeliveryTotals {
                    sent: 1000,
                    expected: 1000,
                    lost: 10,
                    ..Default::default()
                },
                unacked: 0,
                rejected: 0,
                backlog_unsent: 0,
                unstamped: 0,
                latency: latency.summary(),
                per_publisher: Vec::new(),
            }),
            retained: None,
            broker: None,
            loadgen: LoadgenFigures::new(2, 1_900_000, 1.0),
            sys_check: None,
            warnings: Vec::new(),
            errors: Vec::new(),
            errors_total: 0,
            latency,
        }
    }

    #[test]
    fn json_has_units_and_skips_absent_sections() {
        let json = serde_json::to_value(sample_report()).expect("serializable");
        assert_eq!(
            json["messages"]["delivered_msgs_per_s"],
            serde_json::json!(990.0)
        );
        assert_eq!(json["messages"]["lost"], serde_json::json!(10));
        assert!(json["messages"]["latency"]["p99_9_us"].is_u64());
        assert!(json.get("retained").is_none() && json.get("broker").is_none());
        assert_eq!(json["loadgen"]["saturated"], serde_json::json!(true));
    }

    #[test]
    fn saturation_and_figures() {
        let report = sample_report();
        assert!(report.render().contains("SATURATED"));
        let figures = report.figures();
        let get = |n: &str| figures.iter().find(|f| f.name == n).map(|f| f.value);
        assert_eq!(get("delivered msgs/s"), Some(990.0));
        assert_eq!(get("lost"), Some(10.0));
        assert!(get("p99.99 us").is_some() && get("connects/s").is_none());
        assert!(!LoadgenFigures::new(2, 1_000_000, 1.0).saturated);
    }

    #[test]
    fn writes_json_files() {
        let path = std::env::temp_dir().join(format!("lg-report-{}.json", std::process::id()));
        sample_report().write_json(&path).expect("written");
        let text = std::fs::read_to_string(&path).expect("readable");
        let _ = std::fs::remove_file(&path);
        let back: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
        assert_eq!(back["scenario"], "pubsub");
    }
}
