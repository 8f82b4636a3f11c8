//! CONNECT and CONNACK over real sockets: protocol levels, client identifiers, the rules for
//! the first and second packet, and take-over.

mod common;

use std::time::{Duration, Instant};

use common::{
    make_publish, rumqttc_wait, start_broker, text, will, ConnectOpts, RawClient, CLOSE_TIMEOUT,
    RECV_TIMEOUT,
};
use ringmq::codec::{Packet, ProtocolVersion, QoS, ReasonCode};
use rumqttc::v5;

#[test]
fn mqtt_3_1_connect_is_accepted() {
    let broker = start_broker(|_| {});
    let (_client, connack) = RawClient::connect(broker.addr, ConnectOpts::v31("client-31"));
    assert_eq!(connack.code, ReasonCode::SUCCESS);
    assert!(!connack.session_present);
}

#[test]
fn mqtt_3_1_1_connect_is_accepted() {
    let broker = start_broker(|_| {});
    let (_client, connack) = RawClient::connect(broker.addr, ConnectOpts::v311("client-311"));
    assert_eq!(connack.code, ReasonCode::SUCCESS);
    assert!(!connack.session_present);
}

#[test]
fn mqtt_5_connect_is_accepted() {
    let broker = start_broker(|_| {});
    let (_client, connack) = RawClient::connect(broker.addr, ConnectOpts::v5("client-5"));
    assert_eq!(connack.code, ReasonCode::SUCCESS);
    assert!(!connack.session_present);
}

#[test]
fn unsupported_protocol_level_gets_connack_0x01_then_close() {
    let broker = start_broker(|_| {});
    let mut client = RawClient::open(broker.addr, ProtocolVersion::V3_1_1);
    // Level 6 cannot be expressed by our codec's types, so the bytes are written by hand.
    #[rustfmt::skip]
    client.send_raw(&[
        0x10, 14,                               // CONNECT, remaining length
        0x00, 0x04, b'M', b'Q', b'T', b'T',     // protocol name
        6,                                      // protocol level: unknown
        0x02,                                   // clean session
        0x00, 60,                               // keep-alive
        0x00, 0x02, b'c', b'6',                 // client id
    ]);
    // [MQTT-3.1.2-2]: CONNACK return code 0x01 (unacceptable protocol level), then close.
    match client.recv() {
        Packet::ConnAck(connack) => {
            assert_eq!(
                connack.code,
                ReasonCode::UNSUPPORTED_PROTOCOL_VERSION,
                "{connack:?}"
            );
            assert_eq!(connack.code.to_v3_connack(), 0x01);
        }
        other => panic!("expected CONNACK 0x01, got {other:?}"),
    }
    client.expect_closed(CLOSE_TIMEOUT);
}

#[test]
fn invalid_protocol_name_is_closed() {
    let broker = start_broker(|_| {});
    let mut client = RawClient::open(broker.addr, ProtocolVersion::V3_1_1);
    #[rustfmt::skip]
    client.send_raw(&[
        0x10, 14,
        0x00, 0x04, b'M', b'Q', b'T', b'X',     // protocol name: not MQTT
        4,
        0x02,
        0x00, 60,
        0x00, 0x02, b'c', b'x',
    ]);
    // [MQTT-3.1.2-1]: the server may close without processing the CONNECT further.
    client.expect_closed(CLOSE_TIMEOUT);
}

#[test]
fn empty_client_id_with_clean_session_is_accepted() {
    let broker = start_broker(|_| {});
    // [MQTT-3.1.3-6]/[MQTT-3.1.3-7]: the server assigns an identifier.
    let (mut client, connack) = RawClient::connect(broker.addr, ConnectOpts::v311(""));
    assert_eq!(connack.code, ReasonCode::SUCCESS);
    client.ping();
}

