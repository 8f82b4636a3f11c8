//! Golden bytes: layouts taken from the specifications' figures and from what well-known
//! clients (mosquitto_pub) put on the wire. Each case is checked in both directions.

use bytes::Bytes;
use ringmq::codec::PropertyValues;
use ringmq::codec::{
    Ack, Auth, ByteStr, ConnAck, Connect, Disconnect, EncodeError, Packet, PacketId, PacketKind,
    Properties, ProtocolVersion, Publish, QoS, ReasonCode, RetainHandling, SubAck, Subscribe,
    SubscriptionOptions, UnsubAck, Unsubscribe, Will,
};

use crate::{decode_one, encode_vec};

const V31: ProtocolVersion = ProtocolVersion::V3_1;
const V311: ProtocolVersion = ProtocolVersion::V3_1_1;
const V5: ProtocolVersion = ProtocolVersion::V5;

fn id(value: u16) -> PacketId {
    PacketId::new(value).expect("non-zero")
}

/// `wire` decodes to `packet` at `v`, and `packet` encodes to `wire`.
fn golden(v: ProtocolVersion, wire: &[u8], packet: Packet) {
    assert_eq!(
        decode_one(wire, v).expect("golden bytes decode"),
        packet,
        "decoding {wire:02X?}"
    );
    assert_eq!(encode_vec(&packet, v), wire, "encoding {packet:?}");
}

fn connect(protocol: ProtocolVersion, client_id: &str) -> Connect {
    Connect {
        protocol,
        clean_start: true,
        keep_alive_s: 60,
        properties: Properties::default(),
        client_id: client_id.into(),
        will: None,
        username: None,
        password: None,
    }
}

#[test]
fn connect_v3_1_1_as_mosquitto_pub_sends_it() {
    // mosquitto_pub -V mqttv311 -i mosq-abc: clean session, keep-alive 60.
    let wire = b"\x10\x14\x00\x04MQTT\x04\x02\x00\x3C\x00\x08mosq-abc";
    golden(
        V311,
        wire,
        Packet::Connect(Box::new(connect(V311, "mosq-abc"))),
    );
}

#[test]
fn connect_v3_1_uses_mqisdp() {
    // mosquitto_pub -V mqttv31 -i mosq-abc.
    let wire = b"\x10\x16\x00\x06MQIsdp\x03\x02\x00\x3C\x00\x08mosq-abc";
    golden(
        V31,
        wire,
        Packet::Connect(Box::new(connect(V31, "mosq-abc"))),
    );
    // CONNECT carries its own level: the connection's current level does not matter.
    assert_eq!(
        decode_one(wire, V5).expect("decodes"),
        decode_one(wire, V31).expect("decodes")
    );
}

#[test]
fn connect_v3_1_1_with_will_and_credentials() {
    // Flags 0xCE as in the 3.1.1 figure 3.10 example: user name, password, will QoS 1,
    // will flag, clean session; keep-alive 10.
    let wire =
        b"\x10\x1B\x00\x04MQTT\x04\xCE\x00\x0A\x00\x01c\x00\x01w\x00\x03bye\x00\x01u\x00\x01p";
    let mut c = connect(V311, "c");
    c.keep_alive_s = 10;
    c.will = Some(Will {
        topic: "w".into(),
        payload: Bytes::from_static(b"bye"),
        qos: QoS::AtLeastOnce,
        retain: false,
        properties: Properties::default(),
    });
    c.username = Some("u".into());
    c.password = Some(Bytes::from_static(b"p"));
    golden(V311, wire, Packet::Connect(Box::new(c)));
}

#[test]
fn connect_v5_with_session_expiry_property() {
    // The 5.0 figure 3-6 variable header: flags 0xC2, keep-alive 10, properties of length 5
    // holding Session Expiry Interval 10.
    let wire =
        b"\x10\x19\x00\x04MQTT\x05\xC2\x00\x0A\x05\x11\x00\x00\x00\x0A\x00\x01c\x00\x01u\x00\x01p";
    let mut c = connect(V5, "c");
    c.keep_alive_s = 10;
    c.properties.session_expiry_interval_s = Some(10);
    c.username = Some("u".into());
    c.password = Some(Bytes::from_static(b"p"));
    golden(V5, wire, Packet::Connect(Box::new(c)));
}

