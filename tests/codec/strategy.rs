//! Generators of every valid `Packet` at a given protocol level.
//!
//! "Valid" means what the level can carry and the decoder accepts: packet id present iff
//! QoS > 0, DUP only with QoS > 0, properties only in 5.0 and only where the table of
//! [MQTT-2.2.2.2] allows them, reason codes representable at the level, and in 3.x a password
//! only with a user name.

use bytes::Bytes;
use proptest::prelude::*;
use proptest::sample::select;
use ringmq::codec::{
    Ack, Auth, ByteStr, ConnAck, Connect, Disconnect, Packet, PacketId, PacketKind, Properties,
    ProtocolVersion, Publish, QoS, ReasonCode, RetainHandling, SubAck, Subscribe,
    SubscriptionOptions, UnsubAck, Unsubscribe, Will,
};

const CONNECT: &[u8] = &[0x11, 0x15, 0x16, 0x17, 0x19, 0x21, 0x22, 0x26, 0x27];
const WILL: &[u8] = &[0x01, 0x02, 0x03, 0x08, 0x09, 0x18, 0x26];
const CONNACK: &[u8] = &[
    0x11, 0x12, 0x13, 0x15, 0x16, 0x1A, 0x1C, 0x1F, 0x21, 0x22, 0x24, 0x25, 0x26, 0x27, 0x28, 0x29,
    0x2A,
];
const PUBLISH: &[u8] = &[0x01, 0x02, 0x03, 0x08, 0x09, 0x0B, 0x23, 0x26];
/// PUBACK, PUBREC, PUBREL, PUBCOMP, SUBACK and UNSUBACK all allow exactly these.
const ACK: &[u8] = &[0x1F, 0x26];
const SUBSCRIBE: &[u8] = &[0x0B, 0x26];
const UNSUBSCRIBE: &[u8] = &[0x26];
const DISCONNECT: &[u8] = &[0x11, 0x1C, 0x1F, 0x26];
const AUTH: &[u8] = &[0x15, 0x16, 0x1F, 0x26];

/// UTF-8 strings without U+0000, mixing ASCII, multi-byte and topic-ish characters.
pub fn arb_str() -> impl Strategy<Value = ByteStr> {
    "[a-z0-9/+#$ é中😀\u{7F}\u{FFFF}]{0,12}".prop_map(ByteStr::from)
}

pub fn arb_bytes() -> impl Strategy<Value = Bytes> {
    prop::collection::vec(any::<u8>(), 0..24).prop_map(Bytes::from)
}

pub fn arb_packet_id() -> impl Strategy<Value = PacketId> {
    (1..=u16::MAX).prop_map(|v| PacketId::new(v).expect("non-zero"))
}

pub fn arb_qos() -> impl Strategy<Value = QoS> {
    prop_oneof![
        Just(QoS::AtMostOnce),
        Just(QoS::AtLeastOnce),
        Just(QoS::ExactlyOnce)
    ]
}

/// Sets one property from seeds, coercing the seeds into the legal range.
fn apply(p: &mut Properties, id: u8, n: u32, s: ByteStr, b: Bytes, s2: ByteStr, publish: bool) {
    let flag = Some((n & 1) as u8);
    let u16_nonzero = Some((n as u16).max(1));
    match id {
        0x01 => p.payload_format_indicator = flag,
        0x02 => p.message_expiry_interval_s = Some(n),
        0x03 => p.content_type = Some(s),
        0x08 => p.response_topic = Some(s),
        0x09 => p.correlation_data = Some(b),
        0x0B if publish => p.subscription_identifiers.push(n % 268_435_455 + 1),
        0x0B => p.subscription_identifiers = vec![n % 268_435_455 + 1],
        0x11 => p.session_expiry_interval_s = Some(n),
        0x12 => p.assigned_client_identifier = Some(s),
        0x13 => p.server_keep_alive_s = Some(n as u16),
        0x15 => p.authentication_method = Some(s),
        0x16 => p.authentication_data = Some(b),
        0x17 => p.request_problem_information = flag,
        0x18 => p.will_delay_interval_s = Some(n),
        0x19 => p.request_response_information = flag,
        0x1A => p.response_information = Some(s),
        0x1C => p.server_reference = Some(s),
        0x1F => p.reason_string = Some(s),
        0x21 => p.receive_maximum = u16_nonzero,
        0x22 => p.topic_alias_maximum = Some(n as u16),
        0x23 => p.topic_alias = u16_nonzero,
        0x24 => p.maximum_qos = flag,
        0x25 => p.retain_available = flag,
        0x26 => p.user_properties.push((s, s2)),
        0x27 => p.maximum_packet_size = Some(n.max(1)),
        0x28 => p.wildcard_subscription_available = flag,
        0x29 => p.subscription_identifier_available = flag,
        0x2A => p.shared_subscription_available = flag,
        other => panic!("no such property 0x{other:02X}"),
    }
}

