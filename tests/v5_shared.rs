//! Shared subscriptions (`$share/<group>/<filter>`, MQTT 5.0 4.8.2) over real sockets: each
//! message to exactly one member of each group, the strategies of `protocol.shared_strategy`,
//! no retained messages, redelivery when a member goes, members on other shards, and 3.1.1
//! members (mosquitto allows them).

mod common;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use common::{rumqttc5_client, rumqttc5_wait, start_broker, start_broker_with, text};
use common::{ConnectOpts, RawClient};
use ringmq::codec::{Publish, QoS, ReasonCode};
use ringmq::config::SharedStrategy;

const GROUP_FILTER: &str = "$share/g/s/t";

/// Quiet time after which a member is taken to have received all it will get.
const QUIET: Duration = Duration::from_millis(400);

fn member(addr: SocketAddr, opts: ConnectOpts, filter: &str, qos: QoS) -> RawClient {
    let mut client = RawClient::connected(addr, opts);
    let ack = client.subscribe(&[(filter, qos)]);
    assert_eq!(ack.codes.len(), 1);
    assert!(ack.codes[0].0 <= 2, "{filter} refused: {:?}", ack.codes);
    client
}

fn v5_member(addr: SocketAddr, id: &str) -> RawClient {
    member(addr, ConnectOpts::v5(id), GROUP_FILTER, QoS::AtLeastOnce)
}

/// Publishes `count` QoS 1 messages "0".."count-1" on `s/t` from client `id`.
fn publish_numbered(addr: SocketAddr, id: &str, count: usize) {
    let mut publisher = RawClient::connected(addr, ConnectOpts::v5(id));
    for n in 0..count {
        publisher.publish("s/t", n.to_string().as_bytes(), QoS::AtLeastOnce, false);
    }
}

fn payloads(publishes: &[Publish]) -> Vec<String> {
    publishes.iter().map(|p| text(p).to_owned()).collect()
}

/// Asserts that `parts` together hold "0".."count-1", each exactly once.
fn assert_each_exactly_once(parts: &[&[String]], count: usize) {
    let mut all: Vec<usize> = parts
        .iter()
        .flat_map(|part| part.iter().map(|p| p.parse::<usize>().expect("a number")))
        .collect();
    all.sort_unstable();
    let expected: Vec<usize> = (0..count).collect();
    // 4.8.2: each message goes to one session of the group: none lost, none twice.
    assert_eq!(all, expected, "messages per member: {parts:?}");
}

#[test]
fn each_message_goes_to_exactly_one_member_in_turn() {
    let broker = start_broker(|_| {});
    let mut a = v5_member(broker.addr, "a");
    let mut b = v5_member(broker.addr, "b");
    publish_numbered(broker.addr, "pub", 10);
    let (got_a, got_b) = (
        payloads(&a.drain_publishes(QUIET)),
        payloads(&b.drain_publishes(QUIET)),
    );
    assert_each_exactly_once(&[&got_a, &got_b], 10);
    // Round robin (the default): one publisher, so the members strictly take turns.
    assert_eq!((got_a.len(), got_b.len()), (5, 5), "{got_a:?} / {got_b:?}");
}

#[test]
fn other_groups_and_plain_subscribers_each_get_every_message() {
    let broker = start_broker(|_| {});
    let mut a = v5_member(broker.addr, "a");
    let mut b = v5_member(broker.addr, "b");
    let mut other_group = member(
        broker.addr,
        ConnectOpts::v5("h"),
        "$share/h/s/t",
        QoS::AtLeastOnce,
    );
    let mut plain = member(
        broker.addr,
        ConnectOpts::v5("plain"),
        "s/t",
        QoS::AtLeastOnce,
    );
    publish_numbered(broker.addr, "pub", 10);
    let every: Vec<String> = (0..10).map(|n| n.to_string()).collect();
    assert_eq!(payloads(&other_group.drain_publishes(QUIET)), every);
    assert_eq!(payloads(&plain.drain_publishes(QUIET)), every);
    let (got_a, got_b) = (
        payloads(&a.drain_publishes(QUIET)),
        payloads(&b.drain_publishes(QUIET)),
    );
    assert_each_exactly_once(&[&got_a, &got_b], 10);
}

