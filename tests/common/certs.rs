//! A test PKI made at run time with rcgen, so that no key is ever committed: a CA, a server
//! certificate for `localhost` and `127.0.0.1`, client certificates the CA signs (CN = a user
//! name), and a second CA the broker does not know, whose clients it must refuse.
//!
//! Everything is written as PEM files to a directory of the test's own, removed on drop.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SerialNumber,
};
use ringmq::config::TlsFiles;

/// A certificate and its key, as PEM files.
#[derive(Debug, Clone)]
pub struct CertFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// The test PKI of one test.
pub struct Pki {
    dir: PathBuf,
    /// The CA certificate (PEM) that signs the server and the known clients.
    pub ca_file: PathBuf,
    /// The server certificate and key the listeners start with (serial 1).
    pub server: CertFiles,
    ca: Issuer<'static, KeyPair>,
    /// A CA the broker is never told about.
    foreign_ca: Issuer<'static, KeyPair>,
}

impl Pki {
    /// A fresh PKI under the temp dir, named after the test.
    pub fn new(test: &str) -> Pki {
        let dir = std::env::temp_dir().join(format!("ringmq-pki-{}-{test}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create the PKI directory");
        let (ca_pem, ca) = new_ca("RingMQ test CA");
        let (_, foreign_ca) = new_ca("Somebody else's CA");
        let ca_file = dir.join("ca.crt");
        std::fs::write(&ca_file, ca_pem).expect("write the CA");
        let mut pki = Pki {
            server: CertFiles {
                cert: dir.join("server.crt"),
                key: dir.join("server.key"),
            },
            dir,
            ca_file,
            ca,
            foreign_ca,
        };
        let (cert, key) = pki.server_pem("ringmq-test-server", 1);
        pki.server = pki.write_pair("server", &cert, &key);
        pki
    }

    /// A new server certificate for `localhost` and `127.0.0.1`, with this CN and serial, as
    /// PEM (certificate, key): what a reload test writes over the listener's files.
    pub fn server_pem(&self, common_name: &str, serial: u64) -> (String, String) {
        let mut params = CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()])
            .expect("valid subject alt names");
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.serial_number = Some(SerialNumber::from(serial.to_be_bytes().to_vec()));
        params
            .extended_key_usages
            .push(ExtendedKeyUsagePurpose::ServerAuth);
        sign(params, &self.ca)
    }

    /// A client certificate with CN `user`, signed by the test CA.
    pub fn client(&self, user: &str) -> CertFiles {
        let (cert, key) = client_pem(user, &self.ca);
        self.write_pair(&format!("client-{user}"), &cert, &key)
    }

    /// A client certificate with CN `user`, signed by a CA the broker does not trust.
    pub fn foreign_client(&self, user: &str) -> CertFiles {
        let (cert, key) = client_pem(user, &self.foreign_ca);
        self.write_pair(&format!("foreign-{user}"), &cert, &key)
    }

    /// Writes `text` to `name` in the PKI directory.
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.join(name);
        std::fs::write(&path, text).expect("write a PKI file");
        path
    }

    fn write_pair(&self, name: &str, cert: &str, key: &str) -> CertFiles {
        CertFiles {
            cert: self.write(&format!("{name}.crt"), cert),
            key: self.write(&format!("{name}.key"), key),
        }
    }

    /// The `[listener.tls]` table for the server certificate, without client certificates.
    pub fn tls_files(&self) -> TlsFiles {
        TlsFiles {
            cert_file: self.server.cert.clone(),
            key_file: self.server.key.clone(),
            client_ca_file: None,
            require_client_certificate: false,
            use_identity_as_username: false,
        }
    }

    /// The `[listener.tls]` table that requires a client certificate from the test CA.
    pub fn tls_files_requiring_clients(&self, use_identity_as_username: bool) -> TlsFiles {
        TlsFiles {
            client_ca_file: Some(self.ca_file.clone()),
            require_client_certificate: true,
            use_identity_as_username,
            ..self.tls_files()
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A self-signed CA: its certificate as PEM, and the issuer that signs with it.
fn new_ca(name: &str) -> (String, Issuer<'static, KeyPair>) {
    let mut params = CertificateParams::new(Vec::new()).expect("no subject alt names");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyCertSign,
    ];
    let key = KeyPair::generate().expect("generate a CA key");
    let cert = params.self_signed(&key).expect("self-sign the CA");
    (cert.pem(), Issuer::new(params, key))
}

fn client_pem(user: &str, issuer: &Issuer<'static, KeyPair>) -> (String, String) {
    let mut params = CertificateParams::new(Vec::new()).expect("no subject alt names");
    params.distinguished_name.push(DnType::CommonName, user);
    params
        .extended_key_usages
        .push(ExtendedKeyUsagePurpose::ClientAuth);
    sign(params, issuer)
}

/// Signs `params` with a fresh key: (certificate PEM, key PEM).
fn sign(mut params: CertificateParams, issuer: &Issuer<'static, KeyPair>) -> (String, String) {
    params.use_authority_key_identifier_extension = true;
    params.key_usages.push(KeyUsagePurpose::DigitalSignature);
    let key = KeyPair::generate().expect("generate a key");
    let cert = params.signed_by(&key, issuer).expect("sign a certificate");
    (cert.pem(), key.serialize_pem())
}
