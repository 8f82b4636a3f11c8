//! Reading and writing MQTT 5.0 properties [MQTT-2.2.2].
//!
//! A property block is a Property Length (variable byte integer) followed by (identifier,
//! value) pairs. The decoder checks, for the packet the block belongs to, that each property
//! is known, allowed there (the table of [MQTT-2.2.2.2]), not repeated unless repeatable, and
//! has a legal value. The encoder writes properties in identifier order, user properties in
//! their given order, so the same `Properties` always produces the same bytes. It does not
//! filter by packet type: a test client may want to send a property where it does not belong.

use bytes::{BufMut, Bytes, BytesMut};

use super::bytestr::ByteStr;
use super::properties::{Properties, PropertyId};
use super::reader::Reader;
use super::varint::{put_varint, varint_len, VARINT_MAX};
use super::writer::{field_len, put_binary, put_str};
use super::{DecodeError, EncodeError};

/// Where a property block sits: each place has its own set of allowed properties.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PropertyContext {
    Connect,
    /// The will properties in the CONNECT payload.
    Will,
    ConnAck,
    Publish,
    /// PUBACK, PUBREC, PUBREL and PUBCOMP.
    Ack,
    Subscribe,
    SubAck,
    Unsubscribe,
    UnsubAck,
    Disconnect,
    Auth,
}

impl PropertyId {
    /// The property with wire identifier `byte`, if MQTT 5.0 defines one.
    pub fn from_u8(byte: u8) -> Option<PropertyId> {
        use PropertyId as P;
        const ALL: [PropertyId; 27] = [
            P::PayloadFormatIndicator,
            P::MessageExpiryInterval,
            P::ContentType,
            P::ResponseTopic,
            P::CorrelationData,
            P::SubscriptionIdentifier,
            P::SessionExpiryInterval,
            P::AssignedClientIdentifier,
            P::ServerKeepAlive,
            P::AuthenticationMethod,
            P::AuthenticationData,
            P::RequestProblemInformation,
            P::WillDelayInterval,
            P::RequestResponseInformation,
            P::ResponseInformation,
            P::ServerReference,
            P::ReasonString,
            P::ReceiveMaximum,
            P::TopicAliasMaximum,
            P::TopicAlias,
            P::MaximumQos,
            P::RetainAvailable,
            P::UserProperty,
            P::MaximumPacketSize,
            P::WildcardSubscriptionAvailable,
            P::SubscriptionIdentifierAvailable,
            P::SharedSubscriptionAvailable,
        ];
        ALL.into_iter().find(|&id| id as u8 == byte)
    }

    /// Whether this property may appear in a property block at `ctx` [MQTT-2.2.2.2].
    pub(crate) fn allowed_in(self, ctx: PropertyContext) -> bool {
        use PropertyContext as C;
        use PropertyId as P;
        match self {
            P::PayloadFormatIndicator
            | P::MessageExpiryInterval
            | P::ContentType
            | P::ResponseTopic
            | P::CorrelationData => matches!(ctx, C::Publish | C::Will),
            P::SubscriptionIdentifier => matches!(ctx, C::Publish | C::Subscribe),
            P::SessionExpiryInterval => matches!(ctx, C::Connect | C::ConnAck | C::Disconnect),
            P::AssignedClientIdentifier
            | P::ServerKeepAlive
            | P::ResponseInformation
            | P::MaximumQos
            | P::RetainAvailable
            | P::WildcardSubscriptionAvailable
            | P::SubscriptionIdentifierAvailable
            | P::SharedSubscriptionAvailable => ctx == C::ConnAck,
            P::AuthenticationMethod | P::AuthenticationData => {
                matches!(ctx, C::Connect | C::ConnAck | C::Auth)
            }
            P::RequestProblemInformation | P::RequestResponseInformation => ctx == C::Connect,
            P::WillDelayInterval => ctx == C::Will,
            P::ServerReference => matches!(ctx, C::ConnAck | C::Disconnect),
            P::ReasonString => matches!(
                ctx,
                C::ConnAck | C::Ack | C::SubAck | C::UnsubAck | C::Disconnect | C::Auth
            ),
            P::ReceiveMaximum | P::TopicAliasMaximum | P::MaximumPacketSize => {
                matches!(ctx, C::Connect | C::ConnAck)
            }
            P::TopicAlias => ctx == C::Publish,
            P::UserProperty => true,
        }
    }
}

