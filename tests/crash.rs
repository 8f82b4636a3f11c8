//! kill -9 (issue #11): the real `ringmq` binary with three shards, killed (SIGKILL) in the
//! middle of QoS 1 and QoS 2 traffic, then started again on the same port and directory.
//!
//! Persistent subscribers (several, so that the kernel spreads them over the shards) take QoS 1
//! and QoS 2 subscriptions; publishers send distinct payloads one at a time and record what the
//! broker acknowledged (PUBACK, PUBREC). After the restart everyone reconnects with Clean
//! Session 0 and finishes what was unfinished, as clients must: a publisher resends its
//! unacknowledged PUBLISH with DUP, or its PUBREL. Then, with `durability = "sync"`:
//! - every message acknowledged before the kill reaches every subscriber;
//! - every QoS 2 message reaches each subscriber exactly once, counting what arrived before the
//!   kill (the subscribers dedupe by packet id until PUBREL, as a receiver must, and no more);
//! - retained messages hold the last value published.
//!
//! With `durability = "batch"` the same run only reports what was lost.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::persist::{Received, TempDir};
use common::process::Process;
use common::{make_publish, text, ConnectOpts, RawClient, RECV_TIMEOUT};
use ringmq::codec::{Ack, Packet, PacketId, Publish, QoS, ReasonCode};

/// How long the traffic runs before the kill.
const TRAFFIC: Duration = Duration::from_millis(1500);

/// Subscribers and publishers.
const SUBSCRIBERS: usize = 4;
const PUBLISHERS: usize = 3;

/// Retained messages set before the traffic: `crash/static/<k>`.
const STATIC_RETAINED: usize = 5;

/// Writes the broker's config file: three shards, `listen` on `port` (0: any), a queue limit
/// no subscriber reaches, no `$SYS`, and `persistence` lines as given.
fn write_config(dir: &Path, port: u16, persistence: &str) -> std::path::PathBuf {
    let path = dir.join(format!("ringmq-{port}.toml"));
    let text = format!(
        "listen = [\"127.0.0.1:{port}\"]\nshards = 3\nsys_interval_s = 0\n{persistence}\n\
         [limits]\nqueued_messages_max = 1000000\n"
    );
    std::fs::write(&path, text).expect("write the config");
    path
}

/// What a subscriber received, over both runs.
#[derive(Debug, Default)]
struct Inbox {
    /// Deliveries per payload.
    delivered: BTreeMap<String, u32>,
    /// QoS 2 ids received and not yet released: a PUBLISH with one of them is a duplicate.
    unreleased: HashSet<PacketId>,
    /// Every QoS 2 PUBLISH received, by payload: (after the kill, packet id, DUP), for the
    /// report on a duplicate.
    qos2_packets: BTreeMap<String, Vec<(bool, u16, bool)>>,
    /// Set once the broker was killed.
    after_kill: bool,
}

impl Inbox {
    /// Handles one packet as a QoS 2 receiver must; false if the connection ended.
    fn handle(&mut self, client: &mut RawClient, packet: Packet) -> bool {
        let reply = match packet {
            Packet::Publish(publish) => {
                let id = publish.packet_id;
                let new = match (publish.qos, id) {
                    (QoS::ExactlyOnce, Some(id)) => self.unreleased.insert(id),
                    _ => true,
                };
                if new {
                    *self.delivered.entry(text(&publish).to_owned()).or_default() += 1;
                }
                if let (QoS::ExactlyOnce, Some(id)) = (publish.qos, id) {
                    let packets = self.qos2_packets.entry(text(&publish).to_owned());
                    packets
                        .or_default()
                        .push((self.after_kill, id.get(), publish.dup));
                }
                match (publish.qos, id) {
                    (QoS::AtLeastOnce, Some(id)) => Packet::PubAck(Ack::new(id)),
                    (QoS::ExactlyOnce, Some(id)) => Packet::PubRec(Ack::new(id)),
                    _ => return true,
                }
            }
            Packet::PubRel(ack) => {
                self.unreleased.remove(&ack.packet_id);
                Packet::PubComp(Ack::new(ack.packet_id))
            }
            other => panic!("a subscriber got {other:?}"),
        };
        client.try_send(&reply).is_ok()
    }
}

