//! The whole publish path through one sans-IO shard: PUBLISH bytes in, encoded deliveries out,
//! for QoS 0, 1 and 2, point to point (1 -> 1) and fan-out (1 -> 100).
//!
//! Set-up: `Shard::standalone(now, Limits::default(), 0)`, one publisher and N subscribers
//! connected (CONNECT, 3.1.1) and subscribed at the benchmark's QoS, all through `handle_read`.
//! Each iteration then
//! 1. feeds one PUBLISH, encoded beforehand with `ringmq::codec::encode`, from the publisher
//!    (packet ids cycle so that no id is reused while in flight);
//! 2. drains the dirty connections (`drain_dirty`, `take_output`) and answers every packet as
//!    a well-behaved client would: PUBACK or PUBREC for a delivery, PUBREL for the publisher's
//!    PUBREC, PUBCOMP for a PUBREL; the answers go back through `handle_read`;
//! 3. repeats step 2 until no connection has output, so that every QoS 1/2 flow completes in
//!    the iteration and the inflight window never fills.
//!
//! The clients' answers are encoded at set-up (one table per ack type and packet id), and
//! finding the packet id in an output frame reads two bytes, so what is timed is the shard:
//! decoding, routing through the trie, the session's QoS flow and encoding each delivery.
//! Throughput is in delivered messages (1 per iteration point to point, 100 fan-out).
//!
//! Baseline (`forwarder`): the zero-logic forwarder of the issue in-process: decode the same
//! PUBLISH from a read buffer, look its topic up in an exact-topic `ahash::AHashMap`, encode it
//! at QoS 0 into each subscriber's buffer and take the buffers. No validation, no sessions, no
//! acknowledgements: what is left of the path when MQTT's rules are taken out.

mod common;

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::Instant;

use ahash::AHashMap;
use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ringmq::codec::{
    self, Ack, ByteStr, Connect, Decoded, Frame, Packet, PacketId, Properties, ProtocolVersion,
    Publish, QoS, Subscribe, SubscriptionOptions,
};
use ringmq::config::Limits;
use ringmq::shard::{ConnectionId, Shard};

const V4: ProtocolVersion = ProtocolVersion::V3_1_1;
const TOPIC: &str = "site/17/device/42/temp";
/// Distinct publisher packet ids cycled through; each flow completes within its iteration.
const PUBLISH_IDS: u16 = 256;
/// The broker's default `packet_size_max`.
const PACKET_SIZE_MAX: u32 = 1024 * 1024;
/// Every 3.1.1 acknowledgement is 4 bytes: type, length 2, packet id.
const ACK_LEN: usize = 4;

fn packet_id(n: u16) -> PacketId {
    PacketId::new(n).expect("benchmark packet ids are non-zero")
}

fn encode(packet: &Packet) -> Bytes {
    let mut out = BytesMut::new();
    codec::encode(packet, V4, &mut out).expect("benchmark packets encode");
    out.freeze()
}

fn publish(qos: QoS, id: u16, payload: &Bytes) -> Publish {
    Publish {
        dup: false,
        qos,
        retain: false,
        topic: ByteStr::from(TOPIC),
        packet_id: (qos != QoS::AtMostOnce).then(|| packet_id(id)),
        properties: Properties::default(),
        payload: payload.clone(),
    }
}

/// Every client's answers, encoded once: PUBACK, PUBREC, PUBREL and PUBCOMP for every id.
struct AckTables {
    /// Indexed by `[ack type - 4][packet id]`, `ACK_LEN` bytes each.
    tables: Vec<Vec<u8>>,
}

impl AckTables {
    fn new() -> AckTables {
        let kinds: [fn(Ack) -> Packet; 4] = [
            Packet::PubAck,
            Packet::PubRec,
            Packet::PubRel,
            Packet::PubComp,
        ];
        let tables = kinds
            .iter()
            .map(|kind| {
                let mut table = vec![0u8; ACK_LEN];
                for id in 1..=u16::MAX {
                    let bytes = encode(&kind(Ack::new(packet_id(id))));
                    assert_eq!(bytes.len(), ACK_LEN);
                    table.extend_from_slice(&bytes);
                }
                table
            })
            .collect();
        AckTables { tables }
    }

