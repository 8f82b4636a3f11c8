//! The harness every black-box test file shares (`mod common;`): start a real broker on
//! `127.0.0.1:0`, then talk to it with [`RawClient`], which speaks only through
//! `ringmq::codec` (one codec, STYLE.md principle 3), or with the independent `rumqttc` crate,
//! so that we do not only test ourselves against ourselves.
//!
//! Beside it: `clients` runs third-party client processes (mosquitto, paho, Chromium),
//! `certs` makes a test PKI at run time, `tls` is the rustls client side of TLS tests,
//! `persist` starts brokers on a `persistence_dir` and reads their log segments.
//!
//! Environment:
//! - `RINGMQ_TEST_IO`: `uring`, `epoll` or `auto` (default) picks the broker's I/O backend;
//! - `RINGMQ_TEST_SHARDS`: shard count (default 1);
//! - `RUST_LOG`: broker log filter shown with a failing test's output (default `info`).
//!
//! Every wait is bounded: a read that times out panics with what it was waiting for.

// Each test file uses a different subset of these helpers; the rest would warn.
#![allow(dead_code)]

pub mod certs;
pub mod clients;
pub mod persist;
pub mod process;
mod rumqttc;
pub mod tls;
#[allow(unused_imports)]
pub use self::rumqttc::*;
#[allow(unused_imports)]
pub use clients::tool_ready;

use std::collections::VecDeque;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::Once;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use ringmq::codec::{
    self, Ack, ByteStr, ConnAck, Connect, Decoded, Disconnect, Packet, PacketId, Properties,
    ProtocolVersion, Publish, QoS, ReasonCode, SubAck, Subscribe, SubscriptionOptions, UnsubAck,
    Unsubscribe, Will,
};
use ringmq::config::{Config, IoBackend, Limits};

/// How long `recv` waits for a packet before failing the test.
pub const RECV_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a test waits for the broker to close a connection it must close.
pub const CLOSE_TIMEOUT: Duration = Duration::from_secs(3);

/// A broker running on its own threads for the length of one test.
pub struct Broker {
    /// Dropping it shuts the broker down and joins its threads.
    inner: ringmq::runtime::Broker,
    pub addr: SocketAddr,
}

impl Broker {
    /// The address that lands a connection on shard `index` (modulo the shard count), so that
    /// a test can put a publisher and a subscriber on different shards when there are several.
    /// With one shard it is the main address.
    pub fn shard(&self, index: usize) -> SocketAddr {
        let shards = self.inner.shard_addrs();
        if shards.is_empty() {
            self.addr
        } else {
            shards[index % shards.len()]
        }
    }

    /// Where `/metrics` is served, if `metrics_listen` was set.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.inner.metrics_addr()
    }

    /// The bound address of `Config::listeners[index]` (0 is the plain test listener).
    pub fn listener(&self, index: usize) -> SocketAddr {
        self.inner.local_addrs()[index]
    }

    /// Re-reads the password and ACL files and the TLS certificates, as SIGHUP does.
    pub fn reload(&self) -> Result<(), ringmq::runtime::ReloadError> {
        self.inner.reload()
    }

    /// Stops the broker as a signal would: every connection is closed, the threads joined.
    pub fn shutdown(self) {
        self.inner.shutdown();
    }
}

/// Starts a broker with the test defaults (`$SYS` every second) and `tweak` applied to its
/// limits.
pub fn start_broker(tweak: impl FnOnce(&mut Limits)) -> Broker {
    start_broker_with(|config| tweak(&mut config.limits))
}

/// Starts a broker with `tweak` applied to the whole configuration. With more than one shard
/// the per-shard listeners are on, for [`Broker::shard`].
pub fn start_broker_with(tweak: impl FnOnce(&mut Config)) -> Broker {
    init_tracing();
    let mut config = Config {
        listeners: vec![ringmq::config::ListenerConfig::mqtt(SocketAddr::from((
            [127, 0, 0, 1],
            0,
        )))],
        sys_interval_s: 1,
        io: io_from_env(),
        shards: shards_from_env(),
        ..Config::default()
    };
    tweak(&mut config);
    config.shard_listeners |= config.shards > 1;
    let inner = ringmq::runtime::start(config).expect("the broker starts");
    let addr = inner.local_addrs()[0];
    Broker { inner, addr }
}

