//! Session-layer rules, table-driven and without a shard: CONNECT validation and the answers
//! to packets of a connected session, on a virtual clock.

use std::time::Instant;

use bytes::Bytes;

use crate::codec::{
    self, Ack, ByteStr, Connect, Decoded, Packet, PacketId, Properties, ProtocolVersion, Publish,
    QoS, ReasonCode, Unsubscribe, Will,
};
use crate::config::{Limits, ProtocolOptions};
use crate::topic::TopicName;

use super::{
    validate_connect, Action, ClientIdGenerator, ConnectRefused, Envelope, Message, Outbox,
    Session, Violation,
};

const V311: ProtocolVersion = ProtocolVersion::V3_1_1;
const V5: ProtocolVersion = ProtocolVersion::V5;

fn connect(version: ProtocolVersion, client_id: &str) -> Connect {
    Connect {
        protocol: version,
        clean_start: true,
        keep_alive_s: 60,
        properties: Properties::default(),
        client_id: ByteStr::from(client_id),
        will: None,
        username: None,
        password: None,
    }
}

fn will(topic: &str) -> Will {
    Will {
        topic: ByteStr::from(topic),
        payload: Bytes::from_static(b"gone"),
        qos: QoS::AtMostOnce,
        retain: false,
        properties: Properties::default(),
    }
}

/// The refusal of `connect` under default limits and `protocol`, if it is refused.
fn refusal(connect: Connect, protocol: &ProtocolOptions) -> Option<ConnectRefused> {
    let limits = Limits::default();
    validate_connect(connect, &limits, protocol, &mut ClientIdGenerator::new()).err()
}

/// The CONNACK code that refuses `connect` (`None`: closed without CONNACK); panics if the
/// CONNECT is accepted.
fn refused_code(connect: Connect) -> Option<ReasonCode> {
    let why = format!("{connect:?}");
    refusal(connect, &ProtocolOptions::default())
        .unwrap_or_else(|| panic!("accepted: {why}"))
        .code
}

#[test]
fn connect_rules_between_properties_and_in_the_will() {
    let mut data_only = connect(V5, "c");
    data_only.properties.authentication_data = Some(Bytes::from_static(b"x"));
    let mut empty_reply = connect(V5, "c");
    let mut w = will("w");
    w.properties.response_topic = Some(ByteStr::from(""));
    empty_reply.will = Some(w);
    let mut wildcard_reply = connect(V5, "c");
    let mut w = will("w");
    w.properties.response_topic = Some(ByteStr::from("replies/#"));
    wildcard_reply.will = Some(w);
    let mut bad_will_v5 = connect(V5, "c");
    bad_will_v5.will = Some(will("a/+"));
    let mut bad_will_v311 = connect(V311, "c");
    bad_will_v311.will = Some(will("a/+"));
    let cases = [
        // 3.1.2.11.10
        (data_only, Some(ReasonCode::PROTOCOL_ERROR)),
        // [MQTT-4.7.3-1], [MQTT-3.3.2-14]
        (empty_reply, Some(ReasonCode::PROTOCOL_ERROR)),
        (wildcard_reply, Some(ReasonCode::PROTOCOL_ERROR)),
        // 3.2.2.2 0x90; 3.1.1 has no return code for it.
        (bad_will_v5, Some(ReasonCode::TOPIC_NAME_INVALID)),
        (bad_will_v311, None),
    ];
    for (connect, code) in cases {
        let why = format!("{connect:?}");
        assert_eq!(refused_code(connect), code, "{why}");
    }
    // Authentication Data with its method is for the authenticator to judge, not refused here.
    let mut both = connect(V5, "c");
    both.properties.authentication_method = Some(ByteStr::from("SCRAM-SHA-256"));
    both.properties.authentication_data = Some(Bytes::from_static(b"x"));
    assert_eq!(refusal(both, &ProtocolOptions::default()), None);
}

