//! MQTT 5.0 SUBSCRIBE and UNSUBSCRIBE over real sockets: the subscription options (No Local,
//! Retain As Published, Retain Handling), subscription identifiers, the server's Maximum QoS
//! and Retain Available, features turned off in `[protocol]`, and per-filter reason codes.

mod common;

use ringmq::codec::PropertyValues;
use std::net::SocketAddr;
use std::time::Duration;

use common::{
    make_publish, rumqttc5_client, rumqttc5_wait, start_broker, start_broker_with, text,
    ConnectOpts, RawClient, CLOSE_TIMEOUT,
};
use ringmq::codec::{
    ByteStr, Packet, Properties, Publish, QoS, ReasonCode, RetainHandling, SubscriptionOptions,
    Unsubscribe,
};

fn options(qos: QoS) -> SubscriptionOptions {
    SubscriptionOptions {
        qos,
        ..SubscriptionOptions::default()
    }
}

fn with_retain_handling(retain_handling: RetainHandling) -> SubscriptionOptions {
    SubscriptionOptions {
        retain_handling,
        ..options(QoS::AtLeastOnce)
    }
}

/// SUBSCRIBE properties carrying subscription identifier `id`.
fn sub_id(id: u32) -> Properties {
    Properties::from(PropertyValues {
        subscription_identifiers: vec![id],
        ..Default::default()
    })
}

/// Retains `payload` on `topic` from a short-lived v5 publisher.
fn retain(addr: SocketAddr, topic: &str, payload: &str) {
    let mut publisher = RawClient::connected(addr, ConnectOpts::v5("retainer"));
    publisher.publish(topic, payload.as_bytes(), QoS::AtLeastOnce, true);
    publisher.disconnect();
}

#[test]
fn no_local_suppresses_only_the_clients_own_publishes() {
    let broker = start_broker(|_| {});
    let mut me = RawClient::connected(broker.addr, ConnectOpts::v5("me"));
    let no_local = SubscriptionOptions {
        no_local: true,
        ..options(QoS::AtLeastOnce)
    };
    me.subscribe_with(&[("chat/#", no_local)]);
    // `publish` waits for our PUBACK and keeps any PUBLISH that arrives meanwhile.
    me.publish("chat/room", b"mine", QoS::AtLeastOnce, false);
    let mut other = RawClient::connected(broker.addr, ConnectOpts::v5("other"));
    other.publish("chat/room", b"theirs", QoS::AtLeastOnce, false);
    // [MQTT-3.8.3-3]: not forwarded to the connection with the publisher's client id.
    assert_eq!(text(&me.recv_publish()), "theirs");
    me.expect_silence(Duration::from_millis(200));
}

#[test]
fn retain_as_published_decides_the_retain_flag_of_live_messages() {
    let broker = start_broker(|_| {});
    let mut sub = RawClient::connected(broker.addr, ConnectOpts::v5("sub"));
    let as_published = SubscriptionOptions {
        retain_as_published: true,
        ..options(QoS::AtLeastOnce)
    };
    sub.subscribe_with(&[
        ("rap/kept/#", as_published),
        ("rap/cleared/#", options(QoS::AtLeastOnce)),
    ]);
    let mut publisher = RawClient::connected(broker.addr, ConnectOpts::v5("pub"));
    let sends = [
        ("rap/kept/a", true),
        ("rap/kept/b", false),
        ("rap/cleared/a", true),
    ];
    for (topic, retained) in sends {
        publisher.publish(topic, b"x", QoS::AtLeastOnce, retained);
    }
    // [MQTT-3.3.1-13]: kept as published; [MQTT-3.3.1-12]: 0 whatever was published.
    for (topic, retain) in [
        ("rap/kept/a", true),
        ("rap/kept/b", false),
        ("rap/cleared/a", false),
    ] {
        let got = sub.recv_publish();
        assert_eq!((got.topic.as_str(), got.retain), (topic, retain));
    }
}

#[test]
fn retain_handling_0_sends_retained_messages_on_every_subscribe() {
    let broker = start_broker(|_| {});
    retain(broker.addr, "rh/t", "stored");
    let mut sub = RawClient::connected(broker.addr, ConnectOpts::v5("sub"));
    for round in 0..2 {
        sub.subscribe_with(&[("rh/#", with_retain_handling(RetainHandling::OnSubscribe))]);
        // [MQTT-3.3.1-9]; [MQTT-3.8.4-4]: a replaced subscription gets them again.
        let got = sub.recv_publish();
        assert_eq!((text(&got), got.retain), ("stored", true), "round {round}");
    }
}

