//! Decodes arbitrary bytes at every protocol level until the input is used up, incomplete or
//! refused. Every packet that decodes must re-encode, and the re-encoding must decode to the
//! same packet, with `encoded_len` equal to the bytes written.

#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use ringmq::codec::{decode, encode, encoded_len, Decoded, Packet, ProtocolVersion};

const VERSIONS: [ProtocolVersion; 3] = [
    ProtocolVersion::V3_1,
    ProtocolVersion::V3_1_1,
    ProtocolVersion::V5,
];

/// Large enough never to refuse what a fuzz input can hold; the limit has its own tests.
const PACKET_SIZE_MAX: u32 = 1 << 20;

fn re_encode(packet: &Packet, version: ProtocolVersion) {
    let mut out = BytesMut::new();
    let written = encode(packet, version, &mut out).expect("a decoded packet re-encodes");
    assert_eq!(written, out.len());
    assert_eq!(encoded_len(packet, version), written);
    match decode(&mut out, version, u32::MAX) {
        Ok(Decoded::Packet(again)) => assert_eq!(&again, packet),
        other => panic!("re-encoded {packet:?} decodes as {other:?}"),
    }
    assert!(out.is_empty(), "re-encoding left {} bytes", out.len());
}

fuzz_target!(|data: &[u8]| {
    for version in VERSIONS {
        let mut buf = BytesMut::from(data);
        loop {
            let before = buf.len();
            match decode(&mut buf, version, PACKET_SIZE_MAX) {
                Ok(Decoded::Packet(packet)) => {
                    assert!(buf.len() < before);
                    re_encode(&packet, version);
                }
                Ok(Decoded::Incomplete { needed }) => {
                    assert!(needed >= 1);
                    assert_eq!(buf.len(), before);
                    break;
                }
                Err(_) => break,
            }
        }
    }
});
