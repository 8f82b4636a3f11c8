//! Start-up recovery: how long the broker takes from exec to accepting connections over a log
//! holding 1,000,000 retained messages and 100,000 persistent sessions (issue #11).
//!
//! The log is written with the broker's own writer (`ringmq::persist::Wal`, one shard, the
//! same records the shards write): every session has two subscriptions (one wildcard) and one
//! queued QoS 1 message; retained messages are 64 B on `bench/r/{i / 1000}/{i % 1000}`. Then
//! the release broker binary starts on that directory, once per shard count, and the time
//! until a client resuming one of the sessions gets CONNACK with Session Present is measured
//! from the outside. The broker's own
//! "recovered the logs" line gives the part spent reading and re-writing the logs (the rest
//! is building the shards' tries and retained stores) and the counts it found, which must be
//! the counts written. Each start re-writes the log as a fresh snapshot, so the next start
//! reads what the previous one wrote.
//!
//! Usage: `cargo bench --bench recovery` (release build; about a minute and ~1 GiB of disk).
//! `RETAINED=… SESSIONS=… SHARDS=1,2 PORT=18990` change the defaults; the log lives in a temp
//! directory removed at the end.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use ringmq::codec::{ByteStr, PacketId, Properties, QoS, SubscriptionOptions};
use ringmq::persist::{write_sync, Clock, Record, Wal};
use ringmq::session::{Envelope, Message, OfflineImage, SessionImage, Subscription};
use ringmq::topic::{SubscriptionFilter, TopicName};

