//! The WebSocket client of one connection (RFC 6455, MQTT 5.0 section 6), sans-IO: the
//! upgrade request, the check of the `101`, then masked binary frames out and the server's
//! frames in, whose payloads, concatenated, are the MQTT byte stream. A packet may span frames
//! and a frame may hold several packets [MQTT-6.0.0-2]; the client's decoder sees one stream.
//! Frame headers go through tungstenite's codec and the response through `httparse`, as on
//! the broker's side (its `transport::ws`); the rules below are ours.
//!
//! | server sends | answer |
//! |---|---|
//! | anything but `101` with our accept key and `Sec-WebSocket-Protocol: mqtt` | error |
//! | a response longer than [`UPGRADE_RESPONSE_BYTES_MAX`] | error |
//! | a masked frame, reserved bits, a text frame, a bad control frame | close 1002/1003, error |
//! | a frame longer than [`FRAME_PAYLOAD_MAX_BYTES`] | close 1009, error |
//! | ping | pong with the same payload |
//! | close | the close echoed, then the end |

use std::io::Cursor;

use bytes::BytesMut;
use tungstenite::protocol::frame::coding::{Control, Data, OpCode};
use tungstenite::protocol::frame::FrameHeader;

use super::TransportError;

/// Longest `101` response accepted (status line and headers).
pub const UPGRADE_RESPONSE_BYTES_MAX: usize = 8 * 1024;

/// Headers parsed from the response; more is an error.
const UPGRADE_HEADERS_MAX: usize = 32;

/// Longest frame accepted from the server: the largest packet the client accepts.
pub const FRAME_PAYLOAD_MAX_BYTES: u64 = crate::client::PACKET_SIZE_MAX_BYTES as u64;

/// Longest frame we send. Each write batch is one frame when it fits; this stays far below
/// any broker's frame limit (RingMQ's is its `packet_size_max`, 1 MiB by default).
pub const FRAME_OUT_PAYLOAD_MAX_BYTES: usize = 64 * 1024;

/// A client frame header: 2 bytes, 8 for a 64-bit length, 4 for the mask.
const FRAME_HEADER_OUT_BYTES_MAX: usize = 14;

/// Control frames carry at most 125 bytes (RFC 6455 5.5).
const CONTROL_PAYLOAD_MAX: u64 = 125;

/// Close codes (RFC 6455 7.4.1).
const CLOSE_NORMAL: u16 = 1000;
const CLOSE_PROTOCOL_ERROR: u16 = 1002;
const CLOSE_UNSUPPORTED_DATA: u16 = 1003;
const CLOSE_TOO_BIG: u16 = 1009;

/// What each connection's upgrade request says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WsSpec {
    /// The request path (`--ws-path`).
    pub path: String,
    /// The `Host` header: `host:port` as given on the command line.
    pub host: String,
}

#[derive(Debug)]
enum State {
    /// The upgrade request is built but not yet handed out.
    NotStarted,
    /// Sent the request; waiting for the `101`, whose accept key must be this.
    AwaitingUpgrade {
        accept: String,
    },
    Open,
    /// A close frame was sent or received: nothing more is read or sent.
    Closed,
}

/// The server frame whose payload is arriving.
#[derive(Debug)]
struct Frame {
    opcode: OpCode,
    remaining: u64,
}

/// One connection's WebSocket state.
#[derive(Debug)]
pub struct WsClient {
    spec: WsSpec,
    state: State,
    /// Unparsed input: the response while upgrading, then a partial frame header or a control
    /// frame's payload (at most 125 bytes). Empty and unallocated when idle.
    pending: Vec<u8>,
    frame: Option<Frame>,
    /// The first frame of the message being continued was binary.
    in_binary_message: bool,
    /// Masking keys and the `Sec-WebSocket-Key`: a xorshift stream from the worker's seed.
    rng: u64,
}

