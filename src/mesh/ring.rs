//! The N x N mesh of bounded single-producer single-consumer rings, and the doorbell that
//! wakes a shard when work arrives for it.
//!
//! Every ordered pair of shards (i, j), i != j, has one `rtrb` ring: only shard i pushes into
//! it and only shard j pops from it, so no ring ever needs a lock or a CAS loop. `rtrb` keeps
//! the head and tail indexes on separate cache lines.
//!
//! Sending is batched: [`Endpoint::send`] only appends to a local per-peer outbox; once per tick
//! [`Endpoint::flush`] moves as much as fits into each ring and rings the doorbell of each peer
//! that received something *and* is asleep. A burst of a thousand messages costs one wakeup.
//!
//! # The doorbell protocol
//! A consumer that finds all its rings empty sets `idle`, re-checks the rings, and only then
//! sleeps on its `Notify`. A producer that pushed swaps `idle` to false and notifies only if it
//! was set. Both sides use SeqCst, so either the consumer's re-check sees the new message or
//! the producer sees `idle` and notifies; `Notify` keeps one permit, so a notify that lands
//! before the sleep is not lost.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::sync::Notify;

/// A shard's index, 0..N.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ShardId(pub u16);

impl ShardId {
    pub fn index(self) -> usize {
        usize::from(self.0)
    }
}

/// Wakes one shard. Shared by every shard that may send to it.
#[derive(Debug, Default)]
pub struct Doorbell {
    notify: Notify,
    /// Set by the owner just before it sleeps; cleared by whoever wakes it.
    idle: AtomicBool,
}

impl Doorbell {
    /// Wakes the owner if it is asleep (or about to be). Returns whether it rang.
    pub fn ring(&self) -> bool {
        if self.idle.swap(false, Ordering::SeqCst) {
            self.notify.notify_one();
            true
        } else {
            false
        }
    }

    /// Sleeps until rung. Call after [`Endpoint::prepare_sleep`] returned true.
    pub async fn sleep(&self) {
        self.notify.notified().await;
        self.idle.store(false, Ordering::SeqCst);
    }

    /// Wakes the owner unconditionally (shutdown, or a local event the owner must see).
    pub fn ring_always(&self) {
        self.idle.store(false, Ordering::SeqCst);
        self.notify.notify_one();
    }
}

/// One direction of one pair: the producer side plus messages not yet pushed.
struct Outbox<T> {
    producer: rtrb::Producer<T>,
    /// Messages sent this tick, or that did not fit in the ring. Bounded by the caller's
    /// backpressure: see [`Endpoint::backlog`].
    pending: VecDeque<T>,
}

/// One shard's view of the mesh: a producer to every peer and a consumer from every peer.
pub struct Endpoint<T> {
    id: ShardId,
    /// Indexed by destination shard; `None` for this shard itself.
    outboxes: Vec<Option<Outbox<T>>>,
    /// Indexed by source shard; `None` for this shard itself.
    inboxes: Vec<Option<rtrb::Consumer<T>>>,
    doorbells: Arc<[Doorbell]>,
    /// Where the next drain starts, so that no peer starves the others.
    next_inbox: usize,
}

/// Builds the mesh for `shards` shards with rings of `ring_capacity` messages each.
pub fn build<T>(shards: usize, ring_capacity: usize) -> Vec<Endpoint<T>> {
    assert!(
        shards >= 1 && shards <= usize::from(u16::MAX),
        "shard count out of range"
    );
    assert!(ring_capacity >= 1, "a ring needs room for one message");
    let doorbells: Arc<[Doorbell]> = (0..shards).map(|_| Doorbell::default()).collect();
    let mut outboxes: Vec<Vec<Option<Outbox<T>>>> = (0..shards)
        .map(|_| (0..shards).map(|_| None).collect())
        .collect();
    let mut inboxes: Vec<Vec<Option<rtrb::Consumer<T>>>> = (0..shards)
        .map(|_| (0..shards).map(|_| None).collect())
        .collect();
    for from in 0..shards {
        for to in 0..shards {
            if from != to {
                let (producer, consumer) = rtrb::RingBuffer::new(ring_capacity);
                outboxes[from][to] = Some(Outbox {
                    producer,
                    pending: VecDeque::new(),
                });
                inboxes[to][from] = Some(consumer);
            }
        }
    }
    outboxes
        .into_iter()
        .zip(inboxes)
        .enumerate()
        .map(|(i, (outboxes, inboxes))| Endpoint {
            id: ShardId(i as u16),
            outboxes,
            inboxes,
            doorbells: doorbells.clone(),
            next_inbox: 0,
        })
        .collect()
}

impl<T> Endpoint<T> {
    pub fn id(&self) -> ShardId {
        self.id
    }

    pub fn shard_count(&self) -> usize {
        self.outboxes.len()
    }

    /// This shard's own doorbell (for waking itself from another thread, e.g. shutdown).
    pub fn doorbell(&self) -> &Doorbell {
        &self.doorbells[self.id.index()]
    }

    pub fn doorbells(&self) -> Arc<[Doorbell]> {
        self.doorbells.clone()
    }

    /// Queues `message` for `to`. Nothing crosses threads until [`Endpoint::flush`].
    pub fn send(&mut self, to: ShardId, message: T) {
        let outbox = self.outboxes[to.index()]
            .as_mut()
            .expect("a shard never sends to itself");
        outbox.pending.push_back(message);
    }

