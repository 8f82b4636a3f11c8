//! Encoding: `Packet` in, bytes appended to a connection's write buffer.
//!
//! Every packet is measured first ([`encoded_len`] and the per-packet `*_len` functions, which
//! never allocate), then written with one `reserve` and straight puts. For 3.x peers the 5.0-only
//! parts are dropped: properties, reason codes other than the CONNACK and SUBACK mappings, and
//! the UNSUBACK codes. For 5.0 peers the short forms are used whenever they say the same thing
//! (PUBACK family, DISCONNECT and AUTH without reason code or properties).
//!
//! The encoder writes what it is given; it does not check that a property belongs in the
//! packet or that a reason code suits it. It refuses only what it cannot represent (an
//! oversize body or field, a QoS > 0 PUBLISH without a packet id, AUTH before 5.0), and then
//! leaves `out` as it found it.

use bytes::{BufMut, BytesMut};

use super::encode_body::{body_len, put_body};
use super::packet::{Packet, PacketId, PacketKind, Publish, QoS};
use super::properties::Properties;
use super::properties_codec::{properties_block_len, properties_len, put_properties};
use super::varint::{put_varint, varint_len};
use super::writer::{field_len, put_binary};
use super::{EncodeError, ProtocolVersion, REMAINING_LENGTH_MAX};

/// Appends `packet` encoded for `version` to `out`; returns the number of bytes written.
///
/// CONNECT is encoded at its own `protocol` field, since it is what announces the level.
pub fn encode(
    packet: &Packet,
    version: ProtocolVersion,
    out: &mut BytesMut,
) -> Result<usize, EncodeError> {
    if let Packet::Publish(publish) = packet {
        return encode_publish(publish, version, out);
    }
    if matches!(packet, Packet::Auth(_)) && !version.is_v5() {
        return Err(EncodeError::NotValidForVersion(
            PacketKind::Auth,
            version.level(),
        ));
    }
    let body = body_len(packet, version);
    write_frame(out, first_byte(packet), body, |out| {
        put_body(packet, version, out)
    })
}

/// The number of bytes `encode` would write, fixed header included. For a packet that
/// `encode` refuses the value is only an estimate.
pub fn encoded_len(packet: &Packet, version: ProtocolVersion) -> usize {
    let body = match packet {
        Packet::Publish(publish) => return publish_view_len(&publish.into(), version),
        _ => body_len(packet, version),
    };
    frame_len(body)
}

/// A PUBLISH to encode from borrowed parts. The broker encodes one message for many
/// receivers; borrowing its topic and payload instead of cloning them into a [`Publish`] saves
/// two reference-count increments and decrements (atomic operations) per receiver.
#[derive(Debug, Clone, Copy)]
pub struct PublishView<'a> {
    pub dup: bool,
    pub qos: QoS,
    pub retain: bool,
    /// Empty when a 5.0 Topic Alias stands for it.
    pub topic: &'a [u8],
    pub packet_id: Option<PacketId>,
    /// Written for 5.0 receivers only.
    pub properties: &'a Properties,
    pub payload: &'a [u8],
}

impl<'a> From<&'a Publish> for PublishView<'a> {
    fn from(publish: &'a Publish) -> PublishView<'a> {
        PublishView {
            dup: publish.dup,
            qos: publish.qos,
            retain: publish.retain,
            topic: publish.topic.as_bytes(),
            packet_id: publish.packet_id,
            properties: &publish.properties,
            payload: &publish.payload,
        }
    }
}

/// Encodes a PUBLISH: the broker's hot path, run once per subscriber. Measures once,
/// reserves once, then writes straight into `out`; the payload is the only large copy.
pub fn encode_publish(
    publish: &Publish,
    version: ProtocolVersion,
    out: &mut BytesMut,
) -> Result<usize, EncodeError> {
    encode_publish_view(&PublishView::from(publish), version, out)
}

/// [`encode_publish`] from borrowed parts.
///
/// DUP is written only for QoS > 0 [MQTT-3.3.1-2]; a packet id on a QoS 0 PUBLISH is not
/// written, since QoS 0 has none on the wire [MQTT-2.3.1-5].
pub fn encode_publish_view(
    publish: &PublishView<'_>,
    version: ProtocolVersion,
    out: &mut BytesMut,
) -> Result<usize, EncodeError> {
    let packet_id = match (publish.qos, publish.packet_id) {
        (QoS::AtMostOnce, _) => None,
        (_, Some(id)) => Some(id),
        (_, None) => return Err(EncodeError::MissingPacketId),
    };
    let qos_bits = publish.qos as u8;
    let dup = publish.dup && qos_bits > 0;
    let first = 0x30 | u8::from(dup) << 3 | qos_bits << 1 | u8::from(publish.retain);
    let props_len = if version.is_v5() {
        properties_len(publish.properties)
    } else {
        0
    };
    let body = publish_body_len(publish, version, props_len);
    write_frame(out, first, body, |out| {
        put_binary(out, publish.topic)?;
        if let Some(id) = packet_id {
            out.put_u16(id.get());
        }
        if version.is_v5() {
            put_properties(out, publish.properties, props_len)?;
        }
        out.put_slice(publish.payload);
        Ok(())
    })
}

/// The number of bytes [`encode_publish_view`] would write, fixed header included.
pub fn publish_view_len(publish: &PublishView<'_>, version: ProtocolVersion) -> usize {
    let props_len = if version.is_v5() {
        properties_len(publish.properties)
    } else {
        0
    };
    frame_len(publish_body_len(publish, version, props_len))
}

/// The PUBLISH body size, given the size of its properties (0 before 5.0).
fn publish_body_len(
    publish: &PublishView<'_>,
    version: ProtocolVersion,
    props_len: usize,
) -> usize {
    let packet_id = if publish.qos == QoS::AtMostOnce { 0 } else { 2 };
    let properties = if version.is_v5() {
        properties_block_len(props_len)
    } else {
        0
    };
    field_len(publish.topic.len()) + packet_id + properties + publish.payload.len()
}

/// The whole frame size for a body of `body_len` bytes.
fn frame_len(body_len: usize) -> usize {
    1 + varint_len(u32::try_from(body_len).unwrap_or(u32::MAX)) + body_len
}

/// The first byte of every packet but PUBLISH: type nibble and its fixed flags
/// [MQTT-2.2.2-1].
fn first_byte(packet: &Packet) -> u8 {
    let kind = packet.kind();
    let flags = match kind {
        PacketKind::PubRel | PacketKind::Subscribe | PacketKind::Unsubscribe => 0b0010,
        _ => 0,
    };
    (kind as u8) << 4 | flags
}

/// Writes the fixed header and, through `put`, a body of exactly `body_len` bytes. On error
/// `out` is truncated back to where it was.
fn write_frame(
    out: &mut BytesMut,
    first_byte: u8,
    body_len: usize,
    put: impl FnOnce(&mut BytesMut) -> Result<(), EncodeError>,
) -> Result<usize, EncodeError> {
    let remaining = u32::try_from(body_len)
        .ok()
        .filter(|&len| len <= REMAINING_LENGTH_MAX)
        .ok_or(EncodeError::TooLarge(body_len))?;
    let total = 1 + varint_len(remaining) + body_len;
    let start = out.len();
    out.reserve(total);
    out.put_u8(first_byte);
    put_varint(out, remaining);
    if let Err(error) = put(out) {
        out.truncate(start);
        return Err(error);
    }
    debug_assert_eq!(out.len() - start, total, "body_len and put_body disagree");
    Ok(total)
}
