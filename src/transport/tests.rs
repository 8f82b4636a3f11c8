//! The transports without a socket: a rustls client and hand-made WebSocket frames on one side,
//! [`Transport`] on the other, bytes passed by hand.

use std::sync::Arc;

use super::ws::{WsSettings, UPGRADE_REQUEST_BYTES_MAX};
use super::*;

/// A CA, a server certificate for localhost signed by it, and a client certificate (CN
/// `alice`) signed by it, as PEM files in a temporary directory.
struct Pki {
    dir: std::path::PathBuf,
    ca_der: rustls::pki_types::CertificateDer<'static>,
    client_chain: Vec<rustls::pki_types::CertificateDer<'static>>,
    client_key: rustls::pki_types::PrivateKeyDer<'static>,
}

fn pki(tag: &str) -> Pki {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let dir = std::env::temp_dir().join(format!("ringmq-transport-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let ca_key = KeyPair::generate().expect("ca key");
    let mut ca_params = CertificateParams::new(Vec::new()).expect("ca params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "test CA");
    let ca = ca_params.self_signed(&ca_key).expect("ca");
    let issuer = Issuer::new(ca_params, ca_key);
    let server_key = KeyPair::generate().expect("server key");
    let server = CertificateParams::new(vec!["localhost".into()])
        .expect("server params")
        .signed_by(&server_key, &issuer)
        .expect("server cert");
    let client_key = KeyPair::generate().expect("client key");
    let mut client_params = CertificateParams::new(Vec::new()).expect("client params");
    client_params
        .distinguished_name
        .push(DnType::CommonName, "alice");
    let client = client_params
        .signed_by(&client_key, &issuer)
        .expect("client cert");
    std::fs::write(dir.join("ca.pem"), ca.pem()).expect("write");
    std::fs::write(dir.join("server.pem"), server.pem()).expect("write");
    std::fs::write(dir.join("server.key"), server_key.serialize_pem()).expect("write");
    Pki {
        dir,
        ca_der: ca.der().clone(),
        client_chain: vec![client.der().clone()],
        client_key: rustls::pki_types::PrivateKeyDer::try_from(client_key.serialize_der())
            .expect("client key der"),
    }
}

impl Pki {
    fn files(&self, client_ca: bool) -> tls_config::TlsFiles {
        tls_config::TlsFiles {
            cert_file: self.dir.join("server.pem"),
            key_file: self.dir.join("server.key"),
            client_ca_file: client_ca.then(|| self.dir.join("ca.pem")),
            require_client_certificate: client_ca,
            use_identity_as_username: false,
        }
    }

    fn client(&self, with_cert: bool, alpn: &[&[u8]]) -> rustls::ClientConnection {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca_der.clone()).expect("root");
        #[allow(deprecated, reason = "the provider the broker uses")]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots);
        let mut config = if with_cert {
            builder
                .with_client_auth_cert(self.client_chain.clone(), self.client_key.clone_key())
                .expect("client auth")
        } else {
            builder.with_no_client_auth()
        };
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
        rustls::ClientConnection::new(Arc::new(config), name).expect("client")
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Moves bytes between a rustls client and the server transport until neither has anything
/// to say. Returns the MQTT bytes the server received.
fn pump(
    client: &mut rustls::ClientConnection,
    server: &mut Transport,
) -> Result<Vec<u8>, TransportError> {
    let mut mqtt = Vec::new();
    for _ in 0..32 {
        let mut to_server = Vec::new();
        while client.wants_write() {
            client.write_tls(&mut to_server).expect("client write");
        }
        if !to_server.is_empty() {
            server.receive(&to_server, &mut mqtt)?;
        }
        let Some(to_client) = server.take_wire() else {
            if to_server.is_empty() {
                break;
            }
            continue;
        };
        let mut slice = &to_client[..];
        while !slice.is_empty() {
            client.read_tls(&mut slice).expect("client read");
        }
        client
            .process_new_packets()
            .expect("client accepts the server's records");
    }
    Ok(mqtt)
}

fn client_reads(client: &mut rustls::ClientConnection) -> Vec<u8> {
    use std::io::Read;
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match client.reader().read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(_) => break,
        }
    }
    out
}

fn tls_spec(pki: &Pki, client_ca: bool) -> TransportSpec {
    TransportSpec {
        tls: Some(load_server_config(&pki.files(client_ca), &[b"mqtt"]).expect("config")),
        ws: None,
    }
}

#[test]
fn tls_carries_mqtt_bytes_both_ways_and_keeps_no_buffer_when_idle() {
    use std::io::Write;
    let pki = pki("roundtrip");
    let mut server = tls_spec(&pki, false)
        .start()
        .expect("start")
        .expect("a transport");
    let mut client = pki.client(false, &[b"mqtt"]);
    assert!(!server.is_open());
    pump(&mut client, &mut server).expect("handshake");
    assert!(server.is_open() && !client.is_handshaking());
    assert_eq!(client.alpn_protocol(), Some(&b"mqtt"[..]));
    // A CONNECT-sized write and a large one (several records).
    let big: Vec<u8> = (0..40_000u32).map(|i| i as u8).collect();
    client
        .writer()
        .write_all(b"\x10\x0c\x00\x04MQTT")
        .expect("write");
    client.writer().write_all(&big).expect("write");
    let received = pump(&mut client, &mut server).expect("data");
    assert_eq!(&received[..8], b"\x10\x0c\x00\x04MQTT");
    assert_eq!(&received[8..], &big[..]);
    server.send(b"\x20\x02\x00\x00").expect("send");
    let wire = server.take_wire().expect("encrypted CONNACK");
    client.read_tls(&mut &wire[..]).expect("read");
    client.process_new_packets().expect("process");
    assert_eq!(client_reads(&mut client), b"\x20\x02\x00\x00");
    let tls = server.tls.as_ref().expect("tls layer");
    assert_eq!(
        tls.incoming_capacity(),
        0,
        "an idle connection holds no receive buffer"
    );
    assert!(!server.has_wire());
}

#[test]
fn a_record_split_at_every_byte_arrives_whole() {
    use std::io::Write;
    let pki = pki("split");
    let mut server = tls_spec(&pki, false)
        .start()
        .expect("start")
        .expect("a transport");
    let mut client = pki.client(false, &[]);
    pump(&mut client, &mut server).expect("handshake");
    client.writer().write_all(b"hello, broker").expect("write");
    let mut record = Vec::new();
    client.write_tls(&mut record).expect("record");
    let mut mqtt = Vec::new();
    for byte in &record {
        server
            .receive(std::slice::from_ref(byte), &mut mqtt)
            .expect("part");
    }
    assert_eq!(mqtt, b"hello, broker");
}

#[test]
fn plaintext_on_a_tls_port_is_refused_with_an_alert() {
    let pki = pki("plaintext");
    let mut server = tls_spec(&pki, false)
        .start()
        .expect("start")
        .expect("a transport");
    let connect = b"\x10\x10\x00\x04MQTT\x04\x02\x00\x3c\x00\x04abcd";
    let error = server
        .receive(connect, &mut Vec::new())
        .expect_err("not TLS");
    assert!(matches!(error, TransportError::Tls(_)), "{error}");
    assert!(error.is_failure());
    assert_eq!(error.kind(), TransportFailure::TlsHandshake);
    assert!(server.is_closed());
    // Nothing more is taken in once refused.
    assert_eq!(server.receive(b"more", &mut Vec::new()), Ok(()));
}

#[test]
fn client_certificates_are_verified_and_their_common_name_read() {
    let pki = pki("clientcert");
    let spec = tls_spec(&pki, true);
    let mut server = spec.start().expect("start").expect("a transport");
    let mut client = pki.client(true, &[b"mqtt"]);
    pump(&mut client, &mut server).expect("handshake with a certificate");
    assert!(server.is_open());
    assert_eq!(server.peer_common_name().as_deref(), Some("alice"));
    // Without a certificate the handshake fails.
    let mut server = spec.start().expect("start").expect("a transport");
    let mut client = pki.client(false, &[b"mqtt"]);
    let mut refused = None;
    for _ in 0..8 {
        let mut to_server = Vec::new();
        while client.wants_write() {
            client.write_tls(&mut to_server).expect("write");
        }
        if let Err(error) = server.receive(&to_server, &mut Vec::new()) {
            refused = Some(error);
            break;
        }
        if let Some(wire) = server.take_wire() {
            client.read_tls(&mut &wire[..]).expect("read");
            let _ = client.process_new_packets();
        }
    }
    assert!(
        matches!(refused, Some(TransportError::Tls(_))),
        "{refused:?}"
    );
}

#[test]
fn a_bad_certificate_file_is_named() {
    let pki = pki("badfile");
    std::fs::write(pki.dir.join("server.pem"), "not a certificate").expect("write");
    let error = load_server_config(&pki.files(false), &[]).expect_err("no certificate");
    assert!(error.to_string().contains("server.pem"), "{error}");
    let mut files = pki.files(false);
    files.cert_file = pki.dir.join("missing.pem");
    let error = load_server_config(&files, &[]).expect_err("missing");
    assert!(error.to_string().contains("missing.pem"), "{error}");
}

const FRAME_MAX: u64 = 1024;

fn ws_spec() -> TransportSpec {
    TransportSpec {
        tls: None,
        ws: Some(Arc::new(WsSettings {
            path: "/mqtt".into(),
            frame_payload_max: FRAME_MAX,
        })),
    }
}

fn upgrade_request(protocol: &str) -> String {
    format!(
        "GET /mqtt HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Protocol: {protocol}\r\n\r\n"
    )
}

/// A masked client frame.
fn client_frame(opcode: u8, fin: bool, payload: &[u8]) -> Vec<u8> {
    let mask = [0x12, 0x34, 0x56, 0x78];
    let mut frame = vec![(u8::from(fin) << 7) | opcode];
    match payload.len() {
        n if n < 126 => frame.push(0x80 | n as u8),
        n if n < 65536 => {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            frame.push(0x80 | 127);
            frame.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    frame
}

fn upgraded() -> Transport {
    let mut server = ws_spec().start().expect("start").expect("a transport");
    server
        .receive(upgrade_request("mqtt").as_bytes(), &mut Vec::new())
        .expect("upgrade");
    let answer = server.take_wire().expect("101");
    let answer = String::from_utf8_lossy(&answer).to_string();
    assert!(answer.starts_with("HTTP/1.1 101"), "{answer}");
    // RFC 6455 section 1.3's example key and answer.
    assert!(
        answer.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
        "{answer}"
    );
    assert!(
        answer.contains("Sec-WebSocket-Protocol: mqtt\r\n"),
        "{answer}"
    );
    assert!(server.is_open());
    server
}

#[test]
fn websocket_payloads_are_one_stream_however_they_are_framed_and_split() {
    let stream: Vec<u8> = (0..600u32).map(|i| (i * 7) as u8).collect();
    // Several packets in one frame, a packet over several frames (one a continuation), and a
    // ping in between.
    let mut wire = client_frame(0x2, false, &stream[..100]);
    wire.extend(client_frame(0x9, true, b"hi"));
    wire.extend(client_frame(0x0, false, &stream[100..350]));
    wire.extend(client_frame(0x0, true, &stream[350..400]));
    wire.extend(client_frame(0x2, true, &stream[400..]));
    wire.extend(client_frame(0x2, true, &[]));
    for chunk in [1, 2, 3, 7, 13, 64, wire.len()] {
        let mut server = upgraded();
        let mut mqtt = Vec::new();
        for part in wire.chunks(chunk) {
            server.receive(part, &mut mqtt).expect("valid frames");
        }
        assert_eq!(mqtt, stream, "split every {chunk} bytes");
        assert_eq!(
            server.take_wire().as_deref(),
            Some(&[0x8a, 2, b'h', b'i'][..]),
            "pong"
        );
    }
}

/// A client that pings and never reads cannot make the broker queue pongs without end.
#[test]
fn unread_pongs_are_bounded() {
    let mut server = upgraded();
    let ping = client_frame(0x9, true, &[0; 125]);
    for _ in 0..10_000 {
        server.receive(&ping, &mut Vec::new()).expect("ping");
    }
    let queued = server.take_wire().expect("some pongs").len();
    assert!(queued <= PONG_BACKLOG_MAX, "{queued} bytes of pongs queued");
    assert!(
        queued >= PONG_BACKLOG_MAX / 2,
        "pongs are sent while there is room"
    );
}

#[test]
fn websocket_output_is_one_unmasked_binary_frame() {
    let mut server = upgraded();
    server.send(&[0xd0, 0x00]).expect("send");
    assert_eq!(
        server.take_wire().as_deref(),
        Some(&[0x82, 2, 0xd0, 0x00][..])
    );
    let big = vec![7u8; 300];
    server.send(&big).expect("send");
    let wire = server.take_wire().expect("frame");
    assert_eq!(&wire[..4], &[0x82, 126, 1, 44]);
    assert_eq!(&wire[4..], &big[..]);
    server.close();
    assert_eq!(
        server.take_wire().as_deref(),
        Some(&[0x88, 2, 0x03, 0xe8][..]),
        "close 1000"
    );
}

/// Each violation closes with its code (RFC 6455 7.4.1) and is counted as a protocol error.
#[test]
fn websocket_violations_close_with_their_codes() {
    let mut unmasked = client_frame(0x2, true, b"abc");
    unmasked[1] &= 0x7f;
    unmasked.drain(2..6);
    let cases: [(&str, Vec<u8>, u16); 5] = [
        ("text frame", client_frame(0x1, true, b"{}"), 1003),
        ("unmasked", unmasked, 1002),
        (
            "reserved bit",
            {
                let mut f = client_frame(0x2, true, b"x");
                f[0] |= 0x40;
                f
            },
            1002,
        ),
        (
            "too big",
            client_frame(0x2, true, &vec![0; FRAME_MAX as usize + 1]),
            1009,
        ),
        ("fragmented ping", client_frame(0x9, false, b""), 1002),
    ];
    for (what, frame, code) in cases {
        let mut server = upgraded();
        let error = server.receive(&frame, &mut Vec::new()).expect_err(what);
        assert_eq!(error.kind(), TransportFailure::WsProtocol, "{what}");
        let wire = server.take_wire().expect("close frame");
        assert_eq!(
            &wire[..],
            &[&[0x88, 2][..], &code.to_be_bytes()].concat()[..],
            "{what}"
        );
        assert!(server.is_closed());
    }
    // A close from the client is echoed and ends the connection without counting a failure.
    let mut server = upgraded();
    let error = server
        .receive(
            &client_frame(0x8, true, &1001u16.to_be_bytes()),
            &mut Vec::new(),
        )
        .expect_err("closed");
    assert!(!error.is_failure());
    assert_eq!(
        server.take_wire().as_deref(),
        Some(&[0x88, 2, 0x03, 0xe9][..])
    );
}

#[test]
fn refused_upgrades_get_their_http_status() {
    let long = format!(
        "GET /mqtt HTTP/1.1\r\nX: {}\r\n",
        "a".repeat(UPGRADE_REQUEST_BYTES_MAX)
    );
    let cases = [
        ("GET /mqtt HTTP/1.1\r\nHost: x\r\n\r\n".to_string(), "426"),
        (upgrade_request("mqtt").replace("/mqtt", "/other"), "404"),
        (upgrade_request("chat"), "400"),
        (upgrade_request("mqtt").replace("GET", "POST"), "405"),
        (
            upgrade_request("mqtt").replace("Version: 13", "Version: 8"),
            "426",
        ),
        (long, "431"),
    ];
    for (request, status) in cases {
        let mut server = ws_spec().start().expect("start").expect("a transport");
        let error = server
            .receive(request.as_bytes(), &mut Vec::new())
            .expect_err(status);
        assert_eq!(error.kind(), TransportFailure::WsUpgrade);
        let answer = server.take_wire().expect("an answer");
        let answer = String::from_utf8_lossy(&answer);
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {status}")),
            "{status}: {answer}"
        );
    }
    // An upgrade still incomplete when time runs out gets 408.
    let mut server = ws_spec().start().expect("start").expect("a transport");
    server
        .receive(b"GET /mqtt HTTP/1.1\r\nHo", &mut Vec::new())
        .expect("partial");
    assert!(server.take_wire().is_none());
    server.handshake_timed_out();
    let answer = server.take_wire().expect("408");
    assert!(answer.starts_with(b"HTTP/1.1 408"));
    // MQTT 3.1 clients offer `mqttv3.1` and get it back.
    let mut server = ws_spec().start().expect("start").expect("a transport");
    server
        .receive(upgrade_request("mqttv3.1").as_bytes(), &mut Vec::new())
        .expect("3.1");
    let answer = server.take_wire().expect("101");
    assert!(String::from_utf8_lossy(&answer).contains("Sec-WebSocket-Protocol: mqttv3.1\r\n"));
}

#[test]
fn websocket_over_tls_stacks_the_layers() {
    use std::io::Write;
    let pki = pki("wss");
    let spec = TransportSpec {
        tls: Some(load_server_config(&pki.files(false), &[b"http/1.1"]).expect("config")),
        ws: ws_spec().ws,
    };
    let mut server = spec.start().expect("start").expect("a transport");
    let mut client = pki.client(false, &[b"http/1.1"]);
    pump(&mut client, &mut server).expect("handshake");
    client
        .writer()
        .write_all(upgrade_request("mqtt").as_bytes())
        .expect("write");
    pump(&mut client, &mut server).expect("upgrade");
    assert!(server.is_open());
    assert!(client_reads(&mut client).starts_with(b"HTTP/1.1 101"));
    client
        .writer()
        .write_all(&client_frame(0x2, true, b"\xc0\x00"))
        .expect("write");
    let mqtt = pump(&mut client, &mut server).expect("frame");
    assert_eq!(mqtt, b"\xc0\x00");
    server.send(b"\xd0\x00").expect("send");
    let wire = server.take_wire().expect("record");
    client.read_tls(&mut &wire[..]).expect("read");
    client.process_new_packets().expect("process");
    assert_eq!(client_reads(&mut client), [0x82, 2, 0xd0, 0x00]);
}
