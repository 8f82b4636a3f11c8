//! The `$SYS/broker/...` tree, under mosquitto's names so existing dashboards keep working.
//! Published as retained messages every `sys_interval_s` through the normal routing path, so
//! `$SYS` subscribers are ordinary subscribers.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::codec::{ByteStr, Properties, QoS};

use crate::session::Message;
use crate::topic::TopicName;

use super::{Shard, StatsSnapshot};

/// When the next `$SYS` update is due, and what the load averages and peaks remember.
#[derive(Debug)]
pub(super) struct SysPublisher {
    started_at: Instant,
    /// `None` when `$SYS` is turned off (`sys_interval_s = 0`).
    interval: Option<Duration>,
    next_at: Instant,
    /// The totals and time of the previous update, for the per-minute rates.
    last: Option<(Instant, Counters)>,
    /// `load/<what>/{1,5,15}min`, per minute, as mosquitto computes them.
    loads: [[f64; 3]; LOADS.len()],
    /// Most sessions (`clients/total`) seen at once.
    clients_peak: u64,
    heap_peak: u64,
}

/// The counters whose rates `$SYS/broker/load/...` reports, under mosquitto's names.
const LOADS: [&str; 9] = [
    "messages/received",
    "messages/sent",
    "publish/dropped",
    "publish/received",
    "publish/sent",
    "bytes/received",
    "bytes/sent",
    "sockets",
    "connections",
];

/// The averaging windows of the loads, in seconds.
const LOAD_WINDOWS_S: [(f64, &str); 3] = [(60.0, "1min"), (300.0, "5min"), (900.0, "15min")];

type Counters = [u64; LOADS.len()];

fn counters(s: &crate::metrics::Stats) -> Counters {
    [
        s.messages_received,
        s.messages_sent,
        s.publish_dropped,
        s.publish_received,
        s.publish_sent,
        s.bytes_received,
        s.bytes_sent,
        s.connections_accepted,
        s.connects,
    ]
}

impl SysPublisher {
    pub(super) fn new(now: Instant, interval_s: u32) -> SysPublisher {
        let interval = (interval_s > 0).then(|| Duration::from_secs(u64::from(interval_s)));
        // The first update goes out on the first tick, so `$SYS` is populated at start-up.
        SysPublisher {
            started_at: now,
            interval,
            next_at: now,
            last: None,
            loads: [[0.0; 3]; LOADS.len()],
            clients_peak: 0,
            heap_peak: 0,
        }
    }

    pub(super) fn due(&mut self, now: Instant) -> bool {
        match self.interval {
            Some(interval) if now >= self.next_at => {
                // Keep the cadence: the next update is one interval after this one was due, so
                // timer jitter does not skip updates. After a long stall, restart from now.
                self.next_at += interval;
                if self.next_at <= now {
                    self.next_at = now + interval;
                }
                true
            }
            _ => false,
        }
    }

    /// Updates the load averages with `now`'s totals: each is an exponentially weighted
    /// per-minute rate, new = rate + e^(-dt/window) x (old - rate), mosquitto's formula, so
    /// dashboards built for mosquitto read the same numbers. The first update reports zeros.
    fn update_loads(&mut self, now: Instant, totals: Counters) -> Vec<(String, String)> {
        let mut values = Vec::with_capacity(LOADS.len() * LOAD_WINDOWS_S.len());
        if let Some((then, before)) = self.last {
            let dt = now.saturating_duration_since(then).as_secs_f64().max(1e-3);
            for (i, load) in self.loads.iter_mut().enumerate() {
                let per_minute = totals[i].saturating_sub(before[i]) as f64 * 60.0 / dt;
                for (w, (window, _)) in LOAD_WINDOWS_S.iter().enumerate() {
                    let decay = (-dt / window).exp();
                    load[w] = per_minute + decay * (load[w] - per_minute);
                }
            }
        }
        self.last = Some((now, totals));
        for (i, name) in LOADS.iter().enumerate() {
            for (w, (_, suffix)) in LOAD_WINDOWS_S.iter().enumerate() {
                values.push((
                    format!("$SYS/broker/load/{name}/{suffix}"),
                    format!("{:.2}", self.loads[i][w]),
                ));
            }
        }
        values
    }
}

