//! `conn`: open N idle connections, at a paced rate or as fast as the in-flight cap allows,
//! then hold them for `--duration` with keep-alive pings.
//!
//! Reports connect latency (TCP connect start, at its scheduled time when paced, to CONNACK)
//! and connects/s; with `--broker-pid`, the broker's RSS growth per connection (RSS after all
//! are up minus RSS before the first) and its CPU microseconds per connect over the connect
//! phase.

use crate::cli::{ConnArgs, CLIENTS_MAX};
use crate::coordinator::Coordinator;
use crate::error::LoadgenError;
use crate::plan::{client_id, run_tag, ClientSpec, Plan, RoleSpec, Settings};
use crate::report::{BrokerFigures, LoadgenFigures, Report};

use super::{
    base_report, protocol, run_spec, span_s, usage, warn_if_saturated, ReportBase, KEEP_ALIVE_S,
};

pub fn plan(args: &ConnArgs, tag: &str) -> Plan {
    let clients = (0..args.clients)
        .map(|i| ClientSpec {
            client_id: client_id(tag, 'c', i),
            role: RoleSpec::Idle,
        })
        .collect();
    let settings = Settings {
        version: protocol(args.common.mqtt_version),
        qos: ringmq::codec::QoS::AtMostOnce,
        payload_bytes: 0,
        window: 1,
        rate_per_s: 0,
        publishers: 0,
        keep_alive_s: KEEP_ALIVE_S,
        session_expiry_s: 0,
        login: args.common.login(),
    };
    Plan { settings, clients }
}

pub fn run(args: &ConnArgs) -> Result<Report, LoadgenError> {
    if args.clients == 0 || args.clients > CLIENTS_MAX {
        return Err(usage(format!(
            "--clients must be between 1 and {CLIENTS_MAX} per process (the fd limit); \
             start several processes for more"
        )));
    }
    let spec = run_spec(&args.common, args.rate)?;
    let target = spec.target;
    let mut coordinator = Coordinator::start(spec, plan(args, &run_tag()))?;
    coordinator.wait_setup(false)?;
    coordinator.run(None);
    coordinator.drain();
    let out = coordinator.finish();
    let base = ReportBase {
        scenario: "conn",
        common: &args.common,
        target,
        qos: 0,
        payload_bytes: 0,
    };
    let mut report = base_report(base, &out, out.measure.connect.clone());
    let ready = out.measure.counters.ready;
    report.broker = out.broker.map(|b| BrokerFigures {
        pid: b.pid,
        cpu_s: b.setup_end.cpu_us_since(&b.setup_start) as f64 / 1e6,
        cpu_s_per_million_msgs: None,
        cpu_us_per_connect: (ready > 0)
            .then(|| b.setup_end.cpu_us_since(&b.setup_start) as f64 / ready as f64),
        rss_bytes: b.setup_end.rss_bytes,
        rss_bytes_per_connection: (ready > 0).then(|| {
            (b.setup_end.rss_bytes as f64 - b.setup_start.rss_bytes as f64) / ready as f64
        }),
    });
    let cpu_us = out.cpu.setup_end_us.saturating_sub(out.cpu.setup_start_us);
    let wall_s = span_s(out.timeline.setup_start, out.timeline.setup_end);
    report.loadgen = LoadgenFigures::new(out.threads, cpu_us, wall_s);
    warn_if_saturated(&mut report);
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn every_client_is_idle_with_a_distinct_id() {
        let cli = crate::cli::Cli::parse_from(["ringmq-loadgen", "conn", "--clients", "50"]);
        let crate::cli::Command::Conn(args) = cli.command else {
            unreachable!("conn parses as conn")
        };
        let plan = plan(&args, "abc123");
        assert_eq!(plan.clients.len(), 50);
        assert!(plan.clients.iter().all(|c| c.role == RoleSpec::Idle));
        let ids: std::collections::HashSet<_> = plan.clients.iter().map(|c| &c.client_id).collect();
        assert_eq!(ids.len(), 50);
    }
}
