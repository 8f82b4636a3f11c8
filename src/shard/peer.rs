//! A shard's dealings with the other shards: the interest summaries, the client-id registry
//! for the ids whose home this shard is, and the handler for every [`ShardMessage`].
//!
//! # The client-id registry
//! Each client id has a home shard (a fixed hash of the id). The home records which shard holds
//! the id's session and serialises claims: while one claim is moving the session, later claims
//! for the same id queue behind it, so an `Evict` is only ever sent to a shard whose session
//! is settled. `SessionDiscarded` from a holder is ignored while a move is under way (the move's
//! `Evict` will find no session, which is the same outcome).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use ahash::AHashMap;

use crate::codec::ByteStr;
use crate::mesh::ShardId;
use crate::session::Message;
use crate::topic::{SubscriptionTrie, TopicFilter};

use super::{ConnRef, ConnectionId, Handoff, Shard, ShardMessage, StatsSnapshot};

/// The home shard's record of one client id.
#[derive(Debug, Default)]
struct HomeEntry {
    /// The shard holding the session, if any shard does.
    holder: Option<ShardId>,
    /// A claim is being served; `Settled` ends it.
    moving: bool,
    /// Claims that arrived while `moving`, served in order. Bounded in practice by the
    /// connections that can be waiting for a CONNACK with this id.
    /// Boxed: one entry per client id at home here, and claims almost never queue, so an
    /// empty deque inline (32 bytes) would cost every connected client.
    #[allow(clippy::box_collection)]
    queued: Option<Box<VecDeque<(ConnRef, bool)>>>,
}

/// Everything a shard knows about its peers.
#[derive(Debug)]
pub(super) struct Peers {
    shards: usize,
    /// Local subscriptions per filter, over all sessions of this shard.
    filter_refs: AHashMap<TopicFilter, u32>,
    /// The filters each other shard has subscribers for.
    remote: SubscriptionTrie<ShardId, ()>,
    /// Number of the last interest update this shard sent.
    interest_seq: u64,
    /// The last of our interest updates each peer acknowledged (`u64::MAX` for ourselves).
    peer_acked: Vec<u64>,
    /// Connections whose output waits for interest acknowledgements.
    held: Vec<ConnectionId>,
    /// Connections granted a session by a mesh message, whose buffered input must be resumed.
    resume: Vec<ConnectionId>,
    /// Peers whose `Restored` has not come yet. No client input is read until it is 0
    /// (`announce_restored` says why).
    restoring: usize,
    /// Wills that came due meanwhile (at most one per restored session), published after.
    held_wills: Vec<Arc<Message>>,
    /// True while `handle_mesh` dispatches: a grant then arrived asynchronously, and the
    /// connection's buffered input must be resumed afterwards. (A grant made synchronously
    /// inside the connection's own CONNECT needs no resume: its decode loop is still running.)
    draining_mesh: bool,
    /// The registry for client ids whose home is this shard.
    homes: AHashMap<ByteStr, HomeEntry>,
    /// Mesh messages taken so far (shutdown waits until this stops moving).
    taken: u64,
    /// Shard 0 only: the latest counters of every shard.
    totals: Vec<StatsSnapshot>,
    /// Reused per publish: which shards have matching interest.
    targets: Vec<bool>,
}

impl Peers {
    pub(super) fn new(shards: usize) -> Peers {
        Peers {
            shards,
            filter_refs: AHashMap::new(),
            remote: SubscriptionTrie::new(),
            interest_seq: 0,
            peer_acked: vec![0; shards],
            held: Vec::new(),
            resume: Vec::new(),
            restoring: 0,
            held_wills: Vec::new(),
            draining_mesh: false,
            homes: AHashMap::new(),
            taken: 0,
            totals: vec![StatsSnapshot::default(); shards],
            targets: vec![false; shards],
        }
    }

    pub(super) fn shard_count(&self) -> usize {
        self.shards
    }

