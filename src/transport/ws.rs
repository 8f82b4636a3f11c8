//! MQTT over WebSocket (MQTT 5.0 section 6, RFC 6455), sans-IO: the HTTP upgrade, then binary
//! frames whose payloads, concatenated, are the MQTT byte stream. A packet may span frames and
//! a frame may hold several packets [MQTT-6.0.0-2]; the shard's decoder sees one stream either
//! way. The request is parsed with `httparse`, frame headers with tungstenite's codec; masking,
//! the accept key and the rules below are ours.
//!
//! | peer sends | answer |
//! |---|---|
//! | a GET without `Upgrade: websocket` | `426 Upgrade Required`, close |
//! | another path than the listener's | `404 Not Found`, close |
//! | no `mqtt` or `mqttv3.1` in `Sec-WebSocket-Protocol` | `400 Bad Request`, close [MQTT-6.0.0-3] |
//! | a request larger than [`UPGRADE_REQUEST_BYTES_MAX`] | `431`, close |
//! | a request not finished in `tls_handshake_timeout_s` | `408 Request Timeout`, close |
//! | a text frame | close 1003 [MQTT-6.0.0-1] |
//! | an unmasked frame, reserved bits, a bad control frame | close 1002 |
//! | a frame longer than `packet_size_max` | close 1009 |
//! | ping | pong with the same payload |
//! | close | the close echoed, then the end |

use std::io::Cursor;
use std::sync::Arc;

use sha1::{Digest, Sha1};
use tungstenite::protocol::frame::coding::{Control, Data, OpCode};
use tungstenite::protocol::frame::FrameHeader;

use super::TransportError;

/// Largest upgrade request accepted (request line and headers); browsers send under 1 KiB.
pub const UPGRADE_REQUEST_BYTES_MAX: usize = 8 * 1024;

/// Headers parsed from an upgrade request; more is a 431.
const UPGRADE_HEADERS_MAX: usize = 32;

/// A server frame header: 2 bytes, plus 8 for a 64-bit length.
pub const FRAME_HEADER_BYTES_MAX: usize = 10;

/// Close codes (RFC 6455 7.4.1).
pub const CLOSE_NORMAL: u16 = 1000;
const CLOSE_PROTOCOL_ERROR: u16 = 1002;
const CLOSE_UNSUPPORTED_DATA: u16 = 1003;
const CLOSE_TOO_BIG: u16 = 1009;

/// Control frames carry at most 125 bytes (RFC 6455 5.5).
const CONTROL_PAYLOAD_MAX: u64 = 125;

/// The GUID RFC 6455 appends to the client's key.
const ACCEPT_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// What one WebSocket listener asks of its connections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WsSettings {
    /// The request path the upgrade must use (`/mqtt` by default).
    pub path: String,
    /// Longest frame payload accepted: the broker's `packet_size_max`.
    pub frame_payload_max: u64,
}

enum State {
    /// Collecting the HTTP request.
    Upgrading,
    Open,
    /// A close frame was sent or received; nothing more is read.
    Closed,
}

/// The frame whose payload is arriving.
struct Frame {
    opcode: OpCode,
    mask: [u8; 4],
    /// Payload bytes read so far (the masking key's offset).
    read: u64,
    remaining: u64,
}

pub struct WsLayer {
    settings: Arc<WsSettings>,
    state: State,
    /// Bytes of pongs this read may still queue (see `transport::PONG_BACKLOG_MAX`).
    pong_budget: usize,
    /// Unparsed input: the request while upgrading, then a partial frame header (or a control
    /// frame's payload, at most 125 bytes). Empty and unallocated when idle.
    pending: Vec<u8>,
    frame: Option<Frame>,
    /// The first frame of the message being continued was binary.
    in_binary_message: bool,
}

impl WsLayer {
    pub fn new(settings: Arc<WsSettings>) -> WsLayer {
        WsLayer {
            settings,
            state: State::Upgrading,
            pong_budget: 0,
            pending: Vec::new(),
            frame: None,
            in_binary_message: false,
        }
    }

    pub fn is_open(&self) -> bool {
        matches!(self.state, State::Open)
    }

