//! Durability over a restart (issue #11), beyond one session's state: retained messages, a
//! delayed will, session and message expiry counted while the broker is down, what must not
//! be restored (clean sessions, `durability = "none"`), sessions re-homed when the shard count
//! changes, and start-up errors.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::persist::{start_persistent, start_persistent_with, wal_segments, TempDir};
use common::{make_publish_v5, text, will_v5, ConnectOpts, RawClient};
use ringmq::codec::{
    ByteStr, Disconnect, Packet, Properties, PropertyValues, Publish, QoS, ReasonCode,
};
use ringmq::config::{Config, Durability, ListenerConfig};

/// A 3.1.1 client whose session outlives its connections (Clean Session 0).
fn persistent_v311(id: &str) -> ConnectOpts {
    ConnectOpts::v311(id).clean(false)
}

/// A 5.0 client whose session outlives its connections by ten minutes (Clean Start 0).
fn persistent_v5(id: &str) -> ConnectOpts {
    ConnectOpts::v5(id).clean(false).session_expiry(600)
}

/// Connects `opts` and returns the client and the CONNACK's Session Present.
fn reconnect(addr: SocketAddr, opts: ConnectOpts) -> (RawClient, bool) {
    let id = opts.client_id.clone();
    let (client, connack) = RawClient::connect(addr, opts);
    assert_eq!(connack.code, ReasonCode::SUCCESS, "{id:?}: {connack:?}");
    (client, connack.session_present)
}

/// Connects `opts` and asserts that the CONNACK resumes a stored session [MQTT-3.2.2-2].
fn resume(addr: SocketAddr, opts: ConnectOpts) -> RawClient {
    let id = opts.client_id.clone();
    let (client, present) = reconnect(addr, opts);
    assert!(present, "{id:?}: no session present after the restart");
    client
}

/// Publishes a sentinel to `topic` from `publisher` and asserts that it is the next thing
/// `client` receives.
fn assert_next_is_sentinel(client: &mut RawClient, publisher: &mut RawClient, topic: &str) {
    assert_next_is_sentinel_for_all(std::slice::from_mut(client), publisher, topic);
}

/// [`assert_next_is_sentinel`] for several clients subscribed to `topic`.
fn assert_next_is_sentinel_for_all(
    clients: &mut [RawClient],
    publisher: &mut RawClient,
    topic: &str,
) {
    publisher.publish(topic, b"sentinel", QoS::AtLeastOnce, false);
    for client in clients {
        let got = client.recv_publish();
        assert_eq!(
            (got.topic.as_str(), text(&got)),
            (topic, "sentinel"),
            "something arrived before the sentinel: {got:?}"
        );
    }
}

/// 5.0 properties a retained message keeps.
fn described() -> Properties {
    Properties::from(PropertyValues {
        content_type: Some(ByteStr::from("text/plain")),
        user_properties: vec![(ByteStr::from("k"), ByteStr::from("v"))],
        ..Default::default()
    })
}

/// The retained messages under `ret/#` that a new 5.0 subscriber on `addr` gets, by topic:
/// everything up to a live sentinel published after its SUBACK (retained messages come first).
fn retained_at(addr: SocketAddr, reader: &str) -> BTreeMap<String, Publish> {
    let mut sub = RawClient::connected(addr, ConnectOpts::v5(reader));
    sub.subscribe(&[("ret/#", QoS::ExactlyOnce)]);
    let mut publisher = RawClient::connected(addr, ConnectOpts::v5(&format!("{reader}-pub")));
    publisher.publish("ret/~sentinel", b"sentinel", QoS::AtLeastOnce, false);
    let mut retained = BTreeMap::new();
    loop {
        let got = sub.recv_publish();
        if got.topic.as_str() == "ret/~sentinel" {
            return retained;
        }
        // [MQTT-3.3.1-8]: sent because of the subscription, so with the retain flag.
        assert!(got.retain, "{got:?}");
        let topic = got.topic.as_str().to_owned();
        assert!(retained.insert(topic, got).is_none(), "sent twice");
    }
}

/// Asserts what every shard's subscribers get as retained: `expected` as (topic, payload,
/// QoS), and the 5.0 properties of `ret/props` if it is expected.
fn assert_retained(broker: &common::Broker, shards: usize, expected: &[(&str, &str, QoS)]) {
    for shard in 0..shards {
        let retained = retained_at(broker.shard(shard), &format!("reader-{shard}"));
        let got: Vec<(&str, &str, QoS)> = retained
            .values()
            .map(|p| (p.topic.as_str(), text(p), p.qos))
            .collect();
        assert_eq!(got, expected, "retained messages seen on shard {shard}");
        if let Some(props) = retained.get("ret/props") {
            assert_eq!(props.properties, described(), "on shard {shard}");
        }
    }
}

