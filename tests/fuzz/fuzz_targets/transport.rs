//! Drives a connection's transport (`ringmq::transport`) with arbitrary socket bytes,
//! interleaved with output from the shard, a close and a handshake timeout: WebSocket (from
//! the upgrade, or already upgraded so that the fuzzer starts among frames), TLS (a
//! ClientHello parser fed garbage) and WebSocket over TLS. The oracle: no panic, and nothing
//! grows past its bound (MQTT bytes out never exceed bytes in; queued answers stay within
//! what the input and `PONG_BACKLOG_MAX` allow).

#![no_main]

use std::sync::{Arc, OnceLock};

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use ringmq::transport::tls_config::TlsFiles;
use ringmq::transport::ws::WsSettings;
use ringmq::transport::{load_server_config, TransportSpec, PONG_BACKLOG_MAX};

#[derive(Arbitrary, Debug)]
enum Mode {
    Ws,
    WsUpgraded,
    Tls,
    Wss,
}

#[derive(Arbitrary, Debug)]
enum Op {
    /// Bytes from the socket.
    Receive(Vec<u8>),
    /// MQTT bytes from the shard.
    Send(Vec<u8>),
    /// The writer takes what is queued.
    Flush,
    Close,
    HandshakeTimeout,
}

#[derive(Arbitrary, Debug)]
struct Program {
    mode: Mode,
    ops: Vec<Op>,
}

/// A server certificate made once per process, with rcgen, in a temporary directory.
fn tls() -> Arc<rustls::ServerConfig> {
    static CONFIG: OnceLock<Arc<rustls::ServerConfig>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let dir = std::env::temp_dir().join(format!("ringmq-fuzz-{}", std::process::id()));
            std::fs::create_dir_all(&dir).expect("temp dir");
            let key = rcgen::KeyPair::generate().expect("key");
            let cert = rcgen::CertificateParams::new(vec!["localhost".into()])
                .expect("params")
                .self_signed(&key)
                .expect("cert");
            std::fs::write(dir.join("cert.pem"), cert.pem()).expect("write");
            std::fs::write(dir.join("key.pem"), key.serialize_pem()).expect("write");
            let files = TlsFiles {
                cert_file: dir.join("cert.pem"),
                key_file: dir.join("key.pem"),
                client_ca_file: None,
                require_client_certificate: false,
                use_identity_as_username: false,
            };
            let config = load_server_config(&files, &[b"mqtt"]).expect("config");
            let _ = std::fs::remove_dir_all(&dir);
            config
        })
        .clone()
}

const UPGRADE: &[u8] = b"GET /mqtt HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\
    Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
    Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n";

fuzz_target!(|program: Program| {
    let ws = Some(Arc::new(WsSettings {
        path: "/mqtt".into(),
        frame_payload_max: 4096,
    }));
    let spec = match program.mode {
        Mode::Ws | Mode::WsUpgraded => TransportSpec { tls: None, ws },
        Mode::Tls => TransportSpec { tls: Some(tls()), ws: None },
        Mode::Wss => TransportSpec { tls: Some(tls()), ws },
    };
    let mut transport = spec.start().expect("starts").expect("not plain");
    if let Mode::WsUpgraded = program.mode {
        transport.receive(UPGRADE, &mut Vec::new()).expect("a valid upgrade");
        assert!(transport.is_open());
        transport.take_wire();
    }
    let mut received = 0usize;
    let mut mqtt = Vec::new();
    let mut queued_in = 0usize;
    for op in program.ops {
        match op {
            Op::Receive(bytes) => {
                received += bytes.len();
                let _ = transport.receive(&bytes, &mut mqtt);
                assert!(mqtt.len() <= received, "more MQTT bytes out than socket bytes in");
            }
            Op::Send(bytes) => {
                queued_in += bytes.len();
                let _ = transport.send(&bytes);
            }
            Op::Flush => {
                transport.take_wire();
                queued_in = 0;
            }
            Op::Close => transport.close(),
            Op::HandshakeTimeout => transport.handshake_timed_out(),
        }
        // Answers (handshake records, HTTP, pongs, close frames) are bounded; output is what
        // the shard gave plus framing and encryption overhead.
        let limit = PONG_BACKLOG_MAX + 64 * 1024 + 2 * queued_in + 16 * received;
        if let Some(wire) = transport.take_wire() {
            assert!(wire.len() <= limit, "{} bytes queued for the socket", wire.len());
            queued_in = 0;
        }
    }
});
