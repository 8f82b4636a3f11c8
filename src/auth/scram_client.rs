//! The SCRAM-SHA-256 client: a real implementation for the black-box tests and the load
//! generator, so they exercise the server with the same messages a production client sends.
//!
//! Owns: building client-first and client-final and checking server-final. Does not own: the
//! AUTH packets that carry them. Treats the server's messages as hostile: bounded, checked, and
//! never a panic.
//!
//! ```
//! use ringmq::auth::ScramClient;
//! let mut client = ScramClient::new("user", "pencil")?;
//! let client_first = client.client_first(); // CONNECT Authentication Data
//! # let _ = client_first;
//! // let client_final = client.handle_server_first(&server_first)?; // AUTH 0x18
//! // client.verify_server_final(&connack_auth_data)?;
//! # Ok::<(), ringmq::auth::ScramError>(())
//! ```

use bytes::Bytes;
use subtle::ConstantTimeEq;

use super::scram_wire::{
    attr_value, b64_decode, b64_encode, b64_key, escape_saslname, hi, hmac, is_skippable_extension,
    is_valid_nonce, sha256, xor_into, Key, ITERATIONS_MAX, ITERATIONS_MIN, SALT_BYTES_MAX,
};
use super::AUTH_DATA_MAX_BYTES;

/// Random bytes in the client's half of the nonce (base64 in the message).
const CLIENT_NONCE_BYTES: usize = 24;

/// The gs2 header we send: no channel binding, no authorization identity.
const GS2_HEADER: &str = "n,,";

/// One client's side of one exchange. Keeps the password only until `handle_server_first`.
pub struct ScramClient {
    client_first_bare: String,
    client_nonce: String,
    state: ClientState,
}

enum ClientState {
    AwaitingServerFirst { password: Vec<u8> },
    AwaitingServerFinal { server_signature: Key },
    Done,
}

