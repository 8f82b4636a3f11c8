//! One or more tests per error variant: the malformed input, and the exact error it gets.

use bytes::{Bytes, BytesMut};
use ringmq::codec::{
    check, decode, encode, encode_publish, DecodeError, Decoded, EncodeError, Frame, Packet,
    PacketId, Properties, ProtocolVersion, Publish, QoS, ReasonCode, REMAINING_LENGTH_MAX,
};

use crate::{decode_one, VERSIONS};

const V31: ProtocolVersion = ProtocolVersion::V3_1;
const V311: ProtocolVersion = ProtocolVersion::V3_1_1;
const V5: ProtocolVersion = ProtocolVersion::V5;

/// Frames `body` behind `first_byte` with a one-byte Remaining Length.
fn frame(first_byte: u8, body: &[u8]) -> Vec<u8> {
    assert!(body.len() < 128);
    let mut wire = vec![first_byte, body.len() as u8];
    wire.extend_from_slice(body);
    wire
}

/// The error, without the CONNECT context (`connect_errors_carry_the_level` checks that).
fn err(v: ProtocolVersion, first_byte: u8, body: &[u8]) -> DecodeError {
    decode_one(&frame(first_byte, body), v)
        .expect_err("malformed input must not decode")
        .root()
        .clone()
}

/// A v5 CONNECT body for client id "c", with `flags` and the given property block.
fn connect_v5(flags: u8, props: &[u8]) -> Vec<u8> {
    let mut body = b"\x00\x04MQTT\x05".to_vec();
    body.extend_from_slice(&[flags, 0x00, 0x3C]);
    body.extend_from_slice(props);
    body.extend_from_slice(b"\x00\x01c");
    body
}

/// A v5 QoS 0 PUBLISH body on topic "t" with the given property block and no payload.
fn publish_v5(props: &[u8]) -> Vec<u8> {
    let mut body = b"\x00\x01t".to_vec();
    body.extend_from_slice(props);
    body
}

#[test]
fn packet_too_large_from_the_header_alone() {
    // A PUBLISH claiming 1 MiB of body, against a 1 KiB limit: 4 header bytes suffice.
    let header = [0x30, 0x80, 0x80, 0x40];
    let expected = DecodeError::PacketTooLarge {
        size: 1_048_576 + 4,
        max: 1024,
    };
    assert_eq!(check(&header, 1024), Err(expected.clone()));
    let mut buf = BytesMut::from(&header[..]);
    assert_eq!(decode(&mut buf, V5, 1024), Err(expected));
    assert_eq!(buf.len(), 4, "nothing consumed");
    // Two header bytes: 127 bytes of body claimed, limit 100.
    assert!(matches!(
        check(&[0x30, 0x7F], 100),
        Err(DecodeError::PacketTooLarge { size: 129, .. })
    ));
    // Within the limit the same header is merely incomplete.
    assert_eq!(
        check(&header, 2_000_000),
        Ok(Frame::Incomplete { needed: 1_048_576 })
    );
}

#[test]
fn malformed_remaining_length() {
    // [MQTT-1.5.5-1] a fifth length byte; rejected as soon as the fourth shows continuation.
    assert_eq!(
        check(&[0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01], u32::MAX),
        Err(DecodeError::MalformedRemainingLength)
    );
    assert_eq!(
        check(&[0x30, 0xFF, 0xFF, 0xFF, 0xFF], u32::MAX),
        Err(DecodeError::MalformedRemainingLength)
    );
    // Up to that point it is just incomplete; non-minimal lengths are accepted.
    assert_eq!(
        check(&[0x30, 0xFF, 0xFF, 0xFF], u32::MAX),
        Ok(Frame::Incomplete { needed: 1 })
    );
    assert_eq!(decode_one(&[0xC0, 0x80, 0x00], V311), Ok(Packet::PingReq));
}

#[test]
fn reserved_packet_types() {
    for v in VERSIONS {
        assert_eq!(err(v, 0x00, &[]), DecodeError::ReservedPacketType(0));
    }
    // Type 15 is AUTH in 5.0 only.
    assert_eq!(err(V311, 0xF0, &[]), DecodeError::ReservedPacketType(15));
    assert_eq!(err(V31, 0xF0, &[]), DecodeError::ReservedPacketType(15));
}