/// Reads a Property Length and the block it announces, for a packet at `ctx`.
pub(crate) fn decode_properties(
    r: &mut Reader,
    ctx: PropertyContext,
) -> Result<Properties, DecodeError> {
    let block_len = usize::try_from(r.varint()?).map_err(|_| DecodeError::Truncated)?;
    let mut block = Reader::new(r.take(block_len)?);
    let mut props = Properties::default();
    while !block.is_empty() {
        let raw = block.varint()?;
        let id = u8::try_from(raw).ok().and_then(PropertyId::from_u8).ok_or(
            DecodeError::UnknownProperty(u8::try_from(raw).unwrap_or(u8::MAX)),
        )?;
        if !id.allowed_in(ctx) {
            return Err(DecodeError::PropertyNotAllowed(id as u8));
        }
        read_property(&mut block, id, ctx, &mut props)?;
    }
    Ok(props)
}

/// Reads one property value into `props`, checking repeats and value ranges.
fn read_property(
    r: &mut Reader,
    id: PropertyId,
    ctx: PropertyContext,
    p: &mut Properties,
) -> Result<(), DecodeError> {
    use PropertyId as P;
    match id {
        P::PayloadFormatIndicator => set(&mut p.payload_format_indicator, flag(r, id)?, id),
        P::MessageExpiryInterval => set(&mut p.message_expiry_interval_s, r.u32()?, id),
        P::ContentType => set(&mut p.content_type, r.string()?, id),
        P::ResponseTopic => set(&mut p.response_topic, r.string()?, id),
        P::CorrelationData => set(&mut p.correlation_data, r.binary()?, id),
        P::SubscriptionIdentifier => subscription_identifier(r, ctx, p),
        P::SessionExpiryInterval => set(&mut p.session_expiry_interval_s, r.u32()?, id),
        P::AssignedClientIdentifier => set(&mut p.assigned_client_identifier, r.string()?, id),
        P::ServerKeepAlive => set(&mut p.server_keep_alive_s, r.u16()?, id),
        P::AuthenticationMethod => set(&mut p.authentication_method, r.string()?, id),
        P::AuthenticationData => set(&mut p.authentication_data, r.binary()?, id),
        P::RequestProblemInformation => set(&mut p.request_problem_information, flag(r, id)?, id),
        P::WillDelayInterval => set(&mut p.will_delay_interval_s, r.u32()?, id),
        P::RequestResponseInformation => set(&mut p.request_response_information, flag(r, id)?, id),
        P::ResponseInformation => set(&mut p.response_information, r.string()?, id),
        P::ServerReference => set(&mut p.server_reference, r.string()?, id),
        P::ReasonString => set(&mut p.reason_string, r.string()?, id),
        // [MQTT-3.1.2.11.3] [MQTT-3.2.2.3.3] a Receive Maximum of 0 is a protocol error.
        P::ReceiveMaximum => set(&mut p.receive_maximum, nonzero_u16(r, id)?, id),
        P::TopicAliasMaximum => set(&mut p.topic_alias_maximum, r.u16()?, id),
        // [MQTT-3.3.2-8] a Topic Alias of 0 is not permitted.
        P::TopicAlias => set(&mut p.topic_alias, nonzero_u16(r, id)?, id),
        P::MaximumQos => set(&mut p.maximum_qos, flag(r, id)?, id),
        P::RetainAvailable => set(&mut p.retain_available, flag(r, id)?, id),
        P::UserProperty => {
            // Repeatable, order preserved [MQTT-3.3.2-18].
            let pair = (r.string()?, r.string()?);
            p.user_properties.push(pair);
            Ok(())
        }
        // [MQTT-3.1.2.11.4] a Maximum Packet Size of 0 is a protocol error.
        P::MaximumPacketSize => set(&mut p.maximum_packet_size, nonzero_u32(r, id)?, id),
        P::WildcardSubscriptionAvailable => {
            set(&mut p.wildcard_subscription_available, flag(r, id)?, id)
        }
        P::SubscriptionIdentifierAvailable => {
            set(&mut p.subscription_identifier_available, flag(r, id)?, id)
        }
        P::SharedSubscriptionAvailable => {
            set(&mut p.shared_subscription_available, flag(r, id)?, id)
        }
    }
}

