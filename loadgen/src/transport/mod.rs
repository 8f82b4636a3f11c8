//! What carries a client's MQTT bytes: plain TCP, TLS (`mqtts`), WebSocket (`ws`) or both
//! (`wss`), as a sans-IO byte transform between the socket and the client. The worker (and
//! the `$SYS` probe) hand [`Transport::receive`] what the socket read and write what lands in
//! `wire`; MQTT bytes come out for the client, and the client's bytes go in through
//! [`Transport::send`]. No socket and no clock in here.
//!
//! Until [`Transport::is_open`], the handshakes run: TLS first, then the WebSocket upgrade
//! through it. The client says CONNECT only then, so its connect time (connect start to
//! CONNACK) includes both.
//!
//! | file | owns |
//! |---|---|
//! | `tls.rs` | the rustls client and its configuration (`--ca-file`, `--insecure`) |
//! | `ws.rs` | the upgrade and the frames |

mod tls;
mod ws;

use std::fmt;
use std::sync::Arc;

use bytes::BytesMut;
use rustls::pki_types::ServerName;

use crate::cli::TransportArgs;
use crate::error::LoadgenError;

use tls::TlsClient;
pub use tls::Trust;
use ws::WsClient;
pub use ws::WsSpec;

/// ALPN ids the broker's listeners advertise: `mqtt` on mqtts, `http/1.1` on wss.
const ALPN_MQTT: &[u8] = b"mqtt";
const ALPN_HTTP_1_1: &[u8] = b"http/1.1";

/// Why a transport gave up. Each is an operating error: the worker sheds that connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransportError {
    Tls(String),
    /// The WebSocket upgrade was refused or its answer was wrong.
    Upgrade(String),
    /// The server broke the WebSocket protocol; we sent a close frame.
    WebSocket(&'static str),
    /// close_notify or a close frame: the server ended the stream.
    PeerClosed,
}

impl TransportError {
    fn tls(error: impl fmt::Display) -> TransportError {
        TransportError::Tls(error.to_string())
    }
}

impl fmt::Display for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TransportError::Tls(why) => write!(f, "TLS: {why}"),
            TransportError::Upgrade(why) => write!(f, "WebSocket upgrade: {why}"),
            TransportError::WebSocket(why) => write!(f, "WebSocket: {why}"),
            TransportError::PeerClosed => write!(f, "the broker closed the stream"),
        }
    }
}

impl std::error::Error for TransportError {}

/// The TLS half of a [`TransportSpec`].
#[derive(Clone)]
struct TlsSpec {
    config: Arc<rustls::ClientConfig>,
    server_name: ServerName<'static>,
}

/// What every connection of a run is carried over, decided once from the flags.
#[derive(Clone, Default)]
pub struct TransportSpec {
    tls: Option<TlsSpec>,
    ws: Option<WsSpec>,
}

impl fmt::Debug for TransportSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.scheme())
    }
}

impl TransportSpec {
    /// Plain MQTT over TCP.
    pub fn plain() -> TransportSpec {
        TransportSpec::default()
    }

    /// Checks the transport flags; `host` and `port` are the broker's, as given.
    pub fn from_args(
        args: &TransportArgs,
        host: &str,
        port: u16,
    ) -> Result<TransportSpec, LoadgenError> {
        let usage = |why: &str| Err(LoadgenError::Usage(why.into()));
        if !args.tls && (args.ca_file.is_some() || args.insecure || args.server_name.is_some()) {
            return usage("--ca-file, --insecure and --server-name need --tls");
        }
        let ws = args.ws.then(|| WsSpec {
            path: args.ws_path.clone(),
            host: host_header(host, port),
        });
        if args.ws && !args.ws_path.starts_with('/') {
            return usage("--ws-path must start with /");
        }
        if !args.tls {
            return Ok(TransportSpec { tls: None, ws });
        }
        let trust = match (&args.ca_file, args.insecure) {
            (Some(path), false) => Trust::CaFile(path.clone()),
            (None, true) => Trust::Anything,
            _ => {
                return usage(
                    "--tls needs --ca-file FILE (the CA that signed the broker's certificate; \
                     /etc/ssl/certs/ca-certificates.crt for public ones) or --insecure",
                )
            }
        };
        let alpn = if args.ws { ALPN_HTTP_1_1 } else { ALPN_MQTT };
        let config = tls::client_config(&trust, alpn).map_err(LoadgenError::Setup)?;
        let name = args.server_name.as_deref().unwrap_or(host);
        let server_name = ServerName::try_from(name.to_string())
            .map_err(|_| LoadgenError::Usage(format!("{name:?} is not a valid server name")))?;
        Ok(TransportSpec {
            tls: Some(TlsSpec {
                config,
                server_name,
            }),
            ws,
        })
    }

    /// The URL scheme: `mqtt`, `mqtts`, `ws` or `wss`.
    pub fn scheme(&self) -> &'static str {
        match (self.tls.is_some(), self.ws.is_some()) {
            (false, false) => "mqtt",
            (true, false) => "mqtts",
            (false, true) => "ws",
            (true, true) => "wss",
        }
    }

    pub fn is_plain(&self) -> bool {
        self.tls.is_none() && self.ws.is_none()
    }
}