#[test]
fn invalid_fixed_header_flags() {
    // [MQTT-2.2.2-2] flags that are not the fixed ones.
    let bad = [
        (0xC1, 12, 1),
        (0x60, 6, 0),
        (0x80, 8, 0),
        (0xA0, 10, 0),
        (0xF2, 15, 2),
    ];
    for (first, packet_type, flags) in bad {
        assert_eq!(
            check(&[first], u32::MAX),
            Err(DecodeError::InvalidFlags { packet_type, flags })
        );
    }
    // [MQTT-3.3.1-2] DUP with QoS 0.
    assert_eq!(
        err(V311, 0x38, b"\x00\x01t"),
        DecodeError::InvalidFlags {
            packet_type: 3,
            flags: 8
        }
    );
    assert_eq!(
        err(V5, 0x38, b"\x00\x01t\x00"),
        DecodeError::InvalidFlags {
            packet_type: 3,
            flags: 8
        }
    );
}

#[test]
fn invalid_qos() {
    // [MQTT-3.3.1-4] PUBLISH QoS 3, in the fixed header.
    assert_eq!(
        err(V311, 0x36, b"\x00\x01t\x00\x01"),
        DecodeError::InvalidQoS
    );
    // SUBSCRIBE requesting QoS 3.
    assert_eq!(
        err(V311, 0x82, b"\x00\x01\x00\x01t\x03"),
        DecodeError::InvalidQoS
    );
    assert_eq!(
        err(V5, 0x82, b"\x00\x01\x00\x00\x01t\x03"),
        DecodeError::InvalidQoS
    );
}

#[test]
fn zero_packet_id() {
    // [MQTT-2.3.1-1]
    assert_eq!(err(V311, 0x40, &[0x00, 0x00]), DecodeError::ZeroPacketId);
    assert_eq!(
        err(V311, 0x32, b"\x00\x01t\x00\x00"),
        DecodeError::ZeroPacketId
    );
    assert_eq!(
        err(V5, 0x82, b"\x00\x00\x00\x00\x01t\x00"),
        DecodeError::ZeroPacketId
    );
}

#[test]
fn invalid_utf8_and_null_character() {
    // [MQTT-1.5.3-1] ill-formed UTF-8, including an encoded surrogate (ED A0 80).
    assert_eq!(err(V311, 0x30, b"\x00\x01\xFF"), DecodeError::InvalidUtf8);
    assert_eq!(
        err(V311, 0x30, b"\x00\x03\xED\xA0\x80"),
        DecodeError::InvalidUtf8
    );
    // [MQTT-1.5.3-2] U+0000.
    assert_eq!(
        err(V311, 0x30, b"\x00\x02a\x00"),
        DecodeError::NullCharacter
    );
    // Client ids are strings too; passwords and payloads are binary and may hold anything.
    let wire = b"\x00\x04MQTT\x04\x00\x00\x3C\x00\x01\x00";
    assert_eq!(err(V311, 0x10, wire), DecodeError::NullCharacter);
    assert!(decode_one(&frame(0x30, b"\x00\x01t\x00\xFF"), V311).is_ok());
}

#[test]
fn invalid_protocol_name() {
    // [MQTT-3.1.2-1]
    let e = err(V311, 0x10, b"\x00\x04MQTX\x04\x02\x00\x3C\x00\x01c");
    assert_eq!(e, DecodeError::InvalidProtocolName("MQTX".into()));
}

#[test]
fn unsupported_protocol_level() {
    // [MQTT-3.1.2-2] unknown levels, and names paired with the wrong level.
    assert_eq!(
        err(V311, 0x10, b"\x00\x04MQTT\x06\x02\x00\x3C\x00\x01c"),
        DecodeError::UnsupportedProtocolLevel(6)
    );
    assert_eq!(
        err(V311, 0x10, b"\x00\x04MQTT\x03\x02\x00\x3C\x00\x01c"),
        DecodeError::UnsupportedProtocolLevel(3)
    );
    assert_eq!(
        err(V311, 0x10, b"\x00\x06MQIsdp\x04\x02\x00\x3C\x00\x01c"),
        DecodeError::UnsupportedProtocolLevel(4)
    );
    assert_eq!(
        err(V311, 0x10, b"\x00\x04MQTT\x84\x02\x00\x3C\x00\x01c"),
        DecodeError::UnsupportedProtocolLevel(0x84)
    );
}

