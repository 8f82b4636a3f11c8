//! Mesh ring: messages per second from one shard to another through `ringmq::mesh`, across two
//! threads, at batch sizes 1, 64 and 1024.
//!
//! `ring` builds a two-shard mesh (`mesh::build::<u64>(2, RING_CAPACITY)`). The producer thread
//! `send`s a batch to shard 1 and `flush`es it, as a shard does once per tick, retrying the
//! flush while the ring is full; the consumer thread `drain`s at most `DRAIN_MAX` at a time (the
//! broker's default `mesh_batch_max`) and spins when the ring is empty. So batch 1 pays a flush
//! and a doorbell check per message, batch 1024 once per 1024.
//!
//! Baseline (`std_sync_channel`): `std::sync::mpsc::sync_channel` with the same capacity, the
//! producer calling `send` per message (blocking when full) and the consumer `recv` (blocking
//! when empty). It has no notion of a batch, so its figure is the same at every size.
//!
//! Throughput is in messages. The clock starts when both threads are ready and stops when the
//! consumer has seen the last message; one consumer thread is spawned per criterion sample,
//! outside the timed span. On a 2-core machine the two threads own both cores, so run this
//! one on a quiet machine.

mod common;

use std::hint::black_box;
use std::sync::mpsc;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ringmq::mesh::{self, Endpoint, ShardId};

/// Messages per ring: the broker's default `mesh_ring_capacity`.
const RING_CAPACITY: usize = 4096;
/// Messages drained per call: the broker's default `mesh_batch_max`.
const DRAIN_MAX: usize = 1024;
const BATCHES: [u64; 3] = [1, 64, 1024];

/// Sends `batches` batches of `batch` messages from `producer` to `consumer` on two threads;
/// returns the time from the start signal to the consumer's last message.
fn ring_run(
    producer: &mut Endpoint<u64>,
    consumer: &mut Endpoint<u64>,
    batches: u64,
    batch: u64,
) -> Duration {
    let total = batches * batch;
    let ready = Barrier::new(2);
    std::thread::scope(|scope| {
        let receiving = scope.spawn(|| {
            ready.wait();
            let (mut got, mut sum) = (0u64, 0u64);
            while got < total {
                let n = consumer.drain(DRAIN_MAX, |_, m| sum = sum.wrapping_add(m));
                if n == 0 {
                    std::hint::spin_loop();
                }
                got += n as u64;
            }
            (Instant::now(), black_box(sum))
        });
        ready.wait();
        let start = Instant::now();
        let mut next = 0u64;
        for _ in 0..batches {
            for _ in 0..batch {
                producer.send(ShardId(1), next);
                next += 1;
            }
            while producer.flush() > 0 {
                std::hint::spin_loop();
            }
        }
        let (end, _) = receiving.join().expect("consumer thread");
        end - start
    })
}

/// The baseline: the same number of messages through a `sync_channel` of the same capacity.
fn channel_run(total: u64) -> Duration {
    let (tx, rx) = mpsc::sync_channel::<u64>(RING_CAPACITY);
    let ready = Barrier::new(2);
    std::thread::scope(|scope| {
        let ready = &ready;
        let receiving = scope.spawn(move || {
            ready.wait();
            let mut sum = 0u64;
            for _ in 0..total {
                sum = sum.wrapping_add(rx.recv().expect("producer outlives the consumer"));
            }
            (Instant::now(), black_box(sum))
        });
        ready.wait();
        let start = Instant::now();
        for n in 0..total {
            tx.send(n).expect("consumer outlives the producer");
        }
        let (end, _) = receiving.join().expect("consumer thread");
        end - start
    })
}

fn mesh_benches(c: &mut Criterion) {
    let mut endpoints = mesh::build::<u64>(2, RING_CAPACITY);
    let mut consumer = endpoints.pop().expect("two endpoints");
    let mut producer = endpoints.pop().expect("two endpoints");
    let mut group = c.benchmark_group("mesh");
    for batch in BATCHES {
        group.throughput(Throughput::Elements(batch));
        group.bench_function(BenchmarkId::new("ring", batch), |b| {
            b.iter_custom(|batches| ring_run(&mut producer, &mut consumer, batches, batch))
        });
        group.bench_function(BenchmarkId::new("std_sync_channel", batch), |b| {
            b.iter_custom(|batches| channel_run(batches * batch))
        });
    }
    assert_eq!(producer.backlog(), 0, "every message crossed");
    group.finish();
}

criterion_group! {
    name = benches;
    config = common::config();
    targets = mesh_benches
}
criterion_main!(benches);
