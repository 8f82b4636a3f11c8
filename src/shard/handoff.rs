//! Moving a session between shards without losing what was acknowledged in the move.
//!
//! A persistent client that reconnects on another shard takes its session along (`connect.rs`:
//! `Evict`, `Granted` with `Handoff::Moved`). Publishers' shards route by *interest*: which
//! shards have subscribers for a filter. If the old shard dropped its interest when the session
//! left, a publisher's shard could hear of that before it hears of the new shard's interest,
//! and a message it acknowledged in between would reach nobody (paho against 3 shards lost up
//! to 4 of ~13,700 messages per run this way). So the move keeps routing to the old holder
//! until the new interest is in place everywhere:
//!
//! 1. The old shard **A** hands the session over but keeps its subscriptions in its trie as a
//!    *ghost*: whatever still matches them there is `Forwarded` to the new shard **B**.
//! 2. B adopts the session (its interest goes out) and, once every peer has acknowledged that
//!    interest, tells A `HandedOver`.
//! 3. A sends every peer a `Fence`. A peer answers `FenceAck` to A and `Fenced` to B. By then
//!    it routes by B's interest, and everything it sent A before has been handled by A (one
//!    ring, in order), so after the last `FenceAck` A drops the ghost and its interest, and
//!    tells B `ForwardingDone`.
//! 4. Between steps 2 and 3 a message can reach B twice, directly and forwarded. B delivers
//!    each message once per moved session until it has `ForwardingDone` and every `Fenced`
//!    (messages are shared `Arc`s, so the same allocation is the same message). Only then does
//!    B tell the home shard `Settled`, so the session cannot move again mid-way.
//!
//! Forwarded copies may overtake or trail direct ones for a moment, so per-topic order is not
//! kept across the move itself; nothing acknowledged is lost, and nothing is delivered twice
//! within [`HANDOFF_DEDUP_MAX`] messages.

use std::sync::Arc;
use std::time::Instant;

use ahash::{AHashMap, AHashSet};

use crate::codec::ByteStr;
use crate::mesh::ShardId;
use crate::session::{Envelope, Message, Session};
use crate::topic::TopicFilter;

use super::{SessionKey, Shard, ShardMessage};

/// Messages B remembers per moved session to drop the second copy of; past it, a message may
/// arrive twice (QoS 1 allows that), never not at all.
pub const HANDOFF_DEDUP_MAX: usize = 65_536;

/// On the old shard: a session that moved away, still subscribed here until the fence.
#[derive(Debug)]
pub(super) struct Ghost {
    client_id: ByteStr,
    /// The shard the session moved to.
    to: ShardId,
    /// Its plain (not shared) subscriptions, still in this shard's trie under the ghost's key.
    filters: Vec<TopicFilter>,
    /// `FenceAck`s still to come; `None` until `HandedOver`.
    acks_left: Option<usize>,
}

/// On the new shard: a session adopted from another shard, until the old one stops forwarding.
#[derive(Debug)]
pub(super) struct Adoption {
    /// The session, while it lasts (it may end before the move is complete).
    key: Option<SessionKey>,
    from: ShardId,
    /// Our interest update that must be acknowledged before `HandedOver`; `None` once sent.
    interest_seq: Option<u64>,
    /// `Fenced` still to come from the shards other than the old holder and us.
    fenced_left: usize,
    forwarding_done: bool,
    /// The messages delivered so far, kept alive so that their addresses stay theirs.
    seen: AHashSet<usize>,
    kept: Vec<Arc<Message>>,
}

impl Adoption {
    /// True the first time this message is offered.
    fn first_time(&mut self, message: &Arc<Message>) -> bool {
        if self.kept.len() >= HANDOFF_DEDUP_MAX {
            return true;
        }
        let first = self.seen.insert(Arc::as_ptr(message) as usize);
        if first {
            self.kept.push(message.clone());
        }
        first
    }
}

/// Both sides' state, per shard. Looked up by session key on the delivery path and by client
/// id by the handoff messages, so each has a map both ways.
#[derive(Debug, Default)]
pub(super) struct Handoffs {
    ghosts: AHashMap<SessionKey, Ghost>,
    ghost_of: AHashMap<ByteStr, SessionKey>,
    adoptions: AHashMap<ByteStr, Adoption>,
    adopted: AHashMap<SessionKey, ByteStr>,
}

