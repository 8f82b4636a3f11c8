//! Which MQTT 5.0 reason codes each packet may carry [MQTT-2.4], and the 3.x SUBACK bytes.
//!
//! A reason code outside its packet's set is a malformed packet; the decoder refuses it so the
//! session only ever sees codes that mean something for the packet at hand.

use super::packet::PacketKind;
use super::reason::ReasonCode;
use super::DecodeError;

/// CONNACK [MQTT-3.2.2.2].
const CONNACK: &[u8] = &[
    0x00, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8A, 0x8C, 0x90, 0x95, 0x97,
    0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9F,
];
/// PUBACK [MQTT-3.4.2.1] and PUBREC [MQTT-3.5.2.1].
const PUBACK: &[u8] = &[0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99];
/// PUBREL [MQTT-3.6.2.1] and PUBCOMP [MQTT-3.7.2.1].
const PUBREL: &[u8] = &[0x00, 0x92];
/// SUBACK [MQTT-3.9.3].
const SUBACK: &[u8] = &[
    0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2,
];
/// UNSUBACK [MQTT-3.11.3].
const UNSUBACK: &[u8] = &[0x00, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91];
/// DISCONNECT [MQTT-3.14.2.1].
const DISCONNECT: &[u8] = &[
    0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8B, 0x8D, 0x8E, 0x8F, 0x90, 0x93, 0x94, 0x95,
    0x96, 0x97, 0x98, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9E, 0x9F, 0xA0, 0xA1, 0xA2,
];
/// AUTH [MQTT-3.15.2.1].
const AUTH: &[u8] = &[0x00, 0x18, 0x19];
/// 3.x SUBACK: granted QoS 0..=2, or 0x80 for failure (3.1.1) [MQTT-3.9.3].
const SUBACK_V3: &[u8] = &[0x00, 0x01, 0x02, 0x80];

impl ReasonCode {
    /// Whether MQTT 5.0 allows this code in a packet of `kind`. Packets without a reason code
    /// (CONNECT, PUBLISH, SUBSCRIBE, UNSUBSCRIBE, PINGREQ, PINGRESP) allow none.
    pub fn is_valid_for(self, kind: PacketKind) -> bool {
        let allowed = match kind {
            PacketKind::ConnAck => CONNACK,
            PacketKind::PubAck | PacketKind::PubRec => PUBACK,
            PacketKind::PubRel | PacketKind::PubComp => PUBREL,
            PacketKind::SubAck => SUBACK,
            PacketKind::UnsubAck => UNSUBACK,
            PacketKind::Disconnect => DISCONNECT,
            PacketKind::Auth => AUTH,
            _ => &[],
        };
        allowed.contains(&self.0)
    }
}

/// Reads a 5.0 reason code byte for a packet of `kind`.
pub(crate) fn reason_for(kind: PacketKind, byte: u8) -> Result<ReasonCode, DecodeError> {
    let code = ReasonCode(byte);
    if code.is_valid_for(kind) {
        Ok(code)
    } else {
        Err(DecodeError::InvalidReasonCode(byte))
    }
}

/// Reads one 3.x SUBACK return code.
pub(crate) fn suback_v3(byte: u8) -> Result<ReasonCode, DecodeError> {
    if SUBACK_V3.contains(&byte) {
        Ok(ReasonCode(byte))
    } else {
        Err(DecodeError::InvalidReasonCode(byte))
    }
}
