//! Deterministic simulation of one shard: packets in, packets out, a virtual clock. These tests
//! read like scripts (quinn's `Pair::drive()` style) and run without a socket.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use crate::codec::{
    self, Ack, ByteStr, ConnAck, Connect, Decoded, Disconnect, Packet, PacketId, Properties,
    ProtocolVersion, Publish, QoS, ReasonCode, Subscribe, SubscriptionOptions, Unsubscribe, Will,
};
use crate::config::Limits;

use super::{ConnectionId, Shard};

const V4: ProtocolVersion = ProtocolVersion::V3_1_1;

pub(super) struct Sim {
    pub(super) shard: Shard,
    pub(super) now: Instant,
    /// Protocol level per connection (3.1.1 unless connected with `connect_v5`).
    versions: std::collections::HashMap<ConnectionId, ProtocolVersion>,
    /// Packets read past the CONNACK by `connect`, returned by the next `recv`.
    leftover: Vec<(ConnectionId, Packet)>,
}

pub(super) fn pid(n: u16) -> PacketId {
    PacketId::new(n).expect("test packet ids are non-zero")
}

pub(super) fn connect_packet(
    client_id: &str,
    clean: bool,
    keep_alive_s: u16,
    will: Option<Will>,
) -> Packet {
    Packet::Connect(Box::new(Connect {
        protocol: V4,
        clean_start: clean,
        keep_alive_s,
        properties: Properties::default(),
        client_id: ByteStr::from(client_id),
        will,
        username: None,
        password: None,
    }))
}

pub(super) fn publish(
    topic: &str,
    payload: &str,
    qos: QoS,
    retain: bool,
    id: Option<u16>,
) -> Packet {
    Packet::Publish(Publish {
        dup: false,
        qos,
        retain,
        topic: ByteStr::from(topic),
        packet_id: id.map(pid),
        properties: Properties::default(),
        payload: Bytes::copy_from_slice(payload.as_bytes()),
    })
}

pub(super) fn subscribe(id: u16, filters: &[(&str, QoS)]) -> Packet {
    Packet::Subscribe(Subscribe {
        packet_id: pid(id),
        properties: Properties::default(),
        filters: filters
            .iter()
            .map(|(f, qos)| {
                (
                    ByteStr::from(*f),
                    SubscriptionOptions {
                        qos: *qos,
                        ..Default::default()
                    },
                )
            })
            .collect(),
    })
}

pub(super) fn will(topic: &str, payload: &str) -> Will {
    Will {
        topic: ByteStr::from(topic),
        payload: Bytes::copy_from_slice(payload.as_bytes()),
        qos: QoS::AtLeastOnce,
        retain: false,
        properties: Properties::default(),
    }
}

impl Sim {
    pub(super) fn new(limits: Limits) -> Sim {
        let now = Instant::now();
        Sim {
            shard: Shard::standalone(now, limits, 0),
            now,
            versions: Default::default(),
            leftover: Vec::new(),
        }
    }

    /// A shard publishing `$SYS` every `interval_s`, its first update already out.
    fn with_sys_interval(interval_s: u32) -> Sim {
        let now = Instant::now();
        let mut shard = Shard::standalone(now, Limits::default(), interval_s);
        shard.handle_tick(now);
        Sim {
            shard,
            now,
            versions: Default::default(),
            leftover: Vec::new(),
        }
    }

    pub(super) fn open(&mut self) -> ConnectionId {
        let peer: SocketAddr = "127.0.0.1:40000".parse().expect("literal address");
        self.shard
            .accept(self.now, peer)
            .expect("below connections_max")
    }

    pub(super) fn version(&self, id: ConnectionId) -> ProtocolVersion {
        self.versions.get(&id).copied().unwrap_or(V4)
    }

    pub(super) fn send(&mut self, id: ConnectionId, packet: &Packet) {
        let mut buf = BytesMut::new();
        codec::encode(packet, self.version(id), &mut buf).expect("test packets encode");
        self.shard.handle_read(self.now, id, &buf);
    }