#[test]
fn connect_reserved_flag() {
    // [MQTT-3.1.2-3]
    assert_eq!(
        err(V311, 0x10, b"\x00\x04MQTT\x04\x03\x00\x3C\x00\x01c"),
        DecodeError::ConnectReservedFlag
    );
    assert_eq!(
        err(V5, 0x10, &connect_v5(0x01, &[0x00])),
        DecodeError::ConnectReservedFlag
    );
    // 3.1 did not define the bit: legacy clients that set it still connect.
    let body = b"\x00\x06MQIsdp\x03\x03\x00\x3C\x00\x01c";
    assert!(matches!(
        decode_one(&frame(0x10, body), V31),
        Ok(Packet::Connect(_))
    ));
}

#[test]
fn connect_errors_carry_the_level() {
    // After the Protocol Level every CONNECT error says the level, so the server can answer
    // a 5.0 client with a CONNACK reason code and close a 3.x client [MQTT-3.1.4-1].
    let cases: [(&[u8], ProtocolVersion, DecodeError); 4] = [
        (
            b"\x00\x04MQTT\x04\x03\x00\x3C\x00\x01c",
            V311,
            DecodeError::ConnectReservedFlag,
        ),
        (
            b"\x00\x04MQTT\x05\x02\x00\x3C\x03\x23\x00\x01\x00\x01c",
            V5,
            DecodeError::PropertyNotAllowed(0x23),
        ),
        (
            b"\x00\x06MQIsdp\x03\x06\x00\x3C\x00\x01c",
            V31,
            DecodeError::Truncated,
        ),
        (
            b"\x00\x04MQTT\x05\x02\x00\x3C\x00\x00\x01cX",
            V5,
            DecodeError::TrailingBytes(1),
        ),
    ];
    for (body, protocol, root) in cases {
        let e = decode_one(&frame(0x10, body), V311).expect_err("malformed");
        assert_eq!(e.connect_protocol(), Some(protocol), "{e}");
        assert_eq!(e.root(), &root);
        assert_eq!(e.reason_code(), root.reason_code());
    }
    // Before the level there is none to carry.
    let e = decode_one(&frame(0x10, b"\x00\x04MQTX\x04\x02\x00\x3C\x00\x01c"), V311);
    assert_eq!(e.expect_err("malformed").connect_protocol(), None);
}

#[test]
fn connect_fixed_header_flags() {
    // [MQTT-2.2.2-2] reserved (0000) in 3.1.1 and 5.0; only the body's level tells, so
    // `check` lets them through and `decode` refuses them.
    assert!(matches!(
        check(&[0x12, 0x00], u32::MAX),
        Ok(Frame::Complete { .. })
    ));
    let expected = DecodeError::InvalidFlags {
        packet_type: 1,
        flags: 2,
    };
    assert_eq!(
        err(V311, 0x12, b"\x00\x04MQTT\x04\x02\x00\x3C\x00\x01c"),
        expected
    );
    assert_eq!(err(V5, 0x12, &connect_v5(0x02, &[0x00])), expected);
    // 3.1 did not define them.
    let body = b"\x00\x06MQIsdp\x03\x02\x00\x3C\x00\x01c";
    assert!(matches!(
        decode_one(&frame(0x1F, body), V31),
        Ok(Packet::Connect(_))
    ));
}

#[test]
fn invalid_will_flags() {
    // [MQTT-3.1.2-13] QoS without a will, [MQTT-3.1.2-15] retain without a will,
    // [MQTT-3.1.2-14] will QoS 3.
    for flags in [0x0A, 0x12, 0x22, 0x1E] {
        let mut body = b"\x00\x04MQTT\x04".to_vec();
        body.extend_from_slice(&[
            flags, 0x00, 0x3C, 0x00, 0x01, b'c', 0x00, 0x01, b'w', 0x00, 0x00,
        ]);
        assert_eq!(
            err(V311, 0x10, &body),
            DecodeError::InvalidWillFlags,
            "flags {flags:#04X}"
        );
    }
}

