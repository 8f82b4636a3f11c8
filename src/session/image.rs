//! A session as plain data, for the write-ahead log (`crate::persist`): what a restart must
//! give back. The live connection ([`super::Link`]) is not part of it; a session that was
//! online when its image was taken comes back offline, as if its client had just gone.
//!
//! Times stay `Instant`s here; the log turns them into wall-clock time and back, so that an
//! expiry or a will delay keeps running while the broker is down.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::codec::{ByteStr, PacketId, QoS};

use super::{expiry, lazy, Awaiting, Envelope, IdSet, Outbound, Session, Subscription, ValidWill};

/// Where an outbound QoS 1/2 message stood when the image was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutboundState {
    /// PUBLISH sent, no PUBACK (QoS 1) or PUBREC (QoS 2) yet: resent with DUP.
    Unacknowledged,
    /// PUBREC received, PUBREL sent: the PUBREL is resent [MQTT-4.4.0-1].
    Released,
}

/// One message in the inflight window, with the packet id the client knows it by: a QoS 2
/// message resent under another id could reach the application twice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundImage {
    pub packet_id: PacketId,
    pub state: OutboundState,
    pub envelope: Envelope,
}

/// The deadlines of an offline session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfflineImage {
    pub expires_at: Option<Instant>,
    pub will: Option<(Instant, ValidWill)>,
}

/// Everything about a session that outlives its connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionImage {
    pub client_id: ByteStr,
    pub username: Option<ByteStr>,
    pub expiry_s: u32,
    pub next_packet_id: PacketId,
    /// Each subscription with the filter exactly as subscribed.
    pub subscriptions: Vec<(ByteStr, Subscription)>,
    pub inflight: Vec<OutboundImage>,
    pub queue: Vec<Envelope>,
    /// Inbound QoS 2 ids between PUBREC and PUBREL [MQTT-4.3.3-2].
    pub inbound_qos2: Vec<PacketId>,
    /// `None` for a session that was online.
    pub offline: Option<OfflineImage>,
}

impl Session {
    /// The session as plain data. Clones message handles, not messages.
    pub fn image(&self) -> SessionImage {
        SessionImage {
            client_id: self.client_id.clone(),
            username: self.username.as_deref().cloned(),
            expiry_s: self.expiry_s,
            next_packet_id: self.next_packet_id,
            subscriptions: self
                .subscriptions
                .iter()
                .map(|(raw, s)| (raw.clone(), s.clone()))
                .collect(),
            inflight: self
                .inflight
                .iter()
                .map(|o| OutboundImage {
                    packet_id: o.packet_id,
                    state: match o.state {
                        Awaiting::PubComp => OutboundState::Released,
                        _ => OutboundState::Unacknowledged,
                    },
                    envelope: o.envelope.clone(),
                })
                .collect(),
            queue: self.queue.iter().cloned().collect(),
            inbound_qos2: self
                .inbound_qos2
                .0
                .iter()
                .flat_map(|set| set.iter().copied())
                .collect(),
            offline: self.offline.as_ref().map(|o| OfflineImage {
                expires_at: o.expires_at,
                will: o.will.as_ref().map(|(at, will)| (*at, (**will).clone())),
            }),
        }
    }

    /// The session an image describes, offline. One that was online when imaged is treated
    /// as disconnected at `now`, without a will: its client went with the broker.
    pub fn from_image(image: SessionImage, now: Instant) -> Session {
        let mut session = Session::new(image.client_id, image.expiry_s);
        session.username = image.username.map(Box::new);
        session.next_packet_id = image.next_packet_id;
        session.subscriptions = image.subscriptions.into_iter().collect();
        let mut inflight = lazy::LazyDeque::default();
        for o in image.inflight {
            let state = match (o.state, o.envelope.qos) {
                (OutboundState::Released, _) => Awaiting::PubComp,
                (OutboundState::Unacknowledged, QoS::ExactlyOnce) => Awaiting::PubRec,
                (OutboundState::Unacknowledged, _) => Awaiting::PubAck,
            };
            inflight.push_back(Outbound {
                packet_id: o.packet_id,
                envelope: o.envelope,
                state,
            });
        }
        session.inflight = inflight;
        for envelope in image.queue {
            session.queue.push_back(envelope);
        }
        let mut inbound = IdSet::default();
        for id in image.inbound_qos2 {
            inbound.insert(id);
        }
        session.inbound_qos2 = inbound;
        session.offline = match image.offline {
            Some(o) => Some(Box::new(expiry::Offline {
                expires_at: o.expires_at,
                will: o.will.map(|(at, will)| (at, Box::new(will))),
            })),
            None if image.expiry_s == u32::MAX => None,
            None => Some(Box::new(expiry::Offline {
                expires_at: Some(now + Duration::from_secs(image.expiry_s.into())),
                will: None,
            })),
        };
        session
    }

    /// Every message this session holds (inflight, then queued), for the log to write each
    /// body once.
    pub fn held_messages(&self) -> impl Iterator<Item = &Arc<super::Message>> {
        self.inflight
            .iter()
            .map(|o| &o.envelope.message)
            .chain(self.queue.iter().map(|e| &e.message))
    }
}
