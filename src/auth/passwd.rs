//! mosquitto-compatible password file (`password_file`): `user:hash` lines, read into an
//! immutable [`PasswordFile`] that every shard shares through an `Arc`, and checked with
//! [`PasswordFile::verify`].
//!
//! Owns: the file's line grammar, user names, the unknown-user policy and `ringmq passwd`
//! (in `passwd/cli.rs`). Does not own: the hash formats (`passwd/hash.rs`), where a verify runs
//! (it is CPU-heavy by design: the caller runs it off the shard thread) or what a refusal
//! turns into on the wire.
//!
//! # The grammar, as mosquitto 2.0/2.1's broker reads it (`src/security_default.c`)
//!
//! - A line whose first byte is `#` is a comment. A line with no `:` is skipped by mosquitto;
//!   we skip it only when it is blank, and otherwise say so, since it can only be a mistake.
//! - Otherwise the user name is the text before the first `:` and the hash the text after it,
//!   each with C `isspace` blanks trimmed from both ends (so CRLF files work).
//! - mosquitto caps each field at 65 535 bytes and, for any line it cannot use (empty user,
//!   bad hash, duplicate user, over-long field), logs a warning, skips that line and starts
//!   anyway. We refuse the whole file instead, naming `file:line`: a skipped line is a user
//!   locked out, or a duplicate whose winner differs between mosquitto 2.0 (the last line) and
//!   2.1 (the first), and an operator should hear about it before clients do.
//!
//! # Differences from mosquitto, on purpose
//!
//! - mosquitto hashes the client's password up to its first NUL byte (it is a C string);
//!   we hash every byte, so `secret\0anything` does not pass for `secret`. (Trailing NULs
//!   alone still pass a `$7$` entry: HMAC pads its key with zeros, in OpenSSL as here.)
//! - Iteration counts and Argon2 costs are bounded (`hash.rs`), so one hostile entry cannot
//!   make every login take minutes.
//!
//! # Files
//!
//! | file | holds |
//! |---|---|
//! | `passwd.rs` | [`PasswordFile`], the line grammar, the limits |
//! | `passwd/hash.rs` | [`PasswordHash`]: `$6$`, `$7$`, `$argon2id$`; [`hash_pbkdf2`] |
//! | `passwd/cli.rs` | [`run_passwd_command`], the `ringmq passwd` subcommand |

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use super::file::FileError;

mod cli;
mod hash;
#[cfg(test)]
mod tests;

pub use cli::run_passwd_command;
pub use hash::{
    hash_pbkdf2, Argon2idHash, HashError, PasswordHash, Pbkdf2Sha512Hash, Sha512Hash,
    ARGON2_FIELD_BYTES_MAX, ARGON2_LANES_MAX, ARGON2_MEMORY_KIB_MAX, ARGON2_PASSES_MAX,
    PBKDF2_ITERATIONS_MAX, SALT_BYTES_MOSQUITTO_2_0, SALT_BYTES_MOSQUITTO_2_1,
};

/// Iterations [`hash_pbkdf2`] uses when not told otherwise: `mosquitto_passwd`'s default in
/// mosquitto 2.1 (`PW_DEFAULT_ITERATIONS` in `libcommon/password_common.c`, OWASP's figure for
/// PBKDF2-HMAC-SHA512). mosquitto 2.0's `mosquitto_passwd` used 101, far too few to slow down
/// a guesser; 2.0 reads any count, so this one works there too.
pub const PBKDF2_ITERATIONS_DEFAULT: u32 = 210_000;

/// Longest user name, in bytes: mosquitto's limit in the broker and in `mosquitto_passwd`, and
/// the most an MQTT UTF-8 string can carry.
pub const USERNAME_BYTES_MAX: usize = 65_535;

/// Longest hash field, in bytes: mosquitto's limit. Real entries are under 300 bytes.
pub const HASH_TEXT_BYTES_MAX: usize = 65_535;

/// Largest password file we read, in bytes. A mosquitto 2.0 `$7$` line is about 130 bytes, so
/// this is about two million users; past that a flat file is the wrong store, and the bound
/// keeps a wrong path (say, a disk image) from being read into memory whole.
pub const FILE_BYTES_MAX: u64 = 256 * 1024 * 1024;

/// A parsed password file: user name -> stored hash. Immutable, Send + Sync, shared by shards
/// via Arc.
#[derive(Clone, Debug, Default)]
pub struct PasswordFile {
    users: HashMap<Box<str>, PasswordHash>,
    /// What an unknown user is checked against, so that the answer takes as long as for a
    /// known one: all-zero salt and hash with the cost most entries have. `None` when the file
    /// has no users, since then there is no known user's timing to tell apart.
    dummy: Option<PasswordHash>,
}

/// One line of the file, classified by the broker's rules.
#[derive(Debug, PartialEq, Eq)]
enum Line<'a> {
    /// A comment or a blank line.
    Skip,
    Entry {
        user: &'a str,
        hash: &'a str,
    },
}