impl WsClient {
    /// A client whose key and masks derive from `seed` (any value but zero is a stream).
    pub fn new(spec: &WsSpec, seed: u64) -> WsClient {
        WsClient {
            spec: spec.clone(),
            state: State::NotStarted,
            pending: Vec::new(),
            frame: None,
            in_binary_message: false,
            rng: seed | 1,
        }
    }

    pub fn is_open(&self) -> bool {
        matches!(self.state, State::Open)
    }

    /// The upgrade request has been written.
    pub fn is_started(&self) -> bool {
        !matches!(self.state, State::NotStarted)
    }

    /// Writes the upgrade request to `out`.
    pub fn start(&mut self, out: &mut Vec<u8>) {
        use base64::Engine;
        let mut key = [0u8; 16];
        key[..8].copy_from_slice(&self.next_random().to_le_bytes());
        key[8..].copy_from_slice(&self.next_random().to_le_bytes());
        let key = base64::engine::general_purpose::STANDARD.encode(key);
        out.extend_from_slice(
            format!(
                "GET {} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                 Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\
                 Sec-WebSocket-Protocol: mqtt\r\n\r\n",
                self.spec.path, self.spec.host
            )
            .as_bytes(),
        );
        self.state = State::AwaitingUpgrade {
            accept: accept_key(&key),
        };
    }

    /// Takes bytes from below (the socket or TLS). MQTT bytes go to `mqtt`; what the server
    /// must be sent (a pong, a close frame) to `answer`.
    pub fn receive(
        &mut self,
        input: &[u8],
        mqtt: &mut BytesMut,
        answer: &mut Vec<u8>,
    ) -> Result<(), TransportError> {
        let result = self.receive_inner(input, mqtt, answer);
        if self.pending.is_empty() {
            self.pending = Vec::new();
        }
        result
    }

    fn receive_inner(
        &mut self,
        input: &[u8],
        mqtt: &mut BytesMut,
        answer: &mut Vec<u8>,
    ) -> Result<(), TransportError> {
        match &self.state {
            State::NotStarted | State::Closed => Ok(()),
            State::AwaitingUpgrade { .. } => {
                self.pending.extend_from_slice(input);
                let Some(used) = self.upgrade()? else {
                    return Ok(());
                };
                // Frames the server sent right after the 101 came in the same read.
                let rest = self.pending.split_off(used);
                self.pending.clear();
                self.state = State::Open;
                self.frames_from(&rest, mqtt, answer)
            }
            State::Open if self.frame.is_none() && !self.pending.is_empty() => {
                // A header split across reads: join it with what came now.
                let mut joined = std::mem::take(&mut self.pending);
                joined.extend_from_slice(input);
                self.frames_from(&joined, mqtt, answer)
            }
            State::Open => self.frames_from(input, mqtt, answer),
        }
    }

