//! MQTT 5.0 flow control over real sockets: the client's Receive Maximum bounds what the
//! broker sends unacknowledged, the broker's Receive Maximum bounds what a client may leave
//! unreleased, and the client's Maximum Packet Size makes the broker drop what would not fit.

mod common;

use std::collections::VecDeque;
use std::time::Duration;

use common::{
    make_publish, rumqttc5_client, rumqttc5_wait, start_broker, start_broker_with, text,
    ConnectOpts, RawClient,
};
use ringmq::codec::{Ack, Packet, Publish, QoS, ReasonCode};

/// A QoS 2 PUBLISH with packet id `id`, sent without completing its flow.
fn send_qos2(client: &mut RawClient, id: u16, payload: &str) {
    let publish = Publish {
        packet_id: Some(common::packet_id(id)),
        ..make_publish("inbound", payload.as_bytes(), QoS::ExactlyOnce, false)
    };
    client.send(&Packet::Publish(publish));
}

#[test]
fn client_receive_maximum_bounds_unacknowledged_qos1_publishes() {
    let broker = start_broker(|_| {});
    let opts = ConnectOpts::v5("slow").props(|p| p.receive_maximum = Some(2));
    let mut sub = RawClient::connected(broker.addr, opts);
    sub.subscribe(&[("flow", QoS::AtLeastOnce)]);
    let mut publisher = RawClient::connected(broker.addr, ConnectOpts::v5("pub"));
    for n in 0..5 {
        publisher.publish("flow", n.to_string().as_bytes(), QoS::AtLeastOnce, false);
    }
    // [MQTT-3.3.4-9]: at most Receive Maximum unacknowledged QoS 1/2 PUBLISH packets.
    let mut outstanding: VecDeque<Publish> = (0..2).map(|_| sub.recv_publish_no_ack()).collect();
    sub.expect_silence(Duration::from_millis(300));
    let mut delivered = Vec::new();
    while let Some(oldest) = outstanding.pop_front() {
        delivered.push(text(&oldest).to_owned());
        sub.ack(&oldest);
        // Each PUBACK frees exactly one slot (4.9, send quota).
        if delivered.len() + outstanding.len() < 5 {
            outstanding.push_back(sub.recv_publish_no_ack());
            sub.expect_silence(Duration::from_millis(100));
        }
    }
    assert_eq!(delivered, ["0", "1", "2", "3", "4"], "all five, in order");
    sub.expect_silence(Duration::from_millis(100));
}

#[test]
fn client_receive_maximum_counts_a_qos2_message_until_pubcomp() {
    let broker = start_broker(|_| {});
    let opts = ConnectOpts::v5("slow2").props(|p| p.receive_maximum = Some(1));
    let mut sub = RawClient::connected(broker.addr, opts);
    sub.subscribe(&[("flow2", QoS::ExactlyOnce)]);
    let mut publisher = RawClient::connected(broker.addr, ConnectOpts::v5("pub"));
    publisher.publish("flow2", b"first", QoS::ExactlyOnce, false);
    publisher.publish("flow2", b"second", QoS::ExactlyOnce, false);
    let first = sub.recv_publish_no_ack();
    assert_eq!(text(&first), "first");
    let id = first.packet_id.expect("QoS 2");
    sub.expect_silence(Duration::from_millis(300));
    // A successful PUBREC does not free the slot; PUBCOMP does [MQTT-3.3.4-9], 4.9.
    sub.send(&Packet::PubRec(Ack::new(id)));
    sub.expect_ack("PUBREL", id);
    sub.expect_silence(Duration::from_millis(300));
    sub.send(&Packet::PubComp(Ack::new(id)));
    assert_eq!(text(&sub.recv_publish()), "second");
}

#[test]
fn more_unreleased_qos2_than_server_receive_maximum_gets_disconnect_0x93() {
    let broker = start_broker_with(|c| c.protocol.receive_maximum = 2);
    let (mut client, connack) = RawClient::connect(broker.addr, ConnectOpts::v5("eager"));
    assert_eq!(connack.properties.receive_maximum, Some(2));
    send_qos2(&mut client, 1, "a");
    send_qos2(&mut client, 2, "b");
    client.expect_ack("PUBREC", common::packet_id(1));
    client.expect_ack("PUBREC", common::packet_id(2));
    // 3.3.4: one more than Receive Maximum before PUBCOMP is 0x93.
    send_qos2(&mut client, 3, "c");
    client.expect_disconnect(ReasonCode::RECEIVE_MAXIMUM_EXCEEDED);
}

