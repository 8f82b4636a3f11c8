//! What one core owns: its connections, the sessions they attach to, the subscription trie,
//! its copy of the retained store, and its end of the mesh. Single-threaded by construction.
//!
//! [`Shard`] is sans-IO like the session below it: the driver feeds it bytes, mesh messages and
//! events with `now` (`accept`, `handle_read`, `handle_closed`, `handle_mesh`, `handle_tick`)
//! and collects what to write and what to close (`drain_dirty`, `take_output`). Every await
//! lives in [`driver`], so the whole broker, several shards included, runs in tests without a
//! socket or a thread (see `tests.rs` and `tests_mesh.rs`).
//!
//! Two slabs, two nouns: a *connection* ([`ConnectionId`]) is a transport, a *session*
//! ([`SessionKey`]) is MQTT state that may outlive it. The trie maps filters to session keys,
//! so a persistent session keeps receiving (queueing) while offline.
//!
//! # Across shards (`peer.rs`)
//! Everything one shard tells another is one [`ShardMessage`] (`message.rs`), carried by the
//! generic rings of [`crate::mesh`].
//! - **Publish.** A message is delivered to local subscribers and forwarded once to each other
//!   shard whose *interest summary* matches it. Each shard tells the others when it gains its
//!   first or loses its last subscription to a filter; they keep those filters in a small
//!   trie keyed by shard. A subscriber's SUBACK is held back until every peer has acknowledged
//!   the interest, so a publish that follows a SUBACK always finds it.
//! - **Retained.** Every shard keeps a full copy; retained publishes go to every shard.
//! - **Client ids.** Each id has a *home* shard (a hash of the id) that records which shard
//!   holds its session. A CONNECT asks the home shard; the home shard asks the holder to close
//!   the old connection (take-over, will published) and hand the session over, or discard it
//!   for a clean start. The CONNACK waits for that answer.
//! - **Restart.** A shard that restored sessions from its log announces their subscriptions
//!   like new ones, then sends every peer `Restored`; no shard reads a client before every
//!   peer's `Restored` has come, so no publish misses a restored subscriber.
//! - **`$SYS`.** Shards send their counters to shard 0, which publishes the sums.
//!
//! Idle connections are what a broker has most of, so `Conn` is kept small (96 bytes, checked
//! by a test); the whole per-connection budget, shard and driver, is tabled in [`driver`].
//!
//! Flushing is batched: writing to a connection only marks it dirty; the driver drains the
//! dirty list once per tick and issues one write per connection for everything encoded since.
//! Mesh sends are batched the same way and pushed once per tick.

mod access;
mod auth;
mod connect;
pub mod driver;
mod flow;
mod handoff;
mod input;
mod listener;
mod log;
mod message;
mod peer;
mod persist;
mod retain;
mod route;
mod shared;
mod sys;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_access;
#[cfg(test)]
mod tests_invariants;
#[cfg(test)]
mod tests_limits;
#[cfg(test)]
mod tests_mesh;
#[cfg(test)]
mod tests_persist;
#[cfg(test)]
mod tests_v5;
pub mod verifier;

use std::net::{SocketAddr, SocketAddrV4, SocketAddrV6};

use std::time::{Duration, Instant};

use ahash::AHashMap;
use bytes::{Bytes, BytesMut};
use slab::Slab;

use std::collections::BTreeSet;

use crate::codec::{self, ByteStr, ProtocolVersion};
use crate::config::{Limits, ProtocolOptions};
use crate::mesh::{Endpoint, ShardId};
use crate::session::{
    Action, ClientIdGenerator, ConnectParams, Message, Outbox, Session, SubParams,
};
use crate::topic::{RetainStamp, RetainedStore, SubscriptionTrie, TopicFilter};

pub use crate::metrics::Stats;
pub use access::{Verified, VerifyRequest};
pub use listener::{ListenerId, ListenerPolicy, LISTENERS_MAX};
pub use message::{ConnRef, Handoff, MemberChange, ShardMessage, StatsSnapshot};

/// A connection slot plus the generation that was in it, so that a late completion for a
/// closed connection can never touch the connection that reused its slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnectionId {
    index: u32,
    generation: u32,
}

