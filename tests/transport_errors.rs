//! Bad input on TLS and WebSocket listeners, sent with a raw `TcpStream`: each is answered as
//! `src/transport/ws.rs` and `tls.rs` define (a TLS alert, an HTTP status, a close code),
//! the connection is closed, the failure is counted under `$SYS/broker/transport/`, and the
//! broker still serves a client connected before and one connecting after.
//!
//! `tls_handshake_timeout_s` is 1 here, so a handshake left hanging is closed within the test.

mod common;

use std::collections::BTreeMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::certs::Pki;
use common::{start_broker_with, text, tls, Broker, ConnectOpts, RawClient, Witness};
use ringmq::codec::QoS;
use ringmq::config::{ListenerConfig, ListenerProtocol};

/// Listener 1: TLS (MQTT). Listener 2: WebSocket (plain).
fn broker(pki: &Pki) -> Broker {
    let files = pki.tls_files();
    start_broker_with(move |config| {
        let any_port = SocketAddr::from(([127, 0, 0, 1], 0));
        let mut mqtts = ListenerConfig::mqtt(any_port);
        mqtts.tls = Some(files);
        let mut ws = ListenerConfig::mqtt(any_port);
        ws.protocol = ListenerProtocol::Ws;
        config.listeners.extend([mqtts, ws]);
        config.limits.tls_handshake_timeout_s = 1;
    })
}

const TLS: usize = 1;
const WS: usize = 2;

/// How long a test waits for an answer that is due after the 1 s handshake timeout.
const TIMEOUT_ANSWER_WITHIN: Duration = Duration::from_secs(5);

fn raw(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).expect("TCP connect");
    stream.set_nodelay(true).expect("TCP_NODELAY");
    stream
}

/// Everything the broker sends until it closes the connection; fails if it is still open
/// after `within`.
fn read_until_closed(stream: &mut TcpStream, within: Duration) -> Vec<u8> {
    let deadline = Instant::now() + within;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "still open after {within:?}; got {got:02x?}"
        );
        stream.set_read_timeout(Some(left)).expect("read timeout");
        match stream.read(&mut buf) {
            Ok(0) => return got,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) => {}
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return got,
            Err(e) => panic!("read failed: {e}"),
        }
    }
}

/// Waits until `$SYS/broker/transport/*` say exactly `expected` (counters not named: 0).
/// Counting updates rather than seconds keeps this independent of the timer's punctuality.
fn assert_counters(broker: &Broker, expected: &[(&str, u64)]) {
    let names = [
        "tls_handshake_failures",
        "handshake_timeouts",
        "ws_upgrades_refused",
        "ws_protocol_errors",
    ];
    let want: BTreeMap<&str, String> = names
        .iter()
        .map(|name| {
            let value = expected.iter().find(|(n, _)| n == name).map_or(0, |e| e.1);
            (*name, value.to_string())
        })
        .collect();
    let mut reader = RawClient::connected(broker.addr, ConnectOpts::v311("sys-reader"));
    reader.subscribe(&[("$SYS/broker/transport/+", QoS::AtMostOnce)]);
    let mut seen = BTreeMap::new();
    for _ in 0..(names.len() * 10) {
        let publish = reader.recv_publish();
        let name = publish
            .topic
            .as_str()
            .trim_start_matches("$SYS/broker/transport/");
        let name = names.iter().find(|n| **n == name).expect("a known counter");
        seen.insert(*name, text(&publish).to_owned());
        if seen == want {
            return;
        }
    }
    panic!("$SYS/broker/transport/ never said {want:?}; last {seen:?}");
}

/// The broker closes a TLS connection that sent `bytes` with a fatal alert.
fn assert_tls_alert_then_close(broker: &Broker, bytes: &[u8]) {
    let mut stream = raw(broker.listener(TLS));
    stream.write_all(bytes).expect("send");
    let answer = read_until_closed(&mut stream, common::CLOSE_TIMEOUT);
    // An alert record: content type 21, then a TLS version, length 2, level 2 (fatal).
    assert!(
        answer.len() >= 7 && answer[0] == 0x15 && answer[5] == 2,
        "expected a fatal TLS alert, got {answer:02x?}"
    );
}

/// A TLS client with a good handshake still gets served.
fn assert_tls_serves(broker: &Broker, pki: &Pki) {
    let config = tls::client_config(&pki.ca_file, None, &[]);
    tls::connected(broker.listener(TLS), &config, ConnectOpts::v311("good-tls")).ping();
}

#[test]
fn garbage_instead_of_a_client_hello_gets_an_alert_and_is_counted() {
    let pki = Pki::new("garbage-hello");
    let broker = broker(&pki);
    let witness = Witness::new(broker.addr);
    assert_tls_alert_then_close(&broker, &[0xff; 64]);
    assert_counters(&broker, &[("tls_handshake_failures", 1)]);
    assert_tls_serves(&broker, &pki);
    witness.assert_alive();
}

#[test]
fn plaintext_mqtt_connect_on_the_tls_port_gets_an_alert_and_is_counted() {
    let pki = Pki::new("plaintext-connect");
    let broker = broker(&pki);
    let witness = Witness::new(broker.addr);
    assert_tls_alert_then_close(&broker, &ConnectOpts::v311("plain").to_wire());
    assert_counters(&broker, &[("tls_handshake_failures", 1)]);
    assert_tls_serves(&broker, &pki);
    witness.assert_alive();
}

