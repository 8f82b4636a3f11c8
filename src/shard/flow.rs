//! Publisher flow control: slow the publishers, don't drop the messages.
//!
//! When a routed QoS 1/2 message lands in the queue of an online client that is reading too
//! slowly ([`Session::is_congested`]), the shard stops reading from the connection that
//! published it, and stops decoding what is already buffered from it (so a large read does not
//! overshoot the queue). If that connection lives on another shard, the owner is told with
//! `ShardMessage::Throttle`. Once every congested session on this shard has drained (or its
//! client has gone offline or stalled), every throttle this shard placed is lifted at once:
//! locally, and with `ShardMessage::Unthrottle` to the peers. The unread publishes wait in the
//! publishers' sockets, and TCP slows the publishers down.
//!
//! A stalled consumer (no acknowledgement for `session::STALL_AFTER`) stops counting as
//! congested, so one dead subscriber cannot freeze its publishers; its queue fills and drops at
//! `queued_messages_max` instead, counted.
//!
//! [`Session::is_congested`]: crate::session::Session::is_congested

use std::time::Instant;

use ahash::AHashSet;

use crate::mesh::ShardId;

use super::{ConnectionId, SessionKey, Shard, ShardMessage};

/// The flow-control state of one shard.
#[derive(Debug)]
pub(super) struct FlowControl {
    /// Online sessions of this shard that are congested.
    congested: AHashSet<SessionKey>,
    /// Connections (on any shard, this one included) this shard has asked to throttle.
    throttling: AHashSet<(ShardId, ConnectionId)>,
    /// This shard's connections that are throttled, by the shard that asked.
    throttled_by: Vec<AHashSet<ConnectionId>>,
    /// The connection whose publish is being routed right now, if any.
    origin: Option<(ShardId, ConnectionId)>,
    /// Some connection's last throttle was lifted since the driver last looked.
    released: bool,
    /// Connections whose last throttle was lifted and whose buffered input must be decoded.
    resume: Vec<ConnectionId>,
}

impl FlowControl {
    pub(super) fn new(shards: usize) -> FlowControl {
        FlowControl {
            congested: AHashSet::new(),
            throttling: AHashSet::new(),
            throttled_by: (0..shards).map(|_| AHashSet::new()).collect(),
            origin: None,
            released: false,
            resume: Vec::new(),
        }
    }

    /// A connection may be read again (its output went to the writer, or it stopped
    /// waiting): decode its buffered input at the next chance and wake the driver's readers.
    pub(super) fn resume_later(&mut self, id: ConnectionId) {
        self.resume.push(id);
        self.released = true;
    }

    pub(super) fn set_origin(&mut self, origin: Option<(ShardId, ConnectionId)>) {
        self.origin = origin;
    }

    /// The queue bound for the message being routed. A throttled publisher may still have
    /// messages in flight: one already decoded locally when the throttle came, or those already
    /// in the mesh from another shard (its ring and its backlog). They were acknowledged to
    /// their publishers, so a congested queue takes them beyond `queued_messages_max` rather
    /// than drop them: up to `mesh_ring_capacity + mesh_backlog_max` from *each* peer shard,
    /// since every peer can have that much in flight at once (one peer's worth alone lost
    /// 102 of 180 acknowledged messages with three publishing shards; a bound of 4096 alone
    /// lost QoS 1 at 2 shards).
    pub(super) fn queue_max(&self, limits: &crate::config::Limits) -> usize {
        let max = limits.queued_messages_max as usize;
        match self.origin {
            Some(origin) if self.throttling.contains(&origin) => {
                let peers = self.throttled_by.len().saturating_sub(1).max(1);
                let in_flight =
                    limits.mesh_ring_capacity as usize + limits.mesh_backlog_max as usize;
                max + peers * in_flight
            }
            _ => max,
        }
    }
}

impl Shard {
    /// Before a delivery to `key`: if that session is already congested, throttle the publisher
    /// of the message being routed first, so that its message counts as in flight rather than
    /// being dropped (this is what lets a thousand publishers fan in to one slow subscriber).
    pub(super) fn before_delivery(&mut self, key: SessionKey) {
        if self.sessions[key.0 as usize].congested {
            self.throttle_origin(key);
        }
    }

    /// After a delivery to `key` was queued: if its client is congested, throttle the
    /// publisher of the message being routed.
    pub(super) fn note_queued(&mut self, now: Instant, key: SessionKey) {
        if !self.sessions[key.0 as usize]
            .session
            .is_congested(now, &self.limits)
        {
            return;
        }
        self.flow.congested.insert(key);
        self.sessions[key.0 as usize].congested = true;
        self.throttle_origin(key);
    }

