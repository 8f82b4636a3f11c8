//! One stored password hash in the forms mosquitto writes: parsing the text after `user:`,
//! checking a password against it, and making new `$7$` entries.
//!
//! Owns: the three hash formats and the limits on what an entry may make a verify cost.
//! Does not own: the file's lines, user names or the unknown-user policy (`passwd.rs`).
//! Pure computation: no I/O besides the operating system's random bytes for a new salt.
//!
//! | form | written by | computation |
//! |---|---|---|
//! | `$6$<salt>$<hash>` | `mosquitto_passwd -H sha512` | SHA-512(password ‖ salt) |
//! | `$7$<iterations>$<salt>$<hash>` | `mosquitto_passwd` (2.0 default) | PBKDF2-HMAC-SHA512, 64-byte output |
//! | `$argon2id$v=19$m=..,t=..,p=..$<salt>$<hash>` | `mosquitto_passwd` (2.1 default) | Argon2id (RFC 9106) |
//!
//! `$6$`/`$7$` fields are standard base64 *with* padding (OpenSSL's BIO encoder, which
//! mosquitto uses); the salt is 12 bytes (mosquitto 2.0) or 64 bytes (2.1) and the hash 64
//! bytes, exactly the lengths mosquitto 2.1 accepts. The argon2id string is libargon2's
//! encoding: standard base64 *without* padding.

use std::fmt;

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use base64::Engine as _;
use sha2::{Digest as _, Sha512};
use subtle::ConstantTimeEq;

/// Most PBKDF2 iterations we accept from a file. mosquitto 2.1 writes 210 000; at roughly a
/// microsecond per iteration in a release build, a million is about a second of one core per
/// CONNECT, which is already more than any sane entry asks. Without a bound, one entry of
/// `$7$2000000000$...` would make every login for that user (and, through the dummy hash,
/// for unknown users) take half an hour.
pub const PBKDF2_ITERATIONS_MAX: u32 = 1_000_000;

/// Most Argon2 memory, in KiB, an entry may ask for. mosquitto 2.1 uses 47 104 KiB (46 MiB,
/// OWASP's recommendation); 256 MiB leaves room for stronger settings while bounding what
/// each concurrent verify allocates.
pub const ARGON2_MEMORY_KIB_MAX: u32 = 256 * 1024;

/// Most Argon2 passes (`t`). mosquitto uses 1; the cost is memory × passes, so with the memory
/// bound above this keeps one verify to a few seconds at worst.
pub const ARGON2_PASSES_MAX: u32 = 10;

/// Most Argon2 lanes (`p`). mosquitto uses 1; we compute lanes one after another, so more lanes
/// add no security for us, only setup cost.
pub const ARGON2_LANES_MAX: u32 = 16;

/// Longest Argon2 salt or output we accept, in bytes. mosquitto writes 64 of each; libargon2
/// has no practical bound, but nothing legitimate needs more than this.
pub const ARGON2_FIELD_BYTES_MAX: usize = 1024;

/// Shortest Argon2 salt and output, in bytes: libargon2's own minimums (RFC 9106 §3.1).
const ARGON2_SALT_BYTES_MIN: usize = 8;
const ARGON2_OUTPUT_BYTES_MIN: usize = 4;

/// Salt length mosquitto 2.0 writes and the only one it reads; [`hash_pbkdf2`] uses it so that
/// our entries work in every mosquitto 2.x.
pub const SALT_BYTES_MOSQUITTO_2_0: usize = 12;
/// Salt length mosquitto 2.1 writes (its `HASH_LEN`, OpenSSL's `EVP_MAX_MD_SIZE`).
pub const SALT_BYTES_MOSQUITTO_2_1: usize = 64;

/// SHA-512's output, and the PBKDF2 output length mosquitto stores.
const SHA512_BYTES: usize = 64;

/// One stored hash, the part of a password-file line after `user:`.
#[derive(Clone, PartialEq, Eq)]
pub enum PasswordHash {
    /// `$7$`: PBKDF2-HMAC-SHA512.
    Pbkdf2Sha512(Pbkdf2Sha512Hash),
    /// `$6$`: one SHA-512 over the password, then the salt. Weak (no stretching); read only so
    /// that old files keep working, never written.
    Sha512(Sha512Hash),
    /// `$argon2id$`: mosquitto 2.1's default.
    Argon2id(Argon2idHash),
}

