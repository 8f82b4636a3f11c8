//! Counters each shard keeps for `$SYS` and tests. Plain integers: each shard has its own copy
//! and shard 0 sums them; nothing here is shared between threads.

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
    /// QoS 0 messages not forwarded to another shard because the mesh was backed up.
    pub mesh_dropped_qos0: u64,
    /// Times a publishing connection was paused because a subscriber it feeds was congested.
    pub publishers_throttled: u64,
    /// CONNECTs refused by access control (anonymous when not allowed, bad user name or
    /// password, a will topic the ACL refuses) and enhanced authentications that failed.
    pub auth_failures: u64,
    /// Publishes, subscriptions, deliveries and wills the ACL refused.
    pub acl_denied: u64,
    /// Password CONNECTs refused because `auth_verify_queue_max` checks were already waiting.
    pub auth_busy: u64,
    /// Closing connections shut down hard because their peer did not read the rest of its
    /// output within `close_timeout_s`.
    pub close_timeouts: u64,
    /// Offline sessions ended by their expiry interval.
    pub sessions_expired: u64,
    /// Messages sent on to another member of a shared subscription group because the member
    /// they were routed to left.
    pub shared_redelivered: u64,
    /// CONNECTs accepted (mosquitto's `load/connections`).
    pub connects: u64,
    /// TLS handshakes that failed (bad ClientHello, plaintext on a TLS port, a certificate
    /// the CA did not sign...), and TLS records that failed after it.
    pub tls_handshake_failures: u64,
    /// TLS handshakes and WebSocket upgrades not done within `tls_handshake_timeout_s`.
    pub handshake_timeouts: u64,
    /// HTTP requests on a WebSocket listener answered with an error status.
    pub ws_upgrades_refused: u64,
    /// WebSocket connections closed for a protocol error (text frame, unmasked frame...).
    pub ws_protocol_errors: u64,
}

impl Stats {
    /// Adds another shard's counters into these, for the `$SYS` totals.
    pub fn add(&mut self, other: &Stats) {
        self.clients_connected += other.clients_connected;
        self.connections_accepted += other.connections_accepted;
        self.connections_refused += other.connections_refused;
        self.messages_received += other.messages_received;
        self.messages_sent += other.messages_sent;
        self.publish_received += other.publish_received;
        self.publish_sent += other.publish_sent;
        self.publish_queued += other.publish_queued;
        self.publish_dropped += other.publish_dropped;
        self.retained_dropped += other.retained_dropped;
        self.bytes_received += other.bytes_received;
        self.bytes_sent += other.bytes_sent;
        self.malformed_packets += other.malformed_packets;
        self.protocol_errors += other.protocol_errors;
        self.keep_alive_timeouts += other.keep_alive_timeouts;
        self.takeovers += other.takeovers;
        self.wills_published += other.wills_published;
        self.mesh_dropped_qos0 += other.mesh_dropped_qos0;
        self.publishers_throttled += other.publishers_throttled;
        self.auth_failures += other.auth_failures;
        self.sessions_expired += other.sessions_expired;
        self.acl_denied += other.acl_denied;
        self.close_timeouts += other.close_timeouts;
        self.auth_busy += other.auth_busy;
        self.shared_redelivered += other.shared_redelivered;
        self.connects += other.connects;
        self.tls_handshake_failures += other.tls_handshake_failures;
        self.handshake_timeouts += other.handshake_timeouts;
        self.ws_upgrades_refused += other.ws_upgrades_refused;
        self.ws_protocol_errors += other.ws_protocol_errors;
    }
}

/// The process's heap: bytes committed by the allocator now, and at most so far (mimalloc's
/// own accounting; `$SYS/broker/heap/current` and `heap/maximum`).
pub fn heap_bytes() -> (u64, u64) {
    let (mut elapsed, mut user, mut system) = (0usize, 0usize, 0usize);
    let (mut rss, mut peak_rss, mut commit, mut peak_commit, mut faults) =
        (0usize, 0usize, 0usize, 0usize, 0usize);
    // SAFETY: every pointer is to a local `usize`, valid for the call; mimalloc only writes them.
    unsafe {
        libmimalloc_sys::mi_process_info(
            &mut elapsed,
            &mut user,
            &mut system,
            &mut rss,
            &mut peak_rss,
            &mut commit,
            &mut peak_commit,
            &mut faults,
        );
    }
    (commit as u64, peak_commit as u64)
}
