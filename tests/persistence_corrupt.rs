//! Damaged write-ahead logs (issue #11): the broker starts whatever the damage, keeps every
//! record the damage did not touch, and never restores a damaged record as data.
//!
//! The logs are made by a real broker (retained messages are the probe: each is one record),
//! then damaged the way disks and crashes damage files: bytes flipped, a file cut mid-record,
//! a zeroed page, a segment deleted, an empty or garbage segment. Where each record lies is
//! found by its payload's marker, which the log holds verbatim, so "untouched" is exact: a
//! record is untouched when the next record's marker lies before the damage.
//!
//! After recovery a new retained message and one more restart show the recovered log is whole
//! again.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use common::persist::{start_persistent, start_persistent_with, wal_segments, Segment, TempDir};
use common::{ConnectOpts, RawClient};
use ringmq::codec::QoS;

/// Marker of retained message `i`; none is a substring of another.
fn marker(i: usize) -> String {
    format!("<retained-{i:04}>")
}

/// The payload of retained message `i`: its marker, padded to `size` bytes.
fn payload(i: usize, size: usize) -> Vec<u8> {
    let mut payload = marker(i).into_bytes();
    payload.resize(size.max(payload.len()), b'.');
    payload
}

/// Publishes retained messages `fill/<i>` for `range`, each of `size` bytes, in order.
fn fill(addr: SocketAddr, range: std::ops::Range<usize>, size: usize) {
    let mut publisher = RawClient::connected(addr, ConnectOpts::v311("filler"));
    for i in range {
        let topic = format!("fill/{i:04}");
        publisher.publish(&topic, &payload(i, size), QoS::AtLeastOnce, true);
    }
    publisher.disconnect();
}

/// The retained messages under `fill/#` a new subscriber gets, as index to payload size,
/// checking that each payload is exactly what was published (no damaged record came back as
/// data).
fn retained(addr: SocketAddr, size: usize) -> BTreeMap<usize, usize> {
    let mut sub = RawClient::connected(addr, ConnectOpts::v311("reader"));
    sub.subscribe(&[("fill/#", QoS::AtLeastOnce)]);
    let mut publisher = RawClient::connected(addr, ConnectOpts::v311("sentinel"));
    publisher.publish("fill/~sentinel", b"sentinel", QoS::AtLeastOnce, false);
    let mut found = BTreeMap::new();
    loop {
        let got = sub.recv_publish();
        let topic = got.topic.as_str();
        if topic == "fill/~sentinel" {
            return found;
        }
        let i: usize = topic["fill/".len()..].parse().expect("fill/<index>");
        assert!(
            got.payload[..] == payload(i, size)[..],
            "{topic} came back with a payload other than the one published"
        );
        found.insert(i, got.payload.len());
    }
}

/// Where the markers in `bytes` lie: (offset, index), by offset.
fn markers_in(bytes: &[u8]) -> Vec<(usize, usize)> {
    const PREFIX: &[u8] = b"<retained-";
    let mut found = Vec::new();
    let mut at = 0;
    while let Some(next) = bytes[at..].iter().position(|&b| b == b'<') {
        at += next;
        let rest = &bytes[at..];
        if rest.starts_with(PREFIX) && rest.len() >= PREFIX.len() + 5 {
            let digits = std::str::from_utf8(&rest[PREFIX.len()..PREFIX.len() + 4]);
            if let Some(i) = digits.ok().and_then(|d| d.parse::<usize>().ok()) {
                found.push((at, i));
            }
        }
        at += 1;
    }
    found
}

/// Asserts that `located` (of one or more files) holds each marker of `0..count` once: a
/// retained payload is written once, verbatim.
fn assert_each_once(located: &[&[(usize, usize)]], count: usize) {
    let mut indexes: Vec<usize> = located
        .iter()
        .flat_map(|l| l.iter().map(|&(_, i)| i))
        .collect();
    indexes.sort();
    assert_eq!(indexes, (0..count).collect::<Vec<_>>(), "each marker once");
}

