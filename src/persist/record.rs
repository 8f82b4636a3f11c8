//! The log's records and their bytes, sans-IO.
//!
//! A frame is `len: u32 LE | crc: u32 LE | kind: u8 | body`, where `len` counts `kind` and
//! `body` and `crc` is their CRC32C. Segments are preallocated with zeros, so a `len` of 0 is
//! the end of what was written; a frame that runs past the end of the segment or fails its CRC
//! is a torn or damaged write (`recover.rs` decides what that means).
//!
//! Integers are little-endian; strings and binaries are a `u32` length and their bytes (a
//! retained payload may be up to 256 MiB, more than the wire's 16-bit string length allows);
//! message properties use the wire's own property encoding (`codec::put_message_properties`).
//! Times are wall-clock milliseconds since the Unix epoch ([`Clock`]), 0 meaning "none", so a
//! session expiry or a will delay keeps running while the broker is down.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::codec::{
    read_message_properties, ByteStr, PacketId, Properties, QoS, RetainHandling,
    SubscriptionOptions, Will,
};
use crate::session::{
    Envelope, Message, OfflineImage, OutboundImage, OutboundState, SessionImage, Subscription, Tag,
    ValidWill,
};
use crate::topic::{SubscriptionFilter, TopicName};

/// Bytes of a frame's header: `len` and `crc`.
pub const FRAME_HEADER_BYTES: usize = 8;

/// The largest record the reader accepts. A retained message is at most the 256 MiB MQTT
/// allows; anything longer is damage, not data.
pub const RECORD_BYTES_MAX: usize = 300 << 20;

const KIND_SESSION: u8 = 1;
const KIND_SESSION_END: u8 = 2;
const KIND_MESSAGE: u8 = 3;
const KIND_RETAIN: u8 = 4;
const KIND_FORWARD: u8 = 5;
const KIND_RECEIVED: u8 = 6;

/// One entry of a shard's log. Each carries a wall-clock `stamp` (nanoseconds, unique and
/// increasing per shard): when logs disagree about a client id or a topic (a session that
/// moved between shards, a restart with another shard count), the latest stamp wins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// A session's whole persistent state; replaces any earlier image of the same client id.
    /// Its messages are named by id: each body is a [`Record::Message`] written before it.
    Session {
        stamp: u64,
        image: Box<SessionImage>,
    },
    /// The session ended, or left this shard.
    SessionEnd { stamp: u64, client_id: ByteStr },
    /// A message body that later session images refer to by `id`.
    Message { id: u64, message: Arc<Message> },
    /// The retained message of a topic; an empty payload deletes it.
    Retain { stamp: u64, message: Arc<Message> },
    /// `sync`: the `seq`-th publish this shard sent peer `to` in run `run`, a QoS 2 message
    /// whose publisher's packet id is logged with it. If the peer had not logged it when the
    /// broker died, recovery delivers it (see `recover.rs`): the publisher's resend is then
    /// answered as a duplicate and would otherwise never reach the peer's subscribers.
    Forward {
        run: u64,
        to: u16,
        seq: u64,
        message: Arc<Message>,
    },
    /// `sync`: this shard has logged every publish peer `from` sent it in run `run`, up to
    /// the `through`-th (in the same commit as the deliveries themselves).
    Received { run: u64, from: u16, through: u64 },
}

/// Turns `Instant`s into wall-clock time and back, around one moment taken at start-up.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    instant: Instant,
    unix_ms: u64,
}

impl Clock {
    pub fn new(instant: Instant) -> Clock {
        let unix_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        Clock { instant, unix_ms }
    }

    /// Milliseconds since the epoch (never 0: 0 means "none" in a record).
    pub fn to_unix_ms(&self, at: Instant) -> u64 {
        let ms = if at >= self.instant {
            self.unix_ms + (at - self.instant).as_millis() as u64
        } else {
            self.unix_ms
                .saturating_sub((self.instant - at).as_millis() as u64)
        };
        ms.max(1)
    }

    /// The `Instant` of a wall-clock time; one already past is `now` (it is due at once).
    pub fn to_instant(&self, unix_ms: u64) -> Instant {
        self.instant + Duration::from_millis(unix_ms.saturating_sub(self.unix_ms))
    }
}

