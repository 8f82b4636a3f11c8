//! Routing: a publish goes to the retained store and to every matching session, once per
//! session at the highest granted QoS; a new subscription receives the retained messages.

use std::sync::Arc;
use std::time::Instant;

use crate::codec::RetainHandling;
use crate::mesh::ShardId;
use crate::session::{Delivery, Envelope, Message, SubParams};
use crate::topic::{RetainStamp, SubscriptionFilter, TopicFilter};

use super::shared::filter_name;

use super::{ConnectionId, MemberChange, SessionKey, Shard, ShardMessage};

impl Shard {
    /// Routes one message published on this shard (by a client, a will or `$SYS`): to the
    /// peers that want it, then to local subscribers. `from` is the publishing session.
    /// Returns whether any subscription matched (on any shard).
    pub(super) fn publish(
        &mut self,
        now: Instant,
        from: Option<SessionKey>,
        message: Arc<Message>,
    ) -> bool {
        if from.is_some() && is_broker_topic(message.topic.as_str()) {
            // `$SYS` is the broker's own namespace; clients may not write to it.
            self.stats.publish_dropped += 1;
            self.stats.drops.no_subscriber += 1;
            return false;
        }
        if !message.topic.is_sys() {
            self.stats.publish_received += 1;
        }
        // The publishing connection, so that flow control can slow it down.
        let origin = from.and_then(|key| self.sessions[key.0 as usize].conn);
        let stamp = if message.retain {
            self.next_retain_stamp()
        } else {
            RetainStamp::default()
        };
        self.set_origin_logged(Some(from));
        let remote = self.forward(&message, origin, stamp);
        self.flow.set_origin(origin.map(|conn| (self.id, conn)));
        let local = self.route_local(now, &message, true, from, stamp);
        let shared = self.route_shared(now, from, &message, origin);
        self.flow.set_origin(None);
        self.set_origin_logged(None);
        remote || local || shared
    }

    /// A message published on another shard: `deliver` when we have matching subscribers;
    /// retained messages arrive either way to keep our copy of the store current.
    pub(super) fn on_remote_publish(
        &mut self,
        now: Instant,
        from: ShardId,
        message: Arc<Message>,
        deliver: bool,
        origin: Option<ConnectionId>,
        stamp: RetainStamp,
    ) {
        self.flow.set_origin(origin.map(|conn| (from, conn)));
        self.route_local(now, &message, deliver, None, stamp);
        self.flow.set_origin(None);
    }

    /// Sends `message` once to each peer with matching interest, and to every peer if it is
    /// retained. Under mesh backpressure QoS 0 is dropped (counted); QoS 1/2 always queue and
    /// the driver stops reading until the backlog drains. Returns whether a peer has matching
    /// subscribers.
    fn forward(
        &mut self,
        message: &Arc<Message>,
        origin: Option<ConnectionId>,
        stamp: RetainStamp,
    ) -> bool {
        if self.peers.shard_count() == 1 {
            return false;
        }
        self.peers.match_remote(message.topic.as_str());
        let mut matched = false;
        let congested = self.mesh.backlog() >= self.limits.mesh_backlog_max as usize;
        for index in 0..self.peers.shard_count() {
            let to = ShardId(index as u16);
            if to == self.id {
                continue;
            }
            let deliver = self.peers.is_target(to);
            matched |= deliver;
            if !deliver && !message.retain {
                continue;
            }
            if congested && message.qos == crate::codec::QoS::AtMostOnce {
                self.stats.mesh_dropped_qos0 += 1;
                continue;
            }
            let publish = ShardMessage::Publish {
                message: message.clone(),
                deliver,
                origin,
                stamp,
            };
            if let Some(publish) = self.forward_after_sync(to, publish) {
                self.mesh.send(to, publish);
            }
        }
        matched
    }

    /// Stores a retained message and, if `deliver`, hands it to every matching local session
    /// once: at the highest granted QoS [MQTT-3.3.5-1], with the Subscription Identifiers of
    /// every matching subscription [MQTT-3.3.4-3], and not to the publisher's own session
    /// where it subscribed with No Local [MQTT-3.8.3-3]. `from` is the publishing session.
    /// Returns whether any local session got it.
    fn route_local(
        &mut self,
        now: Instant,
        message: &Arc<Message>,
        deliver: bool,
        from: Option<super::SessionKey>,
        stamp: RetainStamp,
    ) -> bool {
        if message.retain {
            self.store_retained(now, message, stamp);
        }
        if !deliver {
            return false;
        }
        let mut matches = std::mem::take(&mut self.matches);
        matches.clear();
        self.trie
            .for_each_match(message.topic.as_str(), |key, params| {
                if !(params.options.no_local && Some(*key) == from) {
                    matches.push((*key, *params));
                }
            });
        if matches.len() > 1 {
            matches.sort_unstable_by_key(|(key, _)| *key);
        }
        let mut rest = &matches[..];
        while let Some((&(key, first), _)) = rest.split_first() {
            let same = rest.iter().take_while(|(k, _)| *k == key).count();
            let checked = rest[..same].iter().any(|(_, p)| p.read_check);
            // Only subscriptions the ACL could not clear at SUBSCRIBE cost a check here.
            if !checked || self.may_read(key, message.topic.as_str()) {
                let more = rest[1..same].iter().map(|(_, p)| *p);
                let envelope = Envelope::merged(message, first, more);
                self.deliver_to(now, key, envelope);
            }
            rest = &rest[same..];
        }
        let matched = !matches.is_empty();
        self.matches = matches;
        matched
    }

