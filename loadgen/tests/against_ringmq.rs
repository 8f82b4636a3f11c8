//! Black-box runs of the load generator against a RingMQ broker started in this process on
//! 127.0.0.1:0. Every run is a few hundred milliseconds to a second, bounded, and checks
//! the generator's counts: against themselves (delivered == sent x fanout, nothing lost or
//! duplicated at QoS 1/2) and against an independent count, the broker's own
//! `$SYS/broker/publish/messages/received`.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use ringmq::codec::ProtocolVersion;
use ringmq_loadgen::cli::{Cli, Command};
use ringmq_loadgen::scenario::{conn, pubsub, retained};
use ringmq_loadgen::transport::TransportSpec;
use ringmq_loadgen::{probe, Report};

fn start_broker() -> ringmq::runtime::Broker {
    let config = ringmq::config::Config {
        listeners: vec![ringmq::config::ListenerConfig::mqtt(
            "127.0.0.1:0".parse().expect("addr"),
        )],
        sys_interval_s: 1,
        ..Default::default()
    };
    ringmq::runtime::start(config).expect("broker starts")
}

fn command(addr: SocketAddr, scenario: &[&str]) -> Command {
    let port = addr.port().to_string();
    let mut argv = vec!["ringmq-loadgen"];
    argv.extend_from_slice(scenario);
    argv.extend_from_slice(&[
        "--port",
        &port,
        "--threads",
        "2",
        "--quiet",
        "--connect-timeout",
        "5",
    ]);
    Cli::parse_from(argv).command
}

fn pubsub_report(addr: SocketAddr, args: &[&str]) -> Report {
    let mut scenario = vec!["pubsub"];
    scenario.extend_from_slice(args);
    let Command::Pubsub(args) = command(addr, &scenario) else {
        unreachable!("pubsub")
    };
    pubsub::run(&args).expect("pubsub runs")
}

fn assert_exact(report: &Report) {
    let m = report.messages.as_ref().expect("messages section");
    let t = &m.totals;
    assert!(t.sent > 0, "something was sent: {}", report.render());
    assert_eq!(
        t.counts.unique,
        t.expected,
        "delivered == expected\n{}",
        report.render()
    );
    assert_eq!(
        (t.lost, t.extra, t.counts.duplicated),
        (0, 0, 0),
        "{}",
        report.render()
    );
    assert_eq!(m.unacked, 0, "{}", report.render());
    assert_eq!(m.latency.count, t.counts.unique);
    assert_eq!(report.connections.failed + report.connections.dropped, 0);
}

#[test]
fn qos1_point_to_point_counts_match_the_brokers_sys_counter() {
    let broker = start_broker();
    let addr = broker.local_addrs()[0];
    let sys = pubsub::SYS_PUBLISH_RECEIVED;
    let plain = TransportSpec::plain();
    // Our own reading, independent of the report's: the broker has seen no publish yet.
    std::thread::sleep(Duration::from_millis(1_100));
    let before = probe::read_retained_u64(
        addr,
        &plain,
        ProtocolVersion::V3_1_1,
        sys,
        Duration::from_secs(5),
    )
    .expect("$SYS counter readable");
    let report = pubsub_report(
        addr,
        // Open loop within the broker's capacity: at max rate a broker may rightly drop QoS 1
        // messages once a subscriber's queue is full, and this test is about exact counts.
        &[
            "--publishers",
            "2",
            "--subscribers",
            "2",
            "--duration",
            "1",
            "--qos",
            "1",
            "--rate",
            "5000",
            "--sys-check-wait",
            "10",
        ],
    );
    assert_exact(&report);
    let m = report.messages.as_ref().expect("messages");
    assert_eq!(
        m.totals.sent, m.totals.expected,
        "p2p 2 -> 2: one delivery per message"
    );
    let check = report.sys_check.expect("sys check ran");
    assert!(
        check.matches,
        "broker counted {} publishes, loadgen sent {}",
        check.broker_delta, check.loadgen_sent
    );
    // `$SYS` is republished once an interval: re-read until it has caught up, or 10 s.
    let within = Duration::from_secs(10);
    let at_least = before + m.totals.sent;
    let after = probe::await_counter(addr, &plain, ProtocolVersion::V3_1_1, sys, at_least, within)
        .expect("$SYS counter readable");
    assert_eq!(
        after - before,
        m.totals.sent,
        "independent count of publishes"
    );
    broker.shutdown();
}

