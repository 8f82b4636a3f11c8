//! ACL file checks on the publish path: `Acl::may_read` and `Acl::may_publish` against a file
//! of 1,000 users, each with one `topic readwrite site/{i}/#` rule, plus 10 patterns.
//!
//! Four checks, each cycling through 1,024 different users so that the user lookup is not
//! always the same cache line:
//! - `read_own_rule`: decided by the user's own rule (hash lookup plus one match);
//! - `publish_pattern`: the own rule misses, so the patterns decide (denies first, then the
//!   write grants, substituting `%c`/`%u` on the fly);
//! - `read_denied`: nothing matches, so every list is scanned: the worst case;
//! - `read_anonymous_pattern`: an anonymous client allowed by a `%c` pattern.
//!
//! Baseline (`mosquitto_like`): the `read_denied` check done the way mosquitto 2.0 does it
//! per message: each pattern substituted into a freshly allocated string, then matched.

mod common;

use std::hint::black_box;
use std::path::Path;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ringmq::auth::acl::{Acl, Subject};
use ringmq::topic::{TopicFilter, TopicName};

/// Users in the file, each with one rule.
const USERS: usize = 1000;
/// Distinct (subject, topic) pairs each benchmark cycles through.
const CASES: usize = 1024;

const PATTERNS: [&str; 10] = [
    "pattern deny clients/%c/secret",
    "pattern deny users/%u/private/#",
    "pattern read clients/%c/cmd/#",
    "pattern write clients/%c/state",
    "pattern readwrite users/%u/inbox/+",
    "pattern read shared/%u/%c",
    "pattern write telemetry/%c/+/raw",
    "pattern read dev/%c-in",
    "pattern write dev/%c-out",
    "pattern read fleet/+/%c/config",
];

fn file_text() -> String {
    let mut text = PATTERNS.join("\n") + "\n";
    for i in 0..USERS {
        text += &format!("user dev{i}\ntopic readwrite site/{i}/#\n");
    }
    text
}

/// Usernames, client ids and topics for case `n`, owned so the subjects can borrow them.
struct Case {
    username: String,
    client_id: String,
    own_topic: String,
    pattern_topic: String,
}

fn cases() -> Vec<Case> {
    (0..CASES)
        .map(|n| {
            let i = (n * 7919) % USERS;
            Case {
                username: format!("dev{i}"),
                client_id: format!("client-{i}"),
                own_topic: format!("site/{i}/temp"),
                pattern_topic: format!("clients/client-{i}/state"),
            }
        })
        .collect()
}

impl Case {
    fn subject(&self) -> Subject<'_> {
        Subject {
            username: Some(&self.username),
            client_id: &self.client_id,
        }
    }
}

/// mosquitto's per-message pattern walk: a new string per pattern, then a match.
fn mosquitto_like(patterns: &[(bool, &str)], who: Subject<'_>, topic: &TopicName) -> bool {
    let mut allowed = false;
    for (deny, pattern) in patterns {
        let mut text = pattern.replace("%c", who.client_id);
        text = text.replace("%u", who.username.unwrap_or(""));
        let matched = TopicFilter::try_from(text.as_str()).is_ok_and(|f| f.matches(topic));
        if matched && *deny {
            return false;
        }
        allowed |= matched;
    }
    allowed
}

fn bench_acl(c: &mut Criterion) {
    let acl = Acl::parse(&file_text(), Path::new("bench.acl")).expect("valid file");
    assert_eq!(acl.rule_count(), USERS + PATTERNS.len());
    let cases = cases();
    for case in &cases {
        assert!(acl.may_read(case.subject(), &case.own_topic));
        assert!(acl.may_publish(case.subject(), &case.pattern_topic));
        assert!(!acl.may_read(case.subject(), "nowhere/x"));
    }

    let mut group = c.benchmark_group("acl");
    group.throughput(Throughput::Elements(1));
    let mut next = 0usize;
    group.bench_function("read_own_rule", |b| {
        b.iter(|| {
            next = (next + 1) % CASES;
            let case = &cases[next];
            acl.may_read(black_box(case.subject()), black_box(&case.own_topic))
        })
    });
    group.bench_function("publish_pattern", |b| {
        b.iter(|| {
            next = (next + 1) % CASES;
            let case = &cases[next];
            acl.may_publish(black_box(case.subject()), black_box(&case.pattern_topic))
        })
    });
    group.bench_function("read_denied", |b| {
        b.iter(|| {
            next = (next + 1) % CASES;
            acl.may_read(black_box(cases[next].subject()), black_box("nowhere/x"))
        })
    });
    group.bench_function("read_anonymous_pattern", |b| {
        b.iter(|| {
            next = (next + 1) % CASES;
            let case = &cases[next];
            let who = Subject {
                username: None,
                client_id: &case.client_id,
            };
            acl.may_read(black_box(who), black_box("dev/client-7-in"))
        })
    });
    let patterns: Vec<(bool, &str)> = PATTERNS
        .iter()
        .map(|line| {
            let mut words = line.split(' ').skip(1);
            let access = words.next().unwrap_or_default();
            (access == "deny", words.next().unwrap_or_default())
        })
        .collect();
    let denied = TopicName::try_from("nowhere/x").expect("valid topic");
    group.bench_function("mosquitto_like", |b| {
        b.iter(|| {
            next = (next + 1) % CASES;
            mosquitto_like(
                &patterns,
                black_box(cases[next].subject()),
                black_box(&denied),
            )
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = common::config();
    targets = bench_acl
}
criterion_main!(benches);
