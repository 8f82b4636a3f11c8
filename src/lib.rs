//! RingMQ: a thread-per-core MQTT 3.1 / 3.1.1 / 5.0 broker on io_uring.
//!
//! # Layout
//!
//! | module | owns | look here for |
//! |---|---|---|
//! | [`codec`] | wire format, sans-IO | framing, packet decode/encode, properties, reason codes |
//! | [`topic`] | topic names, filters, the subscription trie, the retained store | wildcard rules, `$`-topics, matching |
//! | [`session`] | one client's MQTT state machine, sans-IO | CONNECT rules, QoS flows, inflight window, keep-alive, offline queue |
//! | [`shard`] | what one core owns: connections, sessions, trie; [`shard::ShardMessage`], all one shard tells another | routing a publish, take-over, wills, retained, `$SYS`, the cross-shard protocol; `shard::driver` holds the awaits |
//! | [`transport`] | TLS and WebSocket as byte transforms between socket and shard, sans-IO | handshakes, framing, what a bad peer is answered |
//! | [`auth`] | access policy and MQTT 5 enhanced authentication, sans-IO: password file, ACL file, SCRAM-SHA-256 | who may connect, publish, subscribe, read |
//! | [`mesh`] | the only cross-thread code, generic over what it carries: SPSC rings between shards, doorbells, the `Published` cell | ring sizes, backpressure, wake-ups |
//! | [`persist`] | each shard's write-ahead log, recovery, the `durability` modes | record format, segments, compaction, torn tails, `.corrupt` segments |
//! | [`metrics`] | counters each shard keeps, its `/metrics` report and their rendering | what `$SYS` and `/metrics` report |
//! | [`admin`] | the admin thread: `/metrics` over HTTP, never on a shard | scrapes, `metrics_listen` |
//! | [`config`] | CLI + TOML config -> validated [`config::Limits`] | every `*_max` and its default |
//! | [`runtime`] | threads, listeners, signals, I/O backend choice | start-up and shutdown |
//!
//! # Where behaviour lives
//!
//! | behaviour | file |
//! |---|---|
//! | framing, `packet_size_max`, malformed packets | `codec/decode.rs` |
//! | CONNECT rules, client ids, CONNACK's 5.0 server values | `session/connect.rs` |
//! | 5.0 limits announced and enforced (`[protocol]`) | `config/protocol.rs` |
//! | QoS 1/2 flows, SUBSCRIBE/UNSUBSCRIBE, PING, DISCONNECT | `session/flow.rs` |
//! | inflight window, offline queue, resend with DUP, message expiry, client's packet size limit | `session/deliver.rs` |
//! | topic aliases (both ways), client's receive maximum | `session/link.rs` |
//! | session expiry, will delay | `session/expiry.rs`, timers in `shard/mod.rs` (`fire_timers`) |
//! | No Local, Retain As Published, subscription identifiers | `shard/route.rs` (`route_local`, `merge_matches`) |
//! | shared subscriptions (`$share/...`), across shards | `shard/shared.rs` |
//! | AUTH exchange, re-authentication | `shard/auth.rs` (methods in `auth/`) |
//! | keep-alive | `session/mod.rs` (`keep_alive_expired`), checked by `Shard::handle_tick` |
//! | take-over, session resume, wills, clean start | `shard/connect.rs` |
//! | routing, overlapping subscriptions | `shard/route.rs` |
//! | retained store, one order of updates on every shard | `shard/retain.rs` |
//! | a session moving between shards without loss | `shard/handoff.rs` |
//! | per-connection bounds: output limit pauses reads, close timeout, parked CONNECTs | `shard/input.rs` (`process_input`), `shard/mod.rs` (`handle_tick`), `shard/flow.rs` (`is_throttled`) |
//! | rate-limited logs of client-caused events | `shard/log.rs` |
//! | cross-shard: interest, client-id home, `$SYS` totals | `shard/peer.rs` |
//! | `$SYS` topics | `shard/sys.rs` |
//! | sockets, batching, idle-connection memory, read pausing | `shard/driver/mod.rs` (backends: `driver/uring.rs`, `driver/epoll.rs`) |
//! | `[[listener]]` tables, TLS files and choices | `config/listener.rs`, `transport/tls_config.rs` |
//! | TLS (rustls unbuffered), WebSocket upgrade and frames | `transport/tls.rs`, `transport/ws.rs`, layered in `transport/mod.rs` |
//! | a transport between socket and shard, handshake timeout | `shard/driver/transport.rs` |
//! | per-listener `allow_anonymous`, `max_connections`, `use_identity_as_username`; transport counters | `shard/listener.rs` |
//! | what is logged when, `sync`-mode held acks, compaction steps | `shard/persist.rs` |
//! | log records, CRC32C, wall-clock times | `persist/record.rs` |
//! | segments, group commit positions, compaction trigger | `persist/wal.rs` |
//! | start-up recovery, damaged logs, re-homing on a new shard count, cross-shard QoS 2 redelivery | `persist/recover.rs` |
//! | log writes and fsyncs (io_uring, or a blocking helper under epoll) | `shard/driver/wal.rs` |
//! | rings, doorbell | `mesh/ring.rs` |
//! | `ShardMessage`, the cross-shard protocol | `shard/message.rs` (handled in `shard/peer.rs`) |
//! | enhanced authentication, SCRAM-SHA-256, user store | `auth/mod.rs`, `auth/scram.rs` |
//! | anonymous clients, password CONNECT, the ACL decisions | `auth/access.rs` (files: `auth/passwd`, `auth/acl.rs`) |
//! | password checks off the shard, ACL on publish/subscribe/delivery, reload | `shard/access.rs`, `shard/verifier.rs`, `runtime.rs` (`Broker::reload`, SIGHUP) |
//! | `ringmq passwd` | `auth/passwd` |
//! | io_uring detection and epoll fallback, listeners, certificate reload, signals | `runtime.rs` |
//!
//! # Dependency rule
//!
//! `codec <- topic <- session <- persist <- shard -> mesh`, `shard -> transport`, and
//! `runtime -> shard, mesh, transport`. `mesh` is generic
//! over what its rings carry and imports none of `codec`, `topic`, `session` or `shard`: the
//! messages (`shard::ShardMessage`) belong to the shard that speaks them. `shard` never imports
//! `runtime`. `codec`, `topic` and `session` never import tokio, `shard` or `runtime`: they take
//! bytes and `now` and return packets and actions, so every protocol rule is testable without a
//! socket. `tests/tidy.rs` checks this rule.

pub mod admin;
pub mod auth;
pub mod codec;
pub mod config;
pub mod mesh;
pub mod metrics;
pub mod persist;
pub mod runtime;
pub mod session;
pub mod shard;
pub mod topic;
pub mod transport;

/// The broker version, as published in `$SYS/broker/version`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
