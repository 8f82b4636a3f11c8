//! `persistence_dir`, `durability`, `fsync_interval_ms`, `persisted_bytes_max`: what the shards'
//! write-ahead logs (`crate::persist`) keep, and what an acknowledgement promises.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::ConfigError;

/// When state written to the log is on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// Memory only: nothing is written, a restart loses every session and retained message.
    None,
    /// Group commit every `fsync_interval_ms`: records wait in memory until the next commit,
    /// so kill -9 or a power loss loses at most the last interval (plus a write in flight).
    #[default]
    Batch,
    /// A PUBACK, PUBREC or SUBACK is sent only once what it acknowledges is on disk, on every
    /// shard that stored it. One fsync covers every record written since the previous one.
    Sync,
}

/// The `[persistence]` keys, kept at the top level of the file as mosquitto keeps its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Persistence {
    /// Where each shard keeps its log (`shard<I>-<SEQ>.wal`). Persistence is off when unset.
    pub dir: Option<PathBuf>,
    pub durability: Durability,
    /// `batch`: the longest a written record waits for its fsync.
    pub fsync_interval_ms: u32,
    /// Bytes of live persisted state (session images, queued messages, retained messages) the
    /// broker keeps on disk in all. Past it a new persistent session, a message queued for an
    /// offline session or a new retained topic is refused (5.0: 0x97 Quota exceeded), counted
    /// as "persistence full"; what is already on disk is never touched.
    pub bytes_max: u64,
}

/// Default `persisted_bytes_max`: 4 GiB of live state, far above what the default limits let
/// a small broker hold, small enough to stop a runaway before the disk fills.
pub const PERSISTED_BYTES_MAX_DEFAULT: u64 = 4 << 30;

/// The longest `fsync_interval_ms`: a minute of loss on power failure is already more than
/// anyone asking for `batch` expects.
pub const FSYNC_INTERVAL_MS_MAX: u32 = 60_000;

impl Default for Persistence {
    fn default() -> Persistence {
        Persistence {
            dir: None,
            durability: Durability::Batch,
            fsync_interval_ms: 10,
            bytes_max: PERSISTED_BYTES_MAX_DEFAULT,
        }
    }
}

impl Persistence {
    /// True when shards write a log: a directory is set and durability is not `none`.
    pub fn enabled(&self) -> bool {
        self.dir.is_some() && self.durability != Durability::None
    }

    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.fsync_interval_ms == 0 || self.fsync_interval_ms > FSYNC_INTERVAL_MS_MAX {
            return Err(ConfigError::Invalid {
                key: "fsync_interval_ms",
                why: format!(
                    "{} is not between 1 and {FSYNC_INTERVAL_MS_MAX}",
                    self.fsync_interval_ms
                ),
            });
        }
        if self.bytes_max == 0 {
            return Err(ConfigError::Invalid {
                key: "persisted_bytes_max",
                why: "must be above 0".into(),
            });
        }
        Ok(())
    }
}
