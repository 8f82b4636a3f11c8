//! What the durability tests (`persistence*.rs`, `crash.rs`) share: a broker on a
//! `persistence_dir`, a temporary directory per test, the log segments in it, and reads and
//! writes that report a broker killed mid-way instead of failing the test.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use ringmq::codec::{self, Packet};
use ringmq::config::Config;

use super::{start_broker_with, Broker, NoPacket, RawClient};

/// Starts a broker with `shards` shards that keeps its sessions and retained messages in
/// `dir` (durability `batch`, the default). `shards` is explicit: these tests compare shard
/// counts across restarts, whatever `RINGMQ_TEST_SHARDS` says.
pub fn start_persistent(dir: &Path, shards: usize) -> Broker {
    start_persistent_with(dir, shards, |_| {})
}

/// [`start_persistent`] with `tweak` applied after the directory and shard count are set.
pub fn start_persistent_with(dir: &Path, shards: usize, tweak: impl FnOnce(&mut Config)) -> Broker {
    start_broker_with(|config| {
        config.persistence.dir = Some(dir.to_owned());
        config.shards = shards;
        tweak(config);
    })
}

/// A directory of its own for one test: `<tmp>/ringmq-<name>-<pid>`, emptied first. Dropping
/// it removes it, unless the test is failing: then it is kept and its path printed, so that
/// the files that made the test fail can be looked at.
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        let path = std::env::temp_dir().join(format!("ringmq-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create the test's temp dir");
        TempDir { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("kept {} for a look", self.path.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// One write-ahead log segment: `<dir>/shard<I>-<SEQ>.wal`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Segment {
    pub shard: usize,
    pub seq: u64,
    pub path: PathBuf,
}

/// The segments in `dir`, by shard then sequence number. Other files (`*.corrupt`) are left
/// out; a `.wal` file not named like a segment fails the test.
pub fn wal_segments(dir: &Path) -> Vec<Segment> {
    let mut segments = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return segments;
    };
    for entry in entries {
        let path = entry.expect("readable directory entry").path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        let Some(stem) = name.strip_suffix(".wal") else {
            continue;
        };
        let parsed = stem.strip_prefix("shard").and_then(|rest| {
            let (shard, seq) = rest.split_once('-')?;
            Some((shard.parse().ok()?, seq.parse().ok()?))
        });
        let Some((shard, seq)) = parsed else {
            panic!("{name}: not a `shard<I>-<SEQ>.wal` segment name");
        };
        segments.push(Segment { shard, seq, path });
    }
    segments.sort();
    segments
}

/// What [`RawClient::try_recv`] saw.
#[derive(Debug)]
pub enum Received {
    Packet(Packet),
    Timeout,
    Closed,
}

impl RawClient {
    /// Sends `packet`, returning the write error instead of failing: for a broker that may be
    /// killed while we talk to it.
    pub fn try_send(&mut self, packet: &Packet) -> std::io::Result<()> {
        let mut out = BytesMut::new();
        codec::encode(packet, self.version, &mut out).expect("test packets encode");
        self.stream.write_all(&out)
    }

    /// The next packet, or why there is none: for a broker that may be killed mid-read.
    pub fn try_recv(&mut self, timeout: Duration) -> Received {
        if let Some(packet) = self.stash.pop_front() {
            return Received::Packet(packet);
        }
        match self.read_packet(Instant::now() + timeout) {
            Ok(packet) => Received::Packet(packet),
            Err(NoPacket::Timeout) => Received::Timeout,
            Err(NoPacket::Closed) => Received::Closed,
        }
    }
}