#[test]
fn pubrel_frees_a_slot_of_the_server_receive_maximum() {
    let broker = start_broker_with(|c| c.protocol.receive_maximum = 2);
    let mut sub = RawClient::connected(broker.addr, ConnectOpts::v5("sub"));
    sub.subscribe(&[("inbound", QoS::AtLeastOnce)]);
    let mut client = RawClient::connected(broker.addr, ConnectOpts::v5("careful"));
    send_qos2(&mut client, 1, "a");
    send_qos2(&mut client, 2, "b");
    client.expect_ack("PUBREC", common::packet_id(1));
    client.expect_ack("PUBREC", common::packet_id(2));
    client.send(&Packet::PubRel(Ack::new(common::packet_id(1))));
    client.expect_ack("PUBCOMP", common::packet_id(1));
    send_qos2(&mut client, 3, "c");
    let rec = client.recv_ack("PUBREC", common::packet_id(3));
    assert_eq!(rec.code, ReasonCode::SUCCESS);
    for id in [2, 3] {
        client.send(&Packet::PubRel(Ack::new(common::packet_id(id))));
        client.expect_ack("PUBCOMP", common::packet_id(id));
    }
    client.ping();
    let got: Vec<String> = (0..3)
        .map(|_| text(&sub.recv_publish()).to_owned())
        .collect();
    assert_eq!(got, ["a", "b", "c"]);
}

#[test]
fn pipelined_qos1_does_not_count_against_the_server_receive_maximum() {
    // QoS 1 is acknowledged as it is read (`ProtocolOptions::receive_maximum`).
    let broker = start_broker_with(|c| c.protocol.receive_maximum = 2);
    let mut client = RawClient::connected(broker.addr, ConnectOpts::v5("pipeline"));
    let ids: Vec<_> = (0..10).map(|_| client.next_packet_id()).collect();
    for id in &ids {
        let publish = Publish {
            packet_id: Some(*id),
            ..make_publish("q1", b"x", QoS::AtLeastOnce, false)
        };
        client.send(&Packet::Publish(publish));
    }
    for id in ids {
        client.expect_ack("PUBACK", id);
    }
    client.ping();
}

#[test]
fn messages_larger_than_the_client_maximum_packet_size_are_dropped() {
    let broker = start_broker(|_| {});
    let opts = ConnectOpts::v5("tiny").props(|p| p.maximum_packet_size = Some(100));
    let mut sub = RawClient::connected(broker.addr, opts);
    sub.subscribe(&[("size/#", QoS::AtLeastOnce)]);
    let mut publisher = RawClient::connected(broker.addr, ConnectOpts::v5("pub"));
    let big = [b'x'; 500];
    publisher.publish("size/a", &[b's'; 20], QoS::AtMostOnce, false);
    publisher.publish("size/a", &big, QoS::AtMostOnce, false);
    publisher.publish("size/a", &big, QoS::AtLeastOnce, false);
    publisher.publish("size/a", b"after", QoS::AtLeastOnce, false);
    // [MQTT-3.1.2-24]: nothing over 100 bytes is sent; [MQTT-3.1.2-25]: it is dropped as if
    // delivered, and what follows still flows.
    assert_eq!(sub.recv_publish().payload.len(), 20);
    assert_eq!(text(&sub.recv_publish()), "after");
    sub.expect_silence(Duration::from_millis(300));
}

#[test]
fn qos1_dropped_for_size_is_not_redelivered_on_resume() {
    let broker = start_broker(|_| {});
    let opts = ConnectOpts::v5("tiny")
        .clean(false)
        .session_expiry(60)
        .props(|p| p.maximum_packet_size = Some(100));
    let mut sub = RawClient::connected(broker.addr, opts.clone());
    sub.subscribe(&[("size", QoS::AtLeastOnce)]);
    let mut publisher = RawClient::connected(broker.addr, ConnectOpts::v5("pub"));
    publisher.publish("size", &[b'x'; 500], QoS::AtLeastOnce, false);
    publisher.publish("size", b"small", QoS::AtLeastOnce, false);
    assert_eq!(text(&sub.recv_publish()), "small");
    drop(sub);
    let (mut sub, connack) = RawClient::connect(broker.addr, opts);
    assert!(connack.session_present);
    // [MQTT-3.1.2-25]: "as if it had completed sending": nothing left to resend.
    sub.expect_silence(Duration::from_millis(500));
}