    pub(super) fn send_raw(&mut self, id: ConnectionId, bytes: &[u8]) {
        self.shard.handle_read(self.now, id, bytes);
    }

    /// Every packet written to `id` since the last call, plus whether it is closing.
    pub(super) fn recv(&mut self, id: ConnectionId) -> (Vec<Packet>, bool) {
        let mut dirty = Vec::new();
        self.shard.drain_dirty(&mut dirty);
        let mut buf = BytesMut::new();
        let mut closing = false;
        loop {
            let (bytes, close) = self.shard.take_output(id);
            closing |= close;
            match bytes {
                Some(bytes) => buf.extend_from_slice(&bytes),
                None => break,
            }
        }
        let (mut packets, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut self.leftover)
            .into_iter()
            .partition(|(c, _)| *c == id);
        self.leftover = rest;
        let mut packets: Vec<Packet> = packets.drain(..).map(|(_, p)| p).collect();
        while let Decoded::Packet(p) =
            codec::decode(&mut buf, self.version(id), u32::MAX >> 4).expect("broker output decodes")
        {
            packets.push(p);
        }
        (packets, closing)
    }

    pub(super) fn connect(&mut self, client_id: &str, clean: bool) -> (ConnectionId, ConnAck) {
        self.connect_with(client_id, clean, 0, None)
    }

    fn connect_with(
        &mut self,
        client_id: &str,
        clean: bool,
        keep_alive_s: u16,
        will: Option<Will>,
    ) -> (ConnectionId, ConnAck) {
        let id = self.open();
        self.send(id, &connect_packet(client_id, clean, keep_alive_s, will));
        (id, self.expect_connack(id))
    }

    /// The CONNACK the broker wrote to `id`; packets after it wait for the next `recv`.
    fn expect_connack(&mut self, id: ConnectionId) -> ConnAck {
        let (packets, _) = self.recv(id);
        let mut packets = packets.into_iter();
        match packets.next() {
            Some(Packet::ConnAck(ack)) => {
                self.leftover.extend(packets.map(|p| (id, p)));
                ack
            }
            other => panic!("expected CONNACK, got {other:?}"),
        }
    }

    /// Connects `client_id` and subscribes it to `filters`, discarding the SUBACK.
    pub(super) fn subscribed(
        &mut self,
        client_id: &str,
        clean: bool,
        filters: &[(&str, QoS)],
    ) -> ConnectionId {
        let (id, _) = self.connect(client_id, clean);
        self.send(id, &subscribe(1, filters));
        self.recv(id);
        id
    }

    /// Connects a 5.0 client with these CONNECT properties (and will).
    pub(super) fn connect_v5(
        &mut self,
        client_id: &str,
        clean: bool,
        properties: Properties,
        will: Option<Will>,
    ) -> (ConnectionId, ConnAck) {
        let id = self.open();
        self.versions.insert(id, ProtocolVersion::V5);
        let connect = Connect {
            protocol: ProtocolVersion::V5,
            clean_start: clean,
            keep_alive_s: 0,
            properties,
            client_id: ByteStr::from(client_id),
            will,
            username: None,
            password: None,
        };
        self.send(id, &Packet::Connect(Box::new(connect)));
        (id, self.expect_connack(id))
    }

    pub(super) fn advance(&mut self, by: Duration) {
        self.now += by;
        self.shard.handle_tick(self.now);
    }
}

pub(super) fn publishes(packets: &[Packet]) -> Vec<&Publish> {
    packets
        .iter()
        .filter_map(|p| {
            if let Packet::Publish(p) = p {
                Some(p)
            } else {
                None
            }
        })
        .collect()
}

#[test]
fn connect_gets_connack_success() {
    let mut sim = Sim::new(Limits::default());
    let (_, ack) = sim.connect("a", true);
    assert_eq!(ack.code, ReasonCode::SUCCESS);
    assert!(!ack.session_present);
}

