//! TLS and WebSocket on the client side (`--tls`, `--ws`, both for wss): a byte transform between
//! a connection's socket and its client's MQTT bytes, like the broker's `ringmq::transport`.
//! MQTT bytes written before the handshakes are done wait in the transport; the client's
//! connect time therefore includes the TLS handshake and the HTTP upgrade.
//!
//! TLS is rustls's buffered client (a load generator holds few enough connections that its
//! buffers do not matter); WebSocket framing uses tungstenite's frame header codec, with
//! client-side masking and the upgrade written here, checked against
//! `ringmq::transport::ws::accept_key`.

use std::io::{Read, Write};
use std::path::Path;
use std::sync::Arc;

use bytes::BytesMut;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use tungstenite::protocol::frame::coding::{Control, Data, OpCode};
use tungstenite::protocol::frame::FrameHeader;

/// How a run's connections reach the broker, built once from the flags.
#[derive(Debug)]
pub struct TransportConfig {
    pub tls: Option<(Arc<rustls::ClientConfig>, ServerName<'static>)>,
    /// The WebSocket upgrade's path and `Host` header.
    pub ws: Option<(String, String)>,
}

impl TransportConfig {
    /// `--tls` (with `--ca-file` or `--insecure`), `--ws` (with `--ws-path`). `None` for
    /// plain MQTT.
    pub fn from_flags(
        host: &str,
        tls: bool,
        ca_file: Option<&Path>,
        insecure: bool,
        server_name: Option<&str>,
        ws_path: Option<&str>,
    ) -> Result<Option<Arc<TransportConfig>>, String> {
        if !tls && ws_path.is_none() {
            return Ok(None);
        }
        let tls = if tls {
            let name = server_name.unwrap_or(host).to_string();
            let name = ServerName::try_from(name.clone())
                .map_err(|e| format!("--server-name {name:?}: {e}"))?;
            let alpn: &[u8] = if ws_path.is_some() {
                b"http/1.1"
            } else {
                b"mqtt"
            };
            Some((client_config(ca_file, insecure, alpn)?, name))
        } else {
            None
        };
        let ws = ws_path.map(|path| (path.to_string(), host.to_string()));
        Ok(Some(Arc::new(TransportConfig { tls, ws })))
    }
}

/// The broker's provider (ring, X25519 first: see `ringmq::transport::tls_config::provider`).
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    ringmq::transport::tls_config::provider()
}

fn client_config(
    ca_file: Option<&Path>,
    insecure: bool,
    alpn: &[u8],
) -> Result<Arc<rustls::ClientConfig>, String> {
    use rustls::pki_types::pem::PemObject;
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let mut config = if insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider())))
            .with_no_client_auth()
    } else {
        let ca_file =
            ca_file.ok_or("--tls needs --ca-file (or --insecure for a test certificate)")?;
        let mut roots = rustls::RootCertStore::empty();
        let certs = CertificateDer::pem_file_iter(ca_file)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|e| format!("--ca-file {}: {e}", ca_file.display()))?;
        for cert in certs {
            roots
                .add(cert)
                .map_err(|e| format!("--ca-file {}: {e}", ca_file.display()))?;
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    config.alpn_protocols = vec![alpn.to_vec()];
    Ok(Arc::new(config))
}

/// `--insecure`: any certificate is accepted (signatures are still checked), for self-signed
/// test certificates. Never for anything but benchmarks.
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The WebSocket client's state.
enum Ws {
    /// The upgrade request is sent; MQTT bytes wait until the 101 arrives.
    Upgrading {
        key: String,
        response: Vec<u8>,
        waiting: Vec<u8>,
    },
    Open {
        /// A partial frame header from the last read.
        header: Vec<u8>,
        /// The frame being read: (opcode, payload bytes still to come); control payloads are
        /// collected in `control`.
        frame: Option<(OpCode, u64)>,
        control: Vec<u8>,
        /// Masking keys: a xorshift stream, as RFC 6455 asks for unpredictable keys.
        rng: u64,
    },
}

