//! Per-connection resources stay bounded (hardening): a client that sends but never reads, a
//! close nobody reads, keep-alive while the broker itself does not read, offline timers of a
//! client that reconnects often, and each shard's share of the broker-wide limits.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::codec::{Properties, QoS};
use crate::config::Limits;

use super::tests::{connect_packet, publish, Sim};
use super::Shard;

/// A connection that sends but never reads gets no more of its input decoded once its output
/// is over `outbound_buffer_max_bytes`; the rest is decoded as the writer takes the output.
#[test]
fn a_client_that_does_not_read_is_not_read_either() {
    let limits = Limits {
        outbound_buffer_max_bytes: 1024,
        ..Limits::default()
    };
    let mut sim = Sim::new(limits);
    let (id, _) = sim.connect("pinger", true);
    let received = sim.shard.stats().messages_received;
    // 2,000 pipelined PINGREQs (2 bytes each) in one read.
    let pings: Vec<u8> = std::iter::repeat_n([0xC0u8, 0x00], 2000)
        .flatten()
        .collect();
    sim.send_raw(id, &pings);
    let decoded = sim.shard.stats().messages_received - received;
    assert_eq!(decoded, 512, "stops at 1,024 bytes of PINGRESP");
    assert!(sim.shard.is_throttled(id), "the driver posts no more reads");
    // The writer takes the output: decoding resumes, until the next 1,024 bytes.
    let (bytes, _) = sim.shard.take_output(id);
    assert_eq!(bytes.map(|b| b.len()), Some(1024));
    assert!(sim.shard.resume_after_output(sim.now));
    assert_eq!(sim.shard.stats().messages_received - received, 1024);
    while let (Some(_), _) = sim.shard.take_output(id) {
        sim.shard.resume_after_output(sim.now);
    }
    assert_eq!(sim.shard.stats().messages_received - received, 2000);
    assert!(!sim.shard.is_throttled(id));
}

/// A connection closed by the broker whose peer never reads the rest of its output is shut
/// down hard after `close_timeout_s`, instead of holding its slot forever.
#[test]
fn a_close_nobody_reads_is_forced_after_close_timeout() {
    let limits = Limits {
        close_timeout_s: 5,
        ..Limits::default()
    };
    let mut sim = Sim::new(limits);
    let (id, _) = sim.connect("rude", true);
    // A second CONNECT is a protocol violation: the broker closes; the writer never finishes.
    sim.send(id, &connect_packet("rude", true, 0, None));
    let mut forced = Vec::new();
    sim.advance(Duration::from_secs(5));
    sim.shard.drain_force_closed(&mut forced);
    assert!(forced.is_empty(), "not before close_timeout_s");
    sim.advance(Duration::from_secs(1));
    sim.shard.drain_force_closed(&mut forced);
    assert_eq!(forced, vec![id]);
    assert_eq!(sim.shard.stats().close_timeouts, 1);
    // Once the socket is gone the slot is free and nothing is forced again.
    sim.shard.handle_closed(sim.now, id);
    sim.advance(Duration::from_secs(10));
    sim.shard.drain_force_closed(&mut forced);
    assert_eq!(forced, vec![id]);
}

/// Keep-alive counts the client's silence, not ours: while flow control (or a backed-up mesh)
/// keeps the broker from reading a client, its keep-alive does not run out.
#[test]
fn keep_alive_does_not_expire_while_the_broker_is_not_reading() {
    let mut sim = Sim::new(Limits::default());
    let id = sim.open();
    sim.send(id, &connect_packet("busy", true, 10, None));
    sim.recv(id);
    sim.shard.conns[id.index as usize].throttles = 1;
    sim.advance(Duration::from_secs(20));
    assert!(!sim.recv(id).1, "throttled: not expired");
    sim.shard.conns[id.index as usize].throttles = 0;
    sim.shard.set_reads_paused(true);
    sim.advance(Duration::from_secs(20));
    assert!(!sim.recv(id).1, "mesh pause: not expired");
    sim.shard.set_reads_paused(false);
    // Reading again: a full 1.5 periods from the last tick at which we were not reading.
    sim.advance(Duration::from_secs(14));
    assert!(!sim.recv(id).1);
    sim.advance(Duration::from_secs(2));
    assert!(sim.recv(id).1, "silent for 16 s of reading: expired");
}

