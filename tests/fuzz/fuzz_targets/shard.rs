//! Drives whole shards through their public sans-IO API with a program the fuzzer writes:
//! connections opened and closed, raw bytes or structured packets sent on them, output taken
//! (or left to pile up), mesh messages pumped by hand between 1 to 3 shards, and a virtual
//! clock moved forward. The oracle is only "no panic, no hang, bounded memory"; libFuzzer's
//! `-timeout` and `-rss_limit_mb` catch the last two.
//!
//! The harness keeps the driver's side of the contract (`shard::driver`): it does not feed a
//! connection that `is_throttled` (its bytes wait, as in a socket buffer), it pauses reads over
//! `mesh_backlog_max`, and it reports a socket closed once `take_output` says to close it or
//! `drain_force_closed` names it. Limits are tiny so that the inflight window, the queues, the
//! output buffer, the rings and `connections_max` all fill within a few dozen operations.

#![no_main]

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arbitrary::Arbitrary;
use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use ringmq::auth::{AuthConversation, AuthMethod, AuthStep, Authenticator};
use ringmq::codec::{
    self, Ack, Auth, ByteStr, Connect, Disconnect, Packet, PacketId, Properties, PropertyValues,
    ProtocolVersion, Publish, QoS, ReasonCode, RetainHandling, Subscribe, SubscriptionOptions,
    Unsubscribe, Will,
};
use ringmq::config::Limits;
use ringmq::shard::{ConnectionId, Shard};

/// Connections a program may open in all; more than `connections_max` so refusal is reached.
const CONNECTIONS_MAX: usize = 12;
/// Mesh rounds at the end of a program, enough to settle any backlog the program can make.
const SETTLE_ROUNDS_MAX: usize = 64;

/// Topic names that overlap the filters below, so publishes reach subscribers.
const TOPICS: [&str; 8] = ["a", "a/b", "a/c", "b", "a/b/c", "$SYS/x", "", "a/+"];
const FILTERS: [&str; 14] = [
    "a",
    "a/+",
    "#",
    "+/b",
    "a/#",
    "a/b",
    "+",
    "$SYS/#",
    "$share/g/a/#",
    "$share/g/#",
    "$share/h/+",
    "",
    "a/#/b",
    "$share/g",
];
/// Client ids: few, so that take-overs and session resumption happen; "" asks for one.
const CLIENT_IDS: [&str; 5] = ["", "c1", "c2", "c3", "c4"];
const TOY_METHOD: &str = "toy";

fn limits() -> Limits {
    Limits {
        packet_size_max: 2048,
        inflight_max: 8,
        queued_messages_max: 64,
        queued_bytes_max: 512,
        outbound_buffer_max_bytes: 1024,
        connections_max: 8,
        sessions_max: 8,
        subscriptions_per_session_max: 6,
        retained_messages_max: 6,
        client_id_len_max: 16,
        read_buffer_bytes: 512,
        mesh_ring_capacity: 4,
        mesh_backlog_max: 16,
        mesh_batch_max: 8,
        close_timeout_s: 2,
        auth_verify_queue_max: 4,
        auth_cache_max: 4,
        // Transports are not in this target (see `transport`); the field is listed so that a
        // new limit has to be chosen here, not defaulted.
        tls_handshake_timeout_s: 1,
    }
}

#[derive(Arbitrary, Debug)]
struct Program {
    /// 1 to 3 shards (taken modulo 3).
    shards: u8,
    ops: Vec<Op>,
}

#[derive(Arbitrary, Debug)]
enum Op {
    Accept {
        shard: u8,
    },
    Raw {
        conn: u8,
        bytes: Vec<u8>,
    },
    Send {
        conn: u8,
        packet: Pkt,
        split: u8,
    },
    /// The transport is gone (EOF or error).
    Close {
        conn: u8,
    },
    /// Moves the clock by this many milliseconds (times 1,000 when `long`), then ticks.
    Time {
        ms: u16,
        long: bool,
    },
    /// Takes the output of every dirty connection on every shard.
    Flush,
    /// Moves mesh messages between the shards this many rounds (taken modulo 8, plus one).
    Pump {
        rounds: u8,
    },
}

#[derive(Arbitrary, Debug)]
enum Topic {
    Known(u8),
    Any(String),
}

