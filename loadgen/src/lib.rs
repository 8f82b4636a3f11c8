//! `ringmq-loadgen`: the load generator bundled with RingMQ.
//!
//! It measures what other public MQTT load tools do not: one-way latency in microseconds
//! into HDR histograms, open-loop constant-rate runs that correct for coordinated omission,
//! loss / duplicate / reorder counts per publisher, and the broker's CPU per message. It is
//! thread-per-core like the broker, and reports its own CPU so a saturated generator is seen.
//!
//! # Layout
//!
//! | module | owns |
//! |---|---|
//! | [`cli`] | the command line |
//! | [`scenario`] | `conn`, `pubsub`, `retained`: flags -> [`plan::Plan`] -> run -> [`report::Report`] |
//! | [`compare`] | A/B rounds, medians, ratios |
//! | `coordinator` | worker threads, phases, progress line, /proc and CPU samples |
//! | `worker` | one epoll loop per thread: sockets, timers, batching |
//! | [`transport`] | TLS and WebSocket as sans-IO byte transforms between socket and client |
//! | `client` | one connection's MQTT state machine, sans-IO, through `ringmq::codec` |
//! | [`stamp`], [`accounting`], [`schedule`], [`latency`] | the measurement: payload stamp, loss/dup/reorder, open-loop schedule, HDR histograms |
//! | [`report`], [`plot`], [`probe`], [`procfs`] | output: text, JSON, SVG; `$SYS` probe; broker CPU/RSS |
//! | `sys` | the only `unsafe`: timerfd, getrusage, rlimits |
//!
//! # Dependency rule
//!
//! `stamp, accounting, schedule, latency <- client <- worker <- coordinator <- scenario <-
//! compare`, and `transport <- worker, probe`. The client and the transport never touch a
//! socket or a clock; only `worker` and `probe` do I/O and only `coordinator` spawns threads.

pub mod accounting;
pub mod cli;
mod client;
pub mod clock;
pub mod compare;
mod coordinator;
pub mod error;
pub mod latency;
mod measure;
mod phase;
pub mod plan;
pub mod plot;
pub mod probe;
pub mod procfs;
pub mod report;
pub mod scenario;
pub mod schedule;
mod shared;
pub mod stamp;
mod sys;
pub mod transport;
pub mod tune;
mod worker;

use cli::{Cli, Command};
pub use error::LoadgenError;
pub use report::Report;

/// Runs a parsed command line: the scenario, the summary on stdout, `--json` and `--plot`.
pub fn run(cli: Cli) -> Result<(), LoadgenError> {
    clock::init();
    let (report, common) = match &cli.command {
        Command::Conn(args) => (scenario::conn::run(args)?, &args.common),
        Command::Pubsub(args) => (scenario::pubsub::run(args)?, &args.common),
        Command::Retained(args) => (scenario::retained::run(args)?, &args.common),
        Command::Compare(args) => return run_compare(args),
        Command::Tune(args) => return run_tune(args),
    };
    print!("{}", report.render());
    if let Some(path) = &common.json {
        report.write_json(path)?;
    }
    if let Some(path) = &common.plot {
        let title = format!("{} latency, {}", report.scenario, report.target);
        plot::write_svg(path, &title, &[(report.target.clone(), &report.latency)])?;
    }
    Ok(())
}

fn run_tune(args: &cli::TuneArgs) -> Result<(), LoadgenError> {
    let tuning = tune::run(args)?;
    print!("{}", tuning.render());
    if let Some(path) = &args.json {
        report::write_json(path, &tuning)?;
    }
    if let Some(path) = &args.plot {
        tuning.plot(path)?;
    }
    Ok(())
}

fn run_compare(args: &cli::CompareArgs) -> Result<(), LoadgenError> {
    let comparison = compare::run(args)?;
    print!("{}", comparison.render());
    if let Some(path) = &args.json {
        comparison.write_json(path)?;
    }
    if let Some(path) = &args.plot {
        let a = comparison.merged_latency("A");
        let b = comparison.merged_latency("B");
        let series = [(format!("A {}", args.a), &a), (format!("B {}", args.b), &b)];
        plot::write_svg(path, "latency by percentile, all rounds", &series)?;
    }
    Ok(())
}