fn retained_messages_survive_restarts(name: &str, shards: usize) {
    let dir = TempDir::new(name);
    let broker = start_persistent(dir.path(), shards);
    // Set, replaced and deleted from different shards.
    let mut setters: Vec<RawClient> = (0..3)
        .map(|i| RawClient::connected(broker.shard(i), ConnectOpts::v5(&format!("setter-{i}"))))
        .collect();
    setters[0].publish("ret/a", b"A", QoS::AtLeastOnce, true);
    setters[1].publish("ret/b", b"B1", QoS::ExactlyOnce, true);
    setters[1].publish("ret/b", b"B2", QoS::AtMostOnce, true);
    setters[2].publish("ret/gone", b"X", QoS::AtLeastOnce, true);
    // [MQTT-3.3.1-10]/[MQTT-3.3.1-11]: an empty retained payload deletes the topic's message.
    setters[2].publish("ret/gone", b"", QoS::AtLeastOnce, true);
    let mut props = make_publish_v5("ret/props", b"P", QoS::ExactlyOnce, described());
    props.retain = true;
    setters[0].publish_packet(props);
    // QoS 0 has no ack: a PINGRESP shows the broker has read what came before it.
    setters[1].ping();
    drop(setters);
    broker.shutdown();

    let broker = start_persistent(dir.path(), shards);
    let first = [
        ("ret/a", "A", QoS::AtLeastOnce),
        ("ret/b", "B2", QoS::AtMostOnce),
        ("ret/props", "P", QoS::ExactlyOnce),
    ];
    assert_retained(&broker, shards, &first);
    // Changes to what came from the log of an earlier run are kept too.
    let mut setter = RawClient::connected(broker.shard(1), ConnectOpts::v5("setter"));
    setter.publish("ret/a", b"", QoS::AtLeastOnce, true);
    setter.publish("ret/c", b"C", QoS::AtLeastOnce, true);
    drop(setter);
    broker.shutdown();

    let broker = start_persistent(dir.path(), shards);
    let second = [
        ("ret/b", "B2", QoS::AtMostOnce),
        ("ret/c", "C", QoS::AtLeastOnce),
        ("ret/props", "P", QoS::ExactlyOnce),
    ];
    assert_retained(&broker, shards, &second);
    broker.shutdown();
}

/// [MQTT-3.3.1-5]: retained messages survive restarts with their QoS and 5.0 properties; a
/// replaced one keeps its last value, a deleted one stays deleted [MQTT-3.3.1-10], also when
/// set in one run and deleted in the next. One shard.
#[test]
fn retained_messages_survive_restarts_1_shard() {
    retained_messages_survive_restarts("retained-1", 1);
}

/// [`retained_messages_survive_restarts_1_shard`] with three shards: set, replaced and
/// deleted on different shards, and read on every shard after each restart.
#[test]
fn retained_messages_survive_restarts_3_shards() {
    retained_messages_survive_restarts("retained-3", 3);
}

/// The Will Delay Interval of the wills in this file.
const WILL_DELAY: Duration = Duration::from_secs(3);

/// Client `id` with a QoS 1 will on `wills/<id>` delayed by `delay`, and a session expiry
/// longer than the delay.
fn delayed_will(id: &str, delay: Duration) -> ConnectOpts {
    let properties = Properties::from(PropertyValues {
        will_delay_interval_s: Some(delay.as_secs() as u32),
        ..Default::default()
    });
    let will = will_v5(
        &format!("wills/{id}"),
        b"gone",
        QoS::AtLeastOnce,
        properties,
    );
    ConnectOpts::v5(id).session_expiry(60).will(will)
}

/// A persistent session subscribed to `wills/#`, offline, so that it keeps whatever will is
/// published while it is away, restart or not.
fn will_watcher(addr: SocketAddr) {
    let mut watcher = RawClient::connected(addr, persistent_v311("will-watcher"));
    watcher.subscribe(&[("wills/#", QoS::AtLeastOnce)]);
    watcher.disconnect();
}

