//! One client's MQTT session as a sans-IO state machine.
//!
//! Owns: the session state that outlives a connection (subscriptions, the outbound inflight
//! window, the offline queue, inbound QoS 2 packet ids) and the state of the live connection
//! attached to it (protocol level, keep-alive, will). Does not own: sockets, the clock, other
//! sessions, the trie or the retained store: those are the shard's.
//!
//! Driven by the shard:
//! - [`validate_connect`] turns a CONNECT into [`ConnectParams`] (or the refusing CONNACK);
//! - [`Session::attach`] binds a connection, writes CONNACK and resends what was unacknowledged;
//! - [`Session::handle_packet`]`(now, ..)` takes each later packet, writes the replies into the
//!   connection's output buffer and pushes [`Action`]s for what needs the rest of the broker
//!   (route a publish, update the trie);
//! - [`Session::deliver`] hands it a routed message;
//! - [`Session::keep_alive_expired`]`(now)` is asked on timer ticks;
//! - [`Session::detach`]`(now)` unbinds the connection and says when the session ends and when
//!   a delayed will is due; [`Session::poll_timers`]`(now)` answers once that time comes.
//!
//! Time is always an argument, so tests drive keep-alive with a virtual clock.
//!
//! The persistent part ([`Session`] minus its [`Link`]) is plain data, so the persistence issue
//! can serialise it and the shards issue can move it between threads.

mod connect;
mod deliver;
mod expiry;
mod flow;
mod image;
mod lazy;
mod link;
mod message;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use std::collections::{HashMap, HashSet};
use std::hash::BuildHasher;
use std::sync::OnceLock;

use crate::auth::acl::{Subject, SubscribeVerdict};
use crate::auth::Access;
use crate::codec::{
    encode, ByteStr, ConnAck, Packet, PacketId, ProtocolVersion, QoS, ReasonCode,
    SubscriptionOptions,
};
use crate::config::{Limits, ProtocolOptions};
use crate::topic::SubscriptionFilter;

pub use connect::{
    connack_properties, validate_connect, ClientIdGenerator, ConnectParams, ConnectRefused,
    ValidWill,
};
pub use deliver::Delivery;
pub use expiry::{Detached, Due};
pub use image::{OfflineImage, OutboundImage, OutboundState, SessionImage};
pub use link::Link;
pub use message::Message;

/// Something the session needs the rest of the broker to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Route this message to matching subscribers (and store it if retained), then send the
    /// reply, if any: 5.0 tells the publisher 0x10 when no subscriber matched.
    Publish(Arc<Message>, Option<Reply>),
    /// A subscription was added or replaced; the shard updates the trie and sends retained.
    Subscribed {
        filter: SubscriptionFilter,
        params: SubParams,
        existed: bool,
    },
    /// A subscription was removed; the shard updates the trie.
    Unsubscribed(SubscriptionFilter),
    /// The client sent DISCONNECT: the will is already discarded [MQTT-3.1.2-10] unless the
    /// reason was 0x04 (Disconnect with Will Message); close.
    Disconnect,
}

/// The acknowledgement a routed PUBLISH gets once routing is done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    PubAck(PacketId),
    PubRec(PacketId),
}

impl Reply {
    /// The packet for it: `matched` false gives 0x10 No matching subscribers (5.0 only; a 3.x
    /// encoder writes no reason code).
    pub fn packet(self, matched: bool) -> Packet {
        self.with_code(if matched {
            ReasonCode::SUCCESS
        } else {
            ReasonCode::NO_MATCHING_SUBSCRIBERS
        })
    }

    /// The packet with reason `code` (5.0 only: a 3.x encoder writes no code).
    pub fn with_code(self, code: ReasonCode) -> Packet {
        let ack = |id| {
            let mut ack = crate::codec::Ack::new(id);
            ack.code = code;
            ack
        };
        match self {
            Reply::PubAck(id) => Packet::PubAck(ack(id)),
            Reply::PubRec(id) => Packet::PubRec(ack(id)),
        }
    }
}

