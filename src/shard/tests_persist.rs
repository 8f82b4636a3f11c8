//! Durability, sans-IO: a shard logs into a temporary directory, the test plays the driver
//! (commit, write, sync), and a "restart" is a new shard recovered from the same directory.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::BytesMut;

use crate::codec::{
    self, Ack, Decoded, Packet, PacketId, Properties, PropertyValues, ProtocolVersion, QoS,
    ReasonCode,
};
use crate::config::{Durability, Limits, Persistence};
use crate::persist::{home_of, recover, Clock};

use super::tests::{connect_packet, pid, publish, subscribe, will, Sim};
use super::{ConnectionId, Shard};

/// A directory of its own per test, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("ringmq-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn persistence(dir: &Path, durability: Durability) -> Persistence {
    Persistence {
        dir: Some(dir.to_owned()),
        durability,
        ..Persistence::default()
    }
}

/// A shard that recovered `dir` (as the runtime does at start-up) and logs into it.
fn start(dir: &Path, durability: Durability, sizes: Option<(u64, u64)>) -> Sim {
    start_with(dir, &persistence(dir, durability), sizes)
}

fn start_with(dir: &Path, config: &Persistence, sizes: Option<(u64, u64)>) -> Sim {
    start_behind(dir, config, sizes, Duration::ZERO)
}

/// [`start_with`], with the shard's clock `behind` the wall clock: what it logs seems to have
/// happened that long before the next start.
fn start_behind(
    dir: &Path,
    config: &Persistence,
    sizes: Option<(u64, u64)>,
    behind: Duration,
) -> Sim {
    let mut sim = Sim::new(Limits::default());
    let clock = Clock::new(sim.now + behind);
    let recovered = recover(dir, &clock).expect("the directory is writable");
    let (mut starts, retained) = recovered
        .start(dir, 1, clock, |text| home_of(text, 1))
        .expect("the snapshot is written");
    let mut log = starts.remove(0);
    if let Some((segment, compact)) = sizes {
        log.wal = log.wal.with_sizes(segment, compact);
    }
    let plain = Shard::standalone(sim.now, Limits::default(), 0);
    let shard = std::mem::replace(&mut sim.shard, plain);
    sim.shard = shard.with_persistence(sim.now, log, &retained, config);
    sim
}

/// What the driver's log writer does once: commit, write, sync, delete compacted segments.
fn sync_log(sim: &mut Sim) {
    sim.shard.wal_commit(sim.now);
    while let Some(write) = sim.shard.wal_take_write() {
        crate::persist::write_sync(&write).expect("the test directory is writable");
        sim.shard.wal_synced(write.end);
    }
    for path in sim.shard.wal_take_obsolete() {
        std::fs::remove_file(path).expect("an obsolete segment exists");
    }
}

fn segments(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("the directory exists")
        .flatten()
        .filter_map(|e| e.file_name().to_str().map(str::to_owned))
        .filter(|n| n.ends_with(".wal"))
        .collect();
    names.sort();
    names
}

fn publishes(packets: &[Packet]) -> Vec<(Vec<u8>, QoS, bool, Option<PacketId>)> {
    packets
        .iter()
        .filter_map(|p| match p {
            Packet::Publish(p) => Some((p.payload.to_vec(), p.qos, p.dup, p.packet_id)),
            _ => None,
        })
        .collect()
}