    /// Every shard but `me`.
    pub(super) fn others(&self, me: ShardId) -> impl Iterator<Item = ShardId> {
        (0..self.shards as u16)
            .map(ShardId)
            .filter(move |s| *s != me)
    }

    /// The home of a client id: the same on every shard and across restarts, so SipHash with
    /// its fixed default keys rather than a randomly seeded hasher.
    /// Records that this shard, the client id's home, holds its session (a restored one).
    pub(super) fn home_holds(&mut self, client_id: ByteStr, holder: ShardId) {
        self.homes.entry(client_id).or_default().holder = Some(holder);
    }

    pub(super) fn home_of(&self, client_id: &ByteStr) -> ShardId {
        ShardId(crate::persist::home_of(client_id.as_str(), self.shards) as u16)
    }

    pub(super) fn interest_seq(&self) -> u64 {
        self.interest_seq
    }

    /// The last interest update every peer has acknowledged.
    pub(super) fn acked(&self) -> u64 {
        self.peer_acked.iter().copied().min().unwrap_or(u64::MAX)
    }

    pub(super) fn hold_will(&mut self, will: Arc<Message>) {
        self.held_wills.push(will);
    }

    pub(super) fn hold(&mut self, id: ConnectionId) {
        self.held.push(id);
    }

    pub(super) fn resume_input(&mut self, id: ConnectionId) {
        if self.draining_mesh {
            self.resume.push(id);
        }
    }

    /// Counts a local subscription change. Returns `(add, seq)` when the peers must be told:
    /// the filter's first subscriber arrived or its last one left.
    pub(super) fn local_interest(
        &mut self,
        filter: &TopicFilter,
        delta: i32,
    ) -> Option<(bool, u64)> {
        let refs = self.filter_refs.entry(filter.clone()).or_insert(0);
        let before = *refs;
        *refs = refs.saturating_add_signed(delta);
        let after = *refs;
        if after == 0 {
            self.filter_refs.remove(filter);
        }
        if self.shards == 1 || (before == 0) == (after == 0) {
            return None;
        }
        self.interest_seq += 1;
        Some((after > 0, self.interest_seq))
    }

    /// Numbers a shared-group membership update for the peers; `None` with no peers.
    pub(super) fn next_seq(&mut self) -> Option<u64> {
        if self.shards == 1 {
            return None;
        }
        self.interest_seq += 1;
        Some(self.interest_seq)
    }

    /// Finds the shards with interest in `topic`; ask with [`Peers::is_target`].
    pub(super) fn match_remote(&mut self, topic: &str) {
        self.targets.iter_mut().for_each(|t| *t = false);
        let targets = &mut self.targets;
        self.remote
            .for_each_match(topic, |shard, ()| targets[shard.index()] = true);
    }

    pub(super) fn is_target(&self, shard: ShardId) -> bool {
        self.targets[shard.index()]
    }
}

impl Shard {
    /// Sets this shard's own entry so `acked()` ignores it. Called once at construction.
    pub(super) fn init_peers(&mut self) {
        self.peers.peer_acked[self.id.index()] = u64::MAX;
    }

    /// Delivers `message` to shard `to`, or handles it at once if `to` is this shard.
    pub(super) fn send_to(&mut self, now: Instant, to: ShardId, message: ShardMessage) {
        if to == self.id {
            self.handle_message(now, self.id, message);
        } else {
            self.mesh.send(to, message);
        }
    }

    /// Takes at most `mesh_batch_max` messages from the mesh and handles them. Returns how many.
    pub fn handle_mesh(&mut self, now: Instant) -> usize {
        let max = self.limits.mesh_batch_max as usize;
        let mut inbox = Vec::new();
        let taken = self
            .mesh
            .drain(max, |from, message| inbox.push((from, message)));
        self.peers.taken += taken as u64;
        self.peers.draining_mesh = true;
        for (from, message) in inbox {
            self.handle_message(now, from, message);
        }
        self.peers.draining_mesh = false;
        for id in std::mem::take(&mut self.peers.resume) {
            self.process_input(now, id);
        }
        self.resume_released(now);
        taken
    }

