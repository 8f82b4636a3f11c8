//! QoS 1 and QoS 2 flows over real sockets, in both directions: acknowledgements, packet ids,
//! exactly-once routing of resent QoS 2 messages, the delivered QoS, and the inflight window.

mod common;

use std::time::Duration;

use common::{make_publish, packet_id, start_broker, text, ConnectOpts, RawClient};
use ringmq::codec::{Ack, Packet, Publish, QoS};

#[test]
fn qos1_puback_carries_the_publish_packet_id() {
    let broker = start_broker(|_| {});
    let mut publisher = RawClient::connected(broker.addr, ConnectOpts::v311("pub"));
    let id = packet_id(777);
    publisher.send(&Packet::Publish(Publish {
        packet_id: Some(id),
        ..make_publish("q1", b"x", QoS::AtLeastOnce, false)
    }));
    // [MQTT-4.3.2-2]: PUBACK carries the packet id of the PUBLISH.
    match publisher.recv() {
        Packet::PubAck(ack) => assert_eq!(ack.packet_id, id),
        other => panic!("expected PUBACK 777, got {other:?}"),
    }
}

#[test]
fn qos2_inbound_flow_is_pubrec_pubrel_pubcomp() {
    let broker = start_broker(|_| {});
    let mut subscriber = RawClient::connected(broker.addr, ConnectOpts::v311("sub"));
    subscriber.subscribe(&[("q2", QoS::ExactlyOnce)]);
    let mut publisher = RawClient::connected(broker.addr, ConnectOpts::v311("pub"));
    let id = packet_id(9);
    publisher.send(&Packet::Publish(Publish {
        packet_id: Some(id),
        ..make_publish("q2", b"exactly", QoS::ExactlyOnce, false)
    }));
    // [MQTT-4.3.3-2]/[MQTT-4.3.3-11]: PUBREC, then PUBCOMP for our PUBREL, same id throughout.
    match publisher.recv() {
        Packet::PubRec(ack) => assert_eq!(ack.packet_id, id),
        other => panic!("expected PUBREC 9, got {other:?}"),
    }
    publisher.send(&Packet::PubRel(Ack::new(id)));
    match publisher.recv() {
        Packet::PubComp(ack) => assert_eq!(ack.packet_id, id),
        other => panic!("expected PUBCOMP 9, got {other:?}"),
    }
    assert_eq!(text(&subscriber.recv_publish()), "exactly");
}

#[test]
fn qos2_outbound_flow_is_publish_pubrec_pubrel_pubcomp() {
    let broker = start_broker(|_| {});
    let mut subscriber = RawClient::connected(broker.addr, ConnectOpts::v311("sub"));
    subscriber.subscribe(&[("q2", QoS::ExactlyOnce)]);
    let mut publisher = RawClient::connected(broker.addr, ConnectOpts::v311("pub"));
    publisher.publish("q2", b"first", QoS::ExactlyOnce, false);

    let publish = subscriber.recv_publish_no_ack();
    assert_eq!((publish.qos, text(&publish)), (QoS::ExactlyOnce, "first"));
    let id = publish
        .packet_id
        .expect("[MQTT-2.3.1-5] QoS 2 PUBLISH has a packet id");
    subscriber.send(&Packet::PubRec(Ack::new(id)));
    // [MQTT-4.3.3-3]: the sender answers PUBREC with PUBREL carrying the same id.
    match subscriber.recv() {
        Packet::PubRel(ack) => assert_eq!(ack.packet_id, id),
        other => panic!("expected PUBREL {id}, got {other:?}"),
    }
    subscriber.send(&Packet::PubComp(Ack::new(id)));

    // After PUBCOMP the flow is complete and the next message flows the same way.
    publisher.publish("q2", b"second", QoS::ExactlyOnce, false);
    let next = subscriber.recv_publish();
    assert_eq!((next.qos, text(&next)), (QoS::ExactlyOnce, "second"));
}

