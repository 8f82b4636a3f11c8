//! Framing and decoding: bytes in, `Packet` out.
//!
//! [`check`] frames: it reads the fixed header only, validates the first byte, refuses a frame
//! over `packet_size_max` as soon as the Remaining Length is readable (before any of the body
//! is buffered), and says how many more bytes a partial frame needs. [`decode`] then splits the
//! frame off the read buffer as one `Bytes` and parses the body from it, so topics and payloads
//! are zero-copy slices of the frame. Nothing here panics on network input: every read is
//! bounds-checked by [`Reader`](super::reader::Reader).
//!
//! The per-packet parsers live in `decode_connect` (CONNECT) and `decode_pubsub` (PUBLISH,
//! SUBSCRIBE, UNSUBSCRIBE and their acks); the small fixed-shape packets are parsed here.

use bytes::BytesMut;

use super::decode_connect::decode_connect;
use super::decode_pubsub::{
    decode_publish, decode_suback, decode_subscribe, decode_unsuback, decode_unsubscribe,
};
use super::properties_codec::{decode_properties, PropertyContext};
use super::reader::Reader;
use super::reason_check::reason_for;
use super::varint::{read_varint, VarInt};
use super::{
    Ack, Auth, ConnAck, DecodeError, Disconnect, Packet, PacketKind, Properties, ProtocolVersion,
    ReasonCode,
};

/// The result of framing: either a whole packet is buffered or `needed` more bytes are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame {
    /// `header_len` bytes of fixed header followed by `body_len` bytes of body are buffered.
    Complete {
        first_byte: u8,
        header_len: usize,
        body_len: usize,
    },
    /// At least `needed` more bytes must arrive before the frame can be framed or parsed.
    Incomplete { needed: usize },
}

/// The result of [`decode`].
// `Packet` is large because `Properties` is stored inline; boxing it here would allocate once
// per decoded packet on the hot path, and a `Decoded` is matched at once, never stored.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded {
    Packet(Packet),
    Incomplete { needed: usize },
}

/// The smallest frame: a first byte and a one-byte Remaining Length of zero.
const FRAME_LEN_MIN: usize = 2;

/// Reads only the fixed header of `buf`; refuses a frame over `packet_size_max` bytes in total.
///
/// Also refuses a first byte that no protocol level allows (reserved type 0, wrong fixed
/// flags), since that too is knowable from the header alone. Type 15 passes: it is AUTH in
/// 5.0, and only [`decode`] knows the level. `needed` is never zero and never reaches past
/// the end of the frame.
pub fn check(buf: &[u8], packet_size_max: u32) -> Result<Frame, DecodeError> {
    let Some((&first_byte, after_first)) = buf.split_first() else {
        return Ok(Frame::Incomplete {
            needed: FRAME_LEN_MIN,
        });
    };
    check_first_byte(first_byte)?;
    let (body_len, length_len) = match read_varint(after_first) {
        VarInt::Value { value, len } => (value, len),
        VarInt::Incomplete => return Ok(Frame::Incomplete { needed: 1 }),
        // [MQTT-1.5.5-1] the Remaining Length takes at most four bytes.
        VarInt::Malformed => return Err(DecodeError::MalformedRemainingLength),
    };
    let header_len = 1 + length_len;
    let size = header_len as u64 + u64::from(body_len);
    // Refused here, before a single body byte need be buffered. (Errors are made only when
    // returned: `DecodeError` has drop glue, and making one per frame showed in profiles.)
    let too_large = || DecodeError::PacketTooLarge {
        size,
        max: packet_size_max,
    };
    if size > u64::from(packet_size_max) {
        return Err(too_large());
    }
    let body_len = usize::try_from(body_len).map_err(|_| too_large())?;
    let total = header_len + body_len;
    if buf.len() < total {
        return Ok(Frame::Incomplete {
            needed: total - buf.len(),
        });
    }
    Ok(Frame::Complete {
        first_byte,
        header_len,
        body_len,
    })
}

