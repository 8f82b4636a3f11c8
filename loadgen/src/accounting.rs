//! Loss, duplicate and reorder accounting: one [`SeqTracker`] per (subscriber, publisher)
//! stream, summed per publisher and compared with what the publisher sent.
//!
//! A tracker remembers the highest sequence number seen and a bitmap of the
//! [`REORDER_WINDOW`] numbers below it, like an IPsec anti-replay window. That makes a
//! duplicate or a late arrival within the window exact, in O(1) time and 136 bytes per stream,
//! whatever the run length. A number more than the window below the highest cannot be told
//! apart from a duplicate; it is counted as out of order *and* in `too_old`, so that the
//! report shows when the window was too small to be exact.
//!
//! Loss is not seen by a tracker (a missing number may still arrive); it is
//! `expected - unique` at the end, where `expected` is what the publisher sent times the number
//! of subscriptions (or share groups) its topic reaches.

use std::collections::HashMap;

use serde::Serialize;

use crate::stamp::{PublisherId, Seq};

/// Sequence numbers below the highest seen that are tracked exactly.
pub const REORDER_WINDOW: u32 = 1024;
const WINDOW_WORDS: usize = (REORDER_WINDOW / 64) as usize;

/// What one arrival was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// Higher than anything seen before on this stream (gaps included).
    InOrder,
    /// Lower than the highest seen, and not seen before.
    OutOfOrder,
    /// Lower than the highest seen by more than the window: counted as out of order.
    TooOld,
    /// Seen before: not a new delivery.
    Duplicate,
}

/// Counts over one stream, or summed over many.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct DeliveryCounts {
    /// Every PUBLISH received, duplicates included.
    pub received: u64,
    /// Distinct sequence numbers received.
    pub unique: u64,
    pub duplicated: u64,
    /// Arrived after a higher sequence number (includes `too_old`).
    pub out_of_order: u64,
    /// Arrived more than [`REORDER_WINDOW`] behind the highest; dup-ness unknown.
    pub too_old: u64,
}

impl DeliveryCounts {
    pub fn add(&mut self, other: &DeliveryCounts) {
        self.received += other.received;
        self.unique += other.unique;
        self.duplicated += other.duplicated;
        self.out_of_order += other.out_of_order;
        self.too_old += other.too_old;
    }
}

/// One (subscriber, publisher) stream.
#[derive(Debug, Clone, Default)]
pub struct SeqTracker {
    /// `None` until the first arrival.
    highest: Option<u32>,
    /// Bit `d` set: `highest - d` has arrived. Bit 0 is `highest` itself.
    seen: [u64; WINDOW_WORDS],
    counts: DeliveryCounts,
}

impl SeqTracker {
    pub fn observe(&mut self, seq: Seq) -> Arrival {
        self.counts.received += 1;
        let seq = seq.0;
        let arrival = match self.highest {
            None => {
                self.highest = Some(seq);
                self.seen = [0; WINDOW_WORDS];
                self.set(0);
                Arrival::InOrder
            }
            Some(highest) if seq > highest => {
                self.shift(seq - highest);
                self.highest = Some(seq);
                self.set(0);
                Arrival::InOrder
            }
            Some(highest) => {
                let distance = highest - seq;
                if distance >= REORDER_WINDOW {
                    Arrival::TooOld
                } else if self.is_set(distance) {
                    Arrival::Duplicate
                } else {
                    self.set(distance);
                    Arrival::OutOfOrder
                }
            }
        };
        match arrival {
            Arrival::InOrder => self.counts.unique += 1,
            Arrival::OutOfOrder => {
                self.counts.unique += 1;
                self.counts.out_of_order += 1;
            }
            Arrival::TooOld => {
                self.counts.unique += 1;
                self.counts.out_of_order += 1;
                self.counts.too_old += 1;
            }
            Arrival::Duplicate => self.counts.duplicated += 1,
        }
        arrival
    }

    pub fn counts(&self) -> DeliveryCounts {
        self.counts
    }

    fn set(&mut self, distance: u32) {
        self.seen[(distance / 64) as usize] |= 1 << (distance % 64);
    }

    fn is_set(&self, distance: u32) -> bool {
        self.seen[(distance / 64) as usize] & (1 << (distance % 64)) != 0
    }

    /// Moves every mark `by` positions further from the (new) highest.
    fn shift(&mut self, by: u32) {
        if by >= REORDER_WINDOW {
            self.seen = [0; WINDOW_WORDS];
            return;
        }
        let words = (by / 64) as usize;
        let bits = by % 64;
        for i in (0..WINDOW_WORDS).rev() {
            let low = i.checked_sub(words).map_or(0, |j| self.seen[j]);
            let carry = match i.checked_sub(words + 1) {
                Some(j) if bits > 0 => self.seen[j] >> (64 - bits),
                _ => 0,
            };
            self.seen[i] = if bits > 0 { (low << bits) | carry } else { low };
        }
    }
}

/// All streams one subscriber connection receives, keyed by publisher.
#[derive(Debug, Default)]
pub struct StreamSet {
    streams: HashMap<PublisherId, SeqTracker>,
}

impl StreamSet {
    pub fn observe(&mut self, publisher: PublisherId, seq: Seq) -> Arrival {
        self.streams.entry(publisher).or_default().observe(seq)
    }

