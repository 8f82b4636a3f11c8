//! The `$SYS/broker/...` tree over real sockets: mosquitto's topic names, retained, updated
//! every `sys_interval_s` (1 s in tests), and closed to publishers.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{start_broker, text, ConnectOpts, RawClient};
use ringmq::codec::QoS;

/// mosquitto's `$SYS/broker` tree (sys_tree.c), under exactly its names: what dashboards
/// built for mosquitto read. All but the first two are numbers.
const MOSQUITTO_NAMES: [&str; 32] = [
    "$SYS/broker/version",
    "$SYS/broker/uptime",
    "$SYS/broker/clients/total",
    "$SYS/broker/clients/maximum",
    "$SYS/broker/clients/connected",
    "$SYS/broker/clients/active",
    "$SYS/broker/clients/disconnected",
    "$SYS/broker/clients/inactive",
    "$SYS/broker/clients/expired",
    "$SYS/broker/heap/current",
    "$SYS/broker/heap/maximum",
    "$SYS/broker/messages/received",
    "$SYS/broker/messages/sent",
    "$SYS/broker/messages/stored",
    "$SYS/broker/store/messages/count",
    "$SYS/broker/store/messages/bytes",
    "$SYS/broker/publish/messages/received",
    "$SYS/broker/publish/messages/sent",
    "$SYS/broker/publish/messages/dropped",
    "$SYS/broker/bytes/received",
    "$SYS/broker/bytes/sent",
    "$SYS/broker/subscriptions/count",
    "$SYS/broker/shared_subscriptions/count",
    "$SYS/broker/retained messages/count",
    "$SYS/broker/load/messages/received/1min",
    "$SYS/broker/load/messages/sent/5min",
    "$SYS/broker/load/publish/received/15min",
    "$SYS/broker/load/publish/dropped/1min",
    "$SYS/broker/load/bytes/received/5min",
    "$SYS/broker/load/bytes/sent/15min",
    "$SYS/broker/load/sockets/1min",
    "$SYS/broker/load/connections/15min",
];

/// Returns once the broker has published `$SYS` at least once, so that it is retained.
fn wait_for_first_sys_update(addr: SocketAddr) {
    let mut probe = RawClient::connected(addr, ConnectOpts::v311("sys-probe"));
    probe.subscribe(&[("$SYS/broker/version", QoS::AtMostOnce)]);
    probe.recv_publish();
}

/// Reads live updates of `topic` until one says `value`; fails after `updates_max` updates
/// that say something else. Counting updates rather than seconds keeps the test independent
/// of how punctual the broker's timer is.
fn wait_for_value(client: &mut RawClient, topic: &str, value: &str, updates_max: usize) {
    let mut seen = Vec::new();
    while seen.len() < updates_max {
        let publish = client.recv_publish();
        if publish.topic.as_str() != topic || publish.retain {
            continue;
        }
        if text(&publish) == value {
            return;
        }
        seen.push(text(&publish).to_owned());
    }
    panic!("{topic} did not become {value:?} within {updates_max} updates; saw {seen:?}");
}

#[test]
fn sys_broker_topics_use_mosquitto_names_and_are_retained() {
    let broker = start_broker(|_| {});
    wait_for_first_sys_update(broker.addr);
    let mut client = RawClient::connected(broker.addr, ConnectOpts::v311("sys-reader"));
    client.subscribe(&[("$SYS/broker/#", QoS::AtMostOnce)]);
    // Everything that arrives first is the retained snapshot, sent on subscribe.
    let mut first_seen = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(3);
    while MOSQUITTO_NAMES
        .iter()
        .any(|name| !first_seen.contains_key(*name))
    {
        assert!(
            Instant::now() < deadline,
            "missing $SYS topics; saw {:?}",
            first_seen.keys()
        );
        let got = client.recv_publish();
        first_seen
            .entry(got.topic.as_str().to_owned())
            .or_insert(got);
    }
    for name in MOSQUITTO_NAMES {
        let publish = &first_seen[name];
        assert!(publish.retain, "{name} was not retained: {publish:?}");
        assert!(!publish.payload.is_empty(), "{name} is empty");
    }
    assert!(text(&first_seen["$SYS/broker/uptime"]).ends_with(" seconds"));
    for counter in &MOSQUITTO_NAMES[2..] {
        let value = text(&first_seen[*counter]);
        assert!(
            value.parse::<f64>().is_ok(),
            "{counter} is not a number: {value:?}"
        );
    }
    let clients = |name: &str| text(&first_seen[name]).parse::<u64>().expect("a count");
    assert!(clients("$SYS/broker/clients/maximum") >= clients("$SYS/broker/clients/total"));
}

