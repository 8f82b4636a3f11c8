//! The log's bytes and what recovery makes of damaged ones.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use super::record::{next_frame, put_record, read_record, Frame};
use super::wal::parse_segment_name;
use super::{recover, write_sync, Clock, Record, Wal};
use crate::codec::{ByteStr, PacketId, Properties, QoS, SubscriptionOptions};
use crate::session::{
    Envelope, Message, OfflineImage, OutboundImage, OutboundState, SessionImage, Subscription, Tag,
};
use crate::topic::{SubscriptionFilter, TopicName};

struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("ringmq-log-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn message(topic: &str, payload: &str, expires_at: Option<Instant>) -> Arc<Message> {
    let mut properties = Properties::default();
    properties.content_type = Some(ByteStr::from("text/plain"));
    Arc::new(Message {
        topic: TopicName::new(ByteStr::from(topic)).expect("valid topic"),
        payload: Bytes::copy_from_slice(payload.as_bytes()),
        qos: QoS::ExactlyOnce,
        retain: false,
        properties,
        expires_at,
    })
}

fn envelope(message: &Arc<Message>, group: Option<&str>) -> Envelope {
    Envelope {
        message: message.clone(),
        qos: QoS::AtLeastOnce,
        retain: true,
        tag: Some(Box::new(Tag {
            sub_ids: vec![3, 9],
            group: group.map(ByteStr::from),
        })),
    }
}

fn image(client_id: &str, now: Instant, held: &[Arc<Message>]) -> SessionImage {
    let raw = ByteStr::from("$share/g/a/+");
    SessionImage {
        client_id: ByteStr::from(client_id),
        username: Some(ByteStr::from("alice")),
        expiry_s: 3600,
        next_packet_id: PacketId::new(42).expect("non-zero"),
        subscriptions: vec![(
            raw.clone(),
            Subscription {
                filter: SubscriptionFilter::parse(raw).expect("valid filter"),
                options: SubscriptionOptions {
                    qos: QoS::ExactlyOnce,
                    no_local: true,
                    ..Default::default()
                },
                id: 7,
                read_check: true,
            },
        )],
        inflight: held
            .iter()
            .take(1)
            .map(|m| OutboundImage {
                packet_id: PacketId::new(5).expect("non-zero"),
                state: OutboundState::Released,
                envelope: envelope(m, Some("g")),
            })
            .collect(),
        queue: held.iter().skip(1).map(|m| envelope(m, None)).collect(),
        inbound_qos2: vec![PacketId::new(9).expect("non-zero")],
        offline: Some(OfflineImage {
            expires_at: Some(now + Duration::from_secs(60)),
            will: None,
        }),
    }
}

/// Every field of a session image and a message survives the bytes, times to the
/// millisecond.
#[test]
fn records_round_trip() {
    let now = Instant::now();
    let clock = Clock::new(now);
    let m1 = message("a/b", "one", Some(now + Duration::from_secs(30)));
    let m2 = message("a/c", "two", None);
    let original = image("c1", now, &[m1.clone(), m2.clone()]);
    let mut out = BytesMut::new();
    let mut id_of = |m: &Arc<Message>| if Arc::ptr_eq(m, &m1) { 1 } else { 2 };
    let record = Record::Session {
        stamp: 77,
        image: Box::new(original.clone()),
    };
    put_record(&mut out, &record, &clock, &mut id_of);
    let data = out.freeze();
    let Frame::Record(body, size) = next_frame(&data) else {
        panic!("a whole frame");
    };
    assert_eq!(size, data.len());
    let find = |id: u64| Some(if id == 1 { m1.clone() } else { m2.clone() });
    let Record::Session { stamp, image } = read_record(body, &clock, &find).expect("decodes")
    else {
        panic!("a session record");
    };
    assert_eq!(stamp, 77);
    // Times come back through wall-clock milliseconds.
    let back = clock.to_instant(clock.to_unix_ms(now + Duration::from_secs(60)));
    let mut expected = original;
    expected.offline.as_mut().expect("offline").expires_at = Some(back);
    assert_eq!(*image, expected);
}

