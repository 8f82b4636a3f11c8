//! Start-up: read every shard's log back, in parallel, into the live state it describes, and
//! write that state again as a fresh snapshot for the shards of this run.
//!
//! Recovery never refuses to start over what it reads:
//! - a damaged frame (bad CRC, impossible length) in a shard's last segment is a torn tail,
//!   written when the broker died: everything before it is kept, the rest dropped with a
//!   warning;
//! - a damaged frame in an earlier segment is corruption: the segment is renamed
//!   `<name>.corrupt` (kept for inspection, never read again) with an error naming it, and
//!   the records read before the damage, and every later segment, still count;
//! - a session whose message body was lost with a damaged segment keeps its other messages.
//!
//! In `sync` mode, a QoS 2 message a shard forwarded to a peer that died before logging it is
//! delivered here, into the sessions of that peer with matching subscriptions: the sender
//! logged the publisher's packet id with it ([`Record::Forward`]), so the publisher's resend
//! after the restart is a duplicate to the broker and would never route it again. Each peer
//! logs how far it has logged the sender's publishes ([`Record::Received`]) in the same commit
//! as the deliveries, so a message is delivered here exactly when no peer session got it.
//!
//! Only a directory that cannot be created or written is an error: the broker would
//! otherwise run without the durability it was asked for.

use std::collections::HashMap;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;

use super::record::{next_frame, read_record, Clock, Frame, Record};
use super::wal::{parse_segment_name, Wal};
use crate::codec::ByteStr;
use crate::session::{Envelope, Message, SessionImage};

/// What start-up recovery found, for the log and for the operator.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RecoveryReport {
    pub segments: usize,
    pub records: u64,
    pub bytes: u64,
    /// Segments whose tail was torn, with the offset where readable data ended.
    pub truncated: Vec<(PathBuf, u64)>,
    /// Segments moved aside as `.corrupt`.
    pub corrupt: Vec<PathBuf>,
    /// Records that framed correctly but did not decode (counted, skipped).
    pub bad_records: u64,
    /// Queued or inflight messages whose body was lost.
    pub lost_messages: u64,
    /// Copies of forwarded QoS 2 messages delivered at recovery (see the module docs).
    pub redelivered: u64,
}

/// The state the logs describe, merged across shards (latest stamp wins).
#[derive(Debug, Default)]
pub struct Recovered {
    pub sessions: Vec<SessionImage>,
    pub retained: Vec<Arc<Message>>,
    pub report: RecoveryReport,
    /// Every segment read (renamed ones excepted): deleted once the new snapshot is synced.
    old_segments: Vec<PathBuf>,
    /// The first segment number this run may use.
    next_seq: u64,
}

/// One shard's log, read.
#[derive(Default)]
struct ShardLog {
    shard: u16,
    sessions: HashMap<ByteStr, (u64, Option<SessionImage>)>,
    retained: HashMap<ByteStr, (u64, Arc<Message>)>,
    /// [`Record::Forward`]s by (run, to, seq); compaction may have written one twice.
    forwards: HashMap<(u64, u16, u64), Arc<Message>>,
    /// [`Record::Received`]: the highest `through` by (run, from).
    received: HashMap<(u64, u16), u64>,
    report: RecoveryReport,
}

/// A session as merged: its latest image (`None`: ended), that image's stamp and the shard
/// whose log it came from.
type Merged = (u64, Option<SessionImage>, u16);

/// Creates `dir` if needed and proves it writable.
pub fn open_dir(dir: &Path) -> io::Result<()> {
    let context = |e: io::Error| io::Error::new(e.kind(), format!("{}: {e}", dir.display()));
    std::fs::create_dir_all(dir).map_err(context)?;
    let probe = dir.join(".ringmq-write-test");
    std::fs::File::create(&probe)
        .and_then(|mut f| f.write_all(b"x"))
        .map_err(context)?;
    std::fs::remove_file(&probe).map_err(context)
}