#[test]
fn a_tls_handshake_left_hanging_is_closed_after_the_timeout() {
    let pki = Pki::new("half-handshake");
    let broker = broker(&pki);
    let witness = Witness::new(broker.addr);
    // A real ClientHello, then silence once the server has answered it.
    let config = tls::client_config(&pki.ca_file, None, &[]);
    let name = rustls::pki_types::ServerName::IpAddress(std::net::Ipv4Addr::LOCALHOST.into());
    let mut client = rustls::ClientConnection::new(config, name).expect("client state");
    let mut hello = Vec::new();
    client.write_tls(&mut hello).expect("ClientHello");
    let mut stream = raw(broker.listener(TLS));
    stream.write_all(&hello).expect("send the ClientHello");
    let answer = read_until_closed(&mut stream, TIMEOUT_ANSWER_WITHIN);
    assert_eq!(answer.first(), Some(&0x16), "the ServerHello came first");
    assert_counters(&broker, &[("handshake_timeouts", 1)]);
    assert_tls_serves(&broker, &pki);
    witness.assert_alive();
}

/// An upgrade request for `/mqtt` with these extra header lines.
fn upgrade_request(extra: &str) -> String {
    format!(
        "GET /mqtt HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
    )
}

/// Sends `request` to the WebSocket listener and returns the whole answer, up to the close.
fn ws_answer(broker: &Broker, request: &[u8], within: Duration) -> String {
    let mut stream = raw(broker.listener(WS));
    stream.write_all(request).expect("send");
    String::from_utf8_lossy(&read_until_closed(&mut stream, within)).into_owned()
}

fn assert_status(answer: &str, status: &str) {
    assert!(
        answer.starts_with(&format!("HTTP/1.1 {status}")),
        "expected HTTP {status}, got {answer:?}"
    );
}

#[test]
fn websocket_upgrades_refused_with_their_http_status() {
    let pki = Pki::new("ws-refused");
    let broker = broker(&pki);
    let witness = Witness::new(broker.addr);
    // No MQTT subprotocol [MQTT-6.0.0-3].
    let answer = ws_answer(
        &broker,
        upgrade_request("").as_bytes(),
        common::CLOSE_TIMEOUT,
    );
    assert_status(&answer, "400");
    // A plain GET, as a browser's address bar sends: answered, not left hanging.
    let get = b"GET /mqtt HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    assert_status(&ws_answer(&broker, get, common::CLOSE_TIMEOUT), "426");
    assert_counters(&broker, &[("ws_upgrades_refused", 2)]);
    witness.assert_alive();
}

#[test]
fn a_slow_loris_upgrade_gets_408_after_the_timeout() {
    let pki = Pki::new("slow-loris");
    let broker = broker(&pki);
    let witness = Witness::new(broker.addr);
    let partial = b"GET /mqtt HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n";
    assert_status(&ws_answer(&broker, partial, TIMEOUT_ANSWER_WITHIN), "408");
    assert_counters(&broker, &[("handshake_timeouts", 1)]);
    witness.assert_alive();
}

/// An upgraded WebSocket connection (101 read) to listener 2.
fn upgraded(broker: &Broker) -> TcpStream {
    let mut stream = raw(broker.listener(WS));
    let request = upgrade_request("Sec-WebSocket-Protocol: mqtt\r\n");
    stream
        .write_all(request.as_bytes())
        .expect("send the upgrade");
    stream
        .set_read_timeout(Some(common::RECV_TIMEOUT))
        .expect("read timeout");
    let mut answer = Vec::new();
    let mut byte = [0u8; 1];
    while !answer.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte).expect("read the 101");
        answer.push(byte[0]);
    }
    let answer = String::from_utf8_lossy(&answer);
    assert_status(&answer, "101");
    // RFC 6455 1.3's example key and its accept value.
    assert!(answer.contains("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="), "{answer}");
    stream
}

/// Sends `frame` on an upgraded connection; asserts the broker answers with a close frame
/// carrying `code`, then closes.
fn assert_closed_with(broker: &Broker, frame: &[u8], code: u16) {
    let mut stream = upgraded(broker);
    stream.write_all(frame).expect("send the frame");
    let answer = read_until_closed(&mut stream, common::CLOSE_TIMEOUT);
    // A server close frame: FIN + opcode 8, unmasked, payload = code (+ reason).
    assert!(
        answer.len() >= 4 && answer[0] == 0x88 && answer[1] & 0x80 == 0,
        "expected a close frame, got {answer:02x?}"
    );
    assert_eq!(
        u16::from_be_bytes([answer[2], answer[3]]),
        code,
        "{answer:02x?}"
    );
}

#[test]
fn bad_websocket_frames_are_closed_with_their_codes() {
    let pki = Pki::new("ws-frames");
    let broker = broker(&pki);
    let witness = Witness::new(broker.addr);
    let mask = [0x37, 0xfa, 0x21, 0x3d];
    // A binary frame claiming 4 GiB, far above packet_size_max: refused from the header.
    let mut oversized = vec![0x82, 0x80 | 127];
    oversized.extend_from_slice(&(1u64 << 32).to_be_bytes());
    oversized.extend_from_slice(&mask);
    assert_closed_with(&broker, &oversized, 1009);
    // A text frame [MQTT-6.0.0-1]: "Hello", masked.
    let mut text_frame = vec![0x81, 0x85];
    text_frame.extend_from_slice(&mask);
    text_frame.extend(b"Hello".iter().zip(mask.iter().cycle()).map(|(b, m)| b ^ m));
    assert_closed_with(&broker, &text_frame, 1003);
    // A client frame without a mask (RFC 6455 5.1).
    assert_closed_with(&broker, &[0x82, 0x02, 0xc0, 0x00], 1002);
    assert_counters(&broker, &[("ws_protocol_errors", 3)]);
    witness.assert_alive();
}
