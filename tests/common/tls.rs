//! The client side of TLS tests: a blocking rustls client that trusts the test CA (and shows a
//! client certificate if asked), a [`RawClient`] over it, and what the server's certificate
//! says, so a test can tell which certificate a handshake got.

use std::io::{self, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

use super::certs::CertFiles;
use super::{ConnectOpts, RawClient, Wire, CLOSE_TIMEOUT, RECV_TIMEOUT};

pub type TlsStream = StreamOwned<ClientConnection, TcpStream>;

impl Wire for TlsStream {
    fn tcp(&self) -> &TcpStream {
        &self.sock
    }
}

/// A client configuration trusting `ca_file`, offering ALPN `alpn`, with a client
/// certificate if one is given.
pub fn client_config(
    ca_file: &Path,
    client: Option<&CertFiles>,
    alpn: &[&[u8]],
) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca_file).expect("read the CA file") {
        roots.add(cert.expect("a PEM CA")).expect("trust the CA");
    }
    // The broker's own provider (see src/transport/tls_config.rs): ring.
    #[allow(deprecated, reason = "ring, as the broker uses it")]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS 1.2 and 1.3")
        .with_root_certificates(roots);
    let mut config = match client {
        Some(files) => {
            let chain = CertificateDer::pem_file_iter(&files.cert)
                .expect("read the client certificate")
                .collect::<Result<Vec<_>, _>>()
                .expect("a PEM client certificate");
            let key = PrivateKeyDer::from_pem_file(&files.key).expect("read the client key");
            builder
                .with_client_auth_cert(chain, key)
                .expect("a usable client certificate")
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}

/// TCP, then a complete handshake with `127.0.0.1` (the IP address is the name checked).
/// Refusals show as an error here or, for a client certificate refused after a TLS 1.3
/// handshake, on the first read.
pub fn connect(addr: SocketAddr, config: &Arc<ClientConfig>) -> io::Result<TlsStream> {
    let mut sock = TcpStream::connect(addr)?;
    sock.set_read_timeout(Some(RECV_TIMEOUT))?;
    let name = ServerName::IpAddress(addr.ip().into());
    let mut conn = ClientConnection::new(config.clone(), name).map_err(io::Error::other)?;
    while conn.is_handshaking() {
        conn.complete_io(&mut sock)?;
    }
    Ok(StreamOwned::new(conn, sock))
}

/// A [`RawClient`] over a completed TLS handshake, CONNECT sent and accepted.
pub fn connected(addr: SocketAddr, config: &Arc<ClientConfig>, opts: ConnectOpts) -> RawClient {
    let stream = connect(addr, config).expect("TLS handshake with the broker");
    RawClient::connected_over(RawClient::over(Box::new(stream), opts.version), opts)
}

/// Asserts that the broker refuses this client at the TLS layer: the handshake fails, or the
/// connection ends (alert or EOF) before any CONNACK. Returns what the refusal looked like.
pub fn expect_refused(addr: SocketAddr, config: &Arc<ClientConfig>) -> String {
    let mut stream = match connect(addr, config) {
        Err(error) => return error.to_string(),
        Ok(stream) => stream,
    };
    let connect = ConnectOpts::v311("tls-refused").to_wire();
    if let Err(error) = stream.write_all(&connect).and_then(|()| stream.flush()) {
        return error.to_string();
    }
    let deadline = Instant::now() + CLOSE_TIMEOUT;
    let mut buf = [0u8; 256];
    loop {
        assert!(
            Instant::now() < deadline,
            "still open {CLOSE_TIMEOUT:?} after a refusal"
        );
        match stream.read(&mut buf) {
            Ok(0) => return "closed".into(),
            Ok(n) => panic!("the broker answered a refused client: {:02x?}", &buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) => {}
            Err(error) => return error.to_string(),
        }
    }
}

/// The serial number and subject CN of the certificate the server presented.
pub fn server_identity(stream: &TlsStream) -> (u64, String) {
    let certs = stream
        .conn
        .peer_certificates()
        .expect("the server sent a certificate");
    let (_, cert) = x509_parser::parse_x509_certificate(&certs[0]).expect("a valid certificate");
    let serial = cert
        .tbs_certificate
        .raw_serial()
        .iter()
        .fold(0u64, |acc, byte| (acc << 8) | u64::from(*byte));
    let cn = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .expect("a subject CN")
        .to_owned();
    (serial, cn)
}