#[test]
fn password_without_username() {
    // [MQTT-3.1.2-22] in 3.x; 5.0 allows it.
    let body = b"\x00\x04MQTT\x04\x42\x00\x3C\x00\x01c\x00\x01p";
    assert_eq!(err(V311, 0x10, body), DecodeError::PasswordWithoutUsername);
    let body = b"\x00\x06MQIsdp\x03\x42\x00\x3C\x00\x01c\x00\x01p";
    assert_eq!(err(V31, 0x10, body), DecodeError::PasswordWithoutUsername);
    let mut v5 = connect_v5(0x42, &[0x00]);
    v5.extend_from_slice(b"\x00\x01p");
    assert!(decode_one(&frame(0x10, &v5), V5).is_ok());
}

#[test]
fn v3_1_tolerates_a_missing_user_name() {
    // 3.1: the Remaining Length wins over the User Name flag.
    let body = b"\x00\x06MQIsdp\x03\x82\x00\x3C\x00\x01c";
    let Ok(Packet::Connect(c)) = decode_one(&frame(0x10, body), V31) else {
        panic!("decodes")
    };
    assert_eq!(c.username, None);
    // 3.1.1 does not.
    assert_eq!(
        err(V311, 0x10, b"\x00\x04MQTT\x04\x82\x00\x3C\x00\x01c"),
        DecodeError::Truncated
    );
}

#[test]
fn unknown_property() {
    assert_eq!(
        err(V5, 0x30, &publish_v5(&[0x02, 0x04, 0x00])),
        DecodeError::UnknownProperty(0x04)
    );
    // Identifiers are varints: 0x81 0x01 is 129, and anything over 255 reports as 0xFF.
    assert_eq!(
        err(V5, 0x30, &publish_v5(&[0x02, 0x81, 0x01])),
        DecodeError::UnknownProperty(129)
    );
    assert_eq!(
        err(V5, 0x30, &publish_v5(&[0x02, 0x80, 0x02])),
        DecodeError::UnknownProperty(0xFF)
    );
}

#[test]
fn property_not_allowed() {
    // Session Expiry Interval belongs to CONNECT, CONNACK and DISCONNECT, not PUBLISH.
    let props = [0x05, 0x11, 0x00, 0x00, 0x00, 0x01];
    assert_eq!(
        err(V5, 0x30, &publish_v5(&props)),
        DecodeError::PropertyNotAllowed(0x11)
    );
    // Will Delay Interval belongs in the will properties, not CONNECT's own.
    assert_eq!(
        err(V5, 0x10, &connect_v5(0x02, &props_u32(0x18, 5))),
        DecodeError::PropertyNotAllowed(0x18)
    );
    // Reason String is not a PUBLISH property; Topic Alias is not a PUBACK property.
    assert_eq!(
        err(V5, 0x30, &publish_v5(&[0x03, 0x1F, 0x00, 0x00])),
        DecodeError::PropertyNotAllowed(0x1F)
    );
    assert_eq!(
        err(V5, 0x40, &[0x00, 0x01, 0x00, 0x03, 0x23, 0x00, 0x01]),
        DecodeError::PropertyNotAllowed(0x23)
    );
}

fn props_u32(id: u8, value: u32) -> Vec<u8> {
    let mut block = vec![0x05, id];
    block.extend_from_slice(&value.to_be_bytes());
    block
}

#[test]
fn duplicate_property() {
    let twice_alias = [0x06, 0x23, 0x00, 0x01, 0x23, 0x00, 0x02];
    assert_eq!(
        err(V5, 0x30, &publish_v5(&twice_alias)),
        DecodeError::DuplicateProperty(0x23)
    );
    // Subscription Identifier repeats in PUBLISH but not in SUBSCRIBE.
    let twice_sub_id = [0x04, 0x0B, 0x01, 0x0B, 0x02];
    assert!(decode_one(&frame(0x30, &publish_v5(&twice_sub_id)), V5).is_ok());
    let mut subscribe = vec![0x00, 0x01];
    subscribe.extend_from_slice(&twice_sub_id);
    subscribe.extend_from_slice(b"\x00\x01t\x00");
    assert_eq!(
        err(V5, 0x82, &subscribe),
        DecodeError::DuplicateProperty(0x0B)
    );
    // User Property always repeats, in order.
    let users = [
        0x0B, 0x26, 0x00, 0x01, b'a', 0x00, 0x00, 0x26, 0x00, 0x00, 0x00, 0x00,
    ];
    let Ok(Packet::Publish(p)) = decode_one(&frame(0x30, &publish_v5(&users)), V5) else {
        panic!("decodes")
    };
    assert_eq!(
        p.properties.user_properties,
        vec![("a".into(), "".into()), ("".into(), "".into())]
    );
}