#[test]
fn qos2_fan_out_over_mqtt5_at_a_fixed_rate_is_exact() {
    let broker = start_broker();
    let addr = broker.local_addrs()[0];
    let report = pubsub_report(
        addr,
        &[
            "--shape",
            "fan-out",
            "--subscribers",
            "3",
            "--qos",
            "2",
            "--mqtt-version",
            "5",
            "--rate",
            "2000",
            "--duration",
            "0.5",
            "--payload-bytes",
            "100",
        ],
    );
    assert_exact(&report);
    let m = report.messages.as_ref().expect("messages");
    assert_eq!(m.totals.expected, 3 * m.totals.sent);
    // Open loop at 2000/s for 0.5 s: the schedule, not the broker, sets the count.
    assert!(
        (900..=1000).contains(&m.totals.sent),
        "sent {}",
        m.totals.sent
    );
    assert_eq!(m.backlog_unsent, 0);
    broker.shutdown();
}

#[test]
fn count_bounded_fan_in_and_mqtt_3_1() {
    let broker = start_broker();
    let addr = broker.local_addrs()[0];
    let report = pubsub_report(
        addr,
        &[
            "--shape",
            "fan-in",
            "--publishers",
            "5",
            "--subscribers",
            "2",
            "--topics",
            "3",
            "--qos",
            "1",
            "--count",
            "500",
        ],
    );
    assert_exact(&report);
    let m = report.messages.as_ref().expect("messages");
    assert_eq!((m.totals.sent, m.totals.expected), (500, 1000));
    let report = pubsub_report(
        addr,
        &[
            "--publishers",
            "3",
            "--subscribers",
            "3",
            "--qos",
            "1",
            "--count",
            "300",
            "--mqtt-version",
            "3",
            "--window",
            "5",
        ],
    );
    assert_exact(&report);
    let m = report.messages.as_ref().expect("messages");
    assert_eq!((m.totals.sent, m.totals.expected), (300, 300));
    broker.shutdown();
}

#[test]
fn retained_rounds_and_idle_connections() {
    let broker = start_broker();
    let addr = broker.local_addrs()[0];
    let Command::Retained(args) = command(
        addr,
        &[
            "retained",
            "--topics",
            "300",
            "--filter",
            "+/7",
            "--subscribers",
            "2",
            "--count",
            "5",
            "--qos",
            "1",
        ],
    ) else {
        unreachable!("retained")
    };
    let report = retained::run(&args).expect("retained runs");
    let r = report.retained.as_ref().expect("retained section");
    assert_eq!((r.matching, r.rounds), (3, 10), "{}", report.render());
    assert_eq!(r.subscribe_to_last.count, 10);
    let Command::Conn(args) = command(
        addr,
        &[
            "conn",
            "--clients",
            "200",
            "--rate",
            "2000",
            "--duration",
            "0.2",
        ],
    ) else {
        unreachable!("conn")
    };
    let mut args = args;
    // The broker runs in this process, so its pid is ours.
    args.common.broker_pid = Some(std::process::id());
    let report = conn::run(&args).expect("conn runs");
    assert_eq!(
        (report.connections.ready, report.connections.failed),
        (200, 0),
        "{}",
        report.render()
    );
    assert_eq!(report.connections.connect_latency.count, 200);
    assert!(
        report.connections.connects_per_s > 500.0,
        "paced at 2000/s: {}",
        report.render()
    );
    let broker_figures = report.broker.as_ref().expect("--broker-pid figures");
    assert!(broker_figures.cpu_us_per_connect.is_some() && broker_figures.rss_bytes > 0);
    broker.shutdown();
}

#[test]
fn unreachable_broker_is_a_setup_error_not_a_hang() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    let Command::Pubsub(args) = command(addr, &["pubsub", "--publishers", "1", "--duration", "1"])
    else {
        unreachable!("pubsub")
    };
    let error = pubsub::run(&args).expect_err("nobody listens");
    assert!(error.to_string().contains("could not connect"), "{error}");
}