/// Properties drawn from `allowed`; `Properties::default()` before 5.0.
fn arb_props(version: ProtocolVersion, allowed: &'static [u8]) -> BoxedStrategy<Properties> {
    if !version.is_v5() {
        return Just(Properties::default()).boxed();
    }
    let publish = allowed == PUBLISH;
    let seed = (
        select(allowed),
        any::<u32>(),
        arb_str(),
        arb_bytes(),
        arb_str(),
    );
    prop::collection::vec(seed, 0..6)
        .prop_map(move |seeds| {
            let mut p = Properties::default();
            for (id, n, s, b, s2) in seeds {
                apply(&mut p, id, n, s, b, s2, publish);
            }
            p
        })
        .boxed()
}

/// A reason code valid in `kind` at 5.0, or `fallback` before 5.0.
fn arb_code(
    version: ProtocolVersion,
    kind: PacketKind,
    fallback: ReasonCode,
) -> BoxedStrategy<ReasonCode> {
    if !version.is_v5() {
        return Just(fallback).boxed();
    }
    let codes: Vec<ReasonCode> = (0..=u8::MAX)
        .map(ReasonCode)
        .filter(|c| c.is_valid_for(kind))
        .collect();
    select(codes).boxed()
}

fn arb_connect(v: ProtocolVersion) -> impl Strategy<Value = Packet> {
    let will = (
        arb_str(),
        arb_bytes(),
        arb_qos(),
        any::<bool>(),
        arb_props(v, WILL),
    )
        .prop_map(|(topic, payload, qos, retain, properties)| Will {
            topic,
            payload,
            qos,
            retain,
            properties,
        });
    let creds = (prop::option::of(arb_str()), prop::option::of(arb_bytes()));
    (
        any::<bool>(),
        any::<u16>(),
        arb_props(v, CONNECT),
        arb_str(),
        prop::option::of(will),
        creds,
    )
        .prop_map(
            move |(
                clean_start,
                keep_alive_s,
                properties,
                client_id,
                will,
                (username, password),
            )| {
                // [MQTT-3.1.2-22] before 5.0 a password needs a user name.
                let username = match (&username, &password, v.is_v5()) {
                    (None, Some(_), false) => Some(ByteStr::from("user")),
                    _ => username,
                };
                let connect = Connect {
                    protocol: v,
                    clean_start,
                    keep_alive_s,
                    properties,
                    client_id,
                    will,
                    username,
                    password,
                };
                Packet::Connect(Box::new(connect))
            },
        )
}

fn arb_connack(v: ProtocolVersion) -> impl Strategy<Value = Packet> {
    let code = if v.is_v5() {
        arb_code(v, PacketKind::ConnAck, ReasonCode::SUCCESS)
    } else {
        (0u8..=5)
            .prop_map(|b| ReasonCode::from_v3_connack(b).expect("0..=5"))
            .boxed()
    };
    (any::<bool>(), code, arb_props(v, CONNACK)).prop_map(|(session_present, code, properties)| {
        Packet::ConnAck(ConnAck {
            session_present,
            code,
            properties,
        })
    })
}

pub fn arb_publish(v: ProtocolVersion) -> impl Strategy<Value = Publish> {
    let payload = prop::collection::vec(any::<u8>(), 0..200).prop_map(Bytes::from);
    (
        arb_qos(),
        any::<bool>(),
        any::<bool>(),
        arb_str(),
        arb_packet_id(),
        arb_props(v, PUBLISH),
        payload,
    )
        .prop_map(|(qos, dup, retain, topic, id, properties, payload)| {
            let has_id = qos != QoS::AtMostOnce;
            // [MQTT-3.3.1-2] DUP only with QoS > 0; [MQTT-2.3.1-5] packet id iff QoS > 0.
            Publish {
                dup: dup && has_id,
                qos,
                retain,
                topic,
                packet_id: has_id.then_some(id),
                properties,
                payload,
            }
        })
}

fn arb_ack(v: ProtocolVersion, kind: PacketKind) -> impl Strategy<Value = Ack> {
    (
        arb_packet_id(),
        arb_code(v, kind, ReasonCode::SUCCESS),
        arb_props(v, ACK),
    )
        .prop_map(|(packet_id, code, properties)| Ack {
            packet_id,
            code,
            properties,
        })
}