/// Why the client gave up on the exchange.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ScramError {
    #[error("malformed server message: {0}")]
    Malformed(&'static str),
    #[error("the server nonce does not extend the client nonce")]
    NonceMismatch,
    #[error("iteration count {0} is outside {ITERATIONS_MIN}..={ITERATIONS_MAX}")]
    Iterations(u32),
    #[error("the server refused: {0}")]
    Server(String),
    #[error("the server signature does not verify: that server does not know the password")]
    BadServerSignature,
    #[error("{0} called out of order")]
    OutOfOrder(&'static str),
    #[error("no random numbers from the operating system for a nonce")]
    Random,
}

impl ScramClient {
    /// A client for `username`, with a fresh random nonce. The password's UTF-8 bytes are used
    /// as they are (no SASLprep), as the server does.
    pub fn new(username: &str, password: &str) -> Result<ScramClient, ScramError> {
        let mut bytes = [0u8; CLIENT_NONCE_BYTES];
        getrandom::fill(&mut bytes).map_err(|_| ScramError::Random)?;
        Ok(ScramClient::with_nonce(
            username,
            password,
            &b64_encode(&bytes),
        ))
    }

    /// `new` with the nonce given rather than drawn, which the RFC 7677 vector test needs.
    /// The nonce must be printable ASCII without `,`.
    pub(super) fn with_nonce(username: &str, password: &str, client_nonce: &str) -> ScramClient {
        assert!(
            is_valid_nonce(client_nonce),
            "SCRAM nonce is printable ASCII without ','"
        );
        ScramClient {
            client_first_bare: format!("n={},r={client_nonce}", escape_saslname(username)),
            client_nonce: client_nonce.to_owned(),
            state: ClientState::AwaitingServerFirst {
                password: password.as_bytes().to_vec(),
            },
        }
    }

    /// client-first: CONNECT's Authentication Data, with Authentication Method `SCRAM-SHA-256`.
    pub fn client_first(&self) -> Bytes {
        Bytes::from(format!("{GS2_HEADER}{}", self.client_first_bare))
    }

    /// Checks server-first (the data of AUTH 0x18) and returns client-final, the data of the
    /// client's AUTH 0x18. Runs `Hi`, so it costs `i` HMACs.
    pub fn handle_server_first(&mut self, data: &[u8]) -> Result<Bytes, ScramError> {
        let ClientState::AwaitingServerFirst { password } = &self.state else {
            return Err(ScramError::OutOfOrder("handle_server_first"));
        };
        let server_first = server_text(data)?;
        let (nonce, salt, iterations) = parse_server_first(server_first)?;
        if !nonce.starts_with(&self.client_nonce) || nonce.len() == self.client_nonce.len() {
            return Err(ScramError::NonceMismatch);
        }
        let salted = hi(password, &salt, iterations);
        let client_key = hmac(&salted, &[b"Client Key"]);
        let stored_key = sha256(&client_key);
        let without_proof = format!("c={},r={nonce}", b64_encode(GS2_HEADER.as_bytes()));
        let auth_message = format!("{},{server_first},{without_proof}", self.client_first_bare);
        let mut proof = hmac(&stored_key, &[auth_message.as_bytes()]);
        xor_into(&mut proof, &client_key);
        let server_key = hmac(&salted, &[b"Server Key"]);
        let server_signature = hmac(&server_key, &[auth_message.as_bytes()]);
        self.state = ClientState::AwaitingServerFinal { server_signature };
        Ok(Bytes::from(format!(
            "{without_proof},p={}",
            b64_encode(&proof)
        )))
    }

    /// Checks server-final (CONNACK's Authentication Data): proof that the server knew the
    /// password, not just accepted ours.
    pub fn verify_server_final(&mut self, data: &[u8]) -> Result<(), ScramError> {
        let ClientState::AwaitingServerFinal { server_signature } = &self.state else {
            return Err(ScramError::OutOfOrder("verify_server_final"));
        };
        let expected = *server_signature;
        self.state = ClientState::Done;
        let text = server_text(data)?;
        let first = text.split(',').next().unwrap_or_default();
        if let Some(error) = attr_value(first, b'e') {
            return Err(ScramError::Server(error.to_owned()));
        }
        let signature = attr_value(first, b'v')
            .and_then(b64_key)
            .ok_or(ScramError::Malformed(
                "server-final has no valid v= signature",
            ))?;
        if bool::from(signature.ct_eq(&expected)) {
            Ok(())
        } else {
            Err(ScramError::BadServerSignature)
        }
    }
}

/// A server message as text, bounded like the server bounds ours.
fn server_text(data: &[u8]) -> Result<&str, ScramError> {
    if data.len() > AUTH_DATA_MAX_BYTES {
        return Err(ScramError::Malformed("longer than AUTH_DATA_MAX_BYTES"));
    }
    std::str::from_utf8(data).map_err(|_| ScramError::Malformed("not UTF-8"))
}

/// `[reserved-mext ","] nonce "," salt "," iteration-count ["," extensions]` (RFC 5802 §7).
fn parse_server_first(text: &str) -> Result<(&str, Vec<u8>, u32), ScramError> {
    let bad = ScramError::Malformed;
    let mut attrs = text.split(',');
    let nonce = attrs
        .next()
        .and_then(|a| attr_value(a, b'r'))
        .filter(|n| is_valid_nonce(n))
        .ok_or(bad("server-first has no valid r= nonce"))?;
    let salt = attrs
        .next()
        .and_then(|a| attr_value(a, b's'))
        .and_then(b64_decode)
        .filter(|s| !s.is_empty() && s.len() <= SALT_BYTES_MAX)
        .ok_or(bad("server-first has no valid s= salt"))?;
    let iterations: u32 = attrs
        .next()
        .and_then(|a| attr_value(a, b'i'))
        .and_then(|i| i.parse().ok())
        .ok_or(bad("server-first has no valid i= iteration count"))?;
    if !(ITERATIONS_MIN..=ITERATIONS_MAX).contains(&iterations) {
        return Err(ScramError::Iterations(iterations));
    }
    if !attrs.all(is_skippable_extension) {
        return Err(bad("server-first has a malformed extension"));
    }
    Ok((nonce, salt, iterations))
}
