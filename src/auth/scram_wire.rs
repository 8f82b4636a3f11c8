//! The pieces of SCRAM-SHA-256 that both sides share: the key schedule of RFC 5802 §3, base64,
//! saslname escaping and attribute parsing.
//!
//! Owns: the arithmetic (`Hi`, `HMAC`, `H`, the XOR of a proof) and the grammar of single
//! attributes. Does not own: the order of messages or what a failure means (that is
//! `scram.rs` for the server and `scram_client.rs` for the client). Pure functions only.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

/// The output of SHA-256, and so the size of every SCRAM-SHA-256 key, proof and signature.
pub(super) const KEY_BYTES: usize = 32;

/// A SHA-256 sized key, proof or signature.
pub(super) type Key = [u8; KEY_BYTES];

/// The iteration count used for plain passwords salted at start-up, and shown for unknown
/// users so that they look like the common case. RFC 7677 §4: "at least 4096".
pub const ITERATIONS_DEFAULT: u32 = 4096;

/// The lowest iteration count we accept from a stored verifier or a server (RFC 7677 §4).
pub const ITERATIONS_MIN: u32 = 4096;

/// The highest iteration count we accept. A client runs `Hi` once per connection, so a hostile
/// server announcing 2^32 iterations would pin a core for minutes; 1M is about half a second.
pub const ITERATIONS_MAX: u32 = 1_000_000;

/// The longest salt we accept, decoded. Common salts are 16 bytes; this bounds what a verifier
/// or a server may make us hash.
pub(super) const SALT_BYTES_MAX: usize = 64;

/// `HMAC(key, parts...)` with SHA-256.
pub(super) fn hmac(key: &[u8], parts: &[&[u8]]) -> Key {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key)
        .expect("HMAC takes keys of any length (RFC 2104 hashes long keys)");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// `H(data)`: SHA-256.
pub(super) fn sha256(data: &[u8]) -> Key {
    Sha256::digest(data).into()
}

/// `Hi(password, salt, i)` of RFC 5802 §2.2: PBKDF2-HMAC-SHA256 with one 32-byte output block.
///
/// Hand-rolled rather than from the `pbkdf2` crate: the RFC defines `Hi` itself in four lines,
/// one block needs no block counter loop, and the RFC 7677 test vector checks it.
pub(super) fn hi(password: &[u8], salt: &[u8], iterations: u32) -> Key {
    let prf = <Hmac<Sha256> as KeyInit>::new_from_slice(password)
        .expect("HMAC takes keys of any length (RFC 2104 hashes long keys)");
    let mut first = prf.clone();
    first.update(salt);
    first.update(&1u32.to_be_bytes());
    let mut u: Key = first.finalize().into_bytes().into();
    let mut out = u;
    for _ in 1..iterations {
        // Cloning the keyed state skips re-hashing the padded key: the same trick as `pbkdf2`.
        let mut next = prf.clone();
        next.update(&u);
        u = next.finalize().into_bytes().into();
        xor_into(&mut out, &u);
    }
    out
}

/// `StoredKey` and `ServerKey` from `SaltedPassword` (RFC 5802 §3).
pub(super) fn server_keys(salted_password: &Key) -> (Key, Key) {
    let client_key = hmac(salted_password, &[b"Client Key"]);
    let stored_key = sha256(&client_key);
    let server_key = hmac(salted_password, &[b"Server Key"]);
    (stored_key, server_key)
}

pub(super) fn xor_into(acc: &mut Key, other: &Key) {
    for (a, b) in acc.iter_mut().zip(other) {
        *a ^= b;
    }
}

pub(super) fn b64_encode(data: &[u8]) -> String {
    STANDARD.encode(data)
}

/// Decodes standard, padded base64; `None` on anything else.
pub(super) fn b64_decode(text: &str) -> Option<Vec<u8>> {
    STANDARD.decode(text).ok()
}

/// Decodes base64 that must hold exactly one key.
pub(super) fn b64_key(text: &str) -> Option<Key> {
    b64_decode(text)?.try_into().ok()
}

/// Escapes a user name as a saslname (RFC 5802 §5.1): `,` is `=2C` and `=` is `=3D`.
pub(super) fn escape_saslname(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        match c {
            ',' => out.push_str("=2C"),
            '=' => out.push_str("=3D"),
            c => out.push(c),
        }
    }
    out
}

/// Undoes [`escape_saslname`]. Any other `=` sequence is malformed, as is an empty name.
pub(super) fn unescape_saslname(text: &str) -> Option<String> {
    if text.is_empty() {
        return None;
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('=') {
        out.push_str(&rest[..at]);
        let escape = rest.get(at..at + 3)?;
        match escape {
            "=2C" => out.push(','),
            "=3D" => out.push('='),
            _ => return None,
        }
        rest = &rest[at + 3..];
    }
    out.push_str(rest);
    Some(out)
}

/// A nonce is one or more printable ASCII characters other than `,` (RFC 5802 §7).
pub(super) fn is_valid_nonce(nonce: &str) -> bool {
    !nonce.is_empty()
        && nonce
            .bytes()
            .all(|b| (0x21..=0x7e).contains(&b) && b != b',')
}

/// The value of attribute `name` if `attr` is `name=value`.
pub(super) fn attr_value(attr: &str, name: u8) -> Option<&str> {
    match attr.as_bytes() {
        [n, b'=', ..] if *n == name => Some(&attr[2..]),
        _ => None,
    }
}

/// An extension attribute we may skip: one ASCII letter, `=`, a value. `m=` is the reserved
/// mandatory extension, which nobody defines, so RFC 5802 §5.1 says to fail on it.
pub(super) fn is_skippable_extension(attr: &str) -> bool {
    matches!(attr.as_bytes(), [n, b'=', ..] if n.is_ascii_alphabetic() && *n != b'm')
}