#[test]
fn empty_client_id_without_clean_session_is_refused() {
    let mut sim = Sim::new(Limits::default());
    let id = sim.open();
    sim.send(id, &connect_packet("", false, 0, None));
    let (packets, closing) = sim.recv(id);
    assert!(matches!(&packets[..], [Packet::ConnAck(a)] if a.code.to_v3_connack() == 0x02));
    assert!(closing);
}

#[test]
fn first_packet_must_be_connect() {
    let mut sim = Sim::new(Limits::default());
    let id = sim.open();
    sim.send(id, &Packet::PingReq);
    let (packets, closing) = sim.recv(id);
    assert!(packets.is_empty());
    assert!(closing);
}

#[test]
fn second_connect_closes() {
    let mut sim = Sim::new(Limits::default());
    let (id, _) = sim.connect("a", true);
    sim.send(id, &connect_packet("a", true, 0, None));
    assert!(sim.recv(id).1);
    assert_eq!(sim.shard.stats().protocol_errors, 1);
}

#[test]
fn qos_is_downgraded_to_the_granted_qos() {
    let mut sim = Sim::new(Limits::default());
    let sub = sim.subscribed("sub", true, &[("t/#", QoS::AtMostOnce)]);
    let (publisher, _) = sim.connect("pub", true);
    sim.send(
        publisher,
        &publish("t/1", "x", QoS::AtLeastOnce, false, Some(7)),
    );
    let (acks, _) = sim.recv(publisher);
    assert!(matches!(&acks[..], [Packet::PubAck(a)] if a.packet_id == pid(7)));
    let (packets, _) = sim.recv(sub);
    let got = publishes(&packets);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].qos, QoS::AtMostOnce);
    assert_eq!(got[0].packet_id, None);
}

#[test]
fn overlapping_subscriptions_deliver_one_copy_at_the_highest_qos() {
    let mut sim = Sim::new(Limits::default());
    let (sub, _) = sim.connect("sub", true);
    sim.send(
        sub,
        &subscribe(
            1,
            &[
                ("a/+", QoS::AtMostOnce),
                ("a/#", QoS::ExactlyOnce),
                ("a/b", QoS::AtLeastOnce),
            ],
        ),
    );
    let (packets, _) = sim.recv(sub);
    assert!(
        matches!(&packets[..], [Packet::SubAck(s)] if s.codes == vec![ReasonCode(0), ReasonCode(2), ReasonCode(1)])
    );
    let (publisher, _) = sim.connect("pub", true);
    sim.send(
        publisher,
        &publish("a/b", "x", QoS::ExactlyOnce, false, Some(1)),
    );
    let (packets, _) = sim.recv(sub);
    let got = publishes(&packets);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].qos, QoS::ExactlyOnce);
}

#[test]
fn qos2_inbound_is_routed_once_even_when_resent() {
    let mut sim = Sim::new(Limits::default());
    let sub = sim.subscribed("sub", true, &[("t", QoS::AtMostOnce)]);
    let (publisher, _) = sim.connect("pub", true);
    let packet = publish("t", "once", QoS::ExactlyOnce, false, Some(9));
    sim.send(publisher, &packet);
    sim.send(publisher, &packet);
    let (packets, _) = sim.recv(publisher);
    assert_eq!(
        packets
            .iter()
            .filter(|p| matches!(p, Packet::PubRec(_)))
            .count(),
        2
    );
    assert_eq!(publishes(&sim.recv(sub).0).len(), 1);
    sim.send(publisher, &Packet::PubRel(Ack::new(pid(9))));
    let (packets, _) = sim.recv(publisher);
    assert!(matches!(&packets[..], [Packet::PubComp(c)] if c.packet_id == pid(9)));
    // After PUBREL the id is free again: a new message with it is routed.
    sim.send(publisher, &packet);
    assert_eq!(publishes(&sim.recv(sub).0).len(), 1);
}

