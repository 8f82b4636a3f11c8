//! CONNECT validation: turns a decoded CONNECT into [`ConnectParams`] or the CONNACK that
//! refuses it. Pure: the shard decides take-over and session resumption afterwards.

use std::hash::{BuildHasher, Hasher};

use bytes::Bytes;

use crate::codec::{ByteStr, Connect, Properties, ProtocolVersion, QoS, ReasonCode, Will};
use crate::config::{Limits, ProtocolOptions};
use crate::topic::{has_control_characters, TopicName};

/// A CONNECT that passed every check, ready for the shard to attach to a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectParams {
    pub version: ProtocolVersion,
    pub client_id: ByteStr,
    /// True when the client sent an empty id and the broker made one up; 5.0 clients are told
    /// it in CONNACK [MQTT-3.2.2-16].
    pub client_id_assigned: bool,
    pub clean_start: bool,
    /// The keep-alive in force: the client's, or the server's when it overrode it.
    pub keep_alive_s: u16,
    /// Set when the server overrode the client's keep-alive; told in CONNACK [MQTT-3.2.2-21].
    pub server_keep_alive_s: Option<u16>,
    /// Seconds the session outlives the connection: 5.0's Session Expiry Interval capped by
    /// `session_expiry_max_s`; for 3.x 0 (Clean Session) or `session_expiry_max_s`.
    pub session_expiry_s: u32,
    /// The client asked for a longer expiry than we keep; CONNACK says what we keep.
    pub session_expiry_capped: bool,
    pub will: Option<ValidWill>,
    pub username: Option<ByteStr>,
    pub properties: Properties,
    /// Enhanced authentication that succeeded: the method, and the data for CONNACK.
    pub auth: Option<(ByteStr, Option<Bytes>)>,
}

/// A will whose topic passed topic-name validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidWill {
    pub topic: TopicName,
    pub will: Will,
}

/// Why a CONNECT was refused: the CONNACK code to send (if any) before closing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectRefused {
    /// `None` when the protocol says to close without answering.
    pub code: Option<ReasonCode>,
    /// The level to encode the CONNACK at.
    pub version: ProtocolVersion,
    pub why: &'static str,
}

/// Makes up client identifiers for clients that send an empty one. Random per process so that
/// two broker runs do not hand out the same ids to different devices.
#[derive(Debug)]
pub struct ClientIdGenerator {
    prefix: u64,
    counter: u64,
}

impl ClientIdGenerator {
    pub fn new() -> ClientIdGenerator {
        let prefix = std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish();
        ClientIdGenerator { prefix, counter: 0 }
    }

    pub fn next_id(&mut self) -> ByteStr {
        self.counter += 1;
        // 23 characters at most so that even strict 3.1-era clients accept it [MQTT-3.1.3-5].
        ByteStr::from(format!(
            "auto-{:08x}{:08x}",
            self.prefix as u32, self.counter as u32
        ))
    }
}

impl Default for ClientIdGenerator {
    fn default() -> ClientIdGenerator {
        ClientIdGenerator::new()
    }
}

