//! Subscription trie: `SubscriptionTrie::for_each_match` at 10^3, 10^4, 10^5 and 10^6
//! subscriptions, and the cost of one subscribe plus unsubscribe at each size.
//!
//! The subscriptions have a realistic IoT shape: sites of 100 subscriptions each, where
//! subscription `i` belongs to site `i / 100`, slot `d = i % 100`, and is
//! - `site/{s}/device/{d}/temp` for d < 90 (90 %: each device's own topic, exact);
//! - `site/{s}/device/+/temp` for 90 <= d < 98 (8 %: per-site dashboards, `+`);
//! - `site/{s}/#` for d >= 98 (2 %: per-site loggers, `#`).
//!
//! A published topic `site/{s}/device/{d}/temp` therefore matches about 11 subscribers (its
//! device, 8 dashboards, 2 loggers). Topics are drawn from a fixed pseudo-random list, so every
//! size walks cold and warm parts of the trie alike.
//!
//! Baseline (`ahash_exact`): the same topics looked up in an `ahash::AHashMap` from exact topic
//! to subscriber list built from the same subscriptions with the wildcards left out, visiting
//! each subscriber as `for_each_match` does. That is the zero-logic forwarder's index from the
//! issue: what a match costs when there are no wildcards to honour.
//!
//! Each size is one group and builds its trie once (the 10^6 build takes a few seconds).
//!
//! `trie/p2p_match/10` is the point-to-point load on its own: 10 devices, each subscribed to
//! its own exact topic and nothing else, so the trie holds no wildcard filter at all.

mod common;

use std::hint::black_box;

use ahash::AHashMap;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ringmq::topic::{SubscriptionTrie, TopicFilter};

/// Subscriptions per site; see the module doc for how they split into exact, `+` and `#`.
const SITE_SUBSCRIPTIONS: u32 = 100;
/// Slots below this subscribe to their own device topic.
const EXACT_SLOTS: u32 = 90;
/// Slots from `EXACT_SLOTS` below this subscribe with `+`; the rest with `#`.
const SINGLE_SLOTS_END: u32 = 98;
/// Distinct published topics cycled through by the match benchmarks.
const TOPICS: usize = 4096;
/// Distinct new filters cycled through by the subscribe/unsubscribe benchmark.
const NEW_FILTERS: usize = 1024;
/// Publishers, each with one subscriber on its own exact topic, in the point-to-point case.
const P2P_DEVICES: u32 = 10;

/// The filter of subscription `i`.
fn filter_text(i: u32) -> String {
    let (site, slot) = (i / SITE_SUBSCRIPTIONS, i % SITE_SUBSCRIPTIONS);
    if slot < EXACT_SLOTS {
        format!("site/{site}/device/{slot}/temp")
    } else if slot < SINGLE_SLOTS_END {
        format!("site/{site}/device/+/temp")
    } else {
        format!("site/{site}/#")
    }
}

/// A small deterministic generator (xorshift64*), so that every run draws the same topics.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u32) -> u32 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        ((self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 32) % u64::from(n)) as u32
    }
}

/// Topics that devices of existing sites publish to.
fn topics(subscriptions: u32) -> Vec<String> {
    let sites = subscriptions.div_ceil(SITE_SUBSCRIPTIONS);
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    (0..TOPICS)
        .map(|_| {
            let (site, device) = (rng.below(sites), rng.below(SITE_SUBSCRIPTIONS));
            format!("site/{site}/device/{device}/temp")
        })
        .collect()
}

/// The trie under test and the baseline's exact-topic map, from the same subscriptions.
fn build(subscriptions: u32) -> (SubscriptionTrie<u32, u8>, AHashMap<String, Vec<u32>>) {
    let mut trie = SubscriptionTrie::new();
    let mut exact: AHashMap<String, Vec<u32>> = AHashMap::new();
    for i in 0..subscriptions {
        let text = filter_text(i);
        let filter = TopicFilter::try_from(text.as_str()).expect("benchmark filters are valid");
        if !filter.has_wildcards() {
            exact.entry(text).or_default().push(i);
        }
        trie.insert(&filter, i, 1);
    }
    assert_eq!(trie.len(), subscriptions as usize);
    (trie, exact)
}

fn bench_size(c: &mut Criterion, subscriptions: u32) {
    let (mut trie, exact) = build(subscriptions);
    let topics = topics(subscriptions);
    let mut matched = 0u64;
    for topic in &topics {
        trie.for_each_match(topic, |_, _| matched += 1);
    }
    assert!(matched >= topics.len() as u64, "every topic matches");

    let mut group = c.benchmark_group("trie");
    group.throughput(Throughput::Elements(1));
    let mut next = 0usize;
    group.bench_function(BenchmarkId::new("match", subscriptions), |b| {
        b.iter(|| {
            next = (next + 1) % TOPICS;
            let mut sum = 0u32;
            trie.for_each_match(black_box(&topics[next]), |key, value| {
                sum = sum.wrapping_add(key ^ u32::from(*value));
            });
            sum
        })
    });
    group.bench_function(BenchmarkId::new("ahash_exact", subscriptions), |b| {
        b.iter(|| {
            next = (next + 1) % TOPICS;
            let mut sum = 0u32;
            if let Some(keys) = exact.get(black_box(topics[next].as_str())) {
                keys.iter().for_each(|key| sum = sum.wrapping_add(*key));
            }
            sum
        })
    });
    // A new device subscribing to its own topic and leaving again: interns a level, creates
    // and prunes a node, so the trie is the same after every iteration.
    let new_filters: Vec<TopicFilter> = topics
        .iter()
        .take(NEW_FILTERS)
        .enumerate()
        .map(|(n, topic)| {
            let text = topic.replace("/device/", &format!("/device/new{n}-"));
            TopicFilter::try_from(text.as_str()).expect("benchmark filters are valid")
        })
        .collect();
    let key = subscriptions;
    group.bench_function(
        BenchmarkId::new("subscribe_unsubscribe", subscriptions),
        |b| {
            b.iter(|| {
                next = (next + 1) % NEW_FILTERS;
                let filter = black_box(&new_filters[next]);
                trie.insert(filter, key, 1);
                trie.remove(filter, &key)
            })
        },
    );
    assert_eq!(trie.len(), subscriptions as usize, "trie unchanged");
    group.finish();
}

/// Point to point: only exact filters, each topic matching one subscriber.
fn bench_p2p(c: &mut Criterion) {
    let topics: Vec<String> = (0..P2P_DEVICES)
        .map(|device| format!("site/17/device/{device}/temp"))
        .collect();
    let mut trie = SubscriptionTrie::new();
    for (key, topic) in (0..).zip(&topics) {
        let filter = TopicFilter::try_from(topic.as_str()).expect("benchmark filters are valid");
        trie.insert(&filter, key, 1u8);
    }
    let mut group = c.benchmark_group("trie");
    group.throughput(Throughput::Elements(1));
    let mut next = 0usize;
    group.bench_function(BenchmarkId::new("p2p_match", P2P_DEVICES), |b| {
        b.iter(|| {
            next = (next + 1) % topics.len();
            let mut sum = 0u32;
            trie.for_each_match(black_box(&topics[next]), |key, value| {
                sum = sum.wrapping_add(key ^ u32::from(*value));
            });
            sum
        })
    });
    group.finish();
}

fn trie_benches(c: &mut Criterion) {
    bench_p2p(c);
    for subscriptions in [1_000, 10_000, 100_000, 1_000_000] {
        bench_size(c, subscriptions);
    }
}

criterion_group! {
    name = benches;
    config = common::config();
    targets = trie_benches
}
criterion_main!(benches);