    /// Mesh messages taken since start-up.
    pub fn mesh_received(&self) -> u64 {
        self.peers.taken
    }

    /// Pushes this tick's mesh messages to the rings. Returns how many are still waiting.
    pub fn flush_mesh(&mut self) -> usize {
        self.mesh.flush()
    }

    /// Messages waiting for room in a ring; past `mesh_backlog_max` the driver stops reading.
    pub fn mesh_backlog(&self) -> usize {
        self.mesh.backlog()
    }

    /// The mesh endpoint's doorbells, for the driver's wait.
    pub fn mesh_endpoint(&self) -> &crate::mesh::Endpoint<ShardMessage> {
        &self.mesh
    }

    fn handle_message(&mut self, now: Instant, from: ShardId, message: ShardMessage) {
        match message {
            ShardMessage::Publish {
                message,
                deliver,
                origin,
                stamp,
            } => {
                self.note_received(from);
                self.on_remote_publish(now, from, message, deliver, origin, stamp)
            }
            ShardMessage::Durable { through } => self.on_durable(from, through),
            ShardMessage::Throttle { conn } => self.apply_throttle(from, conn),
            ShardMessage::Unthrottle => self.unthrottle_from(from),
            ShardMessage::Interest { filter, add, seq } => {
                if add {
                    self.peers.remote.insert(&filter, from, ());
                } else {
                    self.peers.remote.remove(&filter, &from);
                }
                self.mesh.send(from, ShardMessage::InterestAck { seq });
            }
            ShardMessage::SharedMember {
                name,
                filter,
                session,
                change,
                seq,
            } => {
                self.shared.apply(&name, &filter, from, session, change);
                self.mesh.send(from, ShardMessage::InterestAck { seq });
            }
            ShardMessage::SharedPublish {
                message,
                name,
                session,
                params,
                origin,
                publisher,
                hops,
            } => self.on_shared_publish(
                now, from, message, name, session, params, origin, publisher, hops,
            ),
            ShardMessage::InterestAck { seq } => {
                self.on_interest_ack(from, seq);
                self.check_handed_over(now);
            }
            ShardMessage::Restored => self.on_restored(now),
            ShardMessage::Claim {
                client_id,
                conn,
                clean_start,
            } => self.on_claim(now, client_id, conn, clean_start),
            ShardMessage::Evict {
                client_id,
                conn,
                clean_start,
            } => self.on_evict(now, client_id, conn, clean_start),
            ShardMessage::Granted {
                client_id,
                conn,
                handoff,
            } => self.on_granted(now, from, client_id, conn, handoff),
            ShardMessage::Settled {
                client_id,
                holds_session,
            } => self.on_settled(now, client_id, from, holds_session),
            ShardMessage::SessionDiscarded { client_id } => {
                self.on_session_discarded(client_id, from)
            }
            handoff @ (ShardMessage::Forwarded { .. }
            | ShardMessage::HandedOver { .. }
            | ShardMessage::Fence { .. }
            | ShardMessage::FenceAck { .. }
            | ShardMessage::Fenced { .. }
            | ShardMessage::ForwardingDone { .. }) => self.on_handoff(now, from, handoff),
            ShardMessage::Stats { from, snapshot } => self.peers.totals[from.index()] = *snapshot,
        }
    }

    /// At start-up with a log, after restoring this shard's sessions (whose subscriptions
    /// went out as `Interest` and `SharedMember`): tells every peer so, and reads no client
    /// until every peer has told us the same. A live SUBSCRIBE holds its SUBACK until every
    /// peer knows the new interest; a restored session has no SUBACK to hold, so without this a
    /// client could publish on a shard that has not yet heard of a subscriber restored on
    /// another, and its message would be acknowledged and routed to nobody.
    pub(super) fn announce_restored(&mut self) {
        for to in self.peers.others(self.id) {
            self.mesh.send(to, ShardMessage::Restored);
        }
        self.peers.restoring = self.peers.shard_count() - 1;
    }