/// What the trie keeps per subscriber: the subscription's options and its 5.0 Subscription
/// Identifier (0: none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubParams {
    pub options: SubscriptionOptions,
    pub id: u32,
    /// The ACL may refuse some topics this subscription matches, so each delivery through it
    /// is checked (`auth::SubscribeVerdict::CheckEach`). False for the common case, where the
    /// check at SUBSCRIBE covered every topic, so routing pays nothing for the ACL.
    pub read_check: bool,
}

/// What the broker holds every client to, as [`Session::handle_packet`] needs it: its limits,
/// its MQTT 5 options and the access policy.
#[derive(Debug, Clone, Copy)]
pub struct Rules<'a> {
    pub limits: &'a Limits,
    pub protocol: &'a ProtocolOptions,
    pub access: &'a Access,
}

/// A peer's protocol mistake. The shard closes the connection (5.0: DISCONNECT with `code`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Violation {
    pub code: ReasonCode,
    pub why: &'static str,
}

/// One subscription as the session remembers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    pub filter: SubscriptionFilter,
    pub options: SubscriptionOptions,
    /// 5.0 Subscription Identifier, 0 when none [MQTT-3.8.2.1.2].
    pub id: u32,
    /// See [`SubParams::read_check`]; decided at SUBSCRIBE and again when the ACL is reloaded.
    pub read_check: bool,
}

impl Subscription {
    pub fn params(&self) -> SubParams {
        SubParams {
            options: self.options,
            id: self.id,
            read_check: self.read_check,
        }
    }
}

/// What one delivery carries besides the message: the Subscription Identifiers of the
/// subscriptions it matched [MQTT-3.3.4-3], and the shared subscription it was routed through,
/// so that it can go to another member if this one leaves. Boxed where stored: most deliveries
/// have neither.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tag {
    pub sub_ids: Vec<u32>,
    /// The shared subscription as subscribed, `$share/<group>/<filter>`.
    pub group: Option<ByteStr>,
}

/// One copy of a message on its way to one session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    pub message: Arc<Message>,
    /// min(published, granted) [MQTT-3.8.4-6].
    pub qos: QoS,
    /// The RETAIN flag to send [MQTT-3.3.1-8]/[MQTT-3.3.1-9].
    pub retain: bool,
    pub tag: Option<Box<Tag>>,
}

impl Envelope {
    /// One session's copy of `message` from all its matching subscriptions (`first` and
    /// `more`): the highest granted QoS [MQTT-3.3.5-1], Retain As Published if any asks for
    /// it, every Subscription Identifier.
    pub fn merged(
        message: &Arc<Message>,
        first: SubParams,
        more: impl IntoIterator<Item = SubParams>,
    ) -> Envelope {
        let mut qos = first.options.qos;
        let mut retain_as_published = first.options.retain_as_published;
        let mut tag = Envelope::sub_id_tag(first.id);
        for params in more {
            qos = qos.max(params.options.qos);
            retain_as_published |= params.options.retain_as_published;
            if params.id != 0 {
                tag.get_or_insert_with(Box::default).sub_ids.push(params.id);
            }
        }
        Envelope {
            message: message.clone(),
            qos: message.qos.min(qos),
            // [MQTT-3.3.1-9]: forwarded with retain 0 unless Retain As Published [MQTT-3.3.1-12].
            retain: retain_as_published && message.retain,
            tag,
        }
    }

    /// The tag carrying Subscription Identifier `id` (0: none).
    pub fn sub_id_tag(id: u32) -> Option<Box<Tag>> {
        (id != 0).then(|| {
            Box::new(Tag {
                sub_ids: vec![id],
                group: None,
            })
        })
    }

    /// The shared group this copy was routed through, if any.
    pub fn group(&self) -> Option<&ByteStr> {
        self.tag.as_ref().and_then(|t| t.group.as_ref())
    }
}