fn delayed_will_is_published_after_a_restart(name: &str, shards: usize) {
    let dir = TempDir::new(name);
    let broker = start_persistent(dir.path(), shards);
    will_watcher(broker.shard(1));
    // The connection drops without DISCONNECT: the will is due after its delay.
    drop(RawClient::connected(
        broker.shard(0),
        delayed_will("mortal", WILL_DELAY),
    ));
    let dropped = Instant::now();
    broker.shutdown();

    let broker = start_persistent(dir.path(), shards);
    let mut watcher = resume(broker.shard(2), persistent_v311("will-watcher"));
    // [MQTT-3.1.2-8]: published once the delay has passed, though the broker restarted in it.
    match watcher.recv_timeout(Duration::from_secs(20)) {
        Some(Packet::Publish(publish)) => {
            watcher.ack(&publish);
            assert_eq!(
                (publish.topic.as_str(), text(&publish)),
                ("wills/mortal", "gone")
            );
        }
        Some(other) => panic!("expected the will, got {other:?}"),
        None => panic!("no will within 20 s of the restart"),
    }
    // 3.1.3.2.2: not before the delay (neither at shutdown nor at start-up).
    let elapsed = dropped.elapsed();
    assert!(
        elapsed + Duration::from_millis(100) >= WILL_DELAY,
        "the will came {elapsed:?} after the drop"
    );
    // And once only.
    let mut publisher = RawClient::connected(broker.shard(0), ConnectOpts::v311("pub"));
    assert_next_is_sentinel(&mut watcher, &mut publisher, "wills/~sentinel");
    broker.shutdown();
}

/// [MQTT-3.1.2-8]/3.1.3.2.2: a 5.0 will with a 3 s delay, whose connection dropped just
/// before a shutdown, is published after the restart once the delay has passed, not before,
/// and once. One shard.
#[test]
fn delayed_will_is_published_after_a_restart_1_shard() {
    delayed_will_is_published_after_a_restart("will-1", 1);
}

/// [`delayed_will_is_published_after_a_restart_1_shard`] with three shards: the will's
/// session and the watcher on different shards.
#[test]
fn delayed_will_is_published_after_a_restart_3_shards() {
    delayed_will_is_published_after_a_restart("will-3", 3);
}

/// [MQTT-3.1.3-9]: a client that reconnects after the restart, before its will delay has
/// passed, cancels its will. Three shards; the client comes back on another shard.
#[test]
fn reconnecting_after_a_restart_within_the_will_delay_cancels_the_will() {
    let delay = Duration::from_secs(5);
    let dir = TempDir::new("will-cancelled");
    let broker = start_persistent(dir.path(), 3);
    will_watcher(broker.shard(1));
    drop(RawClient::connected(
        broker.shard(0),
        delayed_will("back", delay),
    ));
    let dropped = Instant::now();
    broker.shutdown();

    let broker = start_persistent(dir.path(), 3);
    let opts = ConnectOpts::v5("back").clean(false).session_expiry(60);
    let _back = resume(broker.shard(2), opts);
    let mut watcher = resume(broker.shard(1), persistent_v311("will-watcher"));
    // Well past the delay: nothing came.
    let past = (delay + Duration::from_secs(2)).saturating_sub(dropped.elapsed());
    watcher.expect_silence(past);
    let mut publisher = RawClient::connected(broker.shard(0), ConnectOpts::v311("pub"));
    assert_next_is_sentinel(&mut watcher, &mut publisher, "wills/~sentinel");
    broker.shutdown();
}

/// A 5.0 PUBLISH with a Message Expiry Interval of `expiry_s`, if any.
fn expiring(topic: &str, payload: &[u8], expiry_s: Option<u32>) -> Publish {
    let properties = Properties::from(PropertyValues {
        message_expiry_interval_s: expiry_s,
        ..Default::default()
    });
    make_publish_v5(topic, payload, QoS::AtLeastOnce, properties)
}

/// How long the expiry tests keep the broker down: past a 2 s session expiry and a 1 s
/// message expiry.
const DOWNTIME: Duration = Duration::from_secs(3);

