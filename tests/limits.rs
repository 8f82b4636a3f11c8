//! Per-connection resources stay bounded over real sockets (hardening): a client that pipelines
//! requests and never reads its socket is paused, not buffered for without end.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use common::{start_broker, ConnectOpts, Witness};
use ringmq::codec::ProtocolVersion;

/// Writes PINGREQs without reading any PINGRESP until the broker stops taking them (the
/// socket stays full), or `cap` bytes went out. Returns the bytes written.
fn flood_pings_without_reading(stream: &mut TcpStream, cap: usize) -> usize {
    stream.set_nonblocking(true).expect("non-blocking");
    let chunk: Vec<u8> = std::iter::repeat_n([0xC0u8, 0x00], 32 * 1024)
        .flatten()
        .collect();
    let mut written = 0;
    let mut stalled_since: Option<Instant> = None;
    while written < cap {
        match stream.write(&chunk) {
            Ok(n) => {
                written += n;
                stalled_since = None;
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                let since = *stalled_since.get_or_insert_with(Instant::now);
                if since.elapsed() > Duration::from_secs(1) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => panic!("write failed: {e}"),
        }
    }
    written
}

#[test]
fn a_client_that_pipelines_and_never_reads_is_paused_at_its_output_limit() {
    let broker = start_broker(|limits| limits.outbound_buffer_max_bytes = 64 * 1024);
    let witness = Witness::new(broker.addr);
    let mut stream = TcpStream::connect(broker.addr).expect("connect");
    let connect = ConnectOpts::new(ProtocolVersion::V3_1_1, "never-reads").to_packet();
    let mut buf = BytesMut::new();
    ringmq::codec::encode(&connect, ProtocolVersion::V3_1_1, &mut buf).expect("encode");
    stream.write_all(&buf).expect("CONNECT");
    let mut connack = [0u8; 4];
    stream.read_exact(&mut connack).expect("CONNACK");
    assert_eq!(connack, [0x20, 0x02, 0x00, 0x00]);
    // Loopback socket buffers hold a few MiB each way; an unbounded broker would take all
    // 64 MiB (and buffer as much PINGRESP).
    let cap = 64 << 20;
    let written = flood_pings_without_reading(&mut stream, cap);
    assert!(
        written < 32 << 20,
        "the broker kept reading: {written} bytes taken"
    );
    // Everyone else is served as usual.
    witness.assert_alive();
}
