//! One shard's log writer, sans-IO: records are encoded into a buffer as the shard changes
//! state, and the driver takes them as [`WalWrite`]s (one segment's bytes at one offset),
//! writes and syncs them, and reports back with [`Wal::synced`].
//!
//! Positions are logical: `appended` counts every byte ever encoded, `synced` those on disk.
//! A `sync`-mode acknowledgement waits until `synced` passes the position its records ended
//! at ([`Wal::appended`] when it was written), which is what group commit means here: one
//! write and one fsync cover everything encoded since the last.
//!
//! Compaction: once the segments hold more than [`COMPACT_RATIO`] times the bytes of the
//! last snapshot (and at least [`COMPACT_MIN_BYTES`]), the shard starts a new segment and
//! writes every live session and the retained messages it owns into it again, a bounded
//! number per tick ([`COMPACT_STEP`]); the older segments are deleted once that snapshot is
//! synced. Disk use stays proportional to live state.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ahash::AHashMap;
use bytes::BytesMut;

use super::record::{put_record, Clock, Record};
use crate::session::Message;

/// Bytes a segment file is preallocated to and filled up to. A record larger than this gets
/// a segment of its own size.
pub const SEGMENT_BYTES: u64 = 64 << 20;

/// Compaction starts once the segments hold this many times the last snapshot's bytes.
pub const COMPACT_RATIO: u64 = 4;

/// ... and at least this many bytes: a small log is cheap to keep.
pub const COMPACT_MIN_BYTES: u64 = 2 * SEGMENT_BYTES;

/// Sessions (and retained messages) a compaction writes per step; a step runs per tick of
/// the writer, so that no step stalls the shard.
pub const COMPACT_STEP: usize = 1024;

/// The file name of segment `seq` of `shard`.
pub fn segment_name(shard: u16, seq: u64) -> String {
    format!("shard{shard}-{seq:010}.wal")
}

/// Parses a segment file name into (shard, seq).
pub fn parse_segment_name(name: &str) -> Option<(u16, u64)> {
    let rest = name.strip_prefix("shard")?.strip_suffix(".wal")?;
    let (shard, seq) = rest.split_once('-')?;
    Some((shard.parse().ok()?, seq.parse().ok()?))
}

/// Bytes for the driver to write: `bytes` at `offset` of segment `seq` (a new file when
/// `create`), then sync; afterwards everything up to logical position `end` is durable.
#[derive(Debug)]
pub struct WalWrite {
    pub path: PathBuf,
    pub create: bool,
    /// Bytes to preallocate a created segment to.
    pub preallocate: u64,
    pub offset: u64,
    pub bytes: Vec<u8>,
    pub end: u64,
}

/// A segment on disk (or being written).
#[derive(Debug, Clone, Copy)]
struct Segment {
    seq: u64,
    bytes: u64,
}

/// Compaction in progress: the first segment of the new snapshot; older ones go once it is
/// complete and synced.
#[derive(Debug)]
pub struct Compaction {
    pub first_new: u64,
    /// Logical position where the snapshot was complete; `None` while it is being written.
    pub done_at: Option<u64>,
}

/// The writer state of one shard's log.
#[derive(Debug)]
pub struct Wal {
    dir: PathBuf,
    shard: u16,
    clock: Clock,
    /// Encoded records of the current segment not yet taken by the driver.
    buf: BytesMut,
    /// Writes of earlier segments not yet taken (a roll with records still buffered).
    sealed: VecDeque<WalWrite>,
    /// Segments of this shard, oldest first; the last is the one being written.
    segments: Vec<Segment>,
    /// Bytes of the current segment taken or buffered, hence where `buf` goes.
    offset: u64,
    /// The current segment's file has been handed to the driver to create.
    created: bool,
    appended: u64,
    synced: u64,
    /// Last stamp issued: stamps are unique and increasing per shard.
    stamp: u64,
    /// Message bodies logged in the segments since the last compaction started, by the
    /// address of the `Arc` that holds them; the entry keeps that `Arc` alive, so an address
    /// is never reused while it is here. Swept when the log holds the only reference.
    messages: AHashMap<usize, (u64, Arc<Message>)>,
    next_message_id: u64,
    sweep_at: usize,
    compaction: Option<Compaction>,
    /// Bytes written by the last snapshot (start-up or compaction).
    snapshot_bytes: u64,
    /// Segments compacted away, for the driver to delete.
    obsolete: Vec<PathBuf>,
    /// [`SEGMENT_BYTES`] and [`COMPACT_MIN_BYTES`], smaller in tests.
    segment_bytes: u64,
    compact_min_bytes: u64,
    /// Writes fail (a full disk): new records are dropped rather than buffered without
    /// bound; once writes work again a compaction writes the live state whole.
    failing: bool,
    /// Where the last commit ended: writes go out only up to it, so that no record of an
    /// open epoch (a [`Record::Forward`] whose publisher's image comes at the commit) reaches
    /// the disk without the rest of its epoch.
    committed: u64,
    /// This run's number: the first segment it wrote, the same on every shard and above
    /// every earlier run's (see [`Record::Forward`]).
    run: u64,
    /// Records dropped while failing.
    dropped: u64,
}