/// Why a frame's body could not be read back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("record ends early")]
    Truncated,
    #[error("unknown record kind {0}")]
    UnknownKind(u8),
    #[error("invalid field: {0}")]
    Invalid(&'static str),
}

/// Appends one framed record. `message_id` names the body each envelope refers to (the
/// writer has logged it already).
pub fn put_record(
    out: &mut BytesMut,
    record: &Record,
    clock: &Clock,
    message_id: &mut dyn FnMut(&Arc<Message>) -> u64,
) {
    let start = out.len();
    out.put_u64_le(0); // len and crc, filled in below
    match record {
        Record::Session { stamp, image } => {
            out.put_u8(KIND_SESSION);
            out.put_u64_le(*stamp);
            put_image(out, image, clock, message_id);
        }
        Record::SessionEnd { stamp, client_id } => {
            out.put_u8(KIND_SESSION_END);
            out.put_u64_le(*stamp);
            put_bytes(out, client_id.as_str().as_bytes());
        }
        Record::Message { id, message } => {
            out.put_u8(KIND_MESSAGE);
            out.put_u64_le(*id);
            put_message(out, message, clock);
        }
        Record::Retain { stamp, message } => {
            out.put_u8(KIND_RETAIN);
            out.put_u64_le(*stamp);
            put_message(out, message, clock);
        }
        Record::Forward {
            run,
            to,
            seq,
            message,
        } => {
            out.put_u8(KIND_FORWARD);
            out.put_u64_le(*run);
            out.put_u16_le(*to);
            out.put_u64_le(*seq);
            put_message(out, message, clock);
        }
        Record::Received { run, from, through } => {
            out.put_u8(KIND_RECEIVED);
            out.put_u64_le(*run);
            out.put_u16_le(*from);
            out.put_u64_le(*through);
        }
    }
    let body = &out[start + FRAME_HEADER_BYTES..];
    let len = body.len() as u32;
    let crc = crc32c::crc32c(body);
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// What [`next_frame`] found at the front of a buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    /// A whole frame whose CRC matches: its body (kind and fields) and its size.
    Record(Bytes, usize),
    /// Zeros: nothing was written from here on.
    End,
    /// A frame that runs past the data or fails its CRC.
    Damaged,
}

/// Reads the frame at the front of `data`.
pub fn next_frame(data: &Bytes) -> Frame {
    if data.len() < FRAME_HEADER_BYTES {
        return if data.iter().all(|&b| b == 0) {
            Frame::End
        } else {
            Frame::Damaged
        };
    }
    let len = u32::from_le_bytes(data[..4].try_into().expect("4 bytes")) as usize;
    let crc = u32::from_le_bytes(data[4..8].try_into().expect("4 bytes"));
    if len == 0 && crc == 0 {
        return Frame::End;
    }
    if len == 0 || len > RECORD_BYTES_MAX || len > data.len() - FRAME_HEADER_BYTES {
        return Frame::Damaged;
    }
    let body = data.slice(FRAME_HEADER_BYTES..FRAME_HEADER_BYTES + len);
    if crc32c::crc32c(&body) != crc {
        return Frame::Damaged;
    }
    Frame::Record(body, FRAME_HEADER_BYTES + len)
}

/// Decodes a frame's body. `message` looks up the bodies session images refer to.
pub fn read_record(
    mut body: Bytes,
    clock: &Clock,
    message: &dyn Fn(u64) -> Option<Arc<Message>>,
) -> Result<Record, RecordError> {
    let kind = get_u8(&mut body)?;
    let record = match kind {
        KIND_SESSION => {
            let stamp = get_u64(&mut body)?;
            let image = Box::new(read_image(&mut body, clock, message)?);
            Record::Session { stamp, image }
        }
        KIND_SESSION_END => Record::SessionEnd {
            stamp: get_u64(&mut body)?,
            client_id: get_str(&mut body)?,
        },
        KIND_MESSAGE => Record::Message {
            id: get_u64(&mut body)?,
            message: read_message(&mut body, clock)?,
        },
        KIND_RETAIN => Record::Retain {
            stamp: get_u64(&mut body)?,
            message: read_message(&mut body, clock)?,
        },
        KIND_FORWARD => Record::Forward {
            run: get_u64(&mut body)?,
            to: get_u16(&mut body)?,
            seq: get_u64(&mut body)?,
            message: read_message(&mut body, clock)?,
        },
        KIND_RECEIVED => Record::Received {
            run: get_u64(&mut body)?,
            from: get_u16(&mut body)?,
            through: get_u64(&mut body)?,
        },
        other => return Err(RecordError::UnknownKind(other)),
    };
    if body.has_remaining() {
        return Err(RecordError::Invalid("bytes after the record"));
    }
    Ok(record)
}

