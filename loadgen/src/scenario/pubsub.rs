//! `pubsub`: P publishers and S subscribers over T topics, in four shapes.
//!
//! | shape | publisher i publishes to | subscriber j subscribes to | each message reaches |
//! |---|---|---|---|
//! | p2p | `t/{i % T}` | `t/{j % T}` | the subscribers of its topic |
//! | fan-in | `t/{i % T}` | `t/+` | every subscriber |
//! | fan-out | `t/0` | `t/0` | every subscriber |
//! | shared | `t/{i % T}` | `$share/g{j % G}/t/+` | one member of each group |
//!
//! Topics live under `lg/{run tag}/`, so concurrent or earlier runs never cross. The fan-out
//! per publisher is computed from the shape (and checked against the broker's own topic
//! matcher in the tests), which is what makes `lost = sent x fanout - delivered` exact.

use std::time::Duration;

use crate::cli::{PubsubArgs, Shape, CLIENTS_MAX};
use crate::coordinator::{Coordinator, RunOutput};
use crate::error::LoadgenError;
use crate::plan::{client_id, run_tag, ClientSpec, Plan, PublisherSpec, RoleSpec, Settings};
use crate::probe;
use crate::report::{Messages, Report, SysCheck, PER_PUBLISHER_JSON_MAX};
use crate::stamp::PublisherId;

use super::{
    base_report, broker_over_run, check_message_args, loadgen_over_run, protocol, qos, run_spec,
    span_s, usage, ReportBase, KEEP_ALIVE_S,
};

/// The broker counter the `--sys-check-wait` check reads (mosquitto's name; RingMQ keeps it).
pub const SYS_PUBLISH_RECEIVED: &str = "$SYS/broker/publish/messages/received";
/// How long the `$SYS` probe may take to answer.
const SYS_PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// Who is where, after the shape's defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Topology {
    pub shape: Shape,
    pub publishers: u64,
    pub subscribers: u64,
    pub topics: u64,
    pub groups: u64,
}

impl Topology {
    pub fn of(args: &PubsubArgs) -> Result<Topology, LoadgenError> {
        let (p, s, t) = match args.shape {
            Shape::P2p => {
                let p = args.publishers.unwrap_or(10);
                (p, args.subscribers.unwrap_or(p), args.topics.unwrap_or(p))
            }
            Shape::FanIn => (
                args.publishers.unwrap_or(100),
                args.subscribers.unwrap_or(1),
                args.topics.unwrap_or(1),
            ),
            Shape::FanOut => {
                if args.topics.is_some_and(|t| t != 1) {
                    return Err(usage("--shape fan-out uses exactly one topic"));
                }
                (
                    args.publishers.unwrap_or(1),
                    args.subscribers.unwrap_or(100),
                    1,
                )
            }
            Shape::Shared => (
                args.publishers.unwrap_or(10),
                args.subscribers.unwrap_or(10),
                args.topics.unwrap_or(1),
            ),
        };
        if p == 0 || s == 0 || t == 0 || args.groups == 0 {
            return Err(usage(
                "publishers, subscribers, topics and groups must each be at least 1",
            ));
        }
        if p + s > CLIENTS_MAX {
            return Err(usage(format!(
                "{} clients exceed {CLIENTS_MAX} per process; run several processes",
                p + s
            )));
        }
        if args.shape == Shape::Shared && args.groups > s {
            return Err(usage("--groups may not exceed --subscribers"));
        }
        Ok(Topology {
            shape: args.shape,
            publishers: p,
            subscribers: s,
            topics: t,
            groups: args.groups,
        })
    }

    pub fn publisher_topic(&self, prefix: &str, i: u64) -> String {
        format!("{prefix}/{}", i % self.topics)
    }

    pub fn subscriber_filter(&self, prefix: &str, j: u64) -> String {
        match self.shape {
            Shape::P2p | Shape::FanOut => format!("{prefix}/{}", j % self.topics),
            Shape::FanIn => format!("{prefix}/+"),
            Shape::Shared => format!("$share/g{}/{prefix}/+", j % self.groups),
        }
    }

    /// Deliveries each message of publisher `i` should make.
    pub fn fanout(&self, i: u64) -> u32 {
        let n = match self.shape {
            Shape::P2p => {
                let topic = i % self.topics;
                self.subscribers / self.topics + u64::from(topic < self.subscribers % self.topics)
            }
            Shape::FanIn | Shape::FanOut => self.subscribers,
            Shape::Shared => self.groups.min(self.subscribers),
        };
        u32::try_from(n).unwrap_or(u32::MAX)
    }
}

