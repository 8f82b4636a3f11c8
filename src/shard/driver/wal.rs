//! The shard's log writer task: takes what the shard encoded (`Shard::wal_take_write`),
//! writes and syncs it, and tells the shard (`Shard::wal_synced`), which releases what waited.
//!
//! One write is in flight per shard at a time; records encoded meanwhile go out together in
//! the next one (group commit). `batch` commits every `fsync_interval_ms`; `sync` commits as
//! soon as an acknowledgement waits for it (the flusher and mesh pump kick the task).
//!
//! The I/O itself is [`SegmentFile`]: io_uring's `write_at` and `fsync` under io_uring, which
//! run in the kernel without blocking the shard thread; under epoll, a blocking write and
//! `fdatasync` on tokio's blocking-thread pool, one at a time per shard.

use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::config::Durability;
use crate::persist::WalWrite;

use super::{Driver, Stream};

/// An open segment file on one backend.
pub trait SegmentFile: Sized + 'static {
    /// Opens (creates and preallocates, if `write.create`) the segment of `write`. Rare (one
    /// per `persist::SEGMENT_BYTES`), so done in place.
    fn open(write: &WalWrite) -> io::Result<Self>;
    /// Writes all of `bytes` at `offset`, then syncs the file's data.
    fn write_and_sync(&self, bytes: Vec<u8>, offset: u64) -> impl Future<Output = io::Result<()>>;
}

/// How long a failed write waits before it is tried again (a full disk may be freed).
const RETRY_AFTER: Duration = Duration::from_millis(500);

/// Tries of the last commit at shutdown before the broker exits without it.
const SHUTDOWN_WRITE_ATTEMPTS: u32 = 4;

impl<S: Stream> Driver<S> {
    /// Commits, writes and syncs the shard's log until [`Driver::stop_wal`], then writes
    /// what is left and returns. The only task that writes the log, so a write in flight is
    /// never abandoned: at shutdown it completes before the last commit.
    pub async fn wal_writer<F: SegmentFile>(self: Rc<Self>, mode: Durability, interval: Duration) {
        let mut file: Option<(PathBuf, F)> = None;
        while !self.wal_stopping.get() {
            match mode {
                Durability::Sync => self.wal_kick.notified().await,
                _ => {
                    tokio::select! {
                        _ = tokio::time::sleep(interval) => {}
                        _ = self.wal_kick.notified() => {}
                    }
                }
            }
            if !self.commit_and_write(&mut file).await {
                tokio::time::sleep(RETRY_AFTER).await;
            }
        }
        // The last commit: what the shutdown changed (sessions gone offline, wills sent). A
        // disk that stays full does not keep the broker from exiting.
        for attempt in 1..=SHUTDOWN_WRITE_ATTEMPTS {
            if self.commit_and_write(&mut file).await {
                return;
            }
            if attempt < SHUTDOWN_WRITE_ATTEMPTS {
                tokio::time::sleep(RETRY_AFTER).await;
            }
        }
        tracing::error!(
            "cannot write the log at shutdown; what changed since its last write is lost"
        );
    }

    /// Asks the log writer to write what is left and return (its task then completes).
    pub fn stop_wal(&self) {
        self.wal_stopping.set(true);
        self.wal_kick.notify_one();
    }

    /// Kicks the log writer if an acknowledgement waits for a commit (`sync` mode).
    pub(super) fn kick_wal(&self) {
        if self.shard.borrow().wal_wants_commit() {
            self.wal_kick.notify_one();
        }
    }

    /// One commit: encode, write, sync, release. False when a write failed (it is kept and
    /// tried again; nothing it covers is acknowledged meanwhile).
    pub async fn commit_and_write<F: SegmentFile>(&self, file: &mut Option<(PathBuf, F)>) -> bool {
        self.shard.borrow_mut().wal_commit(Instant::now());
        let mut ok = true;
        loop {
            let Some(write) = self.shard.borrow_mut().wal_take_write() else {
                break;
            };
            match write_one(file, &write).await {
                Ok(()) => self.shard.borrow_mut().wal_synced(write.end),
                Err(error) => {
                    self.shard.borrow_mut().wal_write_failed(write, &error);
                    ok = false;
                    break;
                }
            }
        }
        for path in self.shard.borrow_mut().wal_take_obsolete() {
            if let Err(error) = std::fs::remove_file(&path) {
                tracing::warn!(segment = %path.display(), %error, "cannot delete a compacted log segment");
            }
        }
        self.wake_released();
        self.flush.notify_one();
        ok
    }
}

async fn write_one<F: SegmentFile>(
    file: &mut Option<(PathBuf, F)>,
    write: &WalWrite,
) -> io::Result<()> {
    if file.as_ref().is_none_or(|(path, _)| *path != write.path) {
        *file = Some((write.path.clone(), F::open(write)?));
    }
    let (_, segment) = file.as_ref().expect("opened above");
    segment
        .write_and_sync(write.bytes.clone(), write.offset)
        .await
}

impl SegmentFile for tokio_uring::fs::File {
    fn open(write: &WalWrite) -> io::Result<Self> {
        crate::persist::open_segment(write).map(tokio_uring::fs::File::from_std)
    }

    async fn write_and_sync(&self, bytes: Vec<u8>, offset: u64) -> io::Result<()> {
        let (result, _) = self.write_all_at(bytes, offset).await;
        result?;
        self.sync_data().await
    }
}

/// The epoll backend's segment: a blocking file used from tokio's blocking pool.
pub struct BlockingSegment(std::sync::Arc<std::fs::File>);

impl SegmentFile for BlockingSegment {
    fn open(write: &WalWrite) -> io::Result<Self> {
        crate::persist::open_segment(write).map(|f| BlockingSegment(std::sync::Arc::new(f)))
    }

    async fn write_and_sync(&self, bytes: Vec<u8>, offset: u64) -> io::Result<()> {
        use std::os::unix::fs::FileExt;
        let file = self.0.clone();
        tokio::task::spawn_blocking(move || {
            file.write_all_at(&bytes, offset)?;
            file.sync_data()
        })
        .await
        .map_err(io::Error::other)?
    }
}
