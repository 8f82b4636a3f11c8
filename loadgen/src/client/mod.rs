//! One MQTT client connection as a sans-IO state machine: bytes in through
//! [`Client::on_bytes`], packets out into [`Client::outbound`], the time passed in as `now`.
//!
//! Owns the MQTT conversation (CONNECT, SUBSCRIBE, the QoS 1/2 flows, DISCONNECT) and the
//! state of the client's role. Does not own sockets, timers or threads: the worker reads and
//! writes the bytes, and decides when to call [`Client::pump`] (when a timer is due, an ack
//! opened the window, or the socket drained).
//!
//! Every packet goes through `ringmq::codec`, the broker's own codec: there is no second one.
//!
//! # Layout
//!
//! | file | owns |
//! |---|---|
//! | `ids.rs` | [`IdWindow`]: packet ids in flight, bounded by the window |
//! | `publisher.rs` | the publish loop: schedule or max rate, window, stamps |
//! | `subscriber.rs` | receiving: stamps, latency, loss/dup/reorder per stream |
//! | `retained.rs` | the retained flood and the subscribe-to-last-retained reader |

mod ids;
mod publisher;
mod retained;
mod subscriber;

use std::fmt;

use bytes::BytesMut;
use ringmq::codec::{
    self, Ack, ByteStr, ConnAck, Connect, DecodeError, Decoded, Disconnect, Packet, PacketId,
    Properties, ProtocolVersion, Publish, QoS, ReasonCode, SubAck, Subscribe, SubscriptionOptions,
};

use crate::accounting::StreamSet;
use crate::clock::MonoNs;
use crate::measure::Measure;
use crate::phase::{Phase, RunWindow};
use crate::plan::{ClientSpec, RoleSpec, Settings};
use crate::stamp::PublisherId;

pub(crate) use ids::IdWindow;
use publisher::Publisher;
use retained::{Flooder, Reader};
use subscriber::Subscriber;

/// Largest packet accepted from the broker: the largest payload the CLI allows, plus a
/// maximal topic and headers. A larger one is refused from its fixed header.
pub const PACKET_SIZE_MAX_BYTES: u32 = 2 * 1024 * 1024;

/// Publishers stop encoding while this much output waits for the socket: several loopback
/// socket buffers' worth, yet a stalled broker cannot make us buffer the whole run.
pub const OUTBOUND_HIGH_WATER_BYTES: usize = 256 * 1024;

/// Output beyond which a connection is shed: a broker that reads nothing while we owe it acks.
pub const OUTBOUND_MAX_BYTES: usize = 16 * 1024 * 1024;

/// Messages one client encodes per pump, so that one publisher cannot starve its thread.
pub const PUBLISH_BATCH_MAX: u32 = 64;

/// What a client is told each time it is driven.
pub(crate) struct Ctx<'a> {
    pub now: MonoNs,
    pub phase: Phase,
    pub run: RunWindow,
    pub measure: &'a mut Measure,
}

/// What a client wants after a pump.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pump {
    /// Nothing until a packet arrives, the socket drains, or the phase changes.
    Idle,
    /// More to send now: pump again after flushing.
    Again,
    /// The next message is due then.
    At(MonoNs),
}

/// Why a connection is given up. Each is an operating error: the worker sheds that one
/// connection and counts it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientError {
    Decode(DecodeError),
    Refused {
        packet: &'static str,
        code: ReasonCode,
    },
    Protocol(String),
    ClosedByBroker(Option<ReasonCode>),
    OutboundOverflow,
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Decode(e) => write!(f, "malformed packet from the broker: {e}"),
            ClientError::Refused { packet, code } => {
                write!(f, "broker refused with {packet} reason 0x{:02X}", code.0)
            }
            ClientError::Protocol(why) => write!(f, "protocol error: {why}"),
            ClientError::ClosedByBroker(Some(code)) => {
                write!(f, "broker sent DISCONNECT 0x{:02X}", code.0)
            }
            ClientError::ClosedByBroker(None) => write!(f, "broker closed the connection"),
            ClientError::OutboundOverflow => {
                write!(
                    f,
                    "over {OUTBOUND_MAX_BYTES} bytes of output the broker does not read"
                )
            }
        }
    }
}