/// The plan: subscribers first (so their SUBACKs are in before anyone publishes, which the
/// phases guarantee anyway), then publishers.
pub fn plan(args: &PubsubArgs, topology: &Topology, tag: &str) -> Plan {
    let prefix = format!("lg/{tag}/t");
    let mut clients = Vec::with_capacity((topology.publishers + topology.subscribers) as usize);
    for j in 0..topology.subscribers {
        let filter = topology.subscriber_filter(&prefix, j);
        clients.push(ClientSpec {
            client_id: client_id(tag, 's', j),
            role: RoleSpec::Subscriber { filter },
        });
    }
    let p = topology.publishers;
    for i in 0..p {
        let count_max = args
            .count
            .map_or(u64::MAX, |n| n / p + u64::from(i < n % p));
        clients.push(ClientSpec {
            client_id: client_id(tag, 'p', i),
            role: RoleSpec::Publisher(PublisherSpec {
                id: PublisherId(i as u32),
                topic: topology.publisher_topic(&prefix, i),
                count_max,
                fanout: topology.fanout(i),
            }),
        });
    }
    let settings = Settings {
        version: protocol(args.common.mqtt_version),
        qos: qos(args.message.qos),
        payload_bytes: args.message.payload_bytes,
        window: args.message.window,
        rate_per_s: args.rate,
        publishers: p as u32,
        keep_alive_s: KEEP_ALIVE_S,
        login: args.common.login(),
        session_expiry_s: args.session_expiry,
    };
    Plan { settings, clients }
}

/// Runs the scenario and reports; printing and files are the caller's.
pub fn run(args: &PubsubArgs) -> Result<Report, LoadgenError> {
    check_message_args(&args.message)?;
    if args.session_expiry > 0 && args.common.mqtt_version != 5 {
        return Err(usage("--session-expiry needs --mqtt-version 5"));
    }
    if args.count == Some(0) {
        return Err(usage("--count must be at least 1"));
    }
    let topology = Topology::of(args)?;
    let spec = run_spec(&args.common, 0)?;
    let target = spec.target;
    let transport = spec.transport.clone();
    let plan = plan(args, &topology, &run_tag());
    let version = plan.settings.version;
    let mut coordinator = Coordinator::start(spec, plan)?;
    coordinator.wait_setup(true)?;
    let sys_wait = (args.sys_check_wait > 0.0)
        .then(|| Duration::from_secs_f64(args.sys_check_wait.min(600.0)));
    let sys_before = match sys_wait {
        Some(_) => Some(probe::read_retained_u64(
            target,
            &transport,
            version,
            SYS_PUBLISH_RECEIVED,
            SYS_PROBE_TIMEOUT,
        )?),
        None => None,
    };
    coordinator.run(None);
    coordinator.drain();
    let out = coordinator.finish();
    let mut report = report(args, &topology, target, &out);
    if let (Some(wait), Some(before)) = (sys_wait, sys_before) {
        let sent = report.messages.as_ref().map_or(0, |m| m.totals.sent);
        let at_least = before + sent;
        let after = probe::await_counter(
            target,
            &transport,
            version,
            SYS_PUBLISH_RECEIVED,
            at_least,
            wait,
        )?;
        let delta = after.saturating_sub(before);
        report.sys_check = Some(SysCheck {
            topic: SYS_PUBLISH_RECEIVED,
            before,
            after,
            broker_delta: delta,
            loadgen_sent: sent,
            matches: delta == sent,
        });
        if delta != sent {
            report.warnings.push(format!(
                "the broker's {SYS_PUBLISH_RECEIVED} moved by {delta}, but we sent {sent}"
            ));
        }
    }
    Ok(report)
}

fn report(
    args: &PubsubArgs,
    topology: &Topology,
    target: std::net::SocketAddr,
    out: &RunOutput,
) -> Report {
    let c = &out.measure.counters;
    let t = &out.timeline;
    let base = ReportBase {
        scenario: "pubsub",
        common: &args.common,
        target,
        qos: args.message.qos,
        payload_bytes: args.message.payload_bytes,
    };
    let mut report = base_report(base, out, out.measure.latency.clone());
    let totals = crate::accounting::DeliveryTotals::of(&out.tallies);
    let send_end = c.last_send_at.map_or(t.run_end, |last| last.max(t.run_end));
    let delivery_end = c.last_delivery_at.unwrap_or(t.run_end);
    let messages = Messages {
        shape: topology.shape.name().to_string(),
        publishers: topology.publishers,
        subscribers: topology.subscribers,
        topics: topology.topics,
        rate_target_msgs_per_s: args.rate,
        window: args.message.window,
        run_s: span_s(t.run_start, t.run_end),
        offered_msgs_per_s: totals.sent as f64 / span_s(t.run_start, send_end),
        delivered_msgs_per_s: totals.counts.unique as f64 / span_s(t.run_start, delivery_end),
        totals,
        unacked: if args.message.qos > 0 {
            c.sent.saturating_sub(c.acked)
        } else {
            0
        },
        rejected: c.rejected,
        backlog_unsent: c.backlog_unsent,
        unstamped: c.unstamped,
        latency: out.measure.latency.summary(),
        per_publisher: out
            .tallies
            .iter()
            .take(PER_PUBLISHER_JSON_MAX)
            .copied()
            .collect(),
    };
    report.broker = broker_over_run(out, totals.counts.unique);
    loadgen_over_run(&mut report, out);
    warn_about_messages(&mut report.warnings, &messages, args.message.qos);
    report.messages = Some(messages);
    report
}