#[test]
fn qos2_outbound_flow_completes() {
    let mut sim = Sim::new(Limits::default());
    let sub = sim.subscribed("sub", true, &[("t", QoS::ExactlyOnce)]);
    let (publisher, _) = sim.connect("pub", true);
    sim.send(
        publisher,
        &publish("t", "x", QoS::ExactlyOnce, false, Some(1)),
    );
    let (packets, _) = sim.recv(sub);
    let id = publishes(&packets)[0].packet_id.expect("QoS 2 has an id");
    sim.send(sub, &Packet::PubRec(Ack::new(id)));
    let (packets, _) = sim.recv(sub);
    assert!(matches!(&packets[..], [Packet::PubRel(r)] if r.packet_id == id));
    sim.send(sub, &Packet::PubComp(Ack::new(id)));
    assert!(sim.recv(sub).0.is_empty());
}

#[test]
fn inflight_window_holds_back_until_acked() {
    let limits = Limits {
        inflight_max: 2,
        ..Limits::default()
    };
    let mut sim = Sim::new(limits);
    let sub = sim.subscribed("sub", true, &[("t", QoS::AtLeastOnce)]);
    let (publisher, _) = sim.connect("pub", true);
    for n in 1..=3 {
        sim.send(
            publisher,
            &publish("t", &n.to_string(), QoS::AtLeastOnce, false, Some(n)),
        );
    }
    let (packets, _) = sim.recv(sub);
    let first = publishes(&packets)
        .iter()
        .map(|p| p.packet_id.expect("id"))
        .collect::<Vec<_>>();
    assert_eq!(first.len(), 2, "window of 2");
    sim.send(sub, &Packet::PubAck(Ack::new(first[0])));
    let (packets, _) = sim.recv(sub);
    let third = publishes(&packets);
    assert_eq!(third.len(), 1);
    assert_eq!(&third[0].payload[..], b"3");
}

#[test]
fn retained_messages_are_stored_replaced_and_deleted() {
    let mut sim = Sim::new(Limits::default());
    let (publisher, _) = sim.connect("pub", true);
    sim.send(
        publisher,
        &publish("r/1", "old", QoS::AtMostOnce, true, None),
    );
    sim.send(
        publisher,
        &publish("r/1", "new", QoS::AtMostOnce, true, None),
    );
    sim.send(
        publisher,
        &publish("r/2", "two", QoS::AtMostOnce, true, None),
    );
    sim.send(publisher, &publish("r/2", "", QoS::AtMostOnce, true, None));
    let (sub, _) = sim.connect("sub", true);
    sim.send(sub, &subscribe(1, &[("r/+", QoS::AtLeastOnce)]));
    let (packets, _) = sim.recv(sub);
    let got = publishes(&packets);
    assert_eq!(got.len(), 1);
    assert_eq!(&got[0].payload[..], b"new");
    assert!(
        got[0].retain,
        "sent because of a new subscription: retain 1 [MQTT-3.3.1-8]"
    );
    // A live retained publish reaches an existing subscriber with retain 0 [MQTT-3.3.1-9].
    sim.send(
        publisher,
        &publish("r/3", "live", QoS::AtMostOnce, true, None),
    );
    let (packets, _) = sim.recv(sub);
    assert!(!publishes(&packets)[0].retain);
}

#[test]
fn takeover_closes_the_old_connection_and_publishes_its_will() {
    let mut sim = Sim::new(Limits::default());
    let watcher = sim.subscribed("watcher", true, &[("wills/#", QoS::AtLeastOnce)]);
    let (old, _) = sim.connect_with("dev", true, 0, Some(will("wills/dev", "gone")));
    let (new, ack) = sim.connect("dev", true);
    assert_eq!(ack.code, ReasonCode::SUCCESS);
    assert!(sim.recv(old).1, "old connection closes");
    assert!(!sim.recv(new).1);
    assert_eq!(publishes(&sim.recv(watcher).0).len(), 1);
    assert_eq!(sim.shard.stats().takeovers, 1);
}