/// Where an outbound QoS 1/2 message stands in its acknowledgement flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
// The variants are named after the packets awaited; the shared prefix is the point.
#[allow(clippy::enum_variant_names)]
enum Awaiting {
    /// QoS 1 PUBLISH sent, waiting for PUBACK.
    PubAck,
    /// QoS 2 PUBLISH sent, waiting for PUBREC.
    PubRec,
    /// PUBREL sent, waiting for PUBCOMP. The message itself is no longer needed.
    PubComp,
}

/// An outbound QoS 1/2 message in the inflight window.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Outbound {
    packet_id: PacketId,
    envelope: Envelope,
    state: Awaiting,
}

impl lazy::Weigh for Envelope {
    fn weight(&self) -> u64 {
        (self.message.topic.as_str().len() + self.message.payload.len()) as u64
    }
}

impl lazy::Weigh for Outbound {
    fn weight(&self) -> u64 {
        self.envelope.weight()
    }
}

/// One client's MQTT session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    client_id: ByteStr,
    /// The user name of the connection last attached, for the ACL (which also applies to what
    /// is queued while the client is away). Boxed: 8 bytes where most sessions have none.
    username: Option<Box<ByteStr>>,
    /// Seconds the session outlives its connection: 0 ends it at disconnect (3.x Clean
    /// Session = 1), `u32::MAX` never.
    expiry_s: u32,
    /// Keyed by the filter exactly as subscribed, so a repeated SUBSCRIBE replaces
    /// [MQTT-3.8.4-3].
    subscriptions: HashMap<ByteStr, Subscription, SessionHasher>,
    /// In send order, so a resume resends in the original order [MQTT-4.6.0-1].
    inflight: lazy::LazyDeque<Outbound>,
    /// Messages waiting for room in the window or for the client to come back. Bounded by
    /// `Limits::queued_messages_max` and `Limits::queued_bytes_max`.
    queue: lazy::LazyDeque<Envelope>,
    /// Inbound QoS 2 packet ids between PUBREC and PUBREL: a repeat PUBLISH with one of these
    /// ids is not routed again. Bounded by the 16-bit id space.
    inbound_qos2: IdSet,
    next_packet_id: PacketId,
    /// Messages dropped as larger than the client's Maximum Packet Size while being resent or
    /// taken from the queue, since the shard last looked ([`Session::take_dropped_too_large`]).
    /// Here rather than in `Outbox`, whose every byte each connection pays for.
    dropped_too_large: u16,
    link: Option<Link>,
    /// While the client is away: when the session ends and the delayed will. Boxed: most
    /// sessions are online or end at disconnect.
    offline: Option<Box<expiry::Offline>>,
}

impl Session {
    /// A new session that outlives its connection by `expiry_s` seconds.
    pub fn new(client_id: ByteStr, expiry_s: u32) -> Session {
        Session {
            client_id,
            username: None,
            expiry_s,
            subscriptions: HashMap::default(),
            inflight: Default::default(),
            queue: Default::default(),
            inbound_qos2: IdSet::default(),
            next_packet_id: PacketId::new(1).expect("1 is a valid packet id"),
            dropped_too_large: 0,
            link: None,
            offline: None,
        }
    }

    pub fn client_id(&self) -> &ByteStr {
        &self.client_id
    }