impl Handoffs {
    /// True when no session is moving to or from this shard: the delivery path skips it all.
    pub(super) fn is_idle(&self) -> bool {
        self.ghosts.is_empty() && self.adopted.is_empty()
    }
}

impl Shard {
    /// On the old holder: hands session `key` to shard `to`, keeping its plain subscriptions
    /// as a ghost that forwards (step 1).
    pub(super) fn hand_off(&mut self, key: SessionKey, to: ShardId) -> Session {
        let client_id = self.sessions[key.0 as usize].session.client_id().clone();
        let placeholder = Session::new(client_id.clone(), 0);
        let entry = &mut self.sessions[key.0 as usize];
        assert!(
            entry.conn.is_none(),
            "handing off a session with a connection"
        );
        if let Some(at) = entry.session.next_deadline() {
            self.timers.remove(&(at, key));
        }
        let session = std::mem::replace(&mut entry.session, placeholder);
        let mut filters = Vec::new();
        for subscription in session.subscriptions() {
            if subscription.filter.is_shared() {
                self.remove_subscription(key, &subscription.filter);
            } else {
                filters.push(subscription.filter.filter().clone());
            }
        }
        if self.clients.get(&client_id) == Some(&key) {
            self.clients.remove(&client_id);
        }
        self.handoffs.ghost_of.insert(client_id.clone(), key);
        let ghost = Ghost {
            client_id,
            to,
            filters,
            acks_left: None,
        };
        self.handoffs.ghosts.insert(key, ghost);
        session
    }

    /// In `deliver_to`: true if `key` is a ghost, after forwarding the copy to its session's
    /// new shard; true too if `key` is an adopted session that already got this message.
    pub(super) fn handoff_took(&mut self, key: SessionKey, envelope: &Envelope) -> bool {
        if let Some(ghost) = self.handoffs.ghosts.get(&key) {
            let message = ShardMessage::Forwarded {
                client_id: ghost.client_id.clone(),
                envelope: envelope.clone(),
            };
            let to = ghost.to;
            self.mesh.send(to, message);
            return true;
        }
        if self.handoffs.adopted.is_empty() {
            return false;
        }
        let Some(client_id) = self.handoffs.adopted.get(&key) else {
            return false;
        };
        match self.handoffs.adoptions.get_mut(client_id) {
            Some(adoption) => !adoption.first_time(&envelope.message),
            None => false,
        }
    }

    /// True if `key` is a ghost: its deliveries are checked on the session's new shard.
    pub(super) fn is_ghost(&self, key: SessionKey) -> bool {
        !self.handoffs.ghosts.is_empty() && self.handoffs.ghosts.contains_key(&key)
    }

    /// On the new holder, after adopting a moved session: wait for our interest to be known
    /// everywhere, then tell the old holder (step 2).
    pub(super) fn adopted(&mut self, now: Instant, key: SessionKey, from: ShardId) {
        let client_id = self.sessions[key.0 as usize].session.client_id().clone();
        let adoption = Adoption {
            key: Some(key),
            from,
            interest_seq: Some(self.peers.interest_seq()),
            fenced_left: self.peers.shard_count().saturating_sub(2),
            forwarding_done: false,
            seen: AHashSet::new(),
            kept: Vec::new(),
        };
        self.handoffs.adopted.insert(key, client_id.clone());
        self.handoffs.adoptions.insert(client_id, adoption);
        self.check_handed_over(now);
    }

    /// Sends `HandedOver` for every adoption whose interest every peer has acknowledged.
    pub(super) fn check_handed_over(&mut self, now: Instant) {
        if self.handoffs.adoptions.is_empty() {
            return;
        }
        let acked = self.peers.acked();
        let mut ready = Vec::new();
        for (client_id, adoption) in self.handoffs.adoptions.iter_mut() {
            if adoption.interest_seq.is_some_and(|seq| seq <= acked) {
                adoption.interest_seq = None;
                ready.push((adoption.from, client_id.clone()));
            }
        }
        for (from, client_id) in ready {
            self.send_to(now, from, ShardMessage::HandedOver { client_id });
        }
    }

