//! What one shard reports to the admin thread once a second for `/metrics`: its counters
//! (plain integers, copied, never shared), a few gauges, and its publish-to-write latency
//! histogram. The shard's driver builds it on its ticker and hands it over through a
//! `mesh::Published` cell; the admin thread reads the newest one per scrape. Nothing here runs
//! on the publish path.

use std::time::Duration;

use super::Stats;

/// One shard's numbers at one moment.
#[derive(Debug, Clone, Default)]
pub struct ShardReport {
    pub shard: usize,
    pub stats: Stats,
    /// Open transport connections (with or without an accepted CONNECT).
    pub connections: u64,
    /// Sessions, online and offline.
    pub sessions: u64,
    pub subscriptions: u64,
    /// Retained messages and their payload bytes (every shard holds a full copy; the
    /// broker's figure is any one shard's).
    pub retained: u64,
    pub retained_bytes: u64,
    /// Mesh messages waiting in this shard's local backlog for a full ring to drain.
    pub mesh_backlog: u64,
    /// Messages sitting in the rings from this shard to its peers.
    pub mesh_ring_depth: u64,
    /// The driver is not reading any socket (mesh backlog over `mesh_backlog_max`).
    pub reads_paused: bool,
    /// Connections flow control is not reading (they feed a congested subscriber).
    pub throttled_connections: u64,
    /// Longest the shard's 1 s ticker ran late since the last report: how long the event loop
    /// went without getting back to its timers.
    pub loop_lag: Duration,
    pub latency: LatencyHistogram,
}

/// From reading a batch that carried PUBLISH packets to issuing the writes that carry what
/// routing them produced on this shard, one sample per flush cycle (its oldest read). In
/// microseconds, up to 60 s, two significant figures: about 3 KiB per shard.
#[derive(Debug, Clone)]
pub struct LatencyHistogram(pub hdrhistogram::Histogram<u64>);

/// The histogram's ceiling in microseconds; later samples are clamped to it.
pub const LATENCY_MAX_US: u64 = 60_000_000;

impl Default for LatencyHistogram {
    fn default() -> LatencyHistogram {
        // 1 µs .. 60 s at 2 significant figures cannot be refused by hdrhistogram.
        let histogram = hdrhistogram::Histogram::new_with_bounds(1, LATENCY_MAX_US, 2)
            .unwrap_or_else(|_| hdrhistogram::Histogram::new(2).expect("2 sigfig is valid"));
        LatencyHistogram(histogram)
    }
}

impl LatencyHistogram {
    pub fn record(&mut self, latency: Duration) {
        let us = (latency.as_micros() as u64).clamp(1, LATENCY_MAX_US);
        // Cannot fail: `us` is within the bounds the histogram was made with.
        let _ = self.0.record(us);
    }
}