/// A `$7$` entry. Fields are private so that every value went through [`PasswordHash::parse`]
/// (or [`hash_pbkdf2`]) and is within the limits.
#[derive(Clone, PartialEq, Eq)]
pub struct Pbkdf2Sha512Hash {
    iterations: u32,
    salt: Vec<u8>,
    hash: [u8; SHA512_BYTES],
}

/// A `$6$` entry.
#[derive(Clone, PartialEq, Eq)]
pub struct Sha512Hash {
    salt: Vec<u8>,
    hash: [u8; SHA512_BYTES],
}

/// An `$argon2id$` entry: the PHC fields libargon2 encodes.
#[derive(Clone, PartialEq, Eq)]
pub struct Argon2idHash {
    memory_kib: u32,
    passes: u32,
    lanes: u32,
    salt: Vec<u8>,
    hash: Vec<u8>,
}

/// What a verify of a hash costs: hashes with equal costs take the same time for any password
/// of a given length. `passwd.rs` builds its unknown-user dummy from the commonest cost.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Cost {
    Pbkdf2Sha512 {
        iterations: u32,
        salt_bytes: usize,
    },
    Sha512 {
        salt_bytes: usize,
    },
    Argon2id {
        memory_kib: u32,
        passes: u32,
        lanes: u32,
        salt_bytes: usize,
        hash_bytes: usize,
    },
}

/// Why [`hash_pbkdf2`] could not make an entry.
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error("PBKDF2 iterations must be 1..={PBKDF2_ITERATIONS_MAX}, not {0}")]
    Iterations(u32),
    #[error("no random numbers from the operating system for the salt: {0}")]
    Random(getrandom::Error),
}

impl PasswordHash {
    /// Parses the text after `user:` exactly as mosquitto writes it. The error says what is
    /// wrong without echoing the hash (it is a secret-derived value).
    pub fn parse(s: &str) -> Result<PasswordHash, String> {
        if let Some(rest) = s.strip_prefix("$7$") {
            parse_pbkdf2(rest).map(PasswordHash::Pbkdf2Sha512)
        } else if let Some(rest) = s.strip_prefix("$6$") {
            parse_sha512(rest).map(PasswordHash::Sha512)
        } else if let Some(rest) = s.strip_prefix("$argon2id$") {
            parse_argon2id(rest).map(PasswordHash::Argon2id)
        } else {
            Err(
                "not a $6$, $7$ or $argon2id$ hash (a plain-text password file must be \
                 hashed first, e.g. with `mosquitto_passwd -U`)"
                    .to_owned(),
            )
        }
    }

    /// True when `password` hashes to this entry. Compares in constant time; never panics,
    /// whatever the password's length (each computation takes any length).
    pub fn verify(&self, password: &[u8]) -> bool {
        match self {
            PasswordHash::Pbkdf2Sha512(h) => {
                let mut out = [0u8; SHA512_BYTES];
                pbkdf2::pbkdf2_hmac::<Sha512>(password, &h.salt, h.iterations, &mut out);
                out.ct_eq(&h.hash).into()
            }
            PasswordHash::Sha512(h) => {
                let out = Sha512::new()
                    .chain_update(password)
                    .chain_update(&h.salt)
                    .finalize();
                out.as_slice().ct_eq(&h.hash).into()
            }
            PasswordHash::Argon2id(h) => h.verify(password),
        }
    }

    pub(crate) fn cost(&self) -> Cost {
        match self {
            PasswordHash::Pbkdf2Sha512(h) => Cost::Pbkdf2Sha512 {
                iterations: h.iterations,
                salt_bytes: h.salt.len(),
            },
            PasswordHash::Sha512(h) => Cost::Sha512 {
                salt_bytes: h.salt.len(),
            },
            PasswordHash::Argon2id(h) => Cost::Argon2id {
                memory_kib: h.memory_kib,
                passes: h.passes,
                lanes: h.lanes,
                salt_bytes: h.salt.len(),
                hash_bytes: h.hash.len(),
            },
        }
    }