    /// Hands one copy of a message to one session.
    pub(super) fn deliver_to(&mut self, now: Instant, key: SessionKey, envelope: Envelope) {
        if !self.handoffs.is_idle() && self.handoff_took(key, &envelope) {
            return;
        }
        self.before_delivery(key);
        let queue_max = self.flow.queue_max(&self.limits);
        let stored = envelope.qos != crate::codec::QoS::AtMostOnce;
        let qos = envelope.qos;
        let exactly_once = qos == crate::codec::QoS::ExactlyOnce;
        let entry = &mut self.sessions[key.0 as usize];
        if stored && entry.conn.is_none() && self.persistence_full() {
            // Queued for an offline session, it would be new persistent state.
            self.stats.publish_dropped += 1;
            self.stats.persist_full += 1;
            return;
        }
        let entry = &mut self.sessions[key.0 as usize];
        let conn_id = entry.conn;
        let out = conn_id
            .and_then(|id| self.conns.get_mut(id.index as usize))
            .map(|conn| &mut conn.out);
        match entry
            .session
            .deliver(now, envelope, out, &self.limits, queue_max)
        {
            Delivery::Sent => {
                if let Some(id) = conn_id {
                    let mut sent = [0; 3];
                    sent[qos as usize] = 1;
                    self.count_publish_sent(id, sent);
                    self.mark_dirty(id);
                    if exactly_once && self.qos2_waits_for_log() {
                        self.hold_until_durable(id);
                    }
                }
                if stored {
                    self.log_session(key);
                }
            }
            Delivery::Queued => {
                self.stats.publish_queued += 1;
                self.note_queued(now, key);
                self.log_session(key);
            }
            Delivery::DroppedQueueFull => {
                self.stats.publish_dropped += 1;
                self.stats.drops.queue_full += 1;
                self.note_queued(now, key);
            }
            Delivery::DroppedQoS0 => {
                self.stats.publish_dropped += 1;
                self.stats.drops.outbound_buffer += 1;
            }
            Delivery::Expired => self.stats.count_drops(1, 0),
            Delivery::TooLarge => self.stats.count_drops(0, 1),
        }
    }

    /// Adds a subscription and sends the matching retained messages [MQTT-3.3.1-6] with the
    /// retain flag set [MQTT-3.3.1-8], as its Retain Handling says [MQTT-3.3.1-9..11]. A shared
    /// subscription gets no retained messages (MQTT 5.0 section 4.8.2): it is a work queue.
    pub(super) fn subscribe(
        &mut self,
        now: Instant,
        key: SessionKey,
        filter: &SubscriptionFilter,
        params: SubParams,
        existed: bool,
    ) {
        self.add_subscription(key, filter, params, true);
        // Hold the SUBACK (and all that follows) until every peer has seen this shard's
        // interest in the filter, so a publish made after the SUBACK reaches us.
        if let Some(id) = self.sessions[key.0 as usize].conn {
            self.hold_output(id);
        }
        let send_retained = match params.options.retain_handling {
            RetainHandling::OnSubscribe => true,
            RetainHandling::OnNewSubscribe => !existed,
            RetainHandling::Never => false,
        };
        if !send_retained || filter.is_shared() {
            return;
        }
        let mut retained = Vec::new();
        self.retained
            .for_each_match(filter.filter(), |_, (_, message)| {
                retained.push(message.clone())
            });
        for message in retained {
            // A retained message needs `read` like any other.
            if params.read_check && !self.may_read(key, message.topic.as_str()) {
                continue;
            }
            let envelope = Envelope {
                qos: message.qos.min(params.options.qos),
                retain: true,
                tag: Envelope::sub_id_tag(params.id),
                message,
            };
            self.deliver_to(now, key, envelope);
        }
    }

    pub(super) fn unsubscribe(&mut self, key: SessionKey, filter: &SubscriptionFilter) {
        self.remove_subscription(key, filter);
    }

    /// Adds one subscription of a local session: to the trie, or to its shared group.
    pub(super) fn add_subscription(
        &mut self,
        key: SessionKey,
        filter: &SubscriptionFilter,
        params: SubParams,
        online: bool,
    ) {
        if filter.is_shared() {
            let change = MemberChange::Join { params, online };
            self.shared_change(key, &filter_name(filter), filter.filter(), change);
        } else {
            self.trie_insert(key, filter.filter(), params);
        }
    }

    /// Removes one subscription of a local session: from the trie, or from its shared group.
    pub(super) fn remove_subscription(&mut self, key: SessionKey, filter: &SubscriptionFilter) {
        if filter.is_shared() {
            self.shared_change(
                key,
                &filter_name(filter),
                filter.filter(),
                MemberChange::Leave,
            );
        } else {
            self.trie_remove(key, filter.filter());
        }
    }

    /// Adds to the trie, keeping the peers' view of our interest current.
    fn trie_insert(&mut self, key: SessionKey, filter: &TopicFilter, params: SubParams) {
        if self.trie.insert(filter, key, params).is_none() {
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

/// `$SYS/...`: the broker's own namespace, written only by the broker.
pub(super) fn is_broker_topic(topic: &str) -> bool {
    topic == "$SYS" || topic.starts_with("$SYS/")
}