#[test]
fn will_is_discarded_on_disconnect_and_sent_on_loss() {
    let mut sim = Sim::new(Limits::default());
    let watcher = sim.subscribed("watcher", true, &[("wills/#", QoS::AtMostOnce)]);
    let (polite, _) = sim.connect_with("polite", true, 0, Some(will("wills/polite", "x")));
    sim.send(
        polite,
        &Packet::Disconnect(Disconnect::new(ReasonCode::NORMAL_DISCONNECTION)),
    );
    sim.shard.handle_closed(sim.now, polite);
    let (rude, _) = sim.connect_with("rude", true, 0, Some(will("wills/rude", "y")));
    sim.shard.handle_closed(sim.now, rude);
    let (packets, _) = sim.recv(watcher);
    let got = publishes(&packets);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].topic.as_str(), "wills/rude");
}

#[test]
fn keep_alive_closes_after_one_and_a_half_periods() {
    let mut sim = Sim::new(Limits::default());
    let (id, _) = sim.connect_with("k", true, 10, None);
    sim.advance(Duration::from_secs(14));
    sim.send(id, &Packet::PingReq);
    assert!(matches!(&sim.recv(id).0[..], [Packet::PingResp]));
    sim.advance(Duration::from_secs(14));
    assert!(!sim.recv(id).1, "PINGREQ reset the timer");
    sim.advance(Duration::from_secs(2));
    assert!(sim.recv(id).1, "closed after 15 s of silence");
    assert_eq!(sim.shard.stats().keep_alive_timeouts, 1);
}

#[test]
fn persistent_session_queues_offline_and_resumes() {
    let limits = Limits {
        queued_messages_max: 2,
        ..Limits::default()
    };
    let mut sim = Sim::new(limits);
    let sub = sim.subscribed("sub", false, &[("t", QoS::AtLeastOnce)]);
    sim.shard.handle_closed(sim.now, sub);
    let (publisher, _) = sim.connect("pub", true);
    for n in 1..=3 {
        sim.send(
            publisher,
            &publish("t", &n.to_string(), QoS::AtLeastOnce, false, Some(n)),
        );
    }
    sim.send(
        publisher,
        &publish("t", "qos0", QoS::AtMostOnce, false, None),
    );
    assert_eq!(
        sim.shard.stats().publish_dropped,
        2,
        "one over the queue limit, one QoS 0"
    );
    let (again, ack) = sim.connect("sub", false);
    assert!(ack.session_present);
    let (packets, _) = sim.recv(again);
    let got: Vec<&[u8]> = publishes(&packets).iter().map(|p| &p.payload[..]).collect();
    assert_eq!(got, vec![&b"1"[..], &b"2"[..]]);
}

#[test]
fn unacknowledged_messages_are_resent_with_dup_on_resume() {
    let mut sim = Sim::new(Limits::default());
    let sub = sim.subscribed("sub", false, &[("t", QoS::AtLeastOnce)]);
    let (publisher, _) = sim.connect("pub", true);
    sim.send(
        publisher,
        &publish("t", "x", QoS::AtLeastOnce, false, Some(1)),
    );
    let (packets, _) = sim.recv(sub);
    let first = publishes(&packets)[0].clone();
    sim.shard.handle_closed(sim.now, sub);
    let (again, _) = sim.connect("sub", false);
    let (packets, _) = sim.recv(again);
    let resent = publishes(&packets)[0].clone();
    assert!(resent.dup);
    assert_eq!(resent.packet_id, first.packet_id);
}

#[test]
fn clean_session_discards_the_old_session() {
    let mut sim = Sim::new(Limits::default());
    let (sub, _) = sim.connect("sub", false);
    sim.send(sub, &subscribe(1, &[("t", QoS::AtLeastOnce)]));
    sim.shard.handle_closed(sim.now, sub);
    let (again, ack) = sim.connect("sub", true);
    assert!(!ack.session_present);
    let (publisher, _) = sim.connect("pub", true);
    sim.send(
        publisher,
        &publish("t", "x", QoS::AtLeastOnce, false, Some(1)),
    );
    assert!(
        publishes(&sim.recv(again).0).is_empty(),
        "old subscription is gone"
    );
}