/// A session with a connection attached, and what it wrote to that connection.
struct Attached {
    session: Session,
    version: ProtocolVersion,
    out: Outbox,
    limits: Limits,
    protocol: ProtocolOptions,
    now: Instant,
}

impl Attached {
    fn new(version: ProtocolVersion, protocol: ProtocolOptions) -> Attached {
        let limits = Limits::default();
        let params = validate_connect(
            connect(version, "s"),
            &limits,
            &protocol,
            &mut ClientIdGenerator::new(),
        )
        .expect("valid CONNECT");
        let mut attached = Attached {
            session: Session::new(params.client_id.clone(), 0),
            version,
            out: Outbox::default(),
            limits,
            protocol,
            now: Instant::now(),
        };
        let a = &mut attached;
        a.session
            .attach(a.now, &params, false, &mut a.out, &a.limits, &a.protocol);
        assert!(matches!(a.written().as_slice(), [Packet::ConnAck(_)]));
        attached
    }

    fn handle(&mut self, packet: Packet) -> Result<(), Violation> {
        let mut actions: Vec<Action> = Vec::new();
        self.session.handle_packet(
            self.now,
            packet,
            &mut self.out,
            &mut actions,
            super::Rules {
                limits: &self.limits,
                protocol: &self.protocol,
                access: &crate::auth::Access::open(),
            },
        )
    }

    /// Sends the client one message at `qos` and returns its packet id.
    fn deliver(&mut self, qos: QoS) -> PacketId {
        let publish = Publish {
            dup: false,
            qos,
            retain: false,
            topic: ByteStr::from("t"),
            packet_id: PacketId::new(1),
            properties: Properties::default(),
            payload: Bytes::from_static(b"x"),
        };
        let topic = TopicName::new(ByteStr::from("t")).expect("valid topic");
        let envelope = Envelope {
            message: Message::from_publish(topic, publish, self.now),
            qos,
            retain: false,
            tag: None,
        };
        let (limits, now) = (&self.limits, self.now);
        self.session
            .deliver(now, envelope, Some(&mut self.out), limits, usize::MAX);
        match self.written().as_slice() {
            [Packet::Publish(p)] => p.packet_id.expect("QoS > 0"),
            other => panic!("expected one PUBLISH, got {other:?}"),
        }
    }

    /// Decodes and clears what the session wrote.
    fn written(&mut self) -> Vec<Packet> {
        let mut packets = Vec::new();
        while let Decoded::Packet(p) =
            codec::decode(&mut self.out.bytes, self.version, u32::MAX).expect("decodes")
        {
            packets.push(p);
        }
        packets
    }
}

/// Makes an acknowledgement packet of one kind.
type AckOf = fn(Ack) -> Packet;

#[test]
fn acknowledgement_of_the_other_qos_for_an_id_in_flight_is_a_protocol_error() {
    let wrong_kind: [(QoS, AckOf); 3] = [
        (QoS::AtLeastOnce, Packet::PubRec),
        (QoS::AtLeastOnce, Packet::PubComp),
        (QoS::ExactlyOnce, Packet::PubAck),
    ];
    for version in [V311, V5] {
        for (qos, wrong) in wrong_kind {
            let mut a = Attached::new(version, ProtocolOptions::default());
            let id = a.deliver(qos);
            let err = a
                .handle(wrong(Ack::new(id)))
                .expect_err("protocol violation");
            // [MQTT-4.3.2] [MQTT-4.3.3]; 4.13: 0x82 (3.1.1: the shard just closes).
            assert_eq!(err.code, ReasonCode::PROTOCOL_ERROR, "{qos:?} {version:?}");
        }
    }
}