#[test]
fn qos2_resend_before_pubrel_is_delivered_only_once() {
    let broker = start_broker(|_| {});
    let mut subscriber = RawClient::connected(broker.addr, ConnectOpts::v311("sub"));
    subscriber.subscribe(&[("q2/#", QoS::ExactlyOnce)]);
    let mut publisher = RawClient::connected(broker.addr, ConnectOpts::v311("pub"));
    let id = packet_id(5);
    let publish = Publish {
        packet_id: Some(id),
        ..make_publish("q2/once", b"once", QoS::ExactlyOnce, false)
    };
    publisher.send(&Packet::Publish(publish.clone()));
    publisher.expect_ack("PUBREC", id);
    // The publisher did not see the PUBREC in time and resends with DUP set [MQTT-4.3.3-1].
    publisher.send(&Packet::Publish(Publish {
        dup: true,
        ..publish
    }));
    publisher.expect_ack("PUBREC", id);
    publisher.send(&Packet::PubRel(Ack::new(id)));
    publisher.expect_ack("PUBCOMP", id);
    publisher.publish("q2/end", b"sentinel", QoS::AtMostOnce, false);

    // [MQTT-4.3.3-2]: the application message is delivered exactly once.
    assert_eq!(text(&subscriber.recv_publish()), "once");
    let next = subscriber.recv_publish();
    assert_eq!(
        next.topic.as_str(),
        "q2/end",
        "the resent QoS 2 message was routed twice"
    );
}

#[test]
fn delivered_qos_is_the_minimum_of_published_and_granted() {
    let broker = start_broker(|_| {});
    let levels = [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce];
    let mut subscribers: Vec<RawClient> = levels
        .iter()
        .map(|granted| {
            let mut sub =
                RawClient::connected(broker.addr, ConnectOpts::v311(&format!("sub-{granted:?}")));
            sub.subscribe(&[("levels", *granted)]);
            sub
        })
        .collect();
    let mut publisher = RawClient::connected(broker.addr, ConnectOpts::v311("pub"));
    for published in levels {
        publisher.publish(
            "levels",
            format!("{published:?}").as_bytes(),
            published,
            false,
        );
        for (subscriber, granted) in subscribers.iter_mut().zip(levels) {
            let got = subscriber.recv_publish();
            // [MQTT-3.8.4-6]: delivered at min(published, granted).
            assert_eq!(
                got.qos,
                published.min(granted),
                "published {published:?}, granted {granted:?}"
            );
            assert_eq!(text(&got), format!("{published:?}"));
        }
    }
}

#[test]
fn inflight_window_holds_back_messages_until_an_ack() {
    let broker = start_broker(|limits| limits.inflight_max = 3);
    let mut subscriber = RawClient::connected(broker.addr, ConnectOpts::v311("sub"));
    subscriber.subscribe(&[("window", QoS::AtLeastOnce)]);
    let mut publisher = RawClient::connected(broker.addr, ConnectOpts::v311("pub"));
    for i in 1..=4 {
        publisher.publish(
            "window",
            format!("m{i}").as_bytes(),
            QoS::AtLeastOnce,
            false,
        );
    }
    let first_three: Vec<Publish> = (0..3).map(|_| subscriber.recv_publish_no_ack()).collect();
    let payloads: Vec<&str> = first_three.iter().map(text).collect();
    assert_eq!(payloads, ["m1", "m2", "m3"]);
    // The window is full: the fourth waits in the session queue.
    subscriber.expect_silence(Duration::from_millis(300));
    subscriber.ack(&first_three[0]);
    let fourth = subscriber.recv_publish_no_ack();
    assert_eq!(text(&fourth), "m4");
    assert!(
        !first_three.iter().any(|p| p.packet_id == fourth.packet_id),
        "packet id reused while in flight"
    );
}

