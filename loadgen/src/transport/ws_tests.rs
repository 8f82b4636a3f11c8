//! The WebSocket client against hand-made server bytes: the upgrade's checks, frames split
//! across reads and packed into one read, control frames, and the protocol errors.

use super::*;

/// A client that has sent its request, and the `101` that accepts it.
fn upgrading() -> (WsClient, Vec<u8>) {
    let spec = WsSpec {
        path: "/mqtt".into(),
        host: "127.0.0.1:8080".into(),
    };
    let mut client = WsClient::new(&spec, 42);
    let mut request = Vec::new();
    client.start(&mut request);
    let text = String::from_utf8(request).expect("ASCII request");
    assert!(text.starts_with("GET /mqtt HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n"));
    assert!(text.contains("Sec-WebSocket-Protocol: mqtt\r\n"));
    let key = text
        .lines()
        .find_map(|l| l.strip_prefix("Sec-WebSocket-Key: "))
        .expect("a key");
    let response = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {}\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n",
        accept_key(key)
    );
    (client, response.into_bytes())
}

fn open() -> WsClient {
    let (mut client, response) = upgrading();
    let (mut mqtt, mut answer) = (BytesMut::new(), Vec::new());
    client
        .receive(&response, &mut mqtt, &mut answer)
        .expect("upgraded");
    assert!(client.is_open() && mqtt.is_empty() && answer.is_empty());
    client
}

/// An unmasked server frame.
fn server_frame(opcode: OpCode, is_final: bool, payload: &[u8]) -> Vec<u8> {
    let header = FrameHeader {
        is_final,
        opcode,
        ..FrameHeader::default()
    };
    let mut out = Vec::new();
    header
        .format(payload.len() as u64, &mut out)
        .expect("into a Vec");
    out.extend_from_slice(payload);
    out
}

/// Parses our own masked frames back: (opcode, unmasked payload) each.
fn client_frames(mut bytes: &[u8]) -> Vec<(OpCode, Vec<u8>)> {
    let mut frames = Vec::new();
    while !bytes.is_empty() {
        let mut cursor = Cursor::new(bytes);
        let (header, length) = FrameHeader::parse(&mut cursor)
            .expect("valid header")
            .expect("whole header");
        let start = cursor.position() as usize;
        let mut payload = bytes[start..start + length as usize].to_vec();
        apply_mask(&mut payload, header.mask.expect("client frames are masked"));
        frames.push((header.opcode, payload));
        bytes = &bytes[start + length as usize..];
    }
    frames
}

#[test]
fn frames_after_the_101_in_the_same_read_are_data() {
    let (mut client, mut bytes) = upgrading();
    bytes.extend(server_frame(
        OpCode::Data(Data::Binary),
        true,
        b"\x20\x02\x00\x00",
    ));
    let (mut mqtt, mut answer) = (BytesMut::new(), Vec::new());
    client
        .receive(&bytes, &mut mqtt, &mut answer)
        .expect("upgraded");
    assert_eq!(&mqtt[..], b"\x20\x02\x00\x00");
}

#[test]
fn a_wrong_accept_key_or_status_is_refused() {
    let (mut client, response) = upgrading();
    let text = String::from_utf8(response).expect("ASCII");
    let start = text.find("Accept: ").expect("accept") + "Accept: ".len();
    let mut wrong = text.clone();
    wrong.replace_range(start..start + 4, "AAAA");
    let (mut mqtt, mut answer) = (BytesMut::new(), Vec::new());
    let error = client.receive(wrong.as_bytes(), &mut mqtt, &mut answer);
    assert!(matches!(error, Err(TransportError::Upgrade(ref why)) if why.contains("Accept")));

    let (mut client, _) = upgrading();
    let refused = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n";
    let error = client.receive(refused, &mut mqtt, &mut answer);
    assert!(matches!(error, Err(TransportError::Upgrade(ref why)) if why.contains("404")));

    let (mut client, _) = upgrading();
    let no_protocol = text.replace("Sec-WebSocket-Protocol: mqtt\r\n", "");
    let error = client.receive(no_protocol.as_bytes(), &mut mqtt, &mut answer);
    assert!(matches!(error, Err(TransportError::Upgrade(_))));
}

#[test]
fn the_response_may_arrive_byte_by_byte() {
    let (mut client, response) = upgrading();
    let (mut mqtt, mut answer) = (BytesMut::new(), Vec::new());
    for byte in &response {
        assert!(!client.is_open());
        client
            .receive(std::slice::from_ref(byte), &mut mqtt, &mut answer)
            .expect("fine");
    }
    assert!(client.is_open());
}