    /// An entry of this cost that no password matches in practice (all-zero salt and hash),
    /// for spending an unknown user's time.
    pub(crate) fn dummy(cost: Cost) -> PasswordHash {
        match cost {
            Cost::Pbkdf2Sha512 {
                iterations,
                salt_bytes,
            } => PasswordHash::Pbkdf2Sha512(Pbkdf2Sha512Hash {
                iterations,
                salt: vec![0; salt_bytes],
                hash: [0; SHA512_BYTES],
            }),
            Cost::Sha512 { salt_bytes } => PasswordHash::Sha512(Sha512Hash {
                salt: vec![0; salt_bytes],
                hash: [0; SHA512_BYTES],
            }),
            Cost::Argon2id {
                memory_kib,
                passes,
                lanes,
                salt_bytes,
                hash_bytes,
            } => PasswordHash::Argon2id(Argon2idHash {
                memory_kib,
                passes,
                lanes,
                salt: vec![0; salt_bytes],
                hash: vec![0; hash_bytes],
            }),
        }
    }
}

impl Argon2idHash {
    fn verify(&self, password: &[u8]) -> bool {
        let params = argon2::Params::new(
            self.memory_kib,
            self.passes,
            self.lanes,
            Some(self.hash.len()),
        );
        // Parsing checked every parameter against libargon2's rules, so these errors cannot
        // happen; if one did, refusing the login is the safe answer.
        let Ok(params) = params else {
            return false;
        };
        let argon =
            argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
        let mut out = vec![0u8; self.hash.len()];
        match argon.hash_password_into(password, &self.salt, &mut out) {
            Ok(()) => out.ct_eq(&self.hash).into(),
            Err(_) => false,
        }
    }
}

/// The hashes are secrets' derivatives: debug output names the form and cost only.
impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PasswordHash({:?})", self.cost())
    }
}

/// Makes a new `$7$` entry (the text after `user:`) as `mosquitto_passwd` writes it:
/// `$7$<iterations>$<base64 12-byte salt>$<base64 64-byte hash>`, padded base64. The salt is
/// mosquitto 2.0's length so that every mosquitto 2.x reads the entry.
pub fn hash_pbkdf2(password: &[u8], iterations: u32) -> Result<String, HashError> {
    if !(1..=PBKDF2_ITERATIONS_MAX).contains(&iterations) {
        return Err(HashError::Iterations(iterations));
    }
    let mut salt = [0u8; SALT_BYTES_MOSQUITTO_2_0];
    getrandom::fill(&mut salt).map_err(HashError::Random)?;
    let mut hash = [0u8; SHA512_BYTES];
    pbkdf2::pbkdf2_hmac::<Sha512>(password, &salt, iterations, &mut hash);
    Ok(format!(
        "$7${iterations}${}${}",
        STANDARD.encode(salt),
        STANDARD.encode(hash)
    ))
}

/// `<iterations>$<salt>$<hash>` after `$7$`.
fn parse_pbkdf2(rest: &str) -> Result<Pbkdf2Sha512Hash, String> {
    let mut fields = rest.split('$');
    let iterations = fields.next().unwrap_or_default();
    let iterations = parse_decimal(iterations)
        .filter(|n| (1..=PBKDF2_ITERATIONS_MAX).contains(n))
        .ok_or_else(|| {
            format!("$7$ iterations must be a decimal number in 1..={PBKDF2_ITERATIONS_MAX}")
        })?;
    let (salt, hash) = salt_and_hash("$7$", &mut fields)?;
    Ok(Pbkdf2Sha512Hash {
        iterations,
        salt,
        hash,
    })
}

/// `<salt>$<hash>` after `$6$`.
fn parse_sha512(rest: &str) -> Result<Sha512Hash, String> {
    let (salt, hash) = salt_and_hash("$6$", &mut rest.split('$'))?;
    Ok(Sha512Hash { salt, hash })
}

