//! Outbound messages: the inflight window, the bounded queue, resends on resume, and the 5.0
//! rules on the way out (Message Expiry, the client's Receive Maximum and Maximum Packet Size,
//! Subscription Identifiers, outbound Topic Aliases).

use std::time::Instant;

use super::Outbox;

use crate::codec::{
    encode_publish_view, publish_view_len, Ack, Packet, PacketId, Properties, PublishView, QoS,
};
use crate::config::Limits;

use super::{write_packet, Awaiting, Envelope, Link, Outbound, Session};

/// What became of one message handed to [`Session::deliver`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Encoded into the connection's output buffer.
    Sent,
    /// Held in the session queue until the window or the client has room.
    Queued,
    /// Not delivered: QoS 0 to an offline client or a full output buffer.
    DroppedQoS0,
    /// Not delivered: the session queue is at `queued_messages_max` or `queued_bytes_max`.
    DroppedQueueFull,
    /// Not delivered: its Message Expiry Interval had passed [MQTT-3.3.2-5].
    Expired,
    /// Not delivered: larger than the client's Maximum Packet Size [MQTT-3.1.2-25].
    TooLarge,
}

/// Whether an encoded PUBLISH went out.
enum Written {
    Sent,
    /// Over the client's Maximum Packet Size: dropped "as if sent" [MQTT-3.1.2-25].
    TooLarge,
}

impl Session {
    /// Delivers one copy of a routed message. `out` is the connection's output buffer, `None`
    /// while the client is offline. `queue_max` is the queue bound for this message:
    /// `queued_messages_max`, or more for messages already in flight from a throttled publisher
    /// (see `shard::flow`).
    pub fn deliver(
        &mut self,
        now: Instant,
        envelope: Envelope,
        out: Option<&mut Outbox>,
        limits: &Limits,
        queue_max: usize,
    ) -> Delivery {
        if envelope.message.is_expired(now) {
            return Delivery::Expired;
        }
        let window = self.link.as_ref().map(|l| l.window as usize);
        match (envelope.qos, out, window) {
            (QoS::AtMostOnce, Some(out), Some(_)) => {
                if out.bytes.len() >= limits.outbound_buffer_max_bytes as usize {
                    return Delivery::DroppedQoS0;
                }
                let link = self.link.as_mut().expect("online: window is set");
                match write_publish(link, now, &envelope, None, false, out) {
                    Written::Sent => Delivery::Sent,
                    Written::TooLarge => Delivery::TooLarge,
                }
            }
            // QoS 0 is not queued for offline clients, as mosquitto's default
            // (`queue_qos0_messages false`).
            (QoS::AtMostOnce, _, _) => Delivery::DroppedQoS0,
            (_, Some(out), Some(window))
                if self.queue.is_empty() && self.inflight.len() < window =>
            {
                self.send_outbound(now, envelope, out)
            }
            _ => {
                let bytes = self.queue.bytes() + super::lazy::Weigh::weight(&envelope);
                if self.queue.len() >= queue_max || bytes > u64::from(limits.queued_bytes_max) {
                    return Delivery::DroppedQueueFull;
                }
                self.queue.push_back(envelope);
                Delivery::Queued
            }
        }
    }

    /// Moves queued messages into the window while it has room. Expired ones are dropped on the
    /// way [MQTT-3.3.2-5] and counted in `out.dropped`; those sent are counted in
    /// `out.pumped`. Returns how many were sent.
    pub(super) fn pump_queue(&mut self, now: Instant, out: &mut Outbox, _limits: &Limits) -> usize {
        let Some(window) = self.link.as_ref().map(|l| l.window as usize) else {
            return 0;
        };
        let mut sent = 0;
        while self.inflight.len() < window {
            let Some(envelope) = self.queue.pop_front() else {
                break;
            };
            if envelope.message.is_expired(now) {
                out.dropped = out.dropped.saturating_add(1);
                continue;
            }
            let exactly_once = envelope.qos == QoS::ExactlyOnce;
            match self.send_outbound(now, envelope, out) {
                Delivery::Sent => {
                    sent += 1;
                    out.pumped = out.pumped.saturating_add(1);
                    if let Some(link) = self.link.as_mut().filter(|_| exactly_once) {
                        link.pumped_qos2 = link.pumped_qos2.saturating_add(1);
                    }
                }
                _ => self.dropped_too_large = self.dropped_too_large.saturating_add(1),
            }
        }
        sent
    }

    /// Resends the whole window after a resume: PUBLISH with DUP for messages not yet
    /// acknowledged, PUBREL for those between PUBREC and PUBCOMP [MQTT-4.4.0-1].
    pub(super) fn resend_inflight(&mut self, now: Instant, out: &mut Outbox) -> usize {
        self.fit_window();
        let Some(link) = self.link.as_mut() else {
            return 0;
        };
        let mut too_large = Vec::new();
        for entry in self.inflight.iter() {
            match entry.state {
                Awaiting::PubComp => {
                    write_packet(
                        out,
                        link.version,
                        &Packet::PubRel(Ack::new(entry.packet_id)),
                    );
                }
                _ => {
                    let written =
                        write_publish(link, now, &entry.envelope, Some(entry.packet_id), true, out);
                    if matches!(written, Written::TooLarge) {
                        too_large.push(entry.packet_id);
                    }
                }
            }
        }
        if !too_large.is_empty() {
            // The client came back with a smaller Maximum Packet Size: a resend that no longer
            // fits is dropped as the first send would have been [MQTT-3.1.2-25]. Its ack can
            // never come, so it leaves the window (counted) instead of holding a slot until
            // the session ends; enough of them would wedge the session.
            self.inflight.retain(|o| !too_large.contains(&o.packet_id));
            let dropped = u16::try_from(too_large.len()).unwrap_or(u16::MAX);
            self.dropped_too_large = self.dropped_too_large.saturating_add(dropped);
        }
        self.inflight.len()
    }

