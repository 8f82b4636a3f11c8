//! PUBLISH, SUBSCRIBE and UNSUBSCRIBE over real sockets: matching, wildcards, `$`-topics,
//! overlapping subscriptions, ordering, mixed protocol levels, and rumqttc as a peer.
//!
//! "Not delivered" is shown with a sentinel: after the message that must not arrive, the same
//! publisher sends one that must, and the subscriber's next packet has to be the sentinel
//! (messages from one publisher keep their order [MQTT-4.6.0-5]).

mod common;

use ringmq::codec::PropertyValues;
use std::thread;

use bytes::Bytes;
use common::{
    make_publish, rumqttc_client, rumqttc_wait, start_broker, text, ConnectOpts, RawClient,
    CLOSE_TIMEOUT,
};
use ringmq::codec::{ByteStr, Packet, PacketId, Properties, Publish, QoS, ReasonCode, Unsubscribe};

#[test]
fn qos0_message_reaches_the_subscriber() {
    let broker = start_broker(|_| {});
    let mut subscriber = RawClient::connected(broker.addr, ConnectOpts::v311("sub"));
    let suback = subscriber.subscribe(&[("sensors/temp", QoS::AtMostOnce)]);
    assert_eq!(suback.codes, vec![ReasonCode::GRANTED_QOS_0]);
    let mut publisher = RawClient::connected(broker.addr, ConnectOpts::v311("pub"));
    publisher.publish("sensors/temp", b"21.5", QoS::AtMostOnce, false);
    let got = subscriber.recv_publish();
    assert_eq!(
        (got.topic.as_str(), text(&got), got.qos),
        ("sensors/temp", "21.5", QoS::AtMostOnce)
    );
    assert!(!got.retain && !got.dup);
}

#[test]
fn single_level_wildcard_matches_exactly_one_level() {
    let broker = start_broker(|_| {});
    let mut subscriber = RawClient::connected(broker.addr, ConnectOpts::v311("sub"));
    subscriber.subscribe(&[("a/+/c", QoS::AtMostOnce)]);
    let mut publisher = RawClient::connected(broker.addr, ConnectOpts::v311("pub"));
    for topic in [
        "a/b/c", "a/b/c/d", "a/c", "a/b/x", "a//c", "x/b/c", "a/zz/c",
    ] {
        publisher.publish(topic, topic.as_bytes(), QoS::AtMostOnce, false);
    }
    // [MQTT-4.7.1-3]: `+` matches one whole level, including an empty one.
    for expected in ["a/b/c", "a//c", "a/zz/c"] {
        assert_eq!(subscriber.recv_publish().topic.as_str(), expected);
    }
}

#[test]
fn multi_level_wildcard_matches_the_parent_and_every_child() {
    let broker = start_broker(|_| {});
    let mut subscriber = RawClient::connected(broker.addr, ConnectOpts::v311("sub"));
    subscriber.subscribe(&[("a/#", QoS::AtMostOnce)]);
    let mut publisher = RawClient::connected(broker.addr, ConnectOpts::v311("pub"));
    for topic in ["a", "b/a", "a/b", "ab", "a/b/c/d", "a/end"] {
        publisher.publish(topic, b"x", QoS::AtMostOnce, false);
    }
    // 3.1.1 section 4.7.1.2: `a/#` matches `a` itself as well as everything below it.
    for expected in ["a", "a/b", "a/b/c/d", "a/end"] {
        assert_eq!(subscriber.recv_publish().topic.as_str(), expected);
    }
}

#[test]
fn hash_does_not_match_sys_topics() {
    let broker = start_broker(|_| {});
    let mut subscriber = RawClient::connected(broker.addr, ConnectOpts::v311("sub"));
    subscriber.subscribe(&[("#", QoS::AtMostOnce)]);
    subscriber.subscribe(&[("$SYS/broker/version", QoS::AtMostOnce)]);
    // Wait for a live `$SYS` update (retain 0; the retained copy may come first). Every `$SYS`
    // topic is published in the same tick, so any that `#` wrongly matched would arrive too.
    loop {
        let got = subscriber.recv_publish();
        assert_eq!(
            got.topic.as_str(),
            "$SYS/broker/version",
            "[MQTT-4.7.2-1] `#` matched {got:?}"
        );
        if !got.retain {
            break;
        }
    }
    subscriber.publish("after/sys", b"sentinel", QoS::AtMostOnce, false);
    let got = subscriber.recv_publish();
    assert_eq!(
        got.topic.as_str(),
        "after/sys",
        "[MQTT-4.7.2-1] `#` matched {got:?}"
    );
}

