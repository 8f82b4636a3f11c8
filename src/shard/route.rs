//! Routing: a publish goes to the retained store and to every matching session, once per
//! session at the highest granted QoS; a new subscription receives the retained messages.

use std::sync::Arc;
use std::time::Instant;

use crate::codec::{RetainHandling, SubscriptionOptions};
use crate::mesh::{ShardId, ShardMessage};
use crate::session::{Delivery, Message};
use crate::topic::{SubscriptionFilter, TopicFilter};

use super::{SessionKey, Shard};

impl Shard {
    /// Routes one message published on this shard (by a client, a will or `$SYS`): to the
    /// peers that want it, then to local subscribers. `from` is the publishing session.
    pub(super) fn publish(
        &mut self,
        now: Instant,
        from: Option<SessionKey>,
        message: Arc<Message>,
    ) {
        if from.is_some() && is_broker_topic(message.topic.as_str()) {
            // `$SYS` is the broker's own namespace; clients may not write to it.
            self.stats.publish_dropped += 1;
            return;
        }
        if !message.topic.is_sys() {
            self.stats.publish_received += 1;
        }
        // The publishing connection, so that flow control can slow it down.
        let origin = from
            .and_then(|key| self.sessions[key.0 as usize].conn)
            .map(|c| c.to_u64());
        self.forward(&message, origin);
        self.flow.set_origin(origin.map(|conn| (self.id, conn)));
        self.route_local(now, &message, true);
        self.flow.set_origin(None);
    }

    /// A message published on another shard: `deliver` when we have matching subscribers;
    /// retained messages arrive either way to keep our copy of the store current.
    pub(super) fn on_remote_publish(
        &mut self,
        now: Instant,
        from: ShardId,
        message: Arc<Message>,
        deliver: bool,
        origin: Option<u64>,
    ) {
        self.flow.set_origin(origin.map(|conn| (from, conn)));
        self.route_local(now, &message, deliver);
        self.flow.set_origin(None);
    }

    /// Sends `message` once to each peer with matching interest, and to every peer if it is
    /// retained. Under mesh backpressure QoS 0 is dropped (counted); QoS 1/2 always queue and
    /// the driver stops reading until the backlog drains.
    fn forward(&mut self, message: &Arc<Message>, origin: Option<u64>) {
        if self.peers.shard_count() == 1 {
            return;
        }
        self.peers.match_remote(message.topic.as_str());
        let congested = self.mesh.backlog() >= self.limits.mesh_backlog_max as usize;
        for index in 0..self.peers.shard_count() {
            let to = ShardId(index as u16);
            if to == self.id {
                continue;
            }
            let deliver = self.peers.is_target(to);
            if !deliver && !message.retain {
                continue;
            }
            if congested && message.qos == crate::codec::QoS::AtMostOnce {
                self.stats.mesh_dropped_qos0 += 1;
                continue;
            }
            self.mesh.send(
                to,
                ShardMessage::Publish {
                    message: message.clone(),
                    deliver,
                    origin,
                },
            );
        }
    }

    /// Stores a retained message and, if `deliver`, hands it to every matching local session
    /// once, at the highest granted QoS.
    fn route_local(&mut self, now: Instant, message: &Arc<Message>, deliver: bool) {
        if message.retain {
            self.store_retained(message);
        }
        if !deliver {
            return;
        }
        let mut matches = std::mem::take(&mut self.matches);
        matches.clear();
        self.trie
            .for_each_match(message.topic.as_str(), |key, options| {
                matches.push((*key, *options));
            });
        dedupe_matches(&mut matches);
        for &(key, options) in &matches {
            // [MQTT-3.3.1-9]: forwarded to existing subscriptions with retain 0, unless 5.0's
            // Retain As Published asks for the original flag.
            let retain = options.retain_as_published && message.retain;
            self.deliver_to(now, key, message, options, retain);
        }
        self.matches = matches;
    }

