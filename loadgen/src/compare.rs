//! `compare`: the same scenario against two brokers, alternating A, B, A, B... for K rounds,
//! then the median of every figure side by side with the ratio A/B.
//!
//! Alternating (rather than all A then all B) spreads slow drifts of a shared machine, such as
//! thermal throttling or a neighbour's build, over both brokers; the median discards the odd
//! disturbed round. Each round gets a fresh run tag, so no round sees another's topics.

use std::fmt::Write as _;

use serde::Serialize;

use crate::cli::{CommonArgs, CompareArgs, Scenario};
use crate::error::LoadgenError;
use crate::latency::Latency;
use crate::report::{write_json, Report};
use crate::scenario::{self, usage};

/// One figure's medians.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    pub figure: &'static str,
    pub a: f64,
    pub b: f64,
    /// A / B; `None` when B is zero.
    pub ratio: Option<f64>,
}

/// One scenario run within the comparison.
#[derive(Debug, Clone, Serialize)]
pub struct Run {
    pub round: u32,
    pub side: &'static str,
    pub report: Report,
}

#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub a: String,
    pub b: String,
    pub rounds: u32,
    pub medians: Vec<Row>,
    pub runs: Vec<Run>,
}

/// Splits `HOST:PORT` (or `[V6]:PORT`).
pub fn split_host_port(text: &str) -> Result<(String, u16), LoadgenError> {
    let bad = || usage(format!("{text:?} is not HOST:PORT"));
    let (host, port) = text.rsplit_once(':').ok_or_else(bad)?;
    let port = port.parse().map_err(|_| bad())?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(bad());
    }
    Ok((host.to_string(), port))
}

/// One side of a comparison: `HOST:PORT`, or `SCHEME://HOST:PORT[/PATH]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
    /// `(tls, ws, ws path)` when a scheme was given; `None` keeps the scenario's flags.
    pub transport: Option<(bool, bool, Option<String>)>,
}

impl Endpoint {
    pub fn parse(text: &str) -> Result<Endpoint, LoadgenError> {
        let Some((scheme, rest)) = text.split_once("://") else {
            let (host, port) = split_host_port(text)?;
            return Ok(Endpoint {
                host,
                port,
                transport: None,
            });
        };
        let (tls, ws) = match scheme {
            "mqtt" | "tcp" => (false, false),
            "mqtts" | "ssl" => (true, false),
            "ws" => (false, true),
            "wss" => (true, true),
            _ => {
                return Err(usage(format!(
                    "{text:?}: the scheme is one of mqtt, mqtts, ws, wss"
                )))
            }
        };
        let (authority, path) = match rest.find('/') {
            Some(at) => (&rest[..at], Some(rest[at..].to_string())),
            None => (rest, None),
        };
        if path.is_some() && !ws {
            return Err(usage(format!(
                "{text:?}: only ws:// and wss:// take a path"
            )));
        }
        let (host, port) = split_host_port(authority)?;
        Ok(Endpoint {
            host,
            port,
            transport: Some((tls, ws, path)),
        })
    }

    /// Points the scenario at this side: host, port, and the transport its scheme names (the
    /// TLS trust flags stay for a TLS side and are dropped for a side without TLS).
    fn apply(&self, common: &mut CommonArgs) {
        (common.host, common.port) = (self.host.clone(), self.port);
        let Some((tls, ws, path)) = &self.transport else {
            return;
        };
        let t = &mut common.transport;
        (t.tls, t.ws) = (*tls, *ws);
        if let Some(path) = path {
            t.ws_path = path.clone();
        }
        if !tls {
            (t.ca_file, t.insecure, t.server_name) = (None, false, None);
        }
    }
}

/// Runs the comparison; prints each round's headline to stderr as it goes.
pub fn run(args: &CompareArgs) -> Result<Comparison, LoadgenError> {
    let mut scenario = args.scenario.clone();
    let common = scenario.common_mut();
    if common.json.is_some() || common.plot.is_some() || common.broker_pid.is_some() {
        return Err(usage(
            "inside compare, give --json, --plot and --a-pid/--b-pid to compare itself",
        ));
    }
    let sides = [("A", &args.a, args.a_pid), ("B", &args.b, args.b_pid)];
    let mut runs = Vec::with_capacity(2 * args.rounds as usize);
    for round in 1..=args.rounds {
        for (side, addr, pid) in sides {
            let endpoint = Endpoint::parse(addr)?;
            let mut s = scenario.clone();
            let common = s.common_mut();
            endpoint.apply(common);
            common.broker_pid = pid;
            let report = run_scenario(&s)?;
            eprintln!(
                "round {round}/{} {side} ({addr}): {}",
                args.rounds,
                headline(&report)
            );
            runs.push(Run {
                round,
                side,
                report,
            });
        }
    }
    Ok(Comparison {
        a: args.a.clone(),
        b: args.b.clone(),
        rounds: args.rounds,
        medians: medians(&runs),
        runs,
    })
}

fn run_scenario(scenario: &Scenario) -> Result<Report, LoadgenError> {
    match scenario {
        Scenario::Conn(a) => scenario::conn::run(a),
        Scenario::Pubsub(a) => scenario::pubsub::run(a),
        Scenario::Retained(a) => scenario::retained::run(a),
    }
}

