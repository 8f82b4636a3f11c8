//! The SCRAM-SHA-256 server (RFC 5802 + RFC 7677) as an [`AuthMethod`].
//!
//! Owns: the user store of verifiers (`StoredKey`, `ServerKey`, salt, iterations), the parsing
//! of PostgreSQL-format verifiers, and the server's side of the three-message exchange.
//! Does not own: the key arithmetic and attribute grammar (`scram_wire.rs`) or packets.
//!
//! The server never sees a password after start-up and runs no `Hi` per connection: checking a
//! proof is two SHA-256 and one HMAC. An unknown user gets a salt and keys derived from a
//! secret, the same on every attempt, with the store's usual salt length and iteration count,
//! so the exchange looks the same up to the proof, which then fails: a client cannot learn
//! which user names exist.
//!
//! Channel binding (`SCRAM-SHA-256-PLUS`) is not offered: a client asking for it (`p=`) is
//! refused, and `y` ("I could, but you don't offer it") is accepted, which is correct only
//! because we do not offer it.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use subtle::ConstantTimeEq;

use super::scram_wire::{
    attr_value, b64_decode, b64_encode, b64_key, hi, hmac, is_skippable_extension, is_valid_nonce,
    server_keys, sha256, unescape_saslname, xor_into, Key, ITERATIONS_DEFAULT, ITERATIONS_MAX,
    ITERATIONS_MIN, KEY_BYTES, SALT_BYTES_MAX,
};
use super::{client_text, AuthConfigError, AuthConversation, AuthMethod, AuthStep};
use crate::codec::{ByteStr, ReasonCode};

/// The Authentication Method name a client sends in CONNECT.
pub const SCRAM_SHA_256: &str = "SCRAM-SHA-256";

/// How a stored value announces a pre-hashed verifier rather than a plain password.
const VERIFIER_PREFIX: &str = "SCRAM-SHA-256$";

/// Random bytes in the server's half of the nonce; RFC 5802 §5.1 asks for a nonce that is
/// "sufficiently random", and 24 bytes (192 bits) is beyond guessing.
const SERVER_NONCE_BYTES: usize = 24;

/// Salt length for plain passwords salted at start-up, and for unknown users.
const SALT_BYTES: usize = 16;

/// The longest user name we store. Escaped it is at most 3x longer, and client-first may carry
/// it twice (`a=` and `n=`): 2 * 768 plus a nonce fits in [`super::AUTH_DATA_MAX_BYTES`].
const USER_NAME_MAX_BYTES: usize = 256;

/// The SCRAM-SHA-256 method: the user store and the secret behind unknown users' fake salts.
pub struct ScramSha256 {
    /// Shared with every conversation, which outlives the `&self` borrow of `start`.
    store: Arc<Store>,
}

struct Store {
    users: BTreeMap<String, Verifier>,
    /// Keys the fake salts and keys of unknown users. Derived from every user's `ServerKey`,
    /// not drawn at random: a real user's pre-hashed salt survives a restart, so an unknown
    /// user's must too, or two restarts would tell them apart. Plain-password users get new
    /// salts each start, and so (through their new keys) does this secret.
    secret: Key,
    /// The iteration count and salt length most users have, worn by unknown users.
    fake_iterations: u32,
    fake_salt_bytes: usize,
}

/// What the server keeps per user (RFC 5802 §3): enough to check a proof, not to make one.
#[derive(Clone)]
struct Verifier {
    username: ByteStr,
    salt: Bytes,
    iterations: u32,
    stored_key: Key,
    server_key: Key,
}

/// The conversation, named after what it waits for.
enum State {
    /// CONNECT had no Authentication Data; we sent an empty challenge (RFC 4422 §5).
    AwaitingClientFirst,
    AwaitingClientFinal(Box<Exchange>),
    Done,
}

/// Everything client-final is checked against.
struct Exchange {
    verifier: Verifier,
    /// False for an unknown user: the proof check runs and then fails whatever it computed.
    known: bool,
    /// The gs2 header exactly as sent; client-final's `c=` must be its base64.
    gs2_header: String,
    client_first_bare: String,
    server_first: String,
    /// Client nonce + server nonce; client-final's `r=` must repeat it.
    nonce: String,
}

struct ScramConversation {
    store: Arc<Store>,
    state: State,
}