fn warn_about_messages(warnings: &mut Vec<String>, m: &Messages, qos: u8) {
    let t = &m.totals;
    if t.lost > 0 {
        warnings.push(format!(
            "{} of {} expected deliveries lost at QoS {qos}",
            t.lost, t.expected
        ));
    }
    if t.extra > 0 {
        warnings.push(format!(
            "{} deliveries beyond those expected (misrouted or foreign)",
            t.extra
        ));
    }
    if t.counts.too_old > 0 {
        warnings.push(format!(
            "{} arrivals over {} behind their stream: duplicates among them cannot be told",
            t.counts.too_old,
            crate::accounting::REORDER_WINDOW
        ));
    }
    if m.backlog_unsent > 0 {
        warnings.push(format!(
            "the open loop fell behind: {} scheduled messages were never sent, so the offered rate was not reached",
            m.backlog_unsent
        ));
    }
    if m.unacked > 0 {
        warnings.push(format!(
            "{} QoS {qos} messages were never acknowledged",
            m.unacked
        ));
    }
    if m.unstamped > 0 {
        warnings.push(format!(
            "{} messages without our stamp arrived",
            m.unstamped
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use ringmq::codec::ByteStr;
    use ringmq::topic::{SubscriptionFilter, TopicName};

    fn args(extra: &[&str]) -> PubsubArgs {
        let mut argv = vec!["ringmq-loadgen", "pubsub"];
        argv.extend_from_slice(extra);
        match crate::cli::Cli::parse_from(argv).command {
            crate::cli::Command::Pubsub(a) => a,
            _ => unreachable!("pubsub parses as pubsub"),
        }
    }

    /// The fan-out the broker's own matcher gives: matching subscriptions, one per share group.
    fn matched_fanout(plan: &Plan, topic: &str) -> u32 {
        let name = TopicName::new(ByteStr::from(topic)).expect("valid topic");
        let mut groups = std::collections::HashSet::new();
        let mut plain = 0;
        for client in &plan.clients {
            let RoleSpec::Subscriber { filter } = &client.role else {
                continue;
            };
            let sub =
                SubscriptionFilter::parse(ByteStr::from(filter.as_str())).expect("valid filter");
            if sub.filter().matches(&name) {
                match sub.share_group() {
                    Some(group) => {
                        groups.insert(group.clone());
                    }
                    None => plain += 1,
                }
            }
        }
        plain + groups.len() as u32
    }

    #[test]
    fn fanout_formula_agrees_with_the_broker_matcher() {
        let cases: [&[&str]; 6] = [
            &[
                "--shape",
                "p2p",
                "--publishers",
                "5",
                "--subscribers",
                "7",
                "--topics",
                "3",
            ],
            &["--shape", "p2p", "--publishers", "4"],
            &[
                "--shape",
                "fan-in",
                "--publishers",
                "9",
                "--subscribers",
                "2",
                "--topics",
                "4",
            ],
            &[
                "--shape",
                "fan-out",
                "--publishers",
                "2",
                "--subscribers",
                "6",
            ],
            &[
                "--shape",
                "shared",
                "--publishers",
                "3",
                "--subscribers",
                "5",
                "--groups",
                "2",
                "--topics",
                "2",
            ],
            &["--shape", "shared", "--subscribers", "4"],
        ];
        for case in cases {
            let a = args(case);
            let topology = Topology::of(&a).expect("valid");
            let plan = plan(&a, &topology, "abc123");
            for p in plan.publishers() {
                assert_eq!(
                    p.fanout,
                    matched_fanout(&plan, &p.topic),
                    "{case:?} publisher {:?}",
                    p.id
                );
            }
        }
    }

    #[test]
    fn shape_defaults_and_count_split() {
        let t = Topology::of(&args(&["--shape", "fan-out"])).expect("valid");
        assert_eq!((t.publishers, t.subscribers, t.topics), (1, 100, 1));
        let t = Topology::of(&args(&["--shape", "fan-in"])).expect("valid");
        assert_eq!((t.publishers, t.subscribers), (100, 1));
        let a = args(&["--publishers", "3", "--count", "10"]);
        let plan = plan(&a, &Topology::of(&a).expect("valid"), "abc123");
        let counts: Vec<u64> = plan.publishers().map(|p| p.count_max).collect();
        assert_eq!(counts, [4, 3, 3]);
    }

    #[test]
    fn impossible_topologies_are_usage_errors() {
        assert!(Topology::of(&args(&["--shape", "fan-out", "--topics", "2"])).is_err());
        assert!(Topology::of(&args(&[
            "--shape",
            "shared",
            "--subscribers",
            "2",
            "--groups",
            "3"
        ]))
        .is_err());
        assert!(Topology::of(&args(&["--publishers", "0"])).is_err());
        assert!(Topology::of(&args(&["--publishers", "10000", "--subscribers", "10000"])).is_err());
    }
}
