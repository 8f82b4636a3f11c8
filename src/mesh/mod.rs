//! The only cross-thread code in the broker: bounded SPSC rings between every pair of shards,
//! the doorbell that wakes a sleeping shard, and [`Published`], the cell through which the
//! runtime hands every shard a new value (the reloaded access policy). Reviewing this module
//! reviews every atomic the shards share.
//!
//! Owns: transport between shards and its backpressure signal (`Endpoint::backlog`). Generic
//! over what it carries: the messages themselves (`crate::shard::ShardMessage`) and what they
//! mean belong to the shard, so this module imports no broker type.

mod published;
mod ring;

pub use published::Published;
pub use ring::{build, Doorbell, Endpoint, ShardId};