/// Subscriber `i`'s connection options: 3.1.1, Clean Session 0.
fn subscriber(i: usize) -> ConnectOpts {
    ConnectOpts::v311(&format!("crash-sub-{i}")).clean(false)
}

/// Receives into `inbox` until the connection ends or, once `stop` is set, a quiet 300 ms.
fn receive(mut client: RawClient, inbox: Arc<Mutex<Inbox>>, stop: Arc<AtomicBool>) {
    loop {
        match client.try_recv(Duration::from_millis(300)) {
            Received::Packet(packet) => {
                let mut inbox = inbox.lock().expect("inbox lock");
                if !inbox.handle(&mut client, packet) {
                    return;
                }
            }
            Received::Timeout if stop.load(Ordering::Relaxed) => return,
            Received::Timeout => {}
            Received::Closed => return,
        }
    }
}

/// What a publisher sent, over both runs.
#[derive(Debug, Default)]
struct Outbox {
    id: String,
    /// Every payload sent, with its QoS, in order.
    sent: Vec<(QoS, String)>,
    /// Payloads the broker acknowledged (PUBACK, PUBREC), with when.
    acked: BTreeMap<String, Instant>,
    /// The PUBLISH sent last, until its PUBACK or PUBREC.
    in_flight: Option<Publish>,
    /// A QoS 2 id that got PUBREC, until its PUBCOMP.
    unreleased: Option<PacketId>,
    /// The PUBREL for `unreleased` went out: if the broker processed it, made that durable
    /// and died before its PUBCOMP left, the PUBREL sent again after the restart rightly gets
    /// 0x92 (Packet Identifier not found): the message was released, exactly once.
    released: bool,
    /// PUBCOMP codes other than success, except that 0x92 (the broker forgot the id).
    bad_pubcomps: Vec<ReasonCode>,
}

impl Outbox {
    /// Waits for the acks that finish the message in flight; false if the connection ended.
    fn finish(&mut self, client: &mut RawClient) -> bool {
        loop {
            let packet = match client.try_recv(RECV_TIMEOUT) {
                Received::Packet(packet) => packet,
                Received::Closed => return false,
                Received::Timeout => panic!("{}: no ack within {RECV_TIMEOUT:?}", self.id),
            };
            let in_flight = self.in_flight.as_ref().and_then(|p| p.packet_id);
            match packet {
                Packet::PubAck(ack) if Some(ack.packet_id) == in_flight => {
                    self.acknowledged();
                    return true;
                }
                Packet::PubRec(ack) if Some(ack.packet_id) == in_flight => {
                    self.acknowledged();
                    self.unreleased = Some(ack.packet_id);
                    self.released = false;
                    if client
                        .try_send(&Packet::PubRel(Ack::new(ack.packet_id)))
                        .is_err()
                    {
                        return false;
                    }
                    self.released = true;
                }
                Packet::PubComp(ack) if Some(ack.packet_id) == self.unreleased => {
                    let forgotten_after_release =
                        self.released && ack.code == ReasonCode::PACKET_IDENTIFIER_NOT_FOUND;
                    if ack.code != ReasonCode::SUCCESS && !forgotten_after_release {
                        self.bad_pubcomps.push(ack.code);
                    }
                    self.unreleased = None;
                    return true;
                }
                other => panic!("{}: unexpected {other:?}", self.id),
            }
        }
    }

    fn acknowledged(&mut self) {
        let publish = self.in_flight.take().expect("a message in flight");
        self.acked.insert(text(&publish).to_owned(), Instant::now());
    }

