//! The `retained` scenario's two roles.
//!
//! - [`Flooder`]: in `Prime`, stores one retained message on each of R topics (QoS and window
//!   as for publishers), then sends PINGREQ. A broker handles one connection's packets in
//!   order, so PINGRESP proves every message before it was processed, even at QoS 0. In
//!   `Cleanup` it deletes them the same way (empty retained payloads).
//! - [`Reader`]: in `Run`, subscribes to a wildcard filter, counts the retained messages it
//!   gets, and when the last expected one arrives records SUBSCRIBE -> last-retained latency,
//!   unsubscribes and starts over, until the run ends or it has done its rounds.

use bytes::{Bytes, BytesMut};
use ringmq::codec::{
    Ack, ByteStr, Packet, PacketId, Properties, Publish, QoS, SubAck, Unsubscribe,
};

use crate::clock::MonoNs;
use crate::phase::Phase;
use crate::plan::{RetainedTopics, Settings};
use crate::stamp::{PublisherId, Seq, Stamp};

use super::{
    subscribe, ClientError, Ctx, IdWindow, Pump, Wire, OUTBOUND_HIGH_WATER_BYTES, PUBLISH_BATCH_MAX,
};

/// Where the flooder is. Each barrier waits for the PINGRESP that proves a pass complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pass {
    Waiting,
    Storing,
    StoreBarrier,
    Stored,
    Clearing,
    ClearBarrier,
    Cleared,
}

pub(super) struct Flooder {
    topics: RetainedTopics,
    qos: QoS,
    payload_bytes: usize,
    window: Option<IdWindow>,
    pass: Pass,
    /// Index of the next topic of the current pass.
    next: u64,
    scratch: BytesMut,
}

impl Flooder {
    pub(super) fn new(topics: RetainedTopics, settings: &Settings) -> Flooder {
        Flooder {
            topics,
            qos: settings.qos,
            payload_bytes: settings.payload_bytes,
            window: (settings.qos != QoS::AtMostOnce).then(|| IdWindow::new(settings.window)),
            pass: Pass::Waiting,
            next: 0,
            scratch: BytesMut::new(),
        }
    }

    pub(super) fn window_mut(&mut self) -> Option<&mut IdWindow> {
        self.window.as_mut()
    }

    pub(super) fn pump(&mut self, ctx: &mut Ctx, wire: &mut Wire) -> Pump {
        match (self.pass, ctx.phase) {
            (Pass::Waiting, Phase::Prime) => self.begin(Pass::Storing),
            (Pass::Stored, Phase::Cleanup) => self.begin(Pass::Clearing),
            _ => {}
        }
        if !matches!(self.pass, Pass::Storing | Pass::Clearing) {
            return Pump::Idle;
        }
        for _ in 0..PUBLISH_BATCH_MAX {
            if self.next == self.topics.count {
                if self.window.as_ref().is_none_or(|w| w.in_use() == 0) {
                    wire.send(&Packet::PingReq);
                    self.pass = if self.pass == Pass::Storing {
                        Pass::StoreBarrier
                    } else {
                        Pass::ClearBarrier
                    };
                }
                return Pump::Idle;
            }
            if wire.backlog_bytes() >= OUTBOUND_HIGH_WATER_BYTES {
                return Pump::Again;
            }
            let packet_id = match &mut self.window {
                None => None,
                Some(window) => match window.acquire() {
                    Some(id) => Some(id),
                    None => return Pump::Idle,
                },
            };
            let payload = self.payload(ctx.now);
            wire.send(&Packet::Publish(Publish {
                dup: false,
                qos: self.qos,
                retain: true,
                topic: ByteStr::from(self.topics.name(self.next)),
                packet_id,
                properties: Properties::default(),
                payload,
            }));
            self.next += 1;
        }
        Pump::Again
    }

    fn begin(&mut self, pass: Pass) {
        self.pass = pass;
        self.next = 0;
    }

    /// A stamped payload when storing; empty when clearing, which deletes [MQTT-3.3.1-6].
    fn payload(&mut self, now: MonoNs) -> Bytes {
        if self.pass == Pass::Clearing {
            return Bytes::new();
        }
        self.scratch.reserve(self.payload_bytes);
        self.scratch.resize(self.payload_bytes, 0);
        let seq = Seq(self.next as u32);
        Stamp {
            sent_at: now,
            publisher: PublisherId(u32::MAX),
            seq,
        }
        .write(&mut self.scratch);
        self.scratch.split().freeze()
    }