#[test]
fn empty_client_id_without_clean_session_gets_0x02_then_close() {
    let broker = start_broker(|_| {});
    let (mut client, connack) = RawClient::connect(broker.addr, ConnectOpts::v311("").clean(false));
    // [MQTT-3.1.3-8]: return code 0x02 (identifier rejected), then close.
    assert_eq!(
        connack.code,
        ReasonCode::CLIENT_IDENTIFIER_NOT_VALID,
        "{connack:?}"
    );
    assert_eq!(connack.code.to_v3_connack(), 0x02);
    client.expect_closed(CLOSE_TIMEOUT);
}

#[test]
fn v5_empty_client_id_gets_an_assigned_client_identifier() {
    let broker = start_broker(|_| {});
    let (_client, connack) = RawClient::connect(broker.addr, ConnectOpts::v5(""));
    assert_eq!(connack.code, ReasonCode::SUCCESS);
    // [MQTT-3.2.2-16]: the CONNACK carries the identifier the server made up.
    let assigned = connack
        .properties
        .assigned_client_identifier
        .clone()
        .expect("CONNACK has an Assigned Client Identifier");
    assert!(!assigned.is_empty());
}

#[test]
fn assigned_client_identifiers_are_distinct() {
    let broker = start_broker(|_| {});
    let (_a, first) = RawClient::connect(broker.addr, ConnectOpts::v5(""));
    let (_b, second) = RawClient::connect(broker.addr, ConnectOpts::v5(""));
    assert_ne!(
        first.properties.assigned_client_identifier,
        second.properties.assigned_client_identifier
    );
}

#[test]
fn pingreq_as_first_packet_is_closed_without_reply() {
    let broker = start_broker(|_| {});
    let mut client = RawClient::open(broker.addr, ProtocolVersion::V3_1_1);
    // [MQTT-3.1.0-1]: the first packet must be CONNECT.
    client.send(&Packet::PingReq);
    assert_eq!(client.expect_closed(CLOSE_TIMEOUT), None);
}

#[test]
fn publish_as_first_packet_is_closed_without_reply() {
    let broker = start_broker(|_| {});
    let mut subscriber = RawClient::connected(broker.addr, ConnectOpts::v311("sub"));
    subscriber.subscribe(&[("first/#", QoS::AtMostOnce)]);
    let mut client = RawClient::open(broker.addr, ProtocolVersion::V3_1_1);
    client.send(&Packet::Publish(make_publish(
        "first/x",
        b"no",
        QoS::AtMostOnce,
        false,
    )));
    // [MQTT-3.1.0-1]: closed, and the PUBLISH is not routed.
    assert_eq!(client.expect_closed(CLOSE_TIMEOUT), None);
    let mut publisher = RawClient::connected(broker.addr, ConnectOpts::v311("pub"));
    publisher.publish("first/after", b"yes", QoS::AtMostOnce, false);
    assert_eq!(subscriber.recv_publish().topic.as_str(), "first/after");
}

#[test]
fn second_connect_is_closed() {
    let broker = start_broker(|_| {});
    let opts = ConnectOpts::v311("twice");
    let mut client = RawClient::connected(broker.addr, opts.clone());
    // [MQTT-3.1.0-2]: a second CONNECT is a protocol violation; the server closes.
    client.send(&opts.to_packet());
    assert_eq!(client.expect_closed(CLOSE_TIMEOUT), None);
}