#[test]
fn unsubscribe_stops_delivery() {
    let mut sim = Sim::new(Limits::default());
    let (sub, _) = sim.connect("sub", true);
    sim.send(sub, &subscribe(1, &[("t", QoS::AtMostOnce)]));
    sim.send(
        sub,
        &Packet::Unsubscribe(Unsubscribe {
            packet_id: pid(2),
            properties: Properties::default(),
            filters: vec![ByteStr::from("t")],
        }),
    );
    let (packets, _) = sim.recv(sub);
    assert!(matches!(packets.last(), Some(Packet::UnsubAck(u)) if u.packet_id == pid(2)));
    let (publisher, _) = sim.connect("pub", true);
    sim.send(publisher, &publish("t", "x", QoS::AtMostOnce, false, None));
    assert!(publishes(&sim.recv(sub).0).is_empty());
}

#[test]
fn invalid_filter_gets_a_failure_code() {
    let mut sim = Sim::new(Limits::default());
    let (sub, _) = sim.connect("sub", true);
    sim.send(
        sub,
        &subscribe(1, &[("a/#/b", QoS::AtMostOnce), ("ok", QoS::AtLeastOnce)]),
    );
    let (packets, _) = sim.recv(sub);
    match &packets[..] {
        [Packet::SubAck(s)] => {
            assert!(s.codes[0].is_error());
            assert_eq!(s.codes[1], ReasonCode(1));
        }
        other => panic!("expected SUBACK, got {other:?}"),
    }
}

#[test]
fn wildcard_in_published_topic_closes() {
    let mut sim = Sim::new(Limits::default());
    let (id, _) = sim.connect("p", true);
    sim.send(id, &publish("a/+", "x", QoS::AtMostOnce, false, None));
    assert!(sim.recv(id).1);
}

#[test]
fn malformed_remaining_length_closes_and_is_counted() {
    let mut sim = Sim::new(Limits::default());
    let (id, _) = sim.connect("m", true);
    sim.send_raw(id, &[0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01]);
    assert!(sim.recv(id).1);
    assert_eq!(sim.shard.stats().malformed_packets, 1);
}

#[test]
fn oversize_packet_is_refused_from_its_header() {
    let limits = Limits {
        packet_size_max: 1024,
        ..Limits::default()
    };
    let mut sim = Sim::new(limits);
    let (id, _) = sim.connect("big", true);
    // PUBLISH claiming 1 MiB of body; only the header is sent.
    sim.send_raw(id, &[0x30, 0x80, 0x80, 0x40]);
    assert!(sim.recv(id).1);
}

#[test]
fn unsupported_protocol_level_gets_connack_1() {
    let mut sim = Sim::new(Limits::default());
    let id = sim.open();
    // CONNECT, protocol "MQTT" level 9.
    sim.send_raw(
        id,
        &[0x10, 0x0C, 0, 4, b'M', b'Q', b'T', b'T', 9, 2, 0, 0, 0, 0],
    );
    let (packets, closing) = sim.recv(id);
    assert!(matches!(&packets[..], [Packet::ConnAck(a)] if a.code.to_v3_connack() == 0x01));
    assert!(closing);
}

#[test]
fn sys_tree_is_published_on_tick() {
    let mut sim = Sim::with_sys_interval(10);
    let (sub, _) = sim.connect("sys", true);
    sim.send(
        sub,
        &subscribe(1, &[("$SYS/broker/clients/connected", QoS::AtMostOnce)]),
    );
    let (packets, _) = sim.recv(sub);
    assert_eq!(
        publishes(&packets).len(),
        1,
        "retained $SYS value on subscribe"
    );
    sim.advance(Duration::from_secs(10));
    let (packets, _) = sim.recv(sub);
    assert_eq!(&publishes(&packets)[0].payload[..], b"1");
}

