//! PUBLISH, SUBSCRIBE, SUBACK, UNSUBSCRIBE and UNSUBACK bodies [MQTT-3.3] .. [MQTT-3.11].
//!
//! Topic names and filters are checked only as UTF-8 strings here; wildcard and `$` rules
//! belong to the `topic` module, which knows whether a string is a name or a filter.

use super::packet::{
    ProtocolVersion, Publish, QoS, RetainHandling, SubAck, Subscribe, SubscriptionOptions,
    UnsubAck, Unsubscribe,
};
use super::properties_codec::{decode_properties, PropertyContext};
use super::reader::Reader;
use super::reason_check::{reason_for, suback_v3};
use super::{DecodeError, PacketKind, Properties};

/// Reads a 5.0 property block at `ctx`, or nothing before 5.0.
fn properties_if_v5(
    r: &mut Reader,
    version: ProtocolVersion,
    ctx: PropertyContext,
) -> Result<Properties, DecodeError> {
    if version.is_v5() {
        decode_properties(r, ctx)
    } else {
        Ok(Properties::default())
    }
}

/// PUBLISH: the flags were validated by `check`; topic, packet id iff QoS > 0
/// [MQTT-2.3.1-5], 5.0 properties, and the rest of the body is the payload [MQTT-3.3.3].
pub(crate) fn decode_publish(
    r: &mut Reader,
    flags: u8,
    version: ProtocolVersion,
) -> Result<Publish, DecodeError> {
    let Some(qos) = QoS::from_u8((flags >> 1) & 0b11) else {
        return Err(DecodeError::InvalidQoS);
    };
    let topic = r.string()?;
    let packet_id = match qos {
        QoS::AtMostOnce => None,
        QoS::AtLeastOnce | QoS::ExactlyOnce => Some(r.packet_id()?),
    };
    let properties = properties_if_v5(r, version, PropertyContext::Publish)?;
    Ok(Publish {
        dup: flags & 0b1000 != 0,
        qos,
        retain: flags & 0b0001 != 0,
        topic,
        packet_id,
        properties,
        payload: r.take_rest(),
    })
}

/// SUBSCRIBE: packet id, 5.0 properties, then one or more (filter, options) entries.
pub(crate) fn decode_subscribe(
    r: &mut Reader,
    version: ProtocolVersion,
) -> Result<Subscribe, DecodeError> {
    let packet_id = r.packet_id()?;
    let properties = properties_if_v5(r, version, PropertyContext::Subscribe)?;
    let mut filters = Vec::new();
    while !r.is_empty() {
        let filter = r.string()?;
        let options = subscription_options(r.u8()?, version)?;
        filters.push((filter, options));
    }
    if filters.is_empty() {
        // [MQTT-3.8.3-3] at least one filter.
        return Err(DecodeError::NoTopicFilters);
    }
    Ok(Subscribe {
        packet_id,
        properties,
        filters,
    })
}

/// The Subscription Options byte [MQTT-3.8.3.1].
fn subscription_options(
    byte: u8,
    version: ProtocolVersion,
) -> Result<SubscriptionOptions, DecodeError> {
    // 3.x: only the QoS bits exist [MQTT-3.8.3-4]; 5.0: bits 6-7 are reserved [MQTT-3.8.3-5].
    let reserved = if version.is_v5() {
        0b1100_0000
    } else {
        0b1111_1100
    };
    if byte & reserved != 0 {
        return Err(DecodeError::InvalidSubscriptionOptions(byte));
    }
    let Some(qos) = QoS::from_u8(byte & 0b11) else {
        return Err(DecodeError::InvalidQoS);
    };
    let retain_handling = match (byte >> 4) & 0b11 {
        0 => RetainHandling::OnSubscribe,
        1 => RetainHandling::OnNewSubscribe,
        2 => RetainHandling::Never,
        // [MQTT-3.8.3.1] Retain Handling 3 is a protocol error.
        _ => return Err(DecodeError::InvalidSubscriptionOptions(byte)),
    };
    Ok(SubscriptionOptions {
        qos,
        no_local: byte & 0b0100 != 0,
        retain_as_published: byte & 0b1000 != 0,
        retain_handling,
    })
}

/// SUBACK: packet id, 5.0 properties, then one return/reason code per byte [MQTT-3.9.3].
pub(crate) fn decode_suback(
    r: &mut Reader,
    version: ProtocolVersion,
) -> Result<SubAck, DecodeError> {
    let packet_id = r.packet_id()?;
    let properties = properties_if_v5(r, version, PropertyContext::SubAck)?;
    let mut codes = Vec::with_capacity(r.remaining());
    while !r.is_empty() {
        let byte = r.u8()?;
        let code = if version.is_v5() {
            reason_for(PacketKind::SubAck, byte)?
        } else {
            suback_v3(byte)?
        };
        codes.push(code);
    }
    Ok(SubAck {
        packet_id,
        properties,
        codes,
    })
}

/// UNSUBSCRIBE: packet id, 5.0 properties, then one or more filters.
pub(crate) fn decode_unsubscribe(
    r: &mut Reader,
    version: ProtocolVersion,
) -> Result<Unsubscribe, DecodeError> {
    let packet_id = r.packet_id()?;
    let properties = properties_if_v5(r, version, PropertyContext::Unsubscribe)?;
    let mut filters = Vec::new();
    while !r.is_empty() {
        filters.push(r.string()?);
    }
    if filters.is_empty() {
        // [MQTT-3.10.3-2] at least one filter.
        return Err(DecodeError::NoTopicFilters);
    }
    Ok(Unsubscribe {
        packet_id,
        properties,
        filters,
    })
}

/// UNSUBACK: packet id only in 3.x [MQTT-3.11.2]; in 5.0 properties and one reason code per
/// remaining byte [MQTT-3.11.3].
pub(crate) fn decode_unsuback(
    r: &mut Reader,
    version: ProtocolVersion,
) -> Result<UnsubAck, DecodeError> {
    let packet_id = r.packet_id()?;
    if !version.is_v5() {
        return Ok(UnsubAck {
            packet_id,
            properties: Properties::default(),
            codes: Vec::new(),
        });
    }
    let properties = decode_properties(r, PropertyContext::UnsubAck)?;
    let mut codes = Vec::with_capacity(r.remaining());
    while !r.is_empty() {
        codes.push(reason_for(PacketKind::UnsubAck, r.u8()?)?);
    }
    Ok(UnsubAck {
        packet_id,
        properties,
        codes,
    })
}
