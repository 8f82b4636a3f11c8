//! CONNECT validation: turns a decoded CONNECT into [`ConnectParams`] or the CONNACK that
//! refuses it. Pure: the shard decides take-over and session resumption afterwards.

use std::hash::{BuildHasher, Hasher};

use crate::codec::{ByteStr, Connect, Properties, ProtocolVersion, ReasonCode, Will};
use crate::config::Limits;
use crate::topic::TopicName;

/// A CONNECT that passed every check, ready for the shard to attach to a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectParams {
    pub version: ProtocolVersion,
    pub client_id: ByteStr,
    /// True when the client sent an empty id and the broker made one up; 5.0 clients are told
    /// it in CONNACK [MQTT-3.2.2-16].
    pub client_id_assigned: bool,
    pub clean_start: bool,
    pub keep_alive_s: u16,
    pub will: Option<ValidWill>,
    pub username: Option<ByteStr>,
    pub properties: Properties,
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

/// Checks the CONNECT rules that do not depend on other sessions.
pub fn validate_connect(
    connect: Connect,
    limits: &Limits,
    ids: &mut ClientIdGenerator,
) -> Result<ConnectParams, ConnectRefused> {
    let version = connect.protocol;
    let refuse = |code: ReasonCode, why: &'static str| ConnectRefused {
        code: Some(code),
        version,
        why,
    };
    let mut client_id = connect.client_id;
    let mut client_id_assigned = false;
    if client_id.is_empty() {
        match version {
            // 3.1 requires 1..=23 characters; an empty id is refused with 0x02.
            ProtocolVersion::V3_1 => {
                return Err(refuse(
                    ReasonCode::CLIENT_IDENTIFIER_NOT_VALID,
                    "empty client id",
                ))
            }
            // [MQTT-3.1.3-8]: empty id without clean session gets 0x02 and a close.
            ProtocolVersion::V3_1_1 if !connect.clean_start => {
                return Err(refuse(
                    ReasonCode::CLIENT_IDENTIFIER_NOT_VALID,
                    "empty client id without clean session",
                ))
            }
            // [MQTT-3.1.3-6]/[MQTT-3.1.3-7]; 5.0 allows it with any Clean Start.
            _ => {
                client_id = ids.next_id();
                client_id_assigned = true;
            }
        }
    }
    if client_id.len() > usize::from(limits.client_id_len_max) {
        return Err(refuse(
            ReasonCode::CLIENT_IDENTIFIER_NOT_VALID,
            "client id too long",
        ));
    }
    let will = match connect.will {
        None => None,
        Some(will) => match TopicName::new(will.topic.clone()) {
            Ok(topic) => Some(ValidWill { topic, will }),
            // 5.0 has a CONNACK code for it; 3.x has none, so the connection is just closed.
            Err(_) if version.is_v5() => {
                return Err(refuse(ReasonCode::TOPIC_NAME_INVALID, "invalid will topic"))
            }
            Err(_) => {
                return Err(ConnectRefused {
                    code: None,
                    version,
                    why: "invalid will topic",
                })
            }
        },
    };
    Ok(ConnectParams {
        version,
        client_id,
        client_id_assigned,
        clean_start: connect.clean_start,
        keep_alive_s: connect.keep_alive_s,
        will,
        username: connect.username,
        properties: connect.properties,
    })
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
