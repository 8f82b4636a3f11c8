//! Arbitrary bytes never panic the decoder, at any level, whatever the packet size limit.

use bytes::BytesMut;
use proptest::prelude::*;
use ringmq::codec::{check, decode, encode, Decoded, Frame, ProtocolVersion};

use crate::strategy::arb_packet;
use crate::VERSIONS;

/// Decodes until the input runs out or an error; checks the buffer only ever shrinks by a
/// whole frame. Returns how many packets came out.
fn drain(bytes: &[u8], v: ProtocolVersion, packet_size_max: u32) -> usize {
    let mut buf = BytesMut::from(bytes);
    let mut packets = 0;
    loop {
        let before = buf.len();
        match decode(&mut buf, v, packet_size_max) {
            Ok(Decoded::Packet(_)) => {
                assert!(buf.len() < before, "a packet consumed no bytes");
                packets += 1;
            }
            Ok(Decoded::Incomplete { needed }) => {
                assert!(needed >= 1);
                assert_eq!(buf.len(), before, "Incomplete consumed bytes");
                return packets;
            }
            Err(_) => return packets,
        }
    }
}

/// A frame with a valid-looking fixed header around a random body: reaches the parsers.
fn framed(first_byte: u8, body: &[u8]) -> Vec<u8> {
    let mut wire = vec![first_byte];
    let mut len = body.len();
    loop {
        let byte = (len & 0x7F) as u8;
        len >>= 7;
        if len == 0 {
            wire.push(byte);
            break;
        }
        wire.push(byte | 0x80);
    }
    wire.extend_from_slice(body);
    wire
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512), max in any::<u32>()) {
        for v in VERSIONS {
            drain(&bytes, v, max);
            drain(&bytes, v, u32::MAX);
        }
    }

    #[test]
    fn random_bodies_never_panic(kind in 1u8..=15, flags in 0u8..16, body in prop::collection::vec(any::<u8>(), 0..256)) {
        // Mostly the legal flags, so the body parser runs; sometimes anything.
        let legal = match kind { 3 => flags & 0b0111, 6 | 8 | 10 => 0b0010, _ => 0 };
        for first in [kind << 4 | legal, kind << 4 | flags] {
            let wire = framed(first, &body);
            for v in VERSIONS {
                drain(&wire, v, u32::MAX);
            }
        }
    }

    /// Valid frames with one byte changed, or with the body cut short inside a shorter frame.
    #[test]
    fn mutated_frames_never_panic(
        packet in arb_packet(ProtocolVersion::V5),
        at in any::<prop::sample::Index>(),
        byte in any::<u8>(),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut out = BytesMut::new();
        encode(&packet, ProtocolVersion::V5, &mut out).expect("encodes");
        let mut wire = out.to_vec();
        let i = at.index(wire.len());
        wire[i] = byte;
        // The same body cut short and re-framed: its fields now run past the end of the frame.
        let Ok(Frame::Complete { header_len, .. }) = check(&out, u32::MAX) else {
            panic!("encoded frame does not frame");
        };
        let body = &out[header_len..];
        let short = framed(out[0], &body[..cut.index(body.len() + 1)]);
        for v in VERSIONS {
            drain(&wire, v, u32::MAX);
            drain(&short, v, u32::MAX);
        }
    }
}