pub fn io_from_env() -> IoBackend {
    match std::env::var("RINGMQ_TEST_IO").as_deref() {
        Err(_) | Ok("") | Ok("auto") => IoBackend::Auto,
        Ok("uring") => IoBackend::Uring,
        Ok("epoll") => IoBackend::Epoll,
        Ok(other) => panic!("RINGMQ_TEST_IO={other:?}: expected uring, epoll or auto"),
    }
}

pub fn shards_from_env() -> usize {
    match std::env::var("RINGMQ_TEST_SHARDS") {
        Err(_) => 1,
        Ok(value) => value
            .parse()
            .unwrap_or_else(|_| panic!("RINGMQ_TEST_SHARDS={value:?}: expected a number")),
    }
}

/// Broker logs go to the test writer, so a failing test shows them and a passing one does not.
fn init_tracing() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        let filter = tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_test_writer()
            .try_init();
    });
}

/// What a raw client puts in its CONNECT.
#[derive(Debug, Clone)]
pub struct ConnectOpts {
    pub version: ProtocolVersion,
    pub client_id: String,
    pub clean: bool,
    pub keep_alive_s: u16,
    pub will: Option<Will>,
    pub username: Option<String>,
    pub password: Option<Vec<u8>>,
    pub properties: Properties,
}

impl ConnectOpts {
    /// Clean session, a keep-alive longer than any test, no will, no credentials.
    pub fn new(version: ProtocolVersion, client_id: &str) -> ConnectOpts {
        ConnectOpts {
            version,
            client_id: client_id.to_owned(),
            clean: true,
            keep_alive_s: 60,
            will: None,
            username: None,
            password: None,
            properties: Properties::default(),
        }
    }

    pub fn v31(client_id: &str) -> ConnectOpts {
        ConnectOpts::new(ProtocolVersion::V3_1, client_id)
    }

    pub fn v311(client_id: &str) -> ConnectOpts {
        ConnectOpts::new(ProtocolVersion::V3_1_1, client_id)
    }

    pub fn v5(client_id: &str) -> ConnectOpts {
        ConnectOpts::new(ProtocolVersion::V5, client_id)
    }

    pub fn clean(mut self, clean: bool) -> ConnectOpts {
        self.clean = clean;
        self
    }

    pub fn keep_alive(mut self, keep_alive_s: u16) -> ConnectOpts {
        self.keep_alive_s = keep_alive_s;
        self
    }

    pub fn will(mut self, will: Will) -> ConnectOpts {
        self.will = Some(will);
        self
    }

    /// Edits the CONNECT properties (5.0).
    pub fn props(mut self, edit: impl FnOnce(&mut Properties)) -> ConnectOpts {
        edit(&mut self.properties);
        self
    }

    /// CONNECT Session Expiry Interval (5.0); absent means 0.
    pub fn session_expiry(self, seconds: u32) -> ConnectOpts {
        self.props(|p| p.session_expiry_interval_s = Some(seconds))
    }

    /// The CONNECT as bytes, for tests that flip bits the codec's types cannot express.
    pub fn to_wire(&self) -> Vec<u8> {
        let mut out = BytesMut::new();
        codec::encode(&self.to_packet(), self.version, &mut out).expect("test CONNECT encodes");
        out.to_vec()
    }

    pub fn to_packet(&self) -> Packet {
        Packet::Connect(Box::new(Connect {
            protocol: self.version,
            clean_start: self.clean,
            keep_alive_s: self.keep_alive_s,
            properties: self.properties.clone(),
            client_id: ByteStr::from(self.client_id.as_str()),
            will: self.will.clone(),
            username: self.username.as_deref().map(ByteStr::from),
            password: self.password.clone().map(Bytes::from),
        }))
    }
}