/// The written part of a segment: its bytes up to the preallocated zeros at its end.
fn written(path: &Path) -> Vec<u8> {
    let mut bytes = std::fs::read(path).expect("read a segment");
    let end = bytes
        .iter()
        .rposition(|&b| b != 0)
        .map_or(0, |last| last + 1);
    bytes.truncate(end);
    bytes
}

/// The records of `located` (in one file) that lie wholly before `offset`: those whose next
/// record's marker does, since a record ends before the next one starts.
fn before(located: &[(usize, usize)], offset: usize) -> BTreeSet<usize> {
    located
        .windows(2)
        .filter(|w| w[1].0 <= offset)
        .map(|w| w[0].1)
        .collect()
}

/// The one segment of a 1-shard log.
fn only_segment(dir: &Path) -> Segment {
    let segments = wal_segments(dir);
    assert_eq!(segments.len(), 1, "{segments:?}");
    segments.into_iter().next().expect("one segment")
}

/// Starts a broker on the damaged `dir`, asserts that every index of `kept` is retained, with
/// its payload, and returns what is; then adds one more retained message and checks, over
/// another restart, that the recovered log is whole.
fn recover_and_check(
    dir: &Path,
    size: usize,
    kept: &BTreeSet<usize>,
    count: usize,
) -> BTreeSet<usize> {
    // The broker always starts.
    let broker = start_persistent(dir, 1);
    let found: BTreeSet<usize> = retained(broker.addr, size).into_keys().collect();
    let lost: Vec<_> = kept.difference(&found).collect();
    assert!(lost.is_empty(), "undamaged records lost: {lost:?}");
    fill(broker.addr, count..count + 1, size);
    broker.shutdown();
    let broker = start_persistent(dir, 1);
    let mut expected = found.clone();
    expected.insert(count);
    let again: BTreeSet<usize> = retained(broker.addr, size).into_keys().collect();
    assert_eq!(again, expected, "the second start after the damage");
    broker.shutdown();
    found
}

/// Small records: one segment, a few KiB of data.
const SMALL: usize = 1024;
const SMALL_COUNT: usize = 40;

/// A 1-shard log of [`SMALL_COUNT`] retained messages of [`SMALL`] bytes, closed gracefully;
/// returns its segment's path and where each record lies.
fn small_log(dir: &Path) -> (PathBuf, Vec<(usize, usize)>) {
    let broker = start_persistent(dir, 1);
    fill(broker.addr, 0..SMALL_COUNT, SMALL);
    broker.shutdown();
    let segment = only_segment(dir).path;
    let located = markers_in(&written(&segment));
    assert_each_once(&[&located], SMALL_COUNT);
    (segment, located)
}

/// Overwrites `len` bytes of `path` at `offset` with `f` of the old bytes.
fn damage(path: &Path, offset: usize, len: usize, f: impl Fn(u8) -> u8) {
    use std::os::unix::fs::FileExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .expect("open a segment");
    let mut bytes = vec![0; len];
    file.read_exact_at(&mut bytes, offset as u64)
        .expect("read the bytes to damage");
    for b in &mut bytes {
        *b = f(*b);
    }
    file.write_all_at(&bytes, offset as u64)
        .expect("write the damaged bytes");
}

/// Cuts `path` to `len` bytes.
fn cut(path: &Path, len: usize) {
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .expect("open a segment");
    file.set_len(len as u64).expect("truncate a segment");
}

/// A flipped run of bytes in the middle of the log's last segment (a bad CRC): the broker
/// starts, every record before the damage is kept, and the damaged one does not come back.
#[test]
fn flipped_bytes_in_the_last_segment_lose_only_what_follows() {
    let dir = TempDir::new("corrupt-flipped");
    let (segment, located) = small_log(dir.path());
    let (at, _) = located[SMALL_COUNT / 2];
    damage(&segment, at, 16, |b| !b);
    let kept = before(&located, at);
    assert_eq!(kept.len(), SMALL_COUNT / 2);
    recover_and_check(dir.path(), SMALL, &kept, SMALL_COUNT);
}