#[test]
fn overlapping_subscriptions_deliver_one_copy_at_the_highest_granted_qos() {
    let broker = start_broker(|_| {});
    let mut subscriber = RawClient::connected(broker.addr, ConnectOpts::v311("sub"));
    subscriber.subscribe(&[("home/+", QoS::AtMostOnce), ("home/#", QoS::AtLeastOnce)]);
    let mut publisher = RawClient::connected(broker.addr, ConnectOpts::v311("pub"));
    publisher.publish("home/kitchen", b"one", QoS::ExactlyOnce, false);
    publisher.publish("home/end", b"sentinel", QoS::AtMostOnce, false);
    // [MQTT-3.3.5-1]: one copy, at the maximum QoS of the matching subscriptions.
    let got = subscriber.recv_publish();
    assert_eq!(
        (got.topic.as_str(), got.qos),
        ("home/kitchen", QoS::AtLeastOnce)
    );
    let got = subscriber.recv_publish();
    assert_eq!(
        got.topic.as_str(),
        "home/end",
        "a second copy arrived: {got:?}"
    );
}

#[test]
fn invalid_filter_gets_0x80_while_the_other_filters_succeed() {
    let broker = start_broker(|_| {});
    let mut subscriber = RawClient::connected(broker.addr, ConnectOpts::v311("sub"));
    let suback = subscriber.subscribe(&[
        ("ok/one", QoS::AtLeastOnce),
        ("a/#/b", QoS::AtLeastOnce),
        ("ok/two", QoS::ExactlyOnce),
    ]);
    // [MQTT-4.7.1-2]: `#` must be last; 3.1.1 section 3.9.3: 0x80 for that entry alone.
    assert_eq!(
        suback.codes,
        vec![
            ReasonCode::GRANTED_QOS_1,
            ReasonCode(0x80),
            ReasonCode::GRANTED_QOS_2
        ]
    );
    let mut publisher = RawClient::connected(broker.addr, ConnectOpts::v311("pub"));
    publisher.publish("ok/two", b"x", QoS::AtLeastOnce, false);
    assert_eq!(subscriber.recv_publish().topic.as_str(), "ok/two");
}

#[test]
fn unsubscribe_stops_delivery_and_unsuback_echoes_the_packet_id() {
    let broker = start_broker(|_| {});
    let mut subscriber = RawClient::connected(broker.addr, ConnectOpts::v311("sub"));
    subscriber.subscribe(&[("news", QoS::AtMostOnce), ("control", QoS::AtMostOnce)]);
    let id = PacketId::new(4242).expect("non-zero");
    subscriber.send(&Packet::Unsubscribe(Unsubscribe {
        packet_id: id,
        properties: Properties::default(),
        filters: vec![ByteStr::from("news")],
    }));
    // [MQTT-3.10.4-4]: UNSUBACK carries the UNSUBSCRIBE's packet id.
    match subscriber.recv() {
        Packet::UnsubAck(ack) => assert_eq!(ack.packet_id, id),
        other => panic!("expected UNSUBACK, got {other:?}"),
    }
    let mut publisher = RawClient::connected(broker.addr, ConnectOpts::v311("pub"));
    publisher.publish("news", b"not for you", QoS::AtMostOnce, false);
    publisher.publish("control", b"sentinel", QoS::AtMostOnce, false);
    // [MQTT-3.10.4-2]: no new messages for the removed subscription.
    assert_eq!(subscriber.recv_publish().topic.as_str(), "control");
}

#[test]
fn publish_to_a_topic_with_a_wildcard_closes_the_connection() {
    let broker = start_broker(|_| {});
    let mut subscriber = RawClient::connected(broker.addr, ConnectOpts::v311("sub"));
    subscriber.subscribe(&[("#", QoS::AtMostOnce)]);
    let mut publisher = RawClient::connected(broker.addr, ConnectOpts::v311("pub"));
    publisher.send(&Packet::Publish(make_publish(
        "a/+",
        b"bad",
        QoS::AtMostOnce,
        false,
    )));
    // [MQTT-3.3.2-2]: a topic name must not contain wildcards.
    publisher.expect_closed(CLOSE_TIMEOUT);
    let mut other = RawClient::connected(broker.addr, ConnectOpts::v311("other"));
    other.publish("a/ok", b"sentinel", QoS::AtMostOnce, false);
    assert_eq!(
        subscriber.recv_publish().topic.as_str(),
        "a/ok",
        "the wildcard PUBLISH was routed"
    );
}

