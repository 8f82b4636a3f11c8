//! The application message as the broker routes it: decoded once, shared by every receiver.

use std::sync::Arc;

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
}

impl Message {
    /// Builds the routed message from a validated inbound PUBLISH, keeping only the properties
    /// that are forwarded [MQTT-3.3.2-17..20]; the topic alias and subscription ids are per hop.
    pub fn from_publish(topic: TopicName, publish: Publish) -> Arc<Message> {
        let mut properties = publish.properties;
        properties.topic_alias = None;
        properties.subscription_identifiers.clear();
        Arc::new(Message {
            topic,
            payload: publish.payload,
            qos: publish.qos,
            retain: publish.retain,
            properties,
        })
    }

    /// The message a will becomes when it is published [MQTT-3.1.2-8]. Will properties that
    /// describe the message (expiry, content type...) travel with it; the delay does not.
    pub fn from_will(will: ValidWill) -> Arc<Message> {
        let mut properties = will.will.properties;
        properties.will_delay_interval_s = None;
        Arc::new(Message {
            topic: will.topic,
            payload: will.will.payload,
            qos: will.will.qos,
            retain: will.will.retain,
            properties,
        })
    }
}