/// [MQTT-4.1.0-2]: session expiry counts the time the broker was down. A 5.0 session with a
/// 2 s expiry, disconnected before a shutdown, is gone after 3 s of downtime, even for a client
/// that reconnects at once; one with 600 s is not.
#[test]
fn session_expiry_counts_the_time_the_broker_was_down() {
    let dir = TempDir::new("session-expiry-downtime");
    let broker = start_persistent(dir.path(), 1);
    let short = || ConnectOpts::v5("short").clean(false).session_expiry(2);
    let mut client = RawClient::connected(broker.addr, short());
    client.subscribe(&[("expiry/short", QoS::AtLeastOnce)]);
    client.disconnect();
    let mut client = RawClient::connected(broker.addr, persistent_v5("long"));
    client.subscribe(&[("expiry/long", QoS::AtLeastOnce)]);
    client.disconnect();
    broker.shutdown();
    // The broker is down for longer than the short session's 2 s: that is the point.
    std::thread::sleep(DOWNTIME);

    let broker = start_persistent(dir.path(), 1);
    let (mut client, present) = reconnect(broker.addr, short());
    assert!(!present, "the 2 s session outlived 3 s of downtime");
    client.subscribe(&[("expiry/check", QoS::AtLeastOnce)]);
    let mut publisher = RawClient::connected(broker.addr, ConnectOpts::v5("pub"));
    publisher.publish("expiry/short", b"old subscription", QoS::AtLeastOnce, false);
    assert_next_is_sentinel(&mut client, &mut publisher, "expiry/check");
    let mut client = resume(broker.addr, persistent_v5("long"));
    assert_next_is_sentinel(&mut client, &mut publisher, "expiry/long");
    broker.shutdown();
}

/// [MQTT-3.3.2-5]/[MQTT-3.3.2-6]: message expiry counts the time the broker was down. Of the
/// messages queued for an offline session, one with a 1 s Message Expiry Interval is not
/// delivered after 3 s of downtime; one with 600 s is, with at least those 3 s taken off its
/// interval; one without an interval is.
#[test]
fn message_expiry_counts_the_time_the_broker_was_down() {
    let dir = TempDir::new("message-expiry-downtime");
    let broker = start_persistent(dir.path(), 1);
    let mut client = RawClient::connected(broker.addr, persistent_v5("holder"));
    client.subscribe(&[("expiry/held", QoS::AtLeastOnce)]);
    client.disconnect();
    let mut publisher = RawClient::connected(broker.addr, ConnectOpts::v5("pub"));
    publisher.publish_packet(expiring("expiry/held", b"stale", Some(1)));
    publisher.publish_packet(expiring("expiry/held", b"fresh", Some(600)));
    publisher.publish_packet(expiring("expiry/held", b"plain", None));
    drop(publisher);
    broker.shutdown();
    std::thread::sleep(DOWNTIME);

    let broker = start_persistent(dir.path(), 1);
    let mut client = resume(broker.addr, persistent_v5("holder"));
    let got = client.recv_publish();
    assert_eq!(
        text(&got),
        "fresh",
        "the 1 s message outlived 3 s of downtime"
    );
    let left = got.properties.message_expiry_interval_s;
    assert!(
        left.is_some_and(|s| s > 0 && s <= 597),
        "600 s less at least 3 s of waiting, got {left:?}"
    );
    assert_eq!(text(&client.recv_publish()), "plain");
    let mut publisher = RawClient::connected(broker.addr, ConnectOpts::v5("pub"));
    assert_next_is_sentinel(&mut client, &mut publisher, "expiry/held");
    broker.shutdown();
}

/// [MQTT-3.1.2-6] (3.1.1 Clean Session 1) and 3.1.2.11.2 (5.0 expiry absent, or set to 0 by
/// DISCONNECT): such sessions end with their connection and are not restored by a restart,
/// whether they were connected at shutdown or not. Three shards.
#[test]
fn sessions_that_end_with_their_connection_are_not_restored() {
    let dir = TempDir::new("clean-not-restored");
    let broker = start_persistent(dir.path(), 3);
    let mut clean = RawClient::connected(broker.shard(0), ConnectOpts::v311("clean-311"));
    clean.subscribe(&[("clean/#", QoS::AtLeastOnce)]);
    let opts = ConnectOpts::v5("no-expiry").clean(false);
    let mut no_expiry = RawClient::connected(broker.shard(1), opts);
    no_expiry.subscribe(&[("clean/#", QoS::AtLeastOnce)]);
    let mut ended = RawClient::connected(broker.shard(2), persistent_v5("ended"));
    ended.subscribe(&[("clean/#", QoS::AtLeastOnce)]);
    let mut disconnect = Disconnect::new(ReasonCode::NORMAL_DISCONNECTION);
    disconnect.properties.session_expiry_interval_s = Some(0);
    ended.disconnect_with(disconnect);
    broker.shutdown();
    drop((clean, no_expiry));

    let broker = start_persistent(dir.path(), 3);
    let mut publisher = RawClient::connected(broker.shard(0), ConnectOpts::v5("pub"));
    let resuming = [persistent_v311("clean-311"), persistent_v5("no-expiry")];
    let resuming = resuming.into_iter().chain([persistent_v5("ended")]);
    for (shard, opts) in resuming.enumerate() {
        let id = opts.client_id.clone();
        let (mut client, present) = reconnect(broker.shard(shard + 1), opts);
        assert!(!present, "{id}: a session that had ended was restored");
        // Nor its subscription.
        client.subscribe(&[("check", QoS::AtLeastOnce)]);
        publisher.publish("clean/x", b"old subscription", QoS::AtLeastOnce, false);
        assert_next_is_sentinel(&mut client, &mut publisher, "check");
    }
    broker.shutdown();
}

