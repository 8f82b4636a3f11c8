//! The scenarios: each checks its flags, builds a [`Plan`](crate::plan::Plan), drives a
//! [`Coordinator`](crate::coordinator::Coordinator) through the phases it needs, and turns the
//! merged measurements into a [`Report`].
//!
//! This module holds what they share: flag checks, target resolution, and the parts of the
//! report every scenario has (connections, broker, load generator, warnings).

pub mod conn;
pub mod pubsub;
pub mod retained;

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use ringmq::codec::{ProtocolVersion, QoS};

use crate::cli::{CommonArgs, MessageArgs, DURATION_S_MAX, PAYLOAD_BYTES_MAX};
use crate::clock::{self, MonoNs};
use crate::coordinator::{RunOutput, RunSpec};
use crate::error::LoadgenError;
use crate::latency::Latency;
use crate::report::{BrokerFigures, Connections, LoadgenFigures, Report};
use crate::stamp::STAMP_LEN;
use crate::transport::TransportSpec;

/// Keep-alive announced by every client; idle ones ping after half of it.
pub const KEEP_ALIVE_S: u16 = 60;

pub(crate) fn usage(why: impl Into<String>) -> LoadgenError {
    LoadgenError::Usage(why.into())
}

/// The first address `host:port` resolves to.
pub fn resolve_target(host: &str, port: u16) -> Result<SocketAddr, LoadgenError> {
    (host, port)
        .to_socket_addrs()
        .map_err(|e| LoadgenError::io(format!("resolving {host}"), e))?
        .next()
        .ok_or_else(|| usage(format!("{host} resolves to no address")))
}

fn seconds(flag: &str, value: f64, max: f64) -> Result<Duration, LoadgenError> {
    if !(value.is_finite() && value > 0.0 && value <= max) {
        return Err(usage(format!(
            "{flag} must be above 0 and at most {max} seconds, not {value}"
        )));
    }
    Ok(Duration::from_secs_f64(value))
}

/// Checks the shared flags and turns them into a run spec.
pub(crate) fn run_spec(
    common: &CommonArgs,
    connect_rate_per_s: u64,
) -> Result<RunSpec, LoadgenError> {
    let threads = common.threads.unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    });
    if threads == 0 || threads > 256 {
        return Err(usage("--threads must be between 1 and 256"));
    }
    Ok(RunSpec {
        target: resolve_target(&common.host, common.port)?,
        transport: TransportSpec::from_args(&common.transport, &common.host, common.port)?,
        threads,
        source_ips: common.source_ips,
        connect_timeout: seconds("--connect-timeout", common.connect_timeout, 600.0)?,
        connect_rate_per_s,
        duration: seconds("--duration", common.duration, DURATION_S_MAX)?,
        drain_timeout: seconds("--drain-timeout", common.drain_timeout, 600.0)?,
        broker_pid: common.broker_pid,
        progress: !common.quiet,
    })
}

pub(crate) fn protocol(level: u8) -> ProtocolVersion {
    match level {
        3 => ProtocolVersion::V3_1,
        5 => ProtocolVersion::V5,
        _ => ProtocolVersion::V3_1_1,
    }
}

pub(crate) fn qos(level: u8) -> QoS {
    QoS::from_u8(level).unwrap_or(QoS::AtMostOnce)
}

pub(crate) fn check_message_args(m: &MessageArgs) -> Result<(), LoadgenError> {
    if m.payload_bytes < STAMP_LEN || m.payload_bytes > PAYLOAD_BYTES_MAX {
        return Err(usage(format!(
            "--payload-bytes must be between {STAMP_LEN} (the stamp) and {PAYLOAD_BYTES_MAX}"
        )));
    }
    if m.window == 0 || m.window > 65_535 {
        return Err(usage(
            "--window must be between 1 and 65535 (the packet id space)",
        ));
    }
    Ok(())
}

/// Seconds from `start` to `end`, never zero (rates divide by it).
pub(crate) fn span_s(start: MonoNs, end: MonoNs) -> f64 {
    clock::seconds_between(start, end).max(1e-6)
}

/// The report fields every scenario fills the same way.
pub(crate) struct ReportBase<'a> {
    pub scenario: &'static str,
    pub common: &'a CommonArgs,
    pub target: SocketAddr,
    pub qos: u8,
    pub payload_bytes: usize,
}

