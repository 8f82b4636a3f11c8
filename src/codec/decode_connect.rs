//! CONNECT [MQTT-3.1]: the one packet that carries its own protocol level.
//!
//! The decoder reads the protocol name and level first and parses the rest at that level,
//! whatever the connection's current `version` is: CONNECT is how the level is negotiated.

use bytes::Bytes;

use super::bytestr::ByteStr;
use super::packet::{Connect, ProtocolVersion, QoS, Will};
use super::properties_codec::{decode_properties, PropertyContext};
use super::reader::Reader;
use super::{DecodeError, Properties};

/// The Connect Flags byte [MQTT-3.1.2.3], already checked for internal consistency.
struct ConnectFlags {
    clean_start: bool,
    will: bool,
    will_qos: QoS,
    will_retain: bool,
    password: bool,
    username: bool,
}

impl ConnectFlags {
    fn parse(byte: u8, protocol: ProtocolVersion) -> Result<ConnectFlags, DecodeError> {
        if byte & 0x01 != 0 && protocol != ProtocolVersion::V3_1 {
            // [MQTT-3.1.2-3] the reserved flag must be 0. 3.1 did not define the bit, and
            // legacy 3.1 clients that set it connect to mosquitto, so they connect here.
            return Err(DecodeError::ConnectReservedFlag);
        }
        let will = byte & 0x04 != 0;
        let will_qos_bits = (byte >> 3) & 0b11;
        let will_retain = byte & 0x20 != 0;
        if !will && (will_qos_bits != 0 || will_retain) {
            // [MQTT-3.1.2-11] [MQTT-3.1.2-13] [MQTT-3.1.2-15] no will: QoS and retain are 0.
            return Err(DecodeError::InvalidWillFlags);
        }
        // [MQTT-3.1.2-14] Will QoS 3 is invalid.
        let Some(will_qos) = QoS::from_u8(will_qos_bits) else {
            return Err(DecodeError::InvalidWillFlags);
        };
        let password = byte & 0x40 != 0;
        let username = byte & 0x80 != 0;
        if password && !username && !protocol.is_v5() {
            // [MQTT-3.1.2-22] in 3.x a password needs a user name. 5.0 lifted this; 3.1
            // follows 3.1.1 here, as mosquitto does.
            return Err(DecodeError::PasswordWithoutUsername);
        }
        Ok(ConnectFlags {
            clean_start: byte & 0x02 != 0,
            will,
            will_qos,
            will_retain,
            password,
            username,
        })
    }
}

/// Decodes a CONNECT body; `fixed_flags` are the low four bits of its first byte. Once the
/// level is known every error carries it ([`DecodeError::InConnect`]): it decides whether the
/// refusal is a CONNACK (5.0) or a bare close (3.x).
pub(crate) fn decode_connect(r: &mut Reader, fixed_flags: u8) -> Result<Connect, DecodeError> {
    let protocol = protocol_version(r)?;
    decode_at_level(r, fixed_flags, protocol)
        .map_err(|error| DecodeError::in_connect(protocol, error))
}

/// Everything after the Protocol Level, parsed at that level.
fn decode_at_level(
    r: &mut Reader,
    fixed_flags: u8,
    protocol: ProtocolVersion,
) -> Result<Connect, DecodeError> {
    if fixed_flags != 0 && protocol != ProtocolVersion::V3_1 {
        // [MQTT-2.2.2-2] CONNECT's fixed-header flags are reserved (0000) in 3.1.1 and 5.0;
        // 3.1 did not define them, so legacy clients' stray bits are let through.
        return Err(DecodeError::InvalidFlags {
            packet_type: 1,
            flags: fixed_flags,
        });
    }
    let flags = ConnectFlags::parse(r.u8()?, protocol)?;
    let keep_alive_s = r.u16()?;
    let properties = if protocol.is_v5() {
        // [MQTT-3.1.2.11] 5.0 properties follow the keep-alive.
        decode_properties(r, PropertyContext::Connect)?
    } else {
        Properties::default()
    };
    // [MQTT-3.1.3-1] payload order: client id, will properties, will topic, will payload,
    // user name, password.
    let client_id = r.string()?;
    let will = if flags.will {
        Some(decode_will(r, &flags, protocol)?)
    } else {
        None
    };
    let username = if flags.username && !v31_field_missing(r, protocol) {
        Some(r.string()?)
    } else {
        None
    };
    let password = if flags.password && !v31_field_missing(r, protocol) {
        Some(r.binary()?)
    } else {
        None
    };
    Ok(Connect {
        protocol,
        clean_start: flags.clean_start,
        keep_alive_s,
        properties,
        client_id,
        will,
        username,
        password,
    })
}

/// Protocol Name and Protocol Level [MQTT-3.1.2.1] [MQTT-3.1.2.2].
fn protocol_version(r: &mut Reader) -> Result<ProtocolVersion, DecodeError> {
    let name: Bytes = r.binary()?;
    let level = r.u8()?;
    match (&name[..], level) {
        (b"MQIsdp", 3) => Ok(ProtocolVersion::V3_1),
        (b"MQTT", 4) => Ok(ProtocolVersion::V3_1_1),
        (b"MQTT", 5) => Ok(ProtocolVersion::V5),
        // [MQTT-3.1.2-2] a known name at a level it does not go with.
        (b"MQTT" | b"MQIsdp", _) => Err(DecodeError::UnsupportedProtocolLevel(level)),
        // [MQTT-3.1.2-1] anything else is not MQTT.
        _ => Err(DecodeError::InvalidProtocolName(
            String::from_utf8_lossy(&name).into_owned(),
        )),
    }
}

/// Will properties (5.0), Will Topic and Will Payload [MQTT-3.1.3.2] [MQTT-3.1.3.3].
fn decode_will(
    r: &mut Reader,
    flags: &ConnectFlags,
    protocol: ProtocolVersion,
) -> Result<Will, DecodeError> {
    let properties = if protocol.is_v5() {
        decode_properties(r, PropertyContext::Will)?
    } else {
        Properties::default()
    };
    let topic: ByteStr = r.string()?;
    let payload = r.binary()?;
    Ok(Will {
        topic,
        payload,
        qos: flags.will_qos,
        retain: flags.will_retain,
        properties,
    })
}

/// MQTT 3.1 lets the Remaining Length win over the User Name and Password flags: a 3.1 client
/// may set a flag and then end the packet without the field (3.1 spec, CONNECT payload).
/// mosquitto accepts that, so we do too, and only at level 3.
fn v31_field_missing(r: &Reader, protocol: ProtocolVersion) -> bool {
    protocol == ProtocolVersion::V3_1 && r.is_empty()
}
