//! Our client transport against the broker's own server transport (`ringmq::transport`), in
//! memory: each side's wire bytes are fed to the other until nothing moves, like quinn's
//! `Pair::drive`. Certificates are made here with rcgen; none is stored.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

use ringmq::transport::ws::WsSettings;
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

use super::*;

/// Turns of [`Pair::drive`] before a test is declared stuck.
const DRIVE_TURNS_MAX: usize = 1000;

/// A CA and a server certificate it signed for `localhost` and 127.0.0.1.
struct Pki {
    ca_pem: String,
    chain: Vec<rustls::pki_types::CertificateDer<'static>>,
    key_der: Vec<u8>,
}

fn pki() -> Pki {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca =
        CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("key")).expect("CA");
    let key = KeyPair::generate().expect("key");
    let leaf = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
        .expect("params")
        .signed_by(&key, &ca)
        .expect("leaf");
    Pki {
        ca_pem: ca.pem(),
        chain: vec![leaf.der().clone(), ca.der().clone()],
        key_der: key.serialize_der(),
    }
}

/// A file under the temp dir that is removed when dropped.
struct TempFile(PathBuf);

impl TempFile {
    fn new(contents: &str) -> TempFile {
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("lg-ca-{}-{n}.pem", std::process::id()));
        std::fs::write(&path, contents).expect("temp file");
        TempFile(path)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn server_config(pki: &Pki, alpn: &[u8]) -> Arc<rustls::ServerConfig> {
    #[allow(deprecated, reason = "ring, as in the broker and the client")]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(pki.key_der.clone()));
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(pki.chain.clone(), key)
        .expect("server config");
    config.alpn_protocols = vec![alpn.to_vec()];
    Arc::new(config)
}

/// The flags of a run: `--tls` with `trust`, `--ws`.
fn client_spec(trust: Option<Trust>, ws: bool) -> TransportSpec {
    let mut args = TransportArgs {
        ws,
        ws_path: "/mqtt".into(),
        ..TransportArgs::default()
    };
    match trust {
        Some(Trust::CaFile(path)) => (args.tls, args.ca_file) = (true, Some(path)),
        Some(Trust::Anything) => (args.tls, args.insecure) = (true, true),
        None => {}
    }
    TransportSpec::from_args(&args, "localhost", 8883).expect("valid flags")
}

fn server_spec(pki: &Pki, tls: bool, ws: bool) -> ringmq::transport::TransportSpec {
    ringmq::transport::TransportSpec {
        tls: tls.then(|| server_config(pki, if ws { ALPN_HTTP_1_1 } else { ALPN_MQTT })),
        ws: ws.then(|| {
            Arc::new(WsSettings {
                path: "/mqtt".into(),
                frame_payload_max: 1 << 20,
            })
        }),
    }
}

struct Pair {
    client: Transport,
    server: ringmq::transport::Transport,
    /// Client wire bytes not yet given to the server.
    to_server: BytesMut,
    client_mqtt: BytesMut,
    server_mqtt: Vec<u8>,
    /// Largest piece the server's bytes reach the client in: 1 splits every record and frame.
    chunk_bytes: usize,
}

impl Pair {
    fn new(client: &TransportSpec, server: &ringmq::transport::TransportSpec) -> Pair {
        let mut pair = Pair {
            client: Transport::new(client, 7).expect("client transport"),
            server: server
                .start()
                .expect("server transport")
                .expect("not plain"),
            to_server: BytesMut::new(),
            client_mqtt: BytesMut::new(),
            server_mqtt: Vec::new(),
            chunk_bytes: usize::MAX,
        };
        pair.client.start(&mut pair.to_server).expect("starts");
        pair
    }

    /// Moves bytes both ways until neither side has any; the first error of either side.
    fn drive(&mut self) -> Result<(), String> {
        for _ in 0..DRIVE_TURNS_MAX {
            let to_server = std::mem::take(&mut self.to_server);
            if !to_server.is_empty() {
                self.server
                    .receive(&to_server, &mut self.server_mqtt)
                    .map_err(|e| format!("server: {e}"))?;
            }
            let Some(to_client) = self.server.take_wire() else {
                if self.to_server.is_empty() {
                    return Ok(());
                }
                continue;
            };
            for piece in to_client.chunks(self.chunk_bytes) {
                self.client
                    .receive(piece, &mut self.client_mqtt, &mut self.to_server)
                    .map_err(|e| format!("client: {e}"))?;
            }
        }
        Err("still moving after DRIVE_TURNS_MAX turns".into())
    }

