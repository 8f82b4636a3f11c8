//! [`ByteStr`]: a validated UTF-8 string that shares the buffer it was decoded from.
//!
//! Its own file so that the packet types and the property types both build on it without
//! importing each other: `packet` uses `properties`, and `properties` only this.

use std::fmt;

use bytes::Bytes;

/// A UTF-8 string as it came off the wire, kept as `Bytes` so that decoding a topic or a client
/// id does not copy. The constructor validates it, so `as_str` cannot fail.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct ByteStr(Bytes);

impl ByteStr {
    /// Validates UTF-8. The MQTT-specific rules (no U+0000, no surrogates) are the decoder's.
    pub fn from_utf8(bytes: Bytes) -> Result<ByteStr, std::str::Utf8Error> {
        std::str::from_utf8(&bytes)?;
        Ok(ByteStr(bytes))
    }

    pub const fn from_static(s: &'static str) -> ByteStr {
        ByteStr(Bytes::from_static(s.as_bytes()))
    }

    pub fn as_str(&self) -> &str {
        // Re-validating here cost 8% of broker CPU under a QoS 0 load: topics are read as
        // `&str` several times per message (routing, matching, encoding).
        // SAFETY: every constructor validates UTF-8 (`from_utf8`) or starts from a `&str`
        // (`from_static`, `From<&str>`, `From<String>`), and the bytes are immutable.
        unsafe { std::str::from_utf8_unchecked(&self.0) }
    }

    pub fn as_bytes(&self) -> &Bytes {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<&str> for ByteStr {
    fn from(s: &str) -> ByteStr {
        ByteStr(Bytes::copy_from_slice(s.as_bytes()))
    }
}

impl From<String> for ByteStr {
    fn from(s: String) -> ByteStr {
        ByteStr(Bytes::from(s.into_bytes()))
    }
}

impl fmt::Debug for ByteStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for ByteStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