/// A session's slot in the shard's session slab.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionKey(u32);

/// How long a new connection may take to send CONNECT before it is closed. Bounds the cost
/// of sockets that connect and say nothing.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// What a connection is waiting for.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ConnState {
    /// Accepted; the first packet must be CONNECT [MQTT-3.1.0-1].
    AwaitingConnect { since: Instant },
    /// CONNECT named an authentication method; waiting for the client's next AUTH packet
    /// (the conversation, and when CONNECT came, are in `Shard::auth`; a second `Instant` here
    /// would cost every connection slot 8 bytes).
    Authenticating,
    /// CONNECT is valid; its password is being checked on a verifier thread (`access.rs`).
    /// No more is read until then.
    Verifying { parked: Box<Parked> },
    /// CONNECT is valid; waiting for the client id's home shard to grant the session. No more
    /// is read until then; after `CONNECT_TIMEOUT` the connection is closed.
    AwaitingSession { parked: Box<Parked> },
    /// CONNECT accepted and bound to a session.
    Attached {
        session: SessionKey,
        version: ProtocolVersion,
    },
    /// Being closed: input is ignored, remaining output is flushed, then the socket is shut.
    /// A peer that does not read that output gets `close_timeout_s`, then a hard shutdown
    /// (`Shard::closing` keeps the times, so that this state costs the slot nothing).
    Closing,
}

/// A valid CONNECT waiting for something other than the client: boxed, so that waiting costs
/// the connection slot 8 bytes, not the CONNECT's size.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Parked {
    params: ConnectParams,
    /// When the wait began: it may last `CONNECT_TIMEOUT` at most.
    since: Instant,
}

impl ConnState {
    fn is_closing(&self) -> bool {
        matches!(self, ConnState::Closing)
    }

    /// Waiting for the broker, not the client: no more input is read meanwhile.
    fn is_parked(&self) -> bool {
        matches!(
            self,
            ConnState::Verifying { .. } | ConnState::AwaitingSession { .. }
        )
    }
}

/// One transport connection.
#[derive(Debug)]
struct Conn {
    generation: u32,
    state: ConnState,
    /// Bytes received but not yet decoded (a partial frame). Released when empty, so an idle
    /// connection holds no read buffer; boxed, because even an empty `BytesMut` is 32 bytes of
    /// every connection's slot, where `None` is 8.
    read_buf: Option<Box<BytesMut>>,
    out: Outbox,
    /// Already in the dirty list; avoids listing a connection twice per tick.
    dirty: bool,
    /// The listener it came in on (per-listener rules, `listener.rs`).
    listener: ListenerId,
    /// Output is held until every peer has acknowledged interest update `hold_until`.
    hold_until: u64,
    /// How many shards currently ask us not to read from this connection (flow control).
    throttles: u16,
    /// For logs only.
    peer: PeerAddr,
}

/// A peer address in 16 bytes where `SocketAddr` takes 32: IPv4 inline, IPv6 boxed. `Conn`
/// is paid for by every idle connection, and only logs read this.
#[derive(Debug, Clone, PartialEq, Eq)]
enum PeerAddr {
    V4(SocketAddrV4),
    V6(Box<SocketAddrV6>),
}

impl From<SocketAddr> for PeerAddr {
    fn from(addr: SocketAddr) -> PeerAddr {
        match addr {
            SocketAddr::V4(v4) => PeerAddr::V4(v4),
            SocketAddr::V6(v6) => PeerAddr::V6(Box::new(v6)),
        }
    }
}

impl std::fmt::Display for PeerAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PeerAddr::V4(v4) => v4.fmt(f),
            PeerAddr::V6(v6) => v6.fmt(f),
        }
    }
}

/// A session and the connection currently attached to it, if any.
#[derive(Debug)]
struct SessionEntry {
    session: Session,
    conn: Option<ConnectionId>,
    /// In `FlowControl::congested` (`flow.rs`): checked on every delivery and every packet,
    /// where a field read is cheaper than a hash lookup. The set stays the record.
    congested: bool,
    /// The log holds an image of this session (so its end must be logged too).
    logged: bool,
    /// Listed for an image at the next commit (`persist.rs`).
    log_dirty: bool,
}