/// The load averages are per-minute rates, as mosquitto's: connecting clients makes
/// `load/connections/1min` rise above zero within a few updates.
#[test]
fn load_averages_rise_with_traffic() {
    const TOPIC: &str = "$SYS/broker/load/connections/1min";
    let broker = start_broker(|_| {});
    let mut watcher = RawClient::connected(broker.addr, ConnectOpts::v311("watcher"));
    watcher.subscribe(&[(TOPIC, QoS::AtMostOnce)]);
    // Rates are over the time between updates, from the first one on: connects before it are
    // never counted (mosquitto's rule too). So connect only after a live update has gone out.
    loop {
        let publish = watcher.recv_publish();
        if publish.topic.as_str() == TOPIC && !publish.retain {
            break;
        }
    }
    let mut clients = Vec::new();
    for n in 0..5 {
        clients.push(RawClient::connected(
            broker.addr,
            ConnectOpts::v311(&format!("c{n}")),
        ));
    }
    let mut seen = Vec::new();
    while seen.len() < 6 {
        let publish = watcher.recv_publish();
        if publish.topic.as_str() != TOPIC || publish.retain {
            continue;
        }
        let value: f64 = text(&publish).parse().expect("a number");
        if value > 0.0 {
            return;
        }
        seen.push(value);
    }
    panic!("{TOPIC} stayed at zero: {seen:?}");
}

#[test]
fn clients_connected_counts_a_second_client_after_the_next_interval() {
    const TOPIC: &str = "$SYS/broker/clients/connected";
    // One update may already be on its way when a client connects, and with several shards
    // shard 0 publishes totals from the other shards' previous reports: a change must show
    // within a few updates, not necessarily the first.
    const UPDATES_MAX: usize = 4;
    let broker = start_broker(|_| {});
    let mut first = RawClient::connected(broker.addr, ConnectOpts::v311("first"));
    first.subscribe(&[(TOPIC, QoS::AtMostOnce)]);
    wait_for_value(&mut first, TOPIC, "1", UPDATES_MAX);
    let _second = RawClient::connected(broker.addr, ConnectOpts::v311("second"));
    wait_for_value(&mut first, TOPIC, "2", UPDATES_MAX);
}

#[test]
fn a_client_publish_into_sys_is_not_delivered() {
    let broker = start_broker(|_| {});
    let mut subscriber = RawClient::connected(broker.addr, ConnectOpts::v311("sub"));
    subscriber.subscribe(&[
        ("$SYS/forged/#", QoS::AtMostOnce),
        ("plain", QoS::AtMostOnce),
    ]);
    let mut forger = RawClient::connected(broker.addr, ConnectOpts::v311("forger"));
    forger.publish("$SYS/forged/uptime", b"0 seconds", QoS::AtLeastOnce, false);
    forger.publish("plain", b"sentinel", QoS::AtMostOnce, false);
    // `$SYS` is the broker's namespace (MQTT 4.7.2); mosquitto likewise drops client writes.
    let got = subscriber.recv_publish();
    assert_eq!(
        got.topic.as_str(),
        "plain",
        "a client's $SYS publish was delivered: {got:?}"
    );
}

#[test]
fn a_client_publish_into_sys_is_not_retained() {
    let broker = start_broker(|_| {});
    let mut forger = RawClient::connected(broker.addr, ConnectOpts::v311("forger"));
    forger.publish("$SYS/forged/version", b"evil 1.0", QoS::AtLeastOnce, true);
    let mut subscriber = RawClient::connected(broker.addr, ConnectOpts::v311("sub"));
    subscriber.subscribe(&[
        ("$SYS/forged/#", QoS::AtMostOnce),
        ("plain", QoS::AtMostOnce),
    ]);
    forger.publish("plain", b"sentinel", QoS::AtMostOnce, false);
    let got = subscriber.recv_publish();
    assert_eq!(
        got.topic.as_str(),
        "plain",
        "a client's $SYS publish was retained: {got:?}"
    );
}