/// A persistent session keeps its subscription and the QoS 1/2 messages queued while it was
/// away; retained messages survive; all after a restart, in order.
#[test]
fn sessions_queued_messages_and_retained_survive_a_restart() {
    let dir = TempDir::new("persist-basic");
    let mut sim = start(&dir.0, Durability::Batch, None);
    let sub = sim.subscribed("sub", false, &[("a/#", QoS::ExactlyOnce)]);
    sim.shard.handle_closed(sim.now, sub);
    let (publisher, _) = sim.connect("pub", true);
    sim.send(
        publisher,
        &publish("a/1", "one", QoS::AtLeastOnce, false, Some(1)),
    );
    sim.send(
        publisher,
        &publish("a/2", "two", QoS::ExactlyOnce, false, Some(2)),
    );
    sim.send(
        publisher,
        &publish("r", "kept", QoS::AtMostOnce, true, None),
    );
    sim.send(
        publisher,
        &publish("gone", "x", QoS::AtMostOnce, true, None),
    );
    sim.send(publisher, &publish("gone", "", QoS::AtMostOnce, true, None));
    sync_log(&mut sim);
    drop(sim);

    let mut sim = start(&dir.0, Durability::Batch, None);
    let (sub, connack) = sim.connect("sub", false);
    assert!(connack.session_present, "the session was restored");
    let (packets, _) = sim.recv(sub);
    let got = publishes(&packets);
    assert_eq!(
        got.iter().map(|p| (p.0.clone(), p.1)).collect::<Vec<_>>(),
        vec![
            (b"one".to_vec(), QoS::AtLeastOnce),
            (b"two".to_vec(), QoS::ExactlyOnce)
        ]
    );
    // The subscription came back too: a new publish reaches it without a SUBSCRIBE.
    let (publisher, _) = sim.connect("pub", true);
    sim.send(
        publisher,
        &publish("a/3", "three", QoS::AtMostOnce, false, None),
    );
    let (packets, _) = sim.recv(sub);
    assert_eq!(publishes(&packets)[0].0, b"three");
    let (reader, _) = sim.connect("reader", true);
    sim.send(reader, &subscribe(1, &[("#", QoS::AtMostOnce)]));
    let (packets, _) = sim.recv(reader);
    let retained: Vec<_> = publishes(&packets).into_iter().map(|p| p.0).collect();
    assert_eq!(retained, vec![b"kept".to_vec()], "set kept, deleted gone");
}

/// Unacknowledged QoS 2 deliveries come back with their packet ids (DUP set), and one the
/// client had PUBREC'd comes back as a PUBREL [MQTT-4.4.0-1]: a new id would let the
/// message reach the application twice.
#[test]
fn inflight_messages_keep_their_packet_ids_across_a_restart() {
    let dir = TempDir::new("persist-inflight");
    let mut sim = start(&dir.0, Durability::Batch, None);
    let sub = sim.subscribed("sub", false, &[("t", QoS::ExactlyOnce)]);
    let (publisher, _) = sim.connect("pub", true);
    sim.send(
        publisher,
        &publish("t", "m1", QoS::ExactlyOnce, false, Some(1)),
    );
    sim.send(
        publisher,
        &publish("t", "m2", QoS::ExactlyOnce, false, Some(2)),
    );
    let (packets, _) = sim.recv(sub);
    let sent = publishes(&packets);
    assert_eq!(sent.len(), 2);
    let first = sent[0].3.expect("QoS 2 has an id");
    let second = sent[1].3.expect("QoS 2 has an id");
    sim.send(sub, &Packet::PubRec(Ack::new(first)));
    sync_log(&mut sim);
    drop(sim);

    let mut sim = start(&dir.0, Durability::Batch, None);
    let (sub, connack) = sim.connect("sub", false);
    assert!(connack.session_present);
    let (packets, _) = sim.recv(sub);
    assert_eq!(packets.len(), 2, "{packets:?}");
    assert_eq!(packets[0], Packet::PubRel(Ack::new(first)));
    match &packets[1] {
        Packet::Publish(p) => {
            assert_eq!((p.packet_id, p.dup), (Some(second), true));
            assert_eq!(&p.payload[..], b"m2");
        }
        other => panic!("expected the PUBLISH again, got {other:?}"),
    }
}

