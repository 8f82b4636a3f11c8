//! The retained store on a shard: every shard keeps a full copy, and every copy converges to
//! the same value per topic even when two shards update a topic at the same moment.
//!
//! Each retained update is stamped by the shard where it was published with a Lamport clock
//! ([`RetainStamp`]): the clock goes up by one per local update and jumps past any stamp seen
//! from a peer, so an update made after seeing another is always ordered after it. A copy
//! applies an update only if its stamp is later than the one it holds for that topic. Deletes
//! (empty payloads) leave a *tombstone* with their stamp, so that an older set that arrives
//! after a newer delete does not bring the topic back; tombstones are dropped after
//! [`TOMBSTONE_TTL`], long after any update could still be in flight, and at most
//! `retained_messages_max` are kept (oldest dropped first).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ahash::AHashMap;

use crate::codec::ByteStr;
use crate::session::Message;
use crate::topic::RetainStamp;

use super::log::LogKind;
use super::Shard;

/// How long a delete's stamp is kept. An update older than it can only be one still in a mesh
/// ring or backlog, which drain in well under a second.
pub const TOMBSTONE_TTL: Duration = Duration::from_secs(60);

/// Stamps of recent deletes, by topic, with the order they expire in.
#[derive(Debug, Default)]
pub(super) struct Tombstones {
    by_topic: AHashMap<ByteStr, RetainStamp>,
    by_age: VecDeque<(Instant, ByteStr, RetainStamp)>,
}

impl Shard {
    /// The stamp for a retained update published on this shard.
    pub(super) fn next_retain_stamp(&mut self) -> RetainStamp {
        self.retain_clock += 1;
        RetainStamp {
            clock: self.retain_clock,
            shard: self.id.index() as u16,
        }
    }

    /// [MQTT-3.3.1-5]: store (or replace) the retained message for the topic, if `stamp` is
    /// later than what this copy already applied for it; the broker's own `$SYS` topics do not
    /// count against `retained_messages_max` (clients cannot write them);
    /// [MQTT-3.3.1-10]/[MQTT-3.3.1-11]: an empty payload deletes it and is not stored.
    pub(super) fn store_retained(
        &mut self,
        now: Instant,
        message: &Arc<Message>,
        stamp: RetainStamp,
    ) {
        self.retain_clock = self.retain_clock.max(stamp.clock);
        self.expire_tombstones(now);
        let topic = message.topic.as_str();
        let held = self.retained.get(topic).map(|(held, _)| *held);
        let buried = self
            .tombstones
            .by_topic
            .get(message.topic.as_byte_str())
            .copied();
        if held.max(buried).is_some_and(|latest| latest >= stamp) {
            // A later update to this topic was already applied here.
            return;
        }
        if message.payload.is_empty() {
            if let Some((_, old)) = self.retained.remove(topic) {
                self.retained_bytes -= old.payload.len() as u64;
            }
            self.bury(now, message.topic.as_byte_str().clone(), stamp);
            self.log_retained(message);
        } else if held.is_some()
            || super::route::is_broker_topic(topic)
            || self.retained.len() < self.limits.retained_messages_max as usize
        {
            self.tombstones.by_topic.remove(message.topic.as_byte_str());
            self.retained_bytes += message.payload.len() as u64;
            if let Some((_, old)) = self
                .retained
                .insert(message.topic.clone(), (stamp, message.clone()))
            {
                self.retained_bytes -= old.payload.len() as u64;
            }
            self.log_retained(message);
        } else {
            self.stats.retained_dropped += 1;
            if let Some(suppressed) = self.log.allow(LogKind::RetainedDropped, now) {
                tracing::warn!(
                    topic,
                    limit = self.limits.retained_messages_max,
                    suppressed,
                    "retained_messages_max reached; retained message not stored"
                );
            }
        }
    }

    fn bury(&mut self, now: Instant, topic: ByteStr, stamp: RetainStamp) {
        let tombstones = &mut self.tombstones;
        if tombstones.by_age.len() >= self.limits.retained_messages_max as usize {
            if let Some((_, oldest, at)) = tombstones.by_age.pop_front() {
                if tombstones.by_topic.get(&oldest) == Some(&at) {
                    tombstones.by_topic.remove(&oldest);
                }
            }
        }
        tombstones.by_topic.insert(topic.clone(), stamp);
        tombstones.by_age.push_back((now, topic, stamp));
    }

    fn expire_tombstones(&mut self, now: Instant) {
        let tombstones = &mut self.tombstones;
        while let Some((at, topic, stamp)) = tombstones.by_age.front() {
            if now.saturating_duration_since(*at) < TOMBSTONE_TTL {
                break;
            }
            // A later delete of the same topic has its own entry further back.
            if tombstones.by_topic.get(topic) == Some(stamp) {
                tombstones.by_topic.remove(topic);
            }
            tombstones.by_age.pop_front();
        }
    }
}
