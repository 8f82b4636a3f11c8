//! Shared subscriptions, `$share/<group>/<filter>` [MQTT-4.8.2]: each message matching a group
//! goes to one member of the group, whichever shard the member is on.
//!
//! Every shard keeps the membership of every group (who, on which shard, online or not), kept
//! current with `ShardMessage::SharedMember` the way interest summaries are, and with the same
//! acknowledgement: a member's SUBACK waits until every peer knows it joined. The shard where a
//! message is published picks the member, so picking needs no round trip:
//! - `RoundRobin` takes turns per publishing shard (each shard's turn counter is its own);
//! - `Random` picks uniformly; `HashClientId` hashes the publisher's client id, so one
//!   publisher's messages stay with one member and in order while the group is unchanged.
//!
//! Online members are preferred; when every member is offline, one offline (persistent) member
//! queues the message. A message sent to a member that meanwhile left (it moved shards, or
//! unsubscribed) is picked again on the receiving shard, at most once per shard hop. When a
//! member's connection ends, the QoS 1/2 messages it had not acknowledged are redelivered to
//! another member (`Shard::redeliver_shared`).

use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Instant;

use ahash::AHashMap;
use slab::Slab;

use crate::codec::ByteStr;
use crate::config::SharedStrategy;
use crate::mesh::ShardId;
use crate::session::{Envelope, Message, SubParams, Tag};
use crate::topic::{SubscriptionTrie, TopicFilter};

use super::{ConnectionId, MemberChange, SessionKey, Shard, ShardMessage};

/// One member of a group, as every shard knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Member {
    pub shard: ShardId,
    /// The member's session key on its shard.
    pub session: SessionKey,
    pub params: SubParams,
    pub online: bool,
}

#[derive(Debug)]
struct Group {
    name: ByteStr,
    filter: TopicFilter,
    members: Vec<Member>,
    /// Round-robin turn.
    turn: usize,
}

/// All groups of the broker, as this shard knows them.
#[derive(Debug, Default)]
pub(super) struct SharedGroups {
    groups: Slab<Group>,
    by_name: AHashMap<ByteStr, usize>,
    /// Group filters, to find the groups a topic matches.
    trie: SubscriptionTrie<u32, ()>,
    /// xorshift state for `SharedStrategy::Random`; seeded lazily.
    rng: u64,
}

impl SharedGroups {
    /// Shared subscriptions broker-wide: members of every group.
    pub(super) fn len(&self) -> usize {
        self.groups.iter().map(|(_, g)| g.members.len()).sum()
    }

    /// Applies a membership change made on `shard`.
    pub(super) fn apply(
        &mut self,
        name: &ByteStr,
        filter: &TopicFilter,
        shard: ShardId,
        session: SessionKey,
        change: MemberChange,
    ) {
        let index = match self.by_name.get(name) {
            Some(&index) => index,
            None if matches!(change, MemberChange::Join { .. }) => {
                let index = self.groups.insert(Group {
                    name: name.clone(),
                    filter: filter.clone(),
                    members: Vec::new(),
                    turn: 0,
                });
                self.by_name.insert(name.clone(), index);
                self.trie.insert(filter, index as u32, ());
                index
            }
            None => return,
        };
        let group = &mut self.groups[index];
        let position = group
            .members
            .iter()
            .position(|m| m.shard == shard && m.session == session);
        match (change, position) {
            (MemberChange::Join { params, online }, Some(i)) => {
                group.members[i].params = params;
                group.members[i].online = online;
            }
            (MemberChange::Join { params, online }, None) => group.members.push(Member {
                shard,
                session,
                params,
                online,
            }),
            (MemberChange::Online(online), Some(i)) => group.members[i].online = online,
            (MemberChange::Leave, Some(i)) => {
                group.members.remove(i);
                if group.members.is_empty() {
                    let group = self.groups.remove(index);
                    self.by_name.remove(&group.name);
                    self.trie.remove(&group.filter, &(index as u32));
                }
            }
            (_, None) => {}
        }
    }

    /// Picks one member of every group matching `topic`.
    pub(super) fn pick_all(
        &mut self,
        topic: &str,
        strategy: SharedStrategy,
        publisher: u64,
        picked: &mut Vec<(ByteStr, Member)>,
    ) {
        let mut matched = Vec::new();
        self.trie
            .for_each_match(topic, |index, ()| matched.push(*index as usize));
        for index in matched {
            if let Some(member) = self.choose(index, strategy, publisher, None) {
                picked.push((self.groups[index].name.clone(), member));
            }
        }
    }