#[test]
fn connect_v5_with_will_properties_and_password_only() {
    // 5.0 allows a password without a user name; will properties precede the will topic.
    let wire = b"\x10\x1C\x00\x04MQTT\x05\x46\x00\x00\x00\x00\x01c\x05\x18\x00\x00\x00\x05\x00\x01w\x00\x00\x00\x01p";
    let mut c = connect(V5, "c");
    c.keep_alive_s = 0;
    let will_props = Properties::from(PropertyValues {
        will_delay_interval_s: Some(5),
        ..Default::default()
    });
    c.will = Some(Will {
        topic: "w".into(),
        payload: Bytes::new(),
        qos: QoS::AtMostOnce,
        retain: false,
        properties: will_props,
    });
    c.password = Some(Bytes::from_static(b"p"));
    golden(V5, wire, Packet::Connect(Box::new(c)));
}

#[test]
fn connack_v3() {
    let ok = ConnAck {
        session_present: false,
        code: ReasonCode::SUCCESS,
        properties: Properties::default(),
    };
    golden(V311, &[0x20, 0x02, 0x00, 0x00], Packet::ConnAck(ok));
    let refused = ConnAck {
        session_present: false,
        code: ReasonCode::NOT_AUTHORIZED,
        properties: Properties::default(),
    };
    golden(V311, &[0x20, 0x02, 0x00, 0x05], Packet::ConnAck(refused));
    // 5.0 reasons without a 3.x twin collapse onto the nearest return code.
    let banned = ConnAck {
        session_present: false,
        code: ReasonCode::BANNED,
        properties: Properties::default(),
    };
    assert_eq!(
        encode_vec(&Packet::ConnAck(banned), V311),
        [0x20, 0x02, 0x00, 0x05]
    );
    let busy = ConnAck {
        session_present: false,
        code: ReasonCode::SERVER_BUSY,
        properties: Properties::default(),
    };
    assert_eq!(
        encode_vec(&Packet::ConnAck(busy), V31),
        [0x20, 0x02, 0x00, 0x03]
    );
}

#[test]
fn connack_v5() {
    let ok = ConnAck {
        session_present: false,
        code: ReasonCode::SUCCESS,
        properties: Properties::default(),
    };
    golden(V5, &[0x20, 0x03, 0x00, 0x00, 0x00], Packet::ConnAck(ok));
    let properties = Properties::from(PropertyValues {
        maximum_qos: Some(1),
        retain_available: Some(0),
        ..Default::default()
    });
    let limited = ConnAck {
        session_present: true,
        code: ReasonCode::SUCCESS,
        properties,
    };
    golden(
        V5,
        &[0x20, 0x07, 0x01, 0x00, 0x04, 0x24, 0x01, 0x25, 0x00],
        Packet::ConnAck(limited),
    );
}

fn publish(qos: QoS, topic: &str, packet_id: Option<u16>, payload: &'static [u8]) -> Publish {
    Publish {
        dup: false,
        qos,
        retain: false,
        topic: topic.into(),
        packet_id: packet_id.map(id),
        properties: Properties::default(),
        payload: Bytes::from_static(payload),
    }
}

#[test]
fn publish_v3_1_1() {
    golden(
        V311,
        b"\x30\x0A\x00\x03a/bhello",
        Packet::Publish(publish(QoS::AtMostOnce, "a/b", None, b"hello")),
    );
    let mut p = publish(QoS::AtLeastOnce, "a/b", Some(10), b"hi");
    p.dup = true;
    p.retain = true;
    golden(V311, b"\x3B\x09\x00\x03a/b\x00\x0Ahi", Packet::Publish(p));
    // An empty payload is legal [MQTT-3.3.3].
    golden(
        V311,
        b"\x30\x03\x00\x01t",
        Packet::Publish(publish(QoS::AtMostOnce, "t", None, b"")),
    );
}

#[test]
fn publish_v5_with_properties_in_identifier_order() {
    let mut p = publish(QoS::ExactlyOnce, "t", Some(1), b"x");
    p.properties.payload_format_indicator = Some(1);
    p.properties.topic_alias = Some(5);
    p.properties.user_properties.push(("k".into(), "v".into()));
    let wire = b"\x34\x13\x00\x01t\x00\x01\x0C\x01\x01\x23\x00\x05\x26\x00\x01k\x00\x01vx";
    golden(V5, wire, Packet::Publish(p.clone()));
    // The same PUBLISH to a 3.1.1 subscriber loses its properties.
    assert_eq!(
        encode_vec(&Packet::Publish(p), V311),
        b"\x34\x06\x00\x01t\x00\x01x"
    );
}