impl ScramSha256 {
    /// Builds the store from user name -> plain password or PostgreSQL-format verifier
    /// (`SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`, base64 fields).
    pub fn from_users(users: &BTreeMap<String, String>) -> Result<ScramSha256, AuthConfigError> {
        let mut verifiers = BTreeMap::new();
        for (name, value) in users {
            let verifier = Verifier::from_config(name, value)?;
            verifiers.insert(name.clone(), verifier);
        }
        Ok(ScramSha256 {
            store: Arc::new(Store::new(verifiers)),
        })
    }

    /// `start`, with the server nonce drawn (`None`) or given (the RFC 7677 vector test).
    fn begin(&self, data: &[u8], server_nonce: Option<&str>) -> (ScramConversation, AuthStep) {
        let mut conversation = ScramConversation {
            store: Arc::clone(&self.store),
            state: State::AwaitingClientFirst,
        };
        let step = if data.is_empty() {
            AuthStep::Continue(Bytes::new())
        } else {
            conversation.on_client_first(data, server_nonce)
        };
        (conversation, step)
    }
}

impl Verifier {
    fn from_config(name: &str, value: &str) -> Result<Verifier, AuthConfigError> {
        let bad = |why| AuthConfigError::User {
            user: name.to_owned(),
            why,
        };
        if name.is_empty() || name.contains('\0') {
            return Err(bad("user name is empty or contains U+0000"));
        }
        if name.len() > USER_NAME_MAX_BYTES {
            return Err(bad("user name longer than 256 bytes"));
        }
        let username = ByteStr::from_utf8(Bytes::copy_from_slice(name.as_bytes()))
            .map_err(|_| bad("user name is not UTF-8"))?;
        if let Some(fields) = value.strip_prefix(VERIFIER_PREFIX) {
            let (salt, iterations, stored_key, server_key) = parse_verifier(fields).ok_or(bad(
                "verifier is not SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey> \
                 with base64 fields, 32-byte keys and 4096..=1000000 iterations",
            ))?;
            return Ok(Verifier {
                username,
                salt: Bytes::from(salt),
                iterations,
                stored_key,
                server_key,
            });
        }
        if value.is_empty() {
            return Err(bad("password is empty"));
        }
        let mut salt = [0u8; SALT_BYTES];
        getrandom::fill(&mut salt).map_err(AuthConfigError::Random)?;
        Ok(Verifier::from_password(
            username,
            value.as_bytes(),
            &salt,
            ITERATIONS_DEFAULT,
        ))
    }

    /// No SASLprep (RFC 4013): the password's UTF-8 bytes are hashed as they are, which is the
    /// same for ASCII passwords and is what PostgreSQL falls back to for non-normalisable ones.
    fn from_password(username: ByteStr, password: &[u8], salt: &[u8], iterations: u32) -> Verifier {
        let (stored_key, server_key) = server_keys(&hi(password, salt, iterations));
        Verifier {
            username,
            salt: Bytes::copy_from_slice(salt),
            iterations,
            stored_key,
            server_key,
        }
    }
}

/// `<iterations>:<salt>$<StoredKey>:<ServerKey>`, after the prefix.
fn parse_verifier(fields: &str) -> Option<(Vec<u8>, u32, Key, Key)> {
    let (params, keys) = fields.split_once('$')?;
    let (iterations, salt) = params.split_once(':')?;
    let (stored_key, server_key) = keys.split_once(':')?;
    let iterations: u32 = iterations.parse().ok()?;
    let salt = b64_decode(salt)?;
    let salt_ok = !salt.is_empty() && salt.len() <= SALT_BYTES_MAX;
    let iterations_ok = (ITERATIONS_MIN..=ITERATIONS_MAX).contains(&iterations);
    if !salt_ok || !iterations_ok {
        return None;
    }
    Some((salt, iterations, b64_key(stored_key)?, b64_key(server_key)?))
}

impl Store {
    fn new(users: BTreeMap<String, Verifier>) -> Store {
        let mut secret = hmac(b"RingMQ SCRAM unknown users", &[]);
        for v in users.values() {
            secret = hmac(
                &secret,
                &[v.username.as_str().as_bytes(), b"\0", &v.server_key],
            );
        }
        let fake_iterations = most_common(users.values().map(|v| v.iterations as usize))
            .and_then(|i| u32::try_from(i).ok())
            .unwrap_or(ITERATIONS_DEFAULT);
        // Capped at one HMAC output, which is what a fake salt is cut from.
        let fake_salt_bytes = most_common(users.values().map(|v| v.salt.len()))
            .unwrap_or(SALT_BYTES)
            .min(KEY_BYTES);
        Store {
            users,
            secret,
            fake_iterations,
            fake_salt_bytes,
        }
    }