#[test]
fn same_client_id_takes_over_and_publishes_the_first_connections_will() {
    let broker = start_broker(|_| {});
    let mut watcher = RawClient::connected(broker.addr, ConnectOpts::v311("watcher"));
    watcher.subscribe(&[("wills/#", QoS::AtLeastOnce)]);
    let first_opts = ConnectOpts::v311("shared-id").will(will(
        "wills/shared-id",
        b"gone",
        QoS::AtLeastOnce,
        false,
    ));
    let mut first = RawClient::connected(broker.addr, first_opts);

    let mut second = RawClient::connected(broker.addr, ConnectOpts::v311("shared-id"));
    // [MQTT-3.1.4-2]: the existing connection is closed, and its will is published.
    first.expect_closed(CLOSE_TIMEOUT);
    let will = watcher.recv_publish();
    assert_eq!(
        (will.topic.as_str(), text(&will)),
        ("wills/shared-id", "gone")
    );

    // The new connection owns the client id and works.
    second.subscribe(&[("mine", QoS::AtLeastOnce)]);
    second.publish("mine", b"works", QoS::AtLeastOnce, false);
    assert_eq!(text(&second.recv_publish()), "works");
}

#[test]
fn client_id_longer_than_the_limit_gets_0x02() {
    let broker = start_broker(|limits| limits.client_id_len_max = 8);
    let (_ok, connack) = RawClient::connect(broker.addr, ConnectOpts::v311("12345678"));
    assert_eq!(
        connack.code,
        ReasonCode::SUCCESS,
        "an id of exactly the limit is accepted"
    );

    let (mut client, connack) = RawClient::connect(broker.addr, ConnectOpts::v311("123456789"));
    assert_eq!(
        connack.code,
        ReasonCode::CLIENT_IDENTIFIER_NOT_VALID,
        "{connack:?}"
    );
    client.expect_closed(CLOSE_TIMEOUT);
}

#[test]
fn rumqttc_connects_and_pings() {
    let broker = start_broker(|_| {});
    let mut opts = rumqttc::MqttOptions::new("rumqttc-ping", "127.0.0.1", broker.addr.port());
    // rumqttc sends PINGREQ after a keep-alive of silence.
    opts.set_keep_alive(Duration::from_secs(1));
    let (_client, mut connection) = rumqttc::Client::new(opts, 10);
    let code = rumqttc_wait(&mut connection, "CONNACK", |p| match p {
        rumqttc::Packet::ConnAck(ack) => Some(ack.code),
        _ => None,
    });
    assert_eq!(code, rumqttc::ConnectReturnCode::Success);
    for _ in 0..2 {
        rumqttc_wait(&mut connection, "PINGRESP", |p| {
            matches!(p, rumqttc::Packet::PingResp).then_some(())
        });
    }
}

#[test]
fn rumqttc_v5_connects_with_session_present_0() {
    let broker = start_broker(|_| {});
    let opts = v5::MqttOptions::new("rumqttc-v5", "127.0.0.1", broker.addr.port());
    let (_client, mut connection) = v5::Client::new(opts, 10);
    let deadline = Instant::now() + RECV_TIMEOUT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match connection.recv_timeout(left) {
            Ok(Ok(v5::Event::Incoming(v5::mqttbytes::v5::Packet::ConnAck(ack)))) => {
                assert_eq!(ack.code, v5::mqttbytes::v5::ConnectReturnCode::Success);
                assert!(!ack.session_present);
                return;
            }
            Ok(Ok(_)) => {}
            Ok(Err(error)) => panic!("rumqttc v5 connection error: {error}"),
            Err(_) => panic!("rumqttc v5: no CONNACK within {RECV_TIMEOUT:?}"),
        }
    }
}

/// Sends `wire` as the first packet and returns the CONNACK code (asserting it is SUCCESS).
fn accepted_raw(wire: &[u8], version: ProtocolVersion) {
    let broker = start_broker(|_| {});
    let mut client = RawClient::open(broker.addr, version);
    client.send_raw(wire);
    match client.recv() {
        Packet::ConnAck(connack) => assert_eq!(connack.code, ReasonCode::SUCCESS, "{connack:?}"),
        other => panic!("expected CONNACK, got {other:?}"),
    }
}

/// Index of the Connect Flags byte in a short CONNECT: fixed header (2), protocol name.
const V31_FLAGS_AT: usize = 2 + 2 + 6 + 1;
const V311_FLAGS_AT: usize = 2 + 2 + 4 + 1;