fn arb_options(v: ProtocolVersion) -> impl Strategy<Value = SubscriptionOptions> {
    let handling = prop_oneof![
        Just(RetainHandling::OnSubscribe),
        Just(RetainHandling::OnNewSubscribe),
        Just(RetainHandling::Never)
    ];
    (arb_qos(), any::<bool>(), any::<bool>(), handling).prop_map(move |(qos, nl, rap, rh)| {
        if v.is_v5() {
            SubscriptionOptions {
                qos,
                no_local: nl,
                retain_as_published: rap,
                retain_handling: rh,
            }
        } else {
            SubscriptionOptions {
                qos,
                ..SubscriptionOptions::default()
            }
        }
    })
}

fn arb_sub_family(v: ProtocolVersion) -> BoxedStrategy<Packet> {
    let filters = prop::collection::vec((arb_str(), arb_options(v)), 1..5);
    let subscribe = (arb_packet_id(), arb_props(v, SUBSCRIBE), filters).prop_map(
        |(packet_id, properties, filters)| {
            Packet::Subscribe(Subscribe {
                packet_id,
                properties,
                filters,
            })
        },
    );
    let suback_code = if v.is_v5() {
        arb_code(v, PacketKind::SubAck, ReasonCode::SUCCESS)
    } else {
        select(vec![
            ReasonCode(0),
            ReasonCode(1),
            ReasonCode(2),
            ReasonCode(0x80),
        ])
        .boxed()
    };
    let suback = (
        arb_packet_id(),
        arb_props(v, ACK),
        prop::collection::vec(suback_code, 0..5),
    )
        .prop_map(|(packet_id, properties, codes)| {
            Packet::SubAck(SubAck {
                packet_id,
                properties,
                codes,
            })
        });
    let unsubscribe = (
        arb_packet_id(),
        arb_props(v, UNSUBSCRIBE),
        prop::collection::vec(arb_str(), 1..5),
    )
        .prop_map(|(packet_id, properties, filters)| {
            Packet::Unsubscribe(Unsubscribe {
                packet_id,
                properties,
                filters,
            })
        });
    let unsuback_codes = if v.is_v5() {
        prop::collection::vec(arb_code(v, PacketKind::UnsubAck, ReasonCode::SUCCESS), 0..5).boxed()
    } else {
        Just(Vec::new()).boxed()
    };
    let unsuback = (arb_packet_id(), arb_props(v, ACK), unsuback_codes).prop_map(
        |(packet_id, properties, codes)| {
            Packet::UnsubAck(UnsubAck {
                packet_id,
                properties,
                codes,
            })
        },
    );
    prop_oneof![subscribe, suback, unsubscribe, unsuback].boxed()
}

fn arb_tail(v: ProtocolVersion) -> BoxedStrategy<Packet> {
    let disconnect = (
        arb_code(v, PacketKind::Disconnect, ReasonCode::NORMAL_DISCONNECTION),
        arb_props(v, DISCONNECT),
    )
        .prop_map(|(code, properties)| Packet::Disconnect(Disconnect { code, properties }));
    let pings = prop_oneof![Just(Packet::PingReq), Just(Packet::PingResp)];
    if !v.is_v5() {
        return prop_oneof![disconnect, pings].boxed();
    }
    let auth = (
        arb_code(v, PacketKind::Auth, ReasonCode::SUCCESS),
        arb_props(v, AUTH),
    )
        .prop_map(|(code, properties)| Packet::Auth(Auth { code, properties }));
    prop_oneof![disconnect, pings, auth].boxed()
}

/// Every packet type valid at `v`, each with its own invariants.
pub fn arb_packet(v: ProtocolVersion) -> impl Strategy<Value = Packet> {
    prop_oneof![
        arb_connect(v).boxed(),
        arb_connack(v).boxed(),
        arb_publish(v).prop_map(Packet::Publish).boxed(),
        arb_ack(v, PacketKind::PubAck)
            .prop_map(Packet::PubAck)
            .boxed(),
        arb_ack(v, PacketKind::PubRec)
            .prop_map(Packet::PubRec)
            .boxed(),
        arb_ack(v, PacketKind::PubRel)
            .prop_map(Packet::PubRel)
            .boxed(),
        arb_ack(v, PacketKind::PubComp)
            .prop_map(Packet::PubComp)
            .boxed(),
        arb_sub_family(v),
        arb_tail(v),
    ]
}