    /// The user's verifier, or a fake one that is the same on every attempt for that name.
    fn verifier(&self, username: &str) -> (Verifier, bool) {
        // The fake is made for known users too, so that both paths take the same time.
        let name = username.as_bytes();
        let salt = hmac(&self.secret, &[b"salt\0", name]);
        let fake = Verifier {
            // Never reported: an unknown user cannot succeed.
            username: ByteStr::from_static(""),
            salt: Bytes::copy_from_slice(&salt[..self.fake_salt_bytes]),
            iterations: self.fake_iterations,
            stored_key: hmac(&self.secret, &[b"stored\0", name]),
            server_key: hmac(&self.secret, &[b"server\0", name]),
        };
        match self.users.get(username) {
            Some(v) => (v.clone(), true),
            None => (fake, false),
        }
    }
}

/// The most frequent value, the smallest on a tie; `None` when there are none.
fn most_common(values: impl Iterator<Item = usize>) -> Option<usize> {
    let mut counts = BTreeMap::new();
    for v in values {
        *counts.entry(v).or_insert(0usize) += 1;
    }
    let top = counts.values().copied().max()?;
    counts.into_iter().find(|&(_, n)| n == top).map(|(v, _)| v)
}

impl ScramConversation {
    /// Parses client-first (`gs2-header client-first-bare`) and answers with server-first.
    fn on_client_first(&mut self, data: &[u8], server_nonce: Option<&str>) -> AuthStep {
        self.state = State::Done;
        let text = match client_text(data) {
            Ok(text) => text,
            Err(failure) => return failure,
        };
        let first = match parse_client_first(text) {
            Ok(first) => first,
            Err(failure) => return failure,
        };
        let Some(server_nonce) = server_nonce.map(str::to_owned).or_else(random_nonce) else {
            return AuthStep::Failure {
                code: ReasonCode::UNSPECIFIED_ERROR,
                why: "no random numbers from the operating system for a nonce",
            };
        };
        let (verifier, known) = self.store.verifier(&first.username);
        let nonce = format!("{}{server_nonce}", first.client_nonce);
        let server_first = format!(
            "r={nonce},s={},i={}",
            b64_encode(&verifier.salt),
            verifier.iterations
        );
        let reply = Bytes::copy_from_slice(server_first.as_bytes());
        self.state = State::AwaitingClientFinal(Box::new(Exchange {
            verifier,
            known,
            gs2_header: first.gs2_header.to_owned(),
            client_first_bare: first.bare.to_owned(),
            server_first,
            nonce,
        }));
        AuthStep::Continue(reply)
    }
}

impl AuthMethod for ScramSha256 {
    fn name(&self) -> &str {
        SCRAM_SHA_256
    }

    fn start(&self, data: &[u8]) -> (Box<dyn AuthConversation>, AuthStep) {
        let (conversation, step) = self.begin(data, None);
        (Box::new(conversation), step)
    }
}

impl AuthConversation for ScramConversation {
    fn step(&mut self, data: &[u8]) -> AuthStep {
        match std::mem::replace(&mut self.state, State::Done) {
            State::AwaitingClientFirst => self.on_client_first(data, None),
            State::AwaitingClientFinal(exchange) => on_client_final(&exchange, data),
            State::Done => AuthStep::malformed("SCRAM exchange already finished"),
        }
    }
}

/// client-first, split into the parts the rest of the exchange needs.
struct ClientFirst<'a> {
    gs2_header: &'a str,
    bare: &'a str,
    username: String,
    client_nonce: &'a str,
}