#[test]
fn retained_messages_are_not_sent_on_a_shared_subscribe() {
    let broker = start_broker(|_| {});
    let mut publisher = RawClient::connected(broker.addr, ConnectOpts::v5("pub"));
    publisher.publish("s/t", b"stored", QoS::AtLeastOnce, true);
    let mut shared = v5_member(broker.addr, "shared");
    // 3.3.1.3: retained messages go to a new *non-shared* subscription only.
    shared.expect_silence(Duration::from_millis(300));
    let mut plain = member(
        broker.addr,
        ConnectOpts::v5("plain"),
        "s/t",
        QoS::AtLeastOnce,
    );
    assert_eq!(
        text(&plain.recv_publish()),
        "stored",
        "the message was retained"
    );
}

#[test]
fn each_member_gets_the_qos_it_was_granted() {
    let broker = start_broker(|_| {});
    let mut low = member(
        broker.addr,
        ConnectOpts::v5("low"),
        GROUP_FILTER,
        QoS::AtMostOnce,
    );
    let mut high = v5_member(broker.addr, "high");
    publish_numbered(broker.addr, "pub", 4);
    // [MQTT-4.8.2-3]: the member's own granted QoS applies.
    let (got_low, got_high) = (low.drain_publishes(QUIET), high.drain_publishes(QUIET));
    assert!(!got_low.is_empty() && !got_high.is_empty());
    assert!(
        got_low.iter().all(|p| p.qos == QoS::AtMostOnce),
        "{got_low:?}"
    );
    assert!(
        got_high.iter().all(|p| p.qos == QoS::AtLeastOnce),
        "{got_high:?}"
    );
    assert_each_exactly_once(&[&payloads(&got_low), &payloads(&got_high)], 4);
}

#[test]
fn hash_client_id_sends_all_of_a_publishers_messages_to_one_member() {
    let broker = start_broker_with(|c| c.protocol.shared_strategy = SharedStrategy::HashClientId);
    let mut a = v5_member(broker.addr, "a");
    let mut b = v5_member(broker.addr, "b");
    const PUBLISHERS: usize = 4;
    for p in 0..PUBLISHERS {
        let mut publisher = RawClient::connected(broker.addr, ConnectOpts::v5(&format!("p{p}")));
        for n in 0..5 {
            let payload = format!("p{p}:{n}");
            publisher.publish("s/t", payload.as_bytes(), QoS::AtLeastOnce, false);
        }
    }
    let (got_a, got_b) = (
        payloads(&a.drain_publishes(QUIET)),
        payloads(&b.drain_publishes(QUIET)),
    );
    for p in 0..PUBLISHERS {
        let prefix = format!("p{p}:");
        let in_a: Vec<&String> = got_a.iter().filter(|m| m.starts_with(&prefix)).collect();
        let in_b: Vec<&String> = got_b.iter().filter(|m| m.starts_with(&prefix)).collect();
        let (all, other) = if in_a.is_empty() {
            (in_b, in_a)
        } else {
            (in_a, in_b)
        };
        assert!(other.is_empty(), "p{p} was split: {got_a:?} / {got_b:?}");
        let expected: Vec<String> = (0..5).map(|n| format!("p{p}:{n}")).collect();
        let all: Vec<String> = all.into_iter().cloned().collect();
        assert_eq!(all, expected, "p{p}'s messages, in order, to one member");
    }
}

#[test]
fn random_strategy_still_delivers_each_message_exactly_once() {
    let broker = start_broker_with(|c| c.protocol.shared_strategy = SharedStrategy::Random);
    let mut a = v5_member(broker.addr, "a");
    let mut b = v5_member(broker.addr, "b");
    publish_numbered(broker.addr, "pub", 20);
    let (got_a, got_b) = (
        payloads(&a.drain_publishes(QUIET)),
        payloads(&b.drain_publishes(QUIET)),
    );
    assert_each_exactly_once(&[&got_a, &got_b], 20);
}

#[test]
fn unacknowledged_messages_of_a_member_that_goes_are_redelivered_to_another() {
    let broker = start_broker(|_| {});
    // Session expiry 0: A's session ends with its connection, so its unacknowledged QoS 1
    // messages are for the group again (4.8.2: SHOULD send them to another member). QoS 2
    // could not move: [MQTT-4.8.2-5].
    let mut a = v5_member(broker.addr, "a");
    let mut b = v5_member(broker.addr, "b");
    publish_numbered(broker.addr, "pub", 4);
    let mut held_by_a = Vec::new();
    while let Some(ringmq::codec::Packet::Publish(p)) = a.recv_timeout(QUIET) {
        held_by_a.push(text(&p).to_owned());
    }
    assert!(!held_by_a.is_empty(), "round robin gave A nothing");
    drop(a);
    let mut got_b = payloads(&b.drain_publishes(QUIET));
    got_b.sort();
    let all: Vec<String> = (0..4).map(|n| n.to_string()).collect();
    assert_eq!(got_b, all, "A held {held_by_a:?}");
}