fn put_bytes(out: &mut BytesMut, bytes: &[u8]) {
    out.put_u32_le(bytes.len() as u32);
    out.put_slice(bytes);
}

fn put_time(out: &mut BytesMut, at: Option<Instant>, clock: &Clock) {
    out.put_u64_le(at.map_or(0, |at| clock.to_unix_ms(at)));
}

fn put_properties(out: &mut BytesMut, properties: &Properties) {
    let mut block = BytesMut::new();
    // A message's properties were decoded from a packet that fit, so they encode again.
    if crate::codec::put_message_properties(&mut block, properties).is_err() {
        block.clear();
        crate::codec::put_message_properties(&mut block, &Properties::default())
            .expect("empty properties encode");
    }
    put_bytes(out, &block);
}

fn put_message(out: &mut BytesMut, message: &Message, clock: &Clock) {
    put_bytes(out, message.topic.as_str().as_bytes());
    out.put_u8(message.qos as u8 | u8::from(message.retain) << 2);
    put_time(out, message.expires_at, clock);
    put_properties(out, &message.properties);
    put_bytes(out, &message.payload);
}

fn put_envelope(
    out: &mut BytesMut,
    envelope: &Envelope,
    message_id: &mut dyn FnMut(&Arc<Message>) -> u64,
) {
    out.put_u64_le(message_id(&envelope.message));
    out.put_u8(envelope.qos as u8 | u8::from(envelope.retain) << 2);
    match &envelope.tag {
        None => out.put_u8(0),
        Some(tag) => {
            out.put_u8(1);
            out.put_u32_le(tag.sub_ids.len() as u32);
            for id in &tag.sub_ids {
                out.put_u32_le(*id);
            }
            match &tag.group {
                Some(group) => {
                    out.put_u8(1);
                    put_bytes(out, group.as_str().as_bytes());
                }
                None => out.put_u8(0),
            }
        }
    }
}

fn put_image(
    out: &mut BytesMut,
    image: &SessionImage,
    clock: &Clock,
    message_id: &mut dyn FnMut(&Arc<Message>) -> u64,
) {
    put_bytes(out, image.client_id.as_str().as_bytes());
    match &image.username {
        Some(user) => {
            out.put_u8(1);
            put_bytes(out, user.as_str().as_bytes());
        }
        None => out.put_u8(0),
    }
    out.put_u32_le(image.expiry_s);
    out.put_u16_le(image.next_packet_id.get());
    match &image.offline {
        None => out.put_u8(0),
        Some(offline) => {
            out.put_u8(1);
            put_time(out, offline.expires_at, clock);
            match &offline.will {
                None => out.put_u8(0),
                Some((at, will)) => {
                    out.put_u8(1);
                    put_time(out, Some(*at), clock);
                    put_bytes(out, will.topic.as_str().as_bytes());
                    out.put_u8(will.will.qos as u8 | u8::from(will.will.retain) << 2);
                    put_properties(out, &will.will.properties);
                    put_bytes(out, &will.will.payload);
                }
            }
        }
    }
    out.put_u32_le(image.subscriptions.len() as u32);
    for (raw, subscription) in &image.subscriptions {
        put_bytes(out, raw.as_str().as_bytes());
        let o = subscription.options;
        out.put_u8(
            o.qos as u8
                | u8::from(o.no_local) << 2
                | u8::from(o.retain_as_published) << 3
                | (o.retain_handling as u8) << 4
                | u8::from(subscription.read_check) << 6,
        );
        out.put_u32_le(subscription.id);
    }
    out.put_u32_le(image.inflight.len() as u32);
    for o in &image.inflight {
        out.put_u16_le(o.packet_id.get());
        out.put_u8(u8::from(o.state == OutboundState::Released));
        put_envelope(out, &o.envelope, message_id);
    }
    out.put_u32_le(image.queue.len() as u32);
    for envelope in &image.queue {
        put_envelope(out, envelope, message_id);
    }
    out.put_u32_le(image.inbound_qos2.len() as u32);
    for id in &image.inbound_qos2 {
        out.put_u16_le(id.get());
    }
}