/// A will message for [`ConnectOpts::will`].
pub fn will(topic: &str, payload: &[u8], qos: QoS, retain: bool) -> Will {
    Will {
        topic: ByteStr::from(topic),
        payload: Bytes::copy_from_slice(payload),
        qos,
        retain,
        properties: Properties::default(),
    }
}

/// A will message with 5.0 will properties (delay, content type...).
pub fn will_v5(topic: &str, payload: &[u8], qos: QoS, properties: Properties) -> Will {
    Will {
        properties,
        ..will(topic, payload, qos, false)
    }
}

/// A PUBLISH without a packet id; [`RawClient::publish_packet`] assigns one for QoS 1/2.
pub fn make_publish(topic: &str, payload: &[u8], qos: QoS, retain: bool) -> Publish {
    Publish {
        dup: false,
        qos,
        retain,
        topic: ByteStr::from(topic),
        packet_id: None,
        properties: Properties::default(),
        payload: Bytes::copy_from_slice(payload),
    }
}

pub fn packet_id(value: u16) -> PacketId {
    PacketId::new(value).expect("test packet ids are non-zero")
}

/// Why a read returned no packet.
enum NoPacket {
    Timeout,
    Closed,
}

/// A blocking byte stream a [`RawClient`] talks over: a `TcpStream`, or TLS on one
/// (`tls::TlsStream`). Timeouts and shutdown act on the TCP socket underneath.
pub trait Wire: Read + Write + Send {
    fn tcp(&self) -> &TcpStream;
}

impl Wire for TcpStream {
    fn tcp(&self) -> &TcpStream {
        self
    }
}

/// An MQTT client over a blocking stream that encodes and decodes with `ringmq::codec`.
///
/// Packets that arrive while a helper waits for something else (a PUBLISH before a PUBACK,
/// say) are kept in order and returned by the next `recv`. Anything else unexpected fails.
pub struct RawClient {
    stream: Box<dyn Wire>,
    /// The level negotiated by CONNECT; every packet is decoded and encoded at it.
    version: ProtocolVersion,
    /// Received bytes not yet decoded.
    buf: BytesMut,
    /// Decoded PUBLISH packets set aside while waiting for an ack.
    stash: VecDeque<Packet>,
    next_packet_id: PacketId,
}

impl RawClient {
    /// A TCP connection with nothing sent yet, decoding at `version`.
    pub fn open(addr: SocketAddr, version: ProtocolVersion) -> RawClient {
        let stream = TcpStream::connect(addr).expect("TCP connect to the broker");
        RawClient::over(Box::new(stream), version)
    }

    /// A client over `stream` (connected, with nothing sent yet), decoding at `version`.
    pub fn over(stream: Box<dyn Wire>, version: ProtocolVersion) -> RawClient {
        stream.tcp().set_nodelay(true).expect("set TCP_NODELAY");
        RawClient {
            stream,
            version,
            buf: BytesMut::new(),
            stash: VecDeque::new(),
            next_packet_id: packet_id(1),
        }
    }

    /// Sends CONNECT and returns the CONNACK, whatever its code.
    pub fn connect(addr: SocketAddr, opts: ConnectOpts) -> (RawClient, ConnAck) {
        RawClient::connect_over(RawClient::open(addr, opts.version), opts)
    }

    /// Sends CONNECT on `client` (opened, nothing sent yet) and returns the CONNACK.
    pub fn connect_over(mut client: RawClient, opts: ConnectOpts) -> (RawClient, ConnAck) {
        client.send(&opts.to_packet());
        match client.recv() {
            Packet::ConnAck(connack) => (client, connack),
            other => panic!("expected CONNACK for {:?}, got {other:?}", opts.client_id),
        }
    }

    /// Connects and asserts that the broker accepted the CONNECT.
    pub fn connected(addr: SocketAddr, opts: ConnectOpts) -> RawClient {
        RawClient::connected_over(RawClient::open(addr, opts.version), opts)
    }

    /// [`RawClient::connected`] on a client opened over a stream of the test's choice.
    pub fn connected_over(client: RawClient, opts: ConnectOpts) -> RawClient {
        let id = opts.client_id.clone();
        let (client, connack) = RawClient::connect_over(client, opts);
        assert_eq!(
            connack.code,
            ReasonCode::SUCCESS,
            "CONNACK for {id:?}: {connack:?}"
        );
        client
    }

