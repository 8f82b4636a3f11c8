//! Codec: `ringmq::codec::decode` and `encode` / `encode_publish`, by packet type and payload
//! size, for MQTT 3.1.1 and 5.0.
//!
//! Each group is one packet shape (PUBLISH QoS 0 and 1 at 16 B, 1 KiB and 64 KiB; PUBACK;
//! SUBSCRIBE; CONNECT) and holds four codec benchmarks (`decode` and `encode` at each level)
//! beside the baseline `memcpy`: a plain copy of the same number of bytes into a buffer that is
//! already allocated. Throughput is in bytes of the 3.1.1 encoding, so the report reads as
//! "how close to a memory copy is the codec". A 5.0 frame is a byte or so longer (its property
//! length), which the common throughput unit ignores.
//!
//! What each measures:
//! - `decode`: appending the frame to a reused read buffer, then framing (`check`), splitting
//!   the frame off and parsing it: what `Shard::handle_read` does per packet. The append is a
//!   copy of the frame, so subtract `memcpy` for the decoder alone.
//! - `encode`: measuring and writing the packet into a reused `BytesMut`, as the shard does once
//!   per subscriber (`encode_publish` for PUBLISH, `encode` for the rest).
//! - `memcpy`: `copy_from_slice` of the same bytes; the floor for anything that touches them.

mod common;

use std::hint::black_box;

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ringmq::codec::{
    self, ByteStr, Connect, Decoded, Packet, PacketId, Properties, ProtocolVersion, Publish, QoS,
    Subscribe, SubscriptionOptions,
};

/// The broker's default `packet_size_max`; every packet here is below it.
const PACKET_SIZE_MAX: u32 = 1024 * 1024;

const LEVELS: [(&str, ProtocolVersion); 2] = [
    ("v3.1.1", ProtocolVersion::V3_1_1),
    ("v5", ProtocolVersion::V5),
];

fn packet_id(n: u16) -> PacketId {
    PacketId::new(n).expect("benchmark packet ids are non-zero")
}

fn publish(qos: QoS, payload_bytes: usize) -> Packet {
    Packet::Publish(Publish {
        dup: false,
        qos,
        retain: false,
        topic: ByteStr::from("site/17/device/42/temp"),
        packet_id: (qos != QoS::AtMostOnce).then(|| packet_id(4711)),
        properties: Properties::default(),
        payload: Bytes::from(vec![0xA5; payload_bytes]),
    })
}

fn subscribe() -> Packet {
    let options = SubscriptionOptions {
        qos: QoS::AtLeastOnce,
        ..SubscriptionOptions::default()
    };
    Packet::Subscribe(Subscribe {
        packet_id: packet_id(7),
        properties: Properties::default(),
        filters: vec![
            (ByteStr::from("site/17/device/+/temp"), options),
            (ByteStr::from("site/17/alarm/#"), options),
        ],
    })
}

/// A typical device CONNECT: client id, keep-alive, user name and password; for 5.0 also a
/// session expiry and a Receive Maximum, the properties most clients send.
fn connect(version: ProtocolVersion) -> Packet {
    let mut properties = Properties::default();
    if version.is_v5() {
        properties.session_expiry_interval_s = Some(3600);
        properties.receive_maximum = Some(100);
    }
    Packet::Connect(Box::new(Connect {
        protocol: version,
        clean_start: true,
        keep_alive_s: 60,
        properties,
        client_id: ByteStr::from("site-17-device-42"),
        will: None,
        username: Some(ByteStr::from("device-42")),
        password: Some(Bytes::from_static(b"correct horse battery staple")),
    }))
}

fn encoded(packet: &Packet, version: ProtocolVersion) -> Bytes {
    let mut out = BytesMut::new();
    codec::encode(packet, version, &mut out).expect("benchmark packets encode");
    out.freeze()
}

/// Decodes `frame` once, to fail loudly before measuring if a packet does not round-trip.
fn check_round_trip(packet: &Packet, version: ProtocolVersion, frame: &Bytes) {
    let mut buf = BytesMut::from(&frame[..]);
    match codec::decode(&mut buf, version, PACKET_SIZE_MAX) {
        Ok(Decoded::Packet(decoded)) => assert_eq!(&decoded, packet, "round trip"),
        other => panic!("benchmark packet does not decode: {other:?}"),
    }
}

/// One group: decode and encode at both levels, then the memcpy baseline.
fn bench_packet(c: &mut Criterion, name: &str, make: impl Fn(ProtocolVersion) -> Packet) {
    let mut group = c.benchmark_group(format!("codec/{name}"));
    let v4_len = encoded(&make(ProtocolVersion::V3_1_1), ProtocolVersion::V3_1_1).len();
    group.throughput(Throughput::Bytes(v4_len as u64));
    for (label, version) in LEVELS {
        let packet = make(version);
        let frame = encoded(&packet, version);
        check_round_trip(&packet, version, &frame);
        let mut read_buf = BytesMut::with_capacity(frame.len());
        group.bench_function(format!("decode/{label}"), |b| {
            b.iter(|| {
                read_buf.extend_from_slice(black_box(&frame));
                codec::decode(&mut read_buf, version, PACKET_SIZE_MAX)
            })
        });
        let mut out = BytesMut::with_capacity(frame.len());
        group.bench_function(format!("encode/{label}"), |b| {
            b.iter(|| {
                out.clear();
                match black_box(&packet) {
                    Packet::Publish(publish) => codec::encode_publish(publish, version, &mut out),
                    other => codec::encode(other, version, &mut out),
                }
            })
        });
    }
    let source = encoded(&make(ProtocolVersion::V3_1_1), ProtocolVersion::V3_1_1);
    let mut target = vec![0u8; source.len()];
    group.bench_function("memcpy", |b| {
        b.iter(|| {
            target.copy_from_slice(black_box(&source));
            black_box(&mut target);
        })
    });
    group.finish();
}

fn codec_benches(c: &mut Criterion) {
    for (qos_label, qos) in [("qos0", QoS::AtMostOnce), ("qos1", QoS::AtLeastOnce)] {
        for (size_label, size) in [("16B", 16), ("1KiB", 1024), ("64KiB", 64 * 1024)] {
            bench_packet(c, &format!("publish_{qos_label}_{size_label}"), |_| {
                publish(qos, size)
            });
        }
    }
    bench_packet(c, "puback", |_| {
        Packet::PubAck(codec::Ack::new(packet_id(4711)))
    });
    bench_packet(c, "subscribe", |_| subscribe());
    bench_packet(c, "connect", connect);
}

criterion_group! {
    name = benches;
    config = common::config();
    targets = codec_benches
}
criterion_main!(benches);