    fn open(&mut self) {
        self.drive().expect("handshakes");
        assert!(self.client.is_open() && self.server.is_open());
    }
}

/// Bytes that exceed a TLS record and a WebSocket frame, so both must split them.
fn big_payload() -> Vec<u8> {
    (0..150_000u32).map(|i| (i % 251) as u8).collect()
}

fn exchange(pair: &mut Pair) {
    pair.open();
    let up = big_payload();
    pair.client.send(&up, &mut pair.to_server).expect("send");
    let down = b"\x20\x02\x00\x00\xd0\x00".repeat(3000);
    pair.server.send(&down).expect("server send");
    pair.drive().expect("exchange");
    assert_eq!(pair.server_mqtt, up);
    assert_eq!(&pair.client_mqtt[..], &down[..]);
}

#[test]
fn every_transport_carries_bytes_both_ways() {
    let pki = pki();
    let ca = TempFile::new(&pki.ca_pem);
    for (tls, ws) in [(true, false), (false, true), (true, true)] {
        let trust = tls.then(|| Trust::CaFile(ca.0.clone()));
        let client = client_spec(trust, ws);
        let mut pair = Pair::new(&client, &server_spec(&pki, tls, ws));
        exchange(&mut pair);
        assert_eq!(
            client.scheme(),
            ["mqtt", "mqtts", "ws", "wss"][tls as usize + 2 * ws as usize]
        );
    }
}

#[test]
fn wss_survives_one_byte_reads() {
    let pki = pki();
    let mut pair = Pair::new(
        &client_spec(Some(Trust::Anything), true),
        &server_spec(&pki, true, true),
    );
    pair.chunk_bytes = 1;
    exchange(&mut pair);
}

#[test]
fn an_untrusted_certificate_fails_unless_insecure() {
    let pki = pki();
    let stranger = TempFile::new(&self::pki().ca_pem);
    let mut pair = Pair::new(
        &client_spec(Some(Trust::CaFile(stranger.0.clone())), false),
        &server_spec(&pki, true, false),
    );
    let error = pair.drive().expect_err("a CA we do not trust");
    // Both CAs carry rcgen's default name, so webpki finds the stranger and its signature fails.
    assert!(
        error.starts_with("client: TLS: invalid peer certificate"),
        "{error}"
    );

    let mut pair = Pair::new(
        &client_spec(Some(Trust::Anything), false),
        &server_spec(&pki, true, false),
    );
    exchange(&mut pair);
}

#[test]
fn a_closed_transport_says_goodbye_in_order() {
    let pki = pki();
    let mut pair = Pair::new(
        &client_spec(Some(Trust::Anything), true),
        &server_spec(&pki, true, true),
    );
    pair.open();
    pair.client
        .send(b"\xe0\x00", &mut pair.to_server)
        .expect("send");
    pair.client.close(&mut pair.to_server);
    pair.client.close(&mut pair.to_server);
    let error = pair.drive().expect_err("the server sees the end");
    assert_eq!(error, "server: closed by the peer");
    assert_eq!(
        pair.server_mqtt, b"\xe0\x00",
        "DISCONNECT came before the close"
    );
}

#[test]
fn flags_are_checked() {
    let args = |tls, insecure| TransportArgs {
        tls,
        insecure,
        ws_path: "/mqtt".into(),
        ..TransportArgs::default()
    };
    assert!(TransportSpec::from_args(&args(false, true), "localhost", 1).is_err());
    assert!(TransportSpec::from_args(&args(true, false), "localhost", 1).is_err());
    assert!(TransportSpec::from_args(&args(true, true), "localhost", 1).is_ok());
    let mut ws = args(false, false);
    (ws.ws, ws.ws_path) = (true, "mqtt".into());
    assert!(TransportSpec::from_args(&ws, "localhost", 1).is_err());
    assert_eq!(host_header("::1", 8080), "[::1]:8080");
    assert!(TransportSpec::plain().is_plain());
}
