//! Access control, sans-IO: who may connect and what they may do ([`Access`], built from
//! mosquitto's password and ACL files), and MQTT 5 enhanced authentication [MQTT-4.12]: the
//! methods a client may name in CONNECT's Authentication Method, and the conversations they
//! hold through AUTH packets.
//!
//! Owns: the [`AuthMethod`] / [`AuthConversation`] traits, the [`Authenticator`] registry built
//! from the config's user table, and SCRAM-SHA-256 (RFC 5802 + RFC 7677), server side
//! ([`ScramSha256`]) and client side ([`ScramClient`], for tests and the load generator).
//! Does not own: packets, reason-code placement, timeouts or sessions. The caller (the shard)
//! decodes CONNECT/AUTH, feeds the Authentication Data here and turns each [`AuthStep`] into
//! an AUTH, a CONNACK or a close. Imports only `codec` and `topic`; no I/O and no clock, so
//! every path is testable without a socket. (The password checks themselves run on the
//! shard's verifier threads, `shard/verifier.rs`.)
//!
//! Driven like this:
//!
//! 1. CONNECT carries Authentication Method `m`. [`Authenticator::lookup`]`(m)`; `None` means
//!    CONNACK 0x8C Bad authentication method.
//! 2. [`AuthMethod::start`] with CONNECT's Authentication Data returns the conversation and
//!    the first [`AuthStep`].
//! 3. While the step is [`AuthStep::Continue`], send AUTH 0x18 with its data and feed the
//!    client's AUTH data to [`AuthConversation::step`].
//! 4. [`AuthStep::Success`] ends in CONNACK 0x00 (with its data, if any);
//!    [`AuthStep::Failure`] ends in CONNACK with its code.
//!
//! Every input here is hostile network data: no path panics, and each client message is bounded
//! by [`AUTH_DATA_MAX_BYTES`].
//!
//! # Files
//!
//! | file | holds |
//! |---|---|
//! | `mod.rs` | the traits, [`AuthStep`], [`Authenticator`], [`AuthConfigError`] |
//! | `access.rs` | [`Access`]: one generation of the policy: anonymous clients, password file, ACL, `$SYS` |
//! | `passwd.rs`, `passwd/` | mosquitto's password file (`$7$`, `$6$`, `$argon2id$`) and `ringmq passwd` |
//! | `acl.rs`, `acl/` | mosquitto's ACL file, compiled per user for per-message checks |
//! | `file.rs` | [`FileError`]: `file:line: what is wrong` |
//! | `scram.rs` | the SCRAM-SHA-256 server: user store, verifier format, the conversation |
//! | `scram_client.rs` | [`ScramClient`], a real client for tests and loadgen |
//! | `scram_wire.rs` | the key schedule, base64, saslname escaping, attribute grammar |

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use bytes::Bytes;

use crate::codec::{ByteStr, ReasonCode};

mod access;
pub mod acl;
mod file;
pub mod passwd;
mod scram;
mod scram_client;
mod scram_wire;
#[cfg(test)]
mod tests;

pub use access::{Access, AccessSettings, Admission};
pub use file::FileError;
pub use scram::{ScramSha256, SCRAM_SHA_256};
pub use scram_client::{ScramClient, ScramError};
pub use scram_wire::{ITERATIONS_DEFAULT, ITERATIONS_MAX, ITERATIONS_MIN};

/// The longest Authentication Data we accept in one client message. SCRAM's client-first is a
/// user name and a nonce, its client-final a nonce and a 44-character proof: a few hundred
/// bytes. 2 KiB leaves room for long user names and extensions while bounding what one
/// half-authenticated connection makes us keep. A longer message is a [`AuthStep::Failure`].
pub const AUTH_DATA_MAX_BYTES: usize = 2048;

/// One authentication method, such as SCRAM-SHA-256. Shared by every shard, so it keeps no
/// per-connection state: that lives in the [`AuthConversation`] that [`AuthMethod::start`]
/// returns.
pub trait AuthMethod: Send + Sync {
    /// The Authentication Method string a client names in CONNECT, compared byte for byte.
    fn name(&self) -> &str;

    /// Begins a conversation with CONNECT's Authentication Data (empty if it had none).
    /// Implementations must refuse data longer than [`AUTH_DATA_MAX_BYTES`] and never panic.
    fn start(&self, data: &[u8]) -> (Box<dyn AuthConversation>, AuthStep);
}

