//! The multi-shard simulator as an invariant checker: random clients on random shards,
//! reconnects on other shards, take-overs, subscribers that stop acknowledging for a while,
//! retained updates racing each other, and the mesh pumped in a random order. After each run:
//!
//! 1. every QoS 1 message whose PUBACK reached its publisher reached every subscriber (the
//!    subscribers are persistent and subscribed before the first publish);
//! 2. every shard's retained store holds the same message for every topic.
//!
//! `CI_SEEDS` seeds run with the test suite; `RINGMQ_SIM_SEEDS=N` runs N more on demand
//! (`RINGMQ_SIM_SEEDS=2000 cargo test --lib invariants -- --nocapture`).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::time::Instant;

use bytes::{Bytes, BytesMut};

use crate::codec::{self, Ack, Decoded, Packet, ProtocolVersion, QoS};
use crate::config::Limits;

use super::tests::{connect_packet, publish, subscribe};
use super::{ConnectionId, Shard};

const V4: ProtocolVersion = ProtocolVersion::V3_1_1;

/// Seeds every CI run checks.
const CI_SEEDS: u64 = 40;
/// Steps per run.
const STEPS: usize = 600;

/// xorshift64*: small, seedable, good enough to pick actions.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// One client connection of the simulation.
struct Link {
    shard: usize,
    conn: ConnectionId,
    /// Undecoded output.
    inbox: BytesMut,
}

struct World {
    shards: Vec<Shard>,
    now: Instant,
    rng: Rng,
    /// Subscriber client id -> its connection, if connected.
    subscribers: Vec<Option<Link>>,
    /// Subscriber -> payloads received.
    received: Vec<HashSet<Bytes>>,
    /// Subscribers that currently leave what they receive unacknowledged.
    lazy: Vec<bool>,
    publishers: Vec<Link>,
    next_payload: u64,
    next_packet_id: u16,
    /// Payloads published at QoS 1, by (publisher, packet id), until their PUBACK comes.
    in_flight: HashMap<(usize, u16), Bytes>,
    acknowledged: Vec<Bytes>,
}