/// One connection's transport.
pub struct ClientTransport {
    tls: Option<rustls::ClientConnection>,
    ws: Option<Ws>,
    /// Bytes for the socket, written from `written` on.
    wire: Vec<u8>,
    written: usize,
}

impl ClientTransport {
    pub fn new(config: &TransportConfig, seed: u64) -> Result<ClientTransport, String> {
        let tls = match &config.tls {
            Some((tls, name)) => Some(
                rustls::ClientConnection::new(tls.clone(), name.clone())
                    .map_err(|e| e.to_string())?,
            ),
            None => None,
        };
        let mut transport = ClientTransport {
            tls,
            ws: None,
            wire: Vec::new(),
            written: 0,
        };
        if let Some((path, host)) = &config.ws {
            let mut rng = seed | 1;
            let key_bytes: Vec<u8> = (0..16).map(|_| next(&mut rng) as u8).collect();
            let key = base64_encode(&key_bytes);
            let request = format!(
                "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n\
                 Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n\
                 Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n"
            );
            transport.below_ws(request.as_bytes())?;
            transport.ws = Some(Ws::Upgrading {
                key,
                response: Vec::new(),
                waiting: Vec::new(),
            });
        }
        Ok(transport)
    }

    /// Takes the client's MQTT bytes for the socket.
    pub fn send(&mut self, mqtt: &[u8]) -> Result<(), String> {
        match &mut self.ws {
            Some(Ws::Upgrading { waiting, .. }) => {
                waiting.extend_from_slice(mqtt);
                Ok(())
            }
            Some(Ws::Open { rng, .. }) => {
                let mask = (next(rng) as u32).to_be_bytes();
                let frame = client_frame(OpCode::Data(Data::Binary), mqtt, mask);
                self.below_ws(&frame)
            }
            None => self.below_ws(mqtt),
        }
    }

    fn below_ws(&mut self, bytes: &[u8]) -> Result<(), String> {
        match &mut self.tls {
            Some(tls) => tls.writer().write_all(bytes).map_err(|e| e.to_string()),
            None => {
                self.wire.extend_from_slice(bytes);
                Ok(())
            }
        }
    }

    /// Takes bytes read from the socket; MQTT bytes are appended to `mqtt`.
    pub fn receive(&mut self, input: &[u8], mqtt: &mut BytesMut) -> Result<(), String> {
        let mut plain = Vec::new();
        let bytes: &[u8] = match &mut self.tls {
            Some(tls) => {
                let mut input = input;
                while !input.is_empty() {
                    tls.read_tls(&mut input).map_err(|e| format!("TLS: {e}"))?;
                    tls.process_new_packets().map_err(|e| format!("TLS: {e}"))?;
                }
                match tls.reader().read_to_end(&mut plain) {
                    Ok(_) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(e) => return Err(format!("TLS: {e}")),
                }
                &plain
            }
            None => input,
        };
        if self.ws.is_none() {
            mqtt.extend_from_slice(bytes);
            return Ok(());
        }
        let bytes = bytes.to_vec();
        self.ws_receive(&bytes, mqtt)
    }

