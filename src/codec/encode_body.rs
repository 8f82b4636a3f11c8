//! Packet bodies for every packet but PUBLISH (which `encode::encode_publish` writes on its
//! own hot path). Each packet has a `*_len` that measures without allocating and a `put_*`
//! that writes exactly that many bytes; `encode` checks the two agree in debug builds.

use bytes::{BufMut, BytesMut};

use super::bytestr::ByteStr;
use super::packet::{
    Ack, ConnAck, Connect, Packet, ProtocolVersion, SubAck, Subscribe, SubscriptionOptions,
    UnsubAck, Unsubscribe,
};
use super::properties_codec::{properties_block_len, properties_len, put_properties};
use super::reason::ReasonCode;
use super::writer::{field_len, put_binary, put_str};
use super::{EncodeError, Properties};

/// The size of the 5.0 property block of `props`, or 0 before 5.0.
fn props_block_if_v5(props: &Properties, version: ProtocolVersion) -> usize {
    if version.is_v5() {
        properties_block_len(properties_len(props))
    } else {
        0
    }
}

/// Writes the 5.0 property block of `props`, or nothing before 5.0.
fn put_props_if_v5(
    out: &mut BytesMut,
    props: &Properties,
    version: ProtocolVersion,
) -> Result<(), EncodeError> {
    if version.is_v5() {
        put_properties(out, props, properties_len(props))?;
    }
    Ok(())
}

/// The body size of any packet but PUBLISH. CONNECT uses its own protocol level.
pub(crate) fn body_len(packet: &Packet, version: ProtocolVersion) -> usize {
    match packet {
        Packet::Connect(connect) => connect_len(connect),
        Packet::ConnAck(connack) => 2 + props_block_if_v5(&connack.properties, version),
        Packet::Publish(_) => unreachable!("PUBLISH is measured by encode::publish_body_len"),
        Packet::PubAck(ack) | Packet::PubRec(ack) | Packet::PubRel(ack) | Packet::PubComp(ack) => {
            ack_len(ack, version)
        }
        Packet::Subscribe(sub) => subscribe_len(sub, version),
        Packet::SubAck(suback) => {
            2 + props_block_if_v5(&suback.properties, version) + suback.codes.len()
        }
        Packet::Unsubscribe(unsub) => {
            let filters: usize = unsub.filters.iter().map(|f| field_len(f.len())).sum();
            2 + props_block_if_v5(&unsub.properties, version) + filters
        }
        Packet::UnsubAck(unsuback) if version.is_v5() => {
            2 + props_block_if_v5(&unsuback.properties, version) + unsuback.codes.len()
        }
        Packet::UnsubAck(_) => 2,
        Packet::PingReq | Packet::PingResp => 0,
        Packet::Disconnect(d) => reason_and_props_len(
            d.code,
            ReasonCode::NORMAL_DISCONNECTION,
            &d.properties,
            version,
        ),
        Packet::Auth(auth) => {
            reason_and_props_len(auth.code, ReasonCode::SUCCESS, &auth.properties, version)
        }
    }
}

/// Writes the body of any packet but PUBLISH; `body_len` measured it.
pub(crate) fn put_body(
    packet: &Packet,
    version: ProtocolVersion,
    out: &mut BytesMut,
) -> Result<(), EncodeError> {
    match packet {
        Packet::Connect(connect) => put_connect(connect, out),
        Packet::ConnAck(connack) => put_connack(connack, version, out),
        Packet::Publish(_) => unreachable!("PUBLISH is written by encode::encode_publish"),
        Packet::PubAck(ack) | Packet::PubRec(ack) | Packet::PubRel(ack) | Packet::PubComp(ack) => {
            put_ack(ack, version, out)
        }
        Packet::Subscribe(sub) => put_subscribe(sub, version, out),
        Packet::SubAck(suback) => put_suback(suback, version, out),
        Packet::Unsubscribe(unsub) => put_unsubscribe(unsub, version, out),
        Packet::UnsubAck(unsuback) => put_unsuback(unsuback, version, out),
        Packet::PingReq | Packet::PingResp => Ok(()),
        Packet::Disconnect(d) => put_reason_and_props(
            d.code,
            ReasonCode::NORMAL_DISCONNECTION,
            &d.properties,
            version,
            out,
        ),
        Packet::Auth(auth) => put_reason_and_props(
            auth.code,
            ReasonCode::SUCCESS,
            &auth.properties,
            version,
            out,
        ),
    }
}

/// The protocol name a CONNECT at `protocol` carries [MQTT-3.1.2.1].
fn protocol_name(protocol: ProtocolVersion) -> &'static [u8] {
    match protocol {
        ProtocolVersion::V3_1 => b"MQIsdp",
        ProtocolVersion::V3_1_1 | ProtocolVersion::V5 => b"MQTT",
    }
}

fn connect_len(c: &Connect) -> usize {
    let v = c.protocol;
    let header =
        field_len(protocol_name(v).len()) + 1 + 1 + 2 + props_block_if_v5(&c.properties, v);
    let will = c.will.as_ref().map_or(0, |w| {
        props_block_if_v5(&w.properties, v) + field_len(w.topic.len()) + field_len(w.payload.len())
    });
    header
        + field_len(c.client_id.len())
        + will
        + c.username.as_ref().map_or(0, |u| field_len(u.len()))
        + c.password.as_ref().map_or(0, |p| field_len(p.len()))
}

/// The Connect Flags byte [MQTT-3.1.2.3]; bit 0 stays reserved.
fn connect_flags(c: &Connect) -> u8 {
    let mut flags = u8::from(c.clean_start) << 1;
    if let Some(will) = &c.will {
        flags |= 0x04 | (will.qos as u8) << 3 | u8::from(will.retain) << 5;
    }
    flags | u8::from(c.password.is_some()) << 6 | u8::from(c.username.is_some()) << 7
}