#[test]
fn publish_v5_empty_topic_with_alias_and_two_subscription_ids() {
    let mut p = publish(QoS::AtMostOnce, "", None, b"");
    p.properties.subscription_identifiers = vec![1, 300];
    p.properties.topic_alias = Some(1);
    let wire = b"\x30\x0B\x00\x00\x08\x0B\x01\x0B\xAC\x02\x23\x00\x01";
    golden(V5, wire, Packet::Publish(p));
}

#[test]
fn puback_family() {
    golden(
        V311,
        &[0x40, 0x02, 0x00, 0x01],
        Packet::PubAck(Ack::new(id(1))),
    );
    golden(
        V311,
        &[0x50, 0x02, 0x00, 0x02],
        Packet::PubRec(Ack::new(id(2))),
    );
    golden(
        V311,
        &[0x62, 0x02, 0x00, 0x02],
        Packet::PubRel(Ack::new(id(2))),
    );
    golden(
        V311,
        &[0x70, 0x02, 0x00, 0x02],
        Packet::PubComp(Ack::new(id(2))),
    );
    // 5.0 short form: SUCCESS and no properties is the 3.x layout [MQTT-3.4.2.1].
    golden(
        V5,
        &[0x40, 0x02, 0x00, 0x01],
        Packet::PubAck(Ack::new(id(1))),
    );
    let no_subscribers = Ack {
        code: ReasonCode::NO_MATCHING_SUBSCRIBERS,
        ..Ack::new(id(1))
    };
    golden(
        V5,
        &[0x40, 0x03, 0x00, 0x01, 0x10],
        Packet::PubAck(no_subscribers),
    );
    let not_found = Ack {
        code: ReasonCode::PACKET_IDENTIFIER_NOT_FOUND,
        ..Ack::new(id(2))
    };
    golden(
        V5,
        &[0x62, 0x03, 0x00, 0x02, 0x92],
        Packet::PubRel(not_found),
    );
    let mut denied = Ack {
        code: ReasonCode::NOT_AUTHORIZED,
        ..Ack::new(id(1))
    };
    denied.properties.reason_string = Some("".into());
    golden(
        V5,
        &[0x40, 0x07, 0x00, 0x01, 0x87, 0x03, 0x1F, 0x00, 0x00],
        Packet::PubAck(denied),
    );
    // A 3-byte SUCCESS form and a 4-byte form with empty properties decode the same.
    assert_eq!(
        decode_one(&[0x40, 0x03, 0x00, 0x01, 0x00], V5),
        Ok(Packet::PubAck(Ack::new(id(1))))
    );
    assert_eq!(
        decode_one(&[0x40, 0x04, 0x00, 0x01, 0x00, 0x00], V5),
        Ok(Packet::PubAck(Ack::new(id(1))))
    );
}

#[test]
fn subscribe() {
    let qos1 = SubscriptionOptions {
        qos: QoS::AtLeastOnce,
        ..SubscriptionOptions::default()
    };
    let sub = Subscribe {
        packet_id: id(1),
        properties: Properties::default(),
        filters: vec![("a/b".into(), qos1)],
    };
    golden(
        V311,
        b"\x82\x08\x00\x01\x00\x03a/b\x01",
        Packet::Subscribe(sub),
    );
    let options = SubscriptionOptions {
        qos: QoS::AtLeastOnce,
        no_local: true,
        retain_as_published: true,
        retain_handling: RetainHandling::Never,
    };
    let properties = Properties::from(PropertyValues {
        subscription_identifiers: vec![7],
        ..Default::default()
    });
    let sub = Subscribe {
        packet_id: id(1),
        properties,
        filters: vec![("a/b".into(), options)],
    };
    golden(
        V5,
        b"\x82\x0B\x00\x01\x02\x0B\x07\x00\x03a/b\x2D",
        Packet::Subscribe(sub),
    );
}

