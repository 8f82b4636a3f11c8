//! TLS on a connection with rustls's unbuffered (sans-IO) connection: the shard thread feeds it
//! the bytes its socket read and takes back the bytes to write, on io_uring or epoll alike. No
//! second runtime, no thread per connection, no socket inside rustls.
//!
//! # Why the unbuffered API
//! rustls's buffered `ServerConnection` keeps a receive buffer of at least 4 KiB for the life of
//! the connection, so 10^6 idle TLS clients would hold 4 GiB of empty buffers. With the unbuffered
//! API the buffers are ours: `incoming` holds only a partial record and is freed when a read
//! leaves none, and what is encrypted goes straight into the writer's buffer. An idle
//! connection holds rustls's connection state and nothing else (see the module docs of
//! `transport` for the figure).

use std::sync::Arc;

use rustls::server::UnbufferedServerConnection;
use rustls::unbuffered::{ConnectionState, EncodeError, EncryptError, UnbufferedStatus};

use super::TransportError;

/// Bytes rustls adds to each record it encrypts (header, nonce, tag, content type), rounded up:
/// the first guess at the output size, so that encrypting rarely needs a second try.
const RECORD_OVERHEAD_BYTES: usize = 64;

/// Most plaintext in one TLS record (RFC 8446 5.1).
const RECORD_PLAINTEXT_MAX: usize = 16 * 1024;

/// One connection's TLS state.
pub struct TlsLayer {
    conn: UnbufferedServerConnection,
    /// Received bytes not yet processed: a partial record at most, between reads. Empty (and
    /// unallocated) on an idle connection.
    incoming: Vec<u8>,
    /// The peer sent close_notify.
    peer_closed: bool,
}

impl TlsLayer {
    pub fn new(config: Arc<rustls::ServerConfig>) -> Result<TlsLayer, TransportError> {
        let conn = UnbufferedServerConnection::new(config)
            .map_err(|e| TransportError::Tls(e.to_string()))?;
        Ok(TlsLayer {
            conn,
            incoming: Vec::new(),
            peer_closed: false,
        })
    }

    /// The handshake is complete: application data flows both ways.
    pub fn is_open(&self) -> bool {
        !self.conn.is_handshaking()
    }

