//! The TLS client of one connection, on rustls's unbuffered (sans-IO) connection: the worker
//! hands it the bytes its socket read and takes back the bytes to write. It mirrors the
//! broker's `transport::tls` from the other end, and for the same reason: the buffers are
//! ours, so 10,000 idle TLS clients do not each hold rustls's receive buffer.
//!
//! [`client_config`] builds the one rustls configuration a run shares: the trust (`--ca-file`
//! or `--insecure`), ALPN, and no session resumption, so that every connect is the full
//! handshake a fleet of distinct devices makes.

use std::path::Path;
use std::sync::Arc;

use bytes::BytesMut;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{Resumption, UnbufferedClientConnection};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::unbuffered::{ConnectionState, EncodeError, EncryptError, UnbufferedStatus};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use super::TransportError;

/// Bytes rustls adds to each record it encrypts (header, nonce, tag, content type), rounded
/// up: the first guess at the output size, so that encrypting rarely needs a second try.
const RECORD_OVERHEAD_BYTES: usize = 64;

/// Most plaintext in one TLS record (RFC 8446 5.1).
const RECORD_PLAINTEXT_MAX: usize = 16 * 1024;

/// First guess at a handshake record's size; rustls says so when it needs more.
const HANDSHAKE_RECORD_GUESS_BYTES: usize = 2048;

/// Whom to trust.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trust {
    /// The CA certificates (PEM) in this file.
    CaFile(std::path::PathBuf),
    /// Any certificate: for self-signed test certificates only.
    Anything,
}

/// The rustls configuration every connection of a run shares: TLS 1.3 and 1.2, ring, ALPN
/// `alpn`, no resumption.
pub fn client_config(trust: &Trust, alpn: &[u8]) -> Result<Arc<ClientConfig>, String> {
    // The broker's provider: ring with X25519 first, as OpenSSL and browsers offer it (rustls
    // lists ring's P-384 first, which made every handshake pay for P-384; see
    // `ringmq::transport::tls_config::provider`).
    let provider = ringmq::transport::tls_config::provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| e.to_string())?;
    let mut config = match trust {
        Trust::CaFile(path) => builder
            .with_root_certificates(read_roots(path)?)
            .with_no_client_auth(),
        Trust::Anything => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider)))
            .with_no_client_auth(),
    };
    config.alpn_protocols = vec![alpn.to_vec()];
    // A resumed handshake skips the certificate and its signature: the broker's cost per
    // connect would depend on how many connects came before.
    config.resumption = Resumption::disabled();
    Ok(Arc::new(config))
}

fn read_roots(path: &Path) -> Result<RootCertStore, String> {
    let at = |e: &dyn std::fmt::Display| format!("--ca-file {}: {e}", path.display());
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(path).map_err(|e| at(&e))? {
        roots.add(cert.map_err(|e| at(&e))?).map_err(|e| at(&e))?;
    }
    if roots.is_empty() {
        return Err(at(&"no PEM certificate in it"));
    }
    Ok(roots)
}