fn put_connect(c: &Connect, out: &mut BytesMut) -> Result<(), EncodeError> {
    let v = c.protocol;
    put_binary(out, protocol_name(v))?;
    out.put_u8(v.level());
    out.put_u8(connect_flags(c));
    out.put_u16(c.keep_alive_s);
    put_props_if_v5(out, &c.properties, v)?;
    put_str(out, &c.client_id)?;
    if let Some(will) = &c.will {
        put_props_if_v5(out, &will.properties, v)?;
        put_str(out, &will.topic)?;
        put_binary(out, &will.payload)?;
    }
    if let Some(username) = &c.username {
        put_str(out, username)?;
    }
    if let Some(password) = &c.password {
        put_binary(out, password)?;
    }
    Ok(())
}

/// CONNACK: 3.x maps the reason code to one of its six return codes [MQTT-3.2.2.3].
fn put_connack(
    c: &ConnAck,
    version: ProtocolVersion,
    out: &mut BytesMut,
) -> Result<(), EncodeError> {
    out.put_u8(u8::from(c.session_present));
    out.put_u8(if version.is_v5() {
        c.code.0
    } else {
        c.code.to_v3_connack()
    });
    put_props_if_v5(out, &c.properties, version)
}

/// PUBACK family: 3.x is the packet id alone; 5.0 drops the reason code when it is SUCCESS
/// and there are no properties, and the Property Length when there are none [MQTT-3.4.2.1].
fn ack_len(ack: &Ack, version: ProtocolVersion) -> usize {
    if !version.is_v5() {
        return 2;
    }
    2 + reason_and_props_len(ack.code, ReasonCode::SUCCESS, &ack.properties, version)
}

fn put_ack(ack: &Ack, version: ProtocolVersion, out: &mut BytesMut) -> Result<(), EncodeError> {
    out.put_u16(ack.packet_id.get());
    if version.is_v5() {
        put_reason_and_props(ack.code, ReasonCode::SUCCESS, &ack.properties, version, out)?;
    }
    Ok(())
}

/// The optional reason code and optional properties that end the PUBACK family, DISCONNECT
/// and AUTH in 5.0: nothing when the code is `default` and there are no properties, the code
/// alone when there are no properties, else both. Nothing at all before 5.0.
fn reason_and_props_len(
    code: ReasonCode,
    default: ReasonCode,
    props: &Properties,
    version: ProtocolVersion,
) -> usize {
    if !version.is_v5() {
        return 0;
    }
    match properties_len(props) {
        0 if code == default => 0,
        0 => 1,
        len => 1 + properties_block_len(len),
    }
}

fn put_reason_and_props(
    code: ReasonCode,
    default: ReasonCode,
    props: &Properties,
    version: ProtocolVersion,
    out: &mut BytesMut,
) -> Result<(), EncodeError> {
    if !version.is_v5() {
        return Ok(());
    }
    match properties_len(props) {
        0 if code == default => Ok(()),
        0 => {
            out.put_u8(code.0);
            Ok(())
        }
        len => {
            out.put_u8(code.0);
            put_properties(out, props, len)
        }
    }
}

fn subscribe_len(sub: &Subscribe, version: ProtocolVersion) -> usize {
    let filters: usize = sub
        .filters
        .iter()
        .map(|(f, _)| field_len(f.len()) + 1)
        .sum();
    2 + props_block_if_v5(&sub.properties, version) + filters
}

/// The Subscription Options byte [MQTT-3.8.3.1]; 3.x carries only the QoS.
fn options_byte(o: &SubscriptionOptions, version: ProtocolVersion) -> u8 {
    let qos = o.qos as u8;
    if !version.is_v5() {
        return qos;
    }
    qos | u8::from(o.no_local) << 2
        | u8::from(o.retain_as_published) << 3
        | (o.retain_handling as u8) << 4
}

fn put_subscribe(
    sub: &Subscribe,
    version: ProtocolVersion,
    out: &mut BytesMut,
) -> Result<(), EncodeError> {
    out.put_u16(sub.packet_id.get());
    put_props_if_v5(out, &sub.properties, version)?;
    for (filter, options) in &sub.filters {
        put_str(out, filter)?;
        out.put_u8(options_byte(options, version));
    }
    Ok(())
}

/// SUBACK: 3.x has a single failure code, 0x80 [MQTT-3.9.3].
fn put_suback(s: &SubAck, version: ProtocolVersion, out: &mut BytesMut) -> Result<(), EncodeError> {
    out.put_u16(s.packet_id.get());
    put_props_if_v5(out, &s.properties, version)?;
    for code in &s.codes {
        let byte = if version.is_v5() || !code.is_error() {
            code.0
        } else {
            0x80
        };
        out.put_u8(byte);
    }
    Ok(())
}

fn put_unsubscribe(
    u: &Unsubscribe,
    version: ProtocolVersion,
    out: &mut BytesMut,
) -> Result<(), EncodeError> {
    out.put_u16(u.packet_id.get());
    put_props_if_v5(out, &u.properties, version)?;
    u.filters
        .iter()
        .try_for_each(|filter: &ByteStr| put_str(out, filter))
}

/// UNSUBACK: 3.x is the packet id alone [MQTT-3.11.2]; 5.0 adds properties and codes.
fn put_unsuback(
    u: &UnsubAck,
    version: ProtocolVersion,
    out: &mut BytesMut,
) -> Result<(), EncodeError> {
    out.put_u16(u.packet_id.get());
    if version.is_v5() {
        put_properties(out, &u.properties, properties_len(&u.properties))?;
        u.codes.iter().for_each(|code| out.put_u8(code.0));
    }
    Ok(())
}