#[test]
fn suback() {
    let codes = vec![ReasonCode::GRANTED_QOS_1, ReasonCode::UNSPECIFIED_ERROR];
    let suback = SubAck {
        packet_id: id(1),
        properties: Properties::default(),
        codes,
    };
    golden(
        V311,
        &[0x90, 0x04, 0x00, 0x01, 0x01, 0x80],
        Packet::SubAck(suback),
    );
    let codes = vec![
        ReasonCode::GRANTED_QOS_0,
        ReasonCode::GRANTED_QOS_2,
        ReasonCode::WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED,
    ];
    let suback = SubAck {
        packet_id: id(1),
        properties: Properties::default(),
        codes,
    };
    golden(
        V5,
        &[0x90, 0x06, 0x00, 0x01, 0x00, 0x00, 0x02, 0xA2],
        Packet::SubAck(suback.clone()),
    );
    // 3.x has one failure code.
    assert_eq!(
        encode_vec(&Packet::SubAck(suback), V311),
        [0x90, 0x05, 0x00, 0x01, 0x00, 0x02, 0x80]
    );
}

#[test]
fn unsubscribe_and_unsuback() {
    let unsub = Unsubscribe {
        packet_id: id(1),
        properties: Properties::default(),
        filters: vec!["a".into()],
    };
    golden(
        V311,
        b"\xA2\x05\x00\x01\x00\x01a",
        Packet::Unsubscribe(unsub.clone()),
    );
    golden(
        V5,
        b"\xA2\x06\x00\x01\x00\x00\x01a",
        Packet::Unsubscribe(unsub),
    );
    let unsuback = UnsubAck {
        packet_id: id(1),
        properties: Properties::default(),
        codes: vec![],
    };
    golden(V311, &[0xB0, 0x02, 0x00, 0x01], Packet::UnsubAck(unsuback));
    let unsuback = UnsubAck {
        packet_id: id(1),
        properties: Properties::default(),
        codes: vec![ReasonCode::NO_SUBSCRIPTION_EXISTED],
    };
    golden(
        V5,
        &[0xB0, 0x04, 0x00, 0x01, 0x00, 0x11],
        Packet::UnsubAck(unsuback.clone()),
    );
    assert_eq!(
        encode_vec(&Packet::UnsubAck(unsuback), V31),
        [0xB0, 0x02, 0x00, 0x01]
    );
}

#[test]
fn ping() {
    for v in crate::VERSIONS {
        golden(v, &[0xC0, 0x00], Packet::PingReq);
        golden(v, &[0xD0, 0x00], Packet::PingResp);
    }
}

#[test]
fn disconnect() {
    let normal = Packet::Disconnect(Disconnect::new(ReasonCode::NORMAL_DISCONNECTION));
    for v in crate::VERSIONS {
        golden(v, &[0xE0, 0x00], normal.clone());
    }
    golden(
        V5,
        &[0xE0, 0x01, 0x04],
        Packet::Disconnect(Disconnect::new(ReasonCode::DISCONNECT_WITH_WILL_MESSAGE)),
    );
    let mut d = Disconnect::new(ReasonCode::NORMAL_DISCONNECTION);
    d.properties.session_expiry_interval_s = Some(0);
    golden(
        V5,
        &[0xE0, 0x07, 0x00, 0x05, 0x11, 0x00, 0x00, 0x00, 0x00],
        Packet::Disconnect(d),
    );
    // 3.x DISCONNECT has no body, whatever the reason.
    let taken_over = Packet::Disconnect(Disconnect::new(ReasonCode::SESSION_TAKEN_OVER));
    assert_eq!(encode_vec(&taken_over, V311), [0xE0, 0x00]);
}

#[test]
fn auth_v5_only() {
    let ok = Packet::Auth(Auth {
        code: ReasonCode::SUCCESS,
        properties: Properties::default(),
    });
    golden(V5, &[0xF0, 0x00], ok.clone());
    let properties = Properties::from(PropertyValues {
        authentication_method: Some(ByteStr::from("SCRAM")),
        ..Default::default()
    });
    let cont = Packet::Auth(Auth {
        code: ReasonCode::CONTINUE_AUTHENTICATION,
        properties,
    });
    golden(V5, b"\xF0\x0A\x18\x08\x15\x00\x05SCRAM", cont);
    let mut out = bytes::BytesMut::new();
    assert_eq!(
        ringmq::codec::encode(&ok, V311, &mut out),
        Err(EncodeError::NotValidForVersion(PacketKind::Auth, 4))
    );
    assert!(out.is_empty());
}
