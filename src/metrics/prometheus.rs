//! `/metrics`: every shard's latest [`ShardReport`] in the Prometheus/OpenMetrics text format,
//! rendered with `prometheus-client` on the admin thread per scrape. Names carry the `ringmq_`
//! prefix; counters end in `_total`; most have a `shard` label, so per-shard skew shows and
//! `sum by` gives the broker.

use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};

use super::{Refusals, ShardReport, Transport};

type Labels = Vec<(&'static str, String)>;

#[derive(Debug)]
enum Value {
    Counter(u64),
    Gauge(u64),
    Seconds(f64),
    Histogram {
        sum: f64,
        count: u64,
        buckets: Vec<(f64, u64)>,
    },
}

/// One metric family's points, encoded as they are: no atomics, no shared state.
#[derive(Debug)]
struct Points {
    kind: MetricType,
    points: Vec<(Labels, Value)>,
}

impl EncodeMetric for Points {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        for (labels, value) in &self.points {
            let mut point = encoder.encode_family(labels)?;
            match value {
                Value::Counter(v) => point.encode_counter::<NoLabelSet, _, u64>(v, None)?,
                Value::Gauge(v) => point.encode_gauge(v)?,
                Value::Seconds(v) => point.encode_gauge(v)?,
                Value::Histogram {
                    sum,
                    count,
                    buckets,
                } => point.encode_histogram::<NoLabelSet>(*sum, *count, buckets, None)?,
            }
        }
        Ok(())
    }

    fn metric_type(&self) -> MetricType {
        self.kind
    }
}

/// Latency bucket bounds, in seconds.
const LATENCY_BUCKETS_S: [f64; 16] = [
    0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025,
    0.05, 0.1, 0.25, 0.5, 1.0,
];

fn shard(report: &ShardReport) -> Labels {
    vec![("shard", report.shard.to_string())]
}

/// A family with one point per shard.
fn per_shard(
    reports: &[ShardReport],
    kind: MetricType,
    value: impl Fn(&ShardReport) -> Value,
) -> Points {
    Points {
        kind,
        points: reports.iter().map(|r| (shard(r), value(r))).collect(),
    }
}

fn counter(reports: &[ShardReport], value: impl Fn(&ShardReport) -> u64) -> Points {
    per_shard(reports, MetricType::Counter, |r| Value::Counter(value(r)))
}

fn gauge(reports: &[ShardReport], value: impl Fn(&ShardReport) -> u64) -> Points {
    per_shard(reports, MetricType::Gauge, |r| Value::Gauge(value(r)))
}