    /// Handles the handoff messages (steps 2 to 4).
    pub(super) fn on_handoff(&mut self, now: Instant, from: ShardId, message: ShardMessage) {
        match message {
            ShardMessage::Forwarded {
                client_id,
                envelope,
            } => self.on_forwarded(now, client_id, envelope),
            ShardMessage::HandedOver { client_id } => self.fence(now, from, client_id),
            ShardMessage::Fence { client_id, to } => {
                if to != self.id {
                    let fenced = ShardMessage::Fenced {
                        client_id: client_id.clone(),
                    };
                    self.send_to(now, to, fenced);
                }
                self.send_to(now, from, ShardMessage::FenceAck { client_id });
            }
            ShardMessage::FenceAck { client_id } => self.on_fence_ack(now, client_id),
            ShardMessage::Fenced { client_id } => {
                self.adoption_step(now, &client_id, |a| a.fenced_left -= 1)
            }
            ShardMessage::ForwardingDone { client_id } => {
                self.adoption_step(now, &client_id, |a| a.forwarding_done = true)
            }
            _ => unreachable!("on_handoff is given handoff messages only"),
        }
    }

    /// A delivery forwarded by the old holder: to the session if it is still here, once.
    fn on_forwarded(&mut self, now: Instant, client_id: ByteStr, envelope: Envelope) {
        let Some(&key) = self.clients.get(&client_id) else {
            // The session ended meanwhile: nothing is owed to it.
            return;
        };
        if self.may_read(key, envelope.message.topic.as_str()) {
            self.deliver_to(now, key, envelope);
        }
    }

    /// On the old holder: `HandedOver` from the new one; fence every peer (step 3).
    fn fence(&mut self, now: Instant, to: ShardId, client_id: ByteStr) {
        let peers: Vec<ShardId> = self.peers.others(self.id).collect();
        let Some(ghost) = self
            .handoffs
            .ghost_of
            .get(&client_id)
            .and_then(|key| self.handoffs.ghosts.get_mut(key))
            .filter(|g| g.to == to)
        else {
            return;
        };
        ghost.acks_left = Some(peers.len());
        for peer in peers {
            let fence = ShardMessage::Fence {
                client_id: client_id.clone(),
                to,
            };
            self.send_to(now, peer, fence);
        }
    }

    /// On the old holder: one more peer fenced; after the last, drop the ghost.
    fn on_fence_ack(&mut self, now: Instant, client_id: ByteStr) {
        let Some(&key) = self.handoffs.ghost_of.get(&client_id) else {
            return;
        };
        let Some(ghost) = self
            .handoffs
            .ghosts
            .get_mut(&key)
            .filter(|g| g.acks_left.is_some())
        else {
            return;
        };
        let left = ghost.acks_left.map_or(0, |n| n.saturating_sub(1));
        ghost.acks_left = Some(left);
        if left > 0 {
            return;
        }
        let ghost = self.handoffs.ghosts.remove(&key).expect("found just above");
        self.handoffs.ghost_of.remove(&client_id);
        for filter in &ghost.filters {
            self.trie_remove(key, filter);
        }
        self.sessions.remove(key.0 as usize);
        let done = ShardMessage::ForwardingDone { client_id };
        self.send_to(now, ghost.to, done);
    }

    /// On the new holder: one more of the conditions for the end of the adoption; after the
    /// last, tell the home shard where the session is (step 4).
    fn adoption_step(
        &mut self,
        now: Instant,
        client_id: &ByteStr,
        step: impl FnOnce(&mut Adoption),
    ) {
        let Some(adoption) = self.handoffs.adoptions.get_mut(client_id) else {
            return;
        };
        step(adoption);
        if adoption.fenced_left > 0 || !adoption.forwarding_done {
            return;
        }
        let key = adoption.key;
        self.handoffs.adoptions.remove(client_id);
        if let Some(key) = key {
            self.handoffs.adopted.remove(&key);
        }
        let holds_session = key.is_some_and(|key| self.clients.get(client_id) == Some(&key));
        let home = self.peers.home_of(client_id);
        let settled = ShardMessage::Settled {
            client_id: client_id.clone(),
            holds_session,
        };
        self.send_to(now, home, settled);
    }

    /// On the new holder: the adopted session ends before the move is complete; its dedup
    /// window goes with it (forwards for it find no session and are dropped).
    pub(super) fn adoption_ended(&mut self, key: SessionKey) {
        if self.handoffs.adopted.is_empty() {
            return;
        }
        if let Some(client_id) = self.handoffs.adopted.remove(&key) {
            if let Some(adoption) = self.handoffs.adoptions.get_mut(&client_id) {
                adoption.key = None;
                adoption.seen.clear();
                adoption.kept.clear();
            }
        }
    }
}