#[test]
fn retain_handling_1_sends_retained_messages_only_for_a_new_subscription() {
    let broker = start_broker(|_| {});
    retain(broker.addr, "rh/t", "stored");
    let mut sub = RawClient::connected(broker.addr, ConnectOpts::v5("sub"));
    let if_new = with_retain_handling(RetainHandling::OnNewSubscribe);
    sub.subscribe_with(&[("rh/#", if_new)]);
    assert_eq!(text(&sub.recv_publish()), "stored");
    // [MQTT-3.3.1-10]: the subscription existed: nothing.
    sub.subscribe_with(&[("rh/#", if_new)]);
    sub.expect_silence(Duration::from_millis(300));
    // After UNSUBSCRIBE it is new again.
    sub.unsubscribe(&["rh/#"]);
    sub.subscribe_with(&[("rh/#", if_new)]);
    assert_eq!(text(&sub.recv_publish()), "stored");
}

#[test]
fn retain_handling_2_never_sends_retained_messages() {
    let broker = start_broker(|_| {});
    retain(broker.addr, "rh/t", "stored");
    let mut sub = RawClient::connected(broker.addr, ConnectOpts::v5("sub"));
    sub.subscribe_with(&[("rh/#", with_retain_handling(RetainHandling::Never))]);
    // [MQTT-3.3.1-11].
    sub.expect_silence(Duration::from_millis(300));
    let mut publisher = RawClient::connected(broker.addr, ConnectOpts::v5("pub"));
    publisher.publish("rh/t", b"live", QoS::AtLeastOnce, false);
    assert_eq!(
        text(&sub.recv_publish()),
        "live",
        "the subscription itself works"
    );
}

#[test]
fn no_local_on_a_shared_subscription_gets_disconnect_0x82() {
    let broker = start_broker(|_| {});
    let mut sub = RawClient::connected(broker.addr, ConnectOpts::v5("sharer"));
    let no_local = SubscriptionOptions {
        no_local: true,
        ..options(QoS::AtLeastOnce)
    };
    sub.send_subscribe(&[("$share/g/t", no_local)], Properties::default());
    // [MQTT-3.8.3-4]: a Protocol Error.
    sub.expect_disconnect(ReasonCode::PROTOCOL_ERROR);
}

#[test]
fn maximum_qos_1_grants_at_most_qos_1() {
    let broker = start_broker_with(|c| c.protocol.maximum_qos = 1);
    for opts in [ConnectOpts::v5("v5"), ConnectOpts::v311("v311")] {
        let mut sub = RawClient::connected(broker.addr, opts);
        // [MQTT-3.2.2-10]: SUBSCRIBE at QoS 2 is accepted, granted the server's maximum.
        let ack = sub.subscribe(&[("q", QoS::ExactlyOnce)]);
        assert_eq!(
            ack.codes,
            [ReasonCode::GRANTED_QOS_1],
            "{:?}",
            sub.version()
        );
    }
}

#[test]
fn publish_above_maximum_qos_gets_disconnect_0x9b() {
    let broker = start_broker_with(|c| c.protocol.maximum_qos = 1);
    let mut client = RawClient::connected(broker.addr, ConnectOpts::v5("eager"));
    let publish = Publish {
        packet_id: Some(common::packet_id(1)),
        ..make_publish("q", b"x", QoS::ExactlyOnce, false)
    };
    client.send(&Packet::Publish(publish));
    // 3.2.2.3.4: QoS above the announced Maximum QoS is 0x9B.
    client.expect_disconnect(ReasonCode::QOS_NOT_SUPPORTED);
}

#[test]
fn retained_publish_without_retain_available_gets_disconnect_0x9a() {
    let broker = start_broker_with(|c| c.protocol.retain_available = false);
    let mut client = RawClient::connected(broker.addr, ConnectOpts::v5("keeper"));
    client.send(&Packet::Publish(make_publish(
        "r",
        b"x",
        QoS::AtMostOnce,
        true,
    )));
    // 3.2.2.3.5 / [MQTT-3.2.2-14]: 0x9A.
    client.expect_disconnect(ReasonCode::RETAIN_NOT_SUPPORTED);
}

