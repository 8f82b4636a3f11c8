//! Malformed input over real sockets. Raw bytes are the point here, so packets are written by
//! hand. Every case checks two things: the offending connection is closed, and the broker
//! keeps serving: a client connected before the bad one still completes a round trip, and so
//! does a new one (see `Witness`).

mod common;

use bytes::BytesMut;
use common::{start_broker, ConnectOpts, RawClient, Witness, CLOSE_TIMEOUT};
use ringmq::codec::{self, ProtocolVersion, ReasonCode};

/// Connects a 3.1.1 client, sends `bytes`, and expects the broker to close it and survive.
fn closed_after_connect(bytes: &[u8]) {
    let broker = start_broker(|_| {});
    let witness = Witness::new(broker.addr);
    let mut client = RawClient::connected(broker.addr, ConnectOpts::v311("bad"));
    client.send_raw(bytes);
    client.expect_closed(CLOSE_TIMEOUT);
    witness.assert_alive();
}

#[test]
fn remaining_length_of_five_bytes_closes_the_connection() {
    // 3.1.1 section 2.2.3, 5.0 section 1.5.5: the remaining length is at most four bytes.
    closed_after_connect(&[0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F]);
}

#[test]
fn subscribe_with_wrong_reserved_flags_closes_the_connection() {
    // [MQTT-3.8.1-1]: SUBSCRIBE's fixed-header flags must be 0010; here they are 0000.
    closed_after_connect(&[0x80, 0x06, 0x00, 0x01, 0x00, 0x01, b'a', 0x00]);
}

#[test]
fn publish_with_qos_3_closes_the_connection() {
    // [MQTT-3.3.1-4]: a PUBLISH must not have both QoS bits set.
    closed_after_connect(&[0x36, 0x05, 0x00, 0x01, b'a', 0x00, 0x01]);
}

#[test]
fn invalid_utf8_in_a_topic_closes_the_connection() {
    // [MQTT-1.5.3-1]: 0xC3 0x28 is not UTF-8.
    closed_after_connect(&[0x30, 0x05, 0x00, 0x02, 0xC3, 0x28, b'x']);
}

#[test]
fn null_character_in_a_topic_closes_the_connection() {
    // [MQTT-1.5.3-2]: a UTF-8 string must not contain U+0000.
    closed_after_connect(&[0x30, 0x06, 0x00, 0x03, b'a', 0x00, b'b', b'x']);
}

#[test]
fn qos1_publish_with_packet_id_0_closes_the_connection() {
    // [MQTT-2.3.1-1]: packet identifiers are non-zero.
    closed_after_connect(&[0x32, 0x06, 0x00, 0x01, b'a', 0x00, 0x00, b'x']);
}

#[test]
fn subscribe_without_filters_closes_the_connection() {
    // [MQTT-3.8.3-3]: SUBSCRIBE carries at least one topic filter.
    closed_after_connect(&[0x82, 0x02, 0x00, 0x01]);
}

#[test]
fn packet_over_packet_size_max_is_refused_from_its_fixed_header() {
    let broker = start_broker(|limits| limits.packet_size_max = 1024);
    let witness = Witness::new(broker.addr);
    let mut client = RawClient::connected(broker.addr, ConnectOpts::v311("big"));
    // A PUBLISH fixed header claiming 1 MiB of body, and no body: the broker must decide from
    // the header alone, without waiting for (or buffering) the body.
    client.send_raw(&[0x30, 0x80, 0x80, 0x40]);
    client.expect_closed(CLOSE_TIMEOUT);
    witness.assert_alive();
}

#[test]
fn packet_over_packet_size_max_gets_disconnect_0x95_for_a_v5_client() {
    let broker = start_broker(|limits| limits.packet_size_max = 1024);
    let witness = Witness::new(broker.addr);
    let mut client = RawClient::connected(broker.addr, ConnectOpts::v5("big"));
    client.send_raw(&[0x30, 0x80, 0x80, 0x40]);
    // 5.0 section 4.13: the server may send DISCONNECT 0x95 (packet too large) before closing.
    let disconnect = client
        .expect_closed(CLOSE_TIMEOUT)
        .expect("DISCONNECT before the close");
    assert_eq!(disconnect.code, ReasonCode::PACKET_TOO_LARGE);
    witness.assert_alive();
}

#[test]
fn garbage_before_connect_closes_the_connection() {
    let broker = start_broker(|_| {});
    let witness = Witness::new(broker.addr);
    let mut client = RawClient::open(broker.addr, ProtocolVersion::V3_1_1);
    client.send_raw(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    client.expect_closed(CLOSE_TIMEOUT);
    witness.assert_alive();
}

#[test]
fn truncated_connect_followed_by_close_is_cleaned_up() {
    let broker = start_broker(|_| {});
    let witness = Witness::new(broker.addr);
    let mut client = RawClient::open(broker.addr, ProtocolVersion::V3_1_1);
    let mut connect = BytesMut::new();
    let packet = ConnectOpts::v311("truncated").to_packet();
    codec::encode(&packet, ProtocolVersion::V3_1_1, &mut connect).expect("CONNECT encodes");
    client.send_raw(&connect[..connect.len() / 2]);
    client.shutdown_write();
    // The broker sees EOF mid-frame and closes its side too.
    client.expect_closed(CLOSE_TIMEOUT);
    witness.assert_alive();
}

#[test]
fn v5_duplicate_property_gets_disconnect_with_a_protocol_error() {
    let broker = start_broker(|_| {});
    let witness = Witness::new(broker.addr);
    let mut client = RawClient::connected(broker.addr, ConnectOpts::v5("dup-prop"));
    #[rustfmt::skip]
    client.send_raw(&[
        0x30, 9,                    // PUBLISH QoS 0, remaining length
        0x00, 0x01, b'a',           // topic
        4,                          // properties length
        0x01, 0x00,                 // Payload Format Indicator
        0x01, 0x00,                 // Payload Format Indicator, again
        b'x',                       // payload
    ]);
    // 5.0 section 3.3.2.3.2: including a property twice is a Protocol Error; 4.13: the server
    // sends DISCONNECT with 0x82 (or 0x81, malformed) and closes.
    let disconnect = client
        .expect_closed(CLOSE_TIMEOUT)
        .expect("DISCONNECT before the close");
    assert!(
        [ReasonCode::PROTOCOL_ERROR, ReasonCode::MALFORMED_PACKET].contains(&disconnect.code),
        "DISCONNECT reason {:?}",
        disconnect.code
    );
    witness.assert_alive();
}
