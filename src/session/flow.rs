//! Inbound packets on a connected session: the QoS flows, SUBSCRIBE/UNSUBSCRIBE, PING and
//! DISCONNECT. Replies go into the connection's output buffer; anything that needs the rest of
//! the broker becomes an [`Action`].

use std::time::Instant;

use super::Outbox;

use crate::auth::acl::SubscribeVerdict;
use crate::auth::Access;
use crate::codec::{
    Ack, Disconnect, Packet, Properties, ProtocolVersion, Publish, QoS, ReasonCode, SubAck,
    Subscribe, UnsubAck, Unsubscribe,
};
use crate::config::{Limits, ProtocolOptions};
use crate::topic::{has_control_characters, SubscriptionFilter, TopicError};

use super::{
    write_packet, Action, Awaiting, Message, Reply, Rules, Session, Subscription, Violation,
};

impl Session {
    /// Handles one packet from the attached connection.
    ///
    /// `Err` means the client broke the protocol and the connection must close (with its will
    /// published). Replies already written to `out` before the error are still sent.
    pub fn handle_packet(
        &mut self,
        now: Instant,
        packet: Packet,
        out: &mut Outbox,
        actions: &mut Vec<Action>,
        rules: Rules<'_>,
    ) -> Result<(), Violation> {
        let Rules {
            limits,
            protocol,
            access,
        } = rules;
        let link = self
            .link
            .as_mut()
            .expect("handle_packet on a session without a connection");
        // Any control packet resets the keep-alive timer [MQTT-3.1.2-23].
        link.last_packet_at = now;
        if matches!(
            packet,
            Packet::PubAck(_) | Packet::PubRec(_) | Packet::PubComp(_)
        ) {
            link.last_ack_at = now;
        }
        let version = link.version;
        match packet {
            Packet::Publish(publish) => {
                self.handle_publish(now, version, publish, out, actions, protocol)
            }
            Packet::PubAck(ack) => {
                self.complete_outbound(ack, Awaiting::PubAck)?;
                self.pump_queue(now, out, limits);
                Ok(())
            }
            Packet::PubRec(ack) => self.handle_pubrec(version, ack, out),
            Packet::PubRel(ack) => {
                self.handle_pubrel(version, ack, out);
                Ok(())
            }
            Packet::PubComp(ack) => {
                self.complete_outbound(ack, Awaiting::PubComp)?;
                self.pump_queue(now, out, limits);
                Ok(())
            }
            Packet::Subscribe(subscribe) => {
                self.handle_subscribe(version, subscribe, out, actions, limits, protocol, access)
            }
            Packet::Unsubscribe(unsubscribe) => {
                self.handle_unsubscribe(version, unsubscribe, out, actions, protocol)
            }
            Packet::PingReq => {
                write_packet(out, version, &Packet::PingResp);
                Ok(())
            }
            Packet::Disconnect(disconnect) => self.handle_disconnect(disconnect, actions, protocol),
            // [MQTT-3.1.0-2]: a second CONNECT is a protocol violation.
            Packet::Connect(_) => Err(violation("second CONNECT")),
            Packet::Auth(_) => Err(violation("AUTH without an authentication method")),
            Packet::ConnAck(_) | Packet::SubAck(_) | Packet::UnsubAck(_) | Packet::PingResp => {
                Err(violation("server-to-client packet sent by a client"))
            }
        }
    }

