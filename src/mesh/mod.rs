//! The only cross-thread code in the broker: bounded SPSC rings between every pair of shards,
//! the doorbell that wakes a sleeping shard, and [`ShardMessage`], the closed set of things
//! one shard can tell another. Reviewing this module reviews the whole concurrency surface.
//!
//! Owns: transport between shards and its backpressure signal (`Endpoint::backlog`). Does not
//! own: what a message means (the shard's `mesh` handlers do).

mod message;
mod published;
mod ring;

pub use message::{ConnRef, Handoff, MemberChange, ShardMessage, StatsSnapshot};
pub use published::Published;
pub use ring::{build, Doorbell, Endpoint, ShardId};