    /// Takes bytes from below (the socket or TLS). MQTT bytes go to `mqtt`; what the peer
    /// must be sent (the 101, a pong, a close frame) to `answer`; pongs only while they fit
    /// in `pong_budget` bytes.
    pub fn receive(
        &mut self,
        input: &[u8],
        mqtt: &mut Vec<u8>,
        answer: &mut Vec<u8>,
        pong_budget: usize,
    ) -> Result<(), TransportError> {
        self.pong_budget = pong_budget;
        let result = self.receive_inner(input, mqtt, answer);
        if self.pending.is_empty() {
            self.pending = Vec::new();
        }
        result
    }

    fn receive_inner(
        &mut self,
        input: &[u8],
        mqtt: &mut Vec<u8>,
        answer: &mut Vec<u8>,
    ) -> Result<(), TransportError> {
        let mut input = input;
        if let State::Upgrading = self.state {
            self.pending.extend_from_slice(input);
            let Some(used) = self.upgrade(answer)? else {
                return Ok(());
            };
            // Bytes after the request (a client that did not wait for the 101) are frames.
            let rest = self.pending.split_off(used);
            self.pending.clear();
            self.state = State::Open;
            return self.frames(&rest, mqtt, answer);
        }
        if let State::Closed = self.state {
            input = &[];
        }
        self.frames(input, mqtt, answer)
    }