    /// Who the ACL sees: the user name the client connected with, and its client id.
    pub fn subject(&self) -> Subject<'_> {
        Subject {
            username: self.username.as_deref().map(ByteStr::as_str),
            client_id: self.client_id.as_str(),
        }
    }

    /// Decides again, under a reloaded ACL, which subscriptions need a check per delivery; a
    /// subscription the new ACL refuses outright is kept (mosquitto keeps it too) but checked
    /// per delivery, so it receives nothing the ACL does not allow. Returns the subscriptions
    /// whose decision changed, for the shard to update its trie.
    pub fn recheck_subscriptions(&mut self, access: &Access) -> Vec<Subscription> {
        let subject = Subject {
            username: self.username.as_deref().map(ByteStr::as_str),
            client_id: self.client_id.as_str(),
        };
        let mut changed = Vec::new();
        for subscription in self.subscriptions.values_mut() {
            let verdict = access.subscribe_verdict(subject, subscription.filter.filter().as_str());
            let read_check = verdict != SubscribeVerdict::Allowed;
            if subscription.read_check != read_check {
                subscription.read_check = read_check;
                changed.push(subscription.clone());
            }
        }
        changed
    }

    /// True when the session outlives its connection.
    pub fn is_persistent(&self) -> bool {
        self.expiry_s > 0
    }

    pub fn expiry_s(&self) -> u32 {
        self.expiry_s
    }

    pub fn is_online(&self) -> bool {
        self.link.is_some()
    }

    pub fn version(&self) -> Option<ProtocolVersion> {
        self.link.as_ref().map(|l| l.version)
    }

    pub fn subscriptions(&self) -> impl Iterator<Item = &Subscription> {
        self.subscriptions.values()
    }

    /// The largest packet the attached client accepts (`u32::MAX` when it set no limit or is
    /// offline).
    pub fn client_packet_size_max(&self) -> u32 {
        self.link.as_ref().map_or(u32::MAX, |l| l.packet_size_max)
    }

    /// True if any subscription is shared (`$share/...`).
    pub fn has_shared_subscriptions(&self) -> bool {
        self.subscriptions.values().any(|s| s.filter.is_shared())
    }

    /// True if the session has this subscription, exactly as subscribed.
    pub fn has_subscription(&self, raw: &ByteStr) -> bool {
        self.subscriptions.contains_key(raw)
    }

    pub fn subscription_count(&self) -> usize {
        self.subscriptions.len()
    }

    /// Messages dropped as too large for the client since the last call (see the field).
    pub fn take_dropped_too_large(&mut self) -> u16 {
        std::mem::take(&mut self.dropped_too_large)
    }

    /// Of the queued messages sent since the shard last looked (`Outbox::pumped`), those at
    /// QoS 2.
    pub fn take_pumped_qos2(&mut self) -> u16 {
        self.link
            .as_mut()
            .map_or(0, |link| std::mem::take(&mut link.pumped_qos2))
    }

    /// Messages held for this session: inflight plus queued.
    pub fn pending_count(&self) -> usize {
        self.inflight.len() + self.queue.len()
    }

    /// Messages held for this session (inflight plus queued) and their payload bytes, for
    /// `$SYS/broker/store/messages/*`. Walks the queue: call it per `$SYS` interval, not per
    /// packet.
    pub fn queued_totals(&self) -> (u64, u64) {
        let bytes = self
            .inflight
            .iter()
            .map(|o| &o.envelope)
            .chain(self.queue.iter())
            .map(|e| e.message.payload.len() as u64)
            .sum();
        (self.pending_count() as u64, bytes)
    }

    /// Binds a connection: writes CONNACK, then resends every unacknowledged PUBLISH with DUP
    /// and every PUBREL [MQTT-4.4.0-1], then fills the window from the queue. A will still
    /// waiting for its delay is cancelled [MQTT-3.1.3-9].
    pub fn attach(
        &mut self,
        now: Instant,
        params: &ConnectParams,
        session_present: bool,
        out: &mut Outbox,
        limits: &Limits,
        protocol: &ProtocolOptions,
    ) -> usize {
        assert!(
            self.link.is_none(),
            "attach to a session that already has a connection"
        );
        self.expiry_s = params.session_expiry_s;
        self.offline = None;
        self.username = params.username.clone().map(Box::new);
        let version = params.version;
        let connack = ConnAck {
            session_present,
            code: ReasonCode::SUCCESS,
            properties: connack_properties(params, limits, protocol),
        };
        write_packet(out, version, &Packet::ConnAck(connack));
        let mut link = Link::new(now, params, limits);
        // What happened to the window's ids while the client was away is not tracked.
        link.ids_skipped = !self.inflight.is_empty();
        self.link = Some(link);
        self.resend_inflight(now, out) + self.pump_queue(now, out, limits)
    }

    /// Drops the will so that a later `detach` returns none (graceful DISCONNECT).
    pub fn discard_will(&mut self) {
        if let Some(link) = &mut self.link {
            link.will = None;
        }
    }

    /// Starts the keep-alive period again: the broker itself is not reading this client
    /// (flow control), so the packets it sends cannot count.
    pub fn defer_keep_alive(&mut self, now: Instant) {
        if let Some(link) = &mut self.link {
            link.last_packet_at = now;
        }
    }

    /// True once 1.5 times the keep-alive has passed without a packet [MQTT-3.1.2-24].
    pub fn keep_alive_expired(&self, now: Instant) -> bool {
        match &self.link {
            Some(link) if link.keep_alive_ms > 0 => {
                let grace = Duration::from_millis(link.keep_alive_ms * 3 / 2);
                now.saturating_duration_since(link.last_packet_at) > grace
            }
            _ => false,
        }
    }

    /// True while this online client reads too slowly for what is routed to it: its queue is
    /// past a quarter of `queued_messages_max` and it acknowledged something within
    /// [`STALL_AFTER`]. The shard then stops reading from the publishers that feed it, so QoS 1/2
    /// waits in their sockets instead of overflowing this queue.
    pub fn is_congested(&self, now: Instant, limits: &crate::config::Limits) -> bool {
        match &self.link {
            Some(link) => {
                self.queue.len() >= congestion_high_water(limits)
                    && now.saturating_duration_since(link.last_ack_at) < STALL_AFTER
            }
            None => false,
        }
    }

    /// True once the queue has drained to an eighth of `queued_messages_max`, or the client has
    /// gone offline or stalled: its publishers may run again.
    pub fn is_decongested(&self, now: Instant, limits: &crate::config::Limits) -> bool {
        match &self.link {
            Some(link) => {
                self.queue.len() <= limits.queued_messages_max as usize / 8
                    || now.saturating_duration_since(link.last_ack_at) >= STALL_AFTER
            }
            None => true,
        }
    }

    fn allocate_packet_id(&mut self) -> PacketId {
        // The window is at most 65,535 entries, so a free id always exists; ids in use are
        // skipped so that a slow ack never collides with a new message.
        //
        // Ids are handed out in counter order and the window keeps send order, so while no id
        // has been skipped, the ids in flight are the counter values since the oldest entry
        // was sent: fewer than a full turn of the counter, none equal to the next value unless
        // the counter has come all the way round to the oldest entry. That one comparison
        // replaces a scan of the window, which took 27% of the shard's CPU at a window of
        // 1,000 (max-rate QoS 1). After a skip (a client that leaves one message unacked for
        // 65,535 others) the order argument no longer holds, so the scan is back until the
        // window next empties.
        let empty = self.inflight.is_empty();
        let link = self
            .link
            .as_mut()
            .expect("packet ids are handed out to a connected client");
        if empty {
            link.ids_skipped = false;
        }
        loop {
            let id = self.next_packet_id;
            self.next_packet_id = id.next();
            let in_use = if link.ids_skipped {
                self.inflight.iter().any(|o| o.packet_id == id)
            } else {
                self.inflight.get(0).is_some_and(|o| o.packet_id == id)
            };
            if !in_use {
                debug_assert!(
                    !self.inflight.iter().any(|o| o.packet_id == id),
                    "packet id {id:?} handed out twice"
                );
                return id;
            }
            link.ids_skipped = true;
        }
    }
}

