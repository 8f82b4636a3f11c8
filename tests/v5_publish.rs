//! MQTT 5.0 PUBLISH over real sockets: topic aliases in both directions, message expiry,
//! properties that must reach subscribers unchanged, payload format validation, and the
//! reason codes of PUBLISH-level errors.

mod common;

use ringmq::codec::PropertyValues;
use std::collections::HashMap;
use std::sync::mpsc;
use std::time::Duration;

use bytes::Bytes;
use common::{
    make_publish, make_publish_v5, packet_id, rumqttc5_client, rumqttc5_wait, start_broker,
    start_broker_with, text, ConnectOpts, RawClient,
};
use ringmq::codec::{Ack, ByteStr, Packet, Properties, Publish, QoS, ReasonCode};
use rumqttc::v5::mqttbytes::v5::{Packet as V5Packet, PublishProperties};

/// A QoS 1 PUBLISH whose only property is `alias`, sent without waiting for the PUBACK.
fn send_aliased(client: &mut RawClient, topic: &str, alias: u16, payload: &[u8]) -> Publish {
    let properties = Properties::from(PropertyValues {
        topic_alias: Some(alias),
        ..Default::default()
    });
    let mut publish = make_publish_v5(topic, payload, QoS::AtLeastOnce, properties);
    publish.packet_id = Some(client.next_packet_id());
    client.send(&Packet::Publish(publish.clone()));
    publish
}

fn subscriber(addr: std::net::SocketAddr, id: &str, filter: &str) -> RawClient {
    let mut sub = RawClient::connected(addr, ConnectOpts::v5(id));
    sub.subscribe(&[(filter, QoS::AtLeastOnce)]);
    sub
}

#[test]
fn inbound_topic_alias_is_resolved_and_can_be_remapped() {
    let broker = start_broker(|_| {});
    let mut sub = subscriber(broker.addr, "sub", "a/#");
    let mut publisher = RawClient::connected(broker.addr, ConnectOpts::v5("pub"));
    // 3.3.2.3.4: topic + alias sets the mapping; an empty topic + alias uses it.
    let sends = [("a/b", "1"), ("", "2"), ("a/c", "3"), ("", "4")];
    for (topic, payload) in sends {
        let publish = send_aliased(&mut publisher, topic, 1, payload.as_bytes());
        let ack = publisher.recv_ack("PUBACK", publish.packet_id.expect("QoS 1"));
        assert_eq!(ack.code, ReasonCode::SUCCESS, "{ack:?}");
    }
    for (topic, payload) in [("a/b", "1"), ("a/b", "2"), ("a/c", "3"), ("a/c", "4")] {
        let got = sub.recv_publish();
        assert_eq!((got.topic.as_str(), text(&got)), (topic, payload));
        // [MQTT-3.1.2-27]: this subscriber set no Topic Alias Maximum, so it gets no aliases;
        // the publisher's alias is per hop [MQTT-3.3.2-7].
        assert_eq!(got.properties.topic_alias, None);
    }
}

#[test]
fn topic_alias_zero_gets_disconnect_0x94() {
    let broker = start_broker(|_| {});
    let mut publisher = RawClient::connected(broker.addr, ConnectOpts::v5("zero"));
    send_aliased(&mut publisher, "z", 0, b"x");
    // [MQTT-3.3.2-8]; 3.3.4: alias 0 is answered with 0x94 (Topic Alias invalid).
    publisher.expect_disconnect(ReasonCode::TOPIC_ALIAS_INVALID);
}

#[test]
fn topic_alias_above_the_server_maximum_gets_disconnect_0x94() {
    let broker = start_broker_with(|c| c.protocol.topic_alias_max = 2);
    let mut publisher = RawClient::connected(broker.addr, ConnectOpts::v5("over"));
    // [MQTT-3.3.2-12]: every alias up to the maximum the server announced is accepted ...
    let ok = send_aliased(&mut publisher, "a", 2, b"fine");
    publisher.expect_ack("PUBACK", ok.packet_id.expect("QoS 1"));
    // ... and one above it is 0x94 [MQTT-3.3.2-9].
    send_aliased(&mut publisher, "b", 3, b"too far");
    publisher.expect_disconnect(ReasonCode::TOPIC_ALIAS_INVALID);
}