/// An inbound QoS 2 id between PUBREC and PUBREL survives: the resent PUBLISH is not routed
/// again [MQTT-4.3.3-2], and the PUBREL finds its id (PUBCOMP 0x00, not 0x92).
#[test]
fn inbound_qos2_ids_survive_a_restart() {
    let dir = TempDir::new("persist-inbound");
    let mut sim = start(&dir.0, Durability::Batch, None);
    let watcher = sim.subscribed("watcher", false, &[("t", QoS::AtLeastOnce)]);
    let (publisher, _) = sim.connect("pub", false);
    sim.send(
        publisher,
        &publish("t", "once", QoS::ExactlyOnce, false, Some(7)),
    );
    let (packets, _) = sim.recv(publisher);
    assert!(matches!(packets[..], [Packet::PubRec(_)]));
    let (packets, _) = sim.recv(watcher);
    let first_id = publishes(&packets)[0].3.expect("QoS 1 has an id");
    sim.send(watcher, &Packet::PubAck(Ack::new(first_id)));
    sync_log(&mut sim);
    drop(sim);

    let mut sim = start(&dir.0, Durability::Batch, None);
    let (watcher, _) = sim.connect("watcher", false);
    sim.recv(watcher);
    let (publisher, connack) = sim.connect("pub", false);
    assert!(connack.session_present);
    let mut again = publish("t", "once", QoS::ExactlyOnce, false, Some(7));
    if let Packet::Publish(p) = &mut again {
        p.dup = true;
    }
    sim.send(publisher, &again);
    let (packets, _) = sim.recv(publisher);
    assert!(matches!(packets[..], [Packet::PubRec(_)]), "{packets:?}");
    sim.send(publisher, &Packet::PubRel(Ack::new(pid(7))));
    let (packets, _) = sim.recv(publisher);
    match &packets[..] {
        [Packet::PubComp(comp)] => assert_eq!(comp.code, ReasonCode::SUCCESS),
        other => panic!("expected PUBCOMP, got {other:?}"),
    }
    let (packets, _) = sim.recv(watcher);
    assert!(publishes(&packets).is_empty(), "routed twice: {packets:?}");
}

/// Clean sessions are never logged, and a persistent session that ends (here: a clean start
/// replaces it) is gone after a restart.
#[test]
fn ended_and_clean_sessions_are_not_restored() {
    let dir = TempDir::new("persist-ended");
    let mut sim = start(&dir.0, Durability::Batch, None);
    let a = sim.subscribed("clean", true, &[("t", QoS::AtLeastOnce)]);
    let b = sim.subscribed("ended", false, &[("t", QoS::AtLeastOnce)]);
    sync_log(&mut sim);
    sim.shard.handle_closed(sim.now, a);
    sim.shard.handle_closed(sim.now, b);
    let (b, _) = sim.connect("ended", true);
    sim.shard.handle_closed(sim.now, b);
    sync_log(&mut sim);
    drop(sim);

    let mut sim = start(&dir.0, Durability::Batch, None);
    assert!(!sim.connect("clean", false).1.session_present);
    assert!(!sim.connect("ended", false).1.session_present);
}

/// `sync`: the PUBACK waits until the message it acknowledges is on disk; `batch` sends it
/// at once.
#[test]
fn sync_mode_holds_the_puback_until_the_log_is_synced() {
    for (durability, held) in [(Durability::Sync, true), (Durability::Batch, false)] {
        let dir = TempDir::new(&format!("persist-sync-{held}"));
        let mut sim = start(&dir.0, durability, None);
        let sub = sim.subscribed("sub", false, &[("t", QoS::AtLeastOnce)]);
        sync_log(&mut sim);
        sim.shard.handle_closed(sim.now, sub);
        let (publisher, _) = sim.connect("pub", true);
        sim.send(
            publisher,
            &publish("t", "m", QoS::AtLeastOnce, false, Some(1)),
        );
        let (packets, _) = sim.recv(publisher);
        assert_eq!(packets.is_empty(), held, "{durability:?}: {packets:?}");
        assert_eq!(sim.shard.wal_wants_commit(), held);
        sync_log(&mut sim);
        let (packets, _) = sim.recv(publisher);
        if held {
            assert!(matches!(packets[..], [Packet::PubAck(_)]), "{packets:?}");
        }
        // And what it acknowledged is in the log.
        drop(sim);
        let mut sim = start(&dir.0, durability, None);
        let (sub, _) = sim.connect("sub", false);
        let (packets, _) = sim.recv(sub);
        assert_eq!(publishes(&packets).len(), 1, "{durability:?}");
    }
}