/// Flow control: a publisher far faster than its subscriber is slowed down, not dropped for.
/// The queue holds 100, the publisher pipelines 3,000 QoS 1 messages without waiting; every one
/// arrives, in order. (On 3 shards the publisher and subscriber may sit on different shards.)
#[test]
fn a_fast_publisher_is_throttled_instead_of_overflowing_a_slow_subscriber() {
    const COUNT: usize = 3_000;
    let broker = start_broker(|limits| {
        limits.inflight_max = 10;
        limits.queued_messages_max = 100;
    });
    let mut sub = RawClient::connected(broker.addr, ConnectOpts::v311("slow"));
    sub.subscribe(&[("flow", QoS::AtLeastOnce)]);
    let addr = broker.addr;
    let publisher = std::thread::spawn(move || {
        let mut publisher = RawClient::connected(addr, ConnectOpts::v311("fast"));
        publisher.publish_qos1_pipelined("flow", (0..COUNT).map(|n| n.to_string()));
    });
    for n in 0..COUNT {
        if n % 100 == 0 {
            // A subscriber that is slower than the publisher, but not stalled.
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        assert_eq!(text(&sub.recv_publish()), n.to_string());
    }
    publisher.join().expect("publisher thread");
}

/// Flow control with many publishers: 50 publishers each pipeline 100 QoS 1 messages at one
/// subscriber whose queue holds 100. Each publisher is paused as it feeds the congested queue;
/// nothing is dropped, and each publisher's messages arrive in order.
#[test]
fn many_publishers_fanning_in_to_a_slow_subscriber_lose_nothing() {
    const PUBLISHERS: usize = 50;
    const EACH: usize = 100;
    let broker = start_broker(|limits| {
        limits.inflight_max = 10;
        limits.queued_messages_max = 100;
    });
    let mut sub = RawClient::connected(broker.addr, ConnectOpts::v311("sink"));
    sub.subscribe(&[("in/+", QoS::AtLeastOnce)]);
    let addr = broker.addr;
    let publishers: Vec<_> = (0..PUBLISHERS)
        .map(|p| {
            std::thread::spawn(move || {
                let mut publisher = RawClient::connected(addr, ConnectOpts::v311(&format!("p{p}")));
                let payloads = (0..EACH).map(|n| format!("{p}:{n}"));
                publisher.publish_qos1_pipelined(&format!("in/{p}"), payloads);
            })
        })
        .collect();
    let mut next = [0usize; PUBLISHERS];
    for _ in 0..PUBLISHERS * EACH {
        let got = sub.recv_publish();
        let (p, n) = text(&got).split_once(':').expect("p:n payload");
        let (p, n): (usize, usize) = (p.parse().expect("publisher"), n.parse().expect("sequence"));
        assert_eq!(n, next[p], "publisher {p} out of order");
        next[p] += 1;
    }
    for publisher in publishers {
        publisher.join().expect("publisher thread");
    }
}

/// A subscriber at `qos` that has been sent one message and has not acknowledged it yet: the
/// message's packet id is in flight. Returns the client and that id.
fn with_one_in_flight(
    addr: std::net::SocketAddr,
    opts: ConnectOpts,
    qos: QoS,
) -> (RawClient, ringmq::codec::PacketId) {
    let mut subscriber = RawClient::connected(addr, opts);
    subscriber.subscribe(&[("inflight", qos)]);
    let mut publisher = RawClient::connected(addr, ConnectOpts::v311("inflight-pub"));
    publisher.publish("inflight", b"x", qos, false);
    let publish = subscriber.recv_publish_no_ack();
    let id = publish.packet_id.expect("QoS > 0 has a packet id");
    (subscriber, id)
}

/// Makes an acknowledgement packet of one kind.
type AckOf = fn(Ack) -> Packet;

/// The acknowledgements of the other QoS's flow, for an outbound message at each QoS.
fn wrong_kind_acks() -> [(QoS, AckOf); 3] {
    [
        (QoS::AtLeastOnce, Packet::PubRec),
        (QoS::AtLeastOnce, Packet::PubComp),
        (QoS::ExactlyOnce, Packet::PubAck),
    ]
}

#[test]
fn acknowledgement_of_the_wrong_kind_for_a_packet_id_in_flight_is_closed() {
    let broker = start_broker(|_| {});
    for (qos, wrong) in wrong_kind_acks() {
        let opts = ConnectOpts::v311("wrong-ack");
        let (mut subscriber, id) = with_one_in_flight(broker.addr, opts, qos);
        let ack = wrong(Ack::new(id));
        subscriber.send(&ack);
        // A QoS 1 message is answered by PUBACK [MQTT-4.3.2], a QoS 2 one by PUBREC and
        // PUBCOMP [MQTT-4.3.3]: the other kind is a protocol violation, closed in 3.1.1.
        assert_eq!(
            subscriber.expect_closed(common::CLOSE_TIMEOUT),
            None,
            "{ack:?}"
        );
    }
}

#[test]
fn acknowledgement_for_a_packet_id_not_in_flight_is_ignored() {
    let broker = start_broker(|_| {});
    let (mut subscriber, id) =
        with_one_in_flight(broker.addr, ConnectOpts::v311("late"), QoS::AtLeastOnce);
    subscriber.send(&Packet::PubAck(Ack::new(id)));
    // A second PUBACK, and a PUBCOMP, for an id no longer in flight: late duplicates.
    subscriber.send(&Packet::PubAck(Ack::new(id)));
    subscriber.send(&Packet::PubComp(Ack::new(id)));
    subscriber.ping();
}