/// Stores a property that may appear at most once [MQTT-2.2.2.2].
fn set<T>(slot: &mut Option<T>, value: T, id: PropertyId) -> Result<(), DecodeError> {
    if slot.is_some() {
        return Err(DecodeError::DuplicateProperty(id as u8));
    }
    *slot = Some(value);
    Ok(())
}

/// A byte property whose only legal values are 0 and 1 (Maximum QoS included).
fn flag(r: &mut Reader, id: PropertyId) -> Result<u8, DecodeError> {
    match r.u8()? {
        value @ (0 | 1) => Ok(value),
        _ => Err(DecodeError::InvalidPropertyValue(id as u8)),
    }
}

fn nonzero_u16(r: &mut Reader, id: PropertyId) -> Result<u16, DecodeError> {
    match r.u16()? {
        0 => Err(DecodeError::InvalidPropertyValue(id as u8)),
        value => Ok(value),
    }
}

fn nonzero_u32(r: &mut Reader, id: PropertyId) -> Result<u32, DecodeError> {
    match r.u32()? {
        0 => Err(DecodeError::InvalidPropertyValue(id as u8)),
        value => Ok(value),
    }
}

/// Subscription Identifier: 1..=268,435,455 [MQTT-3.8.2.1.2]; several in a PUBLISH sent to a
/// client with overlapping subscriptions [MQTT-3.3.4-3], at most one in SUBSCRIBE.
fn subscription_identifier(
    r: &mut Reader,
    ctx: PropertyContext,
    p: &mut Properties,
) -> Result<(), DecodeError> {
    let id = PropertyId::SubscriptionIdentifier;
    let value = r.varint()?;
    if value == 0 {
        return Err(DecodeError::InvalidPropertyValue(id as u8));
    }
    if ctx != PropertyContext::Publish && !p.subscription_identifiers.is_empty() {
        return Err(DecodeError::DuplicateProperty(id as u8));
    }
    p.subscription_identifiers.push(value);
    Ok(())
}

/// A property value as the encoder sees it: its wire size and how to write it.
trait Value {
    fn wire_len(&self) -> usize;
    fn put(&self, out: &mut BytesMut) -> Result<(), EncodeError>;
}

impl Value for u8 {
    fn wire_len(&self) -> usize {
        1
    }
    fn put(&self, out: &mut BytesMut) -> Result<(), EncodeError> {
        out.put_u8(*self);
        Ok(())
    }
}

impl Value for u16 {
    fn wire_len(&self) -> usize {
        2
    }
    fn put(&self, out: &mut BytesMut) -> Result<(), EncodeError> {
        out.put_u16(*self);
        Ok(())
    }
}

impl Value for u32 {
    fn wire_len(&self) -> usize {
        4
    }
    fn put(&self, out: &mut BytesMut) -> Result<(), EncodeError> {
        out.put_u32(*self);
        Ok(())
    }
}

impl Value for ByteStr {
    fn wire_len(&self) -> usize {
        field_len(self.len())
    }
    fn put(&self, out: &mut BytesMut) -> Result<(), EncodeError> {
        put_str(out, self)
    }
}

impl Value for Bytes {
    fn wire_len(&self) -> usize {
        field_len(self.len())
    }
    fn put(&self, out: &mut BytesMut) -> Result<(), EncodeError> {
        put_binary(out, self)
    }
}

/// The size of one optional property: identifier byte plus value, or nothing.
fn opt_len<V: Value>(value: &Option<V>) -> usize {
    value.as_ref().map_or(0, |v| 1 + v.wire_len())
}

/// Writes one optional property, if present.
fn put_opt<V: Value>(
    out: &mut BytesMut,
    id: PropertyId,
    value: &Option<V>,
) -> Result<(), EncodeError> {
    if let Some(v) = value {
        out.put_u8(id as u8);
        v.put(out)?;
    }
    Ok(())
}