#[test]
fn payloads_span_reads_and_frames_hold_several_packets() {
    let mut client = open();
    // Two frames: one holding two PINGRESPs and the start of a PUBLISH, one continuing it;
    // then a fragmented message (binary, continuation). Fed one byte at a time.
    let mut stream = server_frame(
        OpCode::Data(Data::Binary),
        true,
        b"\xd0\x00\xd0\x00\x30\x05\x00\x01",
    );
    stream.extend(server_frame(OpCode::Data(Data::Binary), true, b"tab"));
    stream.extend(server_frame(OpCode::Data(Data::Binary), false, b"\xd0"));
    stream.extend(server_frame(OpCode::Data(Data::Continue), true, b"\x00"));
    let (mut mqtt, mut answer) = (BytesMut::new(), Vec::new());
    for byte in &stream {
        client
            .receive(std::slice::from_ref(byte), &mut mqtt, &mut answer)
            .expect("fine");
    }
    assert_eq!(&mqtt[..], b"\xd0\x00\xd0\x00\x30\x05\x00\x01tab\xd0\x00");
    assert!(answer.is_empty());
    assert!(client.pending.is_empty(), "no buffer kept when idle");
}

#[test]
fn pings_are_answered_and_a_close_is_echoed() {
    let mut client = open();
    let (mut mqtt, mut answer) = (BytesMut::new(), Vec::new());
    let ping = server_frame(OpCode::Control(Control::Ping), true, b"hi");
    client.receive(&ping, &mut mqtt, &mut answer).expect("fine");
    assert_eq!(
        client_frames(&answer),
        [(OpCode::Control(Control::Pong), b"hi".to_vec())]
    );
    answer.clear();
    let close = server_frame(
        OpCode::Control(Control::Close),
        true,
        &1001u16.to_be_bytes(),
    );
    let result = client.receive(&close, &mut mqtt, &mut answer);
    assert_eq!(result, Err(TransportError::PeerClosed));
    assert_eq!(
        client_frames(&answer),
        [(
            OpCode::Control(Control::Close),
            1001u16.to_be_bytes().to_vec()
        )]
    );
    answer.clear();
    client.frame(b"late", &mut answer);
    assert!(answer.is_empty(), "nothing is sent after the close");
}

#[test]
fn protocol_errors_close_with_their_code() {
    let cases: [(Vec<u8>, u16); 3] = [
        (
            server_frame(OpCode::Data(Data::Text), true, b"{}"),
            CLOSE_UNSUPPORTED_DATA,
        ),
        (
            server_frame(OpCode::Data(Data::Continue), true, b"x"),
            CLOSE_PROTOCOL_ERROR,
        ),
        (
            // A masked server frame (RFC 6455 5.1).
            {
                let mut frame = server_frame(OpCode::Data(Data::Binary), true, b"");
                frame[1] |= 0x80;
                frame.extend_from_slice(&[1, 2, 3, 4]);
                frame
            },
            CLOSE_PROTOCOL_ERROR,
        ),
    ];
    for (bytes, code) in cases {
        let mut client = open();
        let (mut mqtt, mut answer) = (BytesMut::new(), Vec::new());
        let result = client.receive(&bytes, &mut mqtt, &mut answer);
        assert!(
            matches!(result, Err(TransportError::WebSocket(_))),
            "{result:?}"
        );
        assert_eq!(
            client_frames(&answer),
            [(OpCode::Control(Control::Close), code.to_be_bytes().to_vec())]
        );
        assert!(mqtt.is_empty());
    }
}

#[test]
fn output_is_masked_binary_frames_with_fresh_keys() {
    let mut client = open();
    let mut out = Vec::new();
    client.frame(b"\xc0\x00", &mut out);
    client.frame(b"\xc0\x00", &mut out);
    let frames = client_frames(&out);
    assert_eq!(frames.len(), 2);
    assert!(frames
        .iter()
        .all(|(op, p)| *op == OpCode::Data(Data::Binary) && p == b"\xc0\x00"));
    assert_ne!(out[2..6], out[10..14], "each frame has its own mask");
    out.clear();
    let big = vec![7u8; FRAME_OUT_PAYLOAD_MAX_BYTES + 3];
    client.frame(&big, &mut out);
    let frames = client_frames(&out);
    assert_eq!(
        frames.iter().map(|(_, p)| p.len()).collect::<Vec<_>>(),
        [FRAME_OUT_PAYLOAD_MAX_BYTES, 3]
    );
}

#[test]
fn masking_matches_the_byte_wise_definition() {
    let mask = [0x12, 0x34, 0x56, 0x78];
    let mut bytes: Vec<u8> = (0..11).collect();
    apply_mask(&mut bytes, mask);
    let want: Vec<u8> = (0..11u8).map(|i| i ^ mask[usize::from(i) % 4]).collect();
    assert_eq!(bytes, want);
}