    /// Adds this set's counts into `totals`, per publisher.
    pub fn sum_into(&self, totals: &mut HashMap<PublisherId, DeliveryCounts>) {
        for (publisher, tracker) in &self.streams {
            totals.entry(*publisher).or_default().add(&tracker.counts());
        }
    }
}

/// One publisher's outcome: what it sent, what it should have reached, what arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct PublisherTally {
    pub publisher: u32,
    pub sent: u64,
    /// Deliveries each message should make: matching subscriptions, a share group counting once.
    pub fanout: u32,
    pub expected: u64,
    pub lost: u64,
    /// Distinct deliveries beyond `expected`: a routing bug or a foreign publisher.
    pub extra: u64,
    #[serde(flatten)]
    pub counts: DeliveryCounts,
}

impl PublisherTally {
    pub fn new(publisher: PublisherId, sent: u64, fanout: u32, counts: DeliveryCounts) -> Self {
        let expected = sent * u64::from(fanout);
        PublisherTally {
            publisher: publisher.0,
            sent,
            fanout,
            expected,
            lost: expected.saturating_sub(counts.unique),
            extra: counts.unique.saturating_sub(expected),
            counts,
        }
    }
}

/// The run's totals over every publisher.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct DeliveryTotals {
    pub sent: u64,
    pub expected: u64,
    pub lost: u64,
    pub extra: u64,
    #[serde(flatten)]
    pub counts: DeliveryCounts,
}

impl DeliveryTotals {
    pub fn of(tallies: &[PublisherTally]) -> DeliveryTotals {
        let mut totals = DeliveryTotals::default();
        for t in tallies {
            totals.sent += t.sent;
            totals.expected += t.expected;
            totals.lost += t.lost;
            totals.extra += t.extra;
            totals.counts.add(&t.counts);
        }
        totals
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(seqs: &[u32]) -> (SeqTracker, Vec<Arrival>) {
        let mut tracker = SeqTracker::default();
        let arrivals = seqs.iter().map(|&s| tracker.observe(Seq(s))).collect();
        (tracker, arrivals)
    }

    #[test]
    fn in_order_stream_is_clean() {
        let (tracker, arrivals) = feed(&(0..5000).collect::<Vec<_>>());
        assert!(arrivals.iter().all(|a| *a == Arrival::InOrder));
        let c = tracker.counts();
        assert_eq!(
            (c.received, c.unique, c.duplicated, c.out_of_order),
            (5000, 5000, 0, 0)
        );
    }

    #[test]
    fn duplicates_and_reorders_are_told_apart() {
        use Arrival::*;
        let (tracker, arrivals) = feed(&[0, 1, 3, 2, 3, 2, 0, 4]);
        assert_eq!(
            arrivals,
            [InOrder, InOrder, InOrder, OutOfOrder, Duplicate, Duplicate, Duplicate, InOrder]
        );
        let c = tracker.counts();
        assert_eq!(
            (c.received, c.unique, c.duplicated, c.out_of_order),
            (8, 5, 3, 1)
        );
    }

    #[test]
    fn window_edges_are_exact() {
        use Arrival::*;
        let last_inside = REORDER_WINDOW - 1;
        let (_, arrivals) = feed(&[0, REORDER_WINDOW, 1, 1, 0, REORDER_WINDOW - last_inside]);
        // 0 is now exactly REORDER_WINDOW behind: too old to tell, so not a duplicate.
        assert_eq!(
            arrivals,
            [InOrder, InOrder, OutOfOrder, Duplicate, TooOld, Duplicate]
        );
    }

    #[test]
    fn shifts_by_odd_amounts_keep_marks() {
        let mut tracker = SeqTracker::default();
        let mut seqs: Vec<u32> = (0..3000).step_by(7).collect();
        for &s in &seqs {
            assert_eq!(tracker.observe(Seq(s)), Arrival::InOrder);
        }
        // Every recent mark must still be there, every gap must still be free.
        seqs.retain(|&s| s + REORDER_WINDOW > 2996);
        for &s in &seqs {
            assert_eq!(tracker.observe(Seq(s)), Arrival::Duplicate, "seq {s}");
            if s < 2996 {
                assert_eq!(
                    tracker.observe(Seq(s + 1)),
                    Arrival::OutOfOrder,
                    "seq {}",
                    s + 1
                );
            }
        }
    }

    #[test]
    fn loss_is_expected_minus_unique() {
        let mut set = StreamSet::default();
        for s in [0, 1, 2, 4, 4] {
            set.observe(PublisherId(3), Seq(s));
        }
        let mut totals = HashMap::new();
        set.sum_into(&mut totals);
        let tally = PublisherTally::new(PublisherId(3), 6, 1, totals[&PublisherId(3)]);
        assert_eq!(
            (
                tally.expected,
                tally.lost,
                tally.extra,
                tally.counts.duplicated
            ),
            (6, 2, 0, 1)
        );
        let fanned = PublisherTally::new(PublisherId(3), 2, 1, totals[&PublisherId(3)]);
        assert_eq!((fanned.lost, fanned.extra), (0, 2));
        let sum = DeliveryTotals::of(&[tally, fanned]);
        assert_eq!(
            (sum.sent, sum.expected, sum.lost, sum.counts.received),
            (8, 8, 2, 10)
        );
    }
}