fn knob(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn message(topic: String, retain: bool) -> Arc<Message> {
    Arc::new(Message {
        topic: TopicName::new(ByteStr::from(topic.as_str())).expect("a valid topic"),
        payload: Bytes::from(vec![b'x'; 64]),
        qos: QoS::AtLeastOnce,
        retain,
        properties: Properties::default(),
        expires_at: None,
    })
}

fn subscription(text: &str) -> (ByteStr, Subscription) {
    let raw = ByteStr::from(text);
    let subscription = Subscription {
        filter: SubscriptionFilter::parse(raw.clone()).expect("a valid filter"),
        options: SubscriptionOptions {
            qos: QoS::AtLeastOnce,
            ..Default::default()
        },
        id: 0,
        read_check: false,
    };
    (raw, subscription)
}

fn session(i: usize, now: Instant) -> SessionImage {
    let queued = message(format!("bench/s/{i}/inbox"), false);
    SessionImage {
        client_id: ByteStr::from(format!("bench-session-{i}").as_str()),
        username: None,
        expiry_s: 86_400,
        next_packet_id: PacketId::new(1).expect("non-zero"),
        subscriptions: vec![
            subscription(&format!("bench/s/{i}/inbox")),
            subscription(&format!("bench/g/{}/+", i % 100)),
        ],
        inflight: Vec::new(),
        queue: vec![Envelope {
            message: queued,
            qos: QoS::AtLeastOnce,
            retain: false,
            tag: None,
        }],
        inbound_qos2: Vec::new(),
        offline: Some(OfflineImage {
            expires_at: Some(now + Duration::from_secs(86_400)),
            will: None,
        }),
    }
}

/// Writes the log: sessions, then retained messages, flushed every so often.
fn write_log(dir: &Path, sessions: usize, retained: usize) -> u64 {
    let now = Instant::now();
    let mut wal = Wal::new(dir, 0, Clock::new(now), 1);
    let flush = |wal: &mut Wal| {
        wal.commit();
        while let Some(write) = wal.take_write() {
            write_sync(&write).expect("the temp directory is writable");
            wal.synced(write.end);
        }
    };
    for i in 0..sessions {
        let stamp = wal.next_stamp();
        let image = Box::new(session(i, now));
        wal.append(&Record::Session { stamp, image });
        if i % 10_000 == 9_999 {
            flush(&mut wal);
        }
    }
    for i in 0..retained {
        let stamp = wal.next_stamp();
        let message = message(format!("bench/r/{}/{}", i / 1000, i % 1000), true);
        wal.append(&Record::Retain { stamp, message });
        if i % 10_000 == 9_999 {
            flush(&mut wal);
        }
    }
    flush(&mut wal);
    wal.appended()
}

/// A `key=value` field of a log line.
fn field(line: &str, key: &str) -> Option<u64> {
    let at = line.find(&format!("{key}="))? + key.len() + 1;
    let digits: String = line[at..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    digits.parse().ok()
}

/// Whether a 3.1.1 CONNECT (Clean Session 0) as `bench-session-0` gets CONNACK with Session
/// Present: the broker serves, with the restored sessions in place.
fn resumes_a_session(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let id = b"bench-session-0";
    let mut connect = vec![0x10, (12 + id.len()) as u8, 0, 4];
    connect.extend_from_slice(b"MQTT");
    connect.extend_from_slice(&[4, 0x00, 0, 60, 0, id.len() as u8]);
    connect.extend_from_slice(id);
    let mut connack = [0u8; 4];
    let _ = stream.set_read_timeout(Some(Duration::from_secs(60)));
    stream.write_all(&connect).is_ok()
        && stream.read_exact(&mut connack).is_ok()
        && connack == [0x20, 0x02, 0x01, 0x00]
}

struct Start {
    listening: Duration,
    recovered_ms: u64,
    sessions: u64,
    retained: u64,
}

fn start_broker(dir: &Path, shards: usize, port: u16) -> Start {
    let began = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_ringmq"))
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--shards", &shards.to_string()])
        .args(["--persistence-dir", dir.to_str().expect("utf-8")])
        .args(["--durability", "batch"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the release broker");
    let listening = loop {
        if resumes_a_session(port) {
            break began.elapsed();
        }
        if let Some(status) = child.try_wait().expect("wait") {
            panic!("the broker exited at start-up: {status}");
        }
        assert!(
            began.elapsed() < Duration::from_secs(600),
            "not listening after 10 min"
        );
        std::thread::sleep(Duration::from_millis(5));
    };
    // SAFETY: signals our own child, which has not been waited for yet.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
    }
    let stdout = child.stdout.take().expect("piped");
    let line = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .find(|line| line.contains("recovered the logs"))
        .expect("the broker logs its recovery");
    child.wait().expect("the broker exits");
    Start {
        listening,
        recovered_ms: field(&line, "elapsed_ms").expect("elapsed_ms"),
        sessions: field(&line, "sessions").expect("sessions"),
        retained: field(&line, "retained").expect("retained"),
    }
}

fn main() {
    let retained = knob("RETAINED", 1_000_000);
    let sessions = knob("SESSIONS", 100_000);
    let port = knob("PORT", 18990) as u16;
    let shard_counts: Vec<usize> = std::env::var("SHARDS")
        .unwrap_or_else(|_| "1,2".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let dir = std::env::temp_dir().join(format!("ringmq-bench-recovery-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let began = Instant::now();
    let bytes = write_log(&dir, sessions, retained);
    println!(
        "log: {sessions} sessions, {retained} retained messages, {:.1} MiB of records, written in {:.1} s",
        bytes as f64 / (1 << 20) as f64,
        began.elapsed().as_secs_f64()
    );
    println!("| shards | exec to first CONNACK (session present) | of which reading + re-writing the log |");
    println!("|---|---|---|");
    for shards in shard_counts {
        let start = start_broker(&dir, shards, port);
        assert_eq!(
            (start.sessions, start.retained),
            (sessions as u64, retained as u64),
            "the broker found other counts than were written"
        );
        println!(
            "| {shards} | {:.2} s | {:.2} s |",
            start.listening.as_secs_f64(),
            start.recovered_ms as f64 / 1000.0
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