fn need(body: &Bytes, n: usize) -> Result<(), RecordError> {
    if body.remaining() < n {
        Err(RecordError::Truncated)
    } else {
        Ok(())
    }
}

fn get_u8(body: &mut Bytes) -> Result<u8, RecordError> {
    need(body, 1)?;
    Ok(body.get_u8())
}

fn get_u16(body: &mut Bytes) -> Result<u16, RecordError> {
    need(body, 2)?;
    Ok(body.get_u16_le())
}

fn get_u32(body: &mut Bytes) -> Result<u32, RecordError> {
    need(body, 4)?;
    Ok(body.get_u32_le())
}

fn get_u64(body: &mut Bytes) -> Result<u64, RecordError> {
    need(body, 8)?;
    Ok(body.get_u64_le())
}

fn get_bytes(body: &mut Bytes) -> Result<Bytes, RecordError> {
    let len = get_u32(body)? as usize;
    need(body, len)?;
    Ok(body.split_to(len))
}

fn get_str(body: &mut Bytes) -> Result<ByteStr, RecordError> {
    let bytes = get_bytes(body)?;
    std::str::from_utf8(&bytes).map_err(|_| RecordError::Invalid("a string is not UTF-8"))?;
    Ok(ByteStr::from(std::str::from_utf8(&bytes).expect("checked")))
}

fn get_time(body: &mut Bytes, clock: &Clock) -> Result<Option<Instant>, RecordError> {
    let ms = get_u64(body)?;
    Ok((ms != 0).then(|| clock.to_instant(ms)))
}

fn get_count(body: &mut Bytes, each_min: usize) -> Result<usize, RecordError> {
    let n = get_u32(body)? as usize;
    // A count the rest of the record cannot hold is damage; checking it bounds allocation.
    need(body, n.saturating_mul(each_min))?;
    Ok(n)
}

fn qos_and_retain(byte: u8) -> Result<(QoS, bool), RecordError> {
    let qos = QoS::from_u8(byte & 0b11).ok_or(RecordError::Invalid("QoS"))?;
    Ok((qos, byte & 0b100 != 0))
}

fn get_packet_id(body: &mut Bytes) -> Result<PacketId, RecordError> {
    PacketId::new(get_u16(body)?).ok_or(RecordError::Invalid("packet id 0"))
}

fn get_properties(body: &mut Bytes, will: bool) -> Result<Properties, RecordError> {
    let block = get_bytes(body)?;
    let (properties, rest) = read_message_properties(block, will)
        .map_err(|_| RecordError::Invalid("message properties"))?;
    if !rest.is_empty() {
        return Err(RecordError::Invalid("bytes after the properties"));
    }
    Ok(properties)
}

fn get_topic(body: &mut Bytes) -> Result<TopicName, RecordError> {
    TopicName::new(get_str(body)?).map_err(|_| RecordError::Invalid("topic name"))
}

fn read_message(body: &mut Bytes, clock: &Clock) -> Result<Arc<Message>, RecordError> {
    let topic = get_topic(body)?;
    let (qos, retain) = qos_and_retain(get_u8(body)?)?;
    let expires_at = get_time(body, clock)?;
    let properties = get_properties(body, false)?;
    let payload = get_bytes(body)?;
    Ok(Arc::new(Message {
        topic,
        payload,
        qos,
        retain,
        properties,
        expires_at,
    }))
}