#[test]
fn any_topic_alias_with_server_maximum_0_gets_disconnect_0x94() {
    let broker = start_broker_with(|c| c.protocol.topic_alias_max = 0);
    let mut publisher = RawClient::connected(broker.addr, ConnectOpts::v5("none"));
    // [MQTT-3.2.2-18]: no Topic Alias Maximum means no aliases at all.
    send_aliased(&mut publisher, "a", 1, b"x");
    publisher.expect_disconnect(ReasonCode::TOPIC_ALIAS_INVALID);
}

#[test]
fn empty_topic_with_an_alias_never_set_gets_disconnect_0x82() {
    let broker = start_broker(|_| {});
    let mut publisher = RawClient::connected(broker.addr, ConnectOpts::v5("unknown"));
    // 3.3.4: an empty topic with an alias that has no mapping is a Protocol Error.
    send_aliased(&mut publisher, "", 4, b"x");
    publisher.expect_disconnect(ReasonCode::PROTOCOL_ERROR);
}

#[test]
fn empty_topic_without_alias_gets_disconnect_0x82() {
    let broker = start_broker(|_| {});
    let mut publisher = RawClient::connected(broker.addr, ConnectOpts::v5("empty"));
    publisher.send(&Packet::Publish(make_publish(
        "",
        b"x",
        QoS::AtMostOnce,
        false,
    )));
    publisher.expect_disconnect(ReasonCode::PROTOCOL_ERROR);
}

#[test]
fn topic_aliases_do_not_survive_a_reconnect() {
    let broker = start_broker(|_| {});
    let opts = ConnectOpts::v5("forgets").clean(false).session_expiry(60);
    let mut publisher = RawClient::connected(broker.addr, opts.clone());
    let set = send_aliased(&mut publisher, "kept/topic", 1, b"x");
    publisher.expect_ack("PUBACK", set.packet_id.expect("QoS 1"));
    publisher.disconnect();
    // [MQTT-3.3.2-7]: mappings belong to the network connection, not to the session.
    let mut publisher = RawClient::connected(broker.addr, opts);
    send_aliased(&mut publisher, "", 1, b"y");
    publisher.expect_disconnect(ReasonCode::PROTOCOL_ERROR);
}

#[test]
fn outbound_topic_aliases_stay_within_the_client_maximum() {
    let broker = start_broker(|_| {});
    let opts = ConnectOpts::v5("aliased").props(|p| p.topic_alias_maximum = Some(2));
    let mut sub = RawClient::connected(broker.addr, opts);
    sub.subscribe(&[("+", QoS::AtLeastOnce)]);
    let mut publisher = RawClient::connected(broker.addr, ConnectOpts::v5("pub"));
    let order = ["t1", "t2", "t3", "t1", "t2", "t3"];
    for (n, topic) in order.iter().enumerate() {
        publisher.publish(topic, n.to_string().as_bytes(), QoS::AtLeastOnce, false);
    }
    // What a 5.0 client does with what it receives (3.3.2.3.4), to check the broker's use.
    let mut mapping: HashMap<u16, String> = HashMap::new();
    let mut seen = Vec::new();
    for (n, expected) in order.iter().enumerate() {
        let got = sub.recv_publish();
        let alias = got.properties.topic_alias;
        if let Some(alias) = alias {
            // [MQTT-3.3.2-11]/[MQTT-3.1.2-26]: never above the client's maximum, never 0.
            assert!((1..=2).contains(&alias), "alias {alias} out of 1..=2");
        }
        let resolved = if got.topic.is_empty() {
            let alias = alias.expect("an empty topic comes with an alias");
            mapping
                .get(&alias)
                .cloned()
                .unwrap_or_else(|| panic!("alias {alias} used before it was set"))
        } else {
            if let Some(alias) = alias {
                mapping.insert(alias, got.topic.to_string());
            }
            got.topic.to_string()
        };
        assert_eq!(
            (resolved.as_str(), text(&got)),
            (*expected, n.to_string().as_str())
        );
        seen.push((got.topic.to_string(), alias));
    }
    // First use of t1 and t2: full topic and an alias each; later uses: the alias alone.
    let (t1_alias, t2_alias) = (seen[0].1.expect("t1 got an alias"), seen[1].1.expect("t2"));
    assert_ne!(t1_alias, t2_alias);
    assert_eq!(seen[0].0, "t1");
    assert_eq!(seen[1].0, "t2");
    assert_eq!(seen[3], (String::new(), Some(t1_alias)), "t1 again");
    assert_eq!(seen[4], (String::new(), Some(t2_alias)), "t2 again");
    // No alias left for t3: it always carries its topic.
    assert_eq!(seen[2].0, "t3");
    assert_eq!(seen[5].0, "t3");
}