#[derive(Arbitrary, Debug)]
struct WillSpec {
    topic: Topic,
    qos: u8,
    retain: bool,
    payload: Vec<u8>,
    delay_s: Option<u8>,
}

#[derive(Arbitrary, Debug)]
struct FilterSpec {
    filter: Topic,
    qos: u8,
    no_local: bool,
    retain_as_published: bool,
    retain_handling: u8,
}

#[derive(Arbitrary, Debug)]
enum Pkt {
    Connect {
        /// 0: 3.1, 1: 3.1.1, 2: 5.0 (modulo 3).
        version: u8,
        clean_start: bool,
        keep_alive_s: u8,
        client_id: u8,
        long_client_id: bool,
        will: Option<WillSpec>,
        username: Option<u8>,
        password: Option<Vec<u8>>,
        session_expiry_s: Option<u16>,
        receive_maximum: Option<u16>,
        topic_alias_maximum: Option<u8>,
        maximum_packet_size: Option<u16>,
        /// Some(true): the toy method, Some(false): an unknown one.
        auth_method: Option<bool>,
        auth_data: Option<Vec<u8>>,
    },
    Subscribe {
        id: u8,
        filters: Vec<FilterSpec>,
        subscription_id: Option<u32>,
    },
    Publish {
        qos: u8,
        retain: bool,
        dup: bool,
        topic: Topic,
        id: u8,
        payload: Vec<u8>,
        topic_alias: Option<u8>,
        message_expiry_s: Option<u8>,
    },
    PubAck {
        id: u8,
        code: u8,
    },
    PubRec {
        id: u8,
        code: u8,
    },
    PubRel {
        id: u8,
        code: u8,
    },
    PubComp {
        id: u8,
        code: u8,
    },
    Unsubscribe {
        id: u8,
        filters: Vec<Topic>,
    },
    PingReq,
    Disconnect {
        code: u8,
        session_expiry_s: Option<u16>,
    },
    Auth {
        code: u8,
        method: bool,
        data: Vec<u8>,
    },
}

/// An enhanced-authentication method with no cryptography: the first byte of each message
/// decides the step, so the fuzzer reaches every branch of the exchange cheaply.
struct Toy;

struct ToyConversation {
    steps: u8,
}

impl AuthMethod for Toy {
    fn name(&self) -> &str {
        TOY_METHOD
    }

    fn start(&self, data: &[u8]) -> (Box<dyn AuthConversation>, AuthStep) {
        let mut conversation = ToyConversation { steps: 0 };
        let step = conversation.step(data);
        (Box::new(conversation), step)
    }
}

impl AuthConversation for ToyConversation {
    fn step(&mut self, data: &[u8]) -> AuthStep {
        self.steps = self.steps.saturating_add(1);
        if data.len() > ringmq::auth::AUTH_DATA_MAX_BYTES || self.steps > 4 {
            return AuthStep::Failure {
                code: ReasonCode::NOT_AUTHORIZED,
                why: "toy: too long",
            };
        }
        match data.first().map(|b| b % 3) {
            Some(0) => AuthStep::Continue(Bytes::copy_from_slice(data)),
            Some(1) => AuthStep::Success {
                data: (data.len() > 1).then(|| Bytes::copy_from_slice(&data[1..])),
                username: ByteStr::from("toy"),
            },
            _ => AuthStep::Failure {
                code: ReasonCode::BAD_USER_NAME_OR_PASSWORD,
                why: "toy: refused",
            },
        }
    }
}

fn topic(t: &Topic, known: &[&str]) -> ByteStr {
    match t {
        Topic::Known(i) => ByteStr::from(known[usize::from(*i) % known.len()]),
        Topic::Any(s) => ByteStr::from(s.as_str()),
    }
}

/// Small packet ids, so that the client's ids collide with each other and with the broker's.
fn packet_id(id: u8) -> PacketId {
    PacketId::new(u16::from(id % 24) + 1).expect("non-zero")
}

fn qos(q: u8) -> QoS {
    QoS::from_u8(q % 3).expect("0..=2 is a QoS")
}

fn version(v: u8) -> ProtocolVersion {
    [
        ProtocolVersion::V3_1,
        ProtocolVersion::V3_1_1,
        ProtocolVersion::V5,
    ][usize::from(v % 3)]
}

fn ack(id: u8, code: u8) -> Ack {
    Ack {
        code: ReasonCode(code),
        ..Ack::new(packet_id(id))
    }
}

