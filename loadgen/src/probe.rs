//! A small blocking MQTT client with one job: read the retained value of one topic, such as
//! the broker's `$SYS/broker/publish/messages/received`, to check our counts against the
//! broker's own. It uses the same codec as everything else, speaks the run's transport (TLS,
//! WebSocket) through the same sans-IO [`Transport`] as the workers, and is bounded by one
//! deadline.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use ringmq::codec::{
    self, ByteStr, Connect, Decoded, Disconnect, Packet, PacketId, Properties, ProtocolVersion,
    QoS, ReasonCode,
};

use crate::client::{subscribe, PACKET_SIZE_MAX_BYTES};
use crate::error::LoadgenError;
use crate::transport::{Transport, TransportSpec};

/// Bytes the probe reads at most before giving up on finding its message.
const PROBE_READ_MAX_BYTES: usize = 4 * 1024 * 1024;

/// The retained message on `topic` parsed as an unsigned integer (mosquitto and RingMQ
/// publish `$SYS` counters as decimal text).
pub fn read_retained_u64(
    target: SocketAddr,
    transport: &TransportSpec,
    version: ProtocolVersion,
    topic: &str,
    timeout: Duration,
) -> Result<u64, LoadgenError> {
    let text = read_retained(target, transport, version, topic, timeout)?;
    text.trim().parse().map_err(|_| {
        LoadgenError::Setup(format!(
            "retained value of {topic} is not a number: {text:?}"
        ))
    })
}

/// Re-reads the counter on `topic` until it reaches `at_least` or `within` has passed, and
/// returns the last value read. `$SYS` values are republished only every interval, so one
/// reading right after a run is usually stale. A reading that fails is retried while time
/// is left; only when none succeeded is the last error returned.
pub fn await_counter(
    target: SocketAddr,
    transport: &TransportSpec,
    version: ProtocolVersion,
    topic: &str,
    at_least: u64,
    within: Duration,
) -> Result<u64, LoadgenError> {
    const REREAD_PERIOD: Duration = Duration::from_millis(250);
    const READ_TIMEOUT_MIN: Duration = Duration::from_secs(2);
    let deadline = Instant::now() + within;
    let mut last = None;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let timeout = left.max(READ_TIMEOUT_MIN);
        match read_retained_u64(target, transport, version, topic, timeout) {
            Ok(value) if value >= at_least => return Ok(value),
            Ok(value) => last = Some(Ok(value)),
            Err(error) => last = Some(last.filter(Result::is_ok).unwrap_or(Err(error))),
        }
        if left.is_zero() {
            return last
                .unwrap_or_else(|| Err(LoadgenError::Setup(format!("no reading of {topic}"))));
        }
        std::thread::sleep(REREAD_PERIOD.min(left));
    }
}

/// The retained message on `topic` as text.
pub fn read_retained(
    target: SocketAddr,
    transport: &TransportSpec,
    version: ProtocolVersion,
    topic: &str,
    timeout: Duration,
) -> Result<String, LoadgenError> {
    let deadline = Instant::now() + timeout;
    let io = |e| LoadgenError::io(format!("probing {topic} on {target}"), e);
    let stream = TcpStream::connect_timeout(&target, timeout).map_err(io)?;
    stream.set_nodelay(true).map_err(io)?;
    let connect = Connect {
        protocol: version,
        clean_start: true,
        keep_alive_s: 60,
        properties: Properties::default(),
        client_id: ByteStr::from(probe_client_id()),
        will: None,
        username: None,
        password: None,
    };
    let seed = getrandom::u64().unwrap_or(u64::from(std::process::id()));
    let transport = Transport::new(transport, seed)
        .map_err(|e| LoadgenError::Setup(format!("probe of {topic}: {e}")))?;
    let mut probe = Probe {
        stream,
        transport,
        wire: BytesMut::new(),
        version,
        topic,
        deadline,
        inbound: BytesMut::new(),
        read_total: 0,
    };
    probe.open()?;
    probe
        .send(&[Packet::Connect(Box::new(connect))])
        .map_err(io)?;
    // Waiting for CONNACK is not required [MQTT-3.1.4-5], but it is what every common client
    // does, so a probe that works with them works with the broker under test too.
    probe.await_packet(|packet| match packet {
        Packet::ConnAck(ack) if ack.code == ReasonCode::SUCCESS => Some(Ok(())),
        Packet::ConnAck(ack) => Some(Err(format!("refused with 0x{:02X}", ack.code.0))),
        _ => None,
    })?;
    let id = PacketId::new(1).expect("1 is a valid packet id");
    probe
        .send(&[subscribe(id, ByteStr::from(topic), QoS::AtMostOnce)])
        .map_err(io)?;
    let payload = probe.await_packet(|packet| match packet {
        Packet::Publish(p) if p.topic.as_str() == topic => Some(Ok(p.payload)),
        _ => None,
    })?;
    let bye = Packet::Disconnect(Disconnect::new(ReasonCode::NORMAL_DISCONNECTION));
    let _ = probe.send(&[bye]);
    Ok(String::from_utf8_lossy(&payload).into_owned())
}