#[test]
fn no_outbound_topic_alias_without_a_client_maximum() {
    let broker = start_broker(|_| {});
    let mut sub = subscriber(broker.addr, "plain", "same");
    let mut publisher = RawClient::connected(broker.addr, ConnectOpts::v5("pub"));
    for n in 0..3 {
        publisher.publish("same", n.to_string().as_bytes(), QoS::AtLeastOnce, false);
    }
    for n in 0..3 {
        let got = sub.recv_publish();
        // [MQTT-3.1.2-27].
        assert_eq!(
            (got.topic.as_str(), got.properties.topic_alias, text(&got)),
            ("same", None, n.to_string().as_str())
        );
    }
}

#[test]
fn rumqttc_v5_subscriber_with_topic_alias_maximum_gets_the_right_topics() {
    // rumqttc 0.24 resolves inbound aliases itself (`MqttState::handle_incoming_publish`),
    // so a wrong alias from the broker shows up as a wrong topic or a connection error.
    let broker = start_broker(|_| {});
    let (client, mut connection) = rumqttc5_client(broker.addr, "rumqttc-alias", |o| {
        o.set_topic_alias_max(Some(5));
    });
    client
        .subscribe("alias/+", rumqttc::v5::mqttbytes::QoS::AtLeastOnce)
        .expect("queue SUBSCRIBE");
    rumqttc5_wait(&mut connection, "SUBACK", |p| {
        matches!(p, V5Packet::SubAck(_)).then_some(())
    });
    let mut publisher = RawClient::connected(broker.addr, ConnectOpts::v5("pub"));
    let topics = ["alias/x", "alias/y", "alias/x", "alias/y"];
    for (n, topic) in topics.iter().enumerate() {
        publisher.publish(topic, n.to_string().as_bytes(), QoS::AtLeastOnce, false);
    }
    let mut aliased = 0;
    for (n, topic) in topics.iter().enumerate() {
        let got = rumqttc5_wait(&mut connection, "PUBLISH", |p| match p {
            V5Packet::Publish(publish) => Some(publish.clone()),
            _ => None,
        });
        assert_eq!(&got.topic[..], topic.as_bytes(), "message {n}");
        assert_eq!(&got.payload[..], n.to_string().as_bytes());
        aliased += usize::from(got.properties.and_then(|p| p.topic_alias).is_some());
    }
    assert!(aliased > 0, "the broker used no alias for repeated topics");
}

#[test]
fn message_expiry_is_counted_down_while_the_subscriber_is_offline() {
    let broker = start_broker(|_| {});
    let opts = ConnectOpts::v5("late").clean(false).session_expiry(60);
    let mut sub = RawClient::connected(broker.addr, opts.clone());
    sub.subscribe(&[("expiring", QoS::AtLeastOnce)]);
    sub.disconnect();
    let mut publisher = RawClient::connected(broker.addr, ConnectOpts::v5("pub"));
    let properties = Properties::from(PropertyValues {
        message_expiry_interval_s: Some(2),
        ..Default::default()
    });
    publisher.publish_packet(make_publish_v5(
        "expiring",
        b"fresh",
        QoS::AtLeastOnce,
        properties,
    ));
    std::thread::sleep(Duration::from_millis(1200));
    let (mut sub, connack) = RawClient::connect(broker.addr, opts);
    assert!(connack.session_present);
    let got = sub.recv_publish();
    assert_eq!(text(&got), "fresh");
    // [MQTT-3.3.2-6]: 2 s minus the 1.2 s it waited, in whole seconds.
    assert_eq!(got.properties.message_expiry_interval_s, Some(1), "{got:?}");
}