/// One shard's broker state.
pub struct Shard {
    id: ShardId,
    limits: Limits,
    /// The MQTT 5.0 capabilities announced in CONNACK and enforced.
    protocol: ProtocolOptions,
    conns: Slab<Conn>,
    /// Enhanced authentication methods (`[auth]`).
    authenticator: std::sync::Arc<crate::auth::Authenticator>,
    /// Connections that use enhanced authentication, with their conversations.
    auth: AHashMap<ConnectionId, auth::AuthExchange>,
    /// Who may connect and what they may publish and read (`access.rs`); replaced on reload.
    access: std::sync::Arc<crate::auth::Access>,
    /// Password checks handed to the verifier threads, and the cache of successful ones.
    verify: access::Verifications,
    sessions: Slab<SessionEntry>,
    /// Client identifier to local session; one session per client id [MQTT-3.1.4-2].
    clients: AHashMap<ByteStr, SessionKey>,
    trie: SubscriptionTrie<SessionKey, SubParams>,
    /// Shared subscription groups of every shard (`shared.rs`).
    shared: shared::SharedGroups,
    /// Offline sessions' deadlines (session expiry, delayed wills), earliest first. An entry
    /// may be stale (the client came back); the session's own deadlines are the truth.
    timers: BTreeSet<(Instant, SessionKey)>,
    /// Every retained message, with its place in its topic's order of updates (`retain.rs`).
    retained: RetainedStore<(RetainStamp, std::sync::Arc<Message>)>,
    /// Payload bytes of `retained`, kept as it changes (for `/metrics`).
    retained_bytes: u64,
    /// Recent deletes of retained topics, so that an older update arriving late is ignored.
    tombstones: retain::Tombstones,
    /// This shard's Lamport clock for retained updates.
    retain_clock: u64,
    ids: ClientIdGenerator,
    stats: Stats,
    /// Connections with output or a close pending, in the order they became dirty.
    dirty: Vec<ConnectionId>,
    next_generation: u32,
    /// Reused per packet to avoid allocating an action list each time.
    actions: Vec<Action>,
    /// Reused per publish: matched subscribers before deduplication.
    matches: Vec<(SessionKey, SubParams)>,
    sys: sys::SysPublisher,
    /// Sessions moving to or from this shard (`handoff.rs`).
    handoffs: handoff::Handoffs,
    /// Per-kind budget for log lines a client can cause.
    log: log::LogLimiter,
    /// Per-listener rules and counts (`listener.rs`).
    listeners: listener::Listeners,
    /// This shard's share of `connections_max` and `sessions_max` (`Limits` says why).
    conns_max: usize,
    sessions_max: usize,
    /// When each connection began closing, oldest first (see `expire_closing`). Bounded by
    /// the connections: each enters once, and leaves once it is gone or timed out.
    closing: std::collections::VecDeque<(Instant, ConnectionId)>,
    /// Closing connections past `close_timeout_s`, for the driver to shut down hard.
    force_close: Vec<ConnectionId>,
    /// The driver is not reading any connection (mesh backlog over `mesh_backlog_max`).
    reads_paused: bool,
    mesh: Endpoint<ShardMessage>,
    peers: peer::Peers,
    flow: flow::FlowControl,
    /// The write-ahead log, when `persistence_dir` is set (`persist.rs`).
    persist: Option<Box<persist::ShardPersist>>,
}