fn properties(values: PropertyValues) -> Properties {
    if values == PropertyValues::EMPTY {
        Properties::default()
    } else {
        Properties::from(values)
    }
}

fn connect_packet(pkt: &Pkt) -> Option<Packet> {
    let Pkt::Connect {
        version: v,
        clean_start,
        keep_alive_s,
        client_id,
        long_client_id,
        will,
        username,
        password,
        session_expiry_s,
        receive_maximum,
        topic_alias_maximum,
        maximum_packet_size,
        auth_method,
        auth_data,
    } = pkt
    else {
        return None;
    };
    let protocol = version(*v);
    let mut client_id = CLIENT_IDS[usize::from(*client_id) % CLIENT_IDS.len()].to_owned();
    if *long_client_id {
        client_id.push_str("-longer-than-sixteen-bytes");
    }
    let will = will.as_ref().map(|w| Will {
        topic: topic(&w.topic, &TOPICS),
        payload: Bytes::copy_from_slice(&w.payload),
        qos: qos(w.qos),
        retain: w.retain,
        properties: properties(PropertyValues {
            will_delay_interval_s: w.delay_s.map(u32::from),
            ..PropertyValues::default()
        }),
    });
    let v5 = PropertyValues {
        session_expiry_interval_s: session_expiry_s.map(u32::from),
        receive_maximum: *receive_maximum,
        topic_alias_maximum: topic_alias_maximum.map(u16::from),
        maximum_packet_size: maximum_packet_size.map(u32::from),
        authentication_method: auth_method
            .map(|toy| ByteStr::from(if toy { TOY_METHOD } else { "nope" })),
        authentication_data: auth_data.as_deref().map(Bytes::copy_from_slice),
        ..PropertyValues::default()
    };
    Some(Packet::Connect(Box::new(Connect {
        protocol,
        clean_start: *clean_start,
        keep_alive_s: u16::from(*keep_alive_s),
        properties: properties(v5),
        client_id: ByteStr::from(client_id),
        will,
        username: username.map(|u| ByteStr::from(format!("user{}", u % 4))),
        password: password.as_deref().map(Bytes::copy_from_slice),
    })))
}

fn subscribe_packet(id: u8, filters: &[FilterSpec], subscription_id: Option<u32>) -> Packet {
    let entry = |f: &FilterSpec| {
        let options = SubscriptionOptions {
            qos: qos(f.qos),
            no_local: f.no_local,
            retain_as_published: f.retain_as_published,
            retain_handling: match f.retain_handling % 3 {
                0 => RetainHandling::OnSubscribe,
                1 => RetainHandling::OnNewSubscribe,
                _ => RetainHandling::Never,
            },
        };
        (topic(&f.filter, &FILTERS), options)
    };
    Packet::Subscribe(Subscribe {
        packet_id: packet_id(id),
        properties: properties(PropertyValues {
            subscription_identifiers: subscription_id.into_iter().collect(),
            ..PropertyValues::default()
        }),
        filters: filters.iter().map(entry).collect(),
    })
}

fn publish_packet(pkt: &Pkt) -> Option<Packet> {
    let Pkt::Publish {
        qos: q,
        retain,
        dup,
        topic: t,
        id,
        payload,
        topic_alias,
        message_expiry_s,
    } = pkt
    else {
        return None;
    };
    let qos = qos(*q);
    Some(Packet::Publish(Publish {
        dup: *dup,
        qos,
        retain: *retain,
        topic: topic(t, &TOPICS),
        packet_id: (qos != QoS::AtMostOnce).then(|| packet_id(*id)),
        properties: properties(PropertyValues {
            topic_alias: topic_alias.map(|a| u16::from(a % 4)),
            message_expiry_interval_s: message_expiry_s.map(u32::from),
            ..PropertyValues::default()
        }),
        payload: Bytes::copy_from_slice(payload),
    }))
}