#[test]
fn hash_subscription_does_not_see_sys() {
    let mut sim = Sim::with_sys_interval(10);
    let (sub, _) = sim.connect("all", true);
    sim.send(sub, &subscribe(1, &[("#", QoS::AtMostOnce)]));
    let (packets, _) = sim.recv(sub);
    assert!(publishes(&packets).is_empty(), "[MQTT-4.7.2-1]");
}

#[test]
fn connections_max_refuses_the_next_connection() {
    let limits = Limits {
        connections_max: 1,
        ..Limits::default()
    };
    let mut sim = Sim::new(limits);
    sim.open();
    let peer: SocketAddr = "127.0.0.1:1".parse().expect("literal address");
    assert!(sim.shard.accept(sim.now, peer).is_none());
    assert_eq!(sim.shard.stats().connections_refused, 1);
}

#[test]
fn connect_timeout_closes_silent_connections() {
    let mut sim = Sim::new(Limits::default());
    let id = sim.open();
    sim.advance(super::CONNECT_TIMEOUT + Duration::from_secs(1));
    assert!(sim.recv(id).1);
}

/// Per-connection memory is a product requirement (see `driver.rs`): keep the per-slot types
/// small enough that 10,000 idle clients stay near 1 KiB each.
#[test]
fn per_connection_state_stays_small() {
    let conn = std::mem::size_of::<super::Conn>();
    let session = std::mem::size_of::<super::SessionEntry>();
    assert!(conn <= 192, "Conn is {conn} bytes");
    assert!(session <= 200, "SessionEntry is {session} bytes");
}

/// Publishes `n` QoS 1 messages on `t` from `publisher`, and returns the subscriber's PUBLISHes.
fn flood(sim: &mut Sim, publisher: ConnectionId, sub: ConnectionId, n: u16) -> Vec<Publish> {
    for id in 1..=n {
        sim.send(
            publisher,
            &publish("t", "x", QoS::AtLeastOnce, false, Some(id)),
        );
    }
    sim.recv(publisher);
    publishes(&sim.recv(sub).0).into_iter().cloned().collect()
}

#[test]
fn a_congested_subscriber_throttles_its_publisher_until_it_drains() {
    let limits = Limits {
        inflight_max: 4,
        queued_messages_max: 40,
        ..Limits::default()
    };
    let mut sim = Sim::new(limits);
    let sub = sim.subscribed("sub", true, &[("t", QoS::AtLeastOnce)]);
    let (publisher, _) = sim.connect("pub", true);
    let sent = flood(&mut sim, publisher, sub, 14);
    assert_eq!(
        sent.len(),
        4,
        "window of 4; 10 queued = a quarter of 40: congested"
    );
    assert!(sim.shard.is_throttled(publisher), "publisher paused");
    assert!(
        !sim.shard.is_throttled(sub),
        "the subscriber itself keeps being read"
    );
    // The subscriber catches up: the queue drains and the publisher runs again.
    let mut pending: Vec<Publish> = sent;
    while let Some(p) = pending.pop() {
        sim.send(sub, &Packet::PubAck(Ack::new(p.packet_id.expect("QoS 1"))));
        pending.extend(publishes(&sim.recv(sub).0).into_iter().cloned());
    }
    assert!(!sim.shard.is_throttled(publisher));
    assert!(
        sim.shard.take_released(),
        "the driver is told to wake the reader"
    );
    assert_eq!(sim.shard.stats().publish_dropped, 0);
}

#[test]
fn a_stalled_subscriber_stops_throttling_its_publisher() {
    let limits = Limits {
        inflight_max: 4,
        queued_messages_max: 40,
        ..Limits::default()
    };
    let mut sim = Sim::new(limits);
    let sub = sim.subscribed("sub", true, &[("t", QoS::AtLeastOnce)]);
    let (publisher, _) = sim.connect("pub", true);
    flood(&mut sim, publisher, sub, 14);
    assert!(sim.shard.is_throttled(publisher));
    sim.advance(crate::session::STALL_AFTER + Duration::from_secs(1));
    assert!(
        !sim.shard.is_throttled(publisher),
        "no ack for STALL_AFTER: stalled, not congested"
    );
}