/// A segment cut mid-record (a torn write): the broker starts with the records before the cut.
#[test]
fn segment_cut_mid_record_keeps_the_records_before_the_cut() {
    let dir = TempDir::new("corrupt-cut");
    let (segment, located) = small_log(dir.path());
    let (at, _) = located[SMALL_COUNT - 5];
    cut(&segment, at + 10);
    let kept = before(&located, at + 10);
    assert_eq!(kept.len(), SMALL_COUNT - 5);
    recover_and_check(dir.path(), SMALL, &kept, SMALL_COUNT);
}

/// A zero-filled 4 KiB page in the middle of the log (a page lost on power failure): the
/// broker starts with every record before the page.
#[test]
fn zeroed_page_keeps_the_records_before_it() {
    let dir = TempDir::new("corrupt-zeroed");
    let (segment, located) = small_log(dir.path());
    let (at, _) = located[SMALL_COUNT / 2];
    let page = at / 4096 * 4096;
    damage(&segment, page, 4096, |_| 0);
    let kept = before(&located, page);
    assert!(!kept.is_empty(), "the page is past the first record");
    recover_and_check(dir.path(), SMALL, &kept, SMALL_COUNT);
}

/// An empty segment after the real one (a crash right after creating it) and garbage named
/// like a segment before it (moved aside as `.corrupt`): nothing of the real one is lost, and
/// files that are not segments are left alone.
#[test]
fn empty_and_garbage_segments_lose_nothing() {
    let dir = TempDir::new("corrupt-extra-files");
    let (segment, _) = small_log(dir.path());
    let seq = only_segment(dir.path()).seq;
    let named = |seq: u64| dir.path().join(format!("shard0-{seq:010}.wal"));
    std::fs::write(named(seq + 1), b"").expect("an empty segment");
    assert!(seq > 0, "segment numbers leave room below the first");
    let garbage: Vec<u8> = (0..10_000u32).map(|i| (i * 7919 % 251) as u8 + 1).collect();
    let garbage_path = named(seq - 1);
    std::fs::write(&garbage_path, &garbage).expect("a garbage segment");
    let stranger = dir.path().join("README");
    std::fs::write(&stranger, b"not a segment").expect("an unrelated file");
    assert!(segment.exists());
    let all: BTreeSet<usize> = (0..SMALL_COUNT).collect();
    recover_and_check(dir.path(), SMALL, &all, SMALL_COUNT);
    let aside = PathBuf::from(format!("{}.corrupt", garbage_path.display()));
    assert!(aside.exists(), "the garbage segment was not moved aside");
    assert!(stranger.exists(), "an unrelated file was touched");
}

/// Payloads big enough that a 1-shard log takes two segments (of 64 MiB, the segment size).
const BIG: usize = 1_000_000;
const BIG_COUNT: usize = 72;

/// A two-segment 1-shard log of [`BIG_COUNT`] retained messages of [`BIG`] bytes (70 MB),
/// closed gracefully; its segments and where each record lies in each.
fn big_log(dir: &Path) -> [(PathBuf, Vec<(usize, usize)>); 2] {
    let broker = start_persistent(dir, 1);
    fill(broker.addr, 0..BIG_COUNT, BIG);
    broker.shutdown();
    let segments = wal_segments(dir);
    assert_eq!(segments.len(), 2, "{segments:?}");
    let located: Vec<(PathBuf, Vec<(usize, usize)>)> = segments
        .into_iter()
        .map(|s| {
            let located = markers_in(&written(&s.path));
            (s.path, located)
        })
        .collect();
    assert_each_once(&[&located[0].1, &located[1].1], BIG_COUNT);
    located.try_into().expect("two segments")
}

/// The first offset of `needle` in `haystack`.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    let mut at = 0;
    while let Some(next) = haystack[at..].iter().position(|&b| b == needle[0]) {
        at += next;
        if haystack[at..].starts_with(needle) {
            return Some(at);
        }
        at += 1;
    }
    None
}

fn indexes(located: &[(usize, usize)]) -> BTreeSet<usize> {
    located.iter().map(|&(_, i)| i).collect()
}

