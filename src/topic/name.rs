//! [`TopicName`]: the validated topic of a PUBLISH or a will, and the rules every topic string
//! shares with a filter (length, null character, level count).

use std::fmt;
use std::iter::FusedIterator;

use crate::codec::ByteStr;

use super::{TopicError, LEVEL_SEPARATOR, TOPIC_LEN_MAX, TOPIC_LEVELS_MAX};

/// [`LEVEL_SEPARATOR`] as the byte [`Levels`] searches for; ASCII, so never inside a longer
/// UTF-8 sequence.
const SEPARATOR_BYTE: u8 = LEVEL_SEPARATOR as u8;
const _: () = assert!(LEVEL_SEPARATOR.is_ascii());

/// A topic name: non-empty, at most [`TOPIC_LEN_MAX`] bytes and [`TOPIC_LEVELS_MAX`] levels,
/// without U+0000 and without wildcards. Keeps the wire `Bytes`, so validating a PUBLISH
/// topic does not copy it.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicName(ByteStr);

/// The levels of a topic name or filter, split at `/`. An empty level is a level: `/a` has two
/// and `a//b` three (§4.7.1.1).
///
/// The subscription matcher splits a PUBLISH topic whenever there are wildcard filters to walk,
/// so this searches bytes for [`LEVEL_SEPARATOR`] directly rather than through `str::split`'s generic `char` searcher:
/// levels are a few bytes long, and a plain loop over them beats `memchr`'s set-up. Splitting
/// at an ASCII byte always leaves both halves on a UTF-8 boundary.
#[derive(Debug, Clone)]
pub struct Levels<'a> {
    /// What is left to split, or `None` once the last level has been returned.
    rest: Option<&'a str>,
}

/// What one pass over a topic string found; shared by names and filters.
pub(super) struct Scan {
    pub(super) has_wildcard: bool,
    /// Contains a control character ([`super::has_control_characters`]).
    pub(super) has_control: bool,
}

impl TopicName {
    /// Checks the §4.7 rules for a topic name.
    pub fn new(text: ByteStr) -> Result<TopicName, TopicError> {
        let scan = check_common(text.as_str())?;
        if scan.has_wildcard {
            return Err(TopicError::WildcardInTopicName); // [MQTT-3.3.2-2] [MQTT-4.7.1-1]
        }
        Ok(TopicName(text))
    }

    /// [`TopicName::new`], also refusing control characters (U+0001..U+001F, U+007F..U+009F)
    /// when `refuse_controls`: the PUBLISH path's check, in the same single pass.
    pub fn new_refusing_controls(
        text: ByteStr,
        refuse_controls: bool,
    ) -> Result<TopicName, TopicError> {
        let scan = check_common(text.as_str())?;
        if scan.has_wildcard {
            return Err(TopicError::WildcardInTopicName); // [MQTT-3.3.2-2] [MQTT-4.7.1-1]
        }
        if refuse_controls && scan.has_control {
            return Err(TopicError::ControlCharacter);
        }
        Ok(TopicName(text))
    }

    /// For topics fixed in the source, such as `$SYS/broker/uptime`: no copy.
    pub fn from_static(text: &'static str) -> Result<TopicName, TopicError> {
        TopicName::new(ByteStr::from_static(text))
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    pub fn as_byte_str(&self) -> &ByteStr {
        &self.0
    }

    pub fn into_byte_str(self) -> ByteStr {
        self.0
    }

    /// Whether the topic starts with `$`: such topics are the server's (for example `$SYS/`),
    /// and filters that start with a wildcard never match them [MQTT-4.7.2-1].
    pub fn is_sys(&self) -> bool {
        self.as_str().starts_with('$')
    }

    pub fn levels(&self) -> Levels<'_> {
        Levels::new(self.as_str())
    }
}

impl<'a> Levels<'a> {
    pub(super) fn new(text: &'a str) -> Levels<'a> {
        Levels { rest: Some(text) }
    }
}

impl<'a> Iterator for Levels<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let rest = self.rest?;
        match rest.bytes().position(|byte| byte == SEPARATOR_BYTE) {
            Some(at) => {
                self.rest = Some(&rest[at + 1..]);
                Some(&rest[..at])
            }
            None => {
                self.rest = None;
                Some(rest)
            }
        }
    }
}

impl FusedIterator for Levels<'_> {}

impl TryFrom<&str> for TopicName {
    type Error = TopicError;

    /// Copies `text`; prefer [`TopicName::new`] with the wire `ByteStr`.
    fn try_from(text: &str) -> Result<TopicName, TopicError> {
        TopicName::new(ByteStr::from(text))
    }
}

impl TryFrom<ByteStr> for TopicName {
    type Error = TopicError;

    fn try_from(text: ByteStr) -> Result<TopicName, TopicError> {
        TopicName::new(text)
    }
}