/// The figure most people look at first.
fn headline(report: &Report) -> String {
    report
        .figures()
        .first()
        .map_or_else(String::new, |f| format!("{} {:.1}", f.name, f.value))
}

/// Medians per figure, in the order the first A report lists them.
fn medians(runs: &[Run]) -> Vec<Row> {
    let values = |side: &str, name: &str| -> Vec<f64> {
        runs.iter()
            .filter(|r| r.side == side)
            .filter_map(|r| {
                r.report
                    .figures()
                    .into_iter()
                    .find(|f| f.name == name)
                    .map(|f| f.value)
            })
            .collect()
    };
    let Some(first) = runs.iter().find(|r| r.side == "A") else {
        return Vec::new();
    };
    first
        .report
        .figures()
        .into_iter()
        .map(|f| {
            let a = median(values("A", f.name));
            let b = median(values("B", f.name));
            Row {
                figure: f.name,
                a,
                b,
                ratio: (b != 0.0).then(|| a / b),
            }
        })
        .collect()
}

/// The middle value; the mean of the two middle ones for an even count; 0 for none.
pub fn median(mut values: Vec<f64>) -> f64 {
    values.retain(|v| v.is_finite());
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    }
}

impl Comparison {
    /// The side-by-side table.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "medians of {} rounds: A = {}, B = {}",
            self.rounds, self.a, self.b
        );
        let _ = writeln!(s, "{:<24} {:>14} {:>14} {:>9}", "figure", "A", "B", "A/B");
        for row in &self.medians {
            let ratio = row
                .ratio
                .map_or_else(|| "-".to_string(), |r| format!("{r:.2}"));
            let _ = writeln!(
                s,
                "{:<24} {:>14} {:>14} {:>9}",
                row.figure,
                fmt(row.a),
                fmt(row.b),
                ratio
            );
        }
        for run in &self.runs {
            for warning in &run.report.warnings {
                let _ = writeln!(s, "warning (round {} {}): {warning}", run.round, run.side);
            }
        }
        s
    }

    pub fn write_json(&self, path: &std::path::Path) -> Result<(), LoadgenError> {
        write_json(path, self)
    }

    /// Each side's latency, merged over its rounds.
    pub fn merged_latency(&self, side: &str) -> Latency {
        let mut merged = Latency::new();
        for run in self.runs.iter().filter(|r| r.side == side) {
            merged.merge(&run.report.latency);
        }
        merged
    }
}

fn fmt(value: f64) -> String {
    if value.abs() >= 100.0 || value == 0.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.3}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn medians_of_odd_and_even_counts() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(median(vec![f64::NAN, 5.0]), 5.0);
        assert_eq!(median(Vec::new()), 0.0);
    }

    #[test]
    fn host_port_forms() {
        assert_eq!(
            split_host_port("127.0.0.1:1883").ok(),
            Some(("127.0.0.1".into(), 1883))
        );
        assert_eq!(
            split_host_port("[::1]:1884").ok(),
            Some(("::1".into(), 1884))
        );
        assert!(split_host_port("localhost").is_err());
        assert!(split_host_port(":1883").is_err());
    }

    #[test]
    fn a_scheme_sets_the_sides_transport() {
        let plain = Endpoint::parse("127.0.0.1:1883").expect("plain");
        assert_eq!((plain.port, plain.transport), (1883, None));
        let wss = Endpoint::parse("wss://localhost:8443/ws").expect("wss");
        assert_eq!(wss.host, "localhost");
        assert_eq!(wss.transport, Some((true, true, Some("/ws".into()))));
        let mqtts = Endpoint::parse("mqtts://[::1]:8883").expect("mqtts");
        assert_eq!(
            (mqtts.host.as_str(), mqtts.transport),
            ("::1", Some((true, false, None)))
        );
        assert!(Endpoint::parse("http://127.0.0.1:80").is_err());
        assert!(Endpoint::parse("mqtts://127.0.0.1:8883/mqtt").is_err());

        let cli = crate::cli::Cli::try_parse_from([
            "ringmq-loadgen",
            "conn",
            "--tls",
            "--insecure",
            "--server-name",
            "broker",
        ])
        .expect("parses");
        let crate::cli::Command::Conn(mut args) = cli.command else {
            unreachable!("conn")
        };
        Endpoint::parse("ws://127.0.0.1:8080/x")
            .expect("ws")
            .apply(&mut args.common);
        let t = &args.common.transport;
        assert!(t.ws && !t.tls && !t.insecure && t.server_name.is_none());
        assert_eq!((t.ws_path.as_str(), args.common.port), ("/x", 8080));
    }

    #[test]
    fn table_lists_ratios() {
        let comparison = Comparison {
            a: "a:1".into(),
            b: "b:2".into(),
            rounds: 3,
            medians: vec![
                Row {
                    figure: "delivered msgs/s",
                    a: 300_000.0,
                    b: 100_000.0,
                    ratio: Some(3.0),
                },
                Row {
                    figure: "lost",
                    a: 0.0,
                    b: 0.0,
                    ratio: None,
                },
            ],
            runs: Vec::new(),
        };
        let table = comparison.render();
        assert!(
            table.contains("delivered msgs/s") && table.contains("3.00"),
            "{table}"
        );
        let json = serde_json::to_value(&comparison).expect("serializable");
        assert_eq!(json["medians"][0]["ratio"], serde_json::json!(3.0));
    }
}