/// Publishes 1,000 numbered messages at `qos` from one client and checks that the subscriber
/// sees them in order [MQTT-4.6.0-5].
fn order_is_preserved(qos: QoS) {
    const COUNT: usize = 1000;
    let broker = start_broker(|_| {});
    let mut subscriber = RawClient::connected(broker.addr, ConnectOpts::v311("sub"));
    subscriber.subscribe(&[("ordered", qos)]);
    let addr = broker.addr;
    let publishing = thread::spawn(move || {
        let mut publisher = RawClient::connected(addr, ConnectOpts::v311("pub"));
        for i in 0..COUNT {
            publisher.publish("ordered", i.to_string().as_bytes(), qos, false);
        }
        publisher
    });
    for i in 0..COUNT {
        let got = subscriber.recv_publish();
        assert_eq!(text(&got), i.to_string(), "message {i} out of order");
        assert_eq!(got.qos, qos);
    }
    publishing.join().expect("publisher thread");
}

#[test]
fn qos0_order_is_preserved_for_1000_messages() {
    order_is_preserved(QoS::AtMostOnce);
}

#[test]
fn qos1_order_is_preserved_for_1000_messages() {
    order_is_preserved(QoS::AtLeastOnce);
}

#[test]
fn v311_and_v5_subscribers_both_receive_and_v5_keeps_user_properties() {
    let broker = start_broker(|_| {});
    let mut old = RawClient::connected(broker.addr, ConnectOpts::v311("sub-311"));
    old.subscribe(&[("mixed", QoS::AtLeastOnce)]);
    let mut new = RawClient::connected(broker.addr, ConnectOpts::v5("sub-5"));
    new.subscribe(&[("mixed", QoS::AtLeastOnce)]);
    let user_properties = vec![
        (ByteStr::from("k"), ByteStr::from("v1")),
        (ByteStr::from("a"), ByteStr::from("b")),
        (ByteStr::from("k"), ByteStr::from("v2")),
    ];
    let mut publisher = RawClient::connected(broker.addr, ConnectOpts::v5("pub-5"));
    publisher.publish_packet(Publish {
        properties: Properties::from(PropertyValues {
            user_properties: user_properties.clone(),
            ..Default::default()
        }),
        ..make_publish("mixed", b"both", QoS::AtLeastOnce, false)
    });
    // [MQTT-3.3.2-17]/[MQTT-3.3.2-18]: user properties are forwarded unaltered and in order.
    let got = new.recv_publish();
    assert_eq!(text(&got), "both");
    assert_eq!(got.properties.user_properties, user_properties);
    // The 3.1.1 subscriber gets a packet its level can decode, without properties.
    let got = old.recv_publish();
    assert_eq!(text(&got), "both");
    assert!(got.properties.is_empty());
}

#[test]
fn rumqttc_publisher_reaches_a_raw_subscriber() {
    let broker = start_broker(|_| {});
    let mut subscriber = RawClient::connected(broker.addr, ConnectOpts::v311("raw-sub"));
    subscriber.subscribe(&[("from/rumqttc", QoS::ExactlyOnce)]);
    let (client, mut connection) = rumqttc_client(broker.addr, "rumqttc-pub", true);
    for (qos, payload) in [
        (rumqttc::QoS::AtMostOnce, "zero"),
        (rumqttc::QoS::AtLeastOnce, "one"),
        (rumqttc::QoS::ExactlyOnce, "two"),
    ] {
        client
            .publish("from/rumqttc", qos, false, payload)
            .expect("queue PUBLISH");
    }
    rumqttc_wait(&mut connection, "PUBCOMP", |p| {
        matches!(p, rumqttc::Packet::PubComp(_)).then_some(())
    });
    for (qos, payload) in [
        (QoS::AtMostOnce, "zero"),
        (QoS::AtLeastOnce, "one"),
        (QoS::ExactlyOnce, "two"),
    ] {
        let got = subscriber.recv_publish();
        assert_eq!((text(&got), got.qos), (payload, qos));
    }
}