/// A client with a session expiry that reconnects often leaves at most one timer entry.
#[test]
fn reconnecting_does_not_pile_up_timers() {
    let mut sim = Sim::new(Limits::default());
    let expiry = Properties::from(crate::codec::PropertyValues {
        session_expiry_interval_s: Some(60),
        ..Default::default()
    });
    for _ in 0..100 {
        let (id, _) = sim.connect_v5("flappy", false, expiry.clone(), None);
        sim.shard.handle_closed(sim.now, id);
        sim.advance(Duration::from_millis(10));
    }
    assert_eq!(
        sim.shard.timers.len(),
        1,
        "only the current offline deadline"
    );
    let (id, ack) = sim.connect_v5("flappy", false, expiry, None);
    assert!(ack.session_present);
    assert!(sim.shard.timers.is_empty(), "online: no offline deadline");
    sim.send(id, &publish("t", "x", QoS::AtMostOnce, false, None));
}

/// `connections_max` is broker-wide: each of N shards takes an equal share.
#[test]
fn each_shard_holds_its_share_of_connections_max() {
    let now = Instant::now();
    let limits = Limits {
        connections_max: 3,
        ..Limits::default()
    };
    let mut endpoints = crate::mesh::build(3, 16);
    let mut shard = Shard::new(now, endpoints.remove(0), limits, 0);
    let peer: SocketAddr = "127.0.0.1:1".parse().expect("literal address");
    assert!(shard.accept(now, peer).is_some());
    assert!(shard.accept(now, peer).is_none(), "a third of 3 is 1");
    assert_eq!(shard.stats().connections_refused, 1);
}

/// A client that comes back with a smaller Maximum Packet Size: an unacknowledged message
/// that no longer fits is dropped (counted) and frees its window slot.
#[test]
fn a_resend_too_large_for_the_client_frees_its_slot() {
    let limits = Limits {
        inflight_max: 1,
        ..Limits::default()
    };
    let mut sim = Sim::new(limits);
    let props = |max: Option<u32>| {
        Properties::from(crate::codec::PropertyValues {
            session_expiry_interval_s: Some(600),
            maximum_packet_size: max,
            ..Default::default()
        })
    };
    let (sub, _) = sim.connect_v5("small", false, props(None), None);
    sim.send(sub, &super::tests::subscribe(1, &[("t", QoS::AtLeastOnce)]));
    sim.recv(sub);
    let (publisher, _) = sim.connect("pub", true);
    let big = "x".repeat(500);
    sim.send(
        publisher,
        &publish("t", &big, QoS::AtLeastOnce, false, Some(1)),
    );
    assert_eq!(
        super::tests::publishes(&sim.recv(sub).0).len(),
        1,
        "sent, never acked"
    );
    sim.shard.handle_closed(sim.now, sub);
    let (sub, _) = sim.connect_v5("small", false, props(Some(200)), None);
    let dropped = sim.shard.stats().publish_dropped;
    assert_eq!(dropped, 1, "the resend does not fit 200 bytes");
    sim.send(
        publisher,
        &publish("t", "small", QoS::AtLeastOnce, false, Some(2)),
    );
    let (packets, _) = sim.recv(sub);
    let got = super::tests::publishes(&packets);
    assert_eq!(got.len(), 1, "the window slot is free again");
    assert_eq!(&got[0].payload[..], b"small");
}

