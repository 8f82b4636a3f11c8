//! What the shard writes to its log and when (`crate::persist` has the log itself).
//!
//! - A persistent session whose state may have changed is marked dirty; at the next commit
//!   its whole image is written once, however many packets changed it. A session that ends,
//!   stops being persistent or leaves for another shard gets a `SessionEnd` at once.
//! - A retained update is logged by the shard its topic hashes to, so each is written once
//!   although every shard keeps a copy.
//! - `sync` mode: a connection that sent a QoS 1/2 PUBLISH or a SUBSCRIBE has its output
//!   (the PUBACK, PUBREC or SUBACK, and what follows) held until the commit that covers it is
//!   on disk here and on every shard it forwarded publishes to. Each shard confirms what it
//!   received from a peer with [`ShardMessage::Durable`] once its own commit is synced.
//! - Compaction writes every live session and owned retained topic again, [`COMPACT_STEP`]
//!   per commit, then the old segments go (`persist::wal`).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use ahash::AHashMap;

use crate::config::Durability;
use crate::mesh::ShardId;
use crate::persist::wal::COMPACT_STEP;
use crate::persist::{Record, ShardStart, Wal, WalWrite};
use crate::session::{Message, Session};
use crate::topic::RetainStamp;

use super::{ConnectionId, SessionKey, Shard, ShardMessage};

/// Slots of the session slab a compaction step may look at, per session it writes: bounds a
/// step over a sparse slab.
const COMPACT_SCAN_FACTOR: usize = 16;

/// A commit that is written but not yet durable everywhere it must be.
#[derive(Debug)]
struct Commit {
    epoch: u64,
    /// Logical log position the commit ended at.
    end: u64,
    /// Publishes forwarded to each peer by then; each must confirm as many.
    forwarded: Vec<u64>,
}

/// A compaction's progress through the live state.
#[derive(Debug)]
struct Cursor {
    next_slot: usize,
    retained: Vec<Arc<Message>>,
}

/// One shard's persistence state.
#[derive(Debug)]
pub(super) struct ShardPersist {
    wal: Wal,
    mode: Durability,
    /// Sessions to image at the next commit (`SessionEntry::log_dirty` avoids repeats).
    dirty: Vec<SessionKey>,
    /// The epoch the next commit closes; holds taken now wait for it.
    epoch: u64,
    /// The last epoch durable everywhere.
    durable_epoch: u64,
    commits: VecDeque<Commit>,
    /// `sync`: connections whose output waits, with the epoch it waits for.
    held: AHashMap<ConnectionId, u64>,
    /// Publishes sent to / received from each peer, and what each confirmed / we confirmed.
    forwarded: Vec<u64>,
    peer_durable: Vec<u64>,
    received: Vec<u64>,
    confirmed: Vec<u64>,
    /// Confirmations to send once the log is synced past a position.
    reports: VecDeque<(u64, Vec<u64>)>,
    /// `sync`: publishes for peers, sent once the epoch they were routed in is on disk here.
    deferred: VecDeque<(u64, ShardId, ShardMessage)>,
    /// `sync`: the open epoch has holds, or publishes from peers wait for confirmation.
    waiting: bool,
    cursor: Option<Cursor>,
    /// Failed writes since the last success, for a rate-limited error.
    failures: u64,
    /// This shard's share of `persisted_bytes_max`.
    bytes_max: u64,
    /// Start a compaction at the next commit, due or not.
    compact_now: bool,
    /// Over `bytes_max`, or the last write failed: new persistent state is refused.
    full: bool,
    /// Counts what was logged (or forwarded) for the open epoch, so that an acknowledgement
    /// waits only when its packet changed something the log keeps: a clean session's SUBACK
    /// or a QoS 1 PUBLISH that reached only clean sessions promises nothing on disk.
    marks: u64,
    /// While a local publish is routed: whether its publisher's session is logged (its QoS 2
    /// state). `None` for a publish from a peer.
    origin_logged: Option<bool>,
    /// `sync`: QoS 2 publishes logged as [`Record::Forward`], until their peer confirms.
    pending_forwards: VecDeque<(ShardId, u64, Arc<Message>)>,
    /// `received` as last logged ([`Record::Received`]).
    logged_received: Vec<u64>,
}

impl ShardPersist {
    fn log_received(&mut self, from: usize) {
        let record = Record::Received {
            run: self.wal.run(),
            from: from as u16,
            through: self.received[from],
        };
        self.wal.append(&record);
    }

