//! Prometheus `/metrics` on the admin thread: scraped with a real HTTP client, read with a
//! real exposition-format parser, and scraped by a real Prometheus server (Debian's
//! `prometheus`) whose query API must return one of our series.
//!
//! The Prometheus test skips when the binary is missing, unless `RINGMQ_REQUIRE_INTEROP=1`
//! (as `tests/run.sh` sets, after installing it), in which case it fails.

mod common;

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{start_broker_with, ConnectOpts, RawClient};
use ringmq::codec::QoS;

/// How long a test waits for the shards' next reports (published once a second).
const REPORT_WAIT: Duration = Duration::from_secs(10);

fn scrape(addr: SocketAddr) -> prometheus_parse::Scrape {
    let body = ureq::get(&format!("http://{addr}/metrics"))
        .timeout(Duration::from_secs(5))
        .call()
        .expect("GET /metrics answers 200")
        .into_string()
        .expect("a text body");
    let lines = body.lines().map(|l| Ok(l.to_owned()));
    prometheus_parse::Scrape::parse(lines).expect("valid exposition text")
}

/// The sum over every shard of `name` with `label = value` (or all points, without a label).
fn total(scrape: &prometheus_parse::Scrape, name: &str, label: Option<(&str, &str)>) -> f64 {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == name)
        .filter(|s| label.is_none_or(|(k, v)| s.labels.get(k) == Some(v)))
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => 0.0,
        })
        .sum()
}

/// Scrapes until `done` holds (reports are up to a second old), or fails with the last text.
fn scrape_until(addr: SocketAddr, done: impl Fn(&prometheus_parse::Scrape) -> bool) {
    let deadline = Instant::now() + REPORT_WAIT;
    loop {
        let scrape = scrape(addr);
        if done(&scrape) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "metrics never matched: {:#?}",
            scrape.samples
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn metrics_broker() -> common::Broker {
    start_broker_with(|config| {
        config.metrics_listen = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
        config.limits.queued_messages_max = 1;
    })
}

#[test]
fn metrics_count_connections_messages_and_drops_per_shard() {
    let broker = metrics_broker();
    let addr = broker.metrics_addr().expect("metrics_listen is set");
    let mut sub = RawClient::connected(broker.addr, ConnectOpts::v311("sub"));
    sub.subscribe(&[("m/#", QoS::AtLeastOnce)]);
    let mut publisher = RawClient::connected(broker.addr, ConnectOpts::v311("pub"));
    for _ in 0..3 {
        publisher.publish("m/1", b"x", QoS::AtLeastOnce, false);
    }
    publisher.publish("m/0", b"y", QoS::AtMostOnce, false);
    sub.recv_publish();
    scrape_until(addr, |s| {
        total(s, "ringmq_connections_accepted_total", None) >= 2.0
            && total(s, "ringmq_messages_received_total", Some(("qos", "1"))) >= 3.0
            && total(s, "ringmq_messages_received_total", Some(("qos", "0"))) >= 1.0
            && total(s, "ringmq_messages_sent_total", Some(("qos", "1"))) >= 3.0
            && total(s, "ringmq_messages_sent_total", Some(("qos", "0"))) >= 1.0
            && total(s, "ringmq_messages_sent_total", Some(("qos", "2"))) == 0.0
            && total(
                s,
                "ringmq_received_bytes_total",
                Some(("transport", "mqtt")),
            ) > 0.0
            && total(
                s,
                "ringmq_received_bytes_total",
                Some(("transport", "mqtts")),
            ) == 0.0
            && total(s, "ringmq_sessions_online", None) >= 2.0
            && total(s, "ringmq_publish_to_write_seconds_count", None) >= 1.0
    });
    // The subscriber does not ack: with a window of 20 and a queue of 1 nothing is dropped
    // yet; a client that is refused is counted by reason.
    // Protocol level 9 does not exist: CONNACK 0x01 (3.1.1's "unacceptable protocol
    // version", 5.0's 0x84).
    let mut bad = RawClient::open(broker.addr, ringmq::codec::ProtocolVersion::V3_1_1);
    bad.send_raw(b"\x10\x10\x00\x04MQTT\x09\x02\x00\x3c\x00\x04abcd");
    scrape_until(addr, |s| {
        total(
            s,
            "ringmq_connections_refused_total",
            Some(("reason", "unsupported_protocol_version")),
        ) >= 1.0
    });
    let scrape = scrape(addr);
    let shards = scrape
        .samples
        .iter()
        .filter(|s| s.metric == "ringmq_connections")
        .count();
    assert_eq!(shards, common::shards_from_env(), "one point per shard");
}

#[test]
fn other_paths_are_not_found() {
    let broker = metrics_broker();
    let addr = broker.metrics_addr().expect("metrics_listen is set");
    let error = ureq::get(&format!("http://{addr}/other"))
        .call()
        .expect_err("not found");
    assert!(matches!(error, ureq::Error::Status(404, _)), "{error}");
}

/// Kills the Prometheus server when the test ends, however it ends.
struct Reaper(Child, std::path::PathBuf);

impl Drop for Reaper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
        let _ = std::fs::remove_dir_all(&self.1);
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

#[test]
fn a_real_prometheus_scrapes_the_broker() {
    let binary = ["/usr/bin/prometheus", "/usr/local/bin/prometheus"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists());
    let Some(binary) = binary else {
        assert!(
            std::env::var("RINGMQ_REQUIRE_INTEROP").is_err(),
            "prometheus is missing: apt-get install prometheus (tests/run.sh does)"
        );
        eprintln!("skipped: prometheus is not installed");
        return;
    };
    let broker = metrics_broker();
    let target = broker.metrics_addr().expect("metrics_listen is set");
    let _client = RawClient::connected(broker.addr, ConnectOpts::v311("seen-by-prometheus"));
    let dir = std::env::temp_dir().join(format!("ringmq-prometheus-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: ringmq\n    \
             static_configs:\n      - targets: ['{target}']\n"
        ),
    )
    .expect("write config");
    let web = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let child = Command::new(binary)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address={web}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("prometheus starts");
    let _reaper = Reaper(child, dir);
    let query = format!("http://{web}/api/v1/query?query=sum(ringmq_connections_accepted_total)");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let answer = ureq::get(&query)
            .timeout(Duration::from_secs(2))
            .call()
            .ok()
            .and_then(|r| r.into_string().ok());
        if let Some(answer) = &answer {
            // {"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[<t>,"1"]}]}}
            if answer.contains("\"status\":\"success\"") && answer.contains("\"value\":[") {
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "Prometheus never returned the series; last answer: {answer:?}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}