    pub fn version(&self) -> ProtocolVersion {
        self.version
    }

    pub fn next_packet_id(&mut self) -> PacketId {
        let id = self.next_packet_id;
        self.next_packet_id = id.next();
        id
    }

    pub fn send(&mut self, packet: &Packet) {
        let mut out = BytesMut::new();
        codec::encode(packet, self.version, &mut out).expect("test packets encode");
        self.send_raw(&out);
    }

    /// Writes bytes as they are: for malformed-input tests, where raw bytes are the point.
    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write to the broker");
    }

    /// Closes our sending half: the broker reads EOF.
    pub fn shutdown_write(&mut self) {
        let _ = self.stream.tcp().shutdown(Shutdown::Write);
    }

    /// The next packet; fails the test after [`RECV_TIMEOUT`] or if the broker closes.
    pub fn recv(&mut self) -> Packet {
        match self.recv_timeout(RECV_TIMEOUT) {
            Some(packet) => packet,
            None => panic!("no packet from the broker within {RECV_TIMEOUT:?}"),
        }
    }

    /// The next packet, or `None` if none arrives within `timeout`. Fails if the broker closes.
    pub fn recv_timeout(&mut self, timeout: Duration) -> Option<Packet> {
        if let Some(packet) = self.stash.pop_front() {
            return Some(packet);
        }
        match self.read_packet(Instant::now() + timeout) {
            Ok(packet) => Some(packet),
            Err(NoPacket::Timeout) => None,
            Err(NoPacket::Closed) => {
                panic!("the broker closed the connection while we waited for a packet")
            }
        }
    }

    /// Asserts that the broker closes the connection within `within`. The only packet allowed
    /// before the close is DISCONNECT (5.0), which is returned.
    pub fn expect_closed(&mut self, within: Duration) -> Option<Disconnect> {
        if let Some(packet) = self.stash.pop_front() {
            panic!("expected the connection to close, but {packet:?} arrived first");
        }
        let deadline = Instant::now() + within;
        let mut disconnect = None;
        loop {
            match self.read_packet(deadline) {
                Err(NoPacket::Closed) => return disconnect,
                Err(NoPacket::Timeout) => panic!("the connection is still open after {within:?}"),
                Ok(Packet::Disconnect(d)) if disconnect.is_none() => disconnect = Some(d),
                Ok(other) => {
                    panic!("expected the connection to close, but {other:?} arrived")
                }
            }
        }
    }

    /// Asserts that the broker refuses a CONNECT: it closes within [`CLOSE_TIMEOUT`], after a
    /// CONNACK (returned) or after nothing at all (`None`). Anything else fails the test.
    pub fn expect_refused(&mut self) -> Option<ConnAck> {
        let deadline = Instant::now() + CLOSE_TIMEOUT;
        let mut connack = None;
        loop {
            match self.read_packet(deadline) {
                Err(NoPacket::Closed) => return connack,
                Err(NoPacket::Timeout) => panic!("still open {CLOSE_TIMEOUT:?} after a refusal"),
                Ok(Packet::ConnAck(c)) if connack.is_none() => {
                    assert!(c.code.is_error(), "CONNECT accepted: {c:?}");
                    assert!(!c.session_present, "refusal with session present");
                    connack = Some(c);
                }
                Ok(other) => panic!("expected a refusal, but {other:?} arrived"),
            }
        }
    }

    /// Asserts that nothing arrives, and the connection stays open, for `duration`.
    pub fn expect_silence(&mut self, duration: Duration) {
        if let Some(packet) = self.recv_timeout(duration) {
            panic!("expected silence for {duration:?}, got {packet:?}");
        }
    }

    fn read_packet(&mut self, deadline: Instant) -> Result<Packet, NoPacket> {
        let mut chunk = [0u8; 16 * 1024];
        loop {
            match codec::decode(&mut self.buf, self.version, codec::REMAINING_LENGTH_MAX) {
                Ok(Decoded::Packet(packet)) => return Ok(packet),
                Ok(Decoded::Incomplete { .. }) => {}
                Err(error) => panic!("the broker sent bytes our codec rejects: {error}"),
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(NoPacket::Timeout);
            }
            let wait = (deadline - now).max(Duration::from_millis(1));
            self.stream
                .tcp()
                .set_read_timeout(Some(wait))
                .expect("set a read timeout");
            match self.stream.read(&mut chunk) {
                Ok(0) => return Err(NoPacket::Closed),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                // UnexpectedEof: TLS that ends without close_notify.
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::ConnectionReset
                            | ErrorKind::ConnectionAborted
                            | ErrorKind::UnexpectedEof
                    ) =>
                {
                    return Err(NoPacket::Closed)
                }
                Err(e) => panic!("read from the broker failed: {e}"),
            }
        }
    }

    /// Waits for the packet `pick` accepts, stashing PUBLISH packets that arrive first.
    fn wait_for<T>(&mut self, what: &str, mut pick: impl FnMut(&Packet) -> Option<T>) -> T {
        let deadline = Instant::now() + RECV_TIMEOUT;
        let mut stashed = 0;
        loop {
            // Only look at packets read now; the stash holds what arrived earlier.
            let packet = match self.read_packet(deadline) {
                Ok(packet) => packet,
                Err(NoPacket::Timeout) => panic!("no {what} within {RECV_TIMEOUT:?}"),
                Err(NoPacket::Closed) => {
                    panic!("the broker closed the connection while we waited for {what}")
                }
            };
            if let Some(found) = pick(&packet) {
                return found;
            }
            match packet {
                Packet::Publish(_) => {
                    self.stash.push_back(packet);
                    stashed += 1;
                    assert!(
                        stashed < 100_000,
                        "flooded with PUBLISH while waiting for {what}"
                    );
                }
                other => panic!("expected {what}, got {other:?}"),
            }
        }
    }

    /// Subscribes and returns the SUBACK (checked to carry our packet id).
    pub fn subscribe(&mut self, filters: &[(&str, QoS)]) -> SubAck {
        let options = filters
            .iter()
            .map(|(f, qos)| {
                (
                    *f,
                    SubscriptionOptions {
                        qos: *qos,
                        ..Default::default()
                    },
                )
            })
            .collect::<Vec<_>>();
        self.subscribe_with(&options)
    }

    /// Subscribes with full 5.0 options.
    pub fn subscribe_with(&mut self, filters: &[(&str, SubscriptionOptions)]) -> SubAck {
        self.subscribe_with_props(filters, Properties::default())
    }

    /// Subscribes with full 5.0 options and SUBSCRIBE properties (a subscription identifier,
    /// user properties).
    pub fn subscribe_with_props(
        &mut self,
        filters: &[(&str, SubscriptionOptions)],
        properties: Properties,
    ) -> SubAck {
        let id = self.send_subscribe(filters, properties);
        self.wait_for("SUBACK", |p| match p {
            Packet::SubAck(ack) if ack.packet_id == id => Some(ack.clone()),
            _ => None,
        })
    }

    /// Sends SUBSCRIBE without waiting for the SUBACK: for SUBSCRIBEs the broker must refuse
    /// with a DISCONNECT.
    pub fn send_subscribe(
        &mut self,
        filters: &[(&str, SubscriptionOptions)],
        properties: Properties,
    ) -> PacketId {
        let id = self.next_packet_id();
        let subscribe = Subscribe {
            packet_id: id,
            properties,
            filters: filters
                .iter()
                .map(|(f, o)| (ByteStr::from(*f), *o))
                .collect(),
        };
        self.send(&Packet::Subscribe(subscribe));
        id
    }

    /// Unsubscribes and returns the UNSUBACK (checked to carry our packet id).
    pub fn unsubscribe(&mut self, filters: &[&str]) -> UnsubAck {
        let id = self.next_packet_id();
        let unsubscribe = Unsubscribe {
            packet_id: id,
            properties: Properties::default(),
            filters: filters.iter().map(|f| ByteStr::from(*f)).collect(),
        };
        self.send(&Packet::Unsubscribe(unsubscribe));
        self.wait_for("UNSUBACK", |p| match p {
            Packet::UnsubAck(ack) if ack.packet_id == id => Some(ack.clone()),
            _ => None,
        })
    }

    /// Publishes and completes the publisher's side of the QoS 1/2 flow.
    pub fn publish(&mut self, topic: &str, payload: &[u8], qos: QoS, retain: bool) {
        self.publish_packet(make_publish(topic, payload, qos, retain));
    }

    /// Publishes `publish` (assigning a packet id for QoS 1/2 if it has none) and completes the
    /// flow: PUBACK for QoS 1, PUBREC then PUBREL then PUBCOMP for QoS 2.
    pub fn publish_packet(&mut self, mut publish: Publish) {
        if publish.qos != QoS::AtMostOnce && publish.packet_id.is_none() {
            publish.packet_id = Some(self.next_packet_id());
        }
        let qos = publish.qos;
        let id = publish.packet_id;
        self.send(&Packet::Publish(publish));
        let Some(id) = id else { return };
        match qos {
            QoS::AtMostOnce => {}
            QoS::AtLeastOnce => self.expect_ack("PUBACK", id),
            QoS::ExactlyOnce => {
                self.expect_ack("PUBREC", id);
                self.send(&Packet::PubRel(Ack::new(id)));
                self.expect_ack("PUBCOMP", id);
            }
        }
    }

    /// Sends QoS 1 PUBLISHes to `topic`, one per payload, without waiting, then waits for
    /// every PUBACK.
    pub fn publish_qos1_pipelined(&mut self, topic: &str, payloads: impl Iterator<Item = String>) {
        let mut ids = Vec::new();
        for payload in payloads {
            let mut publish = make_publish(topic, payload.as_bytes(), QoS::AtLeastOnce, false);
            let id = self.next_packet_id();
            publish.packet_id = Some(id);
            ids.push(id);
            self.send(&Packet::Publish(publish));
        }
        for id in ids {
            self.expect_ack("PUBACK", id);
        }
    }

    /// Waits for the ack `kind` ("PUBACK", "PUBREC", "PUBREL", "PUBCOMP") carrying `id`.
    pub fn expect_ack(&mut self, kind: &str, id: PacketId) {
        self.recv_ack(kind, id);
    }

    /// Waits for the ack `kind` carrying `id` and returns it, for its 5.0 reason code.
    pub fn recv_ack(&mut self, kind: &str, id: PacketId) -> Ack {
        let what = format!("{kind} {id}");
        self.wait_for(&what, |p| {
            let ack = match (kind, p) {
                ("PUBACK", Packet::PubAck(a))
                | ("PUBREC", Packet::PubRec(a))
                | ("PUBREL", Packet::PubRel(a))
                | ("PUBCOMP", Packet::PubComp(a)) => a,
                _ => return None,
            };
            assert_eq!(ack.packet_id, id, "{kind} for the wrong packet id");
            Some(ack.clone())
        })
    }

    /// Sends a QoS 1 `publish` (assigning a packet id) and returns the PUBACK, whatever its
    /// reason code.
    pub fn publish_qos1_ack(&mut self, mut publish: Publish) -> Ack {
        assert_eq!(
            publish.qos,
            QoS::AtLeastOnce,
            "publish_qos1_ack is for QoS 1"
        );
        let id = self.next_packet_id();
        publish.packet_id = Some(id);
        self.send(&Packet::Publish(publish));
        self.recv_ack("PUBACK", id)
    }

    /// Reads PUBLISH packets, acknowledging each, until none arrives for `quiet`.
    pub fn drain_publishes(&mut self, quiet: Duration) -> Vec<Publish> {
        let mut got = Vec::new();
        while let Some(packet) = self.recv_timeout(quiet) {
            match packet {
                Packet::Publish(publish) => {
                    self.ack(&publish);
                    got.push(publish);
                }
                other => panic!("expected only PUBLISH, got {other:?}"),
            }
            assert!(got.len() < 100_000, "flooded with PUBLISH");
        }
        got
    }

    /// Asserts that the broker sends DISCONNECT with `code` (5.0) and then closes.
    pub fn expect_disconnect(&mut self, code: ReasonCode) -> Disconnect {
        match self.expect_closed(CLOSE_TIMEOUT) {
            Some(disconnect) => {
                assert_eq!(
                    disconnect.code, code,
                    "server DISCONNECT, reason string {:?}",
                    disconnect.properties.reason_string
                );
                disconnect
            }
            None => panic!("the broker closed without DISCONNECT {code:?}"),
        }
    }

    /// The next packet, which must be a PUBLISH; QoS 1/2 flows are completed as a receiver.
    pub fn recv_publish(&mut self) -> Publish {
        let publish = self.recv_publish_no_ack();
        self.ack(&publish);
        publish
    }

    /// The next packet, which must be a PUBLISH; nothing is acknowledged.
    pub fn recv_publish_no_ack(&mut self) -> Publish {
        match self.recv() {
            Packet::Publish(publish) => publish,
            other => panic!("expected PUBLISH, got {other:?}"),
        }
    }

    /// Completes the receiver's side of `publish`'s QoS flow.
    pub fn ack(&mut self, publish: &Publish) {
        let Some(id) = publish.packet_id else { return };
        match publish.qos {
            QoS::AtMostOnce => {}
            QoS::AtLeastOnce => self.send(&Packet::PubAck(Ack::new(id))),
            QoS::ExactlyOnce => {
                self.send(&Packet::PubRec(Ack::new(id)));
                self.expect_ack("PUBREL", id);
                self.send(&Packet::PubComp(Ack::new(id)));
            }
        }
    }

    /// PINGREQ, then PINGRESP.
    pub fn ping(&mut self) {
        self.send(&Packet::PingReq);
        match self.recv() {
            Packet::PingResp => {}
            other => panic!("expected PINGRESP, got {other:?}"),
        }
    }

    /// Sends DISCONNECT and waits for the broker to close the connection.
    pub fn disconnect(self) {
        self.disconnect_with(Disconnect::new(ReasonCode::NORMAL_DISCONNECTION));
    }

    /// Sends `disconnect` (a 5.0 reason code, a new session expiry) and waits for the broker
    /// to close the connection without a DISCONNECT of its own.
    pub fn disconnect_with(mut self, disconnect: Disconnect) {
        self.send(&Packet::Disconnect(disconnect));
        let answer = self.expect_closed(CLOSE_TIMEOUT);
        assert_eq!(answer, None, "the broker answered our DISCONNECT");
    }
}