    /// Checks the response collected so far. `Ok(Some(n))`: upgraded by a response of `n`
    /// bytes; `Ok(None)`: incomplete.
    fn upgrade(&mut self) -> Result<Option<usize>, TransportError> {
        let State::AwaitingUpgrade { accept } = &self.state else {
            return Ok(None);
        };
        let refused = |why: String| TransportError::Upgrade(why);
        let mut headers = [httparse::EMPTY_HEADER; UPGRADE_HEADERS_MAX];
        let mut response = httparse::Response::new(&mut headers);
        let used = match response.parse(&self.pending) {
            Ok(httparse::Status::Complete(used)) => used,
            Ok(httparse::Status::Partial) if self.pending.len() <= UPGRADE_RESPONSE_BYTES_MAX => {
                return Ok(None)
            }
            Ok(httparse::Status::Partial) => return Err(refused("response too long".into())),
            Err(e) => return Err(refused(format!("malformed response: {e}"))),
        };
        let header = |name: &str| {
            response
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case(name))
                .and_then(|h| std::str::from_utf8(h.value).ok())
                .map(str::trim)
        };
        if response.code != Some(101) {
            let code = response.code.unwrap_or(0);
            let reason = response.reason.unwrap_or("");
            return Err(refused(format!("the server answered {code} {reason}")));
        }
        let has = |name: &str, token: &str| {
            header(name).is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
        };
        if !has("upgrade", "websocket") || !has("connection", "upgrade") {
            return Err(refused("101 without Upgrade: websocket".into()));
        }
        if header("sec-websocket-accept") != Some(accept.as_str()) {
            return Err(refused("wrong Sec-WebSocket-Accept".into()));
        }
        // [MQTT-6.0.0-4]: the server selects the `mqtt` subprotocol we offered.
        if header("sec-websocket-protocol") != Some("mqtt") {
            return Err(refused("no Sec-WebSocket-Protocol: mqtt in the 101".into()));
        }
        Ok(Some(used))
    }

    /// Reads frames: data payloads stream into `mqtt` as they arrive (a large frame is never
    /// buffered whole); control frames are answered.
    fn frames_from(
        &mut self,
        mut input: &[u8],
        mqtt: &mut BytesMut,
        answer: &mut Vec<u8>,
    ) -> Result<(), TransportError> {
        loop {
            if let Some(frame) = &mut self.frame {
                let take = input.len().min(frame.remaining as usize);
                if matches!(frame.opcode, OpCode::Data(_)) {
                    mqtt.extend_from_slice(&input[..take]);
                } else {
                    self.pending.extend_from_slice(&input[..take]);
                }
                frame.remaining -= take as u64;
                input = &input[take..];
                if frame.remaining > 0 {
                    return Ok(());
                }
                let opcode = frame.opcode;
                self.frame = None;
                if let OpCode::Control(control) = opcode {
                    let payload = std::mem::take(&mut self.pending);
                    self.control(control, &payload, answer)?;
                }
            }
            if input.is_empty() {
                return Ok(());
            }
            let mut cursor = Cursor::new(input);
            let (header, length) = match FrameHeader::parse(&mut cursor) {
                Ok(Some(parsed)) => parsed,
                Ok(None) => {
                    // At most 13 bytes of an incomplete header wait for the next read.
                    self.pending.extend_from_slice(input);
                    return Ok(());
                }
                Err(_) => return self.fail(CLOSE_PROTOCOL_ERROR, "bad frame header", answer),
            };
            input = &input[cursor.position() as usize..];
            self.start_frame(&header, length, answer)?;
        }
    }

    fn start_frame(
        &mut self,
        header: &FrameHeader,
        length: u64,
        answer: &mut Vec<u8>,
    ) -> Result<(), TransportError> {
        if header.rsv1 || header.rsv2 || header.rsv3 {
            return self.fail(CLOSE_PROTOCOL_ERROR, "reserved bits set", answer);
        }
        // RFC 6455 5.1: a client closes on a masked server frame.
        if header.mask.is_some() {
            return self.fail(CLOSE_PROTOCOL_ERROR, "masked server frame", answer);
        }
        match header.opcode {
            OpCode::Data(Data::Text) => {
                return self.fail(CLOSE_UNSUPPORTED_DATA, "text frame", answer)
            }
            OpCode::Data(Data::Binary) if self.in_binary_message => {
                return self.fail(
                    CLOSE_PROTOCOL_ERROR,
                    "new message in a fragmented one",
                    answer,
                )
            }
            OpCode::Data(Data::Continue) if !self.in_binary_message => {
                return self.fail(CLOSE_PROTOCOL_ERROR, "continuation of nothing", answer)
            }
            OpCode::Data(Data::Binary | Data::Continue) => {
                self.in_binary_message = !header.is_final;
            }
            OpCode::Data(Data::Reserved(_)) | OpCode::Control(Control::Reserved(_)) => {
                return self.fail(CLOSE_PROTOCOL_ERROR, "reserved opcode", answer)
            }
            OpCode::Control(_) if !header.is_final || length > CONTROL_PAYLOAD_MAX => {
                return self.fail(CLOSE_PROTOCOL_ERROR, "bad control frame", answer)
            }
            OpCode::Control(_) => {}
        }
        if length > FRAME_PAYLOAD_MAX_BYTES {
            return self.fail(CLOSE_TOO_BIG, "frame too large", answer);
        }
        // An empty frame completes at once in `frames_from`'s next turn.
        self.frame = Some(Frame {
            opcode: header.opcode,
            remaining: length,
        });
        Ok(())
    }

    fn control(
        &mut self,
        control: Control,
        payload: &[u8],
        answer: &mut Vec<u8>,
    ) -> Result<(), TransportError> {
        match control {
            Control::Ping => {
                self.write_frame(OpCode::Control(Control::Pong), payload, answer);
                Ok(())
            }
            Control::Close => {
                // Echo the server's code (RFC 6455 5.5.1), then we are done.
                let code = match payload {
                    [hi, lo, ..] => u16::from_be_bytes([*hi, *lo]),
                    _ => CLOSE_NORMAL,
                };
                self.close(code, answer);
                Err(TransportError::PeerClosed)
            }
            _ => Ok(()), // pong: nothing to do
        }
    }

    fn fail(
        &mut self,
        code: u16,
        why: &'static str,
        answer: &mut Vec<u8>,
    ) -> Result<(), TransportError> {
        self.close(code, answer);
        Err(TransportError::WebSocket(why))
    }

    /// Appends a close frame with `code`, once; nothing before the upgrade.
    pub fn close(&mut self, code: u16, answer: &mut Vec<u8>) {
        if let State::Open = self.state {
            self.write_frame(OpCode::Control(Control::Close), &code.to_be_bytes(), answer);
        }
        self.state = State::Closed;
        self.frame = None;
        self.pending = Vec::new();
    }

    /// The orderly close, code 1000.
    pub fn close_normal(&mut self, answer: &mut Vec<u8>) {
        self.close(CLOSE_NORMAL, answer);
    }

    /// Frames MQTT bytes as binary frames of at most [`FRAME_OUT_PAYLOAD_MAX_BYTES`]: one
    /// frame for a usual write batch.
    pub fn frame(&mut self, mqtt: &[u8], out: &mut Vec<u8>) {
        if let State::Open = self.state {
            for chunk in mqtt.chunks(FRAME_OUT_PAYLOAD_MAX_BYTES) {
                self.write_frame(OpCode::Data(Data::Binary), chunk, out);
            }
        }
    }

    /// A final frame, masked with a fresh key as every client frame must be (RFC 6455 5.3).
    fn write_frame(&mut self, opcode: OpCode, payload: &[u8], out: &mut Vec<u8>) {
        let mask = (self.next_random() as u32).to_le_bytes();
        let header = FrameHeader {
            is_final: true,
            rsv1: false,
            rsv2: false,
            rsv3: false,
            opcode,
            mask: Some(mask),
        };
        let mut head = [0u8; FRAME_HEADER_OUT_BYTES_MAX];
        let mut cursor = Cursor::new(&mut head[..]);
        header
            .format(payload.len() as u64, &mut cursor)
            .expect("a frame header fits in 14 bytes");
        let head_len = cursor.position() as usize;
        out.extend_from_slice(&head[..head_len]);
        let start = out.len();
        out.extend_from_slice(payload);
        apply_mask(&mut out[start..], mask);
    }

    /// xorshift64*: masks need not be secret here (RFC 6455 10.3 guards browsers against
    /// hostile scripts, and our payloads are our own), only different per frame.
    fn next_random(&mut self) -> u64 {
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// XORs `bytes` with the masking key, starting at the key's first byte: the broker's own.
fn apply_mask(bytes: &mut [u8], mask: [u8; 4]) {
    ringmq::transport::ws::unmask(bytes, mask, 0);
}

/// `Sec-WebSocket-Accept` for a client key (RFC 6455 4.2.2): the broker's own.
fn accept_key(key: &str) -> String {
    ringmq::transport::ws::accept_key(key)
}

#[cfg(test)]
#[path = "ws_tests.rs"]
mod tests;