#[test]
fn message_expired_while_the_subscriber_is_offline_is_not_delivered() {
    let broker = start_broker(|_| {});
    let opts = ConnectOpts::v5("too-late").clean(false).session_expiry(60);
    let mut sub = RawClient::connected(broker.addr, opts.clone());
    sub.subscribe(&[("expiring", QoS::AtLeastOnce)]);
    sub.disconnect();
    let mut publisher = RawClient::connected(broker.addr, ConnectOpts::v5("pub"));
    let properties = Properties::from(PropertyValues {
        message_expiry_interval_s: Some(1),
        ..Default::default()
    });
    publisher.publish_packet(make_publish_v5(
        "expiring",
        b"stale",
        QoS::AtLeastOnce,
        properties,
    ));
    publisher.publish("expiring", b"durable", QoS::AtLeastOnce, false);
    std::thread::sleep(Duration::from_millis(2500));
    let (mut sub, connack) = RawClient::connect(broker.addr, opts);
    assert!(connack.session_present);
    // [MQTT-3.3.2-5]: the expired copy is deleted; the one without expiry is still queued.
    let got = sub.recv_publish();
    assert_eq!(text(&got), "durable");
    assert_eq!(got.properties.message_expiry_interval_s, None);
    sub.expect_silence(Duration::from_millis(300));
}

#[test]
fn expired_retained_message_is_not_sent_to_a_later_subscriber() {
    let broker = start_broker(|_| {});
    let mut publisher = RawClient::connected(broker.addr, ConnectOpts::v5("pub"));
    let mut expiring = make_publish_v5(
        "keep/short",
        b"gone soon",
        QoS::AtLeastOnce,
        Properties::from(PropertyValues {
            message_expiry_interval_s: Some(1),
            ..Default::default()
        }),
    );
    expiring.retain = true;
    publisher.publish_packet(expiring);
    publisher.publish("keep/long", b"stays", QoS::AtLeastOnce, true);
    std::thread::sleep(Duration::from_millis(2500));
    let mut sub = subscriber(broker.addr, "later", "keep/#");
    let got = sub.recv_publish();
    assert_eq!((got.topic.as_str(), got.retain), ("keep/long", true));
    sub.expect_silence(Duration::from_millis(300));
}

#[test]
fn retained_message_expiry_is_counted_down() {
    let broker = start_broker(|_| {});
    let mut publisher = RawClient::connected(broker.addr, ConnectOpts::v5("pub"));
    let mut retained = make_publish_v5(
        "keep/countdown",
        b"ten",
        QoS::AtLeastOnce,
        Properties::from(PropertyValues {
            message_expiry_interval_s: Some(10),
            ..Default::default()
        }),
    );
    retained.retain = true;
    publisher.publish_packet(retained);
    std::thread::sleep(Duration::from_millis(1200));
    let mut sub = subscriber(broker.addr, "later", "keep/countdown");
    let got = sub.recv_publish();
    assert!(got.retain);
    // [MQTT-3.3.2-6] for a retained message: what is left of the 10 s.
    let left = got.properties.message_expiry_interval_s;
    assert!(matches!(left, Some(8..=9)), "expiry {left:?} after 1.2 s");
}

/// Every property a publisher may give a message for its receivers.
fn application_properties() -> Properties {
    Properties::from(PropertyValues {
        payload_format_indicator: Some(1),
        content_type: Some(ByteStr::from("text/plain; charset=utf-8")),
        response_topic: Some(ByteStr::from("replies/me")),
        correlation_data: Some(Bytes::from_static(b"\x00\xffid-7")),
        user_properties: vec![
            (ByteStr::from("b"), ByteStr::from("2")),
            (ByteStr::from("a"), ByteStr::from("1")),
            (ByteStr::from("b"), ByteStr::from("2")),
            (ByteStr::from("a"), ByteStr::from("3")),
        ],
        ..Default::default()
    })
}

/// [MQTT-3.3.2-4], [MQTT-3.3.2-15..18], [MQTT-3.3.2-20]: unaltered, user properties in order
/// with their duplicates; and nothing added.
fn assert_passed_through(got: &Publish) {
    assert_eq!(got.properties, application_properties(), "{got:?}");
}