/// A corrupt record in the first of two segments: the broker starts, moves that segment aside
/// as `.corrupt`, keeps the records before the damage, and still reads the later segment.
#[test]
fn corrupt_middle_segment_is_moved_aside_and_later_segments_are_read() {
    let dir = TempDir::new("corrupt-middle");
    let [(first, in_first), (_, in_last)] = big_log(dir.path());
    let (at, _) = in_first[in_first.len() / 2];
    damage(&first, at + 100, 64, |b| b ^ 0x5a);
    let mut kept = before(&in_first, at + 100);
    kept.extend(indexes(&in_last));
    recover_and_check(dir.path(), BIG, &kept, BIG_COUNT);
    let aside = PathBuf::from(format!("{}.corrupt", first.display()));
    assert!(aside.exists(), "{} was not moved aside", first.display());
}

/// The first of two segments deleted: the broker starts with what the other one holds.
#[test]
fn deleted_segment_loses_only_its_own_records() {
    let dir = TempDir::new("corrupt-deleted");
    let [(first, _), (_, in_last)] = big_log(dir.path());
    std::fs::remove_file(&first).expect("delete the first segment");
    recover_and_check(dir.path(), BIG, &indexes(&in_last), BIG_COUNT);
}

/// The last of two segments cut mid-record: every record of the first and those of the last
/// before the cut are kept.
#[test]
fn last_of_two_segments_cut_mid_record_keeps_the_rest() {
    let dir = TempDir::new("corrupt-cut-last");
    let [(_, in_first), (last, in_last)] = big_log(dir.path());
    assert!(in_last.len() >= 2, "{in_last:?}");
    let (at, _) = in_last[in_last.len() - 1];
    cut(&last, at + 1000);
    let mut kept = indexes(&in_first);
    kept.extend(before(&in_last, at));
    let found = recover_and_check(dir.path(), BIG, &kept, BIG_COUNT);
    assert!(found.len() < BIG_COUNT, "the cut record came back");
}

/// Sessions on three shards; one shard's log ruined from its first byte: the broker starts,
/// and every session whose records are in the other shards' logs comes back whole, with the
/// message queued for it.
#[test]
fn one_ruined_shard_log_leaves_the_other_shards_sessions_whole() {
    let dir = TempDir::new("corrupt-one-shard");
    let ids: Vec<String> = (0..9).map(|i| format!("whole-{i}")).collect();
    let broker = start_persistent_with(dir.path(), 3, |_| {});
    for (i, id) in ids.iter().enumerate() {
        let mut client = RawClient::connected(broker.shard(i), ConnectOpts::v311(id).clean(false));
        client.subscribe(&[(format!("whole/{i}").as_str(), QoS::AtLeastOnce)]);
        client.disconnect();
    }
    let mut publisher = RawClient::connected(broker.shard(0), ConnectOpts::v311("pub"));
    for (i, id) in ids.iter().enumerate() {
        let topic = format!("whole/{i}");
        publisher.publish(&topic, id.as_bytes(), QoS::AtLeastOnce, false);
    }
    drop(publisher);
    broker.shutdown();

    // Ruin the log of the shard that holds `whole-0`.
    let segments = wal_segments(dir.path());
    let contents: Vec<(&Segment, Vec<u8>)> =
        segments.iter().map(|s| (s, written(&s.path))).collect();
    let victim = contents
        .iter()
        .find(|(_, bytes)| find(bytes, ids[0].as_bytes()).is_some())
        .expect("a segment holds whole-0")
        .0
        .shard;
    let mut survivors: Vec<&String> = ids.iter().collect();
    for (segment, bytes) in contents.iter().filter(|(s, _)| s.shard == victim) {
        survivors.retain(|id| find(bytes, id.as_bytes()).is_none());
        damage(&segment.path, 0, bytes.len(), |b| b ^ 0xa5);
    }
    assert!(!survivors.is_empty(), "every session was on shard {victim}");

    let broker = start_persistent(dir.path(), 3);
    for id in survivors {
        let i: usize = id["whole-".len()..].parse().expect("index");
        let opts = ConnectOpts::v311(id).clean(false);
        let (mut client, connack) = RawClient::connect(broker.shard(i + 1), opts);
        assert!(
            connack.session_present,
            "{id} lost with shard {victim}'s log"
        );
        let got = client.recv_publish();
        assert_eq!(&got.payload[..], id.as_bytes(), "{id}'s queued message");
    }
    broker.shutdown();
}