    /// Moves pending messages into the rings, in order, and wakes each peer that got some.
    /// Returns how many messages are still pending because a ring was full.
    pub fn flush(&mut self) -> usize {
        let mut left = 0;
        for (to, outbox) in self.outboxes.iter_mut().enumerate() {
            let Some(outbox) = outbox else { continue };
            let mut pushed = false;
            while let Some(message) = outbox.pending.pop_front() {
                match outbox.producer.push(message) {
                    Ok(()) => pushed = true,
                    Err(rtrb::PushError::Full(message)) => {
                        outbox.pending.push_front(message);
                        break;
                    }
                }
            }
            left += outbox.pending.len();
            if pushed {
                self.doorbells[to].ring();
            }
        }
        left
    }

    /// Messages waiting locally for room in some ring (the backpressure signal).
    pub fn backlog(&self) -> usize {
        self.outboxes
            .iter()
            .flatten()
            .map(|o| o.pending.len())
            .sum()
    }

    /// Messages in this shard's outgoing rings that the peers have not taken yet.
    pub fn ring_depth(&self) -> usize {
        self.outboxes
            .iter()
            .flatten()
            .map(|o| o.producer.buffer().capacity() - o.producer.slots())
            .sum()
    }

    /// Pops at most `max` messages, round-robin over the peers, into `f`. Returns the count.
    pub fn drain(&mut self, max: usize, mut f: impl FnMut(ShardId, T)) -> usize {
        let peers = self.inboxes.len();
        let mut taken = 0;
        let mut idle_peers = 0;
        while taken < max && idle_peers < peers {
            let from = self.next_inbox;
            self.next_inbox = (self.next_inbox + 1) % peers;
            match self.inboxes[from].as_mut().map(|c| c.pop()) {
                Some(Ok(message)) => {
                    idle_peers = 0;
                    taken += 1;
                    f(ShardId(from as u16), message);
                }
                _ => idle_peers += 1,
            }
        }
        taken
    }

    fn inboxes_empty(&self) -> bool {
        self.inboxes.iter().flatten().all(|c| c.is_empty())
    }

    /// Marks this shard as going to sleep. Returns false, and stays awake, if a message
    /// arrived meanwhile. After `true`, sleep with [`Doorbell::sleep`] on [`Endpoint::doorbells`]
    /// (the endpoint itself need not stay borrowed while asleep).
    pub fn prepare_sleep(&self) -> bool {
        let bell = self.doorbell();
        bell.idle.store(true, Ordering::SeqCst);
        if self.inboxes_empty() {
            return true;
        }
        bell.idle.store(false, Ordering::SeqCst);
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_arrive_in_order_per_pair() {
        let mut mesh = build::<u32>(3, 4);
        let mut c = mesh.pop().expect("three endpoints");
        let mut b = mesh.pop().expect("three endpoints");
        let mut a = mesh.pop().expect("three endpoints");
        for n in 0..3 {
            a.send(ShardId(2), n);
            b.send(ShardId(2), 100 + n);
        }
        assert_eq!(a.flush(), 0);
        assert_eq!(b.flush(), 0);
        let mut got = Vec::new();
        c.drain(100, |from, m| got.push((from.0, m)));
        let from_a: Vec<u32> = got
            .iter()
            .filter(|(f, _)| *f == 0)
            .map(|(_, m)| *m)
            .collect();
        let from_b: Vec<u32> = got
            .iter()
            .filter(|(f, _)| *f == 1)
            .map(|(_, m)| *m)
            .collect();
        assert_eq!(from_a, vec![0, 1, 2]);
        assert_eq!(from_b, vec![100, 101, 102]);
    }

    #[test]
    fn a_full_ring_keeps_the_rest_pending_in_order() {
        let mut mesh = build::<u32>(2, 2);
        let mut b = mesh.pop().expect("two endpoints");
        let mut a = mesh.pop().expect("two endpoints");
        for n in 0..5 {
            a.send(ShardId(1), n);
        }
        assert_eq!(a.flush(), 3, "capacity 2: three left");
        assert_eq!(a.backlog(), 3);
        let mut got = Vec::new();
        b.drain(10, |_, m| got.push(m));
        assert_eq!(a.flush(), 1);
        b.drain(10, |_, m| got.push(m));
        assert_eq!(a.flush(), 0);
        b.drain(10, |_, m| got.push(m));
        assert_eq!(got, vec![0, 1, 2, 3, 4]);
    }

    #[test]
    fn drain_respects_its_maximum() {
        let mut mesh = build::<u32>(2, 64);
        let mut b = mesh.pop().expect("two endpoints");
        let mut a = mesh.pop().expect("two endpoints");
        for n in 0..10 {
            a.send(ShardId(1), n);
        }
        a.flush();
        assert_eq!(b.drain(4, |_, _| {}), 4);
        assert_eq!(b.drain(100, |_, _| {}), 6);
    }

    #[test]
    fn doorbell_rings_only_a_sleeping_shard() {
        let bell = Doorbell::default();
        assert!(!bell.ring(), "awake: no notify needed");
        bell.idle.store(true, Ordering::SeqCst);
        assert!(bell.ring());
        assert!(!bell.ring(), "one wakeup per sleep");
    }

    #[test]
    fn wakeup_crosses_threads() {
        let mut mesh = build::<u32>(2, 8);
        let mut b = mesh.pop().expect("two endpoints");
        let mut a = mesh.pop().expect("two endpoints");
        let consumer = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("rt");
            rt.block_on(async {
                let mut got = Vec::new();
                let bells = b.doorbells();
                while got.len() < 100 {
                    if b.prepare_sleep() {
                        bells[1].sleep().await;
                    }
                    b.drain(usize::MAX, |_, m| got.push(m));
                }
                got
            })
        });
        for n in 0..100u32 {
            a.send(ShardId(1), n);
            while a.flush() > 0 {
                std::thread::yield_now();
            }
        }
        let got = consumer.join().expect("consumer thread");
        assert_eq!(got, (0..100).collect::<Vec<_>>());
    }
}