    fn handle_publish(
        &mut self,
        now: Instant,
        version: ProtocolVersion,
        publish: Publish,
        out: &mut Outbox,
        actions: &mut Vec<Action>,
        protocol: &ProtocolOptions,
    ) -> Result<(), Violation> {
        if publish.qos as u8 > protocol.maximum_qos {
            // [MQTT-3.2.2-11]: above the Maximum QoS we announced.
            return Err(Violation {
                code: ReasonCode::QOS_NOT_SUPPORTED,
                why: "PUBLISH above the maximum QoS",
            });
        }
        if publish.retain && !protocol.retain_available {
            // [MQTT-3.2.2-14]
            return Err(Violation {
                code: ReasonCode::RETAIN_NOT_SUPPORTED,
                why: "retained PUBLISH while retain is not available",
            });
        }
        let link = self
            .link
            .as_mut()
            .expect("handle_publish needs a connection");
        // [MQTT-3.3.2-2]: wildcards are not allowed in a published topic name.
        let topic = link.inbound_topic(
            publish.topic.clone(),
            publish.properties.topic_alias,
            protocol.topic_alias_max,
            !protocol.allow_control_characters,
        )?;
        // [MQTT-3.3.2-4]: a payload announced as UTF-8 must be UTF-8; we check it once here
        // rather than have every receiver find out.
        let payload_ok = publish.properties.payload_format_indicator != Some(1)
            || std::str::from_utf8(&publish.payload).is_ok();
        let code = if payload_ok {
            ReasonCode::SUCCESS
        } else {
            ReasonCode::PAYLOAD_FORMAT_INVALID
        };
        match (publish.qos, publish.packet_id) {
            (QoS::AtMostOnce, _) => {
                if payload_ok {
                    let message = Message::from_publish(topic, publish, now);
                    actions.push(Action::Publish(message, None));
                }
            }
            (QoS::AtLeastOnce, Some(id)) if payload_ok => {
                // [MQTT-4.3.2-2]: PUBACK carries the PUBLISH's packet id; the shard writes it
                // once it knows whether anyone subscribed.
                let message = Message::from_publish(topic, publish, now);
                actions.push(Action::Publish(message, Some(Reply::PubAck(id))));
            }
            (QoS::AtLeastOnce, Some(id)) => {
                write_packet(out, version, &Packet::PubAck(ack_with(id, code)));
            }
            (QoS::ExactlyOnce, Some(id)) => {
                if !payload_ok {
                    // A PUBREC with an error code ends the flow, so no id is held.
                    write_packet(out, version, &Packet::PubRec(ack_with(id, code)));
                    return Ok(());
                }
                // [MQTT-4.3.3-2] method A: route on first receipt, remember the id until PUBREL
                // so that a DUP resend is acknowledged but not routed twice.
                if !self.inbound_qos2.contains(&id) {
                    if self.inbound_qos2.len() >= usize::from(protocol.receive_maximum) {
                        // [MQTT-3.3.4-7]: more unreleased QoS 2 than our Receive Maximum.
                        return Err(Violation {
                            code: ReasonCode::RECEIVE_MAXIMUM_EXCEEDED,
                            why: "more unreleased QoS 2 messages than the receive maximum",
                        });
                    }
                    self.inbound_qos2.insert(id);
                    let message = Message::from_publish(topic, publish, now);
                    actions.push(Action::Publish(message, Some(Reply::PubRec(id))));
                } else {
                    write_packet(out, version, &Packet::PubRec(Ack::new(id)));
                }
            }
            (_, None) => unreachable!("codec guarantees a packet id for QoS > 0"),
        }
        Ok(())
    }

    /// DISCONNECT from the client: no will unless it asks for it with 0x04 [MQTT-3.1.2-10],
    /// and perhaps a new Session Expiry Interval, which may not turn a session that ends at
    /// disconnect into one that persists (a protocol error, section 3.14.2.2.2).
    fn handle_disconnect(
        &mut self,
        disconnect: Disconnect,
        actions: &mut Vec<Action>,
        protocol: &ProtocolOptions,
    ) -> Result<(), Violation> {
        if disconnect.code != ReasonCode::DISCONNECT_WITH_WILL_MESSAGE {
            self.discard_will();
        }
        if let Some(expiry_s) = disconnect.properties.session_expiry_interval_s {
            if self.expiry_s == 0 && expiry_s > 0 {
                return Err(violation(
                    "DISCONNECT sets a session expiry on a session that had none",
                ));
            }
            self.expiry_s = expiry_s.min(protocol.session_expiry_max_s);
        }
        actions.push(Action::Disconnect);
        Ok(())
    }

    fn handle_pubrec(
        &mut self,
        version: ProtocolVersion,
        ack: Ack,
        out: &mut Outbox,
    ) -> Result<(), Violation> {
        let mut rel = Ack::new(ack.packet_id);
        let found = self
            .inflight
            .iter_mut()
            .find(|o| o.packet_id == ack.packet_id);
        match found {
            Some(entry) if entry.state == Awaiting::PubRec => {
                if ack.code.is_error() {
                    // 5.0: an error PUBREC ends the flow; no PUBREL follows [MQTT-4.3.3-4].
                    self.inflight.retain(|o| o.packet_id != ack.packet_id);
                    return Ok(());
                }
                entry.state = Awaiting::PubComp;
            }
            Some(entry) if entry.state == Awaiting::PubComp => {}
            // A QoS 1 message is answered by PUBACK alone [MQTT-4.3.2]: no duplicate or
            // race makes it PUBREC.
            Some(_) => return Err(violation("PUBREC for a QoS 1 message")),
            None => rel.code = ReasonCode::PACKET_IDENTIFIER_NOT_FOUND,
        }
        // [MQTT-4.3.3-3]: answer PUBREC with PUBREL carrying the same id.
        write_packet(out, version, &Packet::PubRel(rel));
        Ok(())
    }