/// The hasher of every per-session table: one randomly seeded `ahash` state for the whole
/// process, instead of a 32-byte `RandomState` inside each table of each session (64 bytes per
/// session, which matters at a million idle sessions). Still seeded at random, so a client
/// cannot precompute colliding topic filters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SessionHasher;

impl BuildHasher for SessionHasher {
    type Hasher = ahash::AHasher;

    fn build_hasher(&self) -> ahash::AHasher {
        static STATE: OnceLock<ahash::RandomState> = OnceLock::new();
        STATE.get_or_init(ahash::RandomState::new).build_hasher()
    }
}

/// A set of packet ids, allocated on first use: most clients never publish at QoS 2, and an
/// empty table inline would cost every session 32 bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
// The box is the point: 8 bytes inline instead of 32 (see above).
#[allow(clippy::box_collection)]
struct IdSet(Option<Box<HashSet<PacketId, SessionHasher>>>);

impl IdSet {
    fn contains(&self, id: &PacketId) -> bool {
        self.0.as_ref().is_some_and(|set| set.contains(id))
    }

    fn len(&self) -> usize {
        self.0.as_ref().map_or(0, |set| set.len())
    }

    fn insert(&mut self, id: PacketId) -> bool {
        self.0.get_or_insert_with(Box::default).insert(id)
    }