/// Reads every shard's log under `dir`.
pub fn recover(dir: &Path, clock: &Clock) -> io::Result<Recovered> {
    open_dir(dir)?;
    let mut by_shard: HashMap<u16, Vec<(u64, PathBuf)>> = HashMap::new();
    let mut next_seq = 1;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some((shard, seq)) = name.to_str().and_then(parse_segment_name) else {
            continue;
        };
        next_seq = next_seq.max(seq + 1);
        by_shard.entry(shard).or_default().push((seq, entry.path()));
    }
    let logs: Vec<ShardLog> = std::thread::scope(|scope| {
        let handles: Vec<_> = by_shard
            .iter_mut()
            .map(|(&shard, segments)| {
                segments.sort();
                let segments = &*segments;
                scope.spawn(move || read_shard(shard, segments, clock))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a log reader panicked"))
            .collect()
    });
    let mut forwards = Vec::new();
    let mut received = HashMap::new();
    let mut sessions: HashMap<ByteStr, Merged> = HashMap::new();
    let mut retained: HashMap<ByteStr, (u64, Arc<Message>)> = HashMap::new();
    let mut report = RecoveryReport::default();
    for log in logs {
        for (client_id, (stamp, image)) in log.sessions {
            if sessions
                .get(&client_id)
                .is_none_or(|(held, _, _)| *held < stamp)
            {
                sessions.insert(client_id, (stamp, image, log.shard));
            }
        }
        for ((run, to, seq), message) in log.forwards {
            forwards.push((run, log.shard, to, seq, message));
        }
        for ((run, from), through) in log.received {
            received.insert((run, from, log.shard), through);
        }
        for (topic, (stamp, message)) in log.retained {
            if retained.get(&topic).is_none_or(|(held, _)| *held < stamp) {
                retained.insert(topic, (stamp, message));
            }
        }
        report.segments += log.report.segments;
        report.records += log.report.records;
        report.bytes += log.report.bytes;
        report.truncated.extend(log.report.truncated);
        report.corrupt.extend(log.report.corrupt);
        report.bad_records += log.report.bad_records;
        report.lost_messages += log.report.lost_messages;
    }
    forwards.sort_by_key(|(run, from, to, seq, _)| (*run, *from, *to, *seq));
    for (run, from, to, seq, message) in forwards {
        if received.get(&(run, from, to)).is_some_and(|&n| n >= seq) {
            continue;
        }
        for (_, image, _) in sessions.values_mut().filter(|(_, _, shard)| *shard == to) {
            if let Some(image) = image.as_mut() {
                report.redelivered += u64::from(deliver(image, &message));
            }
        }
    }
    if report.redelivered > 0 {
        tracing::info!(
            copies = report.redelivered,
            "delivered QoS 2 messages a shard had not logged when the broker stopped"
        );
    }
    let old_segments = by_shard
        .into_values()
        .flatten()
        .map(|(_, path)| path)
        .filter(|path| !report.corrupt.contains(path))
        .collect();
    Ok(Recovered {
        sessions: sessions.into_values().filter_map(|(_, s, _)| s).collect(),
        retained: retained
            .into_values()
            .map(|(_, m)| m)
            .filter(|m| !m.payload.is_empty())
            .collect(),
        report,
        old_segments,
        next_seq,
    })
}

/// Queues `message` in `image` if one of its subscriptions (not shared: a shared group's
/// copy goes to one member, picked when it is routed) matches; returns whether it did.
fn deliver(image: &mut SessionImage, message: &Arc<Message>) -> bool {
    let mut matching = image
        .subscriptions
        .iter()
        .filter(|(_, s)| !s.filter.is_shared() && s.filter.filter().matches(&message.topic))
        .map(|(_, s)| s.params());
    let Some(first) = matching.next() else {
        return false;
    };
    let envelope = Envelope::merged(message, first, matching);
    image.queue.push(envelope);
    true
}

/// Reads one shard's segments, oldest first.
fn read_shard(shard: u16, segments: &[(u64, PathBuf)], clock: &Clock) -> ShardLog {
    let mut log = ShardLog {
        shard,
        ..ShardLog::default()
    };
    let mut bodies: HashMap<u64, Arc<Message>> = HashMap::new();
    let lost = std::cell::Cell::new(0u64);
    for (index, (_, path)) in segments.iter().enumerate() {
        let last = index + 1 == segments.len();
        let data = match std::fs::read(path) {
            Ok(data) => Bytes::from(data),
            Err(error) => {
                tracing::error!(segment = %path.display(), %error, "cannot read a log segment; skipping it");
                continue;
            }
        };
        log.report.segments += 1;
        let mut at = 0usize;
        loop {
            match next_frame(&data.slice(at..)) {
                Frame::End => break,
                Frame::Record(body, size) => {
                    at += size;
                    log.report.records += 1;
                    log.report.bytes += size as u64;
                    let find = |id: u64| {
                        let found = bodies.get(&id).cloned();
                        if found.is_none() {
                            lost.set(lost.get() + 1);
                        }
                        found
                    };
                    match read_record(body, clock, &find) {
                        Ok(record) => apply(&mut log, &mut bodies, record),
                        Err(error) => {
                            log.report.bad_records += 1;
                            tracing::warn!(segment = %path.display(), offset = at - size, %error,
                                "skipping a log record that does not decode");
                        }
                    }
                }
                Frame::Damaged if last => {
                    tracing::warn!(segment = %path.display(), offset = at,
                        "log ends in a torn or damaged record (the broker stopped mid-write); \
                         keeping what precedes it");
                    log.report.truncated.push((path.clone(), at as u64));
                    break;
                }
                Frame::Damaged => {
                    let aside = PathBuf::from(format!("{}.corrupt", path.display()));
                    tracing::error!(segment = %path.display(), offset = at, moved_to = %aside.display(),
                        "corrupt log segment: keeping the records before the damage and moving \
                         the segment aside; later segments are still read");
                    if let Err(error) = std::fs::rename(path, &aside) {
                        tracing::error!(%error, "cannot move the corrupt segment aside");
                    }
                    log.report.corrupt.push(path.clone());
                    break;
                }
            }
        }
    }
    log.report.lost_messages = lost.get();
    log
}

fn apply(log: &mut ShardLog, bodies: &mut HashMap<u64, Arc<Message>>, record: Record) {
    match record {
        Record::Message { id, message } => {
            bodies.insert(id, message);
        }
        Record::Session { stamp, image } => {
            let key = image.client_id.clone();
            if log.sessions.get(&key).is_none_or(|(held, _)| *held < stamp) {
                log.sessions.insert(key, (stamp, Some(*image)));
            }
        }
        Record::SessionEnd { stamp, client_id } => {
            if log
                .sessions
                .get(&client_id)
                .is_none_or(|(held, _)| *held < stamp)
            {
                log.sessions.insert(client_id, (stamp, None));
            }
        }
        Record::Retain { stamp, message } => {
            let key = message.topic.as_byte_str().clone();
            if log.retained.get(&key).is_none_or(|(held, _)| *held < stamp) {
                log.retained.insert(key, (stamp, message));
            }
        }
        Record::Forward {
            run,
            to,
            seq,
            message,
        } => {
            log.forwards.insert((run, to, seq), message);
        }
        Record::Received { run, from, through } => {
            let held = log.received.entry((run, from)).or_default();
            *held = (*held).max(through);
        }
    }
}

/// What each shard of this run starts with.
#[derive(Debug)]
pub struct ShardStart {
    pub wal: Wal,
    pub sessions: Vec<SessionImage>,
}

impl Recovered {
    /// Splits the state among `shards` shards (sessions to their client id's home shard,
    /// retained messages logged by their topic's home), writes each shard's snapshot as its
    /// first new segment, syncs it, and only then deletes the segments read. A crash in
    /// between leaves old and new segments side by side, which the next start merges by
    /// stamp.
    pub fn start(
        self,
        dir: &Path,
        shards: usize,
        clock: Clock,
        home_of: impl Fn(&str) -> usize,
    ) -> io::Result<(Vec<ShardStart>, Vec<Arc<Message>>)> {
        let mut per_shard: Vec<Vec<SessionImage>> = (0..shards).map(|_| Vec::new()).collect();
        for image in self.sessions {
            let home = home_of(image.client_id.as_str()) % shards;
            per_shard[home].push(image);
        }
        let mut starts = Vec::with_capacity(shards);
        for (index, sessions) in per_shard.into_iter().enumerate() {
            let mut wal = Wal::new(dir, index as u16, clock, self.next_seq);
            for image in &sessions {
                let stamp = wal.next_stamp();
                wal.append(&Record::Session {
                    stamp,
                    image: Box::new(image.clone()),
                });
            }
            for message in &self.retained {
                if home_of(message.topic.as_str()) % shards == index {
                    let stamp = wal.next_stamp();
                    wal.append(&Record::Retain {
                        stamp,
                        message: message.clone(),
                    });
                }
            }
            wal.commit();
            while let Some(write) = wal.take_write() {
                super::write_sync(&write)?;
                wal.synced(write.end);
            }
            wal.snapshot_done();
            starts.push(ShardStart { wal, sessions });
        }
        super::sync_dir(dir)?;
        for path in &self.old_segments {
            if let Err(error) = std::fs::remove_file(path) {
                tracing::warn!(segment = %path.display(), %error, "cannot delete an old log segment");
            }
        }
        super::sync_dir(dir)?;
        Ok((starts, self.retained))
    }
}

/// Bytes of whole frames at the start of the segment at `path` (0 if it cannot be read):
/// what was written, not what was preallocated.
pub fn written_bytes(path: &Path) -> u64 {
    let Ok(data) = std::fs::read(path) else {
        return 0;
    };
    let data = Bytes::from(data);
    let mut at = 0;
    while let Frame::Record(_, size) = next_frame(&data.slice(at..)) {
        at += size;
    }
    at as u64
}