/// Compaction rewrites live state into new segments and deletes the old ones, so the log
/// stays proportional to live state however much traffic went through; nothing live is lost.
#[test]
fn compaction_keeps_the_log_proportional_to_live_state() {
    let dir = TempDir::new("persist-compact");
    let sizes = Some((16 << 10, 64 << 10));
    let mut sim = start(&dir.0, Durability::Batch, sizes);
    let sub = sim.subscribed("sub", false, &[("t", QoS::AtLeastOnce)]);
    let (publisher, _) = sim.connect("pub", true);
    sim.send(
        publisher,
        &publish("keep", "retained", QoS::AtMostOnce, true, None),
    );
    let payload = "x".repeat(512);
    for round in 0..2000u16 {
        sim.send(
            publisher,
            &publish(
                "t",
                &payload,
                QoS::AtLeastOnce,
                false,
                Some(round % 100 + 1),
            ),
        );
        let (packets, _) = sim.recv(sub);
        for (_, _, _, id) in publishes(&packets) {
            sim.send(sub, &Packet::PubAck(Ack::new(id.expect("QoS 1"))));
        }
        sim.recv(publisher);
        sync_log(&mut sim);
    }
    // ~2,000 images of ~600 bytes went through (1.2 MB); far less is left.
    let bytes: u64 = segments(&dir.0)
        .iter()
        .map(|n| crate::persist::recover::written_bytes(&dir.0.join(n)))
        .sum();
    assert!(
        bytes < 300 << 10,
        "{bytes} bytes left in {:?}",
        segments(&dir.0)
    );
    // A message left unacknowledged at the end is still there after a restart.
    sim.shard.handle_closed(sim.now, sub);
    sim.send(
        publisher,
        &publish("t", "last", QoS::AtLeastOnce, false, Some(999)),
    );
    sync_log(&mut sim);
    drop(sim);
    let mut sim = start(&dir.0, Durability::Batch, None);
    let (sub, connack) = sim.connect("sub", false);
    assert!(connack.session_present);
    let (packets, _) = sim.recv(sub);
    assert_eq!(
        publishes(&packets).last().map(|p| p.0.clone()),
        Some(b"last".to_vec())
    );
    let (reader, _) = sim.connect("reader", true);
    sim.send(reader, &subscribe(1, &[("keep", QoS::AtMostOnce)]));
    assert_eq!(
        publishes(&sim.recv(reader).0).len(),
        1,
        "retained survived compaction"
    );
}

/// At `persisted_bytes_max` new persistent state is refused with 0x97 Quota exceeded; a
/// clean session still connects, and nothing on disk is touched.
#[test]
fn a_full_budget_refuses_new_persistent_sessions() {
    let dir = TempDir::new("persist-full");
    let config = Persistence {
        bytes_max: 1,
        ..persistence(&dir.0, Durability::Batch)
    };
    let mut sim = start_with(&dir.0, &config, None);
    let (_, connack) = sim.connect("first", false);
    assert_eq!(
        connack.code,
        ReasonCode::SUCCESS,
        "an empty log is under any budget"
    );
    sync_log(&mut sim);
    let (_, connack) = sim.connect("second", false);
    // 0x97 Quota exceeded, which 3.1.1 can only say as 0x03 Server unavailable.
    assert_eq!(connack.code, ReasonCode::SERVER_UNAVAILABLE);
    let (_, connack) = sim.connect("clean", true);
    assert_eq!(connack.code, ReasonCode::SUCCESS);
    assert_eq!(sim.shard.stats().persist_full, 1);
    // The one already logged resumes.
    let (_, connack) = sim.connect("first", false);
    assert!(connack.session_present);
}