/// Checks the packet type and the fixed-header flags [MQTT-2.2.2-1] [MQTT-2.2.2-2], except
/// CONNECT's, which depend on the protocol level.
fn check_first_byte(first_byte: u8) -> Result<(), DecodeError> {
    let packet_type = first_byte >> 4;
    let flags = first_byte & 0x0F;
    let invalid = || DecodeError::InvalidFlags { packet_type, flags };
    match packet_type {
        0 => Err(DecodeError::ReservedPacketType(0)),
        3 => {
            let qos = (flags >> 1) & 0b11;
            if qos == 3 {
                // [MQTT-3.3.1-4] both QoS bits set is malformed.
                return Err(DecodeError::InvalidQoS);
            }
            if flags & 0b1000 != 0 && qos == 0 {
                // [MQTT-3.3.1-2] DUP must be 0 for QoS 0.
                return Err(invalid());
            }
            Ok(())
        }
        // CONNECT's flags are reserved in 3.1.1 and 5.0 but undefined in 3.1, which only the
        // protocol level in the body tells apart: `decode_connect` checks them.
        1 => Ok(()),
        // [MQTT-3.6.1-1] [MQTT-3.8.1-1] [MQTT-3.10.1-1] PUBREL, SUBSCRIBE, UNSUBSCRIBE: 0b0010.
        6 | 8 | 10 if flags == 0b0010 => Ok(()),
        6 | 8 | 10 => Err(invalid()),
        _ if flags == 0 => Ok(()),
        _ => Err(invalid()),
    }
}

/// Decodes one packet from the front of `buf`, removing its bytes. `version` is the level
/// negotiated by CONNECT; CONNECT itself is decoded whatever `version` says.
///
/// On `Incomplete` or a framing error `buf` is untouched. On a parse error the frame has
/// already been removed; the connection is going to be closed anyway.
pub fn decode(
    buf: &mut BytesMut,
    version: ProtocolVersion,
    packet_size_max: u32,
) -> Result<Decoded, DecodeError> {
    let (first_byte, header_len, body_len) = match check(buf, packet_size_max)? {
        Frame::Complete {
            first_byte,
            header_len,
            body_len,
        } => (first_byte, header_len, body_len),
        Frame::Incomplete { needed } => return Ok(Decoded::Incomplete { needed }),
    };
    let mut frame = buf.split_to(header_len + body_len).freeze();
    let body = frame.split_off(header_len);
    let mut r = Reader::new(body);
    let packet = parse(first_byte, &mut r, version)?;
    // Every parser stops after its last field; what is left is not part of any field.
    r.finish().map_err(|error| match &packet {
        Packet::Connect(connect) => DecodeError::in_connect(connect.protocol, error),
        _ => error,
    })?;
    Ok(Decoded::Packet(packet))
}

/// Parses a framed body by packet type.
fn parse(first_byte: u8, r: &mut Reader, version: ProtocolVersion) -> Result<Packet, DecodeError> {
    let flags = first_byte & 0x0F;
    Ok(match first_byte >> 4 {
        1 => Packet::Connect(Box::new(decode_connect(r, flags)?)),
        2 => Packet::ConnAck(decode_connack(r, version)?),
        3 => Packet::Publish(decode_publish(r, flags, version)?),
        4 => Packet::PubAck(decode_ack(r, PacketKind::PubAck, version)?),
        5 => Packet::PubRec(decode_ack(r, PacketKind::PubRec, version)?),
        6 => Packet::PubRel(decode_ack(r, PacketKind::PubRel, version)?),
        7 => Packet::PubComp(decode_ack(r, PacketKind::PubComp, version)?),
        8 => Packet::Subscribe(decode_subscribe(r, version)?),
        9 => Packet::SubAck(decode_suback(r, version)?),
        10 => Packet::Unsubscribe(decode_unsubscribe(r, version)?),
        11 => Packet::UnsubAck(decode_unsuback(r, version)?),
        // No body: anything in it is reported as trailing bytes by `decode`.
        12 => Packet::PingReq,
        13 => Packet::PingResp,
        14 => Packet::Disconnect(decode_disconnect(r, version)?),
        15 if version.is_v5() => Packet::Auth(decode_auth(r)?),
        // Type 15 is reserved before 5.0 [MQTT-2.2.1]; type 0 was refused by `check`.
        other => return Err(DecodeError::ReservedPacketType(other)),
    })
}

