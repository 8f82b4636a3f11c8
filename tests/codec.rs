//! Codec tests, black-box through `ringmq::codec`'s public API (STYLE.md §12):
//!
//! - `golden`: byte layouts from the MQTT 3.1, 3.1.1 and 5.0 specifications, both directions.
//! - `roundtrip`: `decode(encode(p)) == p` for generated packets at every level, every strict
//!   prefix is `Incomplete`, and `needed` never overshoots.
//! - `malformed`: one test or more per error variant.
//! - `garbage`: arbitrary and mutated bytes never panic.
//!
//! `strategy` holds the proptest generators of valid packets.

#[path = "codec/garbage.rs"]
mod garbage;
#[path = "codec/golden.rs"]
mod golden;
#[path = "codec/malformed.rs"]
mod malformed;
#[path = "codec/roundtrip.rs"]
mod roundtrip;
#[path = "codec/strategy.rs"]
mod strategy;

use bytes::BytesMut;
use ringmq::codec::{decode, encode, DecodeError, Decoded, Packet, ProtocolVersion};

/// Every protocol level the codec speaks.
pub const VERSIONS: [ProtocolVersion; 3] = [
    ProtocolVersion::V3_1,
    ProtocolVersion::V3_1_1,
    ProtocolVersion::V5,
];

/// A packet size limit that never gets in the way.
pub const NO_LIMIT: u32 = u32::MAX;

/// Decodes exactly one packet from `wire` at `version`, insisting nothing is left over.
pub fn decode_one(wire: &[u8], version: ProtocolVersion) -> Result<Packet, DecodeError> {
    let mut buf = BytesMut::from(wire);
    match decode(&mut buf, version, NO_LIMIT)? {
        Decoded::Packet(packet) => {
            assert!(buf.is_empty(), "decode left {} bytes", buf.len());
            Ok(packet)
        }
        Decoded::Incomplete { needed } => panic!("incomplete, needs {needed} more bytes"),
    }
}

/// Encodes `packet` at `version` into a fresh buffer.
pub fn encode_vec(packet: &Packet, version: ProtocolVersion) -> Vec<u8> {
    let mut out = BytesMut::new();
    let written = encode(packet, version, &mut out).expect("encodable packet");
    assert_eq!(written, out.len());
    out.to_vec()
}