fn packet(pkt: &Pkt) -> Packet {
    match pkt {
        Pkt::Connect { .. } => connect_packet(pkt).expect("a CONNECT"),
        Pkt::Subscribe {
            id,
            filters,
            subscription_id,
        } => subscribe_packet(*id, filters, *subscription_id),
        Pkt::Publish { .. } => publish_packet(pkt).expect("a PUBLISH"),
        Pkt::PubAck { id, code } => Packet::PubAck(ack(*id, *code)),
        Pkt::PubRec { id, code } => Packet::PubRec(ack(*id, *code)),
        Pkt::PubRel { id, code } => Packet::PubRel(ack(*id, *code)),
        Pkt::PubComp { id, code } => Packet::PubComp(ack(*id, *code)),
        Pkt::Unsubscribe { id, filters } => Packet::Unsubscribe(Unsubscribe {
            packet_id: packet_id(*id),
            properties: Properties::default(),
            filters: filters.iter().map(|f| topic(f, &FILTERS)).collect(),
        }),
        Pkt::PingReq => Packet::PingReq,
        Pkt::Disconnect {
            code,
            session_expiry_s,
        } => Packet::Disconnect(Disconnect {
            code: ReasonCode(*code),
            properties: properties(PropertyValues {
                session_expiry_interval_s: session_expiry_s.map(u32::from),
                ..PropertyValues::default()
            }),
        }),
        Pkt::Auth { code, method, data } => Packet::Auth(Auth {
            code: ReasonCode(*code),
            properties: properties(PropertyValues {
                authentication_method: Some(ByteStr::from(if *method { TOY_METHOD } else { "x" })),
                authentication_data: (!data.is_empty()).then(|| Bytes::copy_from_slice(data)),
                ..PropertyValues::default()
            }),
        }),
    }
}

/// One client connection as the harness sees it.
struct Client {
    shard: usize,
    id: ConnectionId,
    /// The version its packets are encoded at: that of the last CONNECT sent on it.
    version: ProtocolVersion,
    /// Bytes the "socket" holds while the shard does not read this connection.
    pending: Vec<u8>,
    open: bool,
}

struct World {
    shards: Vec<Shard>,
    mesh_backlog_max: usize,
    reads_paused: Vec<bool>,
    clients: Vec<Client>,
    now: Instant,
    /// Reused scratch lists.
    ids: Vec<ConnectionId>,
    verify: Vec<ringmq::shard::VerifyRequest>,
}

impl World {
    fn new(shard_count: usize) -> World {
        let now = Instant::now();
        let limits = limits();
        let mut authenticator = Authenticator::new();
        authenticator.register(Arc::new(Toy));
        let authenticator = Arc::new(authenticator);
        let shards = ringmq::mesh::build(shard_count, limits.mesh_ring_capacity as usize)
            .into_iter()
            .map(|endpoint| {
                Shard::new(now, endpoint, limits.clone(), 1).with_auth(authenticator.clone())
            })
            .collect();
        World {
            shards,
            mesh_backlog_max: limits.mesh_backlog_max as usize,
            reads_paused: vec![false; shard_count],
            clients: Vec::new(),
            now,
            ids: Vec::new(),
            verify: Vec::new(),
        }
    }

    fn client(&mut self, conn: u8) -> Option<&mut Client> {
        if self.clients.is_empty() {
            return None;
        }
        let n = self.clients.len();
        Some(&mut self.clients[usize::from(conn) % n]).filter(|c| c.open)
    }

    fn run(&mut self, op: &Op) {
        match op {
            Op::Accept { shard } => {
                if self.clients.len() >= CONNECTIONS_MAX {
                    return;
                }
                let shard = usize::from(*shard) % self.shards.len();
                let port = 1000 + self.clients.len() as u16;
                let peer = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
                if let Some(id) = self.shards[shard].accept(self.now, peer) {
                    self.clients.push(Client {
                        shard,
                        id,
                        version: ProtocolVersion::V3_1_1,
                        pending: Vec::new(),
                        open: true,
                    });
                }
            }
            Op::Raw { conn, bytes } => {
                if let Some(client) = self.client(*conn) {
                    client.pending.extend_from_slice(bytes);
                }
                self.deliver(usize::MAX);
            }
            Op::Send {
                conn,
                packet: pkt,
                split,
            } => self.send(*conn, pkt, *split),
            Op::Close { conn } => {
                if let Some(client) = self.client(*conn) {
                    client.open = false;
                    let (shard, id) = (client.shard, client.id);
                    self.shards[shard].handle_closed(self.now, id);
                }
            }
            Op::Time { ms, long } => {
                let ms = u64::from(*ms) * if *long { 1000 } else { 1 };
                self.now += Duration::from_millis(ms);
                for shard in &mut self.shards {
                    shard.handle_tick(self.now);
                }
            }
            Op::Flush => self.flush(),
            Op::Pump { rounds } => {
                for _ in 0..=(rounds % 8) {
                    self.pump();
                }
            }
        }
        self.after_op();
    }