    /// What a compaction must write again beside the sessions: forwards not yet confirmed
    /// and how far each peer's publishes are logged.
    fn log_delivery_state(&mut self) {
        let run = self.wal.run();
        for (to, seq, message) in &self.pending_forwards {
            let record = Record::Forward {
                run,
                to: to.0,
                seq: *seq,
                message: message.clone(),
            };
            self.wal.append(&record);
        }
        for from in 0..self.logged_received.len() {
            if self.logged_received[from] > 0 {
                self.log_received(from);
            }
        }
    }

    pub(super) fn new(wal: Wal, mode: Durability, shards: usize, bytes_max: u64) -> ShardPersist {
        ShardPersist {
            wal,
            mode,
            dirty: Vec::new(),
            epoch: 1,
            durable_epoch: 0,
            commits: VecDeque::new(),
            held: AHashMap::new(),
            forwarded: vec![0; shards],
            peer_durable: vec![0; shards],
            received: vec![0; shards],
            confirmed: vec![0; shards],
            reports: VecDeque::new(),
            deferred: VecDeque::new(),
            waiting: false,
            cursor: None,
            failures: 0,
            bytes_max: bytes_max.div_ceil(shards.max(1) as u64),
            full: false,
            compact_now: false,
            marks: 0,
            origin_logged: None,
            pending_forwards: VecDeque::new(),
            logged_received: vec![0; shards],
        }
    }
}

impl ShardPersist {
    /// Bytes the log holds count against the share: what compaction cannot reclaim is live
    /// state. A failed write also counts as full, until one succeeds.
    fn update_full(&mut self) {
        let full = self.failures > 0 || self.wal.disk_bytes() >= self.bytes_max;
        if full && !self.full {
            tracing::warn!(bytes = self.wal.disk_bytes(), share = self.bytes_max, failures = self.failures,
                "persistence full: refusing new persistent sessions, retained messages and messages for offline sessions");
        }
        self.full = full;
    }
}

impl Shard {
    /// True while new persistent state is refused (`persisted_bytes_max`, write failures).
    pub(super) fn persistence_full(&self) -> bool {
        self.persist.as_ref().is_some_and(|p| p.full)
    }

    /// Turns persistence on: restores the sessions and retained messages recovery gave this
    /// shard, and logs from then on into `start.wal`.
    pub fn with_persistence(
        mut self,
        now: Instant,
        start: ShardStart,
        retained: &[Arc<Message>],
        persistence: &crate::config::Persistence,
    ) -> Shard {
        let shards = self.peers.shard_count();
        for image in start.sessions {
            let session = Session::from_image(image, now);
            let client_id = session.client_id().clone();
            let key = self.adopt_session(session);
            self.sessions[key.0 as usize].logged = true;
            if self.peers.home_of(&client_id) == self.id {
                self.peers.home_holds(client_id, self.id);
            }
        }
        // After the subscriptions' `Interest`, in the same rings.
        self.announce_restored();
        for message in retained {
            let stamp = RetainStamp { clock: 0, shard: 0 };
            self.store_retained(now, message, stamp);
        }
        let mut persist = ShardPersist::new(
            start.wal,
            persistence.durability,
            shards,
            persistence.bytes_max,
        );
        persist.update_full();
        self.persist = Some(Box::new(persist));
        // Sessions that expired, and wills that came due, while the broker was down: now,
        // before any client can resume one (the wills are routed once every peer has
        // restored, `announce_restored`).
        self.fire_timers(now);
        self
    }

    /// True when this shard writes a log.
    pub fn persists(&self) -> bool {
        self.persist.is_some()
    }

    /// Marks a session's image for the next commit, if it outlives its connection or was
    /// logged before (its end must be logged).
    pub(super) fn log_session(&mut self, key: SessionKey) {
        let Some(persist) = self.persist.as_mut() else {
            return;
        };
        let Some(entry) = self.sessions.get_mut(key.0 as usize) else {
            return;
        };
        if entry.logged || entry.session.is_persistent() {
            persist.marks += 1;
            if !entry.log_dirty {
                entry.log_dirty = true;
                persist.dirty.push(key);
            }
        }
    }

    /// A logged session left this shard (ended or moved): log that now.
    pub(super) fn log_session_end(&mut self, client_id: &crate::codec::ByteStr) {
        if let Some(persist) = self.persist.as_mut() {
            persist.marks += 1;
            let stamp = persist.wal.next_stamp();
            persist.wal.append(&Record::SessionEnd {
                stamp,
                client_id: client_id.clone(),
            });
        }
    }