impl Shard {
    pub fn new(
        now: Instant,
        mesh: Endpoint<ShardMessage>,
        limits: Limits,
        sys_interval_s: u32,
    ) -> Shard {
        let shards = mesh.shard_count();
        // Pre-sized to this shard's share of the limits: growing a slab by doubling copies it
        // and leaves the old copy in the allocator, which at 10^5+ connections costs more RSS
        // than the connections themselves. Untouched capacity is never paged in. (Hash maps are
        // not pre-sized: their entries land on random pages, so a large empty table does cost
        // resident memory as it fills.)
        let conns_max = (limits.connections_max as usize).div_ceil(shards);
        let sessions_max = (limits.sessions_max as usize).div_ceil(shards);
        let mut shard = Shard {
            id: mesh.id(),
            limits,
            protocol: ProtocolOptions::default(),
            authenticator: Default::default(),
            auth: AHashMap::new(),
            access: std::sync::Arc::new(crate::auth::Access::open()),
            verify: access::Verifications::new(),
            conns: Slab::with_capacity(conns_max),
            sessions: Slab::with_capacity(sessions_max),
            clients: AHashMap::new(),
            trie: SubscriptionTrie::new(),
            shared: shared::SharedGroups::default(),
            timers: BTreeSet::new(),
            retained: RetainedStore::new(),
            retained_bytes: 0,
            tombstones: Default::default(),
            retain_clock: 0,
            ids: ClientIdGenerator::new(),
            stats: Stats::default(),
            dirty: Vec::new(),
            next_generation: 0,
            actions: Vec::new(),
            matches: Vec::new(),
            sys: sys::SysPublisher::new(now, sys_interval_s),
            handoffs: Default::default(),
            log: log::LogLimiter::default(),
            listeners: Default::default(),
            conns_max,
            sessions_max,
            closing: Default::default(),
            force_close: Vec::new(),
            reads_paused: false,
            mesh,
            peers: peer::Peers::new(shards),
            flow: flow::FlowControl::new(shards),
            persist: None,
        };
        shard.init_peers();
        shard
    }

    /// A shard with no peers, for single-shard use and tests.
    pub fn standalone(now: Instant, limits: Limits, sys_interval_s: u32) -> Shard {
        let mesh = crate::mesh::build(1, 1)
            .pop()
            .expect("one endpoint for one shard");
        Shard::new(now, mesh, limits, sys_interval_s)
    }

    /// Sets the MQTT 5.0 capabilities (default: `ProtocolOptions::default()`).
    pub fn with_protocol(mut self, protocol: ProtocolOptions) -> Shard {
        self.protocol = protocol;
        self
    }

    /// Sets the enhanced authentication methods (default: none).
    pub fn with_auth(mut self, authenticator: std::sync::Arc<crate::auth::Authenticator>) -> Shard {
        self.authenticator = authenticator;
        self
    }