impl Shard {
    /// Publishes the broker-wide totals (shard 0 only): mosquitto's tree, then ours.
    pub(super) fn publish_sys(&mut self, now: Instant, total: &StatsSnapshot) {
        let s = &total.stats;
        let online = s.clients_connected;
        let offline = total.sessions.saturating_sub(online);
        let uptime_s = now.duration_since(self.sys.started_at).as_secs();
        self.sys.clients_peak = self.sys.clients_peak.max(total.sessions);
        let (heap, heap_peak) = crate::metrics::heap_bytes();
        self.sys.heap_peak = self.sys.heap_peak.max(heap_peak).max(heap);
        let retained = self.retained.len() as u64;
        let mut values: Vec<(String, String)> = [
            ("version", format!("ringmq version {}", crate::VERSION)),
            ("uptime", format!("{uptime_s} seconds")),
            ("clients/total", total.sessions.to_string()),
            ("clients/maximum", self.sys.clients_peak.to_string()),
            ("clients/connected", online.to_string()),
            ("clients/active", online.to_string()),
            ("clients/disconnected", offline.to_string()),
            ("clients/inactive", offline.to_string()),
            ("clients/expired", s.sessions_expired.to_string()),
            ("heap/current", heap.to_string()),
            ("heap/maximum", self.sys.heap_peak.to_string()),
            ("messages/received", s.messages_received.to_string()),
            ("messages/sent", s.messages_sent.to_string()),
            ("messages/stored", (total.queued + retained).to_string()),
            (
                "store/messages/count",
                (total.queued + retained).to_string(),
            ),
            ("store/messages/bytes", total.queued_bytes.to_string()),
            ("publish/messages/received", s.publish_received.to_string()),
            ("publish/messages/sent", s.publish_sent.to_string()),
            ("publish/messages/dropped", s.publish_dropped.to_string()),
            ("bytes/received", s.bytes_received.to_string()),
            ("bytes/sent", s.bytes_sent.to_string()),
            ("subscriptions/count", total.subscriptions.to_string()),
            ("shared_subscriptions/count", self.shared.len().to_string()),
            ("retained messages/count", retained.to_string()),
            // Not in mosquitto's tree: malformed packets, what access control refused, and
            // TLS and WebSocket connections the transport closed.
            ("messages/malformed", s.malformed_packets.to_string()),
            ("auth/failures", s.auth_failures.to_string()),
            ("auth/busy", s.auth_busy.to_string()),
            ("acl/denied", s.acl_denied.to_string()),
            (
                "transport/tls_handshake_failures",
                s.tls_handshake_failures.to_string(),
            ),
            (
                "transport/handshake_timeouts",
                s.handshake_timeouts.to_string(),
            ),
            (
                "transport/ws_upgrades_refused",
                s.ws_upgrades_refused.to_string(),
            ),
            (
                "transport/ws_protocol_errors",
                s.ws_protocol_errors.to_string(),
            ),
        ]
        .into_iter()
        .map(|(topic, value)| (format!("$SYS/broker/{topic}"), value))
        .collect();
        values.extend(self.sys.update_loads(now, counters(s)));
        for (topic, value) in values {
            let Ok(topic) = TopicName::new(ByteStr::from(topic)) else {
                continue;
            };
            let message = Arc::new(Message {
                topic,
                payload: Bytes::from(value),
                qos: QoS::AtMostOnce,
                retain: true,
                properties: Properties::default(),
                expires_at: None,
            });
            self.publish(now, None, message);
        }
    }
}

impl Shard {
    /// This shard's numbers for `/metrics` (the driver adds its own: loop lag, latency).
    pub fn report(&self) -> crate::metrics::ShardReport {
        crate::metrics::ShardReport {
            shard: self.id.index(),
            stats: self.stats.clone(),
            connections: self.conns.len() as u64,
            sessions: self.sessions.len() as u64,
            subscriptions: self.trie.len() as u64,
            retained: self.retained.len() as u64,
            retained_bytes: self.retained_bytes,
            mesh_backlog: self.mesh.backlog() as u64,
            mesh_ring_depth: self.mesh.ring_depth() as u64,
            reads_paused: self.reads_paused,
            throttled_connections: self.conns.iter().filter(|(_, c)| c.throttles > 0).count()
                as u64,
            ..Default::default()
        }
    }
}