#[test]
fn v311_client_breaking_maximum_qos_or_retain_available_is_closed() {
    let broker = start_broker_with(|c| {
        c.protocol.maximum_qos = 1;
        c.protocol.retain_available = false;
    });
    let mut client = RawClient::connected(broker.addr, ConnectOpts::v311("qos2"));
    let publish = Publish {
        packet_id: Some(common::packet_id(1)),
        ..make_publish("q", b"x", QoS::ExactlyOnce, false)
    };
    client.send(&Packet::Publish(publish));
    assert_eq!(client.expect_closed(CLOSE_TIMEOUT), None);

    let mut client = RawClient::connected(broker.addr, ConnectOpts::v311("retainer"));
    client.send(&Packet::Publish(make_publish(
        "r",
        b"x",
        QoS::AtMostOnce,
        true,
    )));
    assert_eq!(client.expect_closed(CLOSE_TIMEOUT), None);
}

#[test]
fn subscription_identifier_is_sent_with_matching_publishes() {
    let broker = start_broker(|_| {});
    let mut sub = RawClient::connected(broker.addr, ConnectOpts::v5("sub"));
    sub.subscribe_with_props(&[("sid/a", options(QoS::AtLeastOnce))], sub_id(7));
    // The largest identifier a variable byte integer holds (3.8.2.1.2).
    sub.subscribe_with_props(&[("sid/b", options(QoS::AtLeastOnce))], sub_id(268_435_455));
    let mut publisher = RawClient::connected(broker.addr, ConnectOpts::v5("pub"));
    publisher.publish("sid/a", b"a", QoS::AtLeastOnce, false);
    publisher.publish("sid/b", b"b", QoS::AtLeastOnce, false);
    // 3.3.4: the PUBLISH carries the Subscription Identifier of the SUBSCRIBE.
    assert_eq!(sub.recv_publish().properties.subscription_identifiers, [7]);
    assert_eq!(
        sub.recv_publish().properties.subscription_identifiers,
        [268_435_455]
    );
}

#[test]
fn overlapping_subscriptions_give_one_publish_with_every_identifier() {
    let broker = start_broker(|_| {});
    let mut sub = RawClient::connected(broker.addr, ConnectOpts::v5("sub"));
    sub.subscribe_with_props(&[("ov/+", options(QoS::AtLeastOnce))], sub_id(1));
    sub.subscribe_with_props(&[("ov/#", options(QoS::AtLeastOnce))], sub_id(2));
    let mut publisher = RawClient::connected(broker.addr, ConnectOpts::v5("pub"));
    publisher.publish("ov/x", b"once", QoS::AtLeastOnce, false);
    // This broker sends one copy per session (3.3.4 allows either); then [MQTT-3.3.4-4]:
    // that copy carries every matching identifier, in any order.
    let got = sub.recv_publish();
    let mut ids = got.properties.subscription_identifiers.clone();
    ids.sort_unstable();
    assert_eq!(ids, [1, 2]);
    sub.expect_silence(Duration::from_millis(300));
}

#[test]
fn subscription_without_identifier_gets_publishes_without_one() {
    let broker = start_broker(|_| {});
    let mut sub = RawClient::connected(broker.addr, ConnectOpts::v5("sub"));
    sub.subscribe_with_props(&[("with/#", options(QoS::AtLeastOnce))], sub_id(3));
    sub.subscribe(&[("without/#", QoS::AtLeastOnce)]);
    let mut publisher = RawClient::connected(broker.addr, ConnectOpts::v5("pub"));
    publisher.publish("without/x", b"plain", QoS::AtLeastOnce, false);
    publisher.publish("with/x", b"tagged", QoS::AtLeastOnce, false);
    // Identifiers belong to subscriptions, not to the session.
    let plain = sub.recv_publish();
    assert_eq!(
        (
            text(&plain),
            plain.properties.subscription_identifiers.len()
        ),
        ("plain", 0)
    );
    assert_eq!(sub.recv_publish().properties.subscription_identifiers, [3]);
}