/// A refusal before the level is attached: the CONNACK code (`None`: close without one) and
/// why.
type Refusal = (Option<ReasonCode>, &'static str);

/// Checks the CONNECT rules that do not depend on other sessions.
pub fn validate_connect(
    connect: Connect,
    limits: &Limits,
    protocol: &ProtocolOptions,
    ids: &mut ClientIdGenerator,
) -> Result<ConnectParams, ConnectRefused> {
    let version = connect.protocol;
    let refuse = |(code, why): Refusal| ConnectRefused { code, version, why };
    check_properties(&connect.properties).map_err(refuse)?;
    let (client_id, client_id_assigned) =
        client_id(&connect, limits, protocol, ids).map_err(refuse)?;
    let refuses_controls = !protocol.allow_control_characters;
    if refuses_controls
        && connect
            .username
            .as_ref()
            .is_some_and(|u| has_control_characters(u.as_str()))
    {
        // 1.5.4: SHOULD NOT; the user name is not accepted: 0x86 (3.x: 0x04), the code for
        // exactly that. The packet parses, so not 0x81.
        return Err(refuse((
            Some(ReasonCode::BAD_USER_NAME_OR_PASSWORD),
            "control character in the user name",
        )));
    }
    let keep_alive_max = protocol.keep_alive_max_s;
    let mut keep_alive_s = connect.keep_alive_s;
    let mut server_keep_alive_s = None;
    let over = keep_alive_s > keep_alive_max || (keep_alive_s == 0 && keep_alive_max < u16::MAX);
    if over && version.is_v5() {
        keep_alive_s = keep_alive_max;
        server_keep_alive_s = Some(keep_alive_max);
    } else if keep_alive_s > keep_alive_max {
        // 3.x cannot be told a different keep-alive: refuse, as mosquitto's `max_keepalive`.
        return Err(refuse((
            Some(ReasonCode::CLIENT_IDENTIFIER_NOT_VALID),
            "keep-alive above keep_alive_max_s",
        )));
    }
    let requested_expiry_s = match version {
        ProtocolVersion::V5 => connect.properties.session_expiry_interval_s.unwrap_or(0),
        _ if connect.clean_start => 0,
        _ => u32::MAX,
    };
    let session_expiry_s = requested_expiry_s.min(protocol.session_expiry_max_s);
    let will = match connect.will {
        None => None,
        Some(will) => Some(check_will(will, version, protocol).map_err(refuse)?),
    };
    Ok(ConnectParams {
        version,
        client_id,
        client_id_assigned,
        clean_start: connect.clean_start,
        keep_alive_s,
        server_keep_alive_s,
        session_expiry_s,
        session_expiry_capped: version.is_v5() && requested_expiry_s > session_expiry_s,
        will,
        username: connect.username,
        properties: connect.properties,
        auth: None,
    })
}

/// The 5.0 CONNECT property rules between properties (each one alone was checked by the
/// codec). Empty for 3.x, which has no properties.
fn check_properties(properties: &Properties) -> Result<(), Refusal> {
    if properties.authentication_data.is_some() && properties.authentication_method.is_none() {
        // 3.1.2.11.10: Authentication Data without Authentication Method is a Protocol Error.
        return Err((
            Some(ReasonCode::PROTOCOL_ERROR),
            "authentication data without an authentication method",
        ));
    }
    Ok(())
}

/// The client id to use, and whether the broker made it up.
fn client_id(
    connect: &Connect,
    limits: &Limits,
    protocol: &ProtocolOptions,
    ids: &mut ClientIdGenerator,
) -> Result<(ByteStr, bool), Refusal> {
    let invalid = |why| Err((Some(ReasonCode::CLIENT_IDENTIFIER_NOT_VALID), why));
    let client_id = &connect.client_id;
    if client_id.is_empty() {
        return match connect.protocol {
            // 3.1 requires 1..=23 characters; an empty id is refused with 0x02.
            ProtocolVersion::V3_1 => invalid("empty client id"),
            // [MQTT-3.1.3-8]: empty id without clean session gets 0x02 and a close.
            ProtocolVersion::V3_1_1 if !connect.clean_start => {
                invalid("empty client id without clean session")
            }
            // [MQTT-3.1.3-6]/[MQTT-3.1.3-7]; 5.0 allows it with any Clean Start.
            _ => Ok((ids.next_id(), true)),
        };
    }
    if client_id.len() > usize::from(limits.client_id_len_max) {
        // [MQTT-3.1.3-5] the server may refuse a long id: 0x85 (3.x: 0x02).
        return invalid("client id too long");
    }
    if !protocol.allow_control_characters && has_control_characters(client_id.as_str()) {
        // 1.5.4: SHOULD NOT, and the server may refuse: "a valid string but not allowed by
        // the Server" is 0x85 (3.x: 0x02 identifier rejected).
        return invalid("control character in the client id");
    }
    Ok((client_id.clone(), false))
}

/// The will's topic names, then the rules that depend on what the server announced
/// [MQTT-3.2.2-12]/[MQTT-3.2.2-13], and 5.0's payload format check.
fn check_will(
    will: Will,
    version: ProtocolVersion,
    protocol: &ProtocolOptions,
) -> Result<ValidWill, Refusal> {
    let controls =
        !protocol.allow_control_characters && has_control_characters(will.topic.as_str());
    let topic = match TopicName::new(will.topic.clone()) {
        // 1.5.4: control characters SHOULD NOT be used; refused like any other will topic the
        // server does not accept.
        Ok(topic) if !controls => topic,
        // 5.0 has a CONNACK code for it; 3.x has none, so the connection is just closed.
        _ => {
            let code = version.is_v5().then_some(ReasonCode::TOPIC_NAME_INVALID);
            return Err((code, "invalid will topic"));
        }
    };
    if let Some(response_topic) = &will.properties.response_topic {
        // A Response Topic is a topic name: at least one character [MQTT-4.7.3-1] and no
        // wildcards [MQTT-3.3.2-14]. The CONNECT parses, so breaking that is a Protocol
        // Error (4.13), not a Malformed Packet; 0x90 is reserved for the Will Topic itself.
        if TopicName::new(response_topic.clone()).is_err() {
            return Err((
                Some(ReasonCode::PROTOCOL_ERROR),
                "invalid will response topic",
            ));
        }
    }
    if will.qos as u8 > protocol.maximum_qos {
        return Err((
            Some(ReasonCode::QOS_NOT_SUPPORTED),
            "will QoS above the maximum QoS",
        ));
    }
    if will.retain && !protocol.retain_available {
        return Err((
            Some(ReasonCode::RETAIN_NOT_SUPPORTED),
            "retained will while retain is off",
        ));
    }
    if will.properties.payload_format_indicator == Some(1)
        && std::str::from_utf8(&will.payload).is_err()
    {
        return Err((
            Some(ReasonCode::PAYLOAD_FORMAT_INVALID),
            "will payload is not UTF-8",
        ));
    }
    Ok(ValidWill { topic, will })
}

/// CONNACK's properties for an accepted 5.0 client: everything the server limits, so that the
/// client knows what it will be held to (empty for 3.x, which has no properties).
pub fn connack_properties(
    params: &ConnectParams,
    limits: &Limits,
    protocol: &ProtocolOptions,
) -> Properties {
    let mut properties = Properties::default();
    if !params.version.is_v5() {
        return properties;
    }
    let unavailable = |on: bool| (!on).then_some(0u8);
    if params.client_id_assigned {
        // [MQTT-3.2.2-16]
        properties.assigned_client_identifier = Some(params.client_id.clone());
    }
    properties.server_keep_alive_s = params.server_keep_alive_s;
    if params.session_expiry_capped {
        properties.session_expiry_interval_s = Some(params.session_expiry_s);
    }
    properties.receive_maximum =
        (protocol.receive_maximum != u16::MAX).then_some(protocol.receive_maximum);
    properties.maximum_qos =
        (protocol.maximum_qos < QoS::ExactlyOnce as u8).then_some(protocol.maximum_qos);
    properties.retain_available = unavailable(protocol.retain_available);
    properties.maximum_packet_size = Some(limits.packet_size_max);
    properties.topic_alias_maximum =
        (protocol.topic_alias_max > 0).then_some(protocol.topic_alias_max);
    properties.wildcard_subscription_available = unavailable(protocol.wildcard_subscriptions);
    properties.subscription_identifier_available = unavailable(protocol.subscription_identifiers);
    properties.shared_subscription_available = unavailable(protocol.shared_subscriptions);
    if params.properties.request_response_information == Some(1)
        && !protocol.response_information_prefix.is_empty()
    {
        properties.response_information = Some(ByteStr::from(format!(
            "{}{}",
            protocol.response_information_prefix, params.client_id
        )));
    }
    if let Some((method, data)) = &params.auth {
        properties.authentication_method = Some(method.clone());
        properties.authentication_data = data.clone();
    }
    properties
}

impl ConnectRefused {
    /// The CONNACK that refuses the connection, if one is sent.
    pub fn connack(&self) -> Option<crate::codec::ConnAck> {
        self.code.map(|code| crate::codec::ConnAck {
            session_present: false,
            code,
            properties: Properties::default(),
        })
    }
}