#[test]
fn publish_properties_reach_a_v5_subscriber_unchanged() {
    let broker = start_broker(|_| {});
    let mut sub = subscriber(broker.addr, "sub", "props/#");
    let mut publisher = RawClient::connected(broker.addr, ConnectOpts::v5("pub"));
    for qos in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
        let payload = format!("{qos:?}");
        publisher.publish_packet(make_publish_v5(
            "props/x",
            payload.as_bytes(),
            qos,
            application_properties(),
        ));
        let got = sub.recv_publish();
        assert_eq!(text(&got), payload);
        assert_passed_through(&got);
    }
}

#[test]
fn publish_properties_cross_shards_unchanged() {
    let broker = start_broker_with(|c| c.shards = 3);
    let mut sub = subscriber(broker.shard(2), "sub", "props/#");
    let mut publisher = RawClient::connected(broker.shard(0), ConnectOpts::v5("pub"));
    for qos in [QoS::AtLeastOnce, QoS::ExactlyOnce] {
        publisher.publish_packet(make_publish_v5(
            "props/far",
            b"across",
            qos,
            application_properties(),
        ));
        assert_passed_through(&sub.recv_publish());
    }
}

#[test]
fn invalid_utf8_payload_with_format_indicator_1_is_refused() {
    let broker = start_broker(|_| {});
    let mut sub = subscriber(broker.addr, "sub", "utf8");
    let mut publisher = RawClient::connected(broker.addr, ConnectOpts::v5("pub"));
    let claims_utf8 = Properties::from(PropertyValues {
        payload_format_indicator: Some(1),
        ..Default::default()
    });
    let bad = [0xC3, 0x28, 0xFF];
    // 3.3.2.3.2: the server may check the payload; QoS 1 is answered with PUBACK 0x99 ...
    let ack = publisher.publish_qos1_ack(make_publish_v5(
        "utf8",
        &bad,
        QoS::AtLeastOnce,
        claims_utf8.clone(),
    ));
    assert_eq!(ack.code, ReasonCode::PAYLOAD_FORMAT_INVALID, "{ack:?}");
    // ... and QoS 0 is dropped.
    publisher.send(&Packet::Publish(make_publish_v5(
        "utf8",
        &bad,
        QoS::AtMostOnce,
        claims_utf8.clone(),
    )));
    publisher.publish_packet(make_publish_v5(
        "utf8",
        b"valid",
        QoS::AtLeastOnce,
        claims_utf8,
    ));
    let got = sub.recv_publish();
    assert_eq!(text(&got), "valid", "an invalid payload was delivered");
    sub.expect_silence(Duration::from_millis(200));
}

#[test]
fn pubrel_for_an_unknown_packet_id_gets_pubcomp_0x92() {
    let broker = start_broker(|_| {});
    let mut client = RawClient::connected(broker.addr, ConnectOpts::v5("lost"));
    let id = packet_id(4242);
    client.send(&Packet::PubRel(Ack::new(id)));
    // [MQTT-4.3.3-11]: PUBCOMP with the same id; 3.7.2.1: 0x92 (packet identifier not found).
    match client.recv() {
        Packet::PubComp(ack) => {
            assert_eq!(ack.packet_id, id);
            assert_eq!(ack.code, ReasonCode::PACKET_IDENTIFIER_NOT_FOUND, "{ack:?}");
        }
        other => panic!("expected PUBCOMP, got {other:?}"),
    }
}

