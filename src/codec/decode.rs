//! Framing and decoding. (Being written.)
use bytes::BytesMut;

use super::{DecodeError, Packet, ProtocolVersion};

/// The result of framing: either a whole packet is buffered or `needed` more bytes are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame {
    /// `header_len` bytes of fixed header followed by `body_len` bytes of body are buffered.
    Complete { first_byte: u8, header_len: usize, body_len: usize },
    /// At least `needed` more bytes must arrive before the frame can be framed or parsed.
    Incomplete { needed: usize },
}

/// The result of [`decode`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded {
    Packet(Packet),
    Incomplete { needed: usize },
}

/// Reads only the fixed header of `buf`; refuses a frame over `packet_size_max` bytes in total.
pub fn check(buf: &[u8], packet_size_max: u32) -> Result<Frame, DecodeError> {
    let _ = (buf, packet_size_max);
    todo!("codec helper")
}

/// Decodes one packet from the front of `buf`, removing its bytes. `version` is the level
/// negotiated by CONNECT; CONNECT itself is decoded whatever `version` says.
pub fn decode(
    buf: &mut BytesMut,
    version: ProtocolVersion,
    packet_size_max: u32,
) -> Result<Decoded, DecodeError> {
    let _ = (buf, version, packet_size_max);
    todo!("codec helper")
}
