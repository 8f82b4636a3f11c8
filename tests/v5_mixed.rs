//! Mixed protocol levels over real sockets: what a 5.0 client publishes reaches 3.1.1 and 3.1
//! clients as their own level (no properties, their granted QoS, 3.1.1 retain rules), and the
//! other way round; retained messages and wills cross levels too.
//!
//! A 3.x client decodes with our codec at its own level, so a 5.0 property block sent to it by
//! mistake would show up as bytes in front of the payload: comparing payloads checks it.

mod common;

use ringmq::codec::PropertyValues;
use std::net::SocketAddr;

use bytes::Bytes;
use common::{
    make_publish_v5, rumqttc5_client, rumqttc5_wait, rumqttc_client, rumqttc_wait, start_broker,
    text, will_v5, ConnectOpts, RawClient,
};
use ringmq::codec::{ByteStr, Packet, Properties, Publish, QoS};

/// Properties of every kind a 5.0 publisher can give a message.
fn rich_properties() -> Properties {
    Properties::from(PropertyValues {
        payload_format_indicator: Some(1),
        message_expiry_interval_s: Some(60),
        content_type: Some(ByteStr::from("text/plain")),
        response_topic: Some(ByteStr::from("mix/replies")),
        correlation_data: Some(Bytes::from_static(b"corr")),
        user_properties: vec![(ByteStr::from("k"), ByteStr::from("v"))],
        ..Default::default()
    })
}

fn v311_subscriber(addr: SocketAddr, id: &str, filter: &str, qos: QoS) -> RawClient {
    let mut sub = RawClient::connected(addr, ConnectOpts::v311(id));
    sub.subscribe(&[(filter, qos)]);
    sub
}

#[test]
fn v5_publish_with_properties_reaches_a_v311_subscriber_as_3_1_1() {
    let broker = start_broker(|_| {});
    let mut sub = v311_subscriber(broker.addr, "old", "mix/#", QoS::AtLeastOnce);
    let mut publisher = RawClient::connected(broker.addr, ConnectOpts::v5("new"));
    publisher.publish_packet(make_publish_v5(
        "mix/a",
        b"hello",
        QoS::ExactlyOnce,
        rich_properties(),
    ));
    let got = sub.recv_publish();
    // No property block on the wire: the payload is exactly what was published.
    assert_eq!(
        (got.topic.as_str(), &got.payload[..]),
        ("mix/a", &b"hello"[..])
    );
    // [MQTT-3.8.4-8] (3.1.1 [MQTT-3.8.4-6]): min(published 2, granted 1).
    assert_eq!(got.qos, QoS::AtLeastOnce);
    assert!(!got.retain);
}

#[test]
fn v5_aliased_publish_reaches_a_v311_subscriber_with_its_topic() {
    let broker = start_broker(|_| {});
    let mut sub = v311_subscriber(broker.addr, "old", "mix/#", QoS::AtLeastOnce);
    let mut publisher = RawClient::connected(broker.addr, ConnectOpts::v5("new"));
    for (topic, payload) in [("mix/aliased", "first"), ("", "second")] {
        let properties = Properties::from(PropertyValues {
            topic_alias: Some(1),
            ..Default::default()
        });
        publisher.publish_packet(make_publish_v5(
            topic,
            payload.as_bytes(),
            QoS::AtLeastOnce,
            properties,
        ));
    }
    for payload in ["first", "second"] {
        let got = sub.recv_publish();
        assert_eq!((got.topic.as_str(), text(&got)), ("mix/aliased", payload));
    }
}

#[test]
fn retain_flag_to_a_v311_subscriber_follows_the_3_1_1_rules() {
    let broker = start_broker(|_| {});
    let mut live = v311_subscriber(broker.addr, "live", "mix/#", QoS::AtLeastOnce);
    let mut publisher = RawClient::connected(broker.addr, ConnectOpts::v5("new"));
    let mut retained = make_publish_v5("mix/r", b"kept", QoS::AtLeastOnce, rich_properties());
    retained.retain = true;
    publisher.publish_packet(retained);
    // 3.1.1 [MQTT-3.3.1-9]: 0 on a live forward, 1 when sent for a new subscription.
    let got = live.recv_publish();
    assert_eq!((text(&got), got.retain), ("kept", false));
    let mut late = v311_subscriber(broker.addr, "late", "mix/#", QoS::AtLeastOnce);
    let got = late.recv_publish();
    assert_eq!((text(&got), got.retain), ("kept", true));
}

#[test]
fn v311_publish_reaches_a_v5_subscriber_without_properties() {
    let broker = start_broker(|_| {});
    let mut sub = RawClient::connected(broker.addr, ConnectOpts::v5("new"));
    sub.subscribe(&[("mix/#", QoS::ExactlyOnce)]);
    let mut publisher = RawClient::connected(broker.addr, ConnectOpts::v311("old"));
    publisher.publish("mix/b", b"from 3.1.1", QoS::AtLeastOnce, false);
    let got = sub.recv_publish();
    assert_eq!((text(&got), got.qos), ("from 3.1.1", QoS::AtLeastOnce));
    assert_eq!(got.properties, Properties::default(), "nothing made up");
}