/// An envelope, or `None` when its message body is not in the log (a damaged segment lost
/// it): the session keeps the rest. `message` counts what it could not find.
fn read_envelope(
    body: &mut Bytes,
    message: &dyn Fn(u64) -> Option<Arc<Message>>,
) -> Result<Option<Envelope>, RecordError> {
    let id = get_u64(body)?;
    let (qos, retain) = qos_and_retain(get_u8(body)?)?;
    let tag = match get_u8(body)? {
        0 => None,
        _ => {
            let n = get_count(body, 4)?;
            let sub_ids = (0..n).map(|_| get_u32(body)).collect::<Result<_, _>>()?;
            let group = match get_u8(body)? {
                0 => None,
                _ => Some(get_str(body)?),
            };
            Some(Box::new(Tag { sub_ids, group }))
        }
    };
    Ok(message(id).map(|message| Envelope {
        message,
        qos,
        retain,
        tag,
    }))
}

fn read_will(body: &mut Bytes, clock: &Clock) -> Result<(Instant, ValidWill), RecordError> {
    let at = get_time(body, clock)?.ok_or(RecordError::Invalid("will time"))?;
    let topic = get_topic(body)?;
    let (qos, retain) = qos_and_retain(get_u8(body)?)?;
    let properties = get_properties(body, true)?;
    let payload = get_bytes(body)?;
    let will = Will {
        topic: topic.as_byte_str().clone(),
        payload,
        qos,
        retain,
        properties,
    };
    Ok((at, ValidWill { topic, will }))
}

fn read_image(
    body: &mut Bytes,
    clock: &Clock,
    message: &dyn Fn(u64) -> Option<Arc<Message>>,
) -> Result<SessionImage, RecordError> {
    let client_id = get_str(body)?;
    let username = match get_u8(body)? {
        0 => None,
        _ => Some(get_str(body)?),
    };
    let expiry_s = get_u32(body)?;
    let next_packet_id = get_packet_id(body)?;
    let offline = match get_u8(body)? {
        0 => None,
        _ => {
            let expires_at = get_time(body, clock)?;
            let will = match get_u8(body)? {
                0 => None,
                _ => Some(read_will(body, clock)?),
            };
            Some(OfflineImage { expires_at, will })
        }
    };
    let n = get_count(body, 9)?;
    let mut subscriptions = Vec::with_capacity(n);
    for _ in 0..n {
        let raw = get_str(body)?;
        let byte = get_u8(body)?;
        let id = get_u32(body)?;
        let filter = SubscriptionFilter::parse(raw.clone())
            .map_err(|_| RecordError::Invalid("topic filter"))?;
        let options = SubscriptionOptions {
            qos: QoS::from_u8(byte & 0b11).ok_or(RecordError::Invalid("QoS"))?,
            no_local: byte & 0b100 != 0,
            retain_as_published: byte & 0b1000 != 0,
            retain_handling: match (byte >> 4) & 0b11 {
                0 => RetainHandling::OnSubscribe,
                1 => RetainHandling::OnNewSubscribe,
                _ => RetainHandling::Never,
            },
        };
        let read_check = byte & 0b100_0000 != 0;
        let subscription = Subscription {
            filter,
            options,
            id,
            read_check,
        };
        subscriptions.push((raw, subscription));
    }
    let n = get_count(body, 12)?;
    let mut inflight = Vec::with_capacity(n);
    for _ in 0..n {
        let packet_id = get_packet_id(body)?;
        let state = match get_u8(body)? {
            0 => OutboundState::Unacknowledged,
            _ => OutboundState::Released,
        };
        if let Some(envelope) = read_envelope(body, message)? {
            inflight.push(OutboundImage {
                packet_id,
                state,
                envelope,
            });
        }
    }
    let n = get_count(body, 10)?;
    let mut queue = Vec::with_capacity(n);
    for _ in 0..n {
        queue.extend(read_envelope(body, message)?);
    }
    let n = get_count(body, 2)?;
    let inbound_qos2 = (0..n)
        .map(|_| get_packet_id(body))
        .collect::<Result<_, _>>()?;
    Ok(SessionImage {
        client_id,
        username,
        expiry_s,
        next_packet_id,
        subscriptions,
        inflight,
        queue,
        inbound_qos2,
        offline,
    })
}
