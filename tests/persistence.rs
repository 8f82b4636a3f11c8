//! Durability over a restart (issue #11): what a graceful shutdown and a start on the same
//! `persistence_dir` keep of a persistent session. Its subscriptions with their options, the
//! messages queued for it, its outbound inflight window, and its inbound QoS 2 packet ids; each
//! with one shard and with three, clients placed on chosen shards with `Broker::shard`.
//!
//! Retained messages, wills, expiry, what is not kept, a change of shard count and start-up
//! errors are in `persistence_more.rs`; damaged logs in `persistence_corrupt.rs`; kill -9 in
//! `crash.rs`.

mod common;

use std::net::SocketAddr;

use common::persist::{start_persistent, TempDir};
use common::{
    make_publish, make_publish_v5, packet_id, text, ConnectOpts, RawClient, CLOSE_TIMEOUT,
};
use ringmq::codec::{
    Ack, ByteStr, Packet, PacketId, Properties, PropertyValues, ProtocolVersion, Publish, QoS,
    ReasonCode, SubscriptionOptions,
};

/// A 3.1.1 client whose session outlives its connections (Clean Session 0).
fn persistent_v311(id: &str) -> ConnectOpts {
    ConnectOpts::v311(id).clean(false)
}

/// A 5.0 client whose session outlives its connections by ten minutes (Clean Start 0).
fn persistent_v5(id: &str) -> ConnectOpts {
    ConnectOpts::v5(id).clean(false).session_expiry(600)
}

/// Connects `opts` and asserts that the CONNACK resumes a stored session.
fn resume(addr: SocketAddr, opts: ConnectOpts) -> RawClient {
    let id = opts.client_id.clone();
    let (client, connack) = RawClient::connect(addr, opts);
    assert_eq!(connack.code, ReasonCode::SUCCESS, "{id:?}: {connack:?}");
    // [MQTT-3.2.2-2] (3.1.1) / [MQTT-3.2.2-3] (5.0): the session came back from the log.
    assert!(
        connack.session_present,
        "{id:?}: no session present after the restart"
    );
    client
}

/// Waits for the broker to close `client` at shutdown (5.0: after DISCONNECT 0x8B).
fn closed_by_shutdown(mut client: RawClient) {
    if let Some(disconnect) = client.expect_closed(CLOSE_TIMEOUT) {
        assert_eq!(disconnect.code, ReasonCode::SERVER_SHUTTING_DOWN);
    }
}

