//! MQTT 5.0 enhanced authentication (section 4.12) with SCRAM-SHA-256 against the `[auth]`
//! user store: the AUTH exchange before CONNACK, unknown methods, wrong passwords,
//! re-authentication on a live connection, and protocol errors in the exchange.
//!
//! No client library on this machine speaks the AUTH continuation (paho-mqtt 2.2 and
//! rumqttc 0.24/0.25 send an Authentication Method but cannot answer AUTH 0x18), so the client
//! side is `ringmq::auth::ScramClient` (RFC 5802/7677, checked against the RFC 7677 test
//! vector in the unit tests) over our raw codec client.

mod common;

use ringmq::codec::PropertyValues;
use std::time::Duration;

use bytes::Bytes;
use common::{start_broker_with, RawClient, CLOSE_TIMEOUT};
use ringmq::auth::ScramClient;
use ringmq::codec::{Auth, ByteStr, Connect, Packet, Properties, ProtocolVersion, QoS, ReasonCode};

const METHOD: &str = "SCRAM-SHA-256";

fn broker() -> common::Broker {
    start_broker_with(|c| {
        c.auth
            .scram_sha256
            .insert("alice".into(), "correct horse".into());
    })
}

fn connect_packet(client_id: &str, method: &str, data: Option<Bytes>) -> Packet {
    Packet::Connect(Box::new(Connect {
        protocol: ProtocolVersion::V5,
        clean_start: true,
        keep_alive_s: 30,
        properties: Properties::from(PropertyValues {
            authentication_method: Some(ByteStr::from(method)),
            authentication_data: data,
            ..Default::default()
        }),
        client_id: ByteStr::from(client_id),
        will: None,
        username: None,
        password: None,
    }))
}

fn auth_packet(code: ReasonCode, data: Bytes) -> Packet {
    Packet::Auth(Auth {
        code,
        properties: Properties::from(PropertyValues {
            authentication_method: Some(ByteStr::from(METHOD)),
            authentication_data: Some(data),
            ..Default::default()
        }),
    })
}

/// Expects AUTH 0x18 with SCRAM-SHA-256 and returns its data.
fn expect_continue(client: &mut RawClient) -> Bytes {
    match client.recv() {
        Packet::Auth(auth) => {
            assert_eq!(auth.code, ReasonCode::CONTINUE_AUTHENTICATION);
            assert_eq!(
                auth.properties
                    .authentication_method
                    .as_ref()
                    .map(|m| m.as_str()),
                Some(METHOD)
            );
            auth.properties
                .authentication_data
                .clone()
                .expect("server-first data")
        }
        other => panic!("expected AUTH 0x18, got {other:?}"),
    }
}

/// Runs the whole SCRAM exchange; returns the client and the final packet from the broker.
fn scram_connect(addr: std::net::SocketAddr, user: &str, password: &str) -> (RawClient, Packet) {
    let mut scram = ScramClient::new(user, password).expect("random nonce");
    let mut client = RawClient::open(addr, ProtocolVersion::V5);
    client.send(&connect_packet("scram", METHOD, Some(scram.client_first())));
    let server_first = expect_continue(&mut client);
    let client_final = scram
        .handle_server_first(&server_first)
        .expect("server-first parses");
    client.send(&auth_packet(
        ReasonCode::CONTINUE_AUTHENTICATION,
        client_final,
    ));
    let last = client.recv();
    if let Packet::ConnAck(connack) = &last {
        if connack.code == ReasonCode::SUCCESS {
            let server_final = connack
                .properties
                .authentication_data
                .as_ref()
                .expect("CONNACK carries server-final");
            scram
                .verify_server_final(server_final)
                .expect("the server proves it knows the password");
        }
    }
    (client, last)
}

#[test]
fn scram_exchange_connects_and_the_connection_works() {
    let broker = broker();
    let (mut client, last) = scram_connect(broker.addr, "alice", "correct horse");
    let Packet::ConnAck(connack) = last else {
        panic!("expected CONNACK, got {last:?}");
    };
    assert_eq!(connack.code, ReasonCode::SUCCESS);
    assert_eq!(
        connack
            .properties
            .authentication_method
            .as_ref()
            .map(|m| m.as_str()),
        Some(METHOD)
    );
    client.subscribe(&[("auth/t", QoS::AtLeastOnce)]);
    client.publish("auth/t", b"hello", QoS::AtLeastOnce, false);
    let publish = client.recv_publish();
    assert_eq!(&publish.payload[..], b"hello");
}

#[test]
fn wrong_password_and_unknown_user_get_not_authorized() {
    let broker = broker();
    for (user, password) in [("alice", "wrong"), ("mallory", "correct horse")] {
        let (mut client, last) = scram_connect(broker.addr, user, password);
        match last {
            Packet::ConnAck(connack) => assert_eq!(
                connack.code,
                ReasonCode::NOT_AUTHORIZED,
                "{user}/{password}"
            ),
            other => panic!("expected CONNACK 0x87, got {other:?}"),
        }
        client.expect_closed(CLOSE_TIMEOUT);
    }
}

