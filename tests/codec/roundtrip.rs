//! `decode(encode(p)) == p`, `encoded_len == bytes written`, and framing of partial input.

use bytes::BytesMut;
use proptest::prelude::*;
use ringmq::codec::PropertyValues;
use ringmq::codec::{
    check, decode, encode, encode_publish, encoded_len, DecodeError, Decoded, Frame, Packet,
    ProtocolVersion,
};

use crate::strategy::{arb_packet, arb_publish};
use crate::NO_LIMIT;

/// Encodes, checks the length bookkeeping, decodes, and checks every prefix of the frame.
fn round_trip(packet: &Packet, v: ProtocolVersion) -> Result<(), TestCaseError> {
    let mut buf = BytesMut::from(&b"earlier bytes stay put"[..]);
    let before = buf.len();
    let written = encode(packet, v, &mut buf).expect("valid packets encode");
    prop_assert_eq!(written, buf.len() - before);
    prop_assert_eq!(encoded_len(packet, v), written);
    let wire = buf.split_off(before).freeze();

    let mut input = BytesMut::from(&wire[..]);
    input.extend_from_slice(&[0xC0, 0x00]); // a PINGREQ behind it must stay buffered
    match decode(&mut input, v, NO_LIMIT)? {
        Decoded::Packet(decoded) => prop_assert_eq!(&decoded, packet),
        Decoded::Incomplete { needed } => {
            prop_assert!(false, "whole frame incomplete by {}", needed)
        }
    }
    prop_assert_eq!(&input[..], &[0xC0, 0x00][..]);

    // The exact size passes the limit; one byte less is refused from the header alone.
    let size = wire.len() as u32;
    let fits = matches!(check(&wire, size), Ok(Frame::Complete { .. }));
    prop_assert!(fits, "a frame of exactly the limit is refused");
    let refused = matches!(
        check(&wire, size - 1),
        Err(DecodeError::PacketTooLarge { .. })
    );
    prop_assert!(refused, "a frame one byte over the limit is accepted");

    strict_prefixes_are_incomplete(&wire, v)?;
    feeding_needed_reaches_the_frame(&wire, packet, v)
}

/// Every strict prefix is `Incomplete`, leaves the buffer alone, and never asks for more than
/// the rest of the frame.
fn strict_prefixes_are_incomplete(wire: &[u8], v: ProtocolVersion) -> Result<(), TestCaseError> {
    for cut in 0..wire.len() {
        let mut prefix = BytesMut::from(&wire[..cut]);
        match decode(&mut prefix, v, NO_LIMIT) {
            Ok(Decoded::Incomplete { needed }) => {
                prop_assert!(needed >= 1);
                prop_assert!(
                    cut + needed <= wire.len(),
                    "needed {} overshoots at {}",
                    needed,
                    cut
                );
            }
            other => prop_assert!(false, "prefix of {} bytes gave {:?}", cut, other),
        }
        prop_assert_eq!(prefix.len(), cut);
    }
    Ok(())
}

/// A reader that reads exactly `needed` bytes each time lands on the frame boundary.
fn feeding_needed_reaches_the_frame(
    wire: &[u8],
    packet: &Packet,
    v: ProtocolVersion,
) -> Result<(), TestCaseError> {
    let mut buf = BytesMut::new();
    let mut fed = 0;
    loop {
        match decode(&mut buf, v, NO_LIMIT)? {
            Decoded::Incomplete { needed } => {
                prop_assert!(fed + needed <= wire.len());
                buf.extend_from_slice(&wire[fed..fed + needed]);
                fed += needed;
            }
            Decoded::Packet(decoded) => {
                prop_assert_eq!(fed, wire.len());
                prop_assert_eq!(&decoded, packet);
                return Ok(());
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn round_trip_v3_1(packet in arb_packet(ProtocolVersion::V3_1)) {
        round_trip(&packet, ProtocolVersion::V3_1)?;
    }

    #[test]
    fn round_trip_v3_1_1(packet in arb_packet(ProtocolVersion::V3_1_1)) {
        round_trip(&packet, ProtocolVersion::V3_1_1)?;
    }

    #[test]
    fn round_trip_v5(packet in arb_packet(ProtocolVersion::V5)) {
        round_trip(&packet, ProtocolVersion::V5)?;
    }

    /// The hot-path entry point writes the same bytes as the generic one.
    #[test]
    fn encode_publish_matches_encode(publish in arb_publish(ProtocolVersion::V5), v5 in any::<bool>()) {
        let v = if v5 { ProtocolVersion::V5 } else { ProtocolVersion::V3_1_1 };
        let mut fast = BytesMut::new();
        let mut generic = BytesMut::new();
        let n = encode_publish(&publish, v, &mut fast).expect("encodes");
        encode(&Packet::Publish(publish), v, &mut generic).expect("encodes");
        prop_assert_eq!(n, fast.len());
        prop_assert_eq!(fast, generic);
    }

    /// Several packets back to back in one buffer come out one by one, in order.
    #[test]
    fn back_to_back_frames(packets in prop::collection::vec(arb_packet(ProtocolVersion::V5), 1..8)) {
        let v = ProtocolVersion::V5;
        let mut buf = BytesMut::new();
        for p in &packets {
            encode(p, v, &mut buf).expect("encodes");
        }
        for p in &packets {
            prop_assert_eq!(decode(&mut buf, v, NO_LIMIT)?, Decoded::Packet(p.clone()));
        }
        prop_assert_eq!(decode(&mut buf, v, NO_LIMIT)?, Decoded::Incomplete { needed: 2 });
    }
}

/// A 3.x-only view of a 5.0 packet: encoding at 3.1.1 drops what 3.1.1 cannot say.
#[test]
fn v3_encoding_drops_v5_only_fields() {
    use ringmq::codec::{Ack, PacketId, Properties, ReasonCode};
    let properties = Properties::from(PropertyValues {
        reason_string: Some("why".into()),
        ..Default::default()
    });
    let ack = Ack {
        packet_id: PacketId::new(7).expect("non-zero"),
        code: ReasonCode(0x10),
        properties,
    };
    let wire = crate::encode_vec(&Packet::PubAck(ack), ProtocolVersion::V3_1_1);
    assert_eq!(wire, [0x40, 0x02, 0x00, 0x07]);
    let decoded = crate::decode_one(&wire, ProtocolVersion::V3_1_1).expect("decodes");
    assert_eq!(
        decoded,
        Packet::PubAck(Ack::new(PacketId::new(7).expect("non-zero")))
    );
}