/// Publishes a sentinel to `topic` and asserts that it is the next thing each of `clients`
/// receives: nothing else (a resend, a leftover message) was waiting for them.
fn assert_next_is_sentinel(clients: &mut [RawClient], publisher: &mut RawClient, topic: &str) {
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

/// The subscription options and identifier the 5.0 session of
/// [`subscriptions_survive_a_restart`] subscribes with.
fn rich_subscription() -> (SubscriptionOptions, Properties) {
    let options = SubscriptionOptions {
        qos: QoS::ExactlyOnce,
        no_local: true,
        retain_as_published: true,
        ..Default::default()
    };
    let properties = Properties::from(PropertyValues {
        subscription_identifiers: vec![42],
        ..Default::default()
    });
    (options, properties)
}

fn subscriptions_survive_a_restart(name: &str, shards: usize) {
    let dir = TempDir::new(name);
    let broker = start_persistent(dir.path(), shards);
    let mut old = RawClient::connected(broker.shard(0), persistent_v311("keeper-311"));
    old.subscribe(&[("kept/311/+", QoS::AtLeastOnce)]);
    old.disconnect();
    let mut new = RawClient::connected(broker.shard(1), persistent_v5("keeper-5"));
    let (options, properties) = rich_subscription();
    new.subscribe_with_props(&[("kept/5/#", options)], properties);
    // Still connected when the broker stops: a restart under connected clients is the usual
    // case.
    broker.shutdown();
    closed_by_shutdown(new);

    let broker = start_persistent(dir.path(), shards);
    // Each resumes on another shard than before (with 3 shards).
    let mut old = resume(broker.shard(2), persistent_v311("keeper-311"));
    let mut new = resume(broker.shard(0), persistent_v5("keeper-5"));
    let mut publisher = RawClient::connected(broker.shard(1), ConnectOpts::v5("pub"));
    // [MQTT-3.1.2-4]/[MQTT-3.1.2-5]: no SUBSCRIBE after the restart; the session has them.
    publisher.publish("kept/311/a", b"to 3.1.1", QoS::ExactlyOnce, false);
    let got = old.recv_publish();
    assert_eq!(
        (got.topic.as_str(), text(&got), got.qos),
        ("kept/311/a", "to 3.1.1", QoS::AtLeastOnce),
        "the granted QoS 1 was kept"
    );
    publisher.publish("kept/5/x", b"to 5.0", QoS::ExactlyOnce, true);
    let got = new.recv_publish();
    assert_eq!(
        (got.topic.as_str(), text(&got), got.qos),
        ("kept/5/x", "to 5.0", QoS::ExactlyOnce)
    );
    assert!(got.retain, "Retain As Published was lost");
    assert_eq!(
        got.properties.subscription_identifiers,
        vec![42],
        "the Subscription Identifier was lost"
    );
    // No Local was kept: the session's own publish does not come back to it.
    new.publish("kept/5/own", b"own", QoS::AtLeastOnce, false);
    publisher.publish("kept/5/after", b"after", QoS::AtLeastOnce, false);
    let got = new.recv_publish();
    assert_eq!(text(&got), "after", "No Local was lost: {got:?}");
    broker.shutdown();
}

/// [MQTT-3.1.2-4]/[MQTT-3.2.2-2]: a 3.1.1 Clean Session 0 session and a 5.0 session with an
/// expiry come back after a restart (Session Present 1) with their subscriptions, granted QoS,
/// No Local, Retain As Published and Subscription Identifier; one shard.
#[test]
fn subscriptions_survive_a_restart_1_shard() {
    subscriptions_survive_a_restart("subscriptions-1", 1);
}

/// [`subscriptions_survive_a_restart_1_shard`] with three shards: the sessions live on
/// different shards, and resume on others than before.
#[test]
fn subscriptions_survive_a_restart_3_shards() {
    subscriptions_survive_a_restart("subscriptions-3", 3);
}

/// The QoS 1 and QoS 2 messages [`queued_messages_survive_a_restart`] publishes, in order.
fn queued() -> Vec<(QoS, String)> {
    (0..20u32)
        .map(|i| {
            let qos = if i.is_multiple_of(2) {
                QoS::AtLeastOnce
            } else {
                QoS::ExactlyOnce
            };
            (qos, format!("queued-{i:02}"))
        })
        .collect()
}

/// 5.0 properties that describe a message, which must travel with it through the log.
fn described() -> Properties {
    Properties::from(PropertyValues {
        content_type: Some(ByteStr::from("text/plain")),
        correlation_data: Some(bytes::Bytes::from_static(b"\x00corr")),
        user_properties: vec![
            (ByteStr::from("k"), ByteStr::from("v1")),
            (ByteStr::from("k"), ByteStr::from("v2")),
        ],
        ..Default::default()
    })
}

fn queued_messages_survive_a_restart(name: &str, shards: usize) {
    let dir = TempDir::new(name);
    let broker = start_persistent(dir.path(), shards);
    let sessions = [
        ("queue-311", persistent_v311("queue-311")),
        ("queue-5", persistent_v5("queue-5")),
    ];
    for (i, (_, opts)) in sessions.iter().enumerate() {
        let mut sub = RawClient::connected(broker.shard(2 * i), opts.clone());
        sub.subscribe(&[("queue/#", QoS::ExactlyOnce)]);
        sub.disconnect();
    }
    let mut publisher = RawClient::connected(broker.shard(1), ConnectOpts::v5("pub"));
    for (qos, payload) in queued() {
        publisher.publish("queue/x", payload.as_bytes(), qos, false);
    }
    let props = make_publish_v5("queue/props", b"described", QoS::AtLeastOnce, described());
    publisher.publish_packet(props);
    publisher.disconnect();
    broker.shutdown();

    let broker = start_persistent(dir.path(), shards);
    let mut subs = Vec::new();
    for (i, (id, opts)) in sessions.iter().enumerate() {
        let mut sub = resume(broker.shard(i + 1), opts.clone());
        // [MQTT-3.1.2-5]: QoS 1 and 2 messages queued for the offline session, kept over the
        // restart, in the order they were published [MQTT-4.6.0-6] with their QoS, and not
        // marked DUP: none was sent before [MQTT-3.3.1-1].
        for (n, (qos, payload)) in queued().into_iter().enumerate() {
            let Some(Packet::Publish(got)) = sub.recv_timeout(common::RECV_TIMEOUT) else {
                panic!("{id}: {n} of {} queued messages arrived", queued().len());
            };
            sub.ack(&got);
            assert_eq!(
                (text(&got), got.qos, got.dup),
                (payload.as_str(), qos, false),
                "{id}"
            );
        }
        let got = sub.recv_publish();
        assert_eq!(text(&got), "described", "{id}");
        if sub.version() == ProtocolVersion::V5 {
            // 3.3.2.3: properties are forwarded unaltered.
            assert_eq!(got.properties, described(), "{id}: properties lost");
        }
        subs.push(sub);
    }
    let mut publisher = RawClient::connected(broker.shard(0), ConnectOpts::v5("pub"));
    assert_next_is_sentinel(&mut subs, &mut publisher, "queue/end");
    broker.shutdown();
}

/// [MQTT-3.1.2-5]: QoS 1 and QoS 2 messages queued for offline persistent sessions (3.1.1 and
/// 5.0) survive a restart and arrive in order, with their QoS and 5.0 properties; one shard.
#[test]
fn queued_messages_survive_a_restart_1_shard() {
    queued_messages_survive_a_restart("queued-1", 1);
}

/// [`queued_messages_survive_a_restart_1_shard`] with three shards: the sessions live on two
/// shards, the publisher on a third, and the sessions resume on other shards.
#[test]
fn queued_messages_survive_a_restart_3_shards() {
    queued_messages_survive_a_restart("queued-3", 3);
}

/// Reads `n` packets that must be PUBLISH or PUBREL: what a broker resends on resume.
fn resent(client: &mut RawClient, id: &str, n: usize) -> (Vec<Publish>, Vec<PacketId>) {
    let mut publishes = Vec::new();
    let mut pubrels = Vec::new();
    for _ in 0..n {
        match client.recv_timeout(common::RECV_TIMEOUT) {
            Some(Packet::Publish(publish)) => publishes.push(publish),
            Some(Packet::PubRel(ack)) => pubrels.push(ack.packet_id),
            Some(other) => panic!("{id}: expected a resent PUBLISH or PUBREL, got {other:?}"),
            None => panic!("{id}: only {publishes:?} and PUBREL {pubrels:?} resent"),
        }
    }
    (publishes, pubrels)
}

/// What each subscriber of [`inflight_survives_a_restart`] left unfinished: a QoS 1 and a
/// QoS 2 PUBLISH it never acknowledged, and the id of a QoS 2 message it sent PUBREC for.
struct Unfinished {
    qos1: Publish,
    qos2: Publish,
    pubrec_sent: PacketId,
}

/// Receives the three messages of [`inflight_survives_a_restart`] and leaves them unfinished.
fn leave_unfinished(sub: &mut RawClient) -> Unfinished {
    let qos1 = sub.recv_publish_no_ack();
    let qos2 = sub.recv_publish_no_ack();
    let third = sub.recv_publish_no_ack();
    assert_eq!(
        [text(&qos1), text(&qos2), text(&third)],
        ["qos1 unacked", "qos2 unacked", "qos2 with pubrec"]
    );
    let pubrec_sent = third.packet_id.expect("QoS 2 has a packet id");
    sub.send(&Packet::PubRec(Ack::new(pubrec_sent)));
    sub.expect_ack("PUBREL", pubrec_sent);
    Unfinished {
        qos1,
        qos2,
        pubrec_sent,
    }
}

/// Checks what `sub` gets on resume against what it left unfinished, then finishes it all.
fn check_resent_and_finish(sub: &mut RawClient, id: &str, before: &Unfinished) {
    let (publishes, pubrels) = resent(sub, id, 3);
    // [MQTT-4.4.0-1]: unacknowledged PUBLISH packets are resent with their original packet
    // ids, DUP set [MQTT-3.3.1-1], in their original order [MQTT-4.6.0-1] ...
    assert_eq!(publishes.len(), 2, "{id}: resent {publishes:?}");
    for (again, first) in publishes.iter().zip([&before.qos1, &before.qos2]) {
        assert_eq!(
            (text(again), again.qos, again.packet_id, again.dup),
            (text(first), first.qos, first.packet_id, true),
            "{id}"
        );
    }
    // ... and for the message that got its PUBREC, PUBREL, not the PUBLISH again.
    assert_eq!(pubrels, vec![before.pubrec_sent], "{id}");
    let qos1_id = before.qos1.packet_id.expect("QoS 1 has a packet id");
    let qos2_id = before.qos2.packet_id.expect("QoS 2 has a packet id");
    sub.send(&Packet::PubAck(Ack::new(qos1_id)));
    sub.send(&Packet::PubRec(Ack::new(qos2_id)));
    sub.expect_ack("PUBREL", qos2_id);
    sub.send(&Packet::PubComp(Ack::new(qos2_id)));
    sub.send(&Packet::PubComp(Ack::new(before.pubrec_sent)));
}

fn inflight_survives_a_restart(name: &str, shards: usize) {
    let dir = TempDir::new(name);
    let sessions = [
        ("inflight-311", persistent_v311("inflight-311")),
        ("inflight-5", persistent_v5("inflight-5")),
    ];
    let broker = start_persistent(dir.path(), shards);
    let mut subs = Vec::new();
    for (i, (_, opts)) in sessions.iter().enumerate() {
        let mut sub = RawClient::connected(broker.shard(2 * i), opts.clone());
        sub.subscribe(&[("inflight/#", QoS::ExactlyOnce)]);
        subs.push(sub);
    }
    let mut publisher = RawClient::connected(broker.shard(1), ConnectOpts::v311("pub"));
    publisher.publish("inflight/a", b"qos1 unacked", QoS::AtLeastOnce, false);
    publisher.publish("inflight/b", b"qos2 unacked", QoS::ExactlyOnce, false);
    publisher.publish("inflight/c", b"qos2 with pubrec", QoS::ExactlyOnce, false);
    let unfinished: Vec<Unfinished> = subs.iter_mut().map(leave_unfinished).collect();
    broker.shutdown();
    subs.into_iter().for_each(closed_by_shutdown);

    let broker = start_persistent(dir.path(), shards);
    let mut subs = Vec::new();
    for (i, ((id, opts), before)) in sessions.iter().zip(&unfinished).enumerate() {
        let mut sub = resume(broker.shard(2 * i), opts.clone());
        check_resent_and_finish(&mut sub, id, before);
        subs.push(sub);
    }
    // After PUBACK and PUBCOMP nothing more comes ...
    let mut publisher = RawClient::connected(broker.shard(1), ConnectOpts::v311("pub"));
    assert_next_is_sentinel(&mut subs, &mut publisher, "inflight/end");
    subs.into_iter().for_each(RawClient::disconnect);
    broker.shutdown();

    // ... not even after one more restart: the acknowledgements were logged too.
    let broker = start_persistent(dir.path(), shards);
    let mut subs: Vec<RawClient> = sessions
        .iter()
        .enumerate()
        .map(|(i, (_, opts))| resume(broker.shard(2 * i + 1), opts.clone()))
        .collect();
    let mut publisher = RawClient::connected(broker.shard(0), ConnectOpts::v311("pub"));
    assert_next_is_sentinel(&mut subs, &mut publisher, "inflight/end-2");
    broker.shutdown();
}

/// [MQTT-4.4.0-1]: a subscriber's outbound inflight window survives a restart. QoS 1 and 2
/// PUBLISHes it did not acknowledge are resent with DUP and their packet ids; a QoS 2 message
/// it sent PUBREC for gets PUBREL; once all is acknowledged nothing is resent, even after
/// another restart. 3.1.1 and 5.0 subscribers connected through the shutdown; one shard.
#[test]
fn inflight_survives_a_restart_1_shard() {
    inflight_survives_a_restart("inflight-1", 1);
}

/// [`inflight_survives_a_restart_1_shard`] with three shards: subscribers on two shards, the
/// publisher on the third.
#[test]
fn inflight_survives_a_restart_3_shards() {
    inflight_survives_a_restart("inflight-3", 3);
}

/// Reads and acknowledges PUBLISH packets until one with payload `last`; returns the payloads.
fn payloads_until(client: &mut RawClient, last: &str) -> Vec<String> {
    let mut payloads = Vec::new();
    loop {
        let got = client.recv_publish();
        payloads.push(text(&got).to_owned());
        if text(&got) == last {
            return payloads;
        }
        assert!(payloads.len() < 100, "no {last:?} among {payloads:?}");
    }
}

/// A QoS 2 PUBLISH with packet id `id`.
fn qos2_with_id(topic: &str, payload: &[u8], id: u16) -> Publish {
    let mut publish = make_publish(topic, payload, QoS::ExactlyOnce, false);
    publish.packet_id = Some(packet_id(id));
    publish
}

fn inbound_qos2_survives_a_restart(name: &str, shards: usize, sender: ConnectOpts) {
    let dir = TempDir::new(name);
    let broker = start_persistent(dir.path(), shards);
    let mut watcher = RawClient::connected(broker.shard(2), persistent_v311("inbound-watcher"));
    watcher.subscribe(&[("inbound/#", QoS::ExactlyOnce)]);
    let mut client = RawClient::connected(broker.shard(0), sender.clone());
    let mut once = qos2_with_id("inbound/once", b"exactly once", 7);
    client.send(&Packet::Publish(once.clone()));
    let rec = client.recv_ack("PUBREC", packet_id(7));
    assert_eq!(rec.code, ReasonCode::SUCCESS);
    // Id 8 goes through the whole flow before the restart: it is free afterwards.
    client.publish_packet(qos2_with_id("inbound/released", b"released", 8));
    let mut received = payloads_until(&mut watcher, "released");
    // PINGRESP: the broker has read the watcher's last PUBCOMP before it stops.
    watcher.ping();
    broker.shutdown();
    drop((client, watcher));

    let broker = start_persistent(dir.path(), shards);
    let mut client = resume(broker.shard(1), sender);
    // [MQTT-4.3.3-9]/[MQTT-4.3.3-10] (5.0; [MQTT-4.3.3-2] 3.1.1): until PUBREL, a PUBLISH
    // with the same id is acknowledged again but not forwarded again, restart or not.
    once.dup = true;
    client.send(&Packet::Publish(once));
    let rec = client.recv_ack("PUBREC", packet_id(7));
    assert_eq!(rec.code, ReasonCode::SUCCESS);
    client.send(&Packet::PubRel(Ack::new(packet_id(7))));
    let comp = client.recv_ack("PUBCOMP", packet_id(7));
    // 0x92 Packet Identifier not found would mean the id was forgotten over the restart.
    assert_eq!(comp.code, ReasonCode::SUCCESS);
    // A new message reusing id 8, released before the restart, is a new message.
    client.publish_packet(qos2_with_id("inbound/reused", b"id 8 again", 8));
    client.publish("inbound/end", b"end", QoS::AtLeastOnce, false);
    let mut watcher = resume(broker.shard(0), persistent_v311("inbound-watcher"));
    received.extend(payloads_until(&mut watcher, "end"));
    let count = |payload: &str| received.iter().filter(|p| *p == payload).count();
    assert_eq!(count("exactly once"), 1, "{received:?}");
    assert_eq!(count("released"), 1, "{received:?}");
    assert_eq!(
        count("id 8 again"),
        1,
        "a new PUBLISH with a released id was taken for a duplicate: {received:?}"
    );
    broker.shutdown();
}

/// Inbound QoS 2 over a restart, 5.0: a PUBLISH id 7 that got PUBREC before the restart and
/// is resent with DUP after it gets PUBREC again and reaches the subscriber exactly once;
/// PUBREL 7 gets PUBCOMP 0x00, not 0x92; an id released before the restart is free. One shard.
#[test]
fn inbound_qos2_survives_a_restart_v5_1_shard() {
    inbound_qos2_survives_a_restart("inbound-v5-1", 1, persistent_v5("inbound-sender"));
}

/// [`inbound_qos2_survives_a_restart_v5_1_shard`] with three shards: the sender resumes on
/// another shard, the subscriber is on a third.
#[test]
fn inbound_qos2_survives_a_restart_v5_3_shards() {
    inbound_qos2_survives_a_restart("inbound-v5-3", 3, persistent_v5("inbound-sender"));
}

/// [`inbound_qos2_survives_a_restart_v5_3_shards`] with a 3.1.1 sender (Clean Session 0),
/// where only the exactly-once delivery shows the kept id.
#[test]
fn inbound_qos2_survives_a_restart_v311_3_shards() {
    inbound_qos2_survives_a_restart("inbound-v311-3", 3, persistent_v311("inbound-sender"));
}

/// A graceful shutdown right after a SUBACK keeps the subscription, every time: the last
/// writes before a shutdown are not lost, whatever the log writer was doing when it came.
/// Twenty quick restarts, one shard, the subscribing client still connected at shutdown.
#[test]
fn shutdown_right_after_a_suback_keeps_the_session_every_time() {
    let dir = TempDir::new("quick-restarts");
    for round in 0..20 {
        let broker = start_persistent(dir.path(), 1);
        let id = format!("quick-{round}");
        let mut client = RawClient::connected(broker.addr, persistent_v311(&id));
        client.subscribe(&[("quick/#", QoS::AtLeastOnce)]);
        broker.shutdown();
        drop(client);
        let broker = start_persistent(dir.path(), 1);
        let (_client, connack) = RawClient::connect(broker.addr, persistent_v311(&id));
        assert!(
            connack.session_present,
            "round {round}: the session was lost"
        );
        broker.shutdown();
    }
}

/// A graceful shutdown right after a PUBACK keeps the message for an offline session on
/// another shard, every time: what a publisher's shard acknowledged and still had on its way
/// to the subscriber's shard is not lost. Twenty quick restarts, three shards.
#[test]
fn shutdown_right_after_a_puback_keeps_the_message_queued_on_another_shard() {
    let dir = TempDir::new("quick-restarts-mesh");
    let broker = start_persistent(dir.path(), 3);
    let mut sub = RawClient::connected(broker.shard(0), persistent_v311("mesh-sub"));
    sub.subscribe(&[("mesh/#", QoS::AtLeastOnce)]);
    sub.disconnect();
    broker.shutdown();
    for round in 0..20 {
        let broker = start_persistent(dir.path(), 3);
        let mut publisher = RawClient::connected(broker.shard(1), ConnectOpts::v311("pub"));
        let payload = format!("round {round}");
        publisher.publish("mesh/x", payload.as_bytes(), QoS::AtLeastOnce, false);
        broker.shutdown();
        drop(publisher);
        let broker = start_persistent(dir.path(), 3);
        let mut sub = resume(broker.shard(0), persistent_v311("mesh-sub"));
        match sub.recv_timeout(common::RECV_TIMEOUT) {
            Some(Packet::Publish(got)) => {
                sub.ack(&got);
                assert_eq!(text(&got), payload);
            }
            other => panic!("round {round}: the acknowledged message is gone: {other:?}"),
        }
        sub.disconnect();
        broker.shutdown();
    }
}
