//! Transports: TLS and WebSocket as byte transforms between a connection's socket and its
//! shard, sans-IO. The driver (`shard::driver`) hands a connection's received bytes to its
//! [`Transport`], which gives back MQTT bytes for [`crate::shard::Shard::handle_read`], and wraps
//! what the shard writes before it goes to the socket. The session and the shard never know
//! which transport a client came over, except for the certificate identity
//! (`use_identity_as_username`), which the driver passes on once.
//!
//! Layers, from the socket up: TLS (`tls.rs`, rustls's unbuffered connection), then the
//! WebSocket upgrade and framing (`ws.rs`), then MQTT. `mqtts` is TLS alone, `ws` WebSocket
//! alone, `wss` both. A plain `mqtt` connection has no `Transport` at all and costs nothing.
//!
//! # Failures
//! A bad handshake, plaintext on a TLS port, a certificate the CA did not sign, a refused
//! upgrade, a text frame: [`Transport::receive`] returns a [`TransportError`], having queued
//! what the protocol answers (a TLS alert, an HTTP status, a WebSocket close frame). The driver
//! writes that, shuts the socket down, and the shard counts and logs it
//! (`Shard::transport_failed`). Nothing here panics on input.
//!
//! # Memory
//! An idle TLS connection holds rustls's connection state and no buffer: received bytes are
//! kept only while a record is incomplete, and encrypted output belongs to the writer until it
//! is written. The WebSocket layer holds a partial frame header at most.

use std::sync::Arc;

use bytes::Bytes;

pub mod tls;
pub mod tls_config;
pub mod ws;

pub use tls_config::{load_server_config, TlsConfigError};

/// Why a transport gave up on a connection. The answer owed to the peer, if any, has already
/// been queued for the socket.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    /// The TLS handshake or a record failed (bad ClientHello, plaintext on a TLS port,
    /// unknown CA, bad MAC...).
    #[error("TLS: {0}")]
    Tls(String),
    /// The HTTP upgrade was refused with this status.
    #[error("WebSocket upgrade refused: {0}")]
    Upgrade(&'static str),
    /// A WebSocket protocol violation, answered with a close frame carrying this code.
    #[error("WebSocket: {why} (close {code})")]
    WebSocket { code: u16, why: &'static str },
    /// The peer ended the TLS stream or the WebSocket (close_notify, a close frame).
    #[error("closed by the peer")]
    PeerClosed,
}

impl TransportError {
    /// A failure of the peer's making, as opposed to an orderly close.
    pub fn is_failure(&self) -> bool {
        !matches!(self, TransportError::PeerClosed)
    }

    /// The counter this failure goes to.
    pub fn kind(&self) -> TransportFailure {
        match self {
            TransportError::Tls(_) => TransportFailure::TlsHandshake,
            TransportError::Upgrade(_) => TransportFailure::WsUpgrade,
            TransportError::WebSocket { .. } | TransportError::PeerClosed => {
                TransportFailure::WsProtocol
            }
        }
    }
}

/// What a transport failure is counted as (`$SYS/broker/transport/...`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportFailure {
    /// A TLS handshake or record failed.
    TlsHandshake,
    /// A TLS handshake or WebSocket upgrade did not finish within `tls_handshake_timeout_s`.
    HandshakeTimeout,
    /// An HTTP request was not a valid MQTT WebSocket upgrade.
    WsUpgrade,
    /// A WebSocket frame broke RFC 6455 or MQTT's use of it.
    WsProtocol,
}

/// What every connection accepted on one listener starts with. Cheap to clone: the driver
/// keeps one per listener and replaces `tls` when certificates are reloaded.
#[derive(Clone)]
pub struct TransportSpec {
    pub tls: Option<Arc<rustls::ServerConfig>>,
    pub ws: Option<ws::WsSettings>,
}

impl TransportSpec {
    /// Plain MQTT over TCP needs no transport.
    pub fn is_plain(&self) -> bool {
        self.tls.is_none() && self.ws.is_none()
    }

    /// A new connection's transport; `None` for plain MQTT.
    pub fn start(&self) -> Result<Option<Transport>, TransportError> {
        if self.is_plain() {
            return Ok(None);
        }
        let tls = match &self.tls {
            Some(config) => Some(tls::TlsLayer::new(config.clone())?),
            None => None,
        };
        Ok(Some(Transport {
            tls,
            ws: self.ws.as_ref().map(ws::WsLayer::new),
            wire: Vec::new(),
            closed: false,
        }))
    }
}

/// One connection's transport layers and the bytes they have for the socket.
pub struct Transport {
    tls: Option<tls::TlsLayer>,
    ws: Option<ws::WsLayer>,
    /// Bytes for the socket, in order: handshake records, HTTP answers, frames, encrypted data.
    wire: Vec<u8>,
    /// `close` was called or a failure was answered: nothing more is sent but what is queued.
    closed: bool,
}

