//! Length-prefixed field writers shared by the packet and property encoders.
//!
//! A string or binary field carries a two-byte length, so 65,535 bytes is its limit
//! [MQTT-1.5.4] [MQTT-1.5.6]. Writing a longer one is refused rather than silently truncated:
//! a wrong length would desynchronise the peer's framing for every later packet.

use bytes::{BufMut, BytesMut};

use super::bytestr::ByteStr;
use super::EncodeError;

/// The wire size of a length-prefixed field of `len` bytes.
pub(crate) const fn field_len(len: usize) -> usize {
    2 + len
}

/// Binary Data: a two-byte length, then the bytes [MQTT-1.5.6].
pub(crate) fn put_binary(out: &mut BytesMut, bytes: &[u8]) -> Result<(), EncodeError> {
    let len = u16::try_from(bytes.len()).map_err(|_| EncodeError::FieldTooLong(bytes.len()))?;
    out.put_u16(len);
    out.put_slice(bytes);
    Ok(())
}

/// A UTF-8 Encoded String [MQTT-1.5.4]. `ByteStr` is valid UTF-8 by construction.
pub(crate) fn put_str(out: &mut BytesMut, s: &ByteStr) -> Result<(), EncodeError> {
    put_binary(out, s.as_bytes())
}
