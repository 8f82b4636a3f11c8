//! Encoding. (Being written.)
use bytes::BytesMut;

use super::{EncodeError, Packet, ProtocolVersion};

/// Appends `packet` encoded for `version` to `out`; returns the number of bytes written.
pub fn encode(
    packet: &Packet,
    version: ProtocolVersion,
    out: &mut BytesMut,
) -> Result<usize, EncodeError> {
    let _ = (packet, version, out);
    todo!("codec helper")
}

/// The number of bytes `encode` would write, fixed header included.
pub fn encoded_len(packet: &Packet, version: ProtocolVersion) -> usize {
    let _ = (packet, version);
    todo!("codec helper")
}
