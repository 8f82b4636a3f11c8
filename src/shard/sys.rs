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

/// When the next `$SYS` update is due.
#[derive(Debug)]
pub(super) struct SysPublisher {
    started_at: Instant,
    /// `None` when `$SYS` is turned off (`sys_interval_s = 0`).
    interval: Option<Duration>,
    next_at: Instant,
}

impl SysPublisher {
    pub(super) fn new(now: Instant, interval_s: u32) -> SysPublisher {
        let interval = (interval_s > 0).then(|| Duration::from_secs(u64::from(interval_s)));
        // The first update goes out on the first tick, so `$SYS` is populated at start-up.
        SysPublisher {
            started_at: now,
            interval,
            next_at: now,
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
}

impl Shard {
    /// Publishes the broker-wide totals (shard 0 only).
    pub(super) fn publish_sys(&mut self, now: Instant, total: &StatsSnapshot) {
        let s = &total.stats;
        let online = s.clients_connected;
        let uptime_s = now.duration_since(self.sys.started_at).as_secs();
        let values: [(&'static str, String); 23] = [
            (
                "$SYS/broker/version",
                format!("ringmq version {}", crate::VERSION),
            ),
            ("$SYS/broker/uptime", format!("{uptime_s} seconds")),
            ("$SYS/broker/clients/connected", online.to_string()),
            ("$SYS/broker/clients/total", total.sessions.to_string()),
            (
                "$SYS/broker/clients/disconnected",
                total.sessions.saturating_sub(online).to_string(),
            ),
            (
                "$SYS/broker/messages/received",
                s.messages_received.to_string(),
            ),
            ("$SYS/broker/messages/sent", s.messages_sent.to_string()),
            (
                "$SYS/broker/publish/messages/received",
                s.publish_received.to_string(),
            ),
            (
                "$SYS/broker/publish/messages/sent",
                s.publish_sent.to_string(),
            ),
            (
                "$SYS/broker/publish/messages/dropped",
                s.publish_dropped.to_string(),
            ),
            (
                "$SYS/broker/subscriptions/count",
                total.subscriptions.to_string(),
            ),
            (
                "$SYS/broker/retained messages/count",
                self.retained.len().to_string(),
            ),
            (
                "$SYS/broker/load/bytes/received",
                s.bytes_received.to_string(),
            ),
            ("$SYS/broker/load/bytes/sent", s.bytes_sent.to_string()),
            (
                "$SYS/broker/clients/maximum",
                self.limits.connections_max.to_string(),
            ),
            (
                "$SYS/broker/messages/malformed",
                s.malformed_packets.to_string(),
            ),
            // Not in mosquitto's tree: what access control refused.
            ("$SYS/broker/auth/failures", s.auth_failures.to_string()),
            ("$SYS/broker/auth/busy", s.auth_busy.to_string()),
            ("$SYS/broker/acl/denied", s.acl_denied.to_string()),
            // Nor these: TLS and WebSocket connections the transport closed.
            (
                "$SYS/broker/transport/tls_handshake_failures",
                s.tls_handshake_failures.to_string(),
            ),
            (
                "$SYS/broker/transport/handshake_timeouts",
                s.handshake_timeouts.to_string(),
            ),
            (
                "$SYS/broker/transport/ws_upgrades_refused",
                s.ws_upgrades_refused.to_string(),
            ),
            (
                "$SYS/broker/transport/ws_protocol_errors",
                s.ws_protocol_errors.to_string(),
            ),
        ];
        for (topic, value) in values {
            let topic = TopicName::new(ByteStr::from_static(topic)).expect("static $SYS topic");
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