    pub(super) fn on_flow_end(&mut self, ack: &Ack, ctx: &mut Ctx) -> bool {
        if self
            .window
            .as_mut()
            .is_some_and(|w| w.release(ack.packet_id))
        {
            return true;
        }
        ctx.measure.counters.unknown_acks += 1;
        false
    }

    pub(super) fn on_pingresp(&mut self, ctx: &mut Ctx) -> bool {
        match self.pass {
            Pass::StoreBarrier => {
                self.pass = Pass::Stored;
                ctx.measure.counters.primed += 1;
            }
            Pass::ClearBarrier => {
                self.pass = Pass::Cleared;
                ctx.measure.counters.cleaned += 1;
            }
            _ => {}
        }
        false
    }
}

/// One subscribe round of a reader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Round {
    Idle,
    Subscribed {
        packet_id: PacketId,
        started: MonoNs,
        received: u64,
    },
    Unsubscribing,
}

pub(super) struct Reader {
    filter: ByteStr,
    expected: u64,
    rounds_max: u64,
    rounds: u64,
    round: Round,
}

impl Reader {
    pub(super) fn new(filter: &str, expected: u64, rounds_max: u64) -> Reader {
        Reader {
            filter: ByteStr::from(filter),
            expected,
            rounds_max,
            rounds: 0,
            round: Round::Idle,
        }
    }

    /// Starts a round if it is time. `packet_id` is for the SUBSCRIBE and the id after it
    /// for the UNSUBSCRIBE that ends the round; `taken` says whether they were used.
    pub(super) fn pump(
        &mut self,
        ctx: &mut Ctx,
        wire: &mut Wire,
        packet_id: PacketId,
        taken: &mut bool,
    ) -> Pump {
        let more = self.rounds < self.rounds_max && ctx.now < ctx.run.end;
        if ctx.phase != Phase::Run || self.round != Round::Idle || !more {
            return Pump::Idle;
        }
        if ctx.now < ctx.run.start {
            return Pump::At(ctx.run.start);
        }
        // Readers subscribe at QoS 0: the latency of interest is the retained lookup, and QoS
        // 0 keeps acks for thousands of messages out of it.
        wire.send(&subscribe(packet_id, self.filter.clone(), QoS::AtMostOnce));
        self.round = Round::Subscribed {
            packet_id,
            started: ctx.now,
            received: 0,
        };
        ctx.measure.counters.rounds_started += 1;
        *taken = true;
        Pump::Idle
    }

    pub(super) fn on_suback(&mut self, ack: &SubAck, ctx: &mut Ctx) -> Result<bool, ClientError> {
        let Round::Subscribed {
            packet_id, started, ..
        } = self.round
        else {
            return Err(ClientError::Protocol("SUBACK without SUBSCRIBE".into()));
        };
        super::check_suback(ack, packet_id)?;
        ctx.measure.suback.record_us(ctx.now.since_us(started));
        Ok(false)
    }

    pub(super) fn on_publish(&mut self, ctx: &mut Ctx, wire: &mut Wire) {
        ctx.measure.counters.received += 1;
        let Round::Subscribed {
            packet_id,
            started,
            received,
        } = &mut self.round
        else {
            return;
        };
        *received += 1;
        if *received < self.expected {
            return;
        }
        ctx.measure.latency.record_us(ctx.now.since_us(*started));
        ctx.measure.counters.rounds += 1;
        ctx.measure.counters.delivered += *received;
        ctx.measure.counters.last_delivery_at = Some(ctx.now);
        self.rounds += 1;
        // The next id: the SUBSCRIBE's may, in principle, still await its SUBACK.
        wire.send(&Packet::Unsubscribe(Unsubscribe {
            packet_id: packet_id.next(),
            properties: Properties::default(),
            filters: vec![self.filter.clone()],
        }));
        self.round = Round::Unsubscribing;
    }

    pub(super) fn on_unsuback(&mut self) -> bool {
        if self.round == Round::Unsubscribing {
            self.round = Round::Idle;
            return true;
        }
        false
    }
}