#[test]
fn raw_publisher_reaches_a_rumqttc_subscriber() {
    let broker = start_broker(|_| {});
    let (client, mut connection) = rumqttc_client(broker.addr, "rumqttc-sub", true);
    client
        .subscribe("to/rumqttc/#", rumqttc::QoS::ExactlyOnce)
        .expect("queue SUBSCRIBE");
    let codes = rumqttc_wait(&mut connection, "SUBACK", |p| match p {
        rumqttc::Packet::SubAck(ack) => Some(ack.return_codes.clone()),
        _ => None,
    });
    assert_eq!(
        codes,
        vec![rumqttc::SubscribeReasonCode::Success(
            rumqttc::QoS::ExactlyOnce
        )]
    );
    let mut publisher = RawClient::connected(broker.addr, ConnectOpts::v311("raw-pub"));
    for (qos, payload) in [
        (QoS::AtMostOnce, "zero"),
        (QoS::AtLeastOnce, "one"),
        (QoS::ExactlyOnce, "two"),
    ] {
        publisher.publish("to/rumqttc/x", payload.as_bytes(), qos, false);
    }
    for (qos, payload) in [
        (rumqttc::QoS::AtMostOnce, "zero"),
        (rumqttc::QoS::AtLeastOnce, "one"),
        (rumqttc::QoS::ExactlyOnce, "two"),
    ] {
        let got = rumqttc_wait(&mut connection, "PUBLISH", |p| match p {
            rumqttc::Packet::Publish(publish) => Some(publish.clone()),
            _ => None,
        });
        assert_eq!(
            (got.topic.as_str(), got.qos, got.payload),
            ("to/rumqttc/x", qos, Bytes::from(payload))
        );
    }
}

#[test]
fn unsubscribe_with_an_empty_topic_filter_is_closed() {
    let broker = start_broker(|_| {});
    let mut client = RawClient::connected(broker.addr, ConnectOpts::v311("unsub-empty"));
    client.subscribe(&[("a", QoS::AtMostOnce)]);
    client.send(&Packet::Unsubscribe(Unsubscribe {
        packet_id: PacketId::new(7).expect("non-zero"),
        properties: Properties::default(),
        filters: vec![ByteStr::from("a"), ByteStr::from("")],
    }));
    // [MQTT-4.7.3-1]: topic filters are at least one character long; 3.1.1 has no UNSUBACK
    // code to refuse one, so the connection is closed [MQTT-4.8.0-1].
    assert_eq!(client.expect_closed(common::CLOSE_TIMEOUT), None);
}

#[test]
fn control_characters_in_topics_are_refused_in_3_1_1() {
    let broker = start_broker(|_| {});
    let mut client = RawClient::connected(broker.addr, ConnectOpts::v311("ctl-sub"));
    // 1.5.3: SHOULD NOT; the receiver MAY close. SUBACK has a failure code (0x80); PUBLISH
    // and UNSUBACK have none, so those connections are closed.
    let ack = client.subscribe(&[("a/\u{1}", QoS::AtMostOnce)]);
    assert_eq!(ack.codes, vec![ReasonCode::UNSPECIFIED_ERROR]);
    client.send(&Packet::Unsubscribe(Unsubscribe {
        packet_id: PacketId::new(9).expect("non-zero"),
        properties: Properties::default(),
        filters: vec![ByteStr::from("a/\u{1}")],
    }));
    assert_eq!(client.expect_closed(common::CLOSE_TIMEOUT), None);
    let mut client = RawClient::connected(broker.addr, ConnectOpts::v311("ctl-pub"));
    client.send(&Packet::Publish(make_publish(
        "a\u{1}",
        b"x",
        QoS::AtMostOnce,
        false,
    )));
    assert_eq!(client.expect_closed(common::CLOSE_TIMEOUT), None);
}

#[test]
fn control_characters_are_accepted_when_allowed() {
    let broker = common::start_broker_with(|c| c.protocol.allow_control_characters = true);
    let mut opts = ConnectOpts::v311("lenient\u{1}");
    opts.username = Some("user\u{7F}".into());
    let mut client = RawClient::connected(broker.addr, opts);
    let ack = client.subscribe(&[("a/\u{1}", QoS::AtLeastOnce)]);
    assert_eq!(ack.codes, vec![ReasonCode::GRANTED_QOS_1]);
    client.publish("a/\u{1}", b"x", QoS::AtLeastOnce, false);
    assert_eq!(client.recv_publish().topic.as_str(), "a/\u{1}");
    client.unsubscribe(&["a/\u{1}"]);
}