/// `Host:` as RFC 7230 5.4 wants it: an IPv6 literal in brackets.
fn host_header(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// One connection's transport state.
pub(crate) struct Transport {
    tls: Option<TlsClient>,
    ws: Option<WsClient>,
    /// TCP is up and the handshakes have begun.
    started: bool,
    /// close_notify / the close frame have been written.
    closed: bool,
}

impl Transport {
    /// A connection per `spec`; `seed` feeds the WebSocket key and masks.
    pub(crate) fn new(spec: &TransportSpec, seed: u64) -> Result<Transport, TransportError> {
        let tls = match &spec.tls {
            Some(t) => Some(TlsClient::new(t.config.clone(), t.server_name.clone())?),
            None => None,
        };
        Ok(Transport {
            tls,
            ws: spec.ws.as_ref().map(|w| WsClient::new(w, seed)),
            started: false,
            closed: false,
        })
    }

    /// Plain TCP, not started: the state of a connection slot before its connect.
    pub(crate) fn unstarted() -> Transport {
        Transport {
            tls: None,
            ws: None,
            started: false,
            closed: false,
        }
    }

    pub(crate) fn is_plain(&self) -> bool {
        self.tls.is_none() && self.ws.is_none()
    }

    pub(crate) fn is_started(&self) -> bool {
        self.started
    }

    /// Every handshake is done: MQTT bytes may flow.
    pub(crate) fn is_open(&self) -> bool {
        self.started
            && !self.closed
            && self.tls.as_ref().is_none_or(TlsClient::is_open)
            && self.ws.as_ref().is_none_or(WsClient::is_open)
    }

    /// TCP is up: the first handshake bytes (ClientHello, or the upgrade request) to `wire`.
    pub(crate) fn start(&mut self, wire: &mut BytesMut) -> Result<(), TransportError> {
        self.started = true;
        match (&mut self.tls, &mut self.ws) {
            (Some(tls), _) => tls.start(wire),
            (None, Some(ws)) => {
                let mut request = Vec::new();
                ws.start(&mut request);
                wire.extend_from_slice(&request);
                Ok(())
            }
            (None, None) => Ok(()),
        }
    }

    /// Bytes from the socket: MQTT bytes to `mqtt`, handshake records and answers to `wire`.
    pub(crate) fn receive(
        &mut self,
        input: &[u8],
        mqtt: &mut BytesMut,
        wire: &mut BytesMut,
    ) -> Result<(), TransportError> {
        match (&mut self.tls, &mut self.ws) {
            (None, None) => mqtt.extend_from_slice(input),
            (None, Some(ws)) => {
                let mut answer = Vec::new();
                let result = ws.receive(input, mqtt, &mut answer);
                wire.extend_from_slice(&answer);
                result?;
            }
            (Some(tls), None) => tls.receive(input, mqtt, wire)?,
            (Some(tls), Some(ws)) => {
                let mut plain = BytesMut::new();
                tls.receive(input, &mut plain, wire)?;
                let mut answer = Vec::new();
                if tls.is_open() && !ws.is_started() {
                    // TLS has just opened: the upgrade request goes through it.
                    ws.start(&mut answer);
                }
                let result = ws.receive(&plain, mqtt, &mut answer);
                if !answer.is_empty() {
                    tls.send(&answer, wire)?;
                }
                result?;
            }
        }
        Ok(())
    }

    /// MQTT bytes from the client, wrapped for the wire.
    pub(crate) fn send(&mut self, mqtt: &[u8], wire: &mut BytesMut) -> Result<(), TransportError> {
        match (&mut self.tls, &mut self.ws) {
            (None, None) => wire.extend_from_slice(mqtt),
            (None, Some(ws)) => {
                let mut framed = Vec::with_capacity(mqtt.len() + 16);
                ws.frame(mqtt, &mut framed);
                wire.extend_from_slice(&framed);
            }
            (Some(tls), None) => tls.send(mqtt, wire)?,
            (Some(tls), Some(ws)) => {
                let mut framed = Vec::with_capacity(mqtt.len() + 16);
                ws.frame(mqtt, &mut framed);
                tls.send(&framed, wire)?;
            }
        }
        Ok(())
    }

    /// The orderly end of the stream, once: a WebSocket close frame, then close_notify.
    pub(crate) fn close(&mut self, wire: &mut BytesMut) {
        if self.closed || !self.started {
            self.closed = true;
            return;
        }
        self.closed = true;
        let mut frame = Vec::new();
        if let Some(ws) = &mut self.ws {
            ws.close_normal(&mut frame);
        }
        match &mut self.tls {
            Some(tls) => {
                if !frame.is_empty() {
                    let _ = tls.send(&frame, wire);
                }
                tls.close(wire);
            }
            None => wire.extend_from_slice(&frame),
        }
    }
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