#[test]
fn invalid_property_values() {
    let cases: [(&[u8], u8); 7] = [
        (&[0x02, 0x01, 0x02], 0x01),                // payload format indicator 2
        (&[0x03, 0x23, 0x00, 0x00], 0x23),          // topic alias 0
        (&[0x02, 0x0B, 0x00], 0x0B),                // subscription identifier 0
        (&[0x03, 0x0B, 0x80, 0x00], 0x0B),          // ... also when not minimal
        (&[0x05, 0x0B, 0xFF, 0xFF, 0xFF, 0x7F], 0), // the maximum is fine
        (&[0x02, 0x01, 0x01], 0),                   // so is a format indicator of 1
        (&[0x02, 0x01, 0xFF], 0x01),
    ];
    for (props, id) in cases {
        let result = decode_one(&frame(0x30, &publish_v5(props)), V5);
        if id == 0 {
            assert!(result.is_ok(), "{props:02X?}");
        } else {
            assert_eq!(
                result,
                Err(DecodeError::InvalidPropertyValue(id)),
                "{props:02X?}"
            );
        }
    }
    // CONNECT: Receive Maximum 0, Maximum Packet Size 0, request flags 2.
    assert_eq!(
        err(V5, 0x10, &connect_v5(0x02, &[0x03, 0x21, 0x00, 0x00])),
        DecodeError::InvalidPropertyValue(0x21)
    );
    assert_eq!(
        err(V5, 0x10, &connect_v5(0x02, &props_u32(0x27, 0))),
        DecodeError::InvalidPropertyValue(0x27)
    );
    assert_eq!(
        err(V5, 0x10, &connect_v5(0x02, &[0x02, 0x17, 0x02])),
        DecodeError::InvalidPropertyValue(0x17)
    );
    assert_eq!(
        err(V5, 0x10, &connect_v5(0x02, &[0x02, 0x19, 0x02])),
        DecodeError::InvalidPropertyValue(0x19)
    );
    // CONNACK: Maximum QoS 2, Retain Available 2.
    assert_eq!(
        err(V5, 0x20, &[0x00, 0x00, 0x02, 0x24, 0x02]),
        DecodeError::InvalidPropertyValue(0x24)
    );
    assert_eq!(
        err(V5, 0x20, &[0x00, 0x00, 0x02, 0x25, 0x02]),
        DecodeError::InvalidPropertyValue(0x25)
    );
}

#[test]
fn invalid_reason_codes() {
    // PUBACK cannot carry PUBREL's 0x92; PUBREL cannot carry 0x10.
    assert_eq!(
        err(V5, 0x40, &[0x00, 0x01, 0x92]),
        DecodeError::InvalidReasonCode(0x92)
    );
    assert_eq!(
        err(V5, 0x62, &[0x00, 0x01, 0x10]),
        DecodeError::InvalidReasonCode(0x10)
    );
    // 3.x CONNACK return codes stop at 5.
    assert_eq!(
        err(V311, 0x20, &[0x00, 0x06]),
        DecodeError::InvalidReasonCode(0x06)
    );
    assert_eq!(
        err(V5, 0x20, &[0x00, 0x8E, 0x00]),
        DecodeError::InvalidReasonCode(0x8E)
    );
    // 3.x SUBACK: 0, 1, 2, 0x80; 5.0 SUBACK its own set.
    assert_eq!(
        err(V311, 0x90, &[0x00, 0x01, 0x03]),
        DecodeError::InvalidReasonCode(0x03)
    );
    assert_eq!(
        err(V5, 0x90, &[0x00, 0x01, 0x00, 0x11]),
        DecodeError::InvalidReasonCode(0x11)
    );
    assert_eq!(
        err(V5, 0xB0, &[0x00, 0x01, 0x00, 0x01]),
        DecodeError::InvalidReasonCode(0x01)
    );
    assert_eq!(err(V5, 0xE0, &[0x01]), DecodeError::InvalidReasonCode(0x01));
    assert_eq!(err(V5, 0xF0, &[0x01]), DecodeError::InvalidReasonCode(0x01));
    assert!(ReasonCode::CONTINUE_AUTHENTICATION.is_valid_for(ringmq::codec::PacketKind::Auth));
}