impl Transport {
    /// Takes bytes read from the socket; MQTT bytes for the shard are appended to `mqtt`. An
    /// error means the connection must be closed once [`Transport::take_wire`] is written.
    pub fn receive(&mut self, input: &[u8], mqtt: &mut Vec<u8>) -> Result<(), TransportError> {
        if self.closed {
            return Ok(());
        }
        let result = self.receive_layers(input, mqtt);
        if let Err(error) = &result {
            self.fail(error);
        }
        result
    }

    fn receive_layers(&mut self, input: &[u8], mqtt: &mut Vec<u8>) -> Result<(), TransportError> {
        let Some(ws) = &mut self.ws else {
            return match &mut self.tls {
                Some(tls) => tls.receive(input, mqtt, &mut self.wire),
                None => {
                    mqtt.extend_from_slice(input);
                    Ok(())
                }
            };
        };
        // WebSocket, under TLS or not: what WebSocket answers (101, pong, close) goes down
        // through TLS like any other data.
        let mut answer = Vec::new();
        let result = match &mut self.tls {
            Some(tls) => {
                let mut plain = Vec::new();
                let tls_result = tls.receive(input, &mut plain, &mut self.wire);
                let ws_result = ws.receive(&plain, mqtt, &mut answer);
                tls_result.and(ws_result)
            }
            None => ws.receive(input, mqtt, &mut answer),
        };
        if !answer.is_empty() {
            self.send_below_ws(&answer)?;
        }
        result
    }

    /// Wraps MQTT bytes from the shard for the socket.
    pub fn send(&mut self, mqtt: &[u8]) -> Result<(), TransportError> {
        if self.closed {
            return Ok(());
        }
        match &mut self.ws {
            Some(ws) => {
                let mut framed = Vec::with_capacity(mqtt.len() + ws::FRAME_HEADER_BYTES_MAX);
                ws.frame(mqtt, &mut framed);
                self.send_below_ws(&framed)
            }
            None => self.send_below_ws(mqtt),
        }
    }

    fn send_below_ws(&mut self, bytes: &[u8]) -> Result<(), TransportError> {
        match &mut self.tls {
            Some(tls) => tls.send(bytes, &mut self.wire),
            None => {
                self.wire.extend_from_slice(bytes);
                Ok(())
            }
        }
    }

    /// Ends the stream in order: a WebSocket close frame (1000), then TLS close_notify. Once.
    pub fn close(&mut self) {
        if self.closed {
            return;
        }
        if let Some(ws) = &mut self.ws {
            let mut frame = Vec::new();
            ws.close(ws::CLOSE_NORMAL, &mut frame);
            let _ = self.send_below_ws(&frame);
        }
        if let Some(tls) = &mut self.tls {
            tls.close(&mut self.wire);
        }
        self.closed = true;
    }

    /// The handshake did not finish in time: the answer the peer gets (408 for an upgrade
    /// still being sent), then the end.
    pub fn handshake_timed_out(&mut self) {
        if let Some(ws) = &mut self.ws {
            if self.tls.as_ref().is_none_or(tls::TlsLayer::is_open) {
                let mut answer = Vec::new();
                ws.time_out(&mut answer);
                let _ = self.send_below_ws(&answer);
            }
        }
        self.close();
    }

    /// After an error: a WebSocket failure still gets its close frame under TLS; then no more.
    fn fail(&mut self, error: &TransportError) {
        if let (TransportError::WebSocket { .. }, Some(tls)) = (error, &mut self.tls) {
            tls.close(&mut self.wire);
        }
        self.closed = true;
    }

    /// Every handshake is done (TLS, then the WebSocket upgrade): MQTT bytes can flow.
    pub fn is_open(&self) -> bool {
        self.tls.as_ref().is_none_or(tls::TlsLayer::is_open)
            && self.ws.as_ref().is_none_or(ws::WsLayer::is_open)
    }

    /// Nothing more will be sent but what [`Transport::take_wire`] still returns.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// The verified client certificate's common name (TLS with client certificates).
    pub fn peer_common_name(&self) -> Option<String> {
        self.tls.as_ref()?.peer_common_name()
    }

    /// Bytes are waiting for the socket.
    pub fn has_wire(&self) -> bool {
        !self.wire.is_empty()
    }

    /// The bytes waiting for the socket, if any. The buffer goes with them: an idle
    /// connection keeps none.
    pub fn take_wire(&mut self) -> Option<Bytes> {
        if self.wire.is_empty() {
            return None;
        }
        Some(Bytes::from(std::mem::take(&mut self.wire)))
    }
}