    /// The encoded ack of packet type `ack_type` (4..=7) for packet id `id`.
    fn get(&self, ack_type: u8, id: u16) -> &[u8] {
        let start = usize::from(id) * ACK_LEN;
        &self.tables[usize::from(ack_type - 4)][start..start + ACK_LEN]
    }
}

/// Appends a client's answers to every frame in `output`; returns the PUBLISHes seen.
fn answer(output: &[u8], acks: &AckTables, replies: &mut Vec<u8>) -> u64 {
    let mut rest = output;
    let mut publishes = 0;
    while !rest.is_empty() {
        let Ok(Frame::Complete {
            first_byte,
            header_len,
            body_len,
        }) = codec::check(rest, PACKET_SIZE_MAX)
        else {
            panic!("the shard writes whole, valid frames");
        };
        let body = &rest[header_len..header_len + body_len];
        let id_at = |offset: usize| u16::from_be_bytes([body[offset], body[offset + 1]]);
        match first_byte >> 4 {
            3 => {
                publishes += 1;
                let qos = (first_byte >> 1) & 0b11;
                if qos > 0 {
                    let topic_len = usize::from(id_at(0));
                    let ack_type = if qos == 1 { 4 } else { 5 };
                    replies.extend_from_slice(acks.get(ack_type, id_at(2 + topic_len)));
                }
            }
            5 => replies.extend_from_slice(acks.get(6, id_at(0))),
            6 => replies.extend_from_slice(acks.get(7, id_at(0))),
            _ => {}
        }
        rest = &rest[header_len + body_len..];
    }
    publishes
}

/// A shard with one publisher and `subscribers` subscribers on `TOPIC`, and its clients.
struct PublishPath {
    shard: Shard,
    now: Instant,
    publisher: ConnectionId,
    /// The publisher's PUBLISH frames, one per packet id in the cycle.
    publishes: Vec<Bytes>,
    next: usize,
    acks: AckTables,
    dirty: Vec<ConnectionId>,
    replies: Vec<u8>,
    /// (connection, start, end) of each connection's answers in `replies`.
    spans: Vec<(ConnectionId, usize, usize)>,
    delivered: u64,
}

impl PublishPath {
    fn new(subscribers: u16, qos: QoS, payload_bytes: usize) -> PublishPath {
        let now = Instant::now();
        let mut shard = Shard::standalone(now, Limits::default(), 0);
        for n in 0..subscribers {
            let id = open(&mut shard, now, &format!("sub-{n}"), n);
            shard.handle_read(now, id, &encode(&subscribe(qos)));
        }
        let publisher = open(&mut shard, now, "pub", subscribers);
        let payload = Bytes::from(vec![0xA5; payload_bytes]);
        let ids = if qos == QoS::AtMostOnce {
            1
        } else {
            PUBLISH_IDS
        };
        let publishes = (1..=ids)
            .map(|id| encode(&Packet::Publish(publish(qos, id, &payload))))
            .collect();
        let mut path = PublishPath {
            shard,
            now,
            publisher,
            publishes,
            next: 0,
            acks: AckTables::new(),
            dirty: Vec::new(),
            replies: Vec::new(),
            spans: Vec::new(),
            delivered: 0,
        };
        // CONNACKs and SUBACKs.
        path.settle();
        assert_eq!(path.delivered, 0);
        path
    }

    /// One iteration: publish once, then answer until every flow is complete.
    fn publish_once(&mut self) {
        let frame = &self.publishes[self.next];
        self.next = (self.next + 1) % self.publishes.len();
        self.shard.handle_read(self.now, self.publisher, frame);
        self.settle();
    }

    /// Drains output and feeds the clients' answers until no connection has output.
    fn settle(&mut self) {
        loop {
            self.shard.drain_dirty(&mut self.dirty);
            if self.dirty.is_empty() {
                return;
            }
            self.replies.clear();
            for id in self.dirty.drain(..) {
                let start = self.replies.len();
                while let (Some(output), _) = self.shard.take_output(id) {
                    self.delivered += answer(&output, &self.acks, &mut self.replies);
                }
                if self.replies.len() > start {
                    self.spans.push((id, start, self.replies.len()));
                }
            }
            for (id, start, end) in self.spans.drain(..) {
                self.shard
                    .handle_read(self.now, id, &self.replies[start..end]);
            }
        }
    }
}