/// Found by the `shard` fuzz target (tests/fuzz/corpus/shard/crash-congested-session-gone-
/// after-disconnect): a clean session whose client DISCONNECTs while it is congested is gone
/// by the time the shard asks whether it has drained. It used to index the freed slot and
/// panic; it must instead release the publishers it was holding back.
#[test]
fn a_congested_clean_session_that_disconnects_releases_its_publishers() {
    let limits = Limits {
        inflight_max: 1,
        queued_messages_max: 8,
        ..Limits::default()
    };
    let mut sim = Sim::new(limits);
    let sub = sim.subscribed("slow", true, &[("t", QoS::AtLeastOnce)]);
    let (publisher, _) = sim.connect("fast", true);
    for n in 1..=4 {
        sim.send(
            publisher,
            &publish("t", "m", QoS::AtLeastOnce, false, Some(n)),
        );
    }
    assert!(
        sim.shard.is_throttled(publisher),
        "the slow subscriber's queue passed a quarter of queued_messages_max"
    );
    let disconnect = crate::codec::Packet::Disconnect(crate::codec::Disconnect::new(
        crate::codec::ReasonCode::SUCCESS,
    ));
    sim.send(sub, &disconnect);
    assert!(
        !sim.shard.is_throttled(publisher),
        "a session that is gone holds nobody back"
    );
    sim.send(
        publisher,
        &publish("t", "m", QoS::AtLeastOnce, false, Some(5)),
    );
    assert!(!sim.shard.is_throttled(publisher));
}

/// PUBLISH packets sent are counted by QoS, whether sent at once or from the queue of a
/// session that comes back (`/metrics` `ringmq_messages_sent_total{qos}`).
#[test]
fn publishes_sent_are_counted_by_qos() {
    let mut sim = Sim::new(Limits::default());
    let sub = sim.subscribed("sub", false, &[("t/#", QoS::ExactlyOnce)]);
    sim.shard.handle_closed(sim.now, sub);
    let (publisher, _) = sim.connect("pub", true);
    // Queued while the subscriber is away: two at QoS 2, one at QoS 1; QoS 0 is not queued.
    for (n, qos) in [
        (1, QoS::ExactlyOnce),
        (2, QoS::ExactlyOnce),
        (3, QoS::AtLeastOnce),
    ] {
        sim.send(publisher, &publish("t/q", "x", qos, false, Some(n)));
    }
    let (again, _) = sim.connect("sub", false);
    // Sent at once: QoS 0 and QoS 1.
    sim.send(
        publisher,
        &publish("t/now", "x", QoS::AtMostOnce, false, None),
    );
    sim.send(
        publisher,
        &publish("t/now", "x", QoS::AtLeastOnce, false, Some(4)),
    );
    sim.recv(again);
    let by_qos = sim
        .shard
        .stats()
        .publish_sent_by
        .iter()
        .fold([0; 3], |mut sum, t| {
            for (s, n) in sum.iter_mut().zip(t) {
                *s += n;
            }
            sum
        });
    assert_eq!(by_qos, [1, 2, 2]);
    assert_eq!(sim.shard.stats().publish_sent, 5);
}

/// A session's queue is bounded in bytes too (`queued_bytes_max`, topic + payload): the
/// message that would take it past the limit is dropped and counted like a full queue, and a
/// smaller one that fits is still queued.
#[test]
fn a_session_queue_is_bounded_in_bytes() {
    let limits = Limits {
        queued_bytes_max: 100,
        ..Limits::default()
    };
    let mut sim = Sim::new(limits);
    let sub = sim.subscribed("sub", false, &[("t", QoS::AtLeastOnce)]);
    sim.shard.handle_closed(sim.now, sub);
    let (publisher, _) = sim.connect("pub", true);
    // 1 + 59 = 60 bytes queued; 1 + 59 more would be 120: dropped; 1 + 39 fits (100).
    let payloads = ["a".repeat(59), "b".repeat(59), "c".repeat(39)];
    for (n, payload) in payloads.iter().enumerate() {
        let id = Some(n as u16 + 1);
        sim.send(
            publisher,
            &publish("t", payload, QoS::AtLeastOnce, false, id),
        );
    }
    assert_eq!(sim.shard.stats().drops.queue_full, 1);
    let (again, _) = sim.connect("sub", false);
    let (packets, _) = sim.recv(again);
    let got: Vec<u8> = super::tests::publishes(&packets)
        .iter()
        .map(|p| p.payload[0])
        .collect();
    assert_eq!(got, b"ac");
}
