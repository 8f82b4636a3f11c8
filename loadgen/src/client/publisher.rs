//! The publish loop. Two pacings:
//!
//! - **Open loop** (`--rate R`): message k is due at its [`RateSchedule`] time and carries that
//!   time in its stamp, whenever it actually leaves. Late sends (window full, socket full) are
//!   charged to the latency, which corrects for coordinated omission.
//! - **Max rate** (`--rate 0`): send whenever the window (QoS 1/2) and the output buffer allow;
//!   the stamp carries the actual send time.
//!
//! In both, at most `window` QoS 1/2 messages are outstanding, and at most
//! [`PUBLISH_BATCH_MAX`] are encoded per pump.

use bytes::BytesMut;
use ringmq::codec::{Ack, ByteStr, Packet, Properties, Publish, QoS};

use crate::clock::MonoNs;
use crate::phase::Phase;
use crate::plan::{PublisherSpec, Settings};
use crate::schedule::RateSchedule;
use crate::stamp::{PublisherId, Seq, Stamp};

use super::{Ctx, IdWindow, Pump, Wire, OUTBOUND_HIGH_WATER_BYTES, PUBLISH_BATCH_MAX};

/// Payload bytes after the stamp. Not zero, so that a compressing path cannot flatter us.
const FILLER_BYTE: u8 = 0x5A;

pub(super) struct Publisher {
    id: PublisherId,
    topic: ByteStr,
    qos: QoS,
    payload_bytes: usize,
    /// Capped at 2^32 so that the stamp's u32 sequence number never wraps.
    count_max: u64,
    fanout: u32,
    /// Total rate and stride of the open-loop schedule; `None` is max rate.
    pacing: Option<(u64, u64)>,
    /// Built when the run window is known.
    schedule: Option<RateSchedule>,
    /// `None` at QoS 0.
    window: Option<IdWindow>,
    sent: u64,
    done: bool,
    scratch: BytesMut,
}

impl Publisher {
    pub(super) fn new(spec: &PublisherSpec, settings: &Settings) -> Publisher {
        Publisher {
            id: spec.id,
            topic: ByteStr::from(spec.topic.as_str()),
            qos: settings.qos,
            payload_bytes: settings.payload_bytes,
            count_max: spec.count_max.min(1 << 32),
            fanout: spec.fanout,
            pacing: (settings.rate_per_s > 0)
                .then_some((settings.rate_per_s, u64::from(settings.publishers.max(1)))),
            schedule: None,
            window: (settings.qos != QoS::AtMostOnce).then(|| IdWindow::new(settings.window)),
            sent: 0,
            done: false,
            scratch: BytesMut::new(),
        }
    }

    pub(super) fn window_mut(&mut self) -> Option<&mut IdWindow> {
        self.window.as_mut()
    }

    pub(super) fn outcome(&self) -> (PublisherId, u64, u32) {
        (self.id, self.sent, self.fanout)
    }

    pub(super) fn pump(&mut self, ctx: &mut Ctx, wire: &mut Wire) -> Pump {
        if self.done || !matches!(ctx.phase, Phase::Run | Phase::Drain) {
            return Pump::Idle;
        }
        if self.schedule.is_none() {
            if let Some((rate, stride)) = self.pacing {
                let offset = u64::from(self.id.0) % stride;
                self.schedule = Some(RateSchedule::new(ctx.run.start, rate, stride, offset));
            }
        }
        for _ in 0..PUBLISH_BATCH_MAX {
            if self.sent >= self.count_max {
                self.finish(ctx);
                return Pump::Idle;
            }
            let scheduled = match &self.schedule {
                Some(schedule) => schedule.due(self.sent),
                // Max rate ends with the run; an open-loop backlog may still go out in Drain.
                None if ctx.phase == Phase::Drain || ctx.now >= ctx.run.end => MonoNs::MAX,
                // Max rate starts with the run, like the schedule does.
                None => ctx.now.max(ctx.run.start),
            };
            if scheduled >= ctx.run.end {
                self.finish(ctx);
                return Pump::Idle;
            }
            if scheduled > ctx.now {
                return Pump::At(scheduled);
            }
            if wire.backlog_bytes() >= OUTBOUND_HIGH_WATER_BYTES {
                return Pump::Again;
            }
            if !self.send_one(scheduled, ctx, wire) {
                return Pump::Idle;
            }
        }
        Pump::Again
    }

    /// Encodes message number `sent`; false when the window is full.
    fn send_one(&mut self, scheduled: MonoNs, ctx: &mut Ctx, wire: &mut Wire) -> bool {
        let packet_id = match &mut self.window {
            None => None,
            Some(window) => match window.acquire() {
                Some(id) => Some(id),
                None => return false,
            },
        };
        self.scratch.reserve(self.payload_bytes);
        self.scratch.resize(self.payload_bytes, FILLER_BYTE);
        let seq = Seq(u32::try_from(self.sent).expect("count_max keeps seq within u32"));
        Stamp {
            sent_at: scheduled,
            publisher: self.id,
            seq,
        }
        .write(&mut self.scratch);
        let payload = self.scratch.split().freeze();
        wire.send(&Packet::Publish(Publish {
            dup: false,
            qos: self.qos,
            retain: false,
            topic: self.topic.clone(),
            packet_id,
            properties: Properties::default(),
            payload,
        }));
        self.sent += 1;
        let counters = &mut ctx.measure.counters;
        counters.sent += 1;
        counters.expected += u64::from(self.fanout);
        counters.last_send_at = Some(ctx.now);
        true
    }

    /// PUBACK (QoS 1) or PUBCOMP (QoS 2), or a 5.0 PUBREC error: the flow is over.
    pub(super) fn on_flow_end(&mut self, ack: &Ack, ctx: &mut Ctx) -> bool {
        let counters = &mut ctx.measure.counters;
        let released = self
            .window
            .as_mut()
            .is_some_and(|w| w.release(ack.packet_id));
        if !released {
            counters.unknown_acks += 1;
            return false;
        }
        counters.acked += 1;
        if ack.code.is_error() {
            counters.rejected += 1;
        }
        true
    }

    /// The connection died or the run stopped: count what the schedule still owed.
    pub(super) fn abandon(&mut self, ctx: &mut Ctx) {
        if self.done {
            return;
        }
        if let Some(schedule) = &self.schedule {
            let owed = schedule.count_before(ctx.run.end).min(self.count_max);
            ctx.measure.counters.backlog_unsent += owed.saturating_sub(self.sent);
        }
        // Outstanding flows will never complete; any loss shows in the delivery accounting.
        if let Some(window) = &self.window {
            ctx.measure.counters.abandoned += u64::from(window.in_use());
        }
        self.finish(ctx);
    }

    fn finish(&mut self, ctx: &mut Ctx) {
        if !self.done {
            self.done = true;
            ctx.measure.counters.publishers_done += 1;
        }
    }
}