impl AsRef<str> for TopicName {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Debug for TopicName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for TopicName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The rules that topic names and filters share, checked in one pass over the bytes because
/// every PUBLISH runs it.
pub(super) fn check_common(text: &str) -> Result<Scan, TopicError> {
    if text.is_empty() {
        return Err(TopicError::Empty); // [MQTT-4.7.3-1]
    }
    if text.len() > TOPIC_LEN_MAX {
        return Err(TopicError::TooLong {
            len_bytes: text.len(),
        }); // [MQTT-4.7.3-3]
    }
    // One pass over the bytes (this runs on every PUBLISH), noting which of '/', NUL, a
    // wildcard, a one-byte control character, or 0xC2 (which starts the two-byte controls
    // U+0080..U+009F) occur: ASCII eight bytes at a time, the rest a table lookup each.
    let bytes = text.as_bytes();
    let (mut separators, mut seen, ascii) = scan_ascii_words(bytes);
    for (i, &byte) in bytes.iter().enumerate().skip(ascii) {
        let class = BYTE_CLASS[byte as usize];
        separators += usize::from(class & SEPARATOR);
        if class & C2 != 0 && matches!(bytes.get(i + 1), Some(0x80..=0x9F)) {
            seen |= CONTROL;
        }
        seen |= class;
    }
    if seen & NUL != 0 {
        return Err(TopicError::NullCharacter); // [MQTT-4.7.3-2]
    }
    let has_wildcard = seen & WILDCARD != 0;
    let has_control = seen & CONTROL != 0;
    let levels = separators + 1;
    if levels > TOPIC_LEVELS_MAX {
        return Err(TopicError::TooManyLevels { levels });
    }
    Ok(Scan {
        has_wildcard,
        has_control,
    })
}

/// [`check_common`]'s scan over the leading whole 8-byte words that are all ASCII: the
/// separator count, the classes seen, and how many bytes were scanned. Bit tricks from "Bit
/// Twiddling Hacks" (Anderson): exact per-byte equality and "some byte below n".
fn scan_ascii_words(bytes: &[u8]) -> (usize, u8, usize) {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    const LOW7: u64 = 0x7F7F_7F7F_7F7F_7F7F;
    // The high bit of each byte of `word` that equals `byte`, and no other.
    let equal = |word: u64, byte: u8| {
        let t = word ^ (ONES * u64::from(byte));
        !(((t & LOW7) + LOW7) | t | LOW7)
    };
    let mut separators = 0usize;
    let mut seen = 0u8;
    let mut scanned = 0;
    for chunk in bytes.chunks_exact(8) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let word = u64::from_le_bytes(word);
        if word & HIGH != 0 {
            break; // not ASCII: the table takes it from here
        }
        separators += equal(word, b'/').count_ones() as usize;
        if equal(word, 0) != 0 {
            seen |= NUL;
        }
        if equal(word, b'+') | equal(word, b'#') != 0 {
            seen |= WILDCARD;
        }
        // Some byte below 0x20 (ASCII, so no borrow crosses bytes), or 0x7F.
        if (word.wrapping_sub(ONES * 0x20) & !word & HIGH) | equal(word, 0x7F) != 0 {
            seen |= CONTROL;
        }
        scanned += 8;
    }
    (separators, seen, scanned)
}

/// Byte classes for [`check_common`]'s scan.
const SEPARATOR: u8 = 1;
const NUL: u8 = 2;
const WILDCARD: u8 = 4;
const CONTROL: u8 = 8;
const C2: u8 = 16;

const BYTE_CLASS: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        table[b] = match b as u8 {
            b'/' => SEPARATOR,
            0 => NUL,
            b'+' | b'#' => WILDCARD,
            0x01..=0x1F | 0x7F => CONTROL,
            0xC2 => C2,
            _ => 0,
        };
        b += 1;
    }
    table
};

#[cfg(test)]
mod tests {
    use super::*;

    fn name(text: &str) -> Result<TopicName, TopicError> {
        TopicName::try_from(text)
    }

    #[test]
    fn limits_are_exact() {
        let deepest = vec!["a"; TOPIC_LEVELS_MAX].join("/");
        assert!(name(&deepest).is_ok());
        let levels = TOPIC_LEVELS_MAX + 1;
        let deeper = vec!["a"; levels].join("/");
        assert_eq!(name(&deeper), Err(TopicError::TooManyLevels { levels }));

        let longest = "a".repeat(TOPIC_LEN_MAX);
        assert!(name(&longest).is_ok());
        let longer = "a".repeat(TOPIC_LEN_MAX + 1);
        let len_bytes = TOPIC_LEN_MAX + 1;
        assert_eq!(name(&longer), Err(TopicError::TooLong { len_bytes }));
    }

    #[test]
    fn levels_keep_empty_levels() {
        let topic = name("/a//b/").expect("valid");
        assert_eq!(topic.levels().collect::<Vec<_>>(), ["", "a", "", "b", ""]);
        for text in ["a", "/", "//", "ü/日本/", "a/b/c", "$SYS/x"] {
            let split: Vec<_> = text.split(LEVEL_SEPARATOR).collect();
            assert_eq!(Levels::new(text).collect::<Vec<_>>(), split, "{text}");
        }
        let mut levels = Levels::new("a");
        assert_eq!(
            (levels.next(), levels.next(), levels.next()),
            (Some("a"), None, None)
        );
    }
}