    /// A client may come back with a smaller Receive Maximum than the window it left with
    /// [MQTT-3.3.4-9]: unacknowledged QoS 1 messages beyond the new window go back to the head
    /// of the queue, in order, and are sent again (as new deliveries) when the window has room.
    /// QoS 2 messages keep their place and packet id: a second delivery under a new id could
    /// reach the application twice.
    fn fit_window(&mut self) {
        let Some(window) = self.link.as_ref().map(|l| l.window as usize) else {
            return;
        };
        let mut index = self.inflight.len();
        while self.inflight.len() > window && index > 0 {
            index -= 1;
            let entry = self.inflight.get(index).expect("index is in range");
            if entry.state == Awaiting::PubAck {
                let entry = self.inflight.remove(index).expect("index is in range");
                self.queue.push_front(entry.envelope);
            }
        }
    }

    fn send_outbound(&mut self, now: Instant, envelope: Envelope, out: &mut Outbox) -> Delivery {
        let packet_id = self.allocate_packet_id();
        let link = self
            .link
            .as_mut()
            .expect("send_outbound needs a connection");
        match write_publish(link, now, &envelope, Some(packet_id), false, out) {
            Written::Sent => {}
            // [MQTT-3.1.2-25]: discarded as if delivered, so it takes no window slot.
            Written::TooLarge => return Delivery::TooLarge,
        }
        let state = match envelope.qos {
            QoS::AtLeastOnce => Awaiting::PubAck,
            _ => Awaiting::PubRec,
        };
        self.inflight.push_back(Outbound {
            packet_id,
            envelope,
            state,
        });
        Delivery::Sent
    }

    /// Drops every queued and inflight message (a clean start, or the session ending).
    pub fn clear_pending(&mut self) {
        self.inflight.clear();
        self.queue.clear();
        self.inbound_qos2.clear();
    }

    /// Takes out every message routed to this session through a shared subscription and not
    /// yet delivered, so that another member of the group gets it: queued ones, and QoS 1
    /// ones sent but unacknowledged (section 4.8.2 allows either). A QoS 2 message once sent
    /// stays with this session: it must be completed with this client [MQTT-4.8.2-5] and never
    /// sent to another [MQTT-4.8.2-6].
    pub fn take_shared(&mut self) -> Vec<Envelope> {
        let mut taken = Vec::new();
        for entry in self.inflight.take() {
            if entry.envelope.group().is_some() && entry.envelope.qos == QoS::AtLeastOnce {
                taken.push(entry.envelope);
            } else {
                self.inflight.push_back(entry);
            }
        }
        let mut shared = Vec::new();
        for envelope in self.queue.take() {
            if envelope.group().is_some() {
                shared.push(envelope);
            } else {
                self.queue.push_back(envelope);
            }
        }
        taken.extend(shared);
        taken
    }
}

/// Encodes the PUBLISH a receiver gets for `envelope`, unless it exceeds the client's Maximum
/// Packet Size. 5.0 receivers get the message's properties with the remaining expiry
/// [MQTT-3.3.2-6], their Subscription Identifiers and, when they take them, a Topic Alias.
/// Encoded from borrowed parts: the common case copies no handle and no properties.
fn write_publish(
    link: &mut Link,
    now: Instant,
    envelope: &Envelope,
    packet_id: Option<PacketId>,
    dup: bool,
    out: &mut Outbox,
) -> Written {
    let message = &envelope.message;
    let version = link.version;
    let alias = if version.is_v5() {
        link.outbound_alias(&message.topic)
    } else {
        None
    };
    // Per-receiver properties: built only when something differs from the message's own.
    let mut own: Option<Properties> = None;
    if version.is_v5() {
        if message.expires_at.is_some() {
            own.get_or_insert_with(|| message.properties.clone())
                .message_expiry_interval_s = message.remaining_expiry_s(now);
        }
        if let Some(tag) = envelope.tag.as_ref().filter(|t| !t.sub_ids.is_empty()) {
            own.get_or_insert_with(|| message.properties.clone())
                .subscription_identifiers = tag.sub_ids.clone();
        }
        if let Some(alias) = &alias {
            own.get_or_insert_with(|| message.properties.clone())
                .topic_alias = Some(alias.number);
        }
    }
    let topic = match &alias {
        Some(alias) if alias.known => &b""[..],
        _ => message.topic.as_str().as_bytes(),
    };
    let view = PublishView {
        dup,
        qos: envelope.qos,
        retain: envelope.retain,
        topic,
        packet_id,
        properties: own.as_ref().unwrap_or(&message.properties),
        payload: &message.payload,
    };
    if link.packet_size_max != u32::MAX
        && publish_view_len(&view, version) > link.packet_size_max as usize
    {
        return Written::TooLarge;
    }
    if let Some(alias) = alias.filter(|a| !a.known) {
        link.remember_alias(&message.topic, alias.number);
    }
    match encode_publish_view(&view, version, out.buffer()) {
        Ok(_) => out.packets += 1,
        Err(e) => tracing::warn!(error = %e, "dropping an outbound PUBLISH that cannot be encoded"),
    }
    Written::Sent
}