/// A client id no other probe of this process uses, so that no probe takes over another's
/// session: `lgprobe{pid}-{n}`.
fn probe_client_id() -> String {
    static PROBES: AtomicU32 = AtomicU32::new(0);
    let n = PROBES.fetch_add(1, Ordering::Relaxed);
    format!("lgprobe{}-{n}", std::process::id())
}

/// One probe connection and what it has read.
struct Probe<'a> {
    stream: TcpStream,
    transport: Transport,
    /// Transport bytes for the socket (handshake records, frames), written at once.
    wire: BytesMut,
    version: ProtocolVersion,
    topic: &'a str,
    deadline: Instant,
    inbound: BytesMut,
    read_total: usize,
}

impl Probe<'_> {
    fn setup(&self, why: impl std::fmt::Display) -> LoadgenError {
        LoadgenError::Setup(format!("probe of {}: {why}", self.topic))
    }

    /// Runs the TLS handshake and the WebSocket upgrade, if any.
    fn open(&mut self) -> Result<(), LoadgenError> {
        self.transport
            .start(&mut self.wire)
            .map_err(|e| self.setup(e))?;
        loop {
            self.write_wire().map_err(|e| self.setup(e))?;
            if self.transport.is_open() {
                return Ok(());
            }
            self.read_some()?;
        }
    }

    fn send(&mut self, packets: &[Packet]) -> io::Result<()> {
        let mut out = BytesMut::new();
        for packet in packets {
            codec::encode(packet, self.version, &mut out).expect("probe packets encode");
        }
        self.transport
            .send(&out, &mut self.wire)
            .map_err(io::Error::other)?;
        self.write_wire()
    }

    fn write_wire(&mut self) -> io::Result<()> {
        let result = self.stream.write_all(&self.wire);
        self.wire.clear();
        result
    }

    /// Reads until `want` accepts a packet, the deadline passes, or the read budget is spent.
    fn await_packet<T>(
        &mut self,
        mut want: impl FnMut(Packet) -> Option<Result<T, String>>,
    ) -> Result<T, LoadgenError> {
        loop {
            while let Decoded::Packet(packet) =
                codec::decode(&mut self.inbound, self.version, PACKET_SIZE_MAX_BYTES)
                    .map_err(|e| self.setup(format!("malformed packet: {e}")))?
            {
                if let Some(result) = want(packet) {
                    return result.map_err(|why| self.setup(why));
                }
            }
            self.read_some()?;
        }
    }

    /// One read, within the deadline and the read budget, through the transport; what the
    /// transport answers (a pong, a handshake record) is written at once.
    fn read_some(&mut self) -> Result<(), LoadgenError> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || self.read_total > PROBE_READ_MAX_BYTES {
            return Err(self.setup("no answer in time"));
        }
        self.stream
            .set_read_timeout(Some(left))
            .map_err(|e| self.setup(e))?;
        let mut chunk = [0u8; 4096];
        let n = match self.stream.read(&mut chunk) {
            Ok(0) => return Err(self.setup("the broker closed the connection")),
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Ok(())
            }
            Err(e) => return Err(self.setup(e)),
        };
        self.read_total += n;
        self.transport
            .receive(&chunk[..n], &mut self.inbound, &mut self.wire)
            .map_err(|e| self.setup(e))?;
        self.write_wire().map_err(|e| self.setup(e))
    }
}