    fn remove(&mut self, id: &PacketId) -> bool {
        let Some(set) = &mut self.0 else {
            return false;
        };
        let removed = set.remove(id);
        if set.is_empty() {
            self.0 = None;
        }
        removed
    }

    fn clear(&mut self) {
        self.0 = None;
    }
}

/// A client that has not acknowledged anything for this long no longer throttles its
/// publishers: a consumer that stopped reading must not stop everyone else. Its queue then
/// fills and drops at `queued_messages_max`, counted, as mosquitto's does.
pub const STALL_AFTER: Duration = Duration::from_secs(2);

fn congestion_high_water(limits: &crate::config::Limits) -> usize {
    (limits.queued_messages_max as usize / 4).max(1)
}

/// A connection's pending output: encoded packets not yet handed to the socket.
#[derive(Debug, Default)]
pub struct Outbox {
    pub bytes: BytesMut,
    /// Packets encoded into `bytes`, for the `$SYS` "messages sent" counter.
    pub packets: u32,
    /// Messages for this connection dropped since the shard last looked as expired while
    /// queued [MQTT-3.3.2-5] (too large ones are counted in the session).
    /// Harvested after every packet; saturates (at 65,535 expired in one go) rather than wrap.
    pub dropped: u16,
    /// Queued messages sent since the shard last looked (it looks after every packet, so a
    /// window's worth at most), for the "messages sent" counters; QoS 0 is never queued, and
    /// [`Session::take_pumped_qos2`] says how many were QoS 2.
    pub pumped: u16,
}

/// Bytes the output buffer starts with when the first packet after a flush is encoded: four
/// growth steps (8, 16, 32, 64) saved per flush cycle on a busy connection, at 128 B of
/// transient memory per connection with output waiting (a fan-out to 10^6 subscribers holds
/// 128 MB until the writers take it).
pub const OUTBOX_INITIAL_BYTES: usize = 128;

impl Outbox {
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The buffer to encode into, with [`OUTBOX_INITIAL_BYTES`] reserved if it was empty.
    pub fn buffer(&mut self) -> &mut BytesMut {
        if self.bytes.capacity() == 0 {
            self.bytes.reserve(OUTBOX_INITIAL_BYTES);
        }
        &mut self.bytes
    }
}

/// Encodes `packet` into `out`. Returns false, and writes nothing, if it cannot be encoded
/// (larger than MQTT's 256 MiB ceiling), which only an oversize routed message can cause.
pub fn write_packet(out: &mut Outbox, version: ProtocolVersion, packet: &Packet) -> bool {
    match encode(packet, version, out.buffer()) {
        Ok(_) => {
            out.packets += 1;
            true
        }
        Err(e) => {
            tracing::warn!(error = %e, "dropping an outbound packet that cannot be encoded");
            false
        }
    }
}