    /// Picks a member of the group `name` other than `exclude`.
    pub(super) fn pick_other(
        &mut self,
        name: &ByteStr,
        strategy: SharedStrategy,
        publisher: u64,
        exclude: (ShardId, SessionKey),
    ) -> Option<Member> {
        let index = *self.by_name.get(name)?;
        self.choose(index, strategy, publisher, Some(exclude))
    }

    fn choose(
        &mut self,
        index: usize,
        strategy: SharedStrategy,
        publisher: u64,
        exclude: Option<(ShardId, SessionKey)>,
    ) -> Option<Member> {
        let random = match strategy {
            SharedStrategy::Random => self.next_random(),
            _ => 0,
        };
        let group = &mut self.groups[index];
        let eligible =
            |m: &&Member, online: bool| m.online == online && Some((m.shard, m.session)) != exclude;
        for online in [true, false] {
            let count = group.members.iter().filter(|m| eligible(m, online)).count();
            if count == 0 {
                continue;
            }
            let k = match strategy {
                SharedStrategy::RoundRobin => {
                    group.turn = group.turn.wrapping_add(1);
                    group.turn % count
                }
                SharedStrategy::Random => (random % count as u64) as usize,
                SharedStrategy::HashClientId => (publisher % count as u64) as usize,
            };
            return group
                .members
                .iter()
                .filter(|m| eligible(m, online))
                .nth(k)
                .copied();
        }
        None
    }

    fn next_random(&mut self) -> u64 {
        if self.rng == 0 {
            self.rng = ahash::RandomState::new().hash_one(0u8) | 1;
        }
        // xorshift64: uniform enough for load spreading, and no lock or syscall per message.
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }
}

/// A stable hash of a publisher's client id, for `SharedStrategy::HashClientId`.
pub(super) fn publisher_hash(client_id: Option<&ByteStr>) -> u64 {
    let mut hasher = std::hash::DefaultHasher::new();
    client_id
        .map(|c| c.as_str())
        .unwrap_or("")
        .hash(&mut hasher);
    hasher.finish()
}

impl Shard {
    /// A local session joined, left, or changed presence in group `name`: apply it here and
    /// tell every peer. Returns true if the peers were told (the caller holds the SUBACK).
    pub(super) fn shared_change(
        &mut self,
        key: SessionKey,
        name: &ByteStr,
        filter: &TopicFilter,
        change: MemberChange,
    ) {
        self.shared.apply(name, filter, self.id, key, change);
        if let Some(seq) = self.peers.next_seq() {
            for to in self.peers.others(self.id) {
                let message = ShardMessage::SharedMember {
                    name: name.clone(),
                    filter: filter.clone(),
                    session: key,
                    change,
                    seq,
                };
                self.mesh.send(to, message);
            }
        }
    }

    /// Every local session with subscriptions in shared groups tells the groups whether it is
    /// online, so that publishers prefer online members.
    pub(super) fn shared_presence(&mut self, key: SessionKey, online: bool) {
        if !self.sessions[key.0 as usize]
            .session
            .has_shared_subscriptions()
        {
            return;
        }
        let groups: Vec<_> = self.sessions[key.0 as usize]
            .session
            .subscriptions()
            .filter(|s| s.filter.is_shared())
            .map(|s| (s.filter.clone(), s.params()))
            .collect();
        for (filter, _) in groups {
            let name = filter_name(&filter);
            self.shared_change(key, &name, filter.filter(), MemberChange::Online(online));
        }
    }

    /// Routes a message published on this shard to one member of each matching group.
    /// Returns whether any group matched.
    pub(super) fn route_shared(
        &mut self,
        now: Instant,
        from: Option<SessionKey>,
        message: &Arc<Message>,
        origin: Option<ConnectionId>,
    ) -> bool {
        if self.shared.by_name.is_empty() {
            return false;
        }
        let publisher = match self.protocol.shared_strategy {
            SharedStrategy::HashClientId => {
                publisher_hash(from.map(|key| self.sessions[key.0 as usize].session.client_id()))
            }
            _ => 0,
        };
        let mut picked = Vec::new();
        let strategy = self.protocol.shared_strategy;
        self.shared
            .pick_all(message.topic.as_str(), strategy, publisher, &mut picked);
        let matched = !picked.is_empty();
        for (name, member) in picked {
            self.send_shared(now, message.clone(), name, member, origin, publisher, 0);
        }
        matched
    }