/// A flipped bit anywhere in a frame fails its CRC.
#[test]
fn a_flipped_bit_is_caught() {
    let clock = Clock::new(Instant::now());
    let mut out = BytesMut::new();
    let record = Record::Retain {
        stamp: 1,
        message: message("t", "payload", None),
    };
    put_record(&mut out, &record, &clock, &mut |_| 0);
    for byte in 4..out.len() {
        let mut damaged = out.clone();
        damaged[byte] ^= 0x10;
        assert_eq!(next_frame(&damaged.freeze()), Frame::Damaged, "byte {byte}");
    }
}

/// Writes `count` retained messages through a log of small segments; returns the segment
/// paths, oldest first.
fn write_log(dir: &Path, count: usize) -> Vec<PathBuf> {
    let mut wal = Wal::new(dir, 0, Clock::new(Instant::now()), 1).with_sizes(4096, u64::MAX);
    for i in 0..count {
        let stamp = wal.next_stamp();
        wal.append(&Record::Retain {
            stamp,
            message: message(&format!("t/{i}"), &"x".repeat(200), None),
        });
    }
    wal.commit();
    while let Some(write) = wal.take_write() {
        write_sync(&write).expect("writable");
        wal.synced(write.end);
    }
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("exists")
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .and_then(parse_segment_name)
                .is_some()
        })
        .collect();
    paths.sort();
    paths
}

fn topics(recovered: &super::Recovered) -> Vec<usize> {
    let mut topics: Vec<usize> = recovered
        .retained
        .iter()
        .map(|m| m.topic.as_str()[2..].parse().expect("t/N"))
        .collect();
    topics.sort();
    topics
}

/// A torn last record is dropped with what follows it; everything before stays.
#[test]
fn a_torn_tail_is_truncated() {
    let dir = TempDir::new("torn");
    let paths = write_log(&dir.0, 50);
    assert!(paths.len() > 2, "{paths:?}");
    let last = paths.last().expect("segments");
    let written = super::recover::written_bytes(last);
    // Cut the last record in half, as a crash mid-write would (the rest stays zero).
    let mut data = std::fs::read(last).expect("readable");
    for byte in &mut data[written as usize - 100..] {
        *byte = 0;
    }
    data[written as usize - 100] = 0xAB;
    std::fs::write(last, &data).expect("writable");
    let recovered = recover(&dir.0, &Clock::new(Instant::now())).expect("starts");
    assert_eq!(recovered.report.truncated.len(), 1);
    assert!(recovered.report.corrupt.is_empty());
    assert_eq!(topics(&recovered), (0..49).collect::<Vec<_>>());
}

/// A damaged segment in the middle is moved aside as `.corrupt`; the records before the
/// damage and every later segment still count.
#[test]
fn a_corrupt_middle_segment_is_moved_aside() {
    let dir = TempDir::new("corrupt");
    let paths = write_log(&dir.0, 50);
    let middle = &paths[1];
    let mut data = std::fs::read(middle).expect("readable");
    data[700] ^= 0xFF;
    std::fs::write(middle, &data).expect("writable");
    let recovered = recover(&dir.0, &Clock::new(Instant::now())).expect("starts");
    assert_eq!(recovered.report.corrupt, vec![middle.clone()]);
    let aside = PathBuf::from(format!("{}.corrupt", middle.display()));
    assert!(aside.exists(), "moved aside");
    assert!(!middle.exists());
    let found = topics(&recovered);
    // About one segment (~15 records of 270 bytes in 4 KiB) minus what preceded the damage.
    assert!(found.len() < 50 && found.len() >= 30, "{found:?}");
    assert!(found.contains(&49), "later segments are read: {found:?}");
}