/// Encodes packets into the connection's output buffer.
pub(crate) struct Wire {
    version: ProtocolVersion,
    outbound: BytesMut,
}

impl Wire {
    pub(crate) fn send(&mut self, packet: &Packet) {
        // Our packets are valid for the level we speak and far below the size limit, so a
        // failure here is a programmer's error.
        codec::encode(packet, self.version, &mut self.outbound)
            .expect("loadgen packets encode at the level they are built for");
    }

    pub(crate) fn backlog_bytes(&self) -> usize {
        self.outbound.len()
    }
}

/// Where a connection is in its life. Named after what each state waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// The worker has not started this connection yet.
    NotStarted,
    /// TCP connect, then the TLS handshake and the WebSocket upgrade if any, in flight since
    /// `started` (its scheduled time when paced).
    Connecting {
        started: MonoNs,
    },
    AwaitingConnAck {
        started: MonoNs,
    },
    AwaitingSubAck {
        packet_id: PacketId,
    },
    Ready,
    Closed,
}

enum Role {
    Idle,
    Publisher(Publisher),
    Subscriber(Subscriber),
    Flooder(Flooder),
    Reader(Reader),
}

/// One connection's MQTT state.
pub(crate) struct Client {
    client_id: ByteStr,
    /// User name and password for CONNECT, if the run logs in.
    login: Option<(ByteStr, bytes::Bytes)>,
    keep_alive_s: u16,
    session_expiry_s: u32,
    qos: QoS,
    state: State,
    role: Role,
    inbound: BytesMut,
    wire: Wire,
    /// QoS 2 messages received and not yet released: a redelivery is not a new message.
    qos2_pending: Option<IdWindow>,
    next_id: PacketId,
}

impl Client {
    pub(crate) fn new(spec: &ClientSpec, settings: &Settings) -> Client {
        let role = match &spec.role {
            RoleSpec::Idle => Role::Idle,
            RoleSpec::Publisher(p) => Role::Publisher(Publisher::new(p, settings)),
            RoleSpec::Subscriber { filter } => Role::Subscriber(Subscriber::new(filter)),
            RoleSpec::Flooder { topics } => Role::Flooder(Flooder::new(topics.clone(), settings)),
            RoleSpec::RetainedReader {
                filter,
                expected,
                rounds_max,
            } => Role::Reader(Reader::new(filter, *expected, *rounds_max)),
        };
        let login = settings.login.as_ref().map(|login| {
            // Clients are numbered in their ids; a hash spreads them over the users as well.
            let index = fnv_index(&spec.client_id);
            (
                ByteStr::from(login.username_for(index)),
                bytes::Bytes::from(login.password.clone()),
            )
        });
        Client {
            client_id: ByteStr::from(spec.client_id.as_str()),
            login,
            keep_alive_s: settings.keep_alive_s,
            session_expiry_s: settings.session_expiry_s,
            qos: settings.qos,
            state: State::NotStarted,
            role,
            inbound: BytesMut::new(),
            wire: Wire {
                version: settings.version,
                outbound: BytesMut::new(),
            },
            qos2_pending: None,
            next_id: PacketId::new(1).expect("1 is a valid packet id"),
        }
    }

    /// The TCP connect has been issued; `started` is when it was due.
    pub(crate) fn on_connect_started(&mut self, started: MonoNs, ctx: &mut Ctx) {
        self.state = State::Connecting { started };
        let first = &mut ctx.measure.counters.first_connect_at;
        *first = Some(first.map_or(started, |f| f.min(started)));
    }

