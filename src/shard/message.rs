//! [`ShardMessage`]: everything that crosses from one shard to another. A closed enum, not
//! closures, so that the cross-shard protocol can be read in one place.
//!
//! It lives beside the shard that speaks it, not in `mesh`: the rings carry any `T`, and only
//! the shard knows sessions, topics and its own connection and session handles. Connections
//! and sessions travel as the shard's own newtypes ([`ConnectionId`], [`SessionKey`]), which
//! mean something only on the shard that issued them.

use std::sync::Arc;

use crate::codec::ByteStr;
use crate::mesh::ShardId;
use crate::session::{Envelope, Message, Session, SubParams};
use crate::topic::{RetainStamp, TopicFilter};

use super::{ConnectionId, SessionKey};

/// A connection on some shard, as other shards may name it. `conn` means something only on
/// `shard` (its connection slot and generation there).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnRef {
    pub shard: ShardId,
    pub conn: ConnectionId,
}

/// What the claimant of a client id gets from the shard that held its session.
#[derive(Debug)]
pub enum Handoff {
    /// No session to resume: start a new one.
    Fresh,
    /// The session stays where it is: the claimant is the shard that already holds it.
    Kept,
    /// The session, moved from another shard (its connection already closed).
    Moved(Box<Session>),
}

/// A change in a shared subscription group's membership.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberChange {
    /// Subscribed (or re-subscribed with new options), or brought in by a session move.
    Join {
        params: SubParams,
        online: bool,
    },
    /// The member's client connected or disconnected.
    Online(bool),
    Leave,
}

/// The counters shard 0 aggregates into `$SYS`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    pub stats: crate::metrics::Stats,
    pub sessions: u64,
    pub subscriptions: u64,
    /// Messages waiting in session queues (online and offline) and their payload bytes.
    pub queued: u64,
    pub queued_bytes: u64,
}

/// One cross-shard message. Per ordered pair of shards, messages arrive in the order sent.
#[derive(Debug)]
pub enum ShardMessage {
    /// A published message. `deliver`: the receiver has matching subscribers; a retained
    /// message is also sent to every other shard with `deliver == false`, to update its copy of
    /// the retained store.
    /// `origin` is the publishing connection on the sending shard, for flow control.
    Publish {
        message: Arc<Message>,
        deliver: bool,
        origin: Option<ConnectionId>,
        /// For a retained message: its place in the topic's order of updates.
        stamp: RetainStamp,
    },
    /// Stop reading from this connection of the receiver's: it publishes into a congested
    /// session on the sender.
    Throttle { conn: ConnectionId },
    /// `sync` durability: the sender's log is synced past the `through`-th publish the
    /// receiver sent it, so acknowledgements waiting on those may go.
    Durable { through: u64 },
    /// Lift every throttle the sender asked for: its congested sessions have drained. The
    /// opposite of `Throttle`; nothing to do with sessions.
    Unthrottle,
    /// The sender gained (`add`) or lost its first/last local subscription with this filter.
    /// Numbered so that the sender knows when every peer has seen it.
    Interest {
        filter: TopicFilter,
        add: bool,
        seq: u64,
    },
    /// A session of the sender joined, left or changed presence in the shared subscription
    /// group `name` (`$share/<group>/<filter>`). Numbered and acknowledged like `Interest`.
    SharedMember {
        name: ByteStr,
        filter: TopicFilter,
        session: SessionKey,
        change: MemberChange,
        seq: u64,
    },
    /// The sender picked the receiver's session `session` as the member of group `name` that
    /// gets `message`. `publisher` is the hash for `HashClientId`, `hops` how often it was
    /// re-picked because the member had left.
    SharedPublish {
        message: Arc<Message>,
        name: ByteStr,
        session: SessionKey,
        params: SubParams,
        origin: Option<ConnectionId>,
        publisher: u64,
        hops: u8,
    },
    /// The receiver has applied the sender's interest updates up to `seq`.
    InterestAck { seq: u64 },
    /// Sent once at start-up with a log, after the `Interest` and `SharedMember` updates for
    /// the sessions the sender restored: once the receiver has it (one ring, in order), it
    /// knows every restored subscription of the sender (`peer.rs`: `announce_restored`).
    Restored,
    /// To the client id's home shard: `conn` sent CONNECT with this id.
    Claim {
        client_id: ByteStr,
        conn: ConnRef,
        clean_start: bool,
    },
    /// From the home shard to the shard holding the session: hand it to `conn` (or discard it
    /// if `clean_start`), closing its current connection as a take-over.
    Evict {
        client_id: ByteStr,
        conn: ConnRef,
        clean_start: bool,
    },
    /// To the claiming shard: proceed with CONNECT.
    Granted {
        client_id: ByteStr,
        conn: ConnectionId,
        handoff: Handoff,
    },
    /// To the home shard: a claim is done; the sender now holds the session (or none).
    Settled {
        client_id: ByteStr,
        holds_session: bool,
    },
    /// To the home shard: the sender discarded its session for this id and holds none now.
    SessionDiscarded { client_id: ByteStr },
    /// From the shard a session moved away from, to the shard it moved to: a delivery that
    /// still matched the old shard's subscriptions (`shard/handoff.rs`).
    Forwarded {
        client_id: ByteStr,
        envelope: Envelope,
    },
    /// To the shard a session moved away from: every peer knows the receiver's interest in
    /// the session's subscriptions now; stop forwarding once the peers are fenced.
    HandedOver { client_id: ByteStr },
    /// From the shard a session moved away from, to every peer: answer `FenceAck` to the
    /// sender, and `Fenced` to `to` (the session's new shard), after everything sent so far.
    Fence { client_id: ByteStr, to: ShardId },
    /// To the shard a session moved away from: nothing sent before this needs forwarding.
    FenceAck { client_id: ByteStr },
    /// To the shard a session moved to: nothing the sender sent before this can still arrive
    /// twice (directly and forwarded).
    Fenced { client_id: ByteStr },
    /// To the shard a session moved to: the old shard forwards no more.
    ForwardingDone { client_id: ByteStr },
    /// To shard 0, every `$SYS` interval.
    Stats {
        from: ShardId,
        snapshot: Box<StatsSnapshot>,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ring slot is one `ShardMessage`, and the mesh reserves N x (N - 1) rings of them
    /// (`config::MESH_RING_BYTES_MAX`): a variant that grows it grows every ring.
    #[test]
    fn shard_message_stays_small() {
        assert!(
            std::mem::size_of::<ShardMessage>() <= 104,
            "ShardMessage is {} bytes",
            std::mem::size_of::<ShardMessage>()
        );
    }
}
