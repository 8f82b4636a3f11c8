//! A disk that fills up (issue #11): the log cannot be written, and the broker refuses new
//! persistent state with the protocol's answer instead of acknowledging what it cannot keep,
//! keeps serving everything else, exits when asked, and starts again on the same directory
//! with nothing on disk damaged. The "full disk" is a file-size limit (`ulimit -f`) on the
//! child broker, below one preallocated segment, so every log write fails with EFBIG: no mount,
//! no privileges, the same on every machine.

mod common;

use std::time::Duration;

use common::persist::TempDir;
use common::process::Process;
use common::{make_publish, packet_id, ConnectOpts, RawClient};
use ringmq::codec::{Packet, QoS, ReasonCode, Subscribe, SubscriptionOptions};

/// Bytes any file of the limited broker may reach: far below a 64 MiB segment.
const FILE_BYTES_MAX: u64 = 1 << 20;

fn config(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("ringmq.toml");
    let text = format!(
        "listen = [\"127.0.0.1:0\"]\nshards = 1\nsys_interval_s = 0\n\
         persistence_dir = \"{}\"\ndurability = \"sync\"\n",
        dir.join("log").display()
    );
    std::fs::write(&path, text).expect("write the config");
    path
}

fn subscribe(client: &mut RawClient, filter: &str) {
    let options = SubscriptionOptions {
        qos: QoS::AtLeastOnce,
        ..Default::default()
    };
    client.send(&Packet::Subscribe(Subscribe {
        packet_id: packet_id(1),
        properties: Default::default(),
        filters: vec![(filter.into(), options)],
    }));
}

#[test]
fn a_full_disk_refuses_new_persistent_state_and_damages_nothing() {
    let dir = TempDir::new("persist-disk-full");
    let config = config(dir.path());
    let broker = Process::start_limited(&config, &[], Some(FILE_BYTES_MAX));

    // The first persistent session is taken before anything was written; its SUBACK
    // promises a subscription on disk, so in `sync` mode it never comes.
    let mut first = RawClient::connected(broker.addr, ConnectOpts::v5("first").session_expiry(600));
    subscribe(&mut first, "t");
    assert_eq!(
        first.recv_timeout(Duration::from_millis(1500)),
        None,
        "a SUBACK the log cannot keep"
    );

    // The failed write made the log full: a new persistent session is refused with 0x97.
    let (_, connack) =
        RawClient::connect(broker.addr, ConnectOpts::v5("second").session_expiry(600));
    assert_eq!(connack.code, ReasonCode::QUOTA_EXCEEDED);

    // Everything that needs no disk still works: a clean session's QoS 0 round trip.
    let mut reader = RawClient::connected(broker.addr, ConnectOpts::v5("reader"));
    let options = SubscriptionOptions::default();
    reader.send(&Packet::Subscribe(Subscribe {
        packet_id: packet_id(1),
        properties: Default::default(),
        filters: vec![("q0".into(), options)],
    }));
    assert!(matches!(reader.recv(), Packet::SubAck(_)));
    let mut writer = RawClient::connected(broker.addr, ConnectOpts::v5("writer"));
    writer.send(&Packet::Publish(make_publish(
        "q0",
        b"still up",
        QoS::AtMostOnce,
        false,
    )));
    match reader.recv() {
        Packet::Publish(p) => assert_eq!(&p.payload[..], b"still up"),
        other => panic!("expected the QoS 0 message, got {other:?}"),
    }
    drop((first, reader, writer));

    // It exits when asked, although its last commit cannot be written either.
    assert!(broker.terminate().success());

    // With room again, it starts on the same directory: nothing was left damaged.
    let broker = Process::start(&config, &[]);
    let segments = std::fs::read_dir(dir.path().join("log"))
        .expect("the log directory exists")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect::<Vec<_>>();
    assert!(
        segments.iter().all(|name| !name.ends_with(".corrupt")),
        "{segments:?}"
    );
    // And takes new persistent sessions again, acknowledging their subscriptions.
    let mut again =
        RawClient::connected(broker.addr, ConnectOpts::v5("second").session_expiry(600));
    subscribe(&mut again, "t");
    assert!(matches!(again.recv(), Packet::SubAck(_)));
    assert!(broker.terminate().success());
}