#[test]
fn acknowledgements_not_matching_an_id_in_flight_are_ignored() {
    let mut a = Attached::new(V5, ProtocolOptions::default());
    let id = a.deliver(QoS::ExactlyOnce);
    // PUBCOMP before PUBREC: the right flow out of order, not the other QoS's.
    assert_eq!(a.handle(Packet::PubComp(Ack::new(id))), Ok(()));
    assert_eq!(a.handle(Packet::PubRec(Ack::new(id))), Ok(()));
    assert!(matches!(a.written().as_slice(), [Packet::PubRel(_)]));
    assert_eq!(a.handle(Packet::PubComp(Ack::new(id))), Ok(()));
    // Now nothing is in flight: every late duplicate is ignored (PUBREC still gets PUBREL).
    for late in [Packet::PubAck, Packet::PubComp, Packet::PubRec] {
        assert_eq!(a.handle(late(Ack::new(id))), Ok(()));
    }
}

#[test]
fn unsubscribe_with_an_empty_filter_is_a_protocol_error_and_removes_nothing() {
    for version in [V311, V5] {
        let mut a = Attached::new(version, ProtocolOptions::default());
        let unsubscribe = Unsubscribe {
            packet_id: PacketId::new(1).expect("non-zero"),
            properties: Properties::default(),
            filters: vec![ByteStr::from("a"), ByteStr::from("")],
        };
        let err = a
            .handle(Packet::Unsubscribe(unsubscribe))
            .expect_err("refused");
        // [MQTT-4.7.3-1]; 4.13: the packet parses, so 0x82 rather than 0x81.
        assert_eq!(err.code, ReasonCode::PROTOCOL_ERROR);
        assert!(a.written().is_empty(), "no UNSUBACK");
    }
}

#[test]
fn control_characters_in_connect_strings_are_refused_unless_allowed() {
    let with_user = |version, user: &str| {
        let mut c = connect(version, "c");
        c.username = Some(ByteStr::from(user));
        c
    };
    let with_will = |version, topic: &str| {
        let mut c = connect(version, "c");
        c.will = Some(will(topic));
        c
    };
    let cases = [
        // 1.5.4 SHOULD NOT: 0x85 / 0x86 / 0x90; the encoder turns 0x85 into 3.1.1's 0x02 and
        // 0x86 into 0x04. A 3.1.1 will topic has no code: closed.
        (
            connect(V5, "c\u{1}"),
            Some(ReasonCode::CLIENT_IDENTIFIER_NOT_VALID),
        ),
        (
            connect(V311, "c\u{9F}"),
            Some(ReasonCode::CLIENT_IDENTIFIER_NOT_VALID),
        ),
        (
            with_user(V5, "u\u{7F}"),
            Some(ReasonCode::BAD_USER_NAME_OR_PASSWORD),
        ),
        (
            with_user(V311, "u\u{1F}"),
            Some(ReasonCode::BAD_USER_NAME_OR_PASSWORD),
        ),
        (
            with_will(V5, "w\u{80}"),
            Some(ReasonCode::TOPIC_NAME_INVALID),
        ),
        (with_will(V311, "w\u{80}"), None),
    ];
    let lenient = ProtocolOptions {
        allow_control_characters: true,
        ..ProtocolOptions::default()
    };
    for (connect, code) in cases {
        let why = format!("{connect:?}");
        assert_eq!(refusal(connect.clone(), &lenient), None, "lenient: {why}");
        assert_eq!(refused_code(connect), code, "{why}");
    }
}