/// The size of the properties themselves, without the Property Length in front.
pub(crate) fn properties_len(p: &Properties) -> usize {
    let subscription_ids: usize = p
        .subscription_identifiers
        .iter()
        .map(|&v| 1 + varint_len(v))
        .sum();
    let user: usize = p
        .user_properties
        .iter()
        .map(|(k, v)| 1 + field_len(k.len()) + field_len(v.len()))
        .sum();
    opt_len(&p.payload_format_indicator)
        + opt_len(&p.message_expiry_interval_s)
        + opt_len(&p.content_type)
        + opt_len(&p.response_topic)
        + opt_len(&p.correlation_data)
        + subscription_ids
        + opt_len(&p.session_expiry_interval_s)
        + opt_len(&p.assigned_client_identifier)
        + opt_len(&p.server_keep_alive_s)
        + opt_len(&p.authentication_method)
        + opt_len(&p.authentication_data)
        + opt_len(&p.request_problem_information)
        + opt_len(&p.will_delay_interval_s)
        + opt_len(&p.request_response_information)
        + opt_len(&p.response_information)
        + opt_len(&p.server_reference)
        + opt_len(&p.reason_string)
        + opt_len(&p.receive_maximum)
        + opt_len(&p.topic_alias_maximum)
        + opt_len(&p.topic_alias)
        + opt_len(&p.maximum_qos)
        + opt_len(&p.retain_available)
        + user
        + opt_len(&p.maximum_packet_size)
        + opt_len(&p.wildcard_subscription_available)
        + opt_len(&p.subscription_identifier_available)
        + opt_len(&p.shared_subscription_available)
}

/// The size of a whole property block: Property Length plus the properties.
pub(crate) fn properties_block_len(props_len: usize) -> usize {
    varint_len(u32::try_from(props_len).unwrap_or(u32::MAX)) + props_len
}

/// Writes a property block whose properties take `props_len` bytes (from `properties_len`).
/// The caller has checked that the whole packet, hence `props_len`, fits a varint.
pub(crate) fn put_properties(
    out: &mut BytesMut,
    p: &Properties,
    props_len: usize,
) -> Result<(), EncodeError> {
    use PropertyId as P;
    let len = u32::try_from(props_len).map_err(|_| EncodeError::TooLarge(props_len))?;
    put_varint(out, len);
    put_opt(out, P::PayloadFormatIndicator, &p.payload_format_indicator)?;
    put_opt(out, P::MessageExpiryInterval, &p.message_expiry_interval_s)?;
    put_opt(out, P::ContentType, &p.content_type)?;
    put_opt(out, P::ResponseTopic, &p.response_topic)?;
    put_opt(out, P::CorrelationData, &p.correlation_data)?;
    for &value in &p.subscription_identifiers {
        if value == 0 || value > VARINT_MAX {
            return Err(EncodeError::VarIntOutOfRange(value));
        }
        out.put_u8(P::SubscriptionIdentifier as u8);
        put_varint(out, value);
    }
    put_opt(out, P::SessionExpiryInterval, &p.session_expiry_interval_s)?;
    put_opt(
        out,
        P::AssignedClientIdentifier,
        &p.assigned_client_identifier,
    )?;
    put_opt(out, P::ServerKeepAlive, &p.server_keep_alive_s)?;
    put_opt(out, P::AuthenticationMethod, &p.authentication_method)?;
    put_opt(out, P::AuthenticationData, &p.authentication_data)?;
    put_opt(
        out,
        P::RequestProblemInformation,
        &p.request_problem_information,
    )?;
    put_opt(out, P::WillDelayInterval, &p.will_delay_interval_s)?;
    put_opt(
        out,
        P::RequestResponseInformation,
        &p.request_response_information,
    )?;
    put_opt(out, P::ResponseInformation, &p.response_information)?;
    put_opt(out, P::ServerReference, &p.server_reference)?;
    put_opt(out, P::ReasonString, &p.reason_string)?;
    put_opt(out, P::ReceiveMaximum, &p.receive_maximum)?;
    put_opt(out, P::TopicAliasMaximum, &p.topic_alias_maximum)?;
    put_opt(out, P::TopicAlias, &p.topic_alias)?;
    put_opt(out, P::MaximumQos, &p.maximum_qos)?;
    put_opt(out, P::RetainAvailable, &p.retain_available)?;
    for (key, value) in &p.user_properties {
        out.put_u8(P::UserProperty as u8);
        put_str(out, key)?;
        put_str(out, value)?;
    }
    put_opt(out, P::MaximumPacketSize, &p.maximum_packet_size)?;
    put_opt(
        out,
        P::WildcardSubscriptionAvailable,
        &p.wildcard_subscription_available,
    )?;
    put_opt(
        out,
        P::SubscriptionIdentifierAvailable,
        &p.subscription_identifier_available,
    )?;
    put_opt(
        out,
        P::SharedSubscriptionAvailable,
        &p.shared_subscription_available,
    )
}