#[test]
fn resubscribing_replaces_the_identifier() {
    let broker = start_broker(|_| {});
    let mut sub = RawClient::connected(broker.addr, ConnectOpts::v5("sub"));
    sub.subscribe_with_props(&[("rep/#", options(QoS::AtLeastOnce))], sub_id(4));
    // [MQTT-3.8.4-3]: the same filter replaces the subscription, identifier included.
    sub.subscribe_with_props(&[("rep/#", options(QoS::AtLeastOnce))], sub_id(5));
    let mut publisher = RawClient::connected(broker.addr, ConnectOpts::v5("pub"));
    publisher.publish("rep/x", b"x", QoS::AtLeastOnce, false);
    assert_eq!(sub.recv_publish().properties.subscription_identifiers, [5]);
    sub.expect_silence(Duration::from_millis(200));
}

#[test]
fn retained_message_sent_on_subscribe_carries_the_identifier() {
    let broker = start_broker(|_| {});
    retain(broker.addr, "sid/r", "stored");
    let mut sub = RawClient::connected(broker.addr, ConnectOpts::v5("sub"));
    sub.subscribe_with_props(&[("sid/#", options(QoS::AtLeastOnce))], sub_id(11));
    let got = sub.recv_publish();
    assert_eq!((text(&got), got.retain), ("stored", true));
    assert_eq!(got.properties.subscription_identifiers, [11]);
}

#[test]
fn subscription_identifier_is_sent_for_a_publisher_on_another_shard() {
    let broker = start_broker_with(|c| c.shards = 3);
    let mut sub = RawClient::connected(broker.shard(2), ConnectOpts::v5("sub"));
    sub.subscribe_with_props(&[("far/#", options(QoS::AtLeastOnce))], sub_id(9));
    let mut publisher = RawClient::connected(broker.shard(0), ConnectOpts::v5("pub"));
    for qos in [QoS::AtMostOnce, QoS::AtLeastOnce] {
        publisher.publish("far/x", b"x", qos, false);
        assert_eq!(sub.recv_publish().properties.subscription_identifiers, [9]);
    }
}

#[test]
fn subscription_identifier_when_turned_off_gets_disconnect_0xa1() {
    let broker = start_broker_with(|c| c.protocol.subscription_identifiers = false);
    let mut sub = RawClient::connected(broker.addr, ConnectOpts::v5("sub"));
    sub.subscribe(&[("plain", QoS::AtLeastOnce)]);
    sub.send_subscribe(&[("tagged", options(QoS::AtLeastOnce))], sub_id(1));
    // 3.2.2.3.12: Subscription Identifier Available 0, so this is 0xA1.
    sub.expect_disconnect(ReasonCode::SUBSCRIPTION_IDENTIFIERS_NOT_SUPPORTED);
}

#[test]
fn wildcard_filter_when_turned_off_gets_disconnect_0xa2() {
    let broker = start_broker_with(|c| c.protocol.wildcard_subscriptions = false);
    let mut sub = RawClient::connected(broker.addr, ConnectOpts::v5("sub"));
    sub.subscribe(&[("exact/topic", QoS::AtLeastOnce)]);
    sub.send_subscribe(
        &[("exact/+", options(QoS::AtLeastOnce))],
        Properties::default(),
    );
    // 3.2.2.3.11: Wildcard Subscription Available 0, so this is 0xA2.
    sub.expect_disconnect(ReasonCode::WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED);
}

#[test]
fn shared_filter_when_turned_off_gets_disconnect_0x9e() {
    let broker = start_broker_with(|c| c.protocol.shared_subscriptions = false);
    let mut sub = RawClient::connected(broker.addr, ConnectOpts::v5("sub"));
    sub.send_subscribe(
        &[("$share/g/t", options(QoS::AtLeastOnce))],
        Properties::default(),
    );
    // 3.2.2.3.13: Shared Subscription Available 0, so this is 0x9E.
    sub.expect_disconnect(ReasonCode::SHARED_SUBSCRIPTIONS_NOT_SUPPORTED);
}

#[test]
fn unsubscribe_of_a_filter_not_subscribed_gets_0x11() {
    let broker = start_broker(|_| {});
    let mut sub = RawClient::connected(broker.addr, ConnectOpts::v5("sub"));
    sub.subscribe(&[("u/a", QoS::AtLeastOnce)]);
    let ack = sub.unsubscribe(&["u/a", "u/never"]);
    // [MQTT-3.11.3-1]/[MQTT-3.11.3-2]: one code per filter, in order.
    assert_eq!(
        ack.codes,
        [ReasonCode::SUCCESS, ReasonCode::NO_SUBSCRIPTION_EXISTED]
    );
}

