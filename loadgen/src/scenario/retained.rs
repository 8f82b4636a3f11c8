//! `retained`: one flooder stores a retained message on each of R topics
//! (`lg/{run}/r/{i/100}/{i%100}`), then S readers repeatedly subscribe to a wildcard filter
//! under that prefix and time SUBSCRIBE -> the last matching retained message. After the run
//! the flooder deletes what it stored, so the broker is left as it was found.
//!
//! The number of retained messages a round waits for is computed with the broker's own topic
//! matcher, so a broker that delivers too few shows as rounds that never complete.

use ringmq::codec::ByteStr;
use ringmq::topic::{TopicFilter, TopicName};

use crate::cli::{RetainedArgs, CLIENTS_MAX};
use crate::coordinator::{Coordinator, RunOutput};
use crate::error::LoadgenError;
use crate::plan::{client_id, run_tag, ClientSpec, Plan, RetainedTopics, RoleSpec, Settings};
use crate::report::{Report, Retained};

use super::{
    base_report, broker_over_run, check_message_args, loadgen_over_run, protocol, qos, run_spec,
    usage, ReportBase, KEEP_ALIVE_S,
};

/// Retained topics one run may store: the broker's default `retained_messages_max`.
pub const RETAINED_TOPICS_MAX: u64 = 1_000_000;

/// How many of `topics` the filter `{prefix}/{suffix}` matches.
pub fn matching(topics: &RetainedTopics, filter: &str) -> Result<u64, LoadgenError> {
    let filter = TopicFilter::new(ByteStr::from(filter))
        .map_err(|e| usage(format!("--filter gives an invalid filter {filter}: {e:?}")))?;
    let mut n = 0;
    for i in 0..topics.count {
        let name = TopicName::new(ByteStr::from(topics.name(i)))
            .map_err(|e| usage(format!("invalid retained topic: {e:?}")))?;
        n += u64::from(filter.matches(&name));
    }
    Ok(n)
}

/// The flooder first, then the readers; `expected` is how many topics the filter matches.
pub fn plan(args: &RetainedArgs, tag: &str) -> Result<(Plan, u64), LoadgenError> {
    let topics = RetainedTopics {
        prefix: format!("lg/{tag}/r"),
        count: args.topics,
    };
    let filter = format!("{}/{}", topics.prefix, args.filter);
    let expected = matching(&topics, &filter)?;
    if expected == 0 {
        return Err(usage(format!(
            "--filter {} matches none of the {} retained topics",
            args.filter, args.topics
        )));
    }
    let rounds_max = args.count.unwrap_or(u64::MAX);
    let mut clients = vec![ClientSpec {
        client_id: client_id(tag, 'f', 0),
        role: RoleSpec::Flooder { topics },
    }];
    for j in 0..args.subscribers {
        let role = RoleSpec::RetainedReader {
            filter: filter.clone(),
            expected,
            rounds_max,
        };
        clients.push(ClientSpec {
            client_id: client_id(tag, 'r', j),
            role,
        });
    }
    let settings = Settings {
        version: protocol(args.common.mqtt_version),
        qos: qos(args.message.qos),
        payload_bytes: args.message.payload_bytes,
        window: args.message.window,
        rate_per_s: 0,
        publishers: 0,
        keep_alive_s: KEEP_ALIVE_S,
        session_expiry_s: 0,
        login: args.common.login(),
    };
    Ok((Plan { settings, clients }, expected))
}

pub fn run(args: &RetainedArgs) -> Result<Report, LoadgenError> {
    check_message_args(&args.message)?;
    if args.topics == 0 || args.topics > RETAINED_TOPICS_MAX {
        return Err(usage(format!(
            "--topics must be between 1 and {RETAINED_TOPICS_MAX}"
        )));
    }
    if args.subscribers == 0 || args.subscribers + 1 > CLIENTS_MAX {
        return Err(usage(format!(
            "--subscribers must be between 1 and {}",
            CLIENTS_MAX - 1
        )));
    }
    let (plan, expected) = plan(args, &run_tag())?;
    let spec = run_spec(&args.common, 0)?;
    let target = spec.target;
    let mut coordinator = Coordinator::start(spec, plan)?;
    coordinator.wait_setup(true)?;
    let store_time = coordinator.prime(1)?;
    coordinator.run(args.count.map(|n| n.saturating_mul(args.subscribers)));
    coordinator.drain();
    coordinator.cleanup(1)?;
    let out = coordinator.finish();
    Ok(report(args, target, expected, store_time, &out))
}

fn report(
    args: &RetainedArgs,
    target: std::net::SocketAddr,
    expected: u64,
    store_time: std::time::Duration,
    out: &RunOutput,
) -> Report {
    let base = ReportBase {
        scenario: "retained",
        common: &args.common,
        target,
        qos: args.message.qos,
        payload_bytes: args.message.payload_bytes,
    };
    let mut report = base_report(base, out, out.measure.latency.clone());
    let c = &out.measure.counters;
    report.retained = Some(Retained {
        topics: args.topics,
        filter: args.filter.clone(),
        matching: expected,
        stored_msgs_per_s: args.topics as f64 / store_time.as_secs_f64().max(1e-6),
        rounds: c.rounds,
        subscribe_to_last: out.measure.latency.summary(),
        suback: out.measure.suback.summary(),
    });
    report.broker = broker_over_run(out, c.delivered);
    loadgen_over_run(&mut report, out);
    if c.rounds_started > c.rounds {
        report.warnings.push(format!(
            "{} subscribe rounds never received every retained message",
            c.rounds_started - c.rounds
        ));
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_select_what_they_say() {
        let topics = RetainedTopics {
            prefix: "lg/abc/r".into(),
            count: 1_000,
        };
        assert_eq!(matching(&topics, "lg/abc/r/#").ok(), Some(1_000));
        assert_eq!(matching(&topics, "lg/abc/r/+/7").ok(), Some(10));
        assert_eq!(matching(&topics, "lg/abc/r/3/#").ok(), Some(100));
        assert_eq!(matching(&topics, "lg/abc/r/3/1").ok(), Some(1));
        assert!(matching(&topics, "lg/abc/r/#/x").is_err());
    }
}