/// `durability = "none"` with a `persistence_dir`: memory only. Nothing is written, and a
/// restart brings back neither a persistent session nor a retained message.
#[test]
fn durability_none_restores_nothing() {
    let dir = TempDir::new("durability-none");
    let none = |c: &mut Config| c.persistence.durability = Durability::None;
    let broker = start_persistent_with(dir.path(), 1, none);
    let mut client = RawClient::connected(broker.addr, persistent_v311("forgotten"));
    client.subscribe(&[("none/session", QoS::AtLeastOnce)]);
    client.publish("none/retained", b"forgotten", QoS::AtLeastOnce, true);
    client.disconnect();
    broker.shutdown();
    let segments = wal_segments(dir.path());
    assert!(segments.is_empty(), "durability none wrote {segments:?}");

    let broker = start_persistent_with(dir.path(), 1, none);
    let (mut client, present) = reconnect(broker.addr, persistent_v311("forgotten"));
    assert!(!present, "a session came back with durability none");
    client.subscribe(&[("none/#", QoS::AtLeastOnce)]);
    let mut publisher = RawClient::connected(broker.addr, ConnectOpts::v311("pub"));
    assert_next_is_sentinel(&mut client, &mut publisher, "none/check");
    broker.shutdown();
}

/// Session `i` of [`sessions_are_rehomed`]: 3.1.1 and 5.0 alternately.
fn roamer(i: usize) -> ConnectOpts {
    let id = format!("roamer-{i}");
    if i.is_multiple_of(2) {
        persistent_v311(&id)
    } else {
        persistent_v5(&id)
    }
}

fn sessions_are_rehomed(name: &str, from: usize, to: usize) {
    let dir = TempDir::new(name);
    let broker = start_persistent(dir.path(), from);
    for i in 0..from {
        let mut client = RawClient::connected(broker.shard(i), roamer(i));
        let own = format!("roam/{i}");
        client.subscribe(&[
            (own.as_str(), QoS::AtLeastOnce),
            ("roam/all", QoS::ExactlyOnce),
        ]);
        client.disconnect();
    }
    let mut publisher = RawClient::connected(broker.shard(0), ConnectOpts::v5("pub"));
    for i in 0..from {
        let own = format!("own-{i}");
        publisher.publish(
            &format!("roam/{i}"),
            own.as_bytes(),
            QoS::AtLeastOnce,
            false,
        );
    }
    publisher.publish("roam/all", b"to all", QoS::ExactlyOnce, false);
    publisher.publish("ret/roam", b"kept", QoS::AtLeastOnce, true);
    drop(publisher);
    broker.shutdown();

    let broker = start_persistent(dir.path(), to);
    let mut clients = Vec::new();
    for i in 0..from {
        // On another shard than before where there is one; the session's old shard may be
        // gone.
        let mut client = resume(broker.shard(i + 1), roamer(i));
        let got = client.recv_publish();
        assert_eq!(
            (text(&got), got.qos),
            (format!("own-{i}").as_str(), QoS::AtLeastOnce)
        );
        let got = client.recv_publish();
        assert_eq!((text(&got), got.qos), ("to all", QoS::ExactlyOnce));
        clients.push(client);
    }
    // The subscriptions are live again wherever the sessions landed.
    let mut publisher = RawClient::connected(broker.shard(0), ConnectOpts::v5("pub"));
    assert_next_is_sentinel_for_all(&mut clients, &mut publisher, "roam/all");
    assert_retained(&broker, to, &[("ret/roam", "kept", QoS::AtLeastOnce)]);
    drop(clients);
    broker.shutdown();

    // The start-up rewrote the state for `to` shards and dropped the old layout's segments.
    let broker = start_persistent(dir.path(), to);
    let stale: Vec<_> = wal_segments(dir.path())
        .into_iter()
        .filter(|s| s.shard >= to)
        .collect();
    assert!(
        stale.is_empty(),
        "segments of shards that are gone: {stale:?}"
    );
    for i in 0..from {
        resume(broker.shard(i), roamer(i)).disconnect();
    }
    broker.shutdown();
}