#[test]
fn members_on_other_shards_than_the_publisher_share_the_messages() {
    let broker = start_broker_with(|c| c.shards = 3);
    let mut a = v5_member(broker.shard(1), "a");
    let mut b = v5_member(broker.shard(2), "b");
    publish_numbered(broker.shard(0), "pub", 10);
    let (got_a, got_b) = (
        payloads(&a.drain_publishes(QUIET)),
        payloads(&b.drain_publishes(QUIET)),
    );
    assert_each_exactly_once(&[&got_a, &got_b], 10);
    assert!(
        !got_a.is_empty() && !got_b.is_empty(),
        "{got_a:?} / {got_b:?}"
    );
}

#[test]
fn unsubscribed_member_gets_no_more_messages() {
    let broker = start_broker(|_| {});
    let mut a = v5_member(broker.addr, "a");
    let mut b = v5_member(broker.addr, "b");
    let ack = a.unsubscribe(&[GROUP_FILTER]);
    assert_eq!(ack.codes, [ReasonCode::SUCCESS]);
    publish_numbered(broker.addr, "pub", 6);
    let every: Vec<String> = (0..6).map(|n| n.to_string()).collect();
    assert_eq!(payloads(&b.drain_publishes(QUIET)), every);
    a.expect_silence(Duration::from_millis(200));
}

#[test]
fn v311_clients_can_share_a_subscription() {
    let broker = start_broker(|_| {});
    let mut a = member(
        broker.addr,
        ConnectOpts::v311("a"),
        GROUP_FILTER,
        QoS::AtLeastOnce,
    );
    let mut b = member(
        broker.addr,
        ConnectOpts::v311("b"),
        GROUP_FILTER,
        QoS::AtLeastOnce,
    );
    publish_numbered(broker.addr, "pub", 10);
    let (got_a, got_b) = (
        payloads(&a.drain_publishes(QUIET)),
        payloads(&b.drain_publishes(QUIET)),
    );
    assert_each_exactly_once(&[&got_a, &got_b], 10);
    assert!(!got_a.is_empty() && !got_b.is_empty());
}

/// Publishes received by a rumqttc 5.0 connection until it is quiet for [`QUIET`].
fn rumqttc5_drain(connection: &mut rumqttc::v5::Connection) -> Vec<String> {
    use rumqttc::v5::mqttbytes::v5::Packet as V5Packet;
    let mut got = Vec::new();
    while let Ok(event) = connection.recv_timeout(QUIET) {
        let event = event.expect("rumqttc v5 connection");
        if let rumqttc::v5::Event::Incoming(V5Packet::Publish(publish)) = event {
            got.push(String::from_utf8(publish.payload.to_vec()).expect("UTF-8"));
        }
    }
    got
}

#[test]
fn rumqttc_v5_members_share_the_messages() {
    use rumqttc::v5::mqttbytes::v5::Packet as V5Packet;
    let broker = start_broker(|_| {});
    let mut members = Vec::new();
    for id in ["rumqttc-a", "rumqttc-b"] {
        let (client, mut connection) = rumqttc5_client(broker.addr, id, |_| {});
        client
            .subscribe(GROUP_FILTER, rumqttc::v5::mqttbytes::QoS::AtLeastOnce)
            .expect("queue SUBSCRIBE");
        rumqttc5_wait(&mut connection, "SUBACK", |p| {
            matches!(p, V5Packet::SubAck(_)).then_some(())
        });
        members.push((client, connection));
    }
    publish_numbered(broker.addr, "pub", 10);
    let got: Vec<Vec<String>> = members
        .iter_mut()
        .map(|(_, connection)| rumqttc5_drain(connection))
        .collect();
    assert_each_exactly_once(&[&got[0], &got[1]], 10);
    let distinct: BTreeSet<usize> = got.iter().map(Vec::len).collect();
    assert!(!distinct.contains(&0), "a member got nothing: {got:?}");
}