    /// Throttles the connection whose publish is being routed, unless it is the congested
    /// session's own connection (its acknowledgements are what clear the congestion).
    fn throttle_origin(&mut self, congested: SessionKey) {
        let Some(origin) = self.flow.origin else {
            return;
        };
        let own = self.sessions[congested.0 as usize]
            .conn
            .map(|c| (self.id, c));
        if own == Some(origin) || !self.flow.throttling.insert(origin) {
            return;
        }
        self.stats.publishers_throttled += 1;
        if origin.0 == self.id {
            self.apply_throttle(self.id, origin.1);
        } else {
            self.mesh
                .send(origin.0, ShardMessage::Throttle { conn: origin.1 });
        }
    }

    /// Throttles one of this shard's connections on behalf of `source`.
    pub(super) fn apply_throttle(&mut self, source: ShardId, id: ConnectionId) {
        if self.conn(id).is_some() && self.flow.throttled_by[source.index()].insert(id) {
            if let Some(conn) = self.conn_mut(id) {
                conn.throttles += 1;
            }
        }
    }

    /// Lifts every throttle `source` placed on this shard's connections.
    pub(super) fn unthrottle_from(&mut self, source: ShardId) {
        let ids: Vec<ConnectionId> = self.flow.throttled_by[source.index()].drain().collect();
        for id in ids {
            if let Some(conn) = self.conn_mut(id) {
                conn.throttles = conn.throttles.saturating_sub(1);
                if conn.throttles == 0 {
                    self.flow.released = true;
                    self.flow.resume.push(id);
                }
            }
        }
    }

    /// Forgets sessions that are no longer congested; when none is left, lifts every throttle
    /// this shard placed.
    pub(super) fn check_congestion(&mut self, now: Instant) {
        if self.flow.congested.is_empty() && self.flow.throttling.is_empty() {
            return;
        }
        let (sessions, limits) = (&mut self.sessions, &self.limits);
        self.flow.congested.retain(|key| {
            let Some(entry) = sessions.get_mut(key.0 as usize) else {
                return false;
            };
            let still = !entry.session.is_decongested(now, limits);
            entry.congested = still;
            still
        });
        if self.flow.congested.is_empty() {
            self.unthrottle_all();
        }
    }

    /// After a packet from session `key`'s client: if its acknowledgements drained its queue,
    /// it is no longer congested. The per-packet form of [`Shard::check_congestion`], which
    /// scans every congested session and runs on ticks (stalls) and closes (departures).
    pub(super) fn check_congestion_of(&mut self, now: Instant, key: SessionKey) {
        match self.sessions.get_mut(key.0 as usize) {
            // The common case, a session that is not congested: a field read per packet.
            Some(entry) if !entry.congested => return,
            Some(entry) => {
                if !entry.session.is_decongested(now, &self.limits) {
                    return;
                }
                entry.congested = false;
            }
            // A session that ended (a clean session's DISCONNECT) no longer holds anyone
            // back, if it was in the set.
            None if !self.flow.congested.contains(&key) => return,
            None => {}
        }
        self.flow.congested.remove(&key);
        if self.flow.congested.is_empty() {
            self.unthrottle_all();
        }
    }

    /// Lifts every throttle this shard placed, here and on its peers.
    fn unthrottle_all(&mut self) {
        let mut shards: Vec<ShardId> = self.flow.throttling.drain().map(|(s, _)| s).collect();
        shards.sort_unstable();
        shards.dedup();
        for shard in shards {
            if shard == self.id {
                self.unthrottle_from(self.id);
            } else {
                self.mesh.send(shard, ShardMessage::Unthrottle);
            }
        }
    }

    /// Decodes the input that throttled connections left buffered, now that they may run.
    /// Called at the end of every entry point, never from inside another connection's decode.
    pub(super) fn resume_released(&mut self, now: Instant) {
        while !self.flow.resume.is_empty() {
            for id in std::mem::take(&mut self.flow.resume) {
                self.process_input(now, id);
            }
        }
    }

    /// Whether the driver should hold back the next read on this connection: flow control
    /// throttles it, its output is over `outbound_buffer_max_bytes` (a client that sends but
    /// does not read), it waits for its password check or its session, or the shard is
    /// starting and waits for its peers' restored subscriptions (`awaiting_restored`).
    pub fn is_throttled(&self, id: ConnectionId) -> bool {
        let out_max = self.limits.outbound_buffer_max_bytes as usize;
        self.conn(id).is_some_and(|c| {
            c.throttles > 0
                || c.out.bytes.len() >= out_max
                || c.state.is_parked()
                || self.awaiting_restored()
        })
    }

    /// Decodes the input of connections that `take_output` let go of. The driver calls this
    /// after a writer took a connection's output; true if any was resumed (then wake the
    /// paused readers and flush).
    pub fn resume_after_output(&mut self, now: Instant) -> bool {
        if self.flow.resume.is_empty() {
            return false;
        }
        self.resume_released(now);
        true
    }

    /// True once after some connection's last throttle was lifted: wake the paused readers.
    pub fn take_released(&mut self) -> bool {
        std::mem::take(&mut self.flow.released)
    }
}