/// Payload as text, for readable assertions.
pub fn text(publish: &Publish) -> &str {
    std::str::from_utf8(&publish.payload).expect("test payloads are UTF-8")
}

/// A connected client that proves the broker still serves: its own subscription round trip,
/// and a fresh connection's.
pub struct Witness {
    client: RawClient,
    addr: SocketAddr,
}

impl Witness {
    /// Connects before the misbehaving client, so that `assert_alive` also shows an existing
    /// connection survives it.
    pub fn new(addr: SocketAddr) -> Witness {
        let mut client = RawClient::connected(addr, ConnectOpts::v311("witness"));
        client.subscribe(&[("witness/#", QoS::AtLeastOnce)]);
        Witness { client, addr }
    }

    pub fn assert_alive(mut self) {
        self.client
            .publish("witness/self", b"still here", QoS::AtLeastOnce, false);
        assert_eq!(text(&self.client.recv_publish()), "still here");
        let mut fresh = RawClient::connected(self.addr, ConnectOpts::v311("witness-fresh"));
        fresh.publish("witness/fresh", b"new client", QoS::AtLeastOnce, false);
        let got = self.client.recv_publish();
        assert_eq!(
            (got.topic.as_str(), text(&got)),
            ("witness/fresh", "new client")
        );
    }
}

/// A PUBLISH with 5.0 properties and no packet id.
pub fn make_publish_v5(topic: &str, payload: &[u8], qos: QoS, properties: Properties) -> Publish {
    Publish {
        properties,
        ..make_publish(topic, payload, qos, false)
    }
}