impl Wal {
    /// A new log whose first segment is `seq` (not yet created).
    pub fn new(dir: &Path, shard: u16, clock: Clock, seq: u64) -> Wal {
        Wal {
            dir: dir.to_owned(),
            shard,
            clock,
            buf: BytesMut::new(),
            sealed: VecDeque::new(),
            segments: vec![Segment { seq, bytes: 0 }],
            offset: 0,
            created: false,
            appended: 0,
            synced: 0,
            stamp: 0,
            messages: AHashMap::new(),
            next_message_id: 1,
            sweep_at: 1024,
            compaction: None,
            snapshot_bytes: 1,
            obsolete: Vec::new(),
            segment_bytes: SEGMENT_BYTES,
            compact_min_bytes: COMPACT_MIN_BYTES,
            failing: false,
            committed: 0,
            run: seq,
            dropped: 0,
        }
    }

    /// Smaller segments and compaction threshold, so that tests roll and compact quickly.
    pub fn with_sizes(mut self, segment_bytes: u64, compact_min_bytes: u64) -> Wal {
        self.segment_bytes = segment_bytes;
        self.compact_min_bytes = compact_min_bytes;
        self
    }

    /// A stamp for a record: wall-clock nanoseconds, and strictly after the previous one.
    pub fn next_stamp(&mut self) -> u64 {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        self.stamp = now.max(self.stamp + 1);
        self.stamp
    }

    /// This run's number, for [`Record::Forward`] and [`Record::Received`].
    pub fn run(&self) -> u64 {
        self.run
    }

    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// Logical position of the end of everything encoded so far.
    pub fn appended(&self) -> u64 {
        self.appended
    }

    /// Logical position up to which everything is on disk.
    pub fn synced_to(&self) -> u64 {
        self.synced
    }

