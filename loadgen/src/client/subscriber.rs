//! The receiving side of `pubsub`: reads each message's stamp, records its one-way latency,
//! and tracks its sequence number per publisher stream for loss, duplicates and reordering.

use ringmq::codec::{ByteStr, Publish};

use crate::accounting::{Arrival, StreamSet};
use crate::stamp::Stamp;

use super::Ctx;

pub(super) struct Subscriber {
    filter: ByteStr,
    streams: StreamSet,
}

impl Subscriber {
    pub(super) fn new(filter: &str) -> Subscriber {
        Subscriber {
            filter: ByteStr::from(filter),
            streams: StreamSet::default(),
        }
    }

    pub(super) fn filter(&self) -> &ByteStr {
        &self.filter
    }

    pub(super) fn streams(&self) -> &StreamSet {
        &self.streams
    }

    pub(super) fn on_publish(&mut self, publish: &Publish, ctx: &mut Ctx) {
        let counters = &mut ctx.measure.counters;
        counters.received += 1;
        let Some(stamp) = Stamp::read(&publish.payload) else {
            counters.unstamped += 1;
            return;
        };
        match self.streams.observe(stamp.publisher, stamp.seq) {
            Arrival::Duplicate => counters.duplicates += 1,
            Arrival::InOrder | Arrival::OutOfOrder | Arrival::TooOld => {
                counters.delivered += 1;
                counters.last_delivery_at = Some(ctx.now);
                ctx.measure
                    .latency
                    .record_us(ctx.now.since_us(stamp.sent_at));
            }
        }
    }
}
