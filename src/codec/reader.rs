//! A bounds-checked cursor over one frame's body.
//!
//! Every read checks what is left first and answers `Truncated` when a field runs past the end
//! of the body, so no input can make the decoder panic. Strings and binary fields come back as
//! `Bytes::slice`s of the frame: decoding a topic or a payload does not copy it.

use bytes::{Buf, Bytes};

use super::bytestr::ByteStr;
use super::packet::PacketId;
use super::varint::{read_varint, VarInt};
use super::DecodeError;

/// The unread part of a frame body.
pub(crate) struct Reader {
    /// The bytes not yet read; each read splits its field off the front.
    rest: Bytes,
}

impl Reader {
    pub(crate) fn new(body: Bytes) -> Reader {
        Reader { rest: body }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.rest.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    /// Splits the next `len` bytes off as their own slice of the frame.
    pub(crate) fn take(&mut self, len: usize) -> Result<Bytes, DecodeError> {
        if len > self.rest.len() {
            return Err(DecodeError::Truncated);
        }
        Ok(self.rest.split_to(len))
    }

    /// Everything left, e.g. a PUBLISH payload.
    pub(crate) fn take_rest(&mut self) -> Bytes {
        std::mem::take(&mut self.rest)
    }

    /// Integers are read in place and skipped with `advance`, a pointer bump: splitting them
    /// off as their own `Bytes` (a reference count up and down) cost more than the read.
    pub(crate) fn u8(&mut self) -> Result<u8, DecodeError> {
        let [byte] = self.array::<1>()?;
        Ok(byte)
    }

    /// A Two Byte Integer, big-endian [MQTT-1.5.2].
    pub(crate) fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    /// A Four Byte Integer, big-endian [MQTT-1.5.3].
    pub(crate) fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let Some(bytes) = self.rest.first_chunk::<N>().copied() else {
            return Err(DecodeError::Truncated);
        };
        self.rest.advance(N);
        Ok(bytes)
    }

    /// A Variable Byte Integer inside the body (property length, identifier, value).
    pub(crate) fn varint(&mut self) -> Result<u32, DecodeError> {
        match read_varint(&self.rest) {
            VarInt::Value { value, len } => {
                self.rest.advance(len);
                Ok(value)
            }
            VarInt::Incomplete => Err(DecodeError::Truncated),
            VarInt::Malformed => Err(DecodeError::MalformedVariableInteger),
        }
    }

    /// Binary Data: a two-byte length, then that many bytes [MQTT-1.5.6].
    pub(crate) fn binary(&mut self) -> Result<Bytes, DecodeError> {
        let len = self.u16()?;
        self.take(usize::from(len))
    }

    /// A UTF-8 Encoded String [MQTT-1.5.4].
    pub(crate) fn string(&mut self) -> Result<ByteStr, DecodeError> {
        let bytes = self.binary()?;
        to_byte_str(bytes)
    }

    /// A packet identifier, which is never zero [MQTT-2.3.1-1].
    pub(crate) fn packet_id(&mut self) -> Result<PacketId, DecodeError> {
        // Not `ok_or`: that makes (and drops) a `DecodeError`, which has drop glue, per read.
        match PacketId::new(self.u16()?) {
            Some(id) => Ok(id),
            None => Err(DecodeError::ZeroPacketId),
        }
    }

    /// The last field has been read: anything left over is an error.
    pub(crate) fn finish(&self) -> Result<(), DecodeError> {
        match self.rest.len() {
            0 => Ok(()),
            left => Err(DecodeError::TrailingBytes(left)),
        }
    }
}

/// Validates a UTF-8 Encoded String: well-formed UTF-8, which also rules out the surrogates
/// U+D800..U+DFFF, and no U+0000. [MQTT-1.5.3-1] [MQTT-1.5.3-2] in 3.1.1,
/// [MQTT-1.5.4-1] [MQTT-1.5.4-2] in 5.0.
pub(crate) fn to_byte_str(bytes: Bytes) -> Result<ByteStr, DecodeError> {
    if bytes.contains(&0) {
        // In well-formed UTF-8 a 0x00 byte can only be U+0000; check UTF-8 first so that
        // ill-formed input reports as such.
        std::str::from_utf8(&bytes).map_err(|_| DecodeError::InvalidUtf8)?;
        return Err(DecodeError::NullCharacter);
    }
    ByteStr::from_utf8(bytes).map_err(|_| DecodeError::InvalidUtf8)
}