    /// Logs a retained update applied here, if this shard is its topic's home.
    pub(super) fn log_retained(&mut self, message: &Arc<Message>) {
        let shards = self.peers.shard_count();
        let Some(persist) = self.persist.as_mut() else {
            return;
        };
        if crate::persist::home_of(message.topic.as_str(), shards) != self.id.index()
            || super::route::is_broker_topic(message.topic.as_str())
        {
            return;
        }
        persist.marks += 1;
        let stamp = persist.wal.next_stamp();
        persist.wal.append(&Record::Retain {
            stamp,
            message: message.clone(),
        });
    }

    /// What has been logged so far; with [`Shard::hold_if_logged`], tells whether a packet
    /// changed anything the log keeps.
    pub(super) fn persist_marks(&self) -> u64 {
        self.persist.as_ref().map_or(0, |p| p.marks)
    }

    /// `sync` mode: holds connection `id`'s output until the next commit is durable, if
    /// anything was logged since `marks` (from [`Shard::persist_marks`]).
    pub(super) fn hold_if_logged(&mut self, id: ConnectionId, marks: u64) {
        if self.persist_marks() != marks {
            self.hold_until_durable(id);
        }
    }

    /// Notes, for the local publish about to be routed (`Some`, its publisher) or just
    /// routed (`None`), whether the log keeps its publisher's session.
    /// Only `sync` mode reads it, so every other publish pays one branch here.
    pub(super) fn set_origin_logged(&mut self, from: Option<Option<SessionKey>>) {
        if self
            .persist
            .as_ref()
            .is_none_or(|p| p.mode != Durability::Sync)
        {
            return;
        }
        let logged = from.map(|from| {
            from.and_then(|key| self.sessions.get(key.0 as usize))
                .is_some_and(|e| e.logged || e.session.is_persistent())
        });
        if let Some(persist) = self.persist.as_mut() {
            persist.origin_logged = logged;
        }
    }

    /// `sync`: whether a QoS 2 copy delivered now waits for the log. A local publisher's
    /// packet id must be on disk before a subscriber sees the message, or its resend after a
    /// crash would be routed again; a copy from a peer must be on disk here, or recovery
    /// would deliver it a second time (see `persist::recover`). A clean local publisher's
    /// copy needs neither.
    pub(super) fn qos2_waits_for_log(&self) -> bool {
        self.persist
            .as_ref()
            .is_some_and(|p| p.origin_logged != Some(false))
    }

    /// `sync` mode: holds connection `id`'s output until the next commit is durable.
    pub(super) fn hold_until_durable(&mut self, id: ConnectionId) {
        if let Some(persist) = self.persist.as_mut() {
            if persist.mode == Durability::Sync {
                persist.held.insert(id, persist.epoch);
                persist.waiting = true;
            }
        }
    }

    /// Whether connection `id`'s output waits for the log.
    pub(super) fn held_for_durability(&self, id: ConnectionId) -> bool {
        self.persist
            .as_ref()
            .is_some_and(|p| !p.held.is_empty() && p.held.contains_key(&id))
    }

    /// A publish for peer `to`: returned to send now, or in `sync` mode kept until the
    /// epoch it was routed in is on disk here (so that the publisher's QoS 2 state is durable
    /// before any subscriber can see the message), and counted: acknowledgements then wait
    /// for the peer to confirm it has it on disk too. Deferring every publish, not only QoS
    /// 2, keeps them in order and the count exact.
    pub(super) fn forward_after_sync(
        &mut self,
        to: ShardId,
        publish: ShardMessage,
    ) -> Option<ShardMessage> {
        let Some(persist) = self.persist.as_mut().filter(|p| p.mode == Durability::Sync) else {
            return Some(publish);
        };
        persist.forwarded[to.index()] += 1;
        persist.marks += 1;
        if let ShardMessage::Publish {
            message,
            deliver: true,
            ..
        } = &publish
        {
            if message.qos == crate::codec::QoS::ExactlyOnce && persist.origin_logged == Some(true)
            {
                let seq = persist.forwarded[to.index()];
                let record = Record::Forward {
                    run: persist.wal.run(),
                    to: to.0,
                    seq,
                    message: message.clone(),
                };
                persist.wal.append(&record);
                persist
                    .pending_forwards
                    .push_back((to, seq, message.clone()));
            }
        }
        persist.deferred.push_back((persist.epoch, to, publish));
        persist.waiting = true;
        None
    }