/// A zero-filled region or a missing segment loses only what was in it.
#[test]
fn zeroed_and_missing_segments_lose_only_their_records() {
    let dir = TempDir::new("zeroed");
    let paths = write_log(&dir.0, 60);
    assert!(paths.len() >= 4, "{paths:?}");
    // Zeros mid-segment read as "nothing written here": the rest of that segment is lost.
    let mut data = std::fs::read(&paths[1]).expect("readable");
    for byte in &mut data[600..] {
        *byte = 0;
    }
    std::fs::write(&paths[1], &data).expect("writable");
    std::fs::remove_file(&paths[2]).expect("removable");
    let recovered = recover(&dir.0, &Clock::new(Instant::now())).expect("starts");
    let found = topics(&recovered);
    assert!(found.contains(&0) && found.contains(&59), "{found:?}");
    assert!(found.len() < 60);
}

/// A directory that cannot be created is an error naming it.
#[test]
fn an_unwritable_directory_is_a_clear_error() {
    let dir = TempDir::new("unwritable");
    let file = dir.0.join("a-file");
    std::fs::write(&file, b"x").expect("writable");
    let error = recover(&file.join("log"), &Clock::new(Instant::now())).expect_err("a file");
    assert!(error.to_string().contains("a-file"), "{error}");
}

/// `sync`: a QoS 2 message a shard forwarded, logged with its publisher's packet id, reaches
/// the peer's matching sessions at recovery exactly when the peer had not logged it: the
/// peer's [`Record::Received`] of the same run says how far it had.
#[test]
fn forwards_the_peer_had_not_logged_are_delivered_at_recovery() {
    let dir = TempDir::new("forwards");
    let now = Instant::now();
    let clock = Clock::new(now);
    let run = 5;
    let write = |wal: &mut Wal| {
        wal.commit();
        while let Some(write) = wal.take_write() {
            write_sync(&write).expect("writable");
            wal.synced(write.end);
        }
    };
    let mut sender = Wal::new(&dir.0, 0, clock, run);
    for (seq, payload) in [(1, "logged"), (2, "not logged")] {
        let message = message("a/x", payload, None);
        let record = Record::Forward {
            run,
            to: 1,
            seq,
            message,
        };
        sender.append(&record);
    }
    // A session on the sender itself matches too, but the forward was not for it.
    let mut local = image("local", now, &[]);
    let raw = ByteStr::from("a/+");
    let unshared = Subscription {
        filter: SubscriptionFilter::parse(raw.clone()).expect("valid filter"),
        options: SubscriptionOptions {
            qos: QoS::AtLeastOnce,
            ..Default::default()
        },
        id: 0,
        read_check: false,
    };
    local.subscriptions = vec![(raw.clone(), unshared.clone())];
    let stamp = sender.next_stamp();
    let record = Record::Session {
        stamp,
        image: Box::new(local),
    };
    sender.append(&record);
    write(&mut sender);

    let mut peer = Wal::new(&dir.0, 1, clock, run);
    let mut plain = image("plain", now, &[]);
    plain.subscriptions = vec![(raw, unshared)];
    // `image` subscribes to `$share/g/a/+` only: a shared group's copy is not redelivered.
    for session in [plain, image("shared", now, &[])] {
        let stamp = peer.next_stamp();
        let record = Record::Session {
            stamp,
            image: Box::new(session),
        };
        peer.append(&record);
    }
    for (run, through) in [(run, 1), (run - 1, 9)] {
        peer.append(&Record::Received {
            run,
            from: 0,
            through,
        });
    }
    write(&mut peer);

    let recovered = recover(&dir.0, &clock).expect("readable");
    assert_eq!(recovered.report.redelivered, 1);
    let queue = |id: &str| {
        let session = recovered
            .sessions
            .iter()
            .find(|s| s.client_id.as_str() == id);
        let session = session.expect("recovered");
        let payloads = session
            .queue
            .iter()
            .map(|e| (e.message.payload.clone(), e.qos));
        payloads.collect::<Vec<_>>()
    };
    let lost = (Bytes::from_static(b"not logged"), QoS::AtLeastOnce);
    assert_eq!(queue("plain"), vec![lost]);
    assert!(queue("shared").is_empty());
    assert!(queue("local").is_empty());
}
