//! Counters each shard keeps for `$SYS` and tests. Plain integers: each shard has its own copy
//! and shard 0 sums them; nothing here is shared between threads.

/// Monotonic counters (and one gauge, `clients_connected`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Clients with an accepted CONNECT right now (a gauge).
    pub clients_connected: u64,
    pub connections_accepted: u64,
    /// Refused at `connections_max` (or a listener's `max_connections`), or by a CONNACK
    /// error; `refused` says why.
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
    /// Writes or syncs of the log that failed (each is retried).
    pub persist_write_errors: u64,
    /// Persistent state refused at `persisted_bytes_max`: new persistent sessions (CONNACK
    /// 0x97), and messages for offline sessions and new retained topics (dropped).
    pub persist_full: u64,
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
    /// Why connections were refused and messages dropped (`/metrics` labels).
    pub refused: Refusals,
    pub drops: Drops,
    /// PUBLISH packets received from clients, by transport and QoS.
    pub publish_received_by: [[u64; 3]; Transport::COUNT],
    /// PUBLISH packets written to subscribers, by transport and QoS.
    pub publish_sent_by: [[u64; 3]; Transport::COUNT],
    /// Control packets and MQTT bytes received and sent, by transport (bytes are MQTT's,
    /// inside TLS and WebSocket framing).
    pub packets_received_by: [u64; Transport::COUNT],
    pub packets_sent_by: [u64; Transport::COUNT],
    pub bytes_received_by: [u64; Transport::COUNT],
    pub bytes_sent_by: [u64; Transport::COUNT],
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
        self.persist_write_errors += other.persist_write_errors;
        self.persist_full += other.persist_full;
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
        self.refused.add(&other.refused);
        self.drops.add(&other.drops);
        for (mine, theirs) in self
            .publish_received_by
            .iter_mut()
            .zip(&other.publish_received_by)
            .chain(self.publish_sent_by.iter_mut().zip(&other.publish_sent_by))
        {
            add_all(mine, theirs);
        }
        add_all(&mut self.packets_received_by, &other.packets_received_by);
        add_all(&mut self.packets_sent_by, &other.packets_sent_by);
        add_all(&mut self.bytes_received_by, &other.bytes_received_by);
        add_all(&mut self.bytes_sent_by, &other.bytes_sent_by);
        self.tls_handshake_failures += other.tls_handshake_failures;
        self.handshake_timeouts += other.handshake_timeouts;
        self.ws_upgrades_refused += other.ws_upgrades_refused;
        self.ws_protocol_errors += other.ws_protocol_errors;
    }
}

fn add_all(mine: &mut [u64], theirs: &[u64]) {
    for (mine, theirs) in mine.iter_mut().zip(theirs) {
        *mine += theirs;
    }
}

/// What a connection runs over, for the `transport` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Transport {
    #[default]
    Mqtt,
    Mqtts,
    Ws,
    Wss,
}

impl Transport {
    pub const COUNT: usize = 4;
    pub const ALL: [Transport; Transport::COUNT] = [
        Transport::Mqtt,
        Transport::Mqtts,
        Transport::Ws,
        Transport::Wss,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Transport::Mqtt => "mqtt",
            Transport::Mqtts => "mqtts",
            Transport::Ws => "ws",
            Transport::Wss => "wss",
        }
    }
}

impl Stats {
    /// Counts messages dropped as expired or as too large for their client.
    pub fn count_drops(&mut self, expired: u64, too_large: u64) {
        self.publish_dropped += expired + too_large;
        self.drops.expired += expired;
        self.drops.packet_too_large += too_large;
    }
}

/// Connections refused, by why.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Refusals {
    /// The shard's share of `connections_max` was full at accept.
    pub connections_max: u64,
    /// The listener's `max_connections` share was full at accept.
    pub listener_max: u64,
    /// Refused by CONNACK, by reason code (5.0 codes; 3.1.1 refusals are counted under the 5.0
    /// code the broker decided on): see [`Refusals::CONNACK_CODES`].
    pub connack: [u64; Refusals::CONNACK_CODES.len()],
}

impl Refusals {
    /// The CONNACK codes the broker refuses with, and their `/metrics` label; the last slot
    /// takes any other code.
    pub const CONNACK_CODES: [(u8, &'static str); 13] = [
        (0x80, "unspecified_error"),
        (0x81, "malformed_packet"),
        (0x82, "protocol_error"),
        (0x84, "unsupported_protocol_version"),
        (0x85, "client_identifier_not_valid"),
        (0x86, "bad_user_name_or_password"),
        (0x87, "not_authorized"),
        (0x88, "server_unavailable"),
        (0x89, "server_busy"),
        (0x8C, "bad_authentication_method"),
        (0x95, "packet_too_large"),
        (0x97, "quota_exceeded"),
        (0x00, "other"),
    ];

    /// Counts a CONNACK refusal with `code`.
    pub fn connack(&mut self, code: u8) {
        let slot = Self::CONNACK_CODES
            .iter()
            .position(|(c, _)| *c == code)
            .unwrap_or(Self::CONNACK_CODES.len() - 1);
        self.connack[slot] += 1;
    }

    fn add(&mut self, other: &Refusals) {
        self.connections_max += other.connections_max;
        self.listener_max += other.listener_max;
        for (mine, theirs) in self.connack.iter_mut().zip(other.connack) {
            *mine += theirs;
        }
    }
}

/// Messages not delivered, by why. `Stats::publish_dropped` is their sum without `acl`,
/// `retained` and `mesh_qos0`, which have counters of their own.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Drops {
    /// A session queue at `queued_messages_max`.
    pub queue_full: u64,
    /// QoS 0 for an offline client, or for a connection over `outbound_buffer_max_bytes`.
    pub outbound_buffer: u64,
    /// Message Expiry Interval passed while queued [MQTT-3.3.2-5].
    pub expired: u64,
    /// Larger than the client's Maximum Packet Size [MQTT-3.1.2-25].
    pub packet_too_large: u64,
    /// A client's PUBLISH to `$SYS`, or a shared-subscription message with no member left.
    pub no_subscriber: u64,
}

impl Drops {
    fn add(&mut self, other: &Drops) {
        self.queue_full += other.queue_full;
        self.outbound_buffer += other.outbound_buffer;
        self.expired += other.expired;
        self.packet_too_large += other.packet_too_large;
        self.no_subscriber += other.no_subscriber;
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

mod prometheus;
mod report;
pub use prometheus::render;
pub use report::{LatencyHistogram, ShardReport};