/// One client's authentication exchange in progress. Owned by the connection; `Send` so a
/// connection may move between threads before it settles on a shard.
pub trait AuthConversation: Send {
    /// Feeds the Authentication Data of the client's next AUTH packet. A step after `Success`
    /// or `Failure` is itself a `Failure`, never a panic.
    fn step(&mut self, data: &[u8]) -> AuthStep;
}

/// What the broker does next in an authentication exchange.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuthStep {
    /// Send AUTH with reason 0x18 Continue authentication and this Authentication Data.
    Continue(Bytes),
    /// Authenticated as `username`. Send CONNACK 0x00 (or AUTH 0x00 when re-authenticating)
    /// carrying `data` as Authentication Data; for SCRAM that is server-final, which lets the
    /// client check that the server knew its password.
    Success {
        data: Option<Bytes>,
        username: ByteStr,
    },
    /// Refused. Send CONNACK (or DISCONNECT) with `code`. `why` is for the log; it is the same
    /// for an unknown user and a wrong password, so it may also go out as a Reason String.
    Failure { code: ReasonCode, why: &'static str },
}

impl AuthStep {
    /// A message that does not follow the method's grammar.
    pub(crate) const fn malformed(why: &'static str) -> AuthStep {
        AuthStep::Failure {
            code: ReasonCode::PROTOCOL_ERROR,
            why,
        }
    }

    /// Well-formed, but the client did not prove who it is.
    pub(crate) const fn not_authorized(why: &'static str) -> AuthStep {
        AuthStep::Failure {
            code: ReasonCode::NOT_AUTHORIZED,
            why,
        }
    }
}

/// The authentication methods this broker offers, by name. Cheap to clone (each method is an
/// `Arc`), so every shard can own a copy.
#[derive(Clone, Default)]
pub struct Authenticator {
    methods: BTreeMap<String, Arc<dyn AuthMethod>>,
}

impl Authenticator {
    /// An authenticator with no methods: every CONNECT naming a method gets 0x8C.
    pub fn new() -> Authenticator {
        Authenticator::default()
    }

    /// Builds the methods from the config's user table: user name -> plain password or a
    /// PostgreSQL-format SCRAM-SHA-256 verifier. An empty table registers no SCRAM method.
    /// Plain passwords are salted and hashed here and not kept.
    pub fn from_scram_users(
        users: &BTreeMap<String, String>,
    ) -> Result<Authenticator, AuthConfigError> {
        let mut auth = Authenticator::new();
        if !users.is_empty() {
            auth.register(Arc::new(ScramSha256::from_users(users)?));
        }
        Ok(auth)
    }

    /// Adds `method` under its name, returning the method it replaced, if any.
    pub fn register(&mut self, method: Arc<dyn AuthMethod>) -> Option<Arc<dyn AuthMethod>> {
        self.methods.insert(method.name().to_owned(), method)
    }

    /// The method a client named in CONNECT's Authentication Method, if we offer it.
    pub fn lookup(&self, name: &str) -> Option<&dyn AuthMethod> {
        self.methods.get(name).map(|m| &**m)
    }

    /// True when no method is registered, so the broker need not look at Authentication Method.
    pub fn is_empty(&self) -> bool {
        self.methods.is_empty()
    }

    /// The registered method names, in order; for the start-up log.
    pub fn method_names(&self) -> impl Iterator<Item = &str> {
        self.methods.keys().map(String::as_str)
    }
}

impl fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.method_names()).finish()
    }
}

/// A user table the authenticator cannot use. Names the user, never the password or verifier.
#[derive(Debug, thiserror::Error)]
pub enum AuthConfigError {
    #[error("auth user {user:?}: {why}")]
    User { user: String, why: &'static str },
    #[error("no random numbers from the operating system for salts: {0}")]
    Random(getrandom::Error),
}

/// The data of a client message if it is within [`AUTH_DATA_MAX_BYTES`] and UTF-8 (every SCRAM
/// message is; RFC 5802 §7), else the `Failure` to answer with.
pub(crate) fn client_text(data: &[u8]) -> Result<&str, AuthStep> {
    if data.len() > AUTH_DATA_MAX_BYTES {
        return Err(AuthStep::malformed(
            "authentication data longer than AUTH_DATA_MAX_BYTES",
        ));
    }
    std::str::from_utf8(data).map_err(|_| AuthStep::malformed("authentication data is not UTF-8"))
}