    fn ws_receive(&mut self, input: &[u8], mqtt: &mut BytesMut) -> Result<(), String> {
        if let Some(Ws::Upgrading {
            key,
            response,
            waiting,
        }) = &mut self.ws
        {
            response.extend_from_slice(input);
            let Some(end) = response.windows(4).position(|w| w == b"\r\n\r\n") else {
                return Ok(());
            };
            let head = String::from_utf8_lossy(&response[..end]).to_string();
            let accept = ringmq::transport::ws::accept_key(key);
            let ok = head.starts_with("HTTP/1.1 101")
                && head.lines().any(|l| {
                    l.split_once(':').is_some_and(|(name, value)| {
                        name.eq_ignore_ascii_case("sec-websocket-accept") && value.trim() == accept
                    })
                });
            if !ok {
                return Err(format!(
                    "WebSocket upgrade refused: {}",
                    head.lines().next().unwrap_or("")
                ));
            }
            let rest = response.split_off(end + 4);
            let waiting = std::mem::take(waiting);
            self.ws = Some(Ws::Open {
                header: Vec::new(),
                frame: None,
                control: Vec::new(),
                rng: (next_seed(&waiting) | 1),
            });
            self.send(&waiting)?;
            return self.ws_receive(&rest, mqtt);
        }
        let mut pong = None;
        let Some(Ws::Open {
            header,
            frame,
            control,
            rng,
        }) = &mut self.ws
        else {
            return Ok(());
        };
        // A header split across reads is joined with what came now.
        let joined: Vec<u8>;
        let mut input: &[u8] = if header.is_empty() {
            input
        } else {
            let mut bytes = std::mem::take(header);
            bytes.extend_from_slice(input);
            joined = bytes;
            &joined
        };
        loop {
            if let Some((opcode, remaining)) = frame {
                let take = input.len().min(*remaining as usize);
                if matches!(opcode, OpCode::Data(_)) {
                    mqtt.extend_from_slice(&input[..take]);
                } else {
                    control.extend_from_slice(&input[..take]);
                }
                *remaining -= take as u64;
                input = &input[take..];
                if *remaining > 0 {
                    break;
                }
                match *opcode {
                    OpCode::Control(Control::Ping) => {
                        pong = Some(std::mem::take(control));
                    }
                    OpCode::Control(Control::Close) => {
                        return Err("closed by the broker (WebSocket close)".into())
                    }
                    _ => control.clear(),
                }
                *frame = None;
            }
            if input.is_empty() {
                break;
            }
            let mut cursor = std::io::Cursor::new(input);
            match FrameHeader::parse(&mut cursor) {
                Ok(Some((parsed, len))) => {
                    if parsed.opcode == OpCode::Data(Data::Text) {
                        return Err("the broker sent a text frame".into());
                    }
                    *frame = Some((parsed.opcode, len));
                    input = &input[cursor.position() as usize..];
                }
                Ok(None) => {
                    header.extend_from_slice(input);
                    break;
                }
                Err(e) => return Err(format!("WebSocket: {e}")),
            }
        }
        if let Some(payload) = pong {
            let mask = (next(rng) as u32).to_be_bytes();
            let frame = client_frame(OpCode::Control(Control::Pong), &payload, mask);
            self.below_ws(&frame)?;
        }
        Ok(())
    }

    /// The bytes waiting for the socket (TLS records are gathered first).
    pub fn pending(&mut self) -> &[u8] {
        if let Some(tls) = &mut self.tls {
            if self.written == self.wire.len() {
                self.wire.clear();
                self.written = 0;
            }
            while tls.wants_write() {
                if tls.write_tls(&mut self.wire).is_err() {
                    break;
                }
            }
        }
        &self.wire[self.written..]
    }

    /// `n` bytes of [`ClientTransport::pending`] were written.
    pub fn written(&mut self, n: usize) {
        self.written += n;
        if self.written == self.wire.len() {
            self.wire.clear();
            self.written = 0;
        }
    }
}

/// A masked, final client frame.
fn client_frame(opcode: OpCode, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
    let header = FrameHeader {
        is_final: true,
        rsv1: false,
        rsv2: false,
        rsv3: false,
        opcode,
        mask: Some(mask),
    };
    let mut frame = Vec::with_capacity(payload.len() + 14);
    // Writing into a `Vec` cannot fail.
    let _ = header.format(payload.len() as u64, &mut frame);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    frame
}

fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

fn next_seed(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0x9E37_79B9_7F4A_7C15u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01B3)
    })
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}