/// The last two `$` fields of a `$6$`/`$7$` entry, and nothing after them.
fn salt_and_hash<'a>(
    form: &str,
    fields: &mut impl Iterator<Item = &'a str>,
) -> Result<(Vec<u8>, [u8; SHA512_BYTES]), String> {
    let (Some(salt), Some(hash), None) = (fields.next(), fields.next(), fields.next()) else {
        return Err(format!("{form} hash must have a salt and a hash field"));
    };
    let salt = STANDARD
        .decode(salt)
        .ok()
        .filter(|s| [SALT_BYTES_MOSQUITTO_2_0, SALT_BYTES_MOSQUITTO_2_1].contains(&s.len()))
        .ok_or_else(|| {
            format!(
                "{form} salt must be padded base64 of {SALT_BYTES_MOSQUITTO_2_0} or \
                 {SALT_BYTES_MOSQUITTO_2_1} bytes"
            )
        })?;
    let hash = STANDARD
        .decode(hash)
        .ok()
        .and_then(|h| <[u8; SHA512_BYTES]>::try_from(h).ok())
        .ok_or_else(|| format!("{form} hash must be padded base64 of {SHA512_BYTES} bytes"))?;
    Ok((salt, hash))
}

/// `v=19$m=<kib>,t=<passes>,p=<lanes>$<salt>$<hash>` after `$argon2id$`, as libargon2's
/// `argon2id_hash_encoded` writes it (mosquitto 2.1 uses exactly that function).
fn parse_argon2id(rest: &str) -> Result<Argon2idHash, String> {
    let mut fields = rest.split('$');
    // libargon2 reads a missing `v=` as the obsolete version 0x10; mosquitto always writes 19
    // (0x13), and we support only that.
    if fields.next() != Some("v=19") {
        return Err("$argon2id$ hash must say v=19".to_owned());
    }
    let (memory_kib, passes, lanes) = fields
        .next()
        .and_then(parse_argon2_params)
        .ok_or("$argon2id$ parameters must be m=<KiB>,t=<passes>,p=<lanes>")?;
    if memory_kib > ARGON2_MEMORY_KIB_MAX
        || !(1..=ARGON2_PASSES_MAX).contains(&passes)
        || !(1..=ARGON2_LANES_MAX).contains(&lanes)
        || memory_kib < 8 * lanes
    {
        return Err(format!(
            "$argon2id$ parameters out of range: m must be 8*p..={ARGON2_MEMORY_KIB_MAX}, \
             t 1..={ARGON2_PASSES_MAX}, p 1..={ARGON2_LANES_MAX}"
        ));
    }
    let (Some(salt), Some(hash), None) = (fields.next(), fields.next(), fields.next()) else {
        return Err("$argon2id$ hash must end in $<salt>$<hash>".to_owned());
    };
    let salt = unpadded_base64(salt, ARGON2_SALT_BYTES_MIN)
        .ok_or("$argon2id$ salt must be unpadded base64 of 8..=1024 bytes")?;
    let hash = unpadded_base64(hash, ARGON2_OUTPUT_BYTES_MIN)
        .ok_or("$argon2id$ hash must be unpadded base64 of 4..=1024 bytes")?;
    Ok(Argon2idHash {
        memory_kib,
        passes,
        lanes,
        salt,
        hash,
    })
}

/// `m=..,t=..,p=..` in that order, as libargon2 writes and requires.
fn parse_argon2_params(s: &str) -> Option<(u32, u32, u32)> {
    let mut parts = s.split(',');
    let m = parse_decimal(parts.next()?.strip_prefix("m=")?)?;
    let t = parse_decimal(parts.next()?.strip_prefix("t=")?)?;
    let p = parse_decimal(parts.next()?.strip_prefix("p=")?)?;
    parts.next().is_none().then_some((m, t, p))
}

fn unpadded_base64(s: &str, bytes_min: usize) -> Option<Vec<u8>> {
    STANDARD_NO_PAD
        .decode(s)
        .ok()
        .filter(|v| (bytes_min..=ARGON2_FIELD_BYTES_MAX).contains(&v.len()))
}

/// A plain decimal number: digits only, no sign, no spaces, fits in `u32`. Stricter than the C
/// `atoi` mosquitto uses, which reads `12abc` as 12; mosquitto never writes such a thing.
fn parse_decimal(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}