#[test]
fn retained_message_of_a_v5_client_is_read_by_a_v311_client() {
    let broker = start_broker(|_| {});
    let mut publisher = RawClient::connected(broker.addr, ConnectOpts::v5("new"));
    let mut retained = make_publish_v5("mix/kept", b"by v5", QoS::AtLeastOnce, rich_properties());
    retained.retain = true;
    publisher.publish_packet(retained);
    let mut sub = v311_subscriber(broker.addr, "old", "mix/kept", QoS::AtLeastOnce);
    let got = sub.recv_publish();
    assert_eq!((&got.payload[..], got.retain), (&b"by v5"[..], true));
    // And a v5 reader gets the properties it was stored with (expiry counted down, if at all).
    let mut v5_sub = RawClient::connected(broker.addr, ConnectOpts::v5("new-reader"));
    v5_sub.subscribe(&[("mix/kept", QoS::AtLeastOnce)]);
    let got = v5_sub.recv_publish();
    let mut expected = rich_properties();
    expected.message_expiry_interval_s = got.properties.message_expiry_interval_s;
    assert_eq!(got.properties, expected);
}

#[test]
fn retained_message_of_a_v311_client_is_read_by_a_v5_client() {
    let broker = start_broker(|_| {});
    let mut publisher = RawClient::connected(broker.addr, ConnectOpts::v311("old"));
    publisher.publish("mix/kept", b"by 3.1.1", QoS::AtLeastOnce, true);
    let mut sub = RawClient::connected(broker.addr, ConnectOpts::v5("new"));
    sub.subscribe(&[("mix/kept", QoS::AtLeastOnce)]);
    let got = sub.recv_publish();
    assert_eq!((text(&got), got.retain), ("by 3.1.1", true));
    assert_eq!(got.properties, Properties::default());
}

#[test]
fn mqtt_3_1_client_interoperates_with_a_v5_client() {
    let broker = start_broker(|_| {});
    let mut old = RawClient::connected(broker.addr, ConnectOpts::v31("mqisdp"));
    old.subscribe(&[("mix/to31", QoS::AtLeastOnce)]);
    let mut new = RawClient::connected(broker.addr, ConnectOpts::v5("new"));
    new.subscribe(&[("mix/to5", QoS::AtLeastOnce)]);
    new.publish_packet(make_publish_v5(
        "mix/to31",
        b"hello 3.1",
        QoS::AtLeastOnce,
        rich_properties(),
    ));
    let got = old.recv_publish();
    assert_eq!(
        (&got.payload[..], got.qos),
        (&b"hello 3.1"[..], QoS::AtLeastOnce)
    );
    old.publish("mix/to5", b"hello 5", QoS::ExactlyOnce, false);
    let got = new.recv_publish();
    assert_eq!((text(&got), got.qos), ("hello 5", QoS::AtLeastOnce));
    assert_eq!(got.properties, Properties::default());
}

#[test]
fn v5_will_with_properties_reaches_a_v311_subscriber() {
    let broker = start_broker(|_| {});
    let mut sub = v311_subscriber(broker.addr, "old", "wills/#", QoS::AtLeastOnce);
    let will = will_v5("wills/new", b"gone", QoS::AtLeastOnce, rich_properties());
    drop(RawClient::connected(
        broker.addr,
        ConnectOpts::v5("new").will(will),
    ));
    let got = sub.recv_publish();
    assert_eq!(
        (got.topic.as_str(), &got.payload[..]),
        ("wills/new", &b"gone"[..])
    );
}

#[test]
fn v5_publish_reaches_a_v311_subscriber_at_every_qos() {
    // Granted QoS 2: each message arrives at its published QoS, with the exact payload, and
    // the 3.1.1 subscriber completes each flow (its acks have no reason codes).
    let broker = start_broker(|_| {});
    let mut sub = v311_subscriber(broker.addr, "old", "mix/#", QoS::ExactlyOnce);
    let mut publisher = RawClient::connected(broker.addr, ConnectOpts::v5("new"));
    for qos in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
        let payload = format!("{qos:?}");
        publisher.publish_packet(make_publish_v5(
            "mix/q",
            payload.as_bytes(),
            qos,
            rich_properties(),
        ));
        let got: Publish = match sub.recv() {
            Packet::Publish(publish) => publish,
            other => panic!("expected PUBLISH, got {other:?}"),
        };
        assert_eq!((text(&got), got.qos), (payload.as_str(), qos));
        sub.ack(&got);
    }
}

#[test]
fn rumqttc_v5_publisher_to_rumqttc_v311_subscriber() {
    use rumqttc::v5::mqttbytes::v5::{Packet as V5Packet, PublishProperties};
    let broker = start_broker(|_| {});
    let (sub, mut sub_connection) = rumqttc_client(broker.addr, "rumqttc-311", true);
    sub.subscribe("mix/#", rumqttc::QoS::AtLeastOnce)
        .expect("queue SUBSCRIBE");
    rumqttc_wait(&mut sub_connection, "SUBACK", |p| {
        matches!(p, rumqttc::Packet::SubAck(_)).then_some(())
    });
    let (publisher, mut pub_connection) = rumqttc5_client(broker.addr, "rumqttc-5", |_| {});
    let properties = PublishProperties {
        user_properties: vec![("k".into(), "v".into())],
        content_type: Some("text/plain".into()),
        ..PublishProperties::default()
    };
    publisher
        .publish_with_properties(
            "mix/real",
            rumqttc::v5::mqttbytes::QoS::AtLeastOnce,
            false,
            "from rumqttc v5",
            properties,
        )
        .expect("queue PUBLISH");
    rumqttc5_wait(&mut pub_connection, "PUBACK", |p| {
        matches!(p, V5Packet::PubAck(_)).then_some(())
    });
    let got = rumqttc_wait(&mut sub_connection, "PUBLISH", |p| match p {
        rumqttc::Packet::Publish(publish) => Some(publish.clone()),
        _ => None,
    });
    assert_eq!(got.topic, "mix/real");
    assert_eq!(&got.payload[..], b"from rumqttc v5");
}
