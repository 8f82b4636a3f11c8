//! RingMQ: a thread-per-core MQTT 3.1 / 3.1.1 / 5.0 broker on io_uring.
//!
//! # Layout
//!
//! | module | owns | look here for |
//! |---|---|---|
//! | [`codec`] | wire format, sans-IO | framing, packet decode/encode, properties, reason codes |
//! | [`topic`] | topic names, filters, the subscription trie, the retained store | wildcard rules, `$`-topics, matching |
//! | [`session`] | one client's MQTT state machine, sans-IO | CONNECT rules, QoS flows, inflight window, keep-alive, offline queue |
//! | [`shard`] | what one core owns: connections, sessions, trie | routing a publish, take-over, wills, retained, `$SYS`; `shard::driver` holds the awaits |
//! | [`mesh`] | the only cross-thread code: SPSC rings between shards, doorbells, `ShardMessage` | cross-shard protocol, backpressure |
//! | [`metrics`] | counters each shard keeps | what `$SYS` reports |
//! | [`config`] | CLI + TOML config -> validated [`config::Limits`] | every `*_max` and its default |
//! | [`runtime`] | threads, listeners, signals, I/O backend choice | start-up and shutdown |
//!
//! # Dependency rule
//!
//! `codec <- topic <- session <- shard -> mesh`, and `runtime -> shard, mesh`. `mesh` carries
//! session types but never imports `shard`. `codec`, `topic` and
//! `session` never import tokio, `shard` or `runtime`: they take bytes and `now` and return
//! packets and actions, so every protocol rule is testable without a socket.
//! `tests/tidy.rs` checks this rule.

pub mod codec;
pub mod config;
pub mod mesh;
pub mod metrics;
pub mod runtime;
pub mod session;
pub mod shard;
pub mod topic;

/// The broker version, as published in `$SYS/broker/version`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