    /// The client certificate's subject common name, once the handshake has verified it.
    pub fn peer_common_name(&self) -> Option<String> {
        let der = self.conn.peer_certificates()?.first()?;
        let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).ok()?;
        let cn = cert.subject().iter_common_name().next()?;
        cn.as_str().ok().map(str::to_owned)
    }

    /// Bytes reserved for received data (0 on an idle connection).
    pub fn incoming_capacity(&self) -> usize {
        self.incoming.capacity()
    }

    /// The protocol agreed by ALPN, if the client offered one we accept.
    pub fn alpn(&self) -> Option<&[u8]> {
        self.conn.alpn_protocol()
    }

    /// Takes bytes from the socket. Decrypted application data is appended to `plain`, and
    /// what the handshake must send back to `wire`.
    pub fn receive(
        &mut self,
        input: &[u8],
        plain: &mut Vec<u8>,
        wire: &mut Vec<u8>,
    ) -> Result<(), TransportError> {
        if self.peer_closed {
            return Ok(());
        }
        self.incoming.extend_from_slice(input);
        let result = self.process(Some(plain), wire);
        if self.incoming.is_empty() {
            // An idle connection keeps no receive buffer.
            self.incoming = Vec::new();
        }
        result
    }

    /// Encrypts application data from the shard into `wire`.
    pub fn send(&mut self, data: &[u8], wire: &mut Vec<u8>) -> Result<(), TransportError> {
        for record in data.chunks(RECORD_PLAINTEXT_MAX) {
            self.with_write_traffic(wire, |traffic, wire| {
                write_into(wire, record.len() + RECORD_OVERHEAD_BYTES, |out| {
                    traffic.encrypt(record, out)
                })
            })?;
        }
        Ok(())
    }

    /// Appends a close_notify alert to `wire`: the orderly end of the TLS stream. Does nothing
    /// before the handshake has finished.
    pub fn close(&mut self, wire: &mut Vec<u8>) {
        if !self.is_open() {
            return;
        }
        let _ = self.with_write_traffic(wire, |traffic, wire| {
            write_into(wire, RECORD_OVERHEAD_BYTES, |out| {
                traffic.queue_close_notify(out)
            })
        });
    }

    /// Runs rustls until it needs more input. Handshake records go to `wire`, application data
    /// to `plain` (`None` when called to write: any data then waits for the next read).
    fn process(
        &mut self,
        mut plain: Option<&mut Vec<u8>>,
        wire: &mut Vec<u8>,
    ) -> Result<(), TransportError> {
        loop {
            let UnbufferedStatus { mut discard, state } =
                self.conn.process_tls_records(&mut self.incoming);
            let state = match state {
                Ok(state) => state,
                Err(error) => {
                    let error = TransportError::Tls(error.to_string());
                    self.incoming.drain(..discard);
                    self.queue_alert(wire);
                    return Err(error);
                }
            };
            let done = match state {
                ConnectionState::ReadTraffic(mut traffic) => {
                    let Some(plain) = plain.as_deref_mut() else {
                        // Only `send` passes no `plain`, and `receive` has always taken every
                        // record before; leave the data where it is.
                        break;
                    };
                    while let Some(record) = traffic.next_record() {
                        let record = record.map_err(|e| TransportError::Tls(e.to_string()))?;
                        discard += record.discard;
                        plain.extend_from_slice(record.payload);
                    }
                    false
                }
                ConnectionState::EncodeTlsData(mut encode) => {
                    write_into(wire, 2048, |out| encode.encode(out)).map_err(|e| {
                        TransportError::Tls(format!("encoding a handshake record: {e}"))
                    })?;
                    false
                }
                ConnectionState::TransmitTlsData(transmit) => {
                    // `wire` goes out before anything written after it, so it counts as sent.
                    transmit.done();
                    false
                }
                ConnectionState::PeerClosed => {
                    self.peer_closed = true;
                    true
                }
                ConnectionState::BlockedHandshake
                | ConnectionState::WriteTraffic(_)
                | ConnectionState::Closed => true,
                ConnectionState::ReadEarlyData(_) => {
                    return Err(TransportError::Tls("early data is not accepted".into()))
                }
                _ => return Err(TransportError::Tls("unexpected TLS state".into())),
            };
            self.incoming.drain(..discard);
            if done {
                break;
            }
        }
        if self.peer_closed {
            return Err(TransportError::PeerClosed);
        }
        Ok(())
    }

    /// After a failed record or handshake message rustls has queued a fatal alert (bad record,
    /// unknown CA...) but returned only the error; the next call hands the alert out, ahead of
    /// any further input. It goes to `wire`, so the peer learns why before the socket closes.
    ///
    /// Exactly one call: the alert is the only record queued, because `process` encodes every
    /// record as soon as rustls offers it. A second call would process the failed input again,
    /// and rustls asserts that it never sends a second fatal alert. The call gets the real
    /// input buffer, not an empty one, because rustls may still hold positions of handshake
    /// messages in it.
    fn queue_alert(&mut self, wire: &mut Vec<u8>) {
        let UnbufferedStatus { discard, state } = self.conn.process_tls_records(&mut self.incoming);
        if let Ok(ConnectionState::EncodeTlsData(mut encode)) = state {
            // A failure to encode leaves the peer without the alert; the close still follows.
            let _ = write_into(wire, RECORD_OVERHEAD_BYTES, |out| encode.encode(out));
        }
        self.incoming.drain(..discard);
    }

    /// Brings rustls to its write state (encoding any pending handshake record, such as a
    /// session ticket, first) and calls `write` there.
    fn with_write_traffic(
        &mut self,
        wire: &mut Vec<u8>,
        write: impl FnOnce(
            &mut rustls::unbuffered::WriteTraffic<'_, rustls::server::ServerConnectionData>,
            &mut Vec<u8>,
        ) -> Result<(), EncryptError>,
    ) -> Result<(), TransportError> {
        let mut write = Some(write);
        loop {
            let UnbufferedStatus { discard, state } =
                self.conn.process_tls_records(&mut self.incoming);
            let state = state.map_err(|e| TransportError::Tls(e.to_string()))?;
            let result = match (state, write.take()) {
                (ConnectionState::WriteTraffic(mut traffic), Some(write)) => Some(
                    write(&mut traffic, wire)
                        .map_err(|e| TransportError::Tls(format!("encrypting: {e}"))),
                ),
                (ConnectionState::EncodeTlsData(mut encode), unused) => {
                    write = unused;
                    write_into(wire, 2048, |out| encode.encode(out)).map_err(|e| {
                        TransportError::Tls(format!("encoding a handshake record: {e}"))
                    })?;
                    None
                }
                (ConnectionState::TransmitTlsData(transmit), unused) => {
                    write = unused;
                    transmit.done();
                    None
                }
                _ => Some(Err(TransportError::Tls(
                    "not ready to send application data".into(),
                ))),
            };
            self.incoming.drain(..discard);
            if let Some(result) = result {
                return result;
            }
        }
    }
}

/// A rustls output call's "buffer too small" answer, whichever call it came from.
trait RequiredSize {
    fn required_size(&self) -> Option<usize>;
}

impl RequiredSize for EncodeError {
    fn required_size(&self) -> Option<usize> {
        match self {
            EncodeError::InsufficientSize(e) => Some(e.required_size),
            _ => None,
        }
    }
}

impl RequiredSize for EncryptError {
    fn required_size(&self) -> Option<usize> {
        match self {
            EncryptError::InsufficientSize(e) => Some(e.required_size),
            _ => None,
        }
    }
}

/// Runs a rustls call that writes into a slice at the end of `wire`, growing the slice once if
/// rustls says it needs more.
fn write_into<E: RequiredSize>(
    wire: &mut Vec<u8>,
    guess: usize,
    mut call: impl FnMut(&mut [u8]) -> Result<usize, E>,
) -> Result<(), E> {
    let start = wire.len();
    wire.resize(start + guess, 0);
    let result = match call(&mut wire[start..]) {
        Err(e) => match e.required_size() {
            Some(required) => {
                wire.resize(start + required, 0);
                call(&mut wire[start..])
            }
            None => Err(e),
        },
        ok => ok,
    };
    match result {
        Ok(written) => {
            wire.truncate(start + written);
            Ok(())
        }
        Err(e) => {
            wire.truncate(start);
            Err(e)
        }
    }
}