/// Accepts a connection from the `n`th client and feeds its CONNECT.
fn open(shard: &mut Shard, now: Instant, client_id: &str, n: u16) -> ConnectionId {
    let peer = SocketAddr::from(([127, 0, 0, 1], 40_000 + n));
    let id = shard.accept(now, peer).expect("below connections_max");
    shard.handle_read(now, id, &encode(&connect(client_id)));
    id
}

fn connect(client_id: &str) -> Packet {
    Packet::Connect(Box::new(Connect {
        protocol: V4,
        clean_start: true,
        keep_alive_s: 0,
        properties: Properties::default(),
        client_id: ByteStr::from(client_id),
        will: None,
        username: None,
        password: None,
    }))
}

fn subscribe(qos: QoS) -> Packet {
    Packet::Subscribe(Subscribe {
        packet_id: packet_id(1),
        properties: Properties::default(),
        filters: vec![(
            ByteStr::from(TOPIC),
            SubscriptionOptions {
                qos,
                ..SubscriptionOptions::default()
            },
        )],
    })
}

/// The baseline: decode, exact-topic lookup, encode per subscriber, take the buffers.
struct Forwarder {
    read_buf: BytesMut,
    frame: Bytes,
    routes: AHashMap<String, Vec<usize>>,
    outs: Vec<BytesMut>,
}

impl Forwarder {
    fn new(subscribers: usize, payload_bytes: usize) -> Forwarder {
        let payload = Bytes::from(vec![0xA5; payload_bytes]);
        let frame = encode(&Packet::Publish(publish(QoS::AtMostOnce, 1, &payload)));
        let routes = AHashMap::from_iter([(TOPIC.to_string(), (0..subscribers).collect())]);
        Forwarder {
            read_buf: BytesMut::new(),
            frame,
            routes,
            outs: vec![BytesMut::new(); subscribers],
        }
    }

    fn forward_once(&mut self) -> usize {
        self.read_buf.extend_from_slice(&self.frame);
        let Ok(Decoded::Packet(Packet::Publish(publish))) =
            codec::decode(&mut self.read_buf, V4, PACKET_SIZE_MAX)
        else {
            panic!("the forwarder's frame is a PUBLISH");
        };
        let mut written = 0;
        if let Some(subscribers) = self.routes.get(publish.topic.as_str()) {
            for &k in subscribers {
                let out = &mut self.outs[k];
                codec::encode_publish(&publish, V4, out).expect("encodes");
                written += std::mem::take(out).freeze().len();
            }
        }
        written
    }
}

fn bench_shape(c: &mut Criterion, shape: &str, subscribers: u16, payload_bytes: usize) {
    let mut group = c.benchmark_group(format!("publish_path/{shape}_{payload_bytes}B"));
    group.throughput(Throughput::Elements(u64::from(subscribers)));
    for (label, qos) in [
        ("qos0", QoS::AtMostOnce),
        ("qos1", QoS::AtLeastOnce),
        ("qos2", QoS::ExactlyOnce),
    ] {
        let mut path = PublishPath::new(subscribers, qos, payload_bytes);
        path.publish_once();
        assert_eq!(path.delivered, u64::from(subscribers), "set-up delivers");
        group.bench_function(BenchmarkId::from_parameter(label), |b| {
            b.iter(|| path.publish_once())
        });
        let stats = path.shard.stats();
        assert_eq!(stats.publish_dropped, 0, "{label}: nothing dropped");
        assert_eq!(
            stats.publish_sent, path.delivered,
            "{label}: every delivery seen"
        );
    }
    let mut forwarder = Forwarder::new(usize::from(subscribers), payload_bytes);
    group.bench_function("forwarder", |b| {
        b.iter(|| black_box(forwarder.forward_once()))
    });
    group.finish();
}

fn publish_path_benches(c: &mut Criterion) {
    bench_shape(c, "p2p", 1, 16);
    bench_shape(c, "p2p", 1, 1024);
    bench_shape(c, "fanout100", 100, 16);
}

criterion_group! {
    name = benches;
    config = common::config();
    targets = publish_path_benches
}
criterion_main!(benches);
