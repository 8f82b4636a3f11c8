//! Codec errors. Each is a peer's mistake: the session answers it with a reason code or a close.

use super::packet::ProtocolVersion;
use super::properties::PropertyId;
use super::reason::ReasonCode;

/// Why a frame could not be decoded. Never produced for a merely incomplete frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("packet of {size} bytes exceeds the maximum of {max}")]
    PacketTooLarge { size: u64, max: u32 },
    #[error("malformed remaining length")]
    MalformedRemainingLength,
    #[error("reserved packet type {0}")]
    ReservedPacketType(u8),
    #[error("invalid fixed header flags 0x{flags:X} for packet type {packet_type}")]
    InvalidFlags { packet_type: u8, flags: u8 },
    #[error("QoS 3 is not a valid QoS")]
    InvalidQoS,
    #[error("packet identifier 0")]
    ZeroPacketId,
    #[error("string is not valid UTF-8")]
    InvalidUtf8,
    #[error("string contains U+0000")]
    NullCharacter,
    #[error("protocol name {0:?} is not MQTT or MQIsdp")]
    InvalidProtocolName(String),
    #[error("unsupported protocol level {0}")]
    UnsupportedProtocolLevel(u8),
    #[error("CONNECT reserved flag set")]
    ConnectReservedFlag,
    #[error("invalid will flags")]
    InvalidWillFlags,
    #[error("password flag set without user name flag")]
    PasswordWithoutUsername,
    #[error("unknown property identifier 0x{0:02X}")]
    UnknownProperty(u8),
    #[error("property 0x{0:02X} is not allowed in this packet")]
    PropertyNotAllowed(u8),
    #[error("property 0x{0:02X} appears twice")]
    DuplicateProperty(u8),
    #[error("property 0x{0:02X} has an invalid value")]
    InvalidPropertyValue(u8),
    #[error("invalid reason code 0x{0:02X}")]
    InvalidReasonCode(u8),
    #[error("invalid subscription options 0x{0:02X}")]
    InvalidSubscriptionOptions(u8),
    #[error("SUBSCRIBE or UNSUBSCRIBE without a topic filter")]
    NoTopicFilters,
    #[error("packet body is shorter than its fields")]
    Truncated,
    #[error("{0} bytes left over after the last field")]
    TrailingBytes(usize),
    #[error("packet type {0} is not valid at protocol level {1}")]
    NotValidForVersion(u8, u8),
    /// A variable byte integer inside the body (property length, property identifier,
    /// subscription identifier) has a fourth byte with its continuation bit set [MQTT-1.5.5-1].
    #[error("malformed variable byte integer")]
    MalformedVariableInteger,
    /// CONNACK acknowledge flags with a reserved bit (1..=7) set [MQTT-3.2.2.1].
    #[error("invalid CONNACK acknowledge flags 0x{0:02X}")]
    InvalidConnAckFlags(u8),
    /// A CONNECT that named a protocol level and then failed: the level says how the server
    /// answers (5.0: CONNACK with `error`'s reason code; 3.x: a close [MQTT-3.1.4-1]). Errors
    /// in the protocol name or level themselves are not wrapped: there is no level to answer at.
    #[error("CONNECT at protocol level {}: {error}", protocol.level())]
    InConnect {
        protocol: ProtocolVersion,
        error: Box<DecodeError>,
    },
}

impl DecodeError {
    /// The MQTT 5.0 reason code a server sends in CONNACK or DISCONNECT for this error.
    pub fn reason_code(&self) -> ReasonCode {
        match self {
            DecodeError::InConnect { error, .. } => error.reason_code(),
            DecodeError::PacketTooLarge { .. } => ReasonCode::PACKET_TOO_LARGE,
            DecodeError::UnsupportedProtocolLevel(_) | DecodeError::InvalidProtocolName(_) => {
                ReasonCode::UNSUPPORTED_PROTOCOL_VERSION
            }
            // §3.3.4: a Topic Alias of 0 is answered with 0x94, like one above the maximum.
            DecodeError::InvalidPropertyValue(id) if *id == PropertyId::TopicAlias as u8 => {
                ReasonCode::TOPIC_ALIAS_INVALID
            }
            // 2.2.2.2: an identifier not valid for the packet type is a Malformed Packet.
            DecodeError::UnknownProperty(_) | DecodeError::PropertyNotAllowed(_) => {
                ReasonCode::MALFORMED_PACKET
            }
            // 2.2.2.2 and each property's section: a repeat, or a value the property does not
            // allow (Receive Maximum 0, a flag of 2), is a Protocol Error.
            DecodeError::DuplicateProperty(_)
            | DecodeError::InvalidPropertyValue(_)
            | DecodeError::NotValidForVersion(..) => ReasonCode::PROTOCOL_ERROR,
            _ => ReasonCode::MALFORMED_PACKET,
        }
    }

    /// Wraps an error found in a CONNECT after its protocol level was read.
    pub(crate) fn in_connect(protocol: ProtocolVersion, error: DecodeError) -> DecodeError {
        DecodeError::InConnect {
            protocol,
            error: Box::new(error),
        }
    }

    /// The level of a CONNECT that failed after naming it, so that its refusal can be encoded
    /// at that level; `None` for every other error.
    pub fn connect_protocol(&self) -> Option<ProtocolVersion> {
        match self {
            DecodeError::InConnect { protocol, .. } => Some(*protocol),
            _ => None,
        }
    }

    /// The error without its CONNECT context.
    pub fn root(&self) -> &DecodeError {
        match self {
            DecodeError::InConnect { error, .. } => error.root(),
            other => other,
        }
    }
}

/// Why a packet could not be encoded: a programmer's error upstream or an oversize payload.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    #[error("packet body of {0} bytes exceeds the largest remaining length")]
    TooLarge(usize),
    #[error("packet type {0:?} cannot be sent at protocol level {1}")]
    NotValidForVersion(super::packet::PacketKind, u8),
    /// A string or binary field longer than the 65,535 bytes its two-byte length can say.
    #[error("field of {0} bytes exceeds the 65535-byte limit of a length-prefixed field")]
    FieldTooLong(usize),
    /// A subscription identifier outside 1..=268,435,455 cannot be written as a varint.
    #[error("variable byte integer {0} is out of range")]
    VarIntOutOfRange(u32),
    /// A QoS 1 or 2 PUBLISH without a packet identifier [MQTT-2.3.1-5].
    #[error("QoS > 0 PUBLISH without a packet identifier")]
    MissingPacketId,
}