    /// Forgets an inbound QoS 2 id whose PUBREC refused the message (5.0, e.g. 0x87 Not
    /// authorized): an error PUBREC ends the flow [MQTT-4.3.3-4], so no PUBREL will free it.
    pub fn forget_inbound_qos2(&mut self, id: crate::codec::PacketId) {
        self.inbound_qos2.remove(&id);
    }

    fn handle_pubrel(&mut self, version: ProtocolVersion, ack: Ack, out: &mut Outbox) {
        let mut comp = Ack::new(ack.packet_id);
        if !self.inbound_qos2.remove(&ack.packet_id) {
            comp.code = ReasonCode::PACKET_IDENTIFIER_NOT_FOUND;
        }
        // [MQTT-4.3.3-11]: PUBCOMP even for an id we no longer hold.
        write_packet(out, version, &Packet::PubComp(comp));
    }

    /// Removes an acknowledged message from the window. An ack for an id not in flight is
    /// ignored: it is most likely a late duplicate. So is PUBCOMP before PUBREC, the right
    /// flow out of order. The other QoS's ack for an id in flight is a protocol violation: a
    /// QoS 1 message is answered by PUBACK [MQTT-4.3.2], a QoS 2 one by PUBREC and PUBCOMP
    /// [MQTT-4.3.3], and no duplicate or race mixes them up.
    fn complete_outbound(&mut self, ack: Ack, expected: Awaiting) -> Result<(), Violation> {
        let Some((index, state)) = self
            .inflight
            .iter()
            .enumerate()
            .find(|(_, o)| o.packet_id == ack.packet_id)
            .map(|(index, o)| (index, o.state))
        else {
            return Ok(());
        };
        if state == expected {
            self.inflight.remove(index);
        } else if (state == Awaiting::PubAck) != (expected == Awaiting::PubAck) {
            return Err(violation(match expected {
                Awaiting::PubAck => "PUBACK for a QoS 2 message",
                _ => "PUBCOMP for a QoS 1 message",
            }));
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn handle_subscribe(
        &mut self,
        version: ProtocolVersion,
        subscribe: Subscribe,
        out: &mut Outbox,
        actions: &mut Vec<Action>,
        limits: &Limits,
        protocol: &ProtocolOptions,
        access: &Access,
    ) -> Result<(), Violation> {
        let id = subscribe
            .properties
            .subscription_identifiers
            .first()
            .copied()
            .unwrap_or(0);
        if id != 0 && !protocol.subscription_identifiers {
            // We announced Subscription Identifier Available = 0 [MQTT-3.2.2.3.12].
            return Err(Violation {
                code: ReasonCode::SUBSCRIPTION_IDENTIFIERS_NOT_SUPPORTED,
                why: "subscription identifier while they are not available",
            });
        }
        let mut codes = Vec::with_capacity(subscribe.filters.len());
        for (raw, mut options) in subscribe.filters {
            let filter = match parse_filter(raw.clone(), protocol) {
                Ok(f) => f,
                Err(_) => {
                    codes.push(ReasonCode::TOPIC_FILTER_INVALID);
                    continue;
                }
            };
            check_features(&filter, options, protocol)?;
            // The ACL decides on the filter without any `$share/<group>/` prefix, as for a
            // plain subscription: the group changes who receives, not what may be read.
            let verdict = access.subscribe_verdict(self.subject(), filter.filter().as_str());
            if verdict == SubscribeVerdict::Denied {
                // 5.0: 0x87 Not authorized; 3.x: 0x80 Failure (the encoder maps it).
                codes.push(ReasonCode::NOT_AUTHORIZED);
                continue;
            }
            let existed = self.subscriptions.contains_key(&raw);
            if !existed && self.subscriptions.len() >= limits.subscriptions_per_session_max as usize
            {
                codes.push(ReasonCode::QUOTA_EXCEEDED);
                continue;
            }
            if version != ProtocolVersion::V5 {
                // 3.x has only a QoS in the options byte; keep the 5.0 defaults for the rest.
                options = crate::codec::SubscriptionOptions {
                    qos: options.qos,
                    ..Default::default()
                };
            }
            // [MQTT-3.2.2-9]: never grant more than the Maximum QoS we announced.
            options.qos = options
                .qos
                .min(QoS::from_u8(protocol.maximum_qos).unwrap_or(QoS::ExactlyOnce));
            codes.push(ReasonCode(options.qos as u8));
            let subscription = Subscription {
                filter: filter.clone(),
                options,
                id,
                read_check: verdict == SubscribeVerdict::CheckEach,
            };
            let params = subscription.params();
            self.subscriptions.insert(raw, subscription);
            actions.push(Action::Subscribed {
                filter,
                params,
                existed,
            });
        }
        // [MQTT-3.8.4-1]/[MQTT-3.8.4-5]: one SUBACK, one code per filter, in order.
        let suback = SubAck {
            packet_id: subscribe.packet_id,
            properties: Properties::default(),
            codes,
        };
        write_packet(out, version, &Packet::SubAck(suback));
        Ok(())
    }

    fn handle_unsubscribe(
        &mut self,
        version: ProtocolVersion,
        unsubscribe: Unsubscribe,
        out: &mut Outbox,
        actions: &mut Vec<Action>,
        protocol: &ProtocolOptions,
    ) -> Result<(), Violation> {
        if unsubscribe.filters.iter().any(|raw| raw.is_empty()) {
            // [MQTT-4.7.3-1]: a filter is at least one character. Checked before anything is
            // removed, so a refused UNSUBSCRIBE changes nothing. The packet parsed, so this is
            // a Protocol Error (4.13), not a Malformed Packet.
            return Err(violation("UNSUBSCRIBE with an empty topic filter"));
        }
        let refuses_controls = !protocol.allow_control_characters;
        let has_controls =
            |raw: &crate::codec::ByteStr| refuses_controls && has_control_characters(raw.as_str());
        if version != ProtocolVersion::V5 && unsubscribe.filters.iter().any(has_controls) {
            // 3.x UNSUBACK has no code to refuse a filter with, so 1.5.3's MAY close.
            return Err(Violation {
                code: ReasonCode::TOPIC_FILTER_INVALID,
                why: "control character in a topic filter",
            });
        }
        let mut codes = Vec::with_capacity(unsubscribe.filters.len());
        for raw in unsubscribe.filters {
            if has_controls(&raw) {
                // 5.0 1.5.4: refused with 0x8F, "correctly formed but not allowed".
                codes.push(ReasonCode::TOPIC_FILTER_INVALID);
                continue;
            }
            match self.subscriptions.remove(&raw) {
                Some(subscription) => {
                    codes.push(ReasonCode::SUCCESS);
                    actions.push(Action::Unsubscribed(subscription.filter));
                }
                None => codes.push(ReasonCode::NO_SUBSCRIPTION_EXISTED),
            }
        }
        // [MQTT-3.10.4-4]: UNSUBACK even when nothing was removed.
        let unsuback = UnsubAck {
            packet_id: unsubscribe.packet_id,
            properties: Properties::default(),
            codes,
        };
        write_packet(out, version, &Packet::UnsubAck(unsuback));
        Ok(())
    }
}

/// A SUBSCRIBE topic filter, refused with the rules of `topic` and, unless allowed, for
/// control characters (1.5.4: SHOULD NOT; SUBACK 0x8F, 3.x 0x80).
fn parse_filter(
    raw: crate::codec::ByteStr,
    protocol: &ProtocolOptions,
) -> Result<SubscriptionFilter, TopicError> {
    if !protocol.allow_control_characters && has_control_characters(raw.as_str()) {
        return Err(TopicError::ControlCharacter);
    }
    SubscriptionFilter::parse(raw)
}

/// The SUBSCRIBE features a server may turn off, and No Local on a shared subscription.
fn check_features(
    filter: &SubscriptionFilter,
    options: crate::codec::SubscriptionOptions,
    protocol: &ProtocolOptions,
) -> Result<(), Violation> {
    if filter.is_shared() && options.no_local {
        // [MQTT-3.8.3-4]
        return Err(violation("No Local on a shared subscription"));
    }
    if filter.is_shared() && !protocol.shared_subscriptions {
        return Err(Violation {
            code: ReasonCode::SHARED_SUBSCRIPTIONS_NOT_SUPPORTED,
            why: "shared subscription while they are not available",
        });
    }
    if filter.filter().has_wildcards() && !protocol.wildcard_subscriptions {
        return Err(Violation {
            code: ReasonCode::WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED,
            why: "wildcard subscription while they are not available",
        });
    }
    Ok(())
}

fn ack_with(packet_id: crate::codec::PacketId, code: ReasonCode) -> Ack {
    let mut ack = Ack::new(packet_id);
    ack.code = code;
    ack
}

fn violation(why: &'static str) -> Violation {
    Violation {
        code: ReasonCode::PROTOCOL_ERROR,
        why,
    }
}