/// CONNACK: acknowledge flags, return/reason code, and in 5.0 properties [MQTT-3.2.2].
fn decode_connack(r: &mut Reader, version: ProtocolVersion) -> Result<ConnAck, DecodeError> {
    let flags = r.u8()?;
    if flags & 0xFE != 0 {
        // [MQTT-3.2.2.1] bits 7-1 are reserved and must be 0.
        return Err(DecodeError::InvalidConnAckFlags(flags));
    }
    let code_byte = r.u8()?;
    if !version.is_v5() {
        // [MQTT-3.2.2.3] 3.x return codes 0..=5 only.
        let Some(code) = ReasonCode::from_v3_connack(code_byte) else {
            return Err(DecodeError::InvalidReasonCode(code_byte));
        };
        return Ok(ConnAck {
            session_present: flags == 1,
            code,
            properties: Properties::default(),
        });
    }
    let code = reason_for(PacketKind::ConnAck, code_byte)?;
    let properties = decode_properties(r, PropertyContext::ConnAck)?;
    Ok(ConnAck {
        session_present: flags == 1,
        code,
        properties,
    })
}

/// PUBACK, PUBREC, PUBREL, PUBCOMP: packet id, then in 5.0 an optional reason code and
/// optional properties. A Remaining Length of 2 means SUCCESS, and one under 4 means no
/// properties [MQTT-3.4.2.1] [MQTT-3.4.2.2.1].
fn decode_ack(
    r: &mut Reader,
    kind: PacketKind,
    version: ProtocolVersion,
) -> Result<Ack, DecodeError> {
    let packet_id = r.packet_id()?;
    if !version.is_v5() || r.is_empty() {
        return Ok(Ack::new(packet_id));
    }
    let code = reason_for(kind, r.u8()?)?;
    let properties = if r.is_empty() {
        Properties::default()
    } else {
        decode_properties(r, PropertyContext::Ack)?
    };
    Ok(Ack {
        packet_id,
        code,
        properties,
    })
}

/// DISCONNECT: empty in 3.x [MQTT-3.14.2]; in 5.0 an optional reason code (absent means
/// Normal disconnection) and optional properties [MQTT-3.14.2.1] [MQTT-3.14.2.2.1].
fn decode_disconnect(r: &mut Reader, version: ProtocolVersion) -> Result<Disconnect, DecodeError> {
    if !version.is_v5() || r.is_empty() {
        return Ok(Disconnect::new(ReasonCode::NORMAL_DISCONNECTION));
    }
    let code = reason_for(PacketKind::Disconnect, r.u8()?)?;
    let properties = if r.is_empty() {
        Properties::default()
    } else {
        decode_properties(r, PropertyContext::Disconnect)?
    };
    Ok(Disconnect { code, properties })
}

/// AUTH (5.0): the same shape as DISCONNECT; no body means Success [MQTT-3.15.2.1].
fn decode_auth(r: &mut Reader) -> Result<Auth, DecodeError> {
    if r.is_empty() {
        return Ok(Auth {
            code: ReasonCode::SUCCESS,
            properties: Properties::default(),
        });
    }
    let code = reason_for(PacketKind::Auth, r.u8()?)?;
    let properties = if r.is_empty() {
        Properties::default()
    } else {
        decode_properties(r, PropertyContext::Auth)?
    };
    Ok(Auth { code, properties })
}