    /// Hands a message to the chosen member: locally, or over the mesh to its shard.
    #[allow(clippy::too_many_arguments)]
    fn send_shared(
        &mut self,
        now: Instant,
        message: Arc<Message>,
        name: ByteStr,
        member: Member,
        origin: Option<ConnectionId>,
        publisher: u64,
        hops: u8,
    ) {
        if member.shard != self.id {
            let to = member.shard;
            self.mesh.send(
                to,
                ShardMessage::SharedPublish {
                    message,
                    name,
                    session: member.session,
                    params: member.params,
                    origin,
                    publisher,
                    hops,
                },
            );
            return;
        }
        self.deliver_shared(now, member.session, message, name, member.params);
    }

    /// Delivers to a chosen local member, if the ACL lets it read the topic. Always checked
    /// (not only with `read_check`): every shard keeps its own copy of the members'
    /// parameters, which a reload does not update. A refused copy is dropped and counted.
    fn deliver_shared(
        &mut self,
        now: Instant,
        key: SessionKey,
        message: Arc<Message>,
        name: ByteStr,
        params: SubParams,
    ) {
        if self.may_read(key, message.topic.as_str()) {
            let envelope = shared_envelope(message, name, params);
            self.deliver_to(now, key, envelope);
        }
    }

    /// A message a peer picked one of our sessions for. If that session is no longer a member
    /// (it moved or unsubscribed since), pick again here.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn on_shared_publish(
        &mut self,
        now: Instant,
        from: ShardId,
        message: Arc<Message>,
        name: ByteStr,
        session: SessionKey,
        params: SubParams,
        origin: Option<ConnectionId>,
        publisher: u64,
        hops: u8,
    ) {
        self.flow.set_origin(origin.map(|conn| (from, conn)));
        let member_here = self
            .sessions
            .get(session.0 as usize)
            .is_some_and(|entry| entry.session.has_subscription(&name));
        if member_here {
            self.deliver_shared(now, session, message, name, params);
        } else if (hops as usize) < self.peers.shard_count() {
            let strategy = self.protocol.shared_strategy;
            if let Some(member) =
                self.shared
                    .pick_other(&name, strategy, publisher, (self.id, session))
            {
                self.send_shared(now, message, name, member, origin, publisher, hops + 1);
            }
        } else {
            self.stats.publish_dropped += 1;
            self.stats.drops.no_subscriber += 1;
        }
        self.flow.set_origin(None);
    }

    /// A member's connection ended: its unacknowledged shared messages go to another member
    /// of their group. With no other member, a persistent session keeps them (queued for its
    /// return); otherwise they are dropped, counted.
    pub(super) fn redeliver_shared(&mut self, now: Instant, key: SessionKey) {
        if !self.sessions[key.0 as usize]
            .session
            .has_shared_subscriptions()
        {
            return;
        }
        let envelopes = self.sessions[key.0 as usize].session.take_shared();
        let strategy = self.protocol.shared_strategy;
        for envelope in envelopes {
            let name = envelope
                .group()
                .cloned()
                .expect("take_shared returns group copies");
            let other = self.shared.pick_other(&name, strategy, 0, (self.id, key));
            match other {
                Some(member) => {
                    self.stats.shared_redelivered += 1;
                    self.send_shared(now, envelope.message, name, member, None, 0, 0);
                }
                None => self.deliver_to(now, key, envelope),
            }
        }
    }
}

/// The copy of a message a shared member gets: at its granted QoS, RETAIN cleared as for any
/// live delivery unless Retain As Published [MQTT-3.3.1-9], tagged with its group.
fn shared_envelope(message: Arc<Message>, name: ByteStr, params: SubParams) -> Envelope {
    let qos = message.qos.min(params.options.qos);
    let retain = params.options.retain_as_published && message.retain;
    let sub_ids = if params.id != 0 {
        vec![params.id]
    } else {
        Vec::new()
    };
    Envelope {
        message,
        qos,
        retain,
        tag: Some(Box::new(Tag {
            sub_ids,
            group: Some(name),
        })),
    }
}

/// The name a group is known by on every shard: the subscription as written.
pub(super) fn filter_name(filter: &crate::topic::SubscriptionFilter) -> ByteStr {
    let group = filter.share_group().map(|g| g.as_str()).unwrap_or("");
    ByteStr::from(format!("$share/{group}/{}", filter.filter().as_str()))
}