#[test]
fn unknown_method_gets_bad_authentication_method() {
    let broker = broker();
    let mut client = RawClient::open(broker.addr, ProtocolVersion::V5);
    client.send(&connect_packet("nope", "NOPE", None));
    match client.recv() {
        // [MQTT-4.12.0-1]
        Packet::ConnAck(connack) => {
            assert_eq!(connack.code, ReasonCode::BAD_AUTHENTICATION_METHOD)
        }
        other => panic!("expected CONNACK 0x8C, got {other:?}"),
    }
    client.expect_closed(CLOSE_TIMEOUT);
}

#[test]
fn scram_is_refused_when_no_users_are_configured() {
    let broker = start_broker_with(|_| {});
    let mut client = RawClient::open(broker.addr, ProtocolVersion::V5);
    let scram = ScramClient::new("alice", "x").expect("random nonce");
    client.send(&connect_packet("s", METHOD, Some(scram.client_first())));
    match client.recv() {
        Packet::ConnAck(connack) => {
            assert_eq!(connack.code, ReasonCode::BAD_AUTHENTICATION_METHOD)
        }
        other => panic!("expected CONNACK 0x8C, got {other:?}"),
    }
}

#[test]
fn re_authentication_on_a_live_connection() {
    let broker = broker();
    let (mut client, last) = scram_connect(broker.addr, "alice", "correct horse");
    assert!(matches!(last, Packet::ConnAck(ref c) if c.code == ReasonCode::SUCCESS));
    // [MQTT-4.12.1-1]: the client starts with AUTH 0x19 and the same method.
    let mut scram = ScramClient::new("alice", "correct horse").expect("random nonce");
    client.send(&auth_packet(
        ReasonCode::RE_AUTHENTICATE,
        scram.client_first(),
    ));
    let server_first = expect_continue(&mut client);
    let client_final = scram.handle_server_first(&server_first).expect("parses");
    client.send(&auth_packet(
        ReasonCode::CONTINUE_AUTHENTICATION,
        client_final,
    ));
    match client.recv() {
        Packet::Auth(auth) => {
            assert_eq!(auth.code, ReasonCode::SUCCESS);
            let server_final = auth
                .properties
                .authentication_data
                .clone()
                .expect("server-final");
            scram.verify_server_final(&server_final).expect("verifies");
        }
        other => panic!("expected AUTH 0x00, got {other:?}"),
    }
    client.ping();

    // A failed re-authentication ends the connection with DISCONNECT [MQTT-4.12.1-2].
    let mut wrong = ScramClient::new("alice", "wrong").expect("random nonce");
    client.send(&auth_packet(
        ReasonCode::RE_AUTHENTICATE,
        wrong.client_first(),
    ));
    let server_first = expect_continue(&mut client);
    let client_final = wrong.handle_server_first(&server_first).expect("parses");
    client.send(&auth_packet(
        ReasonCode::CONTINUE_AUTHENTICATION,
        client_final,
    ));
    let disconnect = client
        .expect_closed(CLOSE_TIMEOUT)
        .expect("DISCONNECT first");
    assert_eq!(disconnect.code, ReasonCode::NOT_AUTHORIZED);
}

#[test]
fn auth_without_a_method_at_connect_is_a_protocol_error() {
    let broker = broker();
    let mut client = RawClient::connected(broker.addr, common::ConnectOpts::v5("plain"));
    client.send(&auth_packet(
        ReasonCode::RE_AUTHENTICATE,
        Bytes::from_static(b"n,,n=alice,r=x"),
    ));
    let disconnect = client
        .expect_closed(CLOSE_TIMEOUT)
        .expect("DISCONNECT first");
    assert_eq!(disconnect.code, ReasonCode::PROTOCOL_ERROR);
}

#[test]
fn other_packets_during_the_exchange_are_refused() {
    let broker = broker();
    let scram = ScramClient::new("alice", "correct horse").expect("random nonce");
    let mut client = RawClient::open(broker.addr, ProtocolVersion::V5);
    client.send(&connect_packet("early", METHOD, Some(scram.client_first())));
    expect_continue(&mut client);
    client.send(&Packet::PingReq);
    match client.recv() {
        // [MQTT-4.12.0-4]: only AUTH or DISCONNECT until the exchange ends.
        Packet::ConnAck(connack) => assert_eq!(connack.code, ReasonCode::PROTOCOL_ERROR),
        other => panic!("expected CONNACK 0x82, got {other:?}"),
    }
    client.expect_closed(CLOSE_TIMEOUT);
}

#[test]
fn garbage_auth_data_never_breaks_the_broker() {
    let broker = broker();
    for data in [
        &b""[..],
        b"\xff\xfe",
        b"n,,",
        b"p=tls-unique,,n=alice,r=x",
        &[b'a'; 5000][..],
    ] {
        let mut client = RawClient::open(broker.addr, ProtocolVersion::V5);
        client.send(&connect_packet(
            "junk",
            METHOD,
            Some(Bytes::copy_from_slice(data)),
        ));
        // Empty data is a valid start (the server asks for client-first); the rest fail.
        match client.recv_timeout(Duration::from_secs(3)) {
            Some(Packet::ConnAck(connack)) => assert!(connack.code.is_error(), "{connack:?}"),
            Some(Packet::Auth(auth)) => {
                assert_eq!(auth.code, ReasonCode::CONTINUE_AUTHENTICATION)
            }
            other => panic!("unexpected answer to {data:?}: {other:?}"),
        }
    }
    let witness = RawClient::connected(broker.addr, common::ConnectOpts::v5("still-here"));
    drop(witness);
}