/// A counter family with a `reason` (or other) label besides `shard`.
fn by_label(
    reports: &[ShardReport],
    label: &'static str,
    values: impl Fn(&ShardReport) -> Vec<(&'static str, u64)>,
) -> Points {
    let mut points = Vec::new();
    for report in reports {
        for (name, value) in values(report) {
            let mut labels = shard(report);
            labels.push((label, name.to_string()));
            points.push((labels, Value::Counter(value)));
        }
    }
    Points {
        kind: MetricType::Counter,
        points,
    }
}

/// A counter family labelled `shard`, `transport` and, where `values` names one, `qos`.
fn by_transport(
    reports: &[ShardReport],
    values: impl Fn(&ShardReport, Transport) -> Vec<(&'static str, u64)>,
) -> Points {
    let mut points = Vec::new();
    for report in reports {
        for transport in Transport::ALL {
            for (qos, value) in values(report, transport) {
                let mut labels = shard(report);
                labels.push(("transport", transport.name().to_string()));
                if !qos.is_empty() {
                    labels.push(("qos", qos.to_string()));
                }
                points.push((labels, Value::Counter(value)));
            }
        }
    }
    Points {
        kind: MetricType::Counter,
        points,
    }
}

/// The text exposition of `reports` (one per shard).
pub fn render(reports: &[ShardReport]) -> String {
    let mut registry = Registry::with_prefix("ringmq");
    let r = reports;
    registry.register(
        "connections",
        "Open connections",
        gauge(r, |r| r.connections),
    );
    registry.register(
        "connections_accepted",
        "Connections accepted",
        counter(r, |r| r.stats.connections_accepted),
    );
    registry.register(
        "connections_refused",
        "Connections refused: at connections_max, at a listener's max_connections, or by CONNACK (by reason code)",
        by_label(r, "reason", |r| {
            let refused = &r.stats.refused;
            let mut values = vec![
                ("connections_max", refused.connections_max),
                ("listener_max_connections", refused.listener_max),
            ];
            for ((_, name), count) in Refusals::CONNACK_CODES.iter().zip(refused.connack) {
                values.push((name, count));
            }
            values
        }),
    );
    registry.register(
        "sessions_online",
        "Sessions with a connected client",
        gauge(r, |r| r.stats.clients_connected),
    );
    registry.register(
        "sessions_offline",
        "Persistent sessions whose client is away",
        gauge(r, |r| r.sessions.saturating_sub(r.stats.clients_connected)),
    );
    registry.register(
        "subscriptions",
        "Subscriptions held by sessions",
        gauge(r, |r| r.subscriptions),
    );
    registry.register(
        "retained_messages",
        "Retained messages (every shard holds the full set)",
        gauge(r, |r| r.retained),
    );
    registry.register_with_unit(
        "retained",
        "Payload bytes of the retained messages",
        Unit::Bytes,
        gauge(r, |r| r.retained_bytes),
    );
    registry.register(
        "messages_received",
        "PUBLISH packets received from clients, by transport and QoS",
        by_transport(r, |r, t| {
            let q = r.stats.publish_received_by[t as usize];
            vec![("0", q[0]), ("1", q[1]), ("2", q[2])]
        }),
    );
    registry.register(
        "messages_sent",
        "PUBLISH packets written to subscribers, by transport and QoS",
        by_transport(r, |r, t| {
            let q = r.stats.publish_sent_by[t as usize];
            vec![("0", q[0]), ("1", q[1]), ("2", q[2])]
        }),
    );
    let per_transport = |value: fn(&ShardReport, Transport) -> u64| {
        by_transport(r, move |r, t| vec![("", value(r, t))])
    };
    registry.register(
        "packets_received",
        "Control packets of every type received, by transport",
        per_transport(|r, t| r.stats.packets_received_by[t as usize]),
    );
    registry.register(
        "packets_sent",
        "Control packets of every type sent, by transport",
        per_transport(|r, t| r.stats.packets_sent_by[t as usize]),
    );
    registry.register_with_unit(
        "received",
        "MQTT bytes received (inside TLS and WebSocket framing), by transport",
        Unit::Bytes,
        per_transport(|r, t| r.stats.bytes_received_by[t as usize]),
    );
    registry.register_with_unit(
        "sent",
        "MQTT bytes sent (inside TLS and WebSocket framing), by transport",
        Unit::Bytes,
        per_transport(|r, t| r.stats.bytes_sent_by[t as usize]),
    );
    registry.register(
        "messages_dropped",
        "Messages not delivered, by reason",
        by_label(r, "reason", |r| {
            let d = &r.stats.drops;
            vec![
                ("queue_full", d.queue_full),
                ("outbound_buffer", d.outbound_buffer),
                ("expired", d.expired),
                ("packet_too_large", d.packet_too_large),
                ("no_subscribers", d.no_subscriber),
                ("not_authorized", r.stats.acl_denied),
                ("mesh_backpressure", r.stats.mesh_dropped_qos0),
                ("retained_max", r.stats.retained_dropped),
                ("persistence_full", r.stats.persist_full),
            ]
        }),
    );
    registry.register(
        "persistence_write_errors",
        "Log writes or syncs that failed (each is retried; see the broker's log)",
        counter(r, |r| r.stats.persist_write_errors),
    );
    registry.register(
        "auth_failures",
        "CONNECTs refused by access control and failed enhanced authentications",
        counter(r, |r| r.stats.auth_failures),
    );
    registry.register(
        "acl_denials",
        "Publishes, subscriptions, deliveries and wills the ACL refused",
        counter(r, |r| r.stats.acl_denied),
    );
    registry.register(
        "tls_handshake_failures",
        "TLS handshakes that failed",
        counter(r, |r| r.stats.tls_handshake_failures),
    );
    registry.register(
        "handshake_timeouts",
        "TLS handshakes and WebSocket upgrades not done in tls_handshake_timeout_s",
        counter(r, |r| r.stats.handshake_timeouts),
    );
    registry.register(
        "websocket_errors",
        "WebSocket upgrades refused and connections closed for a protocol error",
        by_label(r, "kind", |r| {
            vec![
                ("upgrade_refused", r.stats.ws_upgrades_refused),
                ("protocol_error", r.stats.ws_protocol_errors),
            ]
        }),
    );
    registry.register_with_unit(
        "loop_lag",
        "Longest delay of the shard's 1 s ticker in the last second",
        Unit::Seconds,
        per_shard(r, MetricType::Gauge, |r| {
            Value::Seconds(r.loop_lag.as_secs_f64())
        }),
    );
    registry.register(
        "mesh_backlog",
        "Mesh messages waiting for a full ring to drain",
        gauge(r, |r| r.mesh_backlog),
    );
    registry.register(
        "mesh_ring_depth",
        "Messages in the rings from this shard to its peers",
        gauge(r, |r| r.mesh_ring_depth),
    );
    registry.register(
        "reads_paused",
        "1 while the shard reads no socket because its mesh backlog is over mesh_backlog_max",
        gauge(r, |r| u64::from(r.reads_paused)),
    );
    registry.register(
        "throttled_connections",
        "Connections not read because they feed a congested subscriber",
        gauge(r, |r| r.throttled_connections),
    );
    registry.register_with_unit(
        "publish_to_write",
        "From reading a batch with PUBLISH packets to issuing the writes of its deliveries",
        Unit::Seconds,
        per_shard(r, MetricType::Histogram, |r| {
            // prometheus-client takes each bucket's own count (it sums them) and `f64::MAX`
            // for +Inf.
            let h = &r.latency.0;
            let mut below = 0;
            let mut buckets: Vec<(f64, u64)> = LATENCY_BUCKETS_S
                .iter()
                .map(|bound| {
                    let upto = h.count_between(0, (bound * 1e6) as u64);
                    let own = upto.saturating_sub(below);
                    below = upto;
                    (*bound, own)
                })
                .collect();
            buckets.push((f64::MAX, h.len().saturating_sub(below)));
            let sum = h.mean() * h.len() as f64 / 1e6;
            Value::Histogram {
                sum,
                count: h.len(),
                buckets,
            }
        }),
    );
    let mut text = String::new();
    // Writing into a `String` cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut text, &registry);
    text
}