/// `--insecure`: the chain and the name are not checked, but the handshake signatures still
/// are, so the TLS work is the same as with a verified certificate (less the chain walk).
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.0.signature_verification_algorithms;
        rustls::crypto::verify_tls12_signature(message, cert, dss, algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.0.signature_verification_algorithms;
        rustls::crypto::verify_tls13_signature(message, cert, dss, algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// One connection's TLS client state.
pub struct TlsClient {
    conn: UnbufferedClientConnection,
    /// Received bytes not yet processed: a partial record at most, between reads. Empty and
    /// unallocated on an idle connection.
    incoming: Vec<u8>,
}

impl TlsClient {
    pub fn new(
        config: Arc<ClientConfig>,
        server_name: ServerName<'static>,
    ) -> Result<TlsClient, TransportError> {
        let conn =
            UnbufferedClientConnection::new(config, server_name).map_err(TransportError::tls)?;
        Ok(TlsClient {
            conn,
            incoming: Vec::new(),
        })
    }

    /// The handshake is complete: application data flows both ways.
    pub fn is_open(&self) -> bool {
        !self.conn.is_handshaking()
    }

    /// TCP is up: the ClientHello goes to `wire`.
    pub fn start(&mut self, wire: &mut BytesMut) -> Result<(), TransportError> {
        self.process(None, wire)
    }

    /// Takes bytes from the socket: decrypted data is appended to `plain`, and what the
    /// handshake must send back to `wire`.
    pub fn receive(
        &mut self,
        input: &[u8],
        plain: &mut BytesMut,
        wire: &mut BytesMut,
    ) -> Result<(), TransportError> {
        self.incoming.extend_from_slice(input);
        let result = self.process(Some(plain), wire);
        if self.incoming.is_empty() {
            self.incoming = Vec::new();
        }
        result
    }

    /// Encrypts application data into `wire`, in records of at most 16 KiB.
    pub fn send(&mut self, data: &[u8], wire: &mut BytesMut) -> Result<(), TransportError> {
        for record in data.chunks(RECORD_PLAINTEXT_MAX) {
            self.with_write_traffic(wire, |traffic, wire| {
                write_into(wire, record.len() + RECORD_OVERHEAD_BYTES, |out| {
                    traffic.encrypt(record, out)
                })
            })?;
        }
        Ok(())
    }

    /// Appends close_notify to `wire`: the orderly end. Nothing before the handshake is done.
    pub fn close(&mut self, wire: &mut BytesMut) {
        if self.is_open() {
            let _ = self.with_write_traffic(wire, |traffic, wire| {
                write_into(wire, RECORD_OVERHEAD_BYTES, |out| {
                    traffic.queue_close_notify(out)
                })
            });
        }
    }

    /// Runs rustls until it needs more input. Handshake records go to `wire`, application
    /// data to `plain` (`None` at the start, when there can be none).
    fn process(
        &mut self,
        mut plain: Option<&mut BytesMut>,
        wire: &mut BytesMut,
    ) -> Result<(), TransportError> {
        loop {
            let UnbufferedStatus { mut discard, state } =
                self.conn.process_tls_records(&mut self.incoming);
            let done = match state.map_err(TransportError::tls)? {
                ConnectionState::ReadTraffic(mut traffic) => {
                    let Some(plain) = plain.as_deref_mut() else {
                        break; // only at the start, before anything was received
                    };
                    while let Some(record) = traffic.next_record() {
                        let record = record.map_err(TransportError::tls)?;
                        discard += record.discard;
                        plain.extend_from_slice(record.payload);
                    }
                    false
                }
                ConnectionState::EncodeTlsData(mut encode) => {
                    write_into(wire, HANDSHAKE_RECORD_GUESS_BYTES, |out| encode.encode(out))
                        .map_err(TransportError::tls)?;
                    false
                }
                ConnectionState::TransmitTlsData(transmit) => {
                    // `wire` goes out before anything appended after it: it counts as sent.
                    transmit.done();
                    false
                }
                ConnectionState::PeerClosed | ConnectionState::Closed => {
                    self.incoming.drain(..discard);
                    return Err(TransportError::PeerClosed);
                }
                ConnectionState::BlockedHandshake | ConnectionState::WriteTraffic(_) => true,
                _ => return Err(TransportError::Tls("unexpected TLS state".into())),
            };
            self.incoming.drain(..discard);
            if done {
                break;
            }
        }
        Ok(())
    }

    /// Brings rustls to its write state (encoding any pending handshake record first) and
    /// calls `write` there.
    fn with_write_traffic(
        &mut self,
        wire: &mut BytesMut,
        write: impl FnOnce(
            &mut rustls::unbuffered::WriteTraffic<'_, rustls::client::ClientConnectionData>,
            &mut BytesMut,
        ) -> Result<(), EncryptError>,
    ) -> Result<(), TransportError> {
        let mut write = Some(write);
        loop {
            let UnbufferedStatus { discard, state } =
                self.conn.process_tls_records(&mut self.incoming);
            let result = match (state.map_err(TransportError::tls)?, write.take()) {
                (ConnectionState::WriteTraffic(mut traffic), Some(write)) => {
                    Some(write(&mut traffic, wire).map_err(TransportError::tls))
                }
                (ConnectionState::EncodeTlsData(mut encode), unused) => {
                    write = unused;
                    write_into(wire, HANDSHAKE_RECORD_GUESS_BYTES, |out| encode.encode(out))
                        .map_err(TransportError::tls)?;
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

/// Runs a rustls call that writes into a slice at the end of `wire`, growing the slice once
/// if rustls says it needs more.
fn write_into<E: RequiredSize>(
    wire: &mut BytesMut,
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