    /// The transport is open (TCP up, TLS handshake and WebSocket upgrade done): say CONNECT.
    pub(crate) fn on_transport_open(&mut self) {
        let State::Connecting { started } = self.state else {
            return;
        };
        let version = self.wire.version;
        let mut properties = Properties::default();
        if self.session_expiry_s > 0 {
            properties.session_expiry_interval_s = Some(self.session_expiry_s);
        }
        self.wire.send(&Packet::Connect(Box::new(Connect {
            protocol: version,
            clean_start: true,
            keep_alive_s: self.keep_alive_s,
            properties,
            client_id: self.client_id.clone(),
            will: None,
            username: self.login.as_ref().map(|(user, _)| user.clone()),
            password: self.login.as_ref().map(|(_, password)| password.clone()),
        })));
        self.state = State::AwaitingConnAck { started };
    }

    pub(crate) fn is_connecting(&self) -> bool {
        matches!(self.state, State::Connecting { .. })
    }

    /// Past CONNACK (and SUBACK for a subscriber).
    pub(crate) fn is_ready(&self) -> bool {
        self.state == State::Ready
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    pub(crate) fn inbound_mut(&mut self) -> &mut BytesMut {
        &mut self.inbound
    }

    pub(crate) fn outbound_mut(&mut self) -> &mut BytesMut {
        &mut self.wire.outbound
    }

    /// Handles every whole packet in the input buffer. Returns whether the client should be
    /// pumped (an ack opened its window, a round ended...).
    pub(crate) fn on_bytes(&mut self, ctx: &mut Ctx) -> Result<bool, ClientError> {
        let mut wake = false;
        loop {
            let decoded =
                codec::decode(&mut self.inbound, self.wire.version, PACKET_SIZE_MAX_BYTES)
                    .map_err(ClientError::Decode)?;
            match decoded {
                Decoded::Incomplete { .. } => break,
                Decoded::Packet(packet) => wake |= self.on_packet(packet, ctx)?,
            }
        }
        if self.wire.outbound.len() > OUTBOUND_MAX_BYTES {
            return Err(ClientError::OutboundOverflow);
        }
        Ok(wake)
    }

    fn on_packet(&mut self, packet: Packet, ctx: &mut Ctx) -> Result<bool, ClientError> {
        match packet {
            Packet::ConnAck(ack) => self.on_connack(ack, ctx).map(|()| true),
            Packet::SubAck(ack) => self.on_suback(ack, ctx),
            Packet::Publish(publish) => {
                self.on_publish(publish, ctx);
                Ok(false)
            }
            Packet::PubAck(ack) | Packet::PubComp(ack) => Ok(self.on_flow_end(&ack, ctx)),
            Packet::PubRec(ack) => Ok(self.on_pubrec(&ack, ctx)),
            Packet::PubRel(ack) => {
                if let Some(pending) = &mut self.qos2_pending {
                    pending.release(ack.packet_id);
                }
                self.wire.send(&Packet::PubComp(Ack::new(ack.packet_id)));
                Ok(false)
            }
            Packet::UnsubAck(_) => match &mut self.role {
                Role::Reader(reader) => Ok(reader.on_unsuback()),
                _ => Err(ClientError::Protocol("UNSUBACK without UNSUBSCRIBE".into())),
            },
            Packet::PingResp => match &mut self.role {
                Role::Flooder(flooder) => Ok(flooder.on_pingresp(ctx)),
                _ => Ok(false),
            },
            Packet::Disconnect(d) => Err(ClientError::ClosedByBroker(Some(d.code))),
            other => Err(ClientError::Protocol(format!(
                "unexpected {:?}",
                other.kind()
            ))),
        }
    }

    fn on_connack(&mut self, ack: ConnAck, ctx: &mut Ctx) -> Result<(), ClientError> {
        let State::AwaitingConnAck { started } = self.state else {
            return Err(ClientError::Protocol("CONNACK twice".into()));
        };
        if ack.code != ReasonCode::SUCCESS {
            return Err(ClientError::Refused {
                packet: "CONNACK",
                code: ack.code,
            });
        }
        if let Some(maximum) = ack.properties.maximum_qos {
            if maximum < self.qos as u8 {
                return Err(ClientError::Protocol(format!(
                    "broker's Maximum QoS is {maximum}"
                )));
            }
        }
        if let Some(receive_maximum) = ack.properties.receive_maximum {
            if let Some(window) = self.window_mut() {
                window.set_capacity(window_capacity_min(window, receive_maximum));
            }
        }
        ctx.measure.connect.record_us(ctx.now.since_us(started));
        let filter = match &self.role {
            Role::Subscriber(subscriber) => Some(subscriber.filter().clone()),
            _ => None,
        };
        match filter {
            Some(filter) => {
                let packet_id = self.take_id();
                self.wire.send(&subscribe(packet_id, filter, self.qos));
                self.state = State::AwaitingSubAck { packet_id };
            }
            None => self.become_ready(ctx),
        }
        Ok(())
    }

    fn on_suback(&mut self, ack: SubAck, ctx: &mut Ctx) -> Result<bool, ClientError> {
        if let Role::Reader(reader) = &mut self.role {
            return reader.on_suback(&ack, ctx);
        }
        let State::AwaitingSubAck { packet_id } = self.state else {
            return Err(ClientError::Protocol("SUBACK without SUBSCRIBE".into()));
        };
        let code = check_suback(&ack, packet_id)?;
        if code.0 < self.qos as u8 {
            ctx.measure.counters.downgraded += 1;
        }
        self.become_ready(ctx);
        Ok(true)
    }

    fn become_ready(&mut self, ctx: &mut Ctx) {
        self.state = State::Ready;
        ctx.measure.counters.ready += 1;
        ctx.measure.counters.last_ready_at = Some(ctx.now);
    }

    fn on_publish(&mut self, publish: Publish, ctx: &mut Ctx) {
        let fresh = match (publish.qos, publish.packet_id) {
            (QoS::AtLeastOnce, Some(id)) => {
                self.wire.send(&Packet::PubAck(Ack::new(id)));
                true
            }
            (QoS::ExactlyOnce, Some(id)) => {
                let pending = self
                    .qos2_pending
                    .get_or_insert_with(|| IdWindow::new(65_535));
                self.wire.send(&Packet::PubRec(Ack::new(id)));
                // A redelivery before PUBREL is the same message [MQTT-4.3.3]: not delivered twice.
                pending.insert(id)
            }
            _ => true,
        };
        if !fresh {
            return;
        }
        match &mut self.role {
            Role::Subscriber(subscriber) => subscriber.on_publish(&publish, ctx),
            Role::Reader(reader) => reader.on_publish(ctx, &mut self.wire),
            _ => ctx.measure.counters.received += 1,
        }
    }

    fn on_flow_end(&mut self, ack: &Ack, ctx: &mut Ctx) -> bool {
        match &mut self.role {
            Role::Publisher(publisher) => publisher.on_flow_end(ack, ctx),
            Role::Flooder(flooder) => flooder.on_flow_end(ack, ctx),
            _ => {
                ctx.measure.counters.unknown_acks += 1;
                false
            }
        }
    }

    fn on_pubrec(&mut self, ack: &Ack, ctx: &mut Ctx) -> bool {
        let known = self.window_mut().is_some_and(|w| w.contains(ack.packet_id));
        if !known {
            ctx.measure.counters.unknown_acks += 1;
            return false;
        }
        if ack.code.is_error() {
            // A 5.0 PUBREC with an error ends the flow here [MQTT-4.3.3].
            return self.on_flow_end(ack, ctx);
        }
        self.wire.send(&Packet::PubRel(Ack::new(ack.packet_id)));
        false
    }

    /// Encodes whatever the role has to send now.
    pub(crate) fn pump(&mut self, ctx: &mut Ctx) -> Pump {
        if self.state != State::Ready {
            return Pump::Idle;
        }
        match &mut self.role {
            Role::Publisher(publisher) => publisher.pump(ctx, &mut self.wire),
            Role::Flooder(flooder) => flooder.pump(ctx, &mut self.wire),
            Role::Reader(reader) => {
                let packet_id = self.next_id;
                let mut taken = false;
                let pump = reader.pump(ctx, &mut self.wire, packet_id, &mut taken);
                if taken {
                    self.next_id = packet_id.next().next();
                }
                pump
            }
            Role::Idle | Role::Subscriber(_) => Pump::Idle,
        }
    }

    /// Keep-alive: the worker calls this for a connection idle for half the keep-alive.
    pub(crate) fn ping(&mut self) {
        if self.state == State::Ready {
            self.wire.send(&Packet::PingReq);
        }
    }

    /// Says goodbye; the worker flushes and closes.
    pub(crate) fn disconnect(&mut self, ctx: &mut Ctx) {
        if self.state == State::Ready {
            let mut bye = Disconnect::new(ReasonCode::NORMAL_DISCONNECTION);
            if self.session_expiry_s > 0 {
                bye.properties.session_expiry_interval_s = Some(0);
            }
            self.wire.send(&Packet::Disconnect(bye));
        }
        self.close(ctx);
    }

    /// Marks the connection dead. A publisher that dies sends nothing more: it is done.
    pub(crate) fn close(&mut self, ctx: &mut Ctx) {
        if let Role::Publisher(publisher) = &mut self.role {
            publisher.abandon(ctx);
        }
        self.state = State::Closed;
    }

    pub(crate) fn publisher_outcome(&self) -> Option<(PublisherId, u64, u32)> {
        match &self.role {
            Role::Publisher(p) => Some(p.outcome()),
            _ => None,
        }
    }

    pub(crate) fn streams(&self) -> Option<&StreamSet> {
        match &self.role {
            Role::Subscriber(s) => Some(s.streams()),
            _ => None,
        }
    }

    fn window_mut(&mut self) -> Option<&mut IdWindow> {
        match &mut self.role {
            Role::Publisher(p) => p.window_mut(),
            Role::Flooder(f) => f.window_mut(),
            _ => None,
        }
    }

    fn take_id(&mut self) -> PacketId {
        let id = self.next_id;
        self.next_id = id.next();
        id
    }
}

fn window_capacity_min(window: &IdWindow, receive_maximum: u16) -> u32 {
    window.capacity().min(u32::from(receive_maximum))
}

/// A one-filter SUBSCRIBE.
pub(crate) fn subscribe(packet_id: PacketId, filter: ByteStr, qos: QoS) -> Packet {
    Packet::Subscribe(Subscribe {
        packet_id,
        properties: Properties::default(),
        filters: vec![(
            filter,
            SubscriptionOptions {
                qos,
                ..SubscriptionOptions::default()
            },
        )],
    })
}

/// A SUBACK must answer our SUBSCRIBE and grant its one filter; returns the granted code.
pub(crate) fn check_suback(ack: &SubAck, packet_id: PacketId) -> Result<ReasonCode, ClientError> {
    if ack.packet_id != packet_id {
        return Err(ClientError::Protocol("SUBACK for another packet id".into()));
    }
    let code = ack
        .codes
        .first()
        .copied()
        .unwrap_or(ReasonCode::UNSPECIFIED_ERROR);
    if code.is_error() {
        return Err(ClientError::Refused {
            packet: "SUBACK",
            code,
        });
    }
    Ok(code)
}

/// A stable number per client id (FNV-1a), to deal clients over `--users` users.
fn fnv_index(client_id: &str) -> u64 {
    client_id.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}
