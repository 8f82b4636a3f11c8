//! The application message as the broker routes it: decoded once, shared by every receiver.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::codec::{Properties, Publish, QoS};

use super::ValidWill;
use crate::topic::TopicName;

/// A published message after validation. Wrapped in `Arc` so that fan-out to N subscribers
/// (possibly on other shards) costs N reference-count increments, not N copies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub topic: TopicName,
    pub payload: Bytes,
    /// QoS as published; each receiver gets `min(qos, granted)`.
    pub qos: QoS,
    /// Retain flag as published.
    pub retain: bool,
    /// MQTT 5.0 properties that travel with the message to receivers (payload format, expiry,
    /// content type, response topic, correlation data, user properties). Empty from 3.x.
    pub properties: Properties,
    /// When the 5.0 Message Expiry Interval runs out: a copy not yet sent by then is dropped
    /// [MQTT-3.3.2-5], and a copy sent earlier carries the time left [MQTT-3.3.2-6].
    pub expires_at: Option<Instant>,
}

impl Message {
    /// Builds the routed message from a validated inbound PUBLISH received at `now`, keeping
    /// only the properties that are forwarded [MQTT-3.3.2-17..20]; the topic alias and
    /// subscription ids are per hop.
    pub fn from_publish(topic: TopicName, publish: Publish, now: Instant) -> Arc<Message> {
        let mut properties = publish.properties;
        // Checked before written: a write through `Properties` allocates its box, which a
        // PUBLISH without properties (most of them) must not pay for.
        if properties.topic_alias.is_some() || !properties.subscription_identifiers.is_empty() {
            properties.topic_alias = None;
            properties.subscription_identifiers.clear();
        }
        let expires_at = expiry(&properties, now);
        Arc::new(Message {
            topic,
            payload: publish.payload,
            qos: publish.qos,
            retain: publish.retain,
            properties,
            expires_at,
        })
    }

    /// The message a will becomes when it is published at `now` [MQTT-3.1.2-8]. Will
    /// properties that describe the message (expiry, content type...) travel with it; the
    /// delay does not.
    pub fn from_will(will: ValidWill, now: Instant) -> Arc<Message> {
        let mut properties = will.will.properties;
        if properties.will_delay_interval_s.is_some() {
            properties.will_delay_interval_s = None;
        }
        let expires_at = expiry(&properties, now);
        Arc::new(Message {
            topic: will.topic,
            payload: will.will.payload,
            qos: will.will.qos,
            retain: will.will.retain,
            properties,
            expires_at,
        })
    }

    pub fn is_expired(&self, now: Instant) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }

    /// The Message Expiry Interval to forward: the whole seconds left, rounded up so that a
    /// message is never sent with 0 (which would read as "expired") [MQTT-3.3.2-6].
    pub fn remaining_expiry_s(&self, now: Instant) -> Option<u32> {
        let left = self.expires_at?.saturating_duration_since(now);
        Some(
            left.as_millis()
                .div_ceil(1000)
                .clamp(1, u128::from(u32::MAX)) as u32,
        )
    }
}

fn expiry(properties: &Properties, now: Instant) -> Option<Instant> {
    properties
        .message_expiry_interval_s
        .map(|s| now + Duration::from_secs(s.into()))
}