/// Sessions created on each of 3 shards are re-homed onto 2 when the broker restarts with 2:
/// each resumes with Session Present 1, gets its queued messages in order, and its
/// subscriptions route live messages; retained messages are on both shards.
#[test]
fn sessions_are_rehomed_from_3_shards_to_2() {
    sessions_are_rehomed("rehome-3-2", 3, 2);
}

/// [`sessions_are_rehomed_from_3_shards_to_2`] down to one shard.
#[test]
fn sessions_are_rehomed_from_3_shards_to_1() {
    sessions_are_rehomed("rehome-3-1", 3, 1);
}

/// [`sessions_are_rehomed_from_3_shards_to_2`] the other way: from 2 shards to 3.
#[test]
fn sessions_are_rehomed_from_2_shards_to_3() {
    sessions_are_rehomed("rehome-2-3", 2, 3);
}

/// A configuration for `runtime::start` with one shard and `dir` as `persistence_dir`.
fn config_with_dir(dir: &Path) -> Config {
    let mut config = Config {
        listeners: vec![ListenerConfig::mqtt(SocketAddr::from(([127, 0, 0, 1], 0)))],
        shards: 1,
        io: common::io_from_env(),
        ..Config::default()
    };
    config.persistence.dir = Some(dir.to_owned());
    config
}

/// An operating error at start-up is an error, not a panic: a `persistence_dir` that is a
/// regular file, or lies under one, makes `runtime::start` return an error naming the path.
#[test]
fn persistence_dir_that_cannot_be_a_directory_is_a_start_error_naming_it() {
    let tmp = TempDir::new("dir-under-file");
    let file = tmp.path().join("plain");
    std::fs::write(&file, b"not a directory").expect("write a plain file");
    for bad in [file.join("wal"), file.clone()] {
        let error = ringmq::runtime::start(config_with_dir(&bad))
            .expect_err("a broker started on a persistence_dir it cannot use");
        let shown = bad.display().to_string();
        assert!(error.to_string().contains(&shown), "{shown}: {error}");
    }
}

/// A `persistence_dir` that does not exist yet is created, with its parents, and holds the
/// segments, named `shard<I>-<SEQ>.wal` for shards I of this run, once there is state.
#[test]
fn missing_persistence_dir_is_created() {
    let tmp = TempDir::new("dir-created");
    let dir: PathBuf = tmp.path().join("a").join("b");
    let broker = start_persistent(&dir, 3);
    for i in 0..3 {
        let mut client = RawClient::connected(broker.shard(i), persistent_v311(&format!("c{i}")));
        client.subscribe(&[("created/#", QoS::AtLeastOnce)]);
        client.disconnect();
    }
    broker.shutdown();
    // `wal_segments` fails on a `.wal` file with another name.
    let segments = wal_segments(&dir);
    assert!(!segments.is_empty(), "no segment in {}", dir.display());
    assert!(segments.iter().all(|s| s.shard < 3), "{segments:?}");
}

/// The top-level TOML keys `persistence_dir`, `durability`, `fsync_interval_ms` and
/// `persisted_bytes_max`, with their defaults; a bad `durability` is an error naming the key.
#[test]
fn persistence_keys_are_read_from_the_config_file() {
    let config = Config::from_toml("listen = [\"127.0.0.1:1883\"]\n").expect("parses");
    assert_eq!(config.persistence.dir, None);
    assert_eq!(config.persistence.durability, Durability::Batch);
    assert_eq!(config.persistence.fsync_interval_ms, 10);
    let text = "persistence_dir = \"/var/lib/ringmq\"\ndurability = \"sync\"\n\
                fsync_interval_ms = 5\npersisted_bytes_max = 1048576\n";
    let config = Config::from_toml(text).expect("parses");
    assert_eq!(
        config.persistence.dir.as_deref(),
        Some(Path::new("/var/lib/ringmq"))
    );
    assert_eq!(config.persistence.durability, Durability::Sync);
    assert_eq!(config.persistence.fsync_interval_ms, 5);
    assert_eq!(config.persistence.bytes_max, 1_048_576);
    let error = Config::from_toml("durability = \"always\"\n").expect_err("not a mode");
    assert!(error.to_string().contains("durability"), "{error}");
}