    /// Publishes until `stop` or the connection ends: QoS 1 retained on `crash/q1/<id>` and
    /// QoS 2 on `crash/q2/<id>` in turn, one at a time.
    fn publish_until(&mut self, client: &mut RawClient, stop: &AtomicBool) {
        while !stop.load(Ordering::Relaxed) {
            let n = self.sent.len();
            let (qos, topic) = if n.is_multiple_of(2) {
                (QoS::AtLeastOnce, format!("crash/q1/{}", self.id))
            } else {
                (QoS::ExactlyOnce, format!("crash/q2/{}", self.id))
            };
            let payload = format!("{}/{n}", self.id);
            let mut publish =
                make_publish(&topic, payload.as_bytes(), qos, qos == QoS::AtLeastOnce);
            publish.packet_id = Some(client.next_packet_id());
            self.sent.push((qos, payload));
            self.in_flight = Some(publish.clone());
            if client.try_send(&Packet::Publish(publish)).is_err() || !self.finish(client) {
                return;
            }
        }
    }

    /// After the restart: resumes the session and finishes what the kill interrupted.
    fn resume(&mut self, addr: SocketAddr) {
        let (mut client, connack) = RawClient::connect(addr, publisher(&self.id));
        assert!(connack.session_present, "{}: session lost", self.id);
        let resend = if let Some(mut publish) = self.in_flight.clone() {
            // [MQTT-4.4.0-1]: the unacknowledged PUBLISH again, with DUP.
            publish.dup = true;
            Packet::Publish(publish)
        } else if let Some(id) = self.unreleased {
            Packet::PubRel(Ack::new(id))
        } else {
            return client.disconnect();
        };
        client.send(&resend);
        assert!(
            self.finish(&mut client),
            "{}: closed after the restart",
            self.id
        );
        client.disconnect();
    }
}

/// Publisher `id`'s connection options: 5.0, a session that outlives the kill.
fn publisher(id: &str) -> ConnectOpts {
    ConnectOpts::v5(id).clean(false).session_expiry(600)
}

/// What one kill-and-restart run saw.
struct Run {
    inboxes: Vec<Arc<Mutex<Inbox>>>,
    outboxes: Vec<Outbox>,
    /// Payloads acknowledged before the kill, with how long before it.
    acked_before_kill: BTreeMap<String, Duration>,
    /// QoS 2 payloads.
    qos2: BTreeSet<String>,
    /// Each subscriber's deliveries per payload when the broker was killed.
    before_kill: Vec<BTreeMap<String, u32>>,
    /// The retained messages after the restart, and what they should be.
    retained: (BTreeMap<String, String>, BTreeMap<String, String>),
}

/// Starts the subscribers' threads on `addr`; `resuming` asserts Session Present.
fn start_subscribers(
    addr: SocketAddr,
    inboxes: &[Arc<Mutex<Inbox>>],
    stop: &Arc<AtomicBool>,
    resuming: bool,
) -> Vec<JoinHandle<()>> {
    inboxes
        .iter()
        .enumerate()
        .map(|(i, inbox)| {
            let (client, connack) = RawClient::connect(addr, subscriber(i));
            assert_eq!(connack.session_present, resuming, "crash-sub-{i}");
            let mut client = client;
            if !resuming {
                client.subscribe(&[
                    ("crash/q1/#", QoS::AtLeastOnce),
                    ("crash/q2/#", QoS::ExactlyOnce),
                ]);
            }
            let (inbox, stop) = (inbox.clone(), stop.clone());
            std::thread::spawn(move || receive(client, inbox, stop))
        })
        .collect()
}

