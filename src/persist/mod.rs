//! Durability: each shard's write-ahead log, its recovery at start-up, and what the
//! `durability` modes promise (`config::Durability`).
//!
//! The log is a record of the shard's own state, never a second source of truth: the shard
//! writes a session's whole persistent state ([`crate::session::SessionImage`]) when it changed,
//! at most once per commit, plus each retained update of the topics it is home to. Message
//! bodies are written once and named by id. Recovery takes the latest record per client id and
//! per topic, so replay needs no ordering across shards, and a different shard count just
//! places each session on its new home shard.
//!
//! | file | owns |
//! |---|---|
//! | `record.rs` | frames, CRC32C, the records' bytes, wall-clock times |
//! | `wal.rs` | one shard's writer: buffering, segments, group commit positions, compaction |
//! | `recover.rs` | start-up: reading, damage handling, merging, the fresh snapshot |
//! | `shard/persist.rs` | when the shard logs what, `sync`-mode holds, compaction steps |
//! | `shard/driver/wal.rs` | the writes and fsyncs, on io_uring or a blocking helper |

pub mod record;
pub mod recover;
#[cfg(test)]
mod tests;
pub mod wal;

use std::fs::OpenOptions;
use std::hash::{Hash, Hasher};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

pub use record::{Clock, Record};
pub use recover::{open_dir, recover, Recovered, RecoveryReport, ShardStart};
pub use wal::{Wal, WalWrite, SEGMENT_BYTES};

/// The shard a client id's session lives on after a restart, and the shard whose log keeps a
/// retained topic: a hash of the text. The same function as the client id's home shard
/// (`shard::peer`), so a restored session needs no move to be found.
pub fn home_of(text: &str, shards: usize) -> usize {
    let mut hasher = std::hash::DefaultHasher::new();
    text.hash(&mut hasher);
    (hasher.finish() % shards.max(1) as u64) as usize
}

/// Opens (creating and preallocating when asked) the segment a write goes to.
pub fn open_segment(write: &WalWrite) -> io::Result<std::fs::File> {
    let file = OpenOptions::new()
        .create(write.create)
        .truncate(false)
        .write(true)
        .open(&write.path)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", write.path.display())))?;
    if write.create {
        preallocate(&file, write.preallocate)?;
    }
    Ok(file)
}

/// Reserves the segment's blocks up front, so that a full disk shows at the roll, not in the
/// middle of a record, and the file's size never changes while it is written (an fdatasync
/// then need not write metadata).
fn preallocate(file: &std::fs::File, bytes: u64) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: `fallocate` on a valid, open file descriptor we own; no memory is shared.
    let rc = unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, bytes as libc::off_t) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(rc))
    }
}

/// Writes and syncs one write with blocking calls: start-up, and the epoll backend's helper.
pub fn write_sync(write: &WalWrite) -> io::Result<()> {
    let file = open_segment(write)?;
    file.write_all_at(&write.bytes, write.offset)?;
    file.sync_data()
}

/// Makes file creations, renames and deletions in `dir` durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}