    /// A publish came from peer `from`; it is confirmed once this shard's log is synced.
    pub(super) fn note_received(&mut self, from: ShardId) {
        if let Some(persist) = self.persist.as_mut().filter(|p| p.mode == Durability::Sync) {
            persist.received[from.index()] += 1;
            persist.waiting = true;
        }
    }

    /// Peer `from` has on disk every publish we sent it, up to the `through`-th.
    pub(super) fn on_durable(&mut self, from: ShardId, through: u64) {
        if let Some(persist) = self.persist.as_mut() {
            let held = &mut persist.peer_durable[from.index()];
            *held = (*held).max(through);
            if !persist.pending_forwards.is_empty() {
                let confirmed = &persist.peer_durable;
                persist
                    .pending_forwards
                    .retain(|(to, seq, _)| *seq > confirmed[to.index()]);
            }
        }
        self.advance_durable();
    }

    /// Whether the driver should commit now rather than wait: in `sync` mode, an
    /// acknowledgement or a peer waits for it.
    pub fn wal_wants_commit(&self) -> bool {
        self.persist
            .as_ref()
            .is_some_and(|p| p.mode == Durability::Sync && p.waiting)
    }

    /// Closes the current epoch: writes the image of every dirty session, a compaction step
    /// if one is due, and notes what the epoch's holds wait for.
    pub fn wal_commit(&mut self, _now: Instant) {
        let Some(mut persist) = self.persist.take() else {
            return;
        };
        for key in std::mem::take(&mut persist.dirty) {
            let Some(entry) = self.sessions.get_mut(key.0 as usize) else {
                continue;
            };
            entry.log_dirty = false;
            if entry.session.is_persistent() {
                entry.logged = true;
                let stamp = persist.wal.next_stamp();
                let image = Box::new(entry.session.image());
                persist.wal.append(&Record::Session { stamp, image });
            } else if entry.logged {
                entry.logged = false;
                let stamp = persist.wal.next_stamp();
                let client_id = entry.session.client_id().clone();
                persist.wal.append(&Record::SessionEnd { stamp, client_id });
            }
        }
        if persist.mode == Durability::Sync {
            // In the same commit as the deliveries they count (see `persist::recover`).
            for from in 0..persist.received.len() {
                if persist.received[from] > persist.logged_received[from] {
                    persist.logged_received[from] = persist.received[from];
                    persist.log_received(from);
                }
            }
        }
        self.compaction_step(&mut persist);
        persist.wal.commit();
        let end = persist.wal.appended();
        if persist.mode == Durability::Sync {
            persist.commits.push_back(Commit {
                epoch: persist.epoch,
                end,
                forwarded: persist.forwarded.clone(),
            });
            persist.waiting = false;
        }
        persist.epoch += 1;
        if persist.received != persist.confirmed
            && persist
                .reports
                .back()
                .is_none_or(|(_, r)| *r != persist.received)
        {
            persist.reports.push_back((end, persist.received.clone()));
        }
        self.persist = Some(persist);
        self.advance_durable();
    }

    /// The next write for the driver.
    pub fn wal_take_write(&mut self) -> Option<WalWrite> {
        self.persist.as_mut()?.wal.take_write()
    }

    /// The driver wrote and synced up to logical position `end`.
    pub fn wal_synced(&mut self, end: u64) {
        if let Some(persist) = self.persist.as_mut() {
            persist.wal.synced(end);
            if persist.failures > 0 {
                tracing::info!(failures = persist.failures, "log writes work again");
                persist.failures = 0;
                // What changed while writes failed was not logged: write it all again.
                persist.compact_now = persist.wal.recovered();
            }
            persist.update_full();
        }
        self.advance_durable();
    }

    /// The driver could not write or sync `write`: it is kept, to be tried again, and what
    /// it covers stays unacknowledged (`sync`) meanwhile.
    pub fn wal_write_failed(&mut self, write: WalWrite, error: &std::io::Error) {
        let Some(persist) = self.persist.as_mut() else {
            return;
        };
        persist.failures += 1;
        if persist.failures.is_power_of_two() {
            tracing::error!(segment = %write.path.display(), %error, failures = persist.failures,
                "cannot write the log; retrying (sessions and messages since are not on disk)");
        }
        self.stats.persist_write_errors += 1;
        persist.wal.retry(write);
        persist.cursor = None;
        persist.update_full();
    }

