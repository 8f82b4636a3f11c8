//! Outbound messages: the inflight window, the bounded queue and resends on resume.

use std::collections::VecDeque;
use std::sync::Arc;

use super::Outbox;

use crate::codec::{Ack, Packet, Properties, ProtocolVersion, Publish, QoS};
use crate::config::Limits;

use super::{write_packet, Awaiting, Message, Outbound, Queued, Session};

/// What became of one message handed to [`Session::deliver`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Encoded into the connection's output buffer.
    Sent,
    /// Held in the session queue until the window or the client has room.
    Queued,
    /// Not delivered: QoS 0 to an offline client or a full output buffer.
    DroppedQoS0,
    /// Not delivered: the session queue is at `queued_messages_max`.
    DroppedQueueFull,
}

impl Session {
    /// Delivers a routed message at `qos` (already min(published, granted)). `retain` is the
    /// flag to send [MQTT-3.3.1-8]/[MQTT-3.3.1-9]. `out` is the connection's output buffer,
    /// `None` while the client is offline. `queue_max` is the queue bound for this message:
    /// `queued_messages_max`, or more for messages already in flight from a throttled publisher
    /// (see `shard::flow`).
    pub fn deliver(
        &mut self,
        message: &Arc<Message>,
        qos: QoS,
        retain: bool,
        out: Option<&mut Outbox>,
        limits: &Limits,
        queue_max: usize,
    ) -> Delivery {
        let version = self.link.as_ref().map(|l| l.version);
        match (qos, out, version) {
            (QoS::AtMostOnce, Some(out), Some(version)) => {
                if out.bytes.len() >= limits.outbound_buffer_max_bytes as usize {
                    return Delivery::DroppedQoS0;
                }
                let publish =
                    publish_packet(version, message, QoS::AtMostOnce, retain, None, false);
                if write_packet(out, version, &Packet::Publish(publish)) {
                    Delivery::Sent
                } else {
                    Delivery::DroppedQoS0
                }
            }
            // QoS 0 is not queued for offline clients, as mosquitto's default
            // (`queue_qos0_messages false`).
            (QoS::AtMostOnce, _, _) => Delivery::DroppedQoS0,
            (_, Some(out), Some(version))
                if self.queue.is_empty() && self.inflight.len() < limits.inflight_max as usize =>
            {
                self.send_outbound(version, message.clone(), qos, retain, out);
                Delivery::Sent
            }
            _ => {
                if self.queue.len() >= queue_max {
                    return Delivery::DroppedQueueFull;
                }
                self.queue.push_back(Queued {
                    message: message.clone(),
                    qos,
                    retain,
                });
                Delivery::Queued
            }
        }
    }

    /// Moves queued messages into the window while it has room. Returns how many were sent.
    pub(super) fn pump_queue(&mut self, out: &mut Outbox, limits: &Limits) -> usize {
        let Some(version) = self.link.as_ref().map(|l| l.version) else {
            return 0;
        };
        let mut sent = 0;
        while self.inflight.len() < limits.inflight_max as usize {
            let Some(queued) = self.queue.pop_front() else {
                break;
            };
            self.send_outbound(version, queued.message, queued.qos, queued.retain, out);
            sent += 1;
        }
        sent
    }

    /// Resends the whole window after a resume: PUBLISH with DUP for messages not yet
    /// acknowledged, PUBREL for those between PUBREC and PUBCOMP [MQTT-4.4.0-1].
    pub(super) fn resend_inflight(&mut self, out: &mut Outbox) -> usize {
        let Some(version) = self.link.as_ref().map(|l| l.version) else {
            return 0;
        };
        for entry in &self.inflight {
            let packet = match entry.state {
                Awaiting::PubComp => Packet::PubRel(Ack::new(entry.packet_id)),
                _ => Packet::Publish(publish_packet(
                    version,
                    &entry.message,
                    entry.qos,
                    entry.retain,
                    Some(entry.packet_id),
                    true,
                )),
            };
            write_packet(out, version, &packet);
        }
        self.inflight.len()
    }

    fn send_outbound(
        &mut self,
        version: ProtocolVersion,
        message: Arc<Message>,
        qos: QoS,
        retain: bool,
        out: &mut Outbox,
    ) {
        let packet_id = self.allocate_packet_id();
        let publish = publish_packet(version, &message, qos, retain, Some(packet_id), false);
        write_packet(out, version, &Packet::Publish(publish));
        let state = match qos {
            QoS::AtLeastOnce => Awaiting::PubAck,
            _ => Awaiting::PubRec,
        };
        self.inflight.push_back(Outbound {
            packet_id,
            message,
            qos,
            retain,
            state,
        });
    }

    /// Drops every queued and inflight message (a clean start, or the session ending).
    pub fn clear_pending(&mut self) {
        self.inflight.clear();
        self.queue = VecDeque::new();
        self.inbound_qos2.clear();
    }
}

/// The PUBLISH a receiver gets for `message`. Cloning the topic and payload only bumps
/// reference counts.
fn publish_packet(
    version: ProtocolVersion,
    message: &Message,
    qos: QoS,
    retain: bool,
    packet_id: Option<crate::codec::PacketId>,
    dup: bool,
) -> Publish {
    // 3.x receivers get no properties; skip the clone rather than have the encoder drop them.
    let properties = if version.is_v5() {
        message.properties.clone()
    } else {
        Properties::default()
    };
    Publish {
        dup,
        qos,
        retain,
        topic: message.topic.as_byte_str().clone(),
        packet_id,
        properties,
        payload: message.payload.clone(),
    }
}