#[test]
fn control_characters_in_topics_are_refused_unless_allowed() {
    let publish = |topic: &str| {
        Packet::Publish(Publish {
            dup: false,
            qos: QoS::AtMostOnce,
            retain: false,
            topic: ByteStr::from(topic),
            packet_id: None,
            properties: Properties::default(),
            payload: Bytes::new(),
        })
    };
    let filters = || vec![ByteStr::from("ok"), ByteStr::from("a/\u{1B}")];
    let subscribe = || {
        let options = crate::codec::SubscriptionOptions::default();
        Packet::Subscribe(crate::codec::Subscribe {
            packet_id: PacketId::new(1).expect("non-zero"),
            properties: Properties::default(),
            filters: filters().into_iter().map(|f| (f, options)).collect(),
        })
    };
    let unsubscribe = || {
        Packet::Unsubscribe(Unsubscribe {
            packet_id: PacketId::new(2).expect("non-zero"),
            properties: Properties::default(),
            filters: filters(),
        })
    };
    for version in [V311, V5] {
        let mut a = Attached::new(version, ProtocolOptions::default());
        // 1.5.4: PUBLISH 0x90 (3.1.1: the shard closes, the code unused).
        let err = a.handle(publish("a\u{1}")).expect_err("refused");
        assert_eq!(err.code, ReasonCode::TOPIC_NAME_INVALID);
        // SUBACK 0x8F per filter (the 3.1.1 encoder writes 0x80).
        assert_eq!(a.handle(subscribe()), Ok(()));
        let Packet::SubAck(ack) = &a.written()[0] else {
            panic!("SUBACK")
        };
        assert!(ack.codes[1].is_error(), "{version:?}");
        // UNSUBACK 0x8F in 5.0; 3.1.1's UNSUBACK has no codes: a violation, so a close.
        match (version, a.handle(unsubscribe())) {
            (V5, Ok(())) => {
                let Packet::UnsubAck(ack) = &a.written()[0] else {
                    panic!("UNSUBACK")
                };
                assert_eq!(
                    ack.codes,
                    [ReasonCode::SUCCESS, ReasonCode::TOPIC_FILTER_INVALID]
                );
            }
            (V311, Err(violation)) => assert!(violation.why.contains("control")),
            other => panic!("{other:?}"),
        }
        let lenient = ProtocolOptions {
            allow_control_characters: true,
            ..ProtocolOptions::default()
        };
        let mut a = Attached::new(version, lenient);
        assert_eq!(a.handle(publish("a\u{1}")), Ok(()));
        assert_eq!(a.handle(subscribe()), Ok(()));
        assert_eq!(a.handle(unsubscribe()), Ok(()));
    }
}

/// A window entry with packet id `id`, for the allocator tests.
fn outbound(id: PacketId) -> super::Outbound {
    let topic = TopicName::new(ByteStr::from("t")).expect("valid topic");
    let publish = Publish {
        dup: false,
        qos: QoS::AtLeastOnce,
        retain: false,
        topic: ByteStr::from("t"),
        packet_id: Some(id),
        properties: Properties::default(),
        payload: Bytes::new(),
    };
    super::Outbound {
        packet_id: id,
        envelope: Envelope {
            message: Message::from_publish(topic, publish, Instant::now()),
            qos: QoS::AtLeastOnce,
            retain: false,
            tag: None,
        },
        state: super::Awaiting::PubAck,
    }
}

/// Clients that leave some messages unacknowledged while the id counter goes round several
/// times: no id is ever handed out while in flight. The allocator compares with the oldest
/// entry only until it first skips one; three stuck entries, one of them not the oldest,
/// catch a fast path that outlives the order argument.
#[test]
fn packet_ids_in_flight_are_never_handed_out_again() {
    let session = &mut Attached::new(V311, ProtocolOptions::default()).session;
    let mut stuck = Vec::new();
    for turn in 0..3 * 65_535u32 {
        let id = session.allocate_packet_id();
        assert!(
            !session.inflight.iter().any(|o| o.packet_id == id),
            "turn {turn}: id {id:?} is in flight"
        );
        session.inflight.push_back(outbound(id));
        // Keep the first three ids forever, and a window of up to 9 others.
        if stuck.len() < 3 {
            stuck.push(id);
        } else if session.inflight.len() > 12 {
            let index = 3 + (turn as usize % 7);
            session.inflight.remove(index).expect("in range");
        }
    }
    let ids: Vec<_> = session.inflight.iter().map(|o| o.packet_id).collect();
    for id in &stuck {
        assert!(ids.contains(id), "stuck id {id:?} was lost");
    }
}
