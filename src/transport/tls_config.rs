//! Builds a listener's rustls configuration from its PEM files, at start and on SIGHUP. Every
//! error names the file at fault; a reload that fails leaves the listener on its old
//! certificate (`runtime::Broker::reload`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};

/// The files and choices of one `[listener.tls]` table.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    /// The server's certificate chain (PEM), leaf first.
    pub cert_file: PathBuf,
    /// Its private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
    /// CA certificates (PEM) that client certificates must chain to. Without it no client
    /// certificate is asked for.
    #[serde(default)]
    pub client_ca_file: Option<PathBuf>,
    /// Refuse the handshake of a client without a certificate (mosquitto's
    /// `require_certificate`). Needs `client_ca_file`.
    #[serde(default)]
    pub require_client_certificate: bool,
    /// The client certificate's subject CN is the client's user name for the ACL, whatever
    /// the CONNECT says, and no password is checked (mosquitto's option of the same name).
    /// Needs `require_client_certificate`.
    #[serde(default)]
    pub use_identity_as_username: bool,
}

/// A certificate, key or CA file that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{}: {why}", path.display())]
pub struct TlsConfigError {
    pub path: PathBuf,
    pub why: String,
}

fn error(path: &Path, why: impl std::fmt::Display) -> TlsConfigError {
    TlsConfigError {
        path: path.to_owned(),
        why: why.to_string(),
    }
}

/// The rustls server configuration for `files`: TLS 1.2 and 1.3, the ring provider, ALPN
/// `alpn` (a client that offers ALPN must offer it; one that offers none is served).
pub fn load_server_config(
    files: &TlsFiles,
    alpn: &[&[u8]],
) -> Result<Arc<ServerConfig>, TlsConfigError> {
    let chain = read_certificates(&files.cert_file)?;
    let key = PrivateKeyDer::from_pem_file(&files.key_file)
        .map_err(|e| error(&files.key_file, format!("no usable private key ({e})")))?;
    let provider = provider();
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| error(&files.cert_file, e))?;
    let builder = match &files.client_ca_file {
        Some(ca_file) => {
            let mut roots = RootCertStore::empty();
            for cert in read_certificates(ca_file)? {
                roots.add(cert).map_err(|e| error(ca_file, e))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier = if files.require_client_certificate {
                verifier
            } else {
                verifier.allow_unauthenticated()
            };
            let verifier = verifier.build().map_err(|e| error(ca_file, e))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_single_cert(chain, key).map_err(|e| {
        error(
            &files.key_file,
            format!("does not match the certificate ({e})"),
        )
    })?;
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

/// ring's provider with X25519 preferred. rustls 0.23.48 lists ring's groups as P-384,
/// X25519, P-256, so a rustls client (rumqttc, our load generator) sends a P-384 key share and
/// every handshake pays for P-384: measured 685 CPU-us per TLS connect, 62% of it in P-384
/// arithmetic. X25519 first is what OpenSSL and browsers do; P-256 and P-384 stay available.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    use rustls::crypto::ring::kx_group;
    // rustls deprecates ring's provider only because it lacks post-quantum key exchange.
    // aws-lc-rs has it, but compiling it adds minutes to every clean build (CI, fuzzing),
    // and MQTT devices do not offer ML-KEM yet. Revisit when they do.
    #[allow(deprecated, reason = "see above: ring until clients offer ML-KEM")]
    let mut provider = rustls::crypto::ring::default_provider();
    provider.kx_groups = vec![kx_group::X25519, kx_group::SECP256R1, kx_group::SECP384R1];
    Arc::new(provider)
}

fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsConfigError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| error(path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| error(path, e))?;
    if certs.is_empty() {
        return Err(error(path, "no PEM certificate in it"));
    }
    Ok(certs)
}
