//! Inbound packets on a connected session: the QoS flows, SUBSCRIBE/UNSUBSCRIBE, PING and
//! DISCONNECT. Replies go into the connection's output buffer; anything that needs the rest of
//! the broker becomes an [`Action`].

use std::time::Instant;

use super::Outbox;

use crate::codec::{
    Ack, Packet, Properties, ProtocolVersion, Publish, QoS, ReasonCode, SubAck, Subscribe,
    UnsubAck, Unsubscribe,
};
use crate::config::Limits;
use crate::topic::{SubscriptionFilter, TopicName};

use super::{write_packet, Action, Awaiting, Message, Session, Subscription, Violation};

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
        limits: &Limits,
    ) -> Result<(), Violation> {
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
            Packet::Publish(publish) => self.handle_publish(version, publish, out, actions),
            Packet::PubAck(ack) => {
                self.complete_outbound(ack, Awaiting::PubAck);
                self.pump_queue(out, limits);
                Ok(())
            }
            Packet::PubRec(ack) => {
                self.handle_pubrec(version, ack, out);
                Ok(())
            }
            Packet::PubRel(ack) => {
                self.handle_pubrel(version, ack, out);
                Ok(())
            }
            Packet::PubComp(ack) => {
                self.complete_outbound(ack, Awaiting::PubComp);
                self.pump_queue(out, limits);
                Ok(())
            }
            Packet::Subscribe(subscribe) => {
                self.handle_subscribe(version, subscribe, out, actions, limits);
                Ok(())
            }
            Packet::Unsubscribe(unsubscribe) => {
                self.handle_unsubscribe(version, unsubscribe, out, actions);
                Ok(())
            }
            Packet::PingReq => {
                write_packet(out, version, &Packet::PingResp);
                Ok(())
            }
            Packet::Disconnect(_) => {
                self.discard_will();
                actions.push(Action::Disconnect);
                Ok(())
            }
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
        version: ProtocolVersion,
        publish: Publish,
        out: &mut Outbox,
        actions: &mut Vec<Action>,
    ) -> Result<(), Violation> {
        // [MQTT-3.3.2-2]: wildcards are not allowed in a published topic name.
        let topic = TopicName::new(publish.topic.clone()).map_err(|_| Violation {
            code: ReasonCode::TOPIC_NAME_INVALID,
            why: "invalid topic name in PUBLISH",
        })?;
        match (publish.qos, publish.packet_id) {
            (QoS::AtMostOnce, _) => {
                actions.push(Action::Publish(Message::from_publish(topic, publish)));
            }
            (QoS::AtLeastOnce, Some(id)) => {
                actions.push(Action::Publish(Message::from_publish(topic, publish)));
                // [MQTT-4.3.2-2]: PUBACK carries the PUBLISH's packet id.
                write_packet(out, version, &Packet::PubAck(Ack::new(id)));
            }
            (QoS::ExactlyOnce, Some(id)) => {
                // [MQTT-4.3.3-2] method A: route on first receipt, remember the id until PUBREL
                // so that a DUP resend is acknowledged but not routed twice.
                if self.inbound_qos2.insert(id) {
                    actions.push(Action::Publish(Message::from_publish(topic, publish)));
                }
                write_packet(out, version, &Packet::PubRec(Ack::new(id)));
            }
            (_, None) => unreachable!("codec guarantees a packet id for QoS > 0"),
        }
        Ok(())
    }

    fn handle_pubrec(&mut self, version: ProtocolVersion, ack: Ack, out: &mut Outbox) {
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
                    return;
                }
                entry.state = Awaiting::PubComp;
            }
            Some(entry) if entry.state == Awaiting::PubComp => {}
            _ => rel.code = ReasonCode::PACKET_IDENTIFIER_NOT_FOUND,
        }
        // [MQTT-4.3.3-3]: answer PUBREC with PUBREL carrying the same id.
        write_packet(out, version, &Packet::PubRel(rel));
    }

    fn handle_pubrel(&mut self, version: ProtocolVersion, ack: Ack, out: &mut Outbox) {
        let mut comp = Ack::new(ack.packet_id);
        if !self.inbound_qos2.remove(&ack.packet_id) {
            comp.code = ReasonCode::PACKET_IDENTIFIER_NOT_FOUND;
        }
        // [MQTT-4.3.3-11]: PUBCOMP even for an id we no longer hold.
        write_packet(out, version, &Packet::PubComp(comp));
    }

    /// Removes an acknowledged message from the window. An ack for an unknown id, or one in the
    /// wrong state, is ignored: it is most likely a late duplicate.
    fn complete_outbound(&mut self, ack: Ack, expected: Awaiting) {
        if let Some(index) = self
            .inflight
            .iter()
            .position(|o| o.packet_id == ack.packet_id && o.state == expected)
        {
            self.inflight.remove(index);
        }
    }

    fn handle_subscribe(
        &mut self,
        version: ProtocolVersion,
        subscribe: Subscribe,
        out: &mut Outbox,
        actions: &mut Vec<Action>,
        limits: &Limits,
    ) {
        let mut codes = Vec::with_capacity(subscribe.filters.len());
        for (raw, mut options) in subscribe.filters {
            let filter = match SubscriptionFilter::parse(raw.clone()) {
                Ok(f) if !f.is_shared() => f,
                Ok(_) => {
                    codes.push(ReasonCode::SHARED_SUBSCRIPTIONS_NOT_SUPPORTED);
                    continue;
                }
                Err(_) => {
                    codes.push(ReasonCode::TOPIC_FILTER_INVALID);
                    continue;
                }
            };
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
            codes.push(ReasonCode(options.qos as u8));
            let subscription = Subscription {
                filter: filter.clone(),
                options,
            };
            self.subscriptions.insert(raw, subscription);
            actions.push(Action::Subscribed {
                filter,
                options,
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
    }

    fn handle_unsubscribe(
        &mut self,
        version: ProtocolVersion,
        unsubscribe: Unsubscribe,
        out: &mut Outbox,
        actions: &mut Vec<Action>,
    ) {
        let mut codes = Vec::with_capacity(unsubscribe.filters.len());
        for raw in unsubscribe.filters {
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
    }
}

fn violation(why: &'static str) -> Violation {
    Violation {
        code: ReasonCode::PROTOCOL_ERROR,
        why,
    }
}
