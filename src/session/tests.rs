//! Session-layer rules, table-driven and without a shard: CONNECT validation and the answers
//! to packets of a connected session, on a virtual clock.

use bytes::Bytes;

use crate::codec::{ByteStr, Connect, Properties, ProtocolVersion, QoS, ReasonCode, Will};
use crate::config::{Limits, ProtocolOptions};

use super::{validate_connect, ClientIdGenerator, ConnectRefused};

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
