//! Counters a shard keeps for `$SYS` and for tests. Plain integers: one shard, one thread.

/// Monotonic counters (and one gauge, `clients_connected`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Clients with an accepted CONNECT right now (a gauge).
    pub clients_connected: u64,
    pub connections_accepted: u64,
    /// Refused at `connections_max`, `sessions_max`, or by a CONNACK error.
    pub connections_refused: u64,
    /// Control packets of every type decoded (mosquitto's `messages/received`).
    pub messages_received: u64,
    /// Control packets of every type sent (mosquitto's `messages/sent`).
    pub messages_sent: u64,
    /// PUBLISH messages routed (from clients, wills and `$SYS`).
    pub publish_received: u64,
    /// PUBLISH packets written to subscribers.
    pub publish_sent: u64,
    /// Deliveries held in a session queue.
    pub publish_queued: u64,
    /// Deliveries dropped: QoS 0 to a full buffer or offline client, a full session queue,
    /// or a client publish to `$SYS`.
    pub publish_dropped: u64,
    /// Retained messages not stored because of `retained_messages_max`.
    pub retained_dropped: u64,
    pub bytes_received: u64,
    pub bytes_sent: u64,
    /// Frames that failed to decode.
    pub malformed_packets: u64,
    /// Well-formed packets that broke a protocol rule.
    pub protocol_errors: u64,
    pub keep_alive_timeouts: u64,
    pub takeovers: u64,
    pub wills_published: u64,
}