    /// True until every peer's `Restored` has come: client input waits.
    pub(super) fn awaiting_restored(&self) -> bool {
        self.peers.restoring > 0
    }

    /// A peer's restored subscriptions are all known here; after the last peer's, publish the
    /// wills held meanwhile and read every connection that waited (`handle_mesh` decodes their
    /// buffered input, the driver wakes their readers).
    fn on_restored(&mut self, now: Instant) {
        assert!(
            self.peers.restoring > 0,
            "`Restored` comes once per peer, after `announce_restored`"
        );
        self.peers.restoring -= 1;
        if self.peers.restoring > 0 {
            return;
        }
        for will in std::mem::take(&mut self.peers.held_wills) {
            self.publish(now, None, will);
        }
        for (index, conn) in &self.conns {
            let id = ConnectionId {
                index: index as u32,
                generation: conn.generation,
            };
            self.flow.resume_later(id);
        }
    }

    fn on_interest_ack(&mut self, from: ShardId, seq: u64) {
        let acked = &mut self.peers.peer_acked[from.index()];
        *acked = (*acked).max(seq);
        let all = self.peers.acked();
        let held = std::mem::take(&mut self.peers.held);
        for id in held {
            match self.conn(id) {
                Some(conn) if conn.hold_until > all => self.peers.held.push(id),
                Some(_) => self.mark_dirty(id),
                None => {}
            }
        }
    }

    /// At the home shard: serve a claim now, or queue it behind the one in progress.
    fn on_claim(&mut self, now: Instant, client_id: ByteStr, conn: ConnRef, clean_start: bool) {
        let entry = self.peers.homes.entry(client_id.clone()).or_default();
        if entry.moving {
            entry
                .queued
                .get_or_insert_with(Box::default)
                .push_back((conn, clean_start));
            return;
        }
        entry.moving = true;
        match entry.holder {
            None => {
                let handoff = Handoff::Fresh;
                let granted = ShardMessage::Granted {
                    client_id,
                    conn: conn.conn,
                    handoff,
                };
                self.send_to(now, conn.shard, granted);
            }
            Some(holder) => self.send_to(
                now,
                holder,
                ShardMessage::Evict {
                    client_id,
                    conn,
                    clean_start,
                },
            ),
        }
    }

    /// At the home shard: a claim finished; record the holder and serve the next claim.
    fn on_settled(&mut self, now: Instant, client_id: ByteStr, from: ShardId, holds: bool) {
        let Some(entry) = self.peers.homes.get_mut(&client_id) else {
            return;
        };
        entry.moving = false;
        entry.holder = holds.then_some(from);
        let next = entry.queued.as_mut().and_then(|q| q.pop_front());
        if entry.queued.as_ref().is_some_and(|q| q.is_empty()) {
            entry.queued = None;
        }
        match next {
            Some((conn, clean_start)) => self.on_claim(now, client_id, conn, clean_start),
            None if entry.holder.is_none() => {
                self.peers.homes.remove(&client_id);
            }
            None => {}
        }
    }

    /// At the home shard: the holder discarded the session.
    fn on_session_discarded(&mut self, client_id: ByteStr, from: ShardId) {
        if let Some(entry) = self.peers.homes.get(&client_id) {
            if !entry.moving && entry.holder == Some(from) {
                self.peers.homes.remove(&client_id);
            }
        }
    }

    /// Every `$SYS` interval: shard 0 publishes the totals, the others report to it.
    pub(super) fn sys_tick(&mut self, now: Instant) {
        let snapshot = self.snapshot();
        if self.id == ShardId(0) {
            self.peers.totals[0] = snapshot;
            let mut total = StatsSnapshot::default();
            for shard in &self.peers.totals {
                total.stats.add(&shard.stats);
                total.sessions += shard.sessions;
                total.subscriptions += shard.subscriptions;
            }
            self.publish_sys(now, &total);
        } else {
            let message = ShardMessage::Stats {
                from: self.id,
                snapshot: Box::new(snapshot),
            };
            self.mesh.send(ShardId(0), message);
        }
    }
}