    pub fn id(&self) -> ShardId {
        self.id
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    fn conn(&self, id: ConnectionId) -> Option<&Conn> {
        self.conns
            .get(id.index as usize)
            .filter(|c| c.generation == id.generation)
    }

    fn conn_mut(&mut self, id: ConnectionId) -> Option<&mut Conn> {
        self.conns
            .get_mut(id.index as usize)
            .filter(|c| c.generation == id.generation)
    }

    /// The transport is gone (EOF, error, or the shutdown we asked for). Frees the slot.
    pub fn handle_closed(&mut self, now: Instant, id: ConnectionId) {
        if self.conn(id).is_none() {
            return;
        }
        // A connection that vanishes while attached is an ungraceful loss: its will goes out.
        self.end_connection(now, id, End::Lost);
        self.release_listener(id);
        self.conns.remove(id.index as usize);
        // A congested subscriber that went away no longer holds its publishers back.
        self.check_congestion(now);
        self.resume_released(now);
    }

    /// Timer work: keep-alive, CONNECT timeouts and `$SYS`. Call about once a second.
    pub fn handle_tick(&mut self, now: Instant) {
        let close_timeout = Duration::from_secs(u64::from(self.limits.close_timeout_s));
        let mut expired = Vec::new();
        for (index, conn) in &self.conns {
            let id = ConnectionId {
                index: index as u32,
                generation: conn.generation,
            };
            match &conn.state {
                ConnState::AwaitingConnect { since } if now - *since > CONNECT_TIMEOUT => {
                    expired.push((id, End::ConnectTimeout));
                }
                ConnState::Authenticating
                    if self
                        .auth
                        .get(&id)
                        .is_none_or(|a| now - a.since() > CONNECT_TIMEOUT) =>
                {
                    expired.push((id, End::ConnectTimeout));
                }
                ConnState::Verifying { parked } | ConnState::AwaitingSession { parked }
                    if now - parked.since > CONNECT_TIMEOUT =>
                {
                    expired.push((id, End::ConnectTimeout));
                }
                ConnState::Attached { session, .. } => {
                    let session = &mut self.sessions[session.0 as usize].session;
                    if conn.throttles > 0 || self.reads_paused {
                        // We are not reading this client (flow control): its silence proves
                        // nothing, so its keep-alive period starts again [MQTT-3.1.2-24].
                        session.defer_keep_alive(now);
                    } else if session.keep_alive_expired(now) {
                        expired.push((id, End::KeepAliveTimeout));
                    }
                }
                _ => {}
            }
        }
        self.expire_closing(now, close_timeout);
        for (id, end) in expired {
            self.stats.keep_alive_timeouts += u64::from(end == End::KeepAliveTimeout);
            self.end_connection(now, id, end);
        }
        self.fire_timers(now);
        self.check_congestion(now);
        self.resume_released(now);
        if self.sys.due(now) {
            self.sys_tick(now);
        }
    }

    /// Publishes delayed wills and ends expired sessions whose time has come.
    fn fire_timers(&mut self, now: Instant) {
        while let Some(&(at, key)) = self.timers.first() {
            if at > now {
                break;
            }
            self.timers.pop_first();
            let Some(entry) = self.sessions.get_mut(key.0 as usize) else {
                continue;
            };
            if entry.conn.is_some() {
                continue;
            }
            let due = entry.session.poll_timers(now);
            let next = entry.session.next_deadline();
            if let Some(will) = due.will {
                self.publish_will(now, key, will);
            }
            if due.expired {
                self.stats.sessions_expired += 1;
                self.discard_session(now, key);
            } else {
                if let Some(next) = next {
                    self.timers.insert((next, key));
                }
                self.log_session(key);
            }
        }
    }

    /// Closing connections still there after `close_timeout`: their peer does not read what
    /// is left, so the driver shuts the socket, which fails the blocked write and ends the
    /// reader. Connections enter `closing` in time order, so only the front is looked at.
    fn expire_closing(&mut self, now: Instant, close_timeout: Duration) {
        while let Some(&(since, id)) = self.closing.front() {
            if now.saturating_duration_since(since) <= close_timeout {
                break;
            }
            self.closing.pop_front();
            let closing = self.conn(id).is_some_and(|c| c.state.is_closing());
            if closing && !self.force_close.contains(&id) {
                self.stats.close_timeouts += 1;
                self.force_close.push(id);
            }
        }
    }

    /// Connections whose close timed out: the driver shuts their sockets down now.
    pub fn drain_force_closed(&mut self, into: &mut Vec<ConnectionId>) {
        into.append(&mut self.force_close);
    }

    /// The driver paused (or resumed) reading every connection because the mesh is backed up;
    /// keep-alive does not count the time we did not read.
    pub fn set_reads_paused(&mut self, paused: bool) {
        self.reads_paused = paused;
    }

    /// Closes every connection (v5 clients get DISCONNECT 0x8B) for an orderly shutdown.
    pub fn shut_down(&mut self, now: Instant) {
        let ids: Vec<ConnectionId> = self
            .conns
            .iter()
            .map(|(i, c)| ConnectionId {
                index: i as u32,
                generation: c.generation,
            })
            .collect();
        for id in ids {
            self.end_connection(now, id, End::ServerShutdown);
        }
    }

    /// Takes the connections that have output or a close pending since the last call.
    pub fn drain_dirty(&mut self, into: &mut Vec<ConnectionId>) {
        for id in self.dirty.drain(..) {
            if let Some(conn) = self.conns.get_mut(id.index as usize) {
                if conn.generation == id.generation {
                    conn.dirty = false;
                    into.push(id);
                }
            }
        }
    }

    /// The next chunk of output for a connection, and whether it should close once written.
    /// `None` output with `close == true` means: shut the socket now.
    pub fn take_output(&mut self, id: ConnectionId) -> (Option<Bytes>, bool) {
        let acked = self.peers.acked();
        let out_max = self.limits.outbound_buffer_max_bytes as usize;
        let Some(conn) = self
            .conns
            .get_mut(id.index as usize)
            .filter(|c| c.generation == id.generation)
        else {
            return (None, true);
        };
        let closing = conn.state.is_closing();
        if conn.out.is_empty() || (conn.hold_until > acked && !closing) {
            return (None, closing);
        }
        if !closing && self.held_for_durability(id) {
            return (None, false);
        }
        let conn = &mut self.conns[id.index as usize];
        if conn.out.bytes.len() >= out_max {
            // Its reads were paused for this (`process_input`); the output is now the writer's,
            // so let the client be read again, buffered input first.
            self.flow.resume_later(id);
        }
        let packets = std::mem::take(&mut conn.out.packets);
        // Hand the whole allocation to the writer: an idle connection keeps no write buffer.
        let bytes = std::mem::take(&mut conn.out.bytes).freeze();
        let transport = self.listeners.transport(conn.listener);
        self.stats.messages_sent += u64::from(packets);
        self.stats.bytes_sent += bytes.len() as u64;
        self.stats.packets_sent_by[transport] += u64::from(packets);
        self.stats.bytes_sent_by[transport] += bytes.len() as u64;
        (Some(bytes), closing)
    }

    /// Number of live transport connections.
    pub fn connection_count(&self) -> usize {
        self.conns.len()
    }

    /// Counts PUBLISH packets written to connection `id`, `sent[q]` of them at QoS `q`.
    fn count_publish_sent(&mut self, id: ConnectionId, sent: [u16; 3]) {
        let Some(conn) = self.conns.get(id.index as usize) else {
            return;
        };
        let transport = self.listeners.transport(conn.listener);
        for (qos, n) in sent.into_iter().enumerate() {
            self.stats.publish_sent += u64::from(n);
            self.stats.publish_sent_by[transport][qos] += u64::from(n);
        }
    }

    fn mark_dirty(&mut self, id: ConnectionId) {
        if let Some(conn) = self.conns.get_mut(id.index as usize) {
            if conn.generation == id.generation && !conn.dirty {
                conn.dirty = true;
                self.dirty.push(id);
            }
        }
    }

    /// Holds a connection's output until the peers acknowledge our latest interest update.
    fn hold_output(&mut self, id: ConnectionId) {
        let seq = self.peers.interest_seq();
        if seq > self.peers.acked() {
            if let Some(conn) = self.conn_mut(id) {
                conn.hold_until = seq;
                self.peers.hold(id);
            }
        }
    }

    /// The counters `$SYS` reports for this shard.
    /// Visits every session for the queue totals: O(sessions), once per `sys_interval_s`.
    fn snapshot(&self) -> StatsSnapshot {
        let (queued, queued_bytes) = self.sessions.iter().fold((0, 0), |(n, b), (_, e)| {
            let (count, bytes) = e.session.queued_totals();
            (n + count, b + bytes)
        });
        StatsSnapshot {
            stats: self.stats.clone(),
            sessions: self.sessions.len() as u64,
            subscriptions: self.trie.len() as u64,
            queued,
            queued_bytes,
        }
    }

    /// The local subscription count of `filter` changed by `delta`; tell the peers when it
    /// becomes or stops being non-zero.
    fn filter_refs_changed(&mut self, filter: &TopicFilter, delta: i32) {
        if let Some((add, seq)) = self.peers.local_interest(filter, delta) {
            for to in self.peers.others(self.id) {
                self.mesh.send(
                    to,
                    ShardMessage::Interest {
                        filter: filter.clone(),
                        add,
                        seq,
                    },
                );
            }
        }
    }
}

/// Why a connection ends; decides the will and the 5.0 DISCONNECT reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// The client sent DISCONNECT: no will.
    Graceful,
    /// The transport failed or closed without DISCONNECT.
    Lost,
    KeepAliveTimeout,
    ConnectTimeout,
    /// The client broke the protocol; 5.0 clients are told why.
    Violation(codec::ReasonCode, &'static str),
    /// Another connection took the client id over [MQTT-3.1.4-2].
    TakenOver,
    ServerShutdown,
    /// CONNECT was refused; the CONNACK is already written.
    Refused,
}