#[test]
fn rumqttc_v5_request_response_round_trip() {
    use rumqttc::v5::mqttbytes::QoS as RQoS;
    let broker = start_broker(|_| {});
    let addr = broker.addr;
    let (ready_tx, ready_rx) = mpsc::channel();
    let responder = std::thread::spawn(move || {
        let (client, mut connection) = rumqttc5_client(addr, "responder", |_| {});
        client
            .subscribe("service/echo", RQoS::AtLeastOnce)
            .expect("queue SUBSCRIBE");
        rumqttc5_wait(&mut connection, "SUBACK", |p| {
            matches!(p, V5Packet::SubAck(_)).then_some(())
        });
        ready_tx.send(()).expect("the test waits");
        let request = rumqttc5_wait(&mut connection, "request", |p| match p {
            V5Packet::Publish(publish) => Some(publish.clone()),
            _ => None,
        });
        let props = request.properties.expect("the request has properties");
        let reply = PublishProperties {
            correlation_data: props.correlation_data,
            ..PublishProperties::default()
        };
        let reply_to = props
            .response_topic
            .expect("the request names a response topic");
        let mut payload = b"echo:".to_vec();
        payload.extend_from_slice(&request.payload);
        client
            .publish_with_properties(reply_to, RQoS::AtLeastOnce, false, payload, reply)
            .expect("queue the reply");
        rumqttc5_wait(&mut connection, "PUBACK", |p| {
            matches!(p, V5Packet::PubAck(_)).then_some(())
        });
    });

    let (client, mut connection) = rumqttc5_client(addr, "requester", |_| {});
    client
        .subscribe("replies/requester", RQoS::AtLeastOnce)
        .expect("queue SUBSCRIBE");
    rumqttc5_wait(&mut connection, "SUBACK", |p| {
        matches!(p, V5Packet::SubAck(_)).then_some(())
    });
    ready_rx
        .recv_timeout(Duration::from_secs(5))
        .expect("the responder subscribed");
    let request = PublishProperties {
        response_topic: Some("replies/requester".into()),
        correlation_data: Some(Bytes::from_static(b"req-42")),
        ..PublishProperties::default()
    };
    client
        .publish_with_properties("service/echo", RQoS::AtLeastOnce, false, "ping", request)
        .expect("queue the request");
    let reply = rumqttc5_wait(&mut connection, "reply", |p| match p {
        V5Packet::Publish(publish) => Some(publish.clone()),
        _ => None,
    });
    assert_eq!(&reply.topic[..], b"replies/requester");
    assert_eq!(&reply.payload[..], b"echo:ping");
    let correlation = reply.properties.and_then(|p| p.correlation_data);
    assert_eq!(correlation.as_deref(), Some(&b"req-42"[..]));
    responder.join().expect("responder thread");
}

/// 5.0 tells a publisher when nobody subscribed: PUBACK / PUBREC 0x10, as mosquitto does. A
/// subscriber on another shard counts as a match (the interest summary knows it).
#[test]
fn puback_says_no_matching_subscribers() {
    let broker = start_broker_with(|c| c.shards = c.shards.max(2));
    let mut publisher = RawClient::connected(broker.shard(0), ConnectOpts::v5("lonely"));
    let nobody = make_publish("nobody/listens", b"x", QoS::AtLeastOnce, false);
    let ack = publisher.publish_qos1_ack(nobody);
    assert_eq!(ack.code, ReasonCode::NO_MATCHING_SUBSCRIBERS);

    let id = publisher.next_packet_id();
    let mut qos2 = make_publish("nobody/listens", b"x", QoS::ExactlyOnce, false);
    qos2.packet_id = Some(id);
    publisher.send(&Packet::Publish(qos2));
    assert_eq!(
        publisher.recv_ack("PUBREC", id).code,
        ReasonCode::NO_MATCHING_SUBSCRIBERS
    );
    publisher.send(&Packet::PubRel(Ack::new(id)));
    publisher.recv_ack("PUBCOMP", id);

    let mut far = subscriber(broker.shard(1), "far", "somebody/#");
    let ack = publisher.publish_qos1_ack(make_publish(
        "somebody/listens",
        b"y",
        QoS::AtLeastOnce,
        false,
    ));
    assert_eq!(ack.code, ReasonCode::SUCCESS);
    assert_eq!(text(&far.recv_publish()), "y");
}

#[test]
fn control_characters_in_a_topic_name_get_disconnect_0x90() {
    let broker = start_broker(|_| {});
    let mut client = RawClient::connected(broker.addr, ConnectOpts::v5("ctl-topic"));
    client.send(&Packet::Publish(make_publish(
        "a\u{1}b",
        b"x",
        QoS::AtMostOnce,
        false,
    )));
    // 1.5.4: SHOULD NOT contain control characters; refused by default with 0x90.
    client.expect_disconnect(ReasonCode::TOPIC_NAME_INVALID);
}