#[test]
fn invalid_subscription_options() {
    // [MQTT-3.8.3-4] 3.x: upper six bits reserved.
    assert_eq!(
        err(V311, 0x82, b"\x00\x01\x00\x01t\x04"),
        DecodeError::InvalidSubscriptionOptions(0x04)
    );
    assert_eq!(
        err(V31, 0x82, b"\x00\x01\x00\x01t\x80"),
        DecodeError::InvalidSubscriptionOptions(0x80)
    );
    // [MQTT-3.8.3-5] 5.0: bits 6-7 reserved; Retain Handling 3 is invalid.
    assert_eq!(
        err(V5, 0x82, b"\x00\x01\x00\x00\x01t\x40"),
        DecodeError::InvalidSubscriptionOptions(0x40)
    );
    assert_eq!(
        err(V5, 0x82, b"\x00\x01\x00\x00\x01t\x30"),
        DecodeError::InvalidSubscriptionOptions(0x30)
    );
    assert!(decode_one(&frame(0x82, b"\x00\x01\x00\x00\x01t\x2E"), V5).is_ok());
}

#[test]
fn no_topic_filters() {
    // [MQTT-3.8.3-3] [MQTT-3.10.3-2]
    assert_eq!(err(V311, 0x82, &[0x00, 0x01]), DecodeError::NoTopicFilters);
    assert_eq!(
        err(V5, 0x82, &[0x00, 0x01, 0x00]),
        DecodeError::NoTopicFilters
    );
    assert_eq!(err(V311, 0xA2, &[0x00, 0x01]), DecodeError::NoTopicFilters);
    assert_eq!(
        err(V5, 0xA2, &[0x00, 0x01, 0x00]),
        DecodeError::NoTopicFilters
    );
}

#[test]
fn truncated() {
    assert_eq!(err(V311, 0x40, &[0x00]), DecodeError::Truncated);
    assert_eq!(err(V311, 0x30, &[0x00, 0x05, b'a']), DecodeError::Truncated);
    assert_eq!(
        err(V311, 0x10, b"\x00\x04MQTT\x04\x02\x00"),
        DecodeError::Truncated
    );
    // A 5.0 CONNACK must carry a Property Length; a property block longer than the body.
    assert_eq!(err(V5, 0x20, &[0x00, 0x00]), DecodeError::Truncated);
    assert_eq!(
        err(V5, 0x30, &publish_v5(&[0x05, 0x01, 0x01])),
        DecodeError::Truncated
    );
    // A property value running past the end of its block.
    assert_eq!(
        err(V5, 0x30, &publish_v5(&[0x02, 0x23, 0x00, 0x01])),
        DecodeError::Truncated
    );
    // A SUBSCRIBE entry without its options byte.
    assert_eq!(
        err(V311, 0x82, b"\x00\x01\x00\x01t"),
        DecodeError::Truncated
    );
}

#[test]
fn trailing_bytes() {
    assert_eq!(err(V311, 0xC0, &[0x00]), DecodeError::TrailingBytes(1));
    assert_eq!(err(V5, 0xD0, &[0x00, 0x00]), DecodeError::TrailingBytes(2));
    assert_eq!(err(V311, 0xE0, &[0x00]), DecodeError::TrailingBytes(1));
    assert_eq!(
        err(V311, 0x40, &[0x00, 0x01, 0x00]),
        DecodeError::TrailingBytes(1)
    );
    assert_eq!(
        err(V311, 0xB0, &[0x00, 0x01, 0x00]),
        DecodeError::TrailingBytes(1)
    );
    assert_eq!(
        err(V311, 0x20, &[0x00, 0x00, 0x00]),
        DecodeError::TrailingBytes(1)
    );
    assert_eq!(
        err(V311, 0x10, b"\x00\x04MQTT\x04\x02\x00\x3C\x00\x01cXY"),
        DecodeError::TrailingBytes(2)
    );
    // After a 5.0 ack's property block.
    assert_eq!(
        err(V5, 0x40, &[0x00, 0x01, 0x00, 0x00, 0xAA]),
        DecodeError::TrailingBytes(1)
    );
}