impl PasswordFile {
    /// Reads and parses the file at `path`. A file that is missing, unreadable, too large or
    /// not UTF-8 is an error on line 0.
    pub fn load(path: &Path) -> Result<PasswordFile, FileError> {
        let size = std::fs::metadata(path)
            .map_err(|e| FileError::at(path, 0, e.to_string()))?
            .len();
        if size > FILE_BYTES_MAX {
            return Err(FileError::at(
                path,
                0,
                format!("{size} bytes is more than FILE_BYTES_MAX ({FILE_BYTES_MAX})"),
            ));
        }
        PasswordFile::parse(&FileError::read_to_string(path)?, path)
    }

    /// Parses the text of a password file; `path` only names it in errors.
    pub fn parse(text: &str, path: &Path) -> Result<PasswordFile, FileError> {
        let mut users = HashMap::new();
        let mut first_line: HashMap<&str, usize> = HashMap::new();
        let mut costs: BTreeMap<hash::Cost, usize> = BTreeMap::new();
        for (index, raw) in text.split('\n').enumerate() {
            let line = index + 1;
            let Line::Entry { user, hash } =
                classify(raw).map_err(|what| FileError::at(path, line, what))?
            else {
                continue;
            };
            if let Some(first) = first_line.insert(user, line) {
                return Err(FileError::at(
                    path,
                    line,
                    format!("user {user:?} is already on line {first}"),
                ));
            }
            let hash = PasswordHash::parse(hash)
                .map_err(|what| FileError::at(path, line, format!("user {user:?}: {what}")))?;
            *costs.entry(hash.cost()).or_default() += 1;
            users.insert(Box::from(user), hash);
        }
        // Ties go to the first cost in `Cost`'s order, so the choice does not depend on
        // HashMap iteration order.
        let commonest = costs.iter().max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)));
        let dummy = commonest.map(|(cost, _)| PasswordHash::dummy(*cost));
        Ok(PasswordFile { users, dummy })
    }

    pub fn len(&self) -> usize {
        self.users.len()
    }

    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    pub fn contains(&self, user: &str) -> bool {
        self.users.contains_key(user)
    }

    /// Checks `password` for `user`. CPU-heavy by design (PBKDF2/argon2): the caller runs it
    /// off the shard thread. An unknown user costs the same time as a known one of the file's
    /// commonest hash cost and gives the same `false`. Any password length is fine (each hash
    /// takes any length); none panics.
    pub fn verify(&self, user: &str, password: &[u8]) -> bool {
        match (self.users.get(user), &self.dummy) {
            (Some(hash), _) => hash.verify(password),
            (None, Some(dummy)) => {
                // The result is thrown away: the work is done only for its time. An all-zero
                // hash matching would need a SHA-512/Argon2 preimage, and even then the user
                // is unknown, so the answer is `false` regardless.
                let _ = std::hint::black_box(dummy.verify(password));
                false
            }
            (None, None) => false,
        }
    }
}

/// Classifies one line (without its `\n`) the way mosquitto's broker does, but with an error
/// for what mosquitto would skip with a warning.
fn classify(raw: &str) -> Result<Line<'_>, String> {
    if raw.starts_with('#') || trim_c_space(raw).is_empty() {
        return Ok(Line::Skip);
    }
    let Some((user, hash)) = raw.split_once(':') else {
        return Err("no ':' between user name and hash".to_owned());
    };
    let (user, hash) = (trim_c_space(user), trim_c_space(hash));
    check_username(user)?;
    if hash.is_empty() {
        return Err(format!("user {user:?} has no hash after ':'"));
    }
    if hash.len() > HASH_TEXT_BYTES_MAX {
        return Err(format!(
            "user {user:?}: hash longer than HASH_TEXT_BYTES_MAX ({HASH_TEXT_BYTES_MAX} bytes)"
        ));
    }
    // mosquitto would read up to the second ':' and ignore the rest; no hash form has a ':'.
    if hash.contains(':') {
        return Err(format!("user {user:?}: more than one ':' on the line"));
    }
    Ok(Line::Entry { user, hash })
}

/// The user-name rules of `mosquitto_passwd` (`is_username_valid`), which the broker relies
/// on: not empty, at most [`USERNAME_BYTES_MAX`] bytes, no control characters, no `:`. Also
/// no blanks at either end, since the broker would trim them off.
fn check_username(user: &str) -> Result<(), String> {
    if user.is_empty() {
        return Err("empty user name".to_owned());
    }
    if user.len() > USERNAME_BYTES_MAX {
        return Err(format!(
            "user name longer than USERNAME_BYTES_MAX ({USERNAME_BYTES_MAX} bytes)"
        ));
    }
    if user.chars().any(char::is_control) {
        return Err(format!("user name {user:?} has a control character"));
    }
    if user.contains(':') {
        return Err(format!("user name {user:?} has a ':'"));
    }
    if trim_c_space(user) != user {
        return Err(format!("user name {user:?} starts or ends with a blank"));
    }
    Ok(())
}

/// Trims what C's `isspace` calls blank (mosquitto's `misc__trimblanks`): space, `\t`, `\n`,
/// `\v`, `\f`, `\r`. Not Rust's `trim`, which also takes Unicode spaces mosquitto keeps.
fn trim_c_space(s: &str) -> &str {
    s.trim_matches(|c| matches!(c, ' ' | '\t' | '\n' | '\u{b}' | '\u{c}' | '\r'))
}