    /// Segments compaction made obsolete, for the driver to delete.
    pub fn wal_take_obsolete(&mut self) -> Vec<std::path::PathBuf> {
        self.persist
            .as_mut()
            .map(|p| p.wal.take_obsolete())
            .unwrap_or_default()
    }

    /// Releases holds whose commit is durable everywhere, and confirms to peers what this
    /// shard has synced.
    fn advance_durable(&mut self) {
        let Some(persist) = self.persist.as_mut() else {
            return;
        };
        let synced = persist.wal.synced_to();
        // The last epoch on disk here, whatever the peers have confirmed.
        let local = persist
            .commits
            .iter()
            .take_while(|c| c.end <= synced)
            .last()
            .map_or(persist.durable_epoch, |c| c.epoch);
        let mut deferred = Vec::new();
        while persist
            .deferred
            .front()
            .is_some_and(|(e, _, _)| *e <= local)
        {
            let (_, to, publish) = persist.deferred.pop_front().expect("checked");
            deferred.push((to, publish));
        }
        while let Some(commit) = persist.commits.front() {
            let peers_done = commit
                .forwarded
                .iter()
                .zip(&persist.peer_durable)
                .all(|(sent, done)| done >= sent);
            if commit.end > synced || !peers_done {
                break;
            }
            persist.durable_epoch = commit.epoch;
            persist.commits.pop_front();
        }
        let mut reports = Vec::new();
        while let Some((end, received)) = persist.reports.front() {
            if *end > synced {
                break;
            }
            for (peer, (&through, confirmed)) in received
                .iter()
                .zip(persist.confirmed.iter_mut())
                .enumerate()
            {
                if through > *confirmed {
                    *confirmed = through;
                    reports.push((ShardId(peer as u16), through));
                }
            }
            persist.reports.pop_front();
        }
        let durable = persist.durable_epoch;
        let mut released = Vec::new();
        if !persist.held.is_empty() {
            persist.held.retain(|id, epoch| {
                let waits = *epoch > durable;
                if !waits {
                    released.push(*id);
                }
                waits
            });
        }
        for (to, publish) in deferred {
            self.mesh.send(to, publish);
        }
        for (to, through) in reports {
            self.mesh.send(to, ShardMessage::Durable { through });
        }
        for id in released {
            self.mark_dirty(id);
        }
    }

    /// Starts a compaction when the log has outgrown live state, and writes the next step of
    /// one in progress.
    fn compaction_step(&mut self, persist: &mut ShardPersist) {
        if persist.cursor.is_none() {
            if !std::mem::take(&mut persist.compact_now)
                && !persist.wal.should_compact(persist.bytes_max)
            {
                return;
            }
            persist.wal.start_compaction();
            persist.log_delivery_state();
            let shards = self.peers.shard_count();
            let me = self.id.index();
            let mut retained = Vec::new();
            self.retained.for_each(|topic, (_, message)| {
                let topic = topic.as_str();
                if crate::persist::home_of(topic, shards) == me
                    && !super::route::is_broker_topic(topic)
                {
                    retained.push(message.clone());
                }
            });
            persist.cursor = Some(Cursor {
                next_slot: 0,
                retained,
            });
        }
        let cursor = persist.cursor.as_mut().expect("set above");
        let mut written = 0;
        let scan_end = cursor
            .next_slot
            .saturating_add(COMPACT_STEP * COMPACT_SCAN_FACTOR)
            .min(self.sessions.capacity());
        while cursor.next_slot < scan_end && written < COMPACT_STEP {
            if let Some(entry) = self.sessions.get_mut(cursor.next_slot) {
                if entry.session.is_persistent() {
                    entry.logged = true;
                    let stamp = persist.wal.next_stamp();
                    let image = Box::new(entry.session.image());
                    persist.wal.append(&Record::Session { stamp, image });
                    written += 1;
                }
            }
            cursor.next_slot += 1;
        }
        if cursor.next_slot < self.sessions.capacity() {
            return;
        }
        let from = cursor.retained.len().saturating_sub(COMPACT_STEP - written);
        for message in cursor.retained.drain(from..) {
            // Only if still current: a delete or replacement since the cursor was made is
            // already logged, with an earlier stamp than this would get.
            let current = self
                .retained
                .get(message.topic.as_str())
                .is_some_and(|(_, held)| Arc::ptr_eq(held, &message));
            if current {
                let stamp = persist.wal.next_stamp();
                persist.wal.append(&Record::Retain { stamp, message });
            }
        }
        if cursor.retained.is_empty() {
            persist.cursor = None;
            persist.wal.snapshot_written();
        }
    }
}
