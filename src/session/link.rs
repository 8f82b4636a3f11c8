//! The live connection bound to a session: protocol level, keep-alive, will, and what the
//! client announced it can take (5.0 Receive Maximum, Maximum Packet Size, Topic Alias
//! Maximum), plus both topic-alias maps. All of it ends with the connection: aliases are per
//! connection [MQTT-3.3.2-7], and a resumed session learns the client's limits afresh.

use std::collections::HashMap;
use std::time::Instant;

use crate::codec::{ByteStr, ProtocolVersion, ReasonCode};
use crate::config::Limits;
use crate::topic::TopicName;

use super::{ConnectParams, SessionHasher, ValidWill, Violation};

/// The live connection bound to a session. Gone while the client is offline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub version: ProtocolVersion,
    /// Zero turns keep-alive off. The server's value when it overrode the client's.
    pub(super) keep_alive_ms: u64,
    pub(super) last_packet_at: Instant,
    /// When the client last acknowledged an outbound message (or connected): a client that
    /// stops acknowledging is stalled, and no longer slows its publishers down.
    pub(super) last_ack_at: Instant,
    /// Boxed: a will with its properties is several hundred bytes, and most clients have none.
    pub(super) will: Option<Box<ValidWill>>,
    /// Outbound QoS 1/2 messages awaiting acknowledgement at most: `inflight_max`, or less if
    /// the client's Receive Maximum is smaller [MQTT-3.3.4-9].
    pub(super) window: u16,
    /// The largest packet the client accepts [MQTT-3.1.2-24]; `u32::MAX` when it set none.
    pub(super) packet_size_max: u32,
    /// Topic aliases the client accepts from us (0: none) [MQTT-3.3.2-9].
    alias_out_max: u16,
    /// Of `Outbox::pumped`, those sent at QoS 2 (only an online session pumps). Here, in the
    /// struct's padding, rather than in `Outbox` or `Session`, which every client pays for.
    pub(super) pumped_qos2: u16,
    /// The packet id allocator skipped an id still in flight since the window was last empty,
    /// or the window predates this connection: only then can a new id collide with anything
    /// but the oldest entry (`Session::allocate_packet_id`). In the padding, like the above.
    pub(super) ids_skipped: bool,
    /// Both alias maps, allocated on first use: most clients use no aliases.
    aliases: Option<Box<Aliases>>,
}

/// Topic aliases of one connection.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Aliases {
    /// Alias (index + 1) to topic, as the client set them. At most `topic_alias_max` entries.
    inbound: Vec<Option<TopicName>>,
    /// Topic to the alias we gave it. At most the client's Topic Alias Maximum entries; the
    /// first topics sent keep their aliases for the life of the connection.
    outbound: HashMap<TopicName, u16, SessionHasher>,
}

impl Link {
    pub(super) fn new(now: Instant, params: &ConnectParams, limits: &Limits) -> Link {
        let properties = &params.properties;
        let receive_maximum = properties.receive_maximum.unwrap_or(u16::MAX);
        Link {
            ids_skipped: false,
            version: params.version,
            keep_alive_ms: u64::from(params.keep_alive_s) * 1000,
            last_packet_at: now,
            last_ack_at: now,
            will: params.will.clone().map(Box::new),
            window: limits.inflight_max.min(receive_maximum),
            packet_size_max: properties.maximum_packet_size.unwrap_or(u32::MAX),
            alias_out_max: properties.topic_alias_maximum.unwrap_or(0),
            pumped_qos2: 0,
            aliases: None,
        }
    }

    /// The topic of an inbound PUBLISH, resolving and recording its Topic Alias
    /// [MQTT-3.3.2-10]..[MQTT-3.3.2-12]. `alias_max` is the maximum the broker announced.
    pub(super) fn inbound_topic(
        &mut self,
        topic: ByteStr,
        alias: Option<u16>,
        alias_max: u16,
        refuse_controls: bool,
    ) -> Result<TopicName, Violation> {
        let checked = |topic| TopicName::new_refusing_controls(topic, refuse_controls);
        let Some(alias) = alias else {
            if topic.is_empty() {
                // An empty topic is only valid with an alias.
                return Err(Violation {
                    code: ReasonCode::PROTOCOL_ERROR,
                    why: "PUBLISH with an empty topic and no topic alias",
                });
            }
            return checked(topic).map_err(topic_invalid);
        };
        if alias == 0 || alias > alias_max {
            return Err(Violation {
                code: ReasonCode::TOPIC_ALIAS_INVALID,
                why: "topic alias 0 or above the maximum we announced",
            });
        }
        let slot = usize::from(alias - 1);
        let aliases = self.aliases.get_or_insert_with(Box::default);
        if topic.is_empty() {
            return aliases
                .inbound
                .get(slot)
                .cloned()
                .flatten()
                .ok_or(Violation {
                    code: ReasonCode::PROTOCOL_ERROR,
                    why: "PUBLISH with an empty topic and an unknown topic alias",
                });
        }
        let name = checked(topic).map_err(topic_invalid)?;
        if aliases.inbound.len() <= slot {
            aliases.inbound.resize(slot + 1, None);
        }
        aliases.inbound[slot] = Some(name.clone());
        Ok(name)
    }

    /// The Topic Alias for an outbound PUBLISH on `topic`, when the client accepts them: the
    /// first use of a topic sends topic and alias (`known == false`; the caller records it with
    /// `remember_alias` once sent), later uses only the alias. Topics beyond the client's maximum always go out in full.
    pub(super) fn outbound_alias(&mut self, topic: &TopicName) -> Option<OutboundAlias> {
        if self.alias_out_max == 0 {
            return None;
        }
        let aliases = self.aliases.get_or_insert_with(Box::default);
        if let Some(&number) = aliases.outbound.get(topic) {
            return Some(OutboundAlias {
                number,
                known: true,
            });
        }
        let next = aliases.outbound.len() as u16;
        if next >= self.alias_out_max {
            return None;
        }
        Some(OutboundAlias {
            number: next + 1,
            known: false,
        })
    }

    /// Records a new alias once the PUBLISH that introduces it is written.
    pub(super) fn remember_alias(&mut self, topic: &TopicName, number: u16) {
        let aliases = self.aliases.get_or_insert_with(Box::default);
        aliases.outbound.insert(topic.clone(), number);
    }
}

/// A Topic Alias to put on an outbound PUBLISH.
pub(super) struct OutboundAlias {
    pub number: u16,
    /// The client already has the mapping: the topic may be left out.
    pub known: bool,
}

/// 0x90 (3.x: close): a control character (1.5.4: SHOULD NOT, and the receiver may refuse)
/// or a §4.7 rule.
fn topic_invalid(error: crate::topic::TopicError) -> Violation {
    Violation {
        code: ReasonCode::TOPIC_NAME_INVALID,
        why: match error {
            crate::topic::TopicError::ControlCharacter => "control character in the topic name",
            _ => "invalid topic name in PUBLISH",
        },
    }
}