/// Reads `$SYS/broker/publish/messages/dropped` updates until one is at least `at_least`;
/// returns the value. Bounded by a few `$SYS` intervals (1 s in tests).
fn wait_for_dropped(sys: &mut RawClient, at_least: u64) -> u64 {
    for _ in 0..5 {
        let update = sys.recv_publish();
        let value: u64 = text(&update).trim().parse().expect("a number");
        if value >= at_least {
            return value;
        }
    }
    panic!("$SYS/broker/publish/messages/dropped stayed below {at_least}");
}

#[test]
fn dropped_for_size_counts_in_sys_publish_messages_dropped() {
    let broker = start_broker_with(|c| c.sys_interval_s = 1);
    let mut sys = RawClient::connected(broker.addr, ConnectOpts::v311("sys"));
    sys.subscribe(&[("$SYS/broker/publish/messages/dropped", QoS::AtMostOnce)]);
    let before = wait_for_dropped(&mut sys, 0);
    let opts = ConnectOpts::v5("tiny").props(|p| p.maximum_packet_size = Some(100));
    let mut sub = RawClient::connected(broker.addr, opts);
    sub.subscribe(&[("size", QoS::AtLeastOnce)]);
    let mut publisher = RawClient::connected(broker.addr, ConnectOpts::v5("pub"));
    publisher.publish("size", &[b'x'; 500], QoS::AtLeastOnce, false);
    publisher.publish("size", b"small", QoS::AtLeastOnce, false);
    assert_eq!(text(&sub.recv_publish()), "small");
    wait_for_dropped(&mut sys, before + 1);
}

#[test]
fn rumqttc_v5_with_a_small_maximum_packet_size_is_never_sent_a_larger_packet() {
    use rumqttc::v5::mqttbytes::v5::Packet as V5Packet;
    let broker = start_broker(|_| {});
    // rumqttc fails the connection on an incoming packet over its Maximum Packet Size.
    let (client, mut connection) = rumqttc5_client(broker.addr, "rumqttc-small", |o| {
        o.set_max_packet_size(Some(200));
    });
    client
        .subscribe("size/#", rumqttc::v5::mqttbytes::QoS::AtLeastOnce)
        .expect("queue SUBSCRIBE");
    rumqttc5_wait(&mut connection, "SUBACK", |p| {
        matches!(p, V5Packet::SubAck(_)).then_some(())
    });
    let mut publisher = RawClient::connected(broker.addr, ConnectOpts::v5("pub"));
    publisher.publish("size/big", &[b'x'; 500], QoS::AtLeastOnce, false);
    publisher.publish("size/small", b"fits", QoS::AtLeastOnce, false);
    let got = rumqttc5_wait(&mut connection, "PUBLISH", |p| match p {
        V5Packet::Publish(publish) => Some(publish.clone()),
        _ => None,
    });
    assert_eq!(
        (&got.topic[..], &got.payload[..]),
        (&b"size/small"[..], &b"fits"[..])
    );
}

/// Makes an acknowledgement packet of one kind.
type AckOf = fn(Ack) -> Packet;

#[test]
fn acknowledgement_of_the_wrong_kind_for_a_packet_id_in_flight_gets_disconnect_0x82() {
    let broker = start_broker(|_| {});
    let wrong_kind: [(QoS, AckOf); 3] = [
        (QoS::AtLeastOnce, Packet::PubRec),
        (QoS::AtLeastOnce, Packet::PubComp),
        (QoS::ExactlyOnce, Packet::PubAck),
    ];
    for (qos, wrong) in wrong_kind {
        let mut subscriber = RawClient::connected(broker.addr, ConnectOpts::v5("wrong-ack"));
        subscriber.subscribe(&[("inflight", qos)]);
        let mut publisher = RawClient::connected(broker.addr, ConnectOpts::v5("wrong-ack-pub"));
        publisher.publish("inflight", b"x", qos, false);
        let publish = subscriber.recv_publish_no_ack();
        let id = publish.packet_id.expect("QoS > 0 has a packet id");
        subscriber.send(&wrong(Ack::new(id)));
        // [MQTT-4.3.2] [MQTT-4.3.3]: the other QoS's ack is a Protocol Error (4.13).
        subscriber.expect_disconnect(ReasonCode::PROTOCOL_ERROR);
    }
}