/// Traffic, SIGKILL, restart on the same port, everyone finishes; returns what was seen.
fn kill_mid_traffic(dir: &Path, persistence: &str, args: &[&str]) -> Run {
    let config = write_config(dir, 0, persistence);
    let broker = Process::start(&config, args);
    let addr = broker.addr;
    let mut setter = RawClient::connected(addr, ConnectOpts::v311("static-setter"));
    for k in 0..STATIC_RETAINED {
        let topic = format!("crash/static/{k}");
        setter.publish(
            &topic,
            format!("static-{k}").as_bytes(),
            QoS::AtLeastOnce,
            true,
        );
    }
    setter.disconnect();
    let inboxes: Vec<_> = (0..SUBSCRIBERS).map(|_| Arc::default()).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let receivers = start_subscribers(addr, &inboxes, &stop, false);
    let publishers: Vec<JoinHandle<Outbox>> = (0..PUBLISHERS)
        .map(|i| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let id = format!("crash-pub-{i}");
                let mut client = RawClient::connected(addr, publisher(&id));
                let mut outbox = Outbox {
                    id,
                    ..Outbox::default()
                };
                outbox.publish_until(&mut client, &stop);
                outbox
            })
        })
        .collect();
    std::thread::sleep(TRAFFIC);
    broker.kill();
    let killed = Instant::now();
    let mut outboxes: Vec<Outbox> = publishers
        .into_iter()
        .map(|h| h.join().expect("publisher"))
        .collect();
    receivers
        .into_iter()
        .for_each(|h| h.join().expect("subscriber"));
    let acked_before_kill = outboxes
        .iter()
        .flat_map(|o| o.acked.iter().map(|(p, at)| (p.clone(), killed - *at)))
        .collect();
    let before_kill = inboxes
        .iter()
        .map(|inbox| inbox.lock().expect("inbox lock").delivered.clone())
        .collect();

    for inbox in &inboxes {
        inbox.lock().expect("inbox lock").after_kill = true;
    }
    let config = write_config(dir, addr.port(), persistence);
    let broker = Process::start(&config, args);
    assert_eq!(broker.addr, addr);
    let receivers = start_subscribers(addr, &inboxes, &stop, true);
    outboxes.iter_mut().for_each(|o| o.resume(addr));
    wait_for_everything(&inboxes, &outboxes);
    stop.store(true, Ordering::Relaxed);
    receivers
        .into_iter()
        .for_each(|h| h.join().expect("subscriber"));
    let retained = retained_after(addr, &outboxes);
    let status = broker.terminate();
    assert!(status.success(), "exit after SIGTERM: {status}");
    let qos2 = outboxes
        .iter()
        .flat_map(|o| o.sent.iter())
        .filter(|(qos, _)| *qos == QoS::ExactlyOnce)
        .map(|(_, p)| p.clone())
        .collect();
    Run {
        inboxes,
        outboxes,
        acked_before_kill,
        qos2,
        before_kill,
        retained,
    }
}