    /// Bytes of all this shard's segments.
    pub fn disk_bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.bytes).sum()
    }

    /// Appends `record`, logging first any message body a session image refers to that this
    /// log does not hold yet.
    pub fn append(&mut self, record: &Record) {
        if self.failing {
            self.dropped += 1;
            return;
        }
        let mut bodies: Vec<Record> = Vec::new();
        if let Record::Session { image, .. } = record {
            let held = image
                .inflight
                .iter()
                .map(|o| &o.envelope.message)
                .chain(image.queue.iter().map(|e| &e.message));
            for message in held {
                let key = Arc::as_ptr(message) as usize;
                if !self.messages.contains_key(&key) {
                    let id = self.next_message_id;
                    self.next_message_id += 1;
                    self.messages.insert(key, (id, message.clone()));
                    bodies.push(Record::Message {
                        id,
                        message: message.clone(),
                    });
                }
            }
        }
        for body in &bodies {
            self.encode(body);
        }
        self.encode(record);
    }

    fn encode(&mut self, record: &Record) {
        let before = self.buf.len();
        let messages = &self.messages;
        let clock = self.clock;
        let mut id_of = |m: &Arc<Message>| {
            messages
                .get(&(Arc::as_ptr(m) as usize))
                .map_or(0, |(id, _)| *id)
        };
        put_record(&mut self.buf, record, &clock, &mut id_of);
        let len = (self.buf.len() - before) as u64;
        if self.offset + (before as u64) + len > self.segment_bytes
            && self.offset + before as u64 > 0
        {
            // Does not fit this segment: seal what came before and start the next one.
            let record_bytes = self.buf.split_off(before);
            self.seal();
            self.roll();
            self.buf = record_bytes;
        }
        self.appended += len;
    }

    /// Moves the buffered bytes into a write of the current segment.
    fn seal(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        let bytes = std::mem::take(&mut self.buf).to_vec();
        let len = bytes.len() as u64;
        let current = self.segments.last_mut().expect("a current segment");
        let write = WalWrite {
            path: self.dir.join(segment_name(self.shard, current.seq)),
            create: !self.created,
            preallocate: self.segment_bytes,
            offset: self.offset,
            end: 0, // set in `take_write`
            bytes,
        };
        self.created = true;
        self.offset += len;
        current.bytes = current.bytes.max(self.offset);
        self.sealed.push_back(write);
    }

    /// Starts the next segment.
    fn roll(&mut self) {
        let seq = self.segments.last().map_or(0, |s| s.seq) + 1;
        self.segments.push(Segment { seq, bytes: 0 });
        self.offset = 0;
        self.created = false;
    }

    /// Closes an epoch: what was appended so far may be written.
    pub fn commit(&mut self) {
        self.seal();
        self.committed = self.appended;
    }

    /// The next write for the driver, if any, up to the last [`Wal::commit`]. All but the
    /// last write of a commit cover whole earlier segments; `end` is where the log is durable
    /// once this one is synced.
    pub fn take_write(&mut self) -> Option<WalWrite> {
        let after: u64 = self
            .sealed
            .iter()
            .skip(1)
            .map(|w| w.bytes.len() as u64)
            .sum::<u64>()
            + self.buf.len() as u64;
        let end = self.appended - after;
        if self.sealed.is_empty() || end > self.committed {
            return None;
        }
        let mut write = self.sealed.pop_front().expect("checked");
        write.end = end;
        Some(write)
    }

    /// A write failed (a full disk, an I/O error): it goes back to the front, to be tried
    /// again; nothing after it is synced meanwhile.
    pub fn retry(&mut self, write: WalWrite) {
        self.sealed.push_front(write);
        self.failing = true;
        // A snapshot with holes must not replace the segments it was to cover; they stay,
        // and recovery merges old and new by stamp.
        self.compaction = None;
    }

    /// Writes work again after [`Wal::retry`]. Returns whether records were dropped
    /// meanwhile, in which case the caller must write the live state again (a compaction).
    pub fn recovered(&mut self) -> bool {
        self.failing = false;
        std::mem::take(&mut self.dropped) > 0
    }

    /// The driver synced a write: everything up to `end` is on disk.
    pub fn synced(&mut self, end: u64) {
        self.synced = self.synced.max(end);
        if let Some(compaction) = &self.compaction {
            if compaction.done_at.is_some_and(|at| at <= self.synced) {
                let first_new = compaction.first_new;
                self.compaction = None;
                let (old, keep): (Vec<Segment>, Vec<Segment>) =
                    self.segments.iter().partition(|s| s.seq < first_new);
                self.snapshot_bytes = keep.iter().map(|s| s.bytes).sum::<u64>().max(1);
                self.segments = keep;
                for segment in old {
                    self.obsolete
                        .push(self.dir.join(segment_name(self.shard, segment.seq)));
                }
            }
        }
        if self.messages.len() >= self.sweep_at {
            // Bodies no session holds any more: the log's entry is their last reference.
            self.messages.retain(|_, (_, m)| Arc::strong_count(m) > 1);
            self.sweep_at = (self.messages.len() * 2).max(1024);
        }
    }

    /// Segments compaction made obsolete, for the driver to delete.
    pub fn take_obsolete(&mut self) -> Vec<PathBuf> {
        std::mem::take(&mut self.obsolete)
    }

    /// True when the log has grown enough past live state to be compacted, or past half of
    /// `budget` (this shard's share of `persisted_bytes_max`), so that compaction reclaims
    /// what it can before new state is refused.
    pub fn should_compact(&self, budget: u64) -> bool {
        let bytes = self.disk_bytes();
        self.compaction.is_none()
            && ((bytes >= self.compact_min_bytes && bytes >= COMPACT_RATIO * self.snapshot_bytes)
                || (bytes >= budget / 2 && bytes >= 2 * self.snapshot_bytes))
    }

    /// Starts a compaction: a new segment, and every body written again on first use in it.
    pub fn start_compaction(&mut self) {
        self.seal();
        self.roll();
        self.messages.clear();
        self.compaction = Some(Compaction {
            first_new: self.segments.last().map_or(0, |s| s.seq),
            done_at: None,
        });
    }

    /// The snapshot of the compaction in progress is complete (not yet synced).
    pub fn snapshot_written(&mut self) {
        let appended = self.appended;
        if let Some(compaction) = &mut self.compaction {
            compaction.done_at = Some(appended);
        }
    }

    /// The start-up snapshot is written: compaction is measured against its size.
    pub fn snapshot_done(&mut self) {
        self.snapshot_bytes = self.disk_bytes().max(1);
    }

    pub fn is_compacting(&self) -> bool {
        self.compaction
            .as_ref()
            .is_some_and(|c| c.done_at.is_none())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_names_round_trip() {
        assert_eq!(segment_name(3, 42), "shard3-0000000042.wal");
        assert_eq!(parse_segment_name("shard3-0000000042.wal"), Some((3, 42)));
        assert_eq!(parse_segment_name("shard3-0000000042.wal.corrupt"), None);
        assert_eq!(parse_segment_name("other.txt"), None);
    }

    /// Nothing of an open epoch goes out, even when a write is taken between commits.
    #[test]
    fn writes_stop_at_the_last_commit() {
        let clock = Clock::new(std::time::Instant::now());
        let mut wal = Wal::new(Path::new("/nonexistent"), 0, clock, 1);
        let record = Record::Received {
            run: 1,
            from: 1,
            through: 1,
        };
        wal.append(&record);
        assert!(wal.take_write().is_none(), "not committed");
        wal.commit();
        wal.append(&record);
        let write = wal.take_write().expect("the committed record");
        assert_eq!(write.end, wal.appended() / 2);
        assert_eq!(write.bytes.len() as u64, write.end);
        assert!(wal.take_write().is_none(), "the second is not committed");
    }
}