#[test]
fn mqtt_3_1_connect_with_the_reserved_flag_or_fixed_header_flags_is_accepted() {
    // 3.1 (MQIsdp) defines neither the reserved Connect Flags bit nor CONNECT's fixed-header
    // flags; legacy clients set them and mosquitto accepts them.
    let mut wire = ConnectOpts::v31("legacy-31").to_wire();
    wire[V31_FLAGS_AT] |= 0x01;
    accepted_raw(&wire, ProtocolVersion::V3_1);
    let mut wire = ConnectOpts::v31("legacy-31").to_wire();
    wire[0] |= 0x0F;
    accepted_raw(&wire, ProtocolVersion::V3_1);
}

#[test]
fn mqtt_3_1_1_connect_with_the_reserved_flag_or_fixed_header_flags_is_closed() {
    let broker = start_broker(|_| {});
    // [MQTT-3.1.2-3] and [MQTT-2.2.2-2], then [MQTT-3.1.4-1]: closed without CONNACK.
    let mut wire = ConnectOpts::v311("strict-311").to_wire();
    wire[V311_FLAGS_AT] |= 0x01;
    let mut client = RawClient::open(broker.addr, ProtocolVersion::V3_1_1);
    client.send_raw(&wire);
    assert_eq!(client.expect_refused(), None);
    let mut wire = ConnectOpts::v311("strict-311").to_wire();
    wire[0] |= 0x02;
    let mut client = RawClient::open(broker.addr, ProtocolVersion::V3_1_1);
    client.send_raw(&wire);
    assert_eq!(client.expect_refused(), None);
}

#[test]
fn mqtt_3_1_1_malformed_connect_is_closed_without_connack() {
    let broker = start_broker(|_| {});
    // Will QoS without the will flag [MQTT-3.1.2-13], and the will flag with no will topic.
    for bits in [0x08, 0x04] {
        let mut wire = ConnectOpts::v311("malformed-311").to_wire();
        wire[V311_FLAGS_AT] |= bits;
        let mut client = RawClient::open(broker.addr, ProtocolVersion::V3_1_1);
        client.send_raw(&wire);
        // [MQTT-3.1.4-1]: a CONNECT that does not conform is closed without CONNACK; 3.1.1
        // has return codes only for the level (0x01) and the client id (0x02).
        assert_eq!(client.expect_refused(), None, "flags {bits:#04X}");
    }
}

#[test]
fn control_characters_in_client_id_user_name_or_will_topic_are_refused() {
    let broker = start_broker(|_| {});
    // 1.5.3: a string SHOULD NOT contain U+0001..U+001F or U+007F..U+009F and the receiver
    // MAY close; refused by default (`protocol.allow_control_characters`). The client id has
    // a return code (0x02 identifier rejected), the user name too (0x04 bad user name or
    // password); the will topic has none, so that connection is closed without CONNACK.
    let (mut client, connack) = RawClient::connect(broker.addr, ConnectOpts::v311("ctl\u{1}"));
    assert_eq!(connack.code, ReasonCode::CLIENT_IDENTIFIER_NOT_VALID);
    client.expect_closed(CLOSE_TIMEOUT);
    let mut opts = ConnectOpts::v311("ctl-user");
    opts.username = Some("user\u{7F}".into());
    let (mut client, connack) = RawClient::connect(broker.addr, opts);
    assert_eq!(connack.code, ReasonCode::BAD_USER_NAME_OR_PASSWORD);
    client.expect_closed(CLOSE_TIMEOUT);
    let opts = ConnectOpts::v311("ctl-will").will(will("w\u{9F}", b"x", QoS::AtMostOnce, false));
    let mut client = RawClient::open(broker.addr, ProtocolVersion::V3_1_1);
    client.send(&opts.to_packet());
    assert_eq!(client.expect_refused(), None);
}