/// Connections, errors and warnings from a run; sections the scenario owns start empty.
pub(crate) fn base_report(base: ReportBase, out: &RunOutput, latency: Latency) -> Report {
    let c = &out.measure.counters;
    let connect_span = match (c.first_connect_at, c.last_ready_at) {
        (Some(first), Some(last)) => span_s(first, last),
        _ => 0.0,
    };
    let mut warnings = Vec::new();
    if c.failed + c.dropped > 0 {
        warnings.push(format!(
            "{} connections failed and {} dropped",
            c.failed, c.dropped
        ));
    }
    if c.downgraded > 0 {
        warnings.push(format!(
            "the broker granted {} subscriptions below the QoS asked for",
            c.downgraded
        ));
    }
    Report {
        scenario: base.scenario,
        target: base.target.to_string(),
        transport: base.common.transport.scheme(),
        mqtt_version: base.common.mqtt_version,
        qos: base.qos,
        payload_bytes: base.payload_bytes,
        clients: out.clients,
        connections: Connections {
            ready: c.ready,
            failed: c.failed,
            dropped: c.dropped,
            connects_per_s: if connect_span > 0.0 {
                c.ready as f64 / connect_span
            } else {
                0.0
            },
            connect_latency: out.measure.connect.summary(),
        },
        messages: None,
        retained: None,
        broker: None,
        loadgen: LoadgenFigures::new(out.threads, 0, 0.0),
        sys_check: None,
        warnings,
        errors: out.errors.clone(),
        errors_total: out.errors_total,
        latency,
    }
}

/// Broker CPU and RSS over the run and drain, per million `messages`.
pub(crate) fn broker_over_run(out: &RunOutput, messages: u64) -> Option<BrokerFigures> {
    let b = out.broker?;
    let cpu_s = b.drain_end.cpu_us_since(&b.run_start) as f64 / 1e6;
    Some(BrokerFigures {
        pid: b.pid,
        cpu_s,
        cpu_s_per_million_msgs: (messages > 0).then(|| cpu_s / (messages as f64 / 1e6)),
        cpu_us_per_connect: None,
        rss_bytes: b.drain_end.rss_bytes,
        rss_bytes_per_connection: None,
    })
}

/// Our CPU over the run (not the drain, where we mostly wait), with the saturation warning.
/// The CPU marks are taken when the coordinator announces the run, a few ms before it starts.
pub(crate) fn loadgen_over_run(report: &mut Report, out: &RunOutput) {
    let cpu_us = out.cpu.run_end_us.saturating_sub(out.cpu.run_start_us);
    let wall_s = span_s(out.timeline.run_start, out.timeline.run_end);
    report.loadgen = LoadgenFigures::new(out.threads, cpu_us, wall_s);
    warn_if_saturated(report);
}

pub(crate) fn warn_if_saturated(report: &mut Report) {
    let l = &report.loadgen;
    if l.saturated {
        report.warnings.push(format!(
            "the load generator used {:.0}% of its {} threads: it may be the bottleneck \
             (more --threads, or a second process on another core)",
            l.cpu_share * 100.0,
            l.threads
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_are_bounded() {
        assert!(seconds("--duration", 0.0, 10.0).is_err());
        assert!(seconds("--duration", f64::NAN, 10.0).is_err());
        assert!(seconds("--duration", 11.0, 10.0).is_err());
        assert_eq!(
            seconds("--duration", 0.5, 10.0).ok(),
            Some(Duration::from_millis(500))
        );
    }

    #[test]
    fn payload_must_hold_the_stamp() {
        let mut m = MessageArgs {
            qos: 1,
            payload_bytes: STAMP_LEN - 1,
            window: 10,
        };
        assert!(check_message_args(&m).is_err());
        m.payload_bytes = STAMP_LEN;
        assert!(check_message_args(&m).is_ok());
        m.window = 0;
        assert!(check_message_args(&m).is_err());
    }

    #[test]
    fn loopback_resolves() {
        let addr = resolve_target("127.0.0.1", 1883).expect("resolves");
        assert!(addr.ip().is_loopback());
    }
}