    fn send(&mut self, conn: u8, pkt: &Pkt, split: u8) {
        let Some(client) = self.client(conn) else {
            return;
        };
        let packet = packet(pkt);
        if let Packet::Connect(connect) = &packet {
            client.version = connect.protocol;
        }
        let mut out = BytesMut::new();
        if codec::encode(&packet, client.version, &mut out).is_err() {
            // Not expressible at this version (e.g. AUTH at 3.1.1); send nothing.
            return;
        }
        // Split the packet across two reads at a fuzzer-chosen point.
        let at = usize::from(split).min(out.len());
        client.pending.extend_from_slice(&out[..at]);
        let index = usize::from(conn) % self.clients.len();
        self.deliver(index);
        self.clients[index].pending.extend_from_slice(&out[at..]);
        self.deliver(index);
    }

    /// Feeds waiting bytes to connections the driver would read now (`usize::MAX`: all).
    fn deliver(&mut self, only: usize) {
        for (index, client) in self.clients.iter_mut().enumerate() {
            if (only != usize::MAX && index != only) || !client.open || client.pending.is_empty() {
                continue;
            }
            let shard = &mut self.shards[client.shard];
            if self.reads_paused[client.shard] || shard.is_throttled(client.id) {
                continue;
            }
            let bytes = std::mem::take(&mut client.pending);
            shard.handle_read(self.now, client.id, &bytes);
        }
    }

    /// What the driver does for output: write what each dirty connection has, and shut the
    /// socket when asked to.
    fn flush(&mut self) {
        for s in 0..self.shards.len() {
            self.ids.clear();
            self.shards[s].drain_dirty(&mut self.ids);
            for id in std::mem::take(&mut self.ids) {
                loop {
                    let (bytes, close) = self.shards[s].take_output(id);
                    if bytes.is_some() {
                        self.shards[s].resume_after_output(self.now);
                        let _ = self.shards[s].take_released();
                        continue;
                    }
                    if close {
                        self.closed(s, id);
                    }
                    break;
                }
            }
        }
    }

    fn closed(&mut self, shard: usize, id: ConnectionId) {
        self.shards[shard].handle_closed(self.now, id);
        for client in &mut self.clients {
            if client.shard == shard && client.id == id {
                client.open = false;
            }
        }
    }

    fn pump(&mut self) -> usize {
        let mut moved = 0;
        for shard in &mut self.shards {
            moved += shard.flush_mesh();
        }
        for shard in &mut self.shards {
            moved += shard.handle_mesh(self.now);
        }
        for shard in &mut self.shards {
            moved += shard.flush_mesh();
        }
        moved
    }

    /// Driver housekeeping after every operation: password checks answered (refused: no
    /// hashing in a fuzz loop), hard closes done, the read gate set from the mesh backlog.
    fn after_op(&mut self) {
        for s in 0..self.shards.len() {
            self.shards[s].drain_verify_requests(&mut self.verify);
            for request in std::mem::take(&mut self.verify) {
                let verified = request.refuse();
                self.shards[s].handle_verified(self.now, verified);
            }
            self.ids.clear();
            self.shards[s].drain_force_closed(&mut self.ids);
            for id in std::mem::take(&mut self.ids) {
                self.closed(s, id);
            }
            let backlog = self.shards[s].mesh_backlog();
            let paused = &mut self.reads_paused[s];
            if backlog >= self.mesh_backlog_max && !*paused {
                *paused = true;
                self.shards[s].set_reads_paused(true);
            } else if *paused && backlog < self.mesh_backlog_max / 2 {
                *paused = false;
                self.shards[s].set_reads_paused(false);
            }
        }
    }
}

fuzz_target!(|program: Program| {
    let mut world = World::new(usize::from(program.shards % 3) + 1);
    for op in &program.ops {
        world.run(op);
    }
    // Let everything settle: mesh drained, output taken, bytes delivered, timers fired.
    for _ in 0..SETTLE_ROUNDS_MAX {
        world.flush();
        world.deliver(usize::MAX);
        if world.pump() == 0 {
            break;
        }
        world.after_op();
    }
    world.now += Duration::from_secs(3600);
    for shard in &mut world.shards {
        shard.handle_tick(world.now);
    }
    world.flush();
});