/// `sync` holds only what promises something on disk: a clean session's SUBACK, and a QoS 1
/// PUBACK for a message that reached only clean sessions, go at once (so a full disk does
/// not stall them); a persistent session's SUBACK waits for the log.
#[test]
fn sync_mode_holds_only_what_the_log_keeps() {
    let dir = TempDir::new("persist-sync-clean");
    let mut sim = start(&dir.0, Durability::Sync, None);
    let (sub, _) = sim.connect("sub", true);
    sim.send(sub, &subscribe(1, &[("t", QoS::AtLeastOnce)]));
    let (packets, _) = sim.recv(sub);
    assert!(matches!(packets[..], [Packet::SubAck(_)]), "{packets:?}");
    let (publisher, _) = sim.connect("pub", true);
    sim.send(
        publisher,
        &publish("t", "m", QoS::AtLeastOnce, false, Some(1)),
    );
    let (packets, _) = sim.recv(publisher);
    assert!(matches!(packets[..], [Packet::PubAck(_)]), "{packets:?}");
    assert!(!sim.shard.wal_wants_commit());

    let (keeper, _) = sim.connect("keeper", false);
    sim.send(keeper, &subscribe(1, &[("k", QoS::AtLeastOnce)]));
    let (packets, _) = sim.recv(keeper);
    assert!(packets.is_empty(), "{packets:?}");
    assert!(sim.shard.wal_wants_commit());
    sync_log(&mut sim);
    let (packets, _) = sim.recv(keeper);
    assert!(matches!(packets[..], [Packet::SubAck(_)]), "{packets:?}");
}

/// `n` shards recovered from `dir` and joined by a mesh, as the runtime starts them.
fn start_shards(dir: &Path, n: usize, now: Instant) -> Vec<Shard> {
    let clock = Clock::new(now);
    let recovered = recover(dir, &clock).expect("the directory is writable");
    let (starts, retained) = recovered
        .start(dir, n, clock, |text| home_of(text, n))
        .expect("the snapshot is written");
    let config = persistence(dir, Durability::Batch);
    let limits = Limits::default();
    crate::mesh::build(n, limits.mesh_ring_capacity as usize)
        .into_iter()
        .zip(starts)
        .map(|(endpoint, start)| {
            Shard::new(now, endpoint, limits.clone(), 0)
                .with_persistence(now, start, &retained, &config)
        })
        .collect()
}

/// Moves mesh messages until none is left to take, except that what the shards in `held`
/// send stays in their outboxes (a shard whose thread has not run yet).
fn pump(shards: &mut [Shard], now: Instant, held: &[usize]) {
    for _ in 0..1_000 {
        let mut taken = 0;
        for (index, shard) in shards.iter_mut().enumerate() {
            if !held.contains(&index) {
                shard.flush_mesh();
            }
        }
        for shard in shards.iter_mut() {
            taken += shard.handle_mesh(now);
        }
        if taken == 0 {
            return;
        }
    }
    panic!("mesh did not settle");
}

/// Feeds `packets` to a new 3.1.1 connection on `shard`.
fn open_with(shard: &mut Shard, now: Instant, packets: &[Packet]) -> ConnectionId {
    let peer = "127.0.0.1:40000".parse().expect("literal address");
    let conn = shard.accept(now, peer).expect("below connections_max");
    let mut bytes = BytesMut::new();
    for packet in packets {
        codec::encode(packet, ProtocolVersion::V3_1_1, &mut bytes).expect("test packets encode");
    }
    shard.handle_read(now, conn, &bytes);
    conn
}

/// Every packet written to `conn` so far.
/// Resumes the persistent session "watcher" on shard `home`; returns what it is sent.
fn resume_watcher(
    shards: &mut [Shard],
    home: usize,
    now: Instant,
) -> Vec<(Vec<u8>, QoS, bool, Option<PacketId>)> {
    let connect = connect_packet("watcher", false, 0, None);
    let watcher = open_with(&mut shards[home], now, &[connect]);
    pump(shards, now, &[]);
    publishes(&written(&mut shards[home], watcher))
}

fn written(shard: &mut Shard, conn: ConnectionId) -> Vec<Packet> {
    shard.drain_dirty(&mut Vec::new());
    let mut bytes = BytesMut::new();
    while let (Some(chunk), _) = shard.take_output(conn) {
        bytes.extend_from_slice(&chunk);
    }
    let mut packets = Vec::new();
    while let Decoded::Packet(packet) =
        codec::decode(&mut bytes, ProtocolVersion::V3_1_1, u32::MAX >> 4)
            .expect("broker output decodes")
    {
        packets.push(packet);
    }
    packets
}