/// Waits until every subscriber has every payload sent, or nothing new has arrived for
/// `QUIET` (batch mode loses some for good; waiting the whole 30 s for them would only slow
/// the suite down), at most 30 s; the checks say what is missing.
fn wait_for_everything(inboxes: &[Arc<Mutex<Inbox>>], outboxes: &[Outbox]) {
    const QUIET: Duration = Duration::from_secs(5);
    let deadline = Instant::now() + Duration::from_secs(30);
    let all = || outboxes.iter().flat_map(|o| o.sent.iter().map(|(_, p)| p));
    let mut seen = (0, Instant::now());
    while Instant::now() < deadline && seen.1.elapsed() < QUIET {
        let mut delivered = 0;
        let done = inboxes.iter().fold(true, |done, inbox| {
            let inbox = inbox.lock().expect("inbox lock");
            delivered += inbox.delivered.len();
            done && all().all(|p| inbox.delivered.contains_key(p))
        });
        if done {
            return;
        }
        if delivered != seen.0 {
            seen = (delivered, Instant::now());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The retained messages after the restart, and what they should be: the static ones, and for
/// each publisher the last QoS 1 (retained) payload it sent, which it finished after the
/// restart.
fn retained_after(
    addr: SocketAddr,
    outboxes: &[Outbox],
) -> (BTreeMap<String, String>, BTreeMap<String, String>) {
    let mut reader = RawClient::connected(addr, ConnectOpts::v311("retained-reader"));
    reader.subscribe(&[
        ("crash/static/#", QoS::AtLeastOnce),
        ("crash/q1/#", QoS::AtLeastOnce),
    ]);
    let mut sentinel = RawClient::connected(addr, ConnectOpts::v311("sentinel"));
    sentinel.publish(
        "crash/static/~sentinel",
        b"sentinel",
        QoS::AtLeastOnce,
        false,
    );
    let mut retained = BTreeMap::new();
    loop {
        let got = reader.recv_publish();
        if got.topic.as_str() == "crash/static/~sentinel" {
            break;
        }
        retained.insert(got.topic.as_str().to_owned(), text(&got).to_owned());
    }
    let mut expected: BTreeMap<String, String> = (0..STATIC_RETAINED)
        .map(|k| (format!("crash/static/{k}"), format!("static-{k}")))
        .collect();
    for outbox in outboxes {
        let last = outbox
            .sent
            .iter()
            .rev()
            .find(|(qos, _)| *qos == QoS::AtLeastOnce);
        if let Some((_, payload)) = last {
            expected.insert(format!("crash/q1/{}", outbox.id), payload.clone());
        }
    }
    (retained, expected)
}

impl Run {
    /// Per subscriber: acknowledged payloads never delivered, and QoS 2 payloads delivered
    /// more than once.
    fn losses(&self) -> Vec<(Vec<String>, Vec<String>)> {
        self.inboxes
            .iter()
            .map(|inbox| {
                let inbox = inbox.lock().expect("inbox lock");
                let lost = self
                    .acked_before_kill
                    .keys()
                    .filter(|p| !inbox.delivered.contains_key(*p))
                    .cloned()
                    .collect();
                let twice = inbox
                    .delivered
                    .iter()
                    .filter(|(p, n)| **n > 1 && self.qos2.contains(*p))
                    .map(|(p, _)| p.clone())
                    .collect();
                (lost, twice)
            })
            .collect()
    }

    /// Payloads sent (and finished after the restart) that some subscriber never got.
    fn never_delivered(&self) -> Vec<String> {
        let mut missing = BTreeSet::new();
        for inbox in &self.inboxes {
            let inbox = inbox.lock().expect("inbox lock");
            for outbox in &self.outboxes {
                for (_, payload) in &outbox.sent {
                    if !inbox.delivered.contains_key(payload) {
                        missing.insert(payload.clone());
                    }
                }
            }
        }
        missing.into_iter().collect()
    }

    /// How QoS 2 payload `payload` reached subscriber `i`: whether its publisher had PUBREC
    /// before the kill, the deliveries before and after it, and each PUBLISH as (after the
    /// kill, packet id, DUP).
    fn history(&self, i: usize, payload: &str) -> String {
        let inbox = self.inboxes[i].lock().expect("inbox lock");
        let total = inbox.delivered[payload];
        let packets = &inbox.qos2_packets[payload];
        let before = self.before_kill[i].get(payload).copied().unwrap_or(0);
        let acked = match self.acked_before_kill.get(payload) {
            Some(ago) => format!("PUBREC {ago:?} before the kill"),
            None => "no PUBREC before the kill".to_owned(),
        };
        format!(
            "{payload} ({acked}; delivered {before}x before, {}x after; PUBLISH packets {packets:?})",
            total - before
        )
    }

    fn report(&self, mode: &str) {
        let sent: usize = self.outboxes.iter().map(|o| o.sent.len()).sum();
        eprintln!(
            "{mode}: {sent} messages sent, {} acknowledged before the kill, {SUBSCRIBERS} subscribers",
            self.acked_before_kill.len()
        );
    }
}

/// `durability = "sync"`, kill -9 mid-traffic: every acknowledged message reaches every
/// persistent subscriber after the restart; QoS 2 exactly once, counting deliveries before
/// the kill; after everyone finishes their flows, every message sent is delivered; PUBREL after
/// the restart finds its id (PUBCOMP 0x00) unless the PUBREL sent before the kill was already
/// processed (0x92); retained messages hold the last value.
#[test]
fn sync_loses_nothing_acknowledged_to_kill_9() {
    let dir = TempDir::new("crash-sync");
    let wal = dir.path().join("wal");
    let persistence = format!(
        "persistence_dir = {:?}\ndurability = \"sync\"",
        wal.to_str().expect("utf-8")
    );
    let run = kill_mid_traffic(dir.path(), &persistence, &[]);
    run.report("sync");
    assert!(
        !run.acked_before_kill.is_empty(),
        "no traffic before the kill"
    );
    let mut problems = Vec::new();
    for (i, (lost, twice)) in run.losses().iter().enumerate() {
        if !lost.is_empty() {
            problems.push(format!(
                "crash-sub-{i} lost acknowledged messages: {lost:?}"
            ));
        }
        for payload in twice {
            let history = run.history(i, payload);
            problems.push(format!(
                "crash-sub-{i} got a QoS 2 message twice: {history}"
            ));
        }
    }
    let (retained, expected) = &run.retained;
    if retained != expected {
        problems.push(format!("retained {retained:?}, expected {expected:?}"));
    }
    let missing = run.never_delivered();
    if !missing.is_empty() {
        problems.push(format!("never delivered: {missing:?}"));
    }
    for outbox in &run.outboxes {
        if !outbox.bad_pubcomps.is_empty() {
            problems.push(format!("{}: PUBCOMP {:?}", outbox.id, outbox.bad_pubcomps));
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
}

/// `durability = "batch"` (set on the command line), kill -9 mid-traffic: the broker starts
/// again and every session and the retained messages set before the traffic are there; how
/// many acknowledged messages were lost, and how long before the kill they were acknowledged,
/// is reported, not asserted.
#[test]
fn batch_reports_what_kill_9_loses() {
    let dir = TempDir::new("crash-batch");
    let wal = dir.path().join("wal");
    let wal = wal.to_str().expect("utf-8");
    let run = kill_mid_traffic(
        dir.path(),
        "",
        &["--persistence-dir", wal, "--durability", "batch"],
    );
    run.report("batch");
    for (i, (lost, twice)) in run.losses().iter().enumerate() {
        let oldest = lost
            .iter()
            .filter_map(|p| run.acked_before_kill.get(p))
            .max();
        eprintln!(
            "batch: crash-sub-{i} lost {} acknowledged messages (oldest acknowledged {oldest:?} \
             before the kill), got {} QoS 2 messages twice",
            lost.len(),
            twice.len()
        );
    }
    eprintln!(
        "batch: {} messages never delivered",
        run.never_delivered().len()
    );
    let (retained, expected) = &run.retained;
    let stale: Vec<_> = expected
        .iter()
        .filter(|(topic, payload)| retained.get(*topic) != Some(*payload))
        .map(|(topic, payload)| (topic, payload, retained.get(topic)))
        .collect();
    eprintln!("batch: retained (topic, expected, found) that differ: {stale:?}");
    // Set long before the kill: older than any commit interval.
    for k in 0..STATIC_RETAINED {
        let topic = format!("crash/static/{k}");
        assert_eq!(retained.get(&topic), expected.get(&topic), "{topic}");
    }
}

/// A `--persistence-dir` the broker cannot create exits non-zero naming the path, before it
/// serves.
#[test]
fn unusable_persistence_dir_exits_naming_it() {
    let dir = TempDir::new("crash-bad-dir");
    let file = dir.path().join("plain");
    std::fs::write(&file, b"not a directory").expect("write a plain file");
    let bad = file.join("wal");
    let output = Command::new(env!("CARGO_BIN_EXE_ringmq"))
        .args(["--listen", "127.0.0.1:0", "--persistence-dir"])
        .arg(&bad)
        .output()
        .expect("run ringmq");
    assert!(!output.status.success());
    let log = String::from_utf8_lossy(&output.stdout) + String::from_utf8_lossy(&output.stderr);
    assert!(log.contains(bad.to_str().expect("utf-8")), "{log}");
}