impl World {
    fn new(seed: u64) -> World {
        let limits = Limits {
            queued_messages_max: 100_000,
            inflight_max: 4,
            mesh_ring_capacity: 8,
            mesh_backlog_max: 100_000,
            ..Limits::default()
        };
        let now = Instant::now();
        let shards = crate::mesh::build(3, limits.mesh_ring_capacity as usize)
            .into_iter()
            .map(|endpoint| Shard::new(now, endpoint, limits.clone(), 0))
            .collect();
        World {
            shards,
            now,
            rng: Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1),
            subscribers: (0..3).map(|_| None).collect(),
            received: vec![HashSet::new(); 3],
            lazy: vec![false; 3],
            publishers: Vec::new(),
            next_payload: 0,
            next_packet_id: 0,
            in_flight: HashMap::new(),
            acknowledged: Vec::new(),
        }
    }

    fn open(&mut self, shard: usize, packet: &Packet) -> Link {
        let peer: SocketAddr = "127.0.0.1:40000".parse().expect("literal address");
        let conn = self.shards[shard].accept(self.now, peer).expect("room");
        let mut link = Link {
            shard,
            conn,
            inbox: BytesMut::new(),
        };
        self.write(&mut link, packet);
        link
    }

    fn write(&mut self, link: &mut Link, packet: &Packet) {
        let mut buf = BytesMut::new();
        codec::encode(packet, V4, &mut buf).expect("test packets encode");
        self.shards[link.shard].handle_read(self.now, link.conn, &buf);
    }

    /// Everything written to `link` so far, decoded.
    fn read(&mut self, link: &mut Link) -> Vec<Packet> {
        let shard = &mut self.shards[link.shard];
        let mut dirty = Vec::new();
        shard.drain_dirty(&mut dirty);
        while let (Some(bytes), _) = shard.take_output(link.conn) {
            link.inbox.extend_from_slice(&bytes);
        }
        let mut packets = Vec::new();
        while let Ok(Decoded::Packet(p)) = codec::decode(&mut link.inbox, V4, u32::MAX >> 4) {
            packets.push(p);
        }
        packets
    }

    /// One shard takes its mesh messages and sends its own.
    fn pump(&mut self, shard: usize) {
        self.shards[shard].handle_mesh(self.now);
        for shard in &mut self.shards {
            shard.flush_mesh();
        }
    }

    fn settle(&mut self) {
        for _ in 0..10_000 {
            let mut moved = 0;
            for shard in &mut self.shards {
                moved += shard.flush_mesh() + shard.handle_mesh(self.now) + shard.flush_mesh();
            }
            if moved == 0 {
                return;
            }
        }
        panic!("mesh did not settle");
    }

    fn connect_subscriber(&mut self, index: usize, shard: usize) {
        let id = format!("sub{index}");
        let link = self.open(shard, &connect_packet(&id, false, 0, None));
        // A connection it replaces (take-over) is closed by the broker; forget it here.
        self.subscribers[index] = Some(link);
    }

    /// Reads a subscriber's output, acknowledging unless it is being lazy. Returns how many
    /// packets it read.
    fn serve_subscriber(&mut self, index: usize, ack: bool) -> usize {
        let Some(mut link) = self.subscribers[index].take() else {
            return 0;
        };
        let packets = self.read(&mut link);
        let read = packets.len();
        for packet in packets {
            if let Packet::Publish(p) = packet {
                self.received[index].insert(p.payload.clone());
                if let (true, Some(id)) = (ack, p.packet_id) {
                    self.write(&mut link, &Packet::PubAck(Ack::new(id)));
                }
            }
        }
        self.subscribers[index] = Some(link);
        read
    }

    fn publish_qos1(&mut self, publisher: usize) {
        self.next_payload += 1;
        self.next_packet_id = self.next_packet_id % 60_000 + 1;
        let payload = Bytes::from(format!("m{}", self.next_payload));
        let id = self.next_packet_id;
        let topic = format!("t/{}", self.rng.below(4));
        let packet = publish(&topic, "", QoS::AtLeastOnce, false, Some(id));
        let Packet::Publish(mut p) = packet else {
            unreachable!("publish() makes a PUBLISH")
        };
        p.payload = payload.clone();
        self.in_flight.insert((publisher, id), payload);
        let mut link = std::mem::replace(&mut self.publishers[publisher], dummy_link());
        self.write(&mut link, &Packet::Publish(p));
        self.publishers[publisher] = link;
    }

    fn collect_acks(&mut self, publisher: usize) {
        let mut link = std::mem::replace(&mut self.publishers[publisher], dummy_link());
        for packet in self.read(&mut link) {
            if let Packet::PubAck(ack) = packet {
                if let Some(payload) = self.in_flight.remove(&(publisher, ack.packet_id.get())) {
                    self.acknowledged.push(payload);
                }
            }
        }
        self.publishers[publisher] = link;
    }

    fn publish_retained(&mut self) {
        let publisher = self.rng.below(self.publishers.len());
        let topic = format!("r/{}", self.rng.below(3));
        let value = if self.rng.below(4) == 0 {
            String::new()
        } else {
            format!("v{}", self.rng.next() % 1000)
        };
        let mut link = std::mem::replace(&mut self.publishers[publisher], dummy_link());
        self.write(
            &mut link,
            &publish(&topic, &value, QoS::AtMostOnce, true, None),
        );
        self.publishers[publisher] = link;
    }

    fn step(&mut self) {
        match self.rng.below(10) {
            0..=2 => {
                let p = self.rng.below(self.publishers.len());
                self.publish_qos1(p);
            }
            3 => self.publish_retained(),
            4 | 5 => {
                let shard = self.rng.below(3);
                self.pump(shard);
            }
            6 => {
                let s = self.rng.below(3);
                let ack = !self.lazy[s];
                let _ = self.serve_subscriber(s, ack);
                let p = self.rng.below(self.publishers.len());
                self.collect_acks(p);
            }
            7 => {
                // Drop the connection (no DISCONNECT) or take over from another shard.
                let s = self.rng.below(3);
                if let Some(link) = self.subscribers[s].take() {
                    if self.rng.below(2) == 0 {
                        self.shards[link.shard].handle_closed(self.now, link.conn);
                    }
                }
                let shard = self.rng.below(3);
                self.connect_subscriber(s, shard);
            }
            8 => {
                let s = self.rng.below(3);
                self.lazy[s] = !self.lazy[s];
            }
            _ => {
                let p = self.rng.below(self.publishers.len());
                self.collect_acks(p);
            }
        }
    }

    fn run(&mut self) {
        for s in 0..3 {
            self.connect_subscriber(s, s);
            self.settle();
            let mut link = self.subscribers[s].take().expect("just connected");
            self.write(&mut link, &subscribe(1, &[("t/#", QoS::AtLeastOnce)]));
            self.subscribers[s] = Some(link);
            self.settle();
            let _ = self.serve_subscriber(s, true);
        }
        for p in 0..3 {
            let link = self.open(p, &connect_packet(&format!("pub{p}"), true, 0, None));
            self.publishers.push(link);
        }
        self.settle();
        for _ in 0..STEPS {
            self.step();
        }
        // The end: everyone back, everything acknowledged, until nothing moves. A link the
        // broker closed (two connects with one id raced, and the other won) is replaced.
        self.settle();
        for s in 0..3 {
            self.lazy[s] = false;
            let attached = self.subscribers[s].as_ref().is_some_and(|link| {
                self.shards[link.shard]
                    .conn(link.conn)
                    .is_some_and(|c| matches!(c.state, super::ConnState::Attached { .. }))
            });
            if !attached {
                self.connect_subscriber(s, s);
            }
        }
        for _ in 0..10_000 {
            self.settle();
            let read: usize = (0..3).map(|s| self.serve_subscriber(s, true)).sum();
            for p in 0..self.publishers.len() {
                self.collect_acks(p);
            }
            if read == 0 {
                return;
            }
        }
        panic!("the subscribers never caught up");
    }

    fn check(&self, seed: u64) {
        for (s, received) in self.received.iter().enumerate() {
            let missing: Vec<&Bytes> = self
                .acknowledged
                .iter()
                .filter(|m| !received.contains(*m))
                .collect();
            assert!(
                missing.is_empty(),
                "seed {seed}: subscriber {s} misses {} of {} acknowledged messages: {missing:?}",
                missing.len(),
                self.acknowledged.len()
            );
        }
        let stores: Vec<BTreeMap<String, Bytes>> = self
            .shards
            .iter()
            .map(|shard| {
                let mut store = BTreeMap::new();
                shard.retained.for_each(|topic, (_, message)| {
                    if !topic.is_sys() {
                        store.insert(topic.as_str().to_owned(), message.payload.clone());
                    }
                });
                store
            })
            .collect();
        assert!(
            stores.windows(2).all(|w| w[0] == w[1]),
            "seed {seed}: retained stores differ: {stores:?}"
        );
    }
}

/// Stands in for a link while it is borrowed out of its slot.
fn dummy_link() -> Link {
    Link {
        shard: 0,
        conn: ConnectionId {
            index: u32::MAX,
            generation: 0,
        },
        inbox: BytesMut::new(),
    }
}

#[test]
fn invariants_hold_for_random_runs() {
    let extra: u64 = std::env::var("RINGMQ_SIM_SEEDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    for seed in 0..CI_SEEDS + extra {
        let mut world = World::new(seed);
        world.run();
        world.check(seed);
    }
}