    /// Parses the request collected so far. `Ok(Some(n))`: upgraded, the request was `n`
    /// bytes; `Ok(None)`: incomplete.
    fn upgrade(&mut self, answer: &mut Vec<u8>) -> Result<Option<usize>, TransportError> {
        let mut headers = [httparse::EMPTY_HEADER; UPGRADE_HEADERS_MAX];
        let mut request = httparse::Request::new(&mut headers);
        let used = match request.parse(&self.pending) {
            Ok(httparse::Status::Complete(used)) => used,
            Ok(httparse::Status::Partial) if self.pending.len() <= UPGRADE_REQUEST_BYTES_MAX => {
                return Ok(None)
            }
            Ok(httparse::Status::Partial) | Err(httparse::Error::TooManyHeaders) => {
                return self.refuse(answer, "431 Request Header Fields Too Large", "")
            }
            Err(_) => return self.refuse(answer, "400 Bad Request", ""),
        };
        let header = |name: &str| {
            request
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case(name))
                .and_then(|h| std::str::from_utf8(h.value).ok())
        };
        let has_token = |name: &str, token: &str| {
            header(name).is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
        };
        if request.method != Some("GET") {
            return self.refuse(answer, "405 Method Not Allowed", "Allow: GET\r\n");
        }
        let path = request.path.unwrap_or("");
        let path = path.split('?').next().unwrap_or(path);
        if path != self.settings.path {
            return self.refuse(answer, "404 Not Found", "");
        }
        if !has_token("upgrade", "websocket") || !has_token("connection", "upgrade") {
            return self.refuse(
                answer,
                "426 Upgrade Required",
                "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n",
            );
        }
        if header("sec-websocket-version").map(str::trim) != Some("13") {
            return self.refuse(
                answer,
                "426 Upgrade Required",
                "Sec-WebSocket-Version: 13\r\n",
            );
        }
        let Some(key) = header("sec-websocket-key")
            .map(str::trim)
            .filter(|k| k.len() == 24)
        else {
            return self.refuse(answer, "400 Bad Request", "");
        };
        // [MQTT-6.0.0-3], [MQTT-6.0.0-4]: the subprotocol is `mqtt`; 3.1 clients offer
        // `mqttv3.1`, and get it back.
        let protocol = header("sec-websocket-protocol").and_then(|offered| {
            offered
                .split(',')
                .map(str::trim)
                .find(|p| *p == "mqtt" || *p == "mqttv3.1")
        });
        let Some(protocol) = protocol else {
            return self.refuse(answer, "400 Bad Request", "");
        };
        answer.extend_from_slice(
            format!(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                 Sec-WebSocket-Accept: {}\r\nSec-WebSocket-Protocol: {protocol}\r\n\r\n",
                accept_key(key)
            )
            .as_bytes(),
        );
        Ok(Some(used))
    }

    fn refuse(
        &mut self,
        answer: &mut Vec<u8>,
        status: &'static str,
        headers: &str,
    ) -> Result<Option<usize>, TransportError> {
        answer.extend_from_slice(
            format!("HTTP/1.1 {status}\r\n{headers}Content-Length: 0\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        );
        self.state = State::Closed;
        Err(TransportError::Upgrade(status))
    }

    /// An upgrade request still incomplete when the handshake time ran out.
    pub fn time_out(&mut self, answer: &mut Vec<u8>) {
        if let State::Upgrading = self.state {
            let _ = self.refuse(answer, "408 Request Timeout", "");
        }
    }

    /// Reads frames: data payloads stream into `mqtt` as they arrive (a large frame is never
    /// buffered whole); control frames are answered.
    fn frames(
        &mut self,
        input: &[u8],
        mqtt: &mut Vec<u8>,
        answer: &mut Vec<u8>,
    ) -> Result<(), TransportError> {
        if self.frame.is_none() && !self.pending.is_empty() {
            // A header split across reads: join it with what came now.
            let mut joined = std::mem::take(&mut self.pending);
            joined.extend_from_slice(input);
            return self.frames_from(&joined, mqtt, answer);
        }
        self.frames_from(input, mqtt, answer)
    }

    fn frames_from(
        &mut self,
        mut input: &[u8],
        mqtt: &mut Vec<u8>,
        answer: &mut Vec<u8>,
    ) -> Result<(), TransportError> {
        loop {
            if let Some(frame) = &mut self.frame {
                let take = input.len().min(frame.remaining as usize);
                if frame.opcode.is_data() {
                    let start = mqtt.len();
                    mqtt.extend_from_slice(&input[..take]);
                    unmask(&mut mqtt[start..], frame.mask, frame.read);
                } else {
                    // Control payloads are at most 125 bytes: collect them whole.
                    self.pending.extend_from_slice(&input[..take]);
                }
                frame.read += take as u64;
                frame.remaining -= take as u64;
                input = &input[take..];
                if frame.remaining > 0 {
                    return Ok(());
                }
                let opcode = frame.opcode;
                let mask = frame.mask;
                self.frame = None;
                if !opcode.is_data() {
                    let mut payload = std::mem::take(&mut self.pending);
                    unmask(&mut payload, mask, 0);
                    self.control(opcode, &payload, answer)?;
                    if let State::Closed = self.state {
                        return Ok(());
                    }
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
                Err(_) => return self.close_with(CLOSE_PROTOCOL_ERROR, "bad frame header", answer),
            };
            input = &input[cursor.position() as usize..];
            self.start_frame(header, length, answer)?;
            if let State::Closed = self.state {
                return Ok(());
            }
        }
    }

    fn start_frame(
        &mut self,
        header: FrameHeader,
        length: u64,
        answer: &mut Vec<u8>,
    ) -> Result<(), TransportError> {
        if header.rsv1 || header.rsv2 || header.rsv3 {
            return self.close_with(CLOSE_PROTOCOL_ERROR, "reserved bits set", answer);
        }
        // RFC 6455 5.1: a server closes on an unmasked client frame.
        let Some(mask) = header.mask else {
            return self.close_with(CLOSE_PROTOCOL_ERROR, "unmasked client frame", answer);
        };
        match header.opcode {
            OpCode::Data(Data::Text) => {
                return self.close_with(CLOSE_UNSUPPORTED_DATA, "text frame", answer)
            }
            OpCode::Data(Data::Binary) if self.in_binary_message => {
                return self.close_with(
                    CLOSE_PROTOCOL_ERROR,
                    "new message inside a fragmented one",
                    answer,
                )
            }
            OpCode::Data(Data::Binary) => self.in_binary_message = !header.is_final,
            OpCode::Data(Data::Continue) if !self.in_binary_message => {
                return self.close_with(
                    CLOSE_PROTOCOL_ERROR,
                    "continuation without a message",
                    answer,
                )
            }
            OpCode::Data(Data::Continue) => self.in_binary_message = !header.is_final,
            OpCode::Data(Data::Reserved(_)) | OpCode::Control(Control::Reserved(_)) => {
                return self.close_with(CLOSE_PROTOCOL_ERROR, "reserved opcode", answer)
            }
            OpCode::Control(_) if !header.is_final || length > CONTROL_PAYLOAD_MAX => {
                return self.close_with(CLOSE_PROTOCOL_ERROR, "bad control frame", answer)
            }
            OpCode::Control(_) => {}
        }
        if length > self.settings.frame_payload_max {
            return self.close_with(CLOSE_TOO_BIG, "frame larger than packet_size_max", answer);
        }
        // An empty frame completes at once in `frames_from`'s next turn.
        self.frame = Some(Frame {
            opcode: header.opcode,
            mask,
            read: 0,
            remaining: length,
        });
        Ok(())
    }

    fn control(
        &mut self,
        opcode: OpCode,
        payload: &[u8],
        answer: &mut Vec<u8>,
    ) -> Result<(), TransportError> {
        match opcode {
            OpCode::Control(Control::Ping) => {
                let pong_bytes = 2 + payload.len();
                if pong_bytes <= self.pong_budget {
                    self.pong_budget -= pong_bytes;
                    write_frame(OpCode::Control(Control::Pong), payload, answer);
                }
                Ok(())
            }
            OpCode::Control(Control::Close) => {
                // Echo the peer's code (RFC 6455 5.5.1), then we are done.
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

    fn close_with(
        &mut self,
        code: u16,
        why: &'static str,
        answer: &mut Vec<u8>,
    ) -> Result<(), TransportError> {
        self.close(code, answer);
        Err(TransportError::WebSocket { code, why })
    }

    /// Appends a close frame with `code`, once; nothing before the upgrade.
    pub fn close(&mut self, code: u16, answer: &mut Vec<u8>) {
        if let State::Open = self.state {
            write_frame(OpCode::Control(Control::Close), &code.to_be_bytes(), answer);
        }
        self.state = State::Closed;
        self.frame = None;
        self.pending = Vec::new();
    }

    /// Frames MQTT bytes from the shard as one binary frame.
    pub fn frame(&mut self, mqtt: &[u8], out: &mut Vec<u8>) {
        if let State::Open = self.state {
            write_frame(OpCode::Data(Data::Binary), mqtt, out);
        }
    }
}

/// A final, unmasked server frame.
fn write_frame(opcode: OpCode, payload: &[u8], out: &mut Vec<u8>) {
    let header = FrameHeader {
        is_final: true,
        rsv1: false,
        rsv2: false,
        rsv3: false,
        opcode,
        mask: None,
    };
    // Writing into a `Vec` cannot fail.
    let _ = header.format(payload.len() as u64, out);
    out.extend_from_slice(payload);
}

/// XORs `bytes` with the masking key, `offset` bytes into the payload (masking and unmasking
/// are the same operation; the load generator's client masks with it). Eight bytes at a time:
/// this runs over every byte a WebSocket client sends.
pub fn unmask(bytes: &mut [u8], mask: [u8; 4], offset: u64) {
    let shift = (offset % 4) as usize;
    let mut rotated = [0u8; 8];
    for (i, byte) in rotated.iter_mut().enumerate() {
        *byte = mask[(shift + i) % 4];
    }
    let wide = u64::from_ne_bytes(rotated);
    let mut chunks = bytes.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        chunk.copy_from_slice(&(u64::from_ne_bytes(word) ^ wide).to_ne_bytes());
    }
    // The tail starts a multiple of 8 (so of 4) bytes after `offset`: the rotation still holds.
    for (byte, key) in chunks.into_remainder().iter_mut().zip(rotated) {
        *byte ^= key;
    }
}

/// `Sec-WebSocket-Accept` for a client key (RFC 6455 4.2.2).
pub fn accept_key(key: &str) -> String {
    use base64::Engine;
    let mut sha = Sha1::new();
    sha.update(key.as_bytes());
    sha.update(ACCEPT_GUID.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(sha.finalize())
}

trait IsData {
    fn is_data(&self) -> bool;
}

impl IsData for OpCode {
    fn is_data(&self) -> bool {
        matches!(self, OpCode::Data(_))
    }
}