/// After a restart a shard reads no client until every peer has announced the subscriptions
/// it restored: a QoS 1 message published on one shard before another shard's restored
/// interest reached it was acknowledged and routed to nobody (the black-box
/// `inbound_qos2_survives_a_restart_v311_3_shards` lost its last messages about one run in
/// 15 when the subscriber's shard thread started late).
#[test]
fn a_publish_right_after_a_restart_reaches_subscribers_restored_on_other_shards() {
    let dir = TempDir::new("persist-restored-interest");
    let mut sim = start(&dir.0, Durability::Batch, None);
    let sub = sim.subscribed("watcher", false, &[("a/#", QoS::AtLeastOnce)]);
    sim.shard.handle_closed(sim.now, sub);
    sync_log(&mut sim);
    drop(sim);

    let (n, now) = (3, Instant::now());
    let mut shards = start_shards(&dir.0, n, now);
    let home = home_of("watcher", n);
    let at = (home + 1) % n;
    // A clean publisher whose client id is at home on its own shard: it connects without a
    // word from the watcher's shard.
    let publisher_id = (0..)
        .map(|i| format!("pub-{i}"))
        .find(|id| home_of(id, n) == at)
        .expect("some id hashes to each shard");
    let connect = connect_packet(&publisher_id, true, 0, None);
    let message = publish("a/1", "one", QoS::AtLeastOnce, false, Some(1));
    let publisher = open_with(&mut shards[at], now, &[connect, message]);
    // The watcher's shard has restored its session, but what it sent is still in its outbox.
    pump(&mut shards, now, &[home]);
    let early = written(&mut shards[at], publisher);
    assert!(
        early.is_empty(),
        "read before every peer restored: {early:?}"
    );
    pump(&mut shards, now, &[]);
    let acks = written(&mut shards[at], publisher);
    assert!(
        matches!(acks[..], [Packet::ConnAck(_), Packet::PubAck(_)]),
        "{acks:?}"
    );

    let got = resume_watcher(&mut shards, home, now);
    assert_eq!(
        got,
        [(b"one".to_vec(), QoS::AtLeastOnce, false, Some(pid(1)))]
    );
}

/// A will whose delay ran out while the broker was down goes out at start-up, but only once
/// every peer has restored: it reaches a subscriber restored on another shard, which it
/// missed when it was routed before that shard's restored interest was known.
#[test]
fn a_will_due_while_down_reaches_subscribers_restored_on_other_shards() {
    let n = 3;
    let dir = TempDir::new("persist-restored-will");
    let config = persistence(&dir.0, Durability::Batch);
    // Logged a minute before the restart: the 5 s will delay is over by then.
    let mut sim = start_behind(&dir.0, &config, None, Duration::from_secs(60));
    let sub = sim.subscribed("watcher", false, &[("wills/#", QoS::AtLeastOnce)]);
    sim.shard.handle_closed(sim.now, sub);
    let mortal = (0..)
        .map(|i| format!("mortal-{i}"))
        .find(|id| home_of(id, n) != home_of("watcher", n))
        .expect("some id hashes to another shard");
    let mut last_will = will("wills/mortal", "gone");
    last_will.properties.will_delay_interval_s = Some(5);
    let expiry = Properties::from(PropertyValues {
        session_expiry_interval_s: Some(60),
        ..Default::default()
    });
    let (gone, _) = sim.connect_v5(&mortal, true, expiry, Some(last_will));
    sim.shard.handle_closed(sim.now, gone);
    sync_log(&mut sim);
    drop(sim);

    let now = Instant::now();
    let mut shards = start_shards(&dir.0, n, now);
    pump(&mut shards, now, &[]);
    let home = home_of("watcher", n);
    let got = resume_watcher(&mut shards, home, now);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].0, b"gone");
}
