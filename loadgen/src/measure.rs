//! What one worker thread measures: histograms and counters, owned by the thread and written
//! without synchronisation. Clients add to it through `client::Ctx`; the worker mirrors the
//! counters into atomics for the progress line and hands the whole value back at the end.

use crate::clock::MonoNs;
use crate::latency::Latency;

/// Event counts and the times of first and last events. All plain integers: one thread owns it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Connections past CONNACK (and SUBACK for subscribers).
    pub ready: u64,
    /// Connections that failed before becoming ready, and ready ones lost later.
    pub failed: u64,
    pub dropped: u64,
    /// PUBLISH packets written by publishers (not flooders), and what they should reach.
    pub sent: u64,
    pub expected: u64,
    /// QoS 1/2 flows completed (PUBACK, or PUBCOMP).
    pub acked: u64,
    /// QoS 1/2 flows still open when their publisher stopped or died.
    pub abandoned: u64,
    /// Acks with a 5.0 error reason code (>= 0x80).
    pub rejected: u64,
    /// Acks for ids we had not sent.
    pub unknown_acks: u64,
    /// Every PUBLISH received by a subscriber, and the distinct ones among them.
    pub received: u64,
    pub delivered: u64,
    pub duplicates: u64,
    /// Payloads without a stamp: not ours.
    pub unstamped: u64,
    /// Publishers that have sent everything they will send.
    pub publishers_done: u64,
    /// Scheduled messages a publisher never sent because the run ended first.
    pub backlog_unsent: u64,
    /// Flooders done storing, and done clearing.
    pub primed: u64,
    pub cleaned: u64,
    /// Retained-reader rounds begun and completed.
    pub rounds_started: u64,
    pub rounds: u64,
    /// SUBSCRIBE entries the broker granted below the QoS asked for.
    pub downgraded: u64,
    pub first_connect_at: Option<MonoNs>,
    pub last_ready_at: Option<MonoNs>,
    pub last_send_at: Option<MonoNs>,
    pub last_delivery_at: Option<MonoNs>,
}

impl Counters {
    /// Sums `other` into `self`; times take the earliest first and the latest last.
    pub fn add(&mut self, other: &Counters) {
        self.ready += other.ready;
        self.failed += other.failed;
        self.dropped += other.dropped;
        self.sent += other.sent;
        self.expected += other.expected;
        self.acked += other.acked;
        self.abandoned += other.abandoned;
        self.rejected += other.rejected;
        self.unknown_acks += other.unknown_acks;
        self.received += other.received;
        self.delivered += other.delivered;
        self.duplicates += other.duplicates;
        self.unstamped += other.unstamped;
        self.publishers_done += other.publishers_done;
        self.backlog_unsent += other.backlog_unsent;
        self.primed += other.primed;
        self.cleaned += other.cleaned;
        self.rounds_started += other.rounds_started;
        self.rounds += other.rounds;
        self.downgraded += other.downgraded;
        self.first_connect_at = min_time(self.first_connect_at, other.first_connect_at);
        self.last_ready_at = self.last_ready_at.max(other.last_ready_at);
        self.last_send_at = self.last_send_at.max(other.last_send_at);
        self.last_delivery_at = self.last_delivery_at.max(other.last_delivery_at);
    }
}

fn min_time(a: Option<MonoNs>, b: Option<MonoNs>) -> Option<MonoNs> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Histograms and counters of one worker.
#[derive(Debug, Clone, Default)]
pub struct Measure {
    /// One-way message latency (pubsub), or SUBSCRIBE -> last retained message (retained).
    pub latency: Latency,
    /// Start of the TCP connect (its scheduled time when paced) -> CONNACK.
    pub connect: Latency,
    /// SUBSCRIBE -> SUBACK of retained readers.
    pub suback: Latency,
    pub counters: Counters,
}

impl Measure {
    pub fn merge(&mut self, other: &Measure) {
        self.latency.merge(&other.latency);
        self.connect.merge(&other.connect);
        self.suback.merge(&other.suback);
        self.counters.add(&other.counters);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_sums_counts_and_spans_times() {
        let mut a = Measure::default();
        a.counters.sent = 3;
        a.counters.first_connect_at = Some(MonoNs(50));
        a.counters.last_delivery_at = Some(MonoNs(900));
        a.latency.record_us(10);
        let mut b = Measure::default();
        b.counters.sent = 4;
        b.counters.first_connect_at = Some(MonoNs(20));
        b.latency.record_us(20);
        a.merge(&b);
        assert_eq!(a.counters.sent, 7);
        assert_eq!(a.counters.first_connect_at, Some(MonoNs(20)));
        assert_eq!(a.counters.last_delivery_at, Some(MonoNs(900)));
        assert_eq!(a.latency.count(), 2);
    }
}