/// `gs2-cbind-flag "," [authzid] "," [reserved-mext ","] username "," nonce ["," extensions]`
/// (RFC 5802 §7).
fn parse_client_first(text: &str) -> Result<ClientFirst<'_>, AuthStep> {
    let bad = AuthStep::malformed;
    let (flag, rest) = text
        .split_once(',')
        .ok_or(bad("client-first has no gs2 header"))?;
    match flag {
        "n" | "y" => {}
        _ if flag.starts_with("p=") => {
            return Err(AuthStep::Failure {
                code: ReasonCode::BAD_AUTHENTICATION_METHOD,
                why: "channel binding requested; SCRAM-SHA-256-PLUS is not offered",
            })
        }
        _ => return Err(bad("client-first gs2 flag is not n, y or p=")),
    }
    let (authzid, bare) = rest
        .split_once(',')
        .ok_or(bad("client-first has no gs2 header"))?;
    let gs2_header = &text[..flag.len() + authzid.len() + 2];
    let mut attrs = bare.split(',');
    let user_attr = attrs.next().unwrap_or_default();
    if attr_value(user_attr, b'm').is_some() {
        return Err(bad("client-first asks for a mandatory extension"));
    }
    let username = attr_value(user_attr, b'n')
        .and_then(unescape_saslname)
        .ok_or(bad("client-first has no valid n= user name"))?;
    let client_nonce = attrs
        .next()
        .and_then(|a| attr_value(a, b'r'))
        .filter(|n| is_valid_nonce(n))
        .ok_or(bad("client-first has no valid r= nonce"))?;
    if !attrs.all(is_skippable_extension) {
        return Err(bad("client-first has a malformed extension"));
    }
    if !authzid.is_empty() {
        let authzid = attr_value(authzid, b'a')
            .and_then(unescape_saslname)
            .ok_or(bad("client-first authzid is not a=saslname"))?;
        // We do not let one user act as another, so an authzid can only repeat the user name.
        if authzid != username {
            return Err(AuthStep::not_authorized(
                "authorization identity differs from the user name",
            ));
        }
    }
    Ok(ClientFirst {
        gs2_header,
        bare,
        username,
        client_nonce,
    })
}

/// Checks client-final (`c=... ,r=... [,ext]* ,p=proof`) and answers with server-final.
fn on_client_final(exchange: &Exchange, data: &[u8]) -> AuthStep {
    let bad = AuthStep::malformed;
    let text = match client_text(data) {
        Ok(text) => text,
        Err(failure) => return failure,
    };
    let Some((without_proof, proof_attr)) = text.rsplit_once(',') else {
        return bad("client-final has no p= proof");
    };
    let Some(proof) = attr_value(proof_attr, b'p').and_then(b64_key) else {
        return bad("client-final has no valid p= proof");
    };
    let mut attrs = without_proof.split(',');
    let binding = attrs.next().and_then(|a| attr_value(a, b'c'));
    if binding.and_then(b64_decode).as_deref() != Some(exchange.gs2_header.as_bytes()) {
        return bad("client-final c= does not repeat the gs2 header");
    }
    if attrs.next().and_then(|a| attr_value(a, b'r')) != Some(exchange.nonce.as_str()) {
        return bad("client-final r= is not the nonce of this exchange");
    }
    if !attrs.all(is_skippable_extension) {
        return bad("client-final has a malformed extension");
    }
    let auth_message = format!(
        "{},{},{without_proof}",
        exchange.client_first_bare, exchange.server_first
    );
    let v = &exchange.verifier;
    // ClientKey = ClientProof XOR HMAC(StoredKey, AuthMessage); the client knew the password
    // iff H(ClientKey) == StoredKey (RFC 5802 §3).
    let mut client_key = hmac(&v.stored_key, &[auth_message.as_bytes()]);
    xor_into(&mut client_key, &proof);
    let matches: bool = sha256(&client_key).ct_eq(&v.stored_key).into();
    if !(matches && exchange.known) {
        return AuthStep::not_authorized("SCRAM proof did not verify");
    }
    let server_signature = hmac(&v.server_key, &[auth_message.as_bytes()]);
    let server_final = format!("v={}", b64_encode(&server_signature));
    AuthStep::Success {
        data: Some(Bytes::from(server_final)),
        username: v.username.clone(),
    }
}

/// The server's half of the nonce: random bytes, base64 so that it is printable and has no `,`.
fn random_nonce() -> Option<String> {
    let mut bytes = [0u8; SERVER_NONCE_BYTES];
    getrandom::fill(&mut bytes).ok()?;
    Some(b64_encode(&bytes))
}

#[cfg(test)]
impl ScramSha256 {
    /// For the RFC 7677 vector: the server nonce given, not drawn.
    pub(super) fn start_with_nonce(
        &self,
        data: &[u8],
        server_nonce: &str,
    ) -> (Box<dyn AuthConversation>, AuthStep) {
        let (conversation, step) = self.begin(data, Some(server_nonce));
        (Box::new(conversation), step)
    }
}

#[cfg(test)]
pub(super) fn verifier_string(password: &str, salt: &[u8], iterations: u32) -> String {
    let v = Verifier::from_password(ByteStr::default(), password.as_bytes(), salt, iterations);
    format!(
        "{VERIFIER_PREFIX}{iterations}:{}${}:{}",
        b64_encode(salt),
        b64_encode(&v.stored_key),
        b64_encode(&v.server_key)
    )
}