#[test]
fn malformed_variable_integer_in_properties() {
    let props = [0xFF, 0xFF, 0xFF, 0xFF, 0x01];
    assert_eq!(
        err(V5, 0x30, &publish_v5(&props)),
        DecodeError::MalformedVariableInteger
    );
}

#[test]
fn invalid_connack_flags() {
    // [MQTT-3.2.2.1] bits 7-1 of the acknowledge flags are reserved.
    assert_eq!(
        err(V311, 0x20, &[0x02, 0x00]),
        DecodeError::InvalidConnAckFlags(0x02)
    );
    assert_eq!(
        err(V5, 0x20, &[0x80, 0x00, 0x00]),
        DecodeError::InvalidConnAckFlags(0x80)
    );
}

#[test]
fn reason_codes_for_session_answers() {
    assert_eq!(
        DecodeError::Truncated.reason_code(),
        ReasonCode::MALFORMED_PACKET
    );
    assert_eq!(
        DecodeError::MalformedVariableInteger.reason_code(),
        ReasonCode::MALFORMED_PACKET
    );
    assert_eq!(
        DecodeError::DuplicateProperty(1).reason_code(),
        ReasonCode::PROTOCOL_ERROR
    );
    // 2.2.2.2: an identifier not valid for its packet type is a Malformed Packet.
    assert_eq!(
        DecodeError::PropertyNotAllowed(0x23).reason_code(),
        ReasonCode::MALFORMED_PACKET
    );
    assert_eq!(
        DecodeError::UnknownProperty(0x04).reason_code(),
        ReasonCode::MALFORMED_PACKET
    );
}

fn qos1(topic: Bytes, payload: Bytes) -> Publish {
    Publish {
        dup: false,
        qos: QoS::AtLeastOnce,
        retain: false,
        topic: ringmq::codec::ByteStr::from_utf8(topic).expect("utf-8"),
        packet_id: PacketId::new(1),
        properties: Properties::default(),
        payload,
    }
}

#[test]
fn encode_errors_leave_the_buffer_untouched() {
    let mut out = BytesMut::from(&b"kept"[..]);
    // A body over the largest Remaining Length (the zeroed allocation is never touched).
    let huge = Bytes::from(vec![0u8; REMAINING_LENGTH_MAX as usize]);
    let e = encode_publish(&qos1(Bytes::from_static(b"t"), huge), V311, &mut out);
    assert_eq!(
        e,
        Err(EncodeError::TooLarge(REMAINING_LENGTH_MAX as usize + 5))
    );
    // A topic over 65,535 bytes.
    let long = Bytes::from(vec![b'a'; 65_536]);
    let e = encode_publish(&qos1(long, Bytes::new()), V311, &mut out);
    assert_eq!(e, Err(EncodeError::FieldTooLong(65_536)));
    // QoS 1 without a packet id.
    let mut p = qos1(Bytes::from_static(b"t"), Bytes::new());
    p.packet_id = None;
    assert_eq!(
        encode_publish(&p, V311, &mut out),
        Err(EncodeError::MissingPacketId)
    );
    // A subscription identifier of 0.
    p.packet_id = PacketId::new(1);
    p.properties.subscription_identifiers = vec![0];
    assert_eq!(
        encode(&Packet::Publish(p), V5, &mut out),
        Err(EncodeError::VarIntOutOfRange(0))
    );
    assert_eq!(&out[..], b"kept");
}

#[test]
fn decode_leaves_incomplete_input_alone() {
    let mut buf = BytesMut::from(&[0x30, 0x05, 0x00][..]);
    assert_eq!(
        decode(&mut buf, V311, u32::MAX),
        Ok(Decoded::Incomplete { needed: 4 })
    );
    assert_eq!(buf.len(), 3);
}