#[test]
fn invalid_filter_gets_suback_0x8f_and_the_others_are_granted() {
    let broker = start_broker(|_| {});
    let mut sub = RawClient::connected(broker.addr, ConnectOpts::v5("sub"));
    let ack = sub.subscribe(&[("ok/+", QoS::AtLeastOnce), ("a/#/b", QoS::AtLeastOnce)]);
    // [MQTT-4.7.1-1]: `#` must be last; [MQTT-3.9.3-1]: codes in filter order.
    assert_eq!(
        ack.codes,
        [ReasonCode::GRANTED_QOS_1, ReasonCode::TOPIC_FILTER_INVALID]
    );
    let mut publisher = RawClient::connected(broker.addr, ConnectOpts::v5("pub"));
    publisher.publish("ok/x", b"still subscribed", QoS::AtLeastOnce, false);
    assert_eq!(text(&sub.recv_publish()), "still subscribed");
}

#[test]
fn rumqttc_v5_no_local_and_subscription_identifier() {
    use rumqttc::v5::mqttbytes::v5::{Filter, Packet as V5Packet, SubscribeProperties};
    use rumqttc::v5::mqttbytes::QoS as RQoS;
    let broker = start_broker(|_| {});
    let (client, mut connection) = rumqttc5_client(broker.addr, "rumqttc-nl", |_| {});
    let mut filter = Filter::new("nl/t", RQoS::AtLeastOnce);
    filter.nolocal = true;
    let properties = SubscribeProperties {
        id: Some(5),
        user_properties: Vec::new(),
    };
    client
        .subscribe_many_with_properties([filter], properties)
        .expect("queue SUBSCRIBE");
    rumqttc5_wait(&mut connection, "SUBACK", |p| {
        matches!(p, V5Packet::SubAck(_)).then_some(())
    });
    client
        .publish("nl/t", RQoS::AtLeastOnce, false, "mine")
        .expect("queue PUBLISH");
    rumqttc5_wait(&mut connection, "PUBACK", |p| {
        matches!(p, V5Packet::PubAck(_)).then_some(())
    });
    let mut other = RawClient::connected(broker.addr, ConnectOpts::v5("other"));
    other.publish("nl/t", b"theirs", QoS::AtLeastOnce, false);
    let got = rumqttc5_wait(&mut connection, "PUBLISH", |p| match p {
        V5Packet::Publish(publish) => Some(publish.clone()),
        _ => None,
    });
    assert_eq!(&got.payload[..], b"theirs");
    let ids = got.properties.map(|p| p.subscription_identifiers);
    assert_eq!(ids, Some(vec![5]));
}

#[test]
fn unsubscribe_with_an_empty_topic_filter_gets_disconnect_0x82() {
    let broker = start_broker(|_| {});
    let mut client = RawClient::connected(broker.addr, ConnectOpts::v5("unsub-empty"));
    client.send(&Packet::Unsubscribe(Unsubscribe {
        packet_id: common::packet_id(7),
        properties: Properties::default(),
        filters: vec![ByteStr::from("")],
    }));
    // [MQTT-4.7.3-1]: a filter is at least one character. The UNSUBSCRIBE parses, so this is
    // a Protocol Error, not a Malformed Packet (4.13); 0x8F in UNSUBACK is for filters that
    // are "correctly formed" but refused.
    client.expect_disconnect(ReasonCode::PROTOCOL_ERROR);
}

#[test]
fn control_characters_in_topic_filters_get_0x8f_in_suback_and_unsuback() {
    let broker = start_broker(|_| {});
    let mut client = RawClient::connected(broker.addr, ConnectOpts::v5("ctl-filter"));
    // 1.5.4: SHOULD NOT contain control characters. The filter is correctly formed but refused
    // by this server: exactly what 0x8F Topic Filter invalid says (3.9.3, 3.11.3).
    let ack = client.subscribe(&[("ok", QoS::AtMostOnce), ("a/\u{1B}", QoS::AtMostOnce)]);
    assert_eq!(
        ack.codes,
        vec![ReasonCode::GRANTED_QOS_0, ReasonCode::TOPIC_FILTER_INVALID]
    );
    let ack = client.unsubscribe(&["ok", "a/\u{1B}"]);
    assert_eq!(
        ack.codes,
        vec![ReasonCode::SUCCESS, ReasonCode::TOPIC_FILTER_INVALID]
    );
}