    /// Hands `message` to one session at min(published, granted) QoS [MQTT-3.8.4-6].
    fn deliver_to(
        &mut self,
        now: Instant,
        key: SessionKey,
        message: &Arc<Message>,
        options: SubscriptionOptions,
        retain: bool,
    ) {
        let qos = message.qos.min(options.qos);
        self.before_delivery(key);
        let queue_max = self.flow.queue_max(&self.limits);
        let entry = &mut self.sessions[key.0 as usize];
        let conn_id = entry.conn;
        let out = conn_id
            .and_then(|id| self.conns.get_mut(id.index as usize))
            .map(|conn| &mut conn.out);
        match entry
            .session
            .deliver(message, qos, retain, out, &self.limits, queue_max)
        {
            Delivery::Sent => {
                self.stats.publish_sent += 1;
                if let Some(id) = conn_id {
                    self.mark_dirty(id);
                }
            }
            Delivery::Queued => {
                self.stats.publish_queued += 1;
                self.note_queued(now, key);
            }
            Delivery::DroppedQueueFull => {
                self.stats.publish_dropped += 1;
                self.note_queued(now, key);
            }
            Delivery::DroppedQoS0 => self.stats.publish_dropped += 1,
        }
    }

    /// [MQTT-3.3.1-5]: store (or replace) the retained message for the topic; the broker's own
    /// `$SYS` topics do not count against `retained_messages_max` (clients cannot write them);
    /// [MQTT-3.3.1-10]/[MQTT-3.3.1-11]: an empty payload deletes it and is not stored.
    fn store_retained(&mut self, message: &Arc<Message>) {
        let topic = message.topic.as_str();
        if message.payload.is_empty() {
            self.retained.remove(topic);
        } else if self.retained.get(topic).is_some()
            || is_broker_topic(message.topic.as_str())
            || self.retained.len() < self.limits.retained_messages_max as usize
        {
            self.retained.insert(message.topic.clone(), message.clone());
        } else {
            self.stats.retained_dropped += 1;
            tracing::warn!(
                topic,
                limit = self.limits.retained_messages_max,
                "retained_messages_max reached; retained message not stored"
            );
        }
    }

    /// Adds a subscription to the trie and sends the matching retained messages
    /// [MQTT-3.3.1-6] with the retain flag set [MQTT-3.3.1-8].
    pub(super) fn subscribe(
        &mut self,
        now: Instant,
        key: SessionKey,
        filter: &SubscriptionFilter,
        options: SubscriptionOptions,
        existed: bool,
    ) {
        self.trie_insert(key, filter.filter(), options);
        // Hold the SUBACK (and all that follows) until every peer has seen this shard's
        // interest in the filter, so a publish made after the SUBACK reaches us.
        if let Some(id) = self.sessions[key.0 as usize].conn {
            self.hold_output(id);
        }
        let send_retained = match options.retain_handling {
            RetainHandling::OnSubscribe => true,
            RetainHandling::OnNewSubscribe => !existed,
            RetainHandling::Never => false,
        };
        if !send_retained {
            return;
        }
        let mut retained = Vec::new();
        self.retained
            .for_each_match(filter.filter(), |_, message| retained.push(message.clone()));
        for message in retained {
            self.deliver_to(now, key, &message, options, true);
        }
    }

    pub(super) fn unsubscribe(&mut self, key: SessionKey, filter: &SubscriptionFilter) {
        self.trie_remove(key, filter.filter());
    }

    /// Adds to the trie, keeping the peers' view of our interest current.
    pub(super) fn trie_insert(
        &mut self,
        key: SessionKey,
        filter: &TopicFilter,
        options: SubscriptionOptions,
    ) {
        if self.trie.insert(filter, key, options).is_none() {
            self.filter_refs_changed(filter, 1);
        }
    }

    /// Removes from the trie, keeping the peers' view of our interest current.
    pub(super) fn trie_remove(&mut self, key: SessionKey, filter: &TopicFilter) {
        if self.trie.remove(filter, &key).is_some() {
            self.filter_refs_changed(filter, -1);
        }
    }
}

/// Collapses overlapping subscriptions of one session into one delivery at the highest granted
/// QoS [MQTT-3.3.5-1], keeping the most permissive Retain As Published.
fn dedupe_matches(matches: &mut Vec<(SessionKey, SubscriptionOptions)>) {
    if matches.len() < 2 {
        return;
    }
    matches.sort_unstable_by_key(|(key, _)| *key);
    matches.dedup_by(|later, kept| {
        if later.0 != kept.0 {
            return false;
        }
        kept.1.qos = kept.1.qos.max(later.1.qos);
        kept.1.retain_as_published |= later.1.retain_as_published;
        true
    });
}

/// `$SYS/...`: the broker's own namespace, written only by the broker.
fn is_broker_topic(topic: &str) -> bool {
    topic == "$SYS" || topic.starts_with("$SYS/")
}
