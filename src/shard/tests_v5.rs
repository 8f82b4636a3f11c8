//! MQTT 5.0 timing rules on the single-shard simulator, where the clock is virtual: session
//! expiry, will delay, message expiry, and outbound topic aliases. (Black-box tests of every
//! 5.0 feature, over sockets and across shards, are in `tests/v5_*.rs`.)

use crate::codec::PropertyValues;
use std::time::Duration;

use crate::codec::{ByteStr, Packet, Properties, QoS};
use crate::config::Limits;

use super::tests::{publish, publishes, subscribe, will, Sim};

fn expiry(s: u32) -> Properties {
    Properties::from(PropertyValues {
        session_expiry_interval_s: Some(s),
        ..Default::default()
    })
}

#[test]
fn session_expires_after_its_interval_and_not_before() {
    let mut sim = Sim::new(Limits::default());
    let (sub, _) = sim.connect_v5("sub", true, expiry(10), None);
    sim.send(sub, &subscribe(1, &[("t", QoS::AtLeastOnce)]));
    sim.recv(sub);
    sim.shard.handle_closed(sim.now, sub);
    sim.advance(Duration::from_secs(9));
    let (sub, ack) = sim.connect_v5("sub", false, expiry(10), None);
    assert!(ack.session_present, "kept for its 10 s");
    assert_eq!(sim.shard.stats().sessions_expired, 0);
    // The reconnect restarted the clock: gone 10 s after the second disconnect.
    sim.shard.handle_closed(sim.now, sub);
    sim.advance(Duration::from_secs(9));
    assert_eq!(sim.shard.stats().sessions_expired, 0);
    sim.advance(Duration::from_secs(2));
    assert_eq!(sim.shard.stats().sessions_expired, 1);
    let (_, ack) = sim.connect_v5("sub", false, expiry(10), None);
    assert!(!ack.session_present, "expired after 10 s");
}

#[test]
fn delayed_will_waits_and_a_reconnect_cancels_it() {
    let mut sim = Sim::new(Limits::default());
    let witness = sim.subscribed("witness", true, &[("will/#", QoS::AtLeastOnce)]);
    let mut delayed = will("will/a", "gone");
    delayed.properties.will_delay_interval_s = Some(5);
    let (a, _) = sim.connect_v5("a", true, expiry(60), Some(delayed.clone()));
    sim.shard.handle_closed(sim.now, a);
    sim.advance(Duration::from_secs(4));
    assert!(publishes(&sim.recv(witness).0).is_empty(), "not before 5 s");
    sim.advance(Duration::from_secs(2));
    let got = sim.recv(witness).0;
    assert_eq!(publishes(&got).len(), 1, "published at 5 s");

    // Same again, but the client comes back within the delay [MQTT-3.1.3-9].
    let (b, _) = sim.connect_v5("b", true, expiry(60), Some(delayed.clone()));
    sim.shard.handle_closed(sim.now, b);
    sim.advance(Duration::from_secs(2));
    sim.connect_v5("b", false, expiry(60), None);
    sim.advance(Duration::from_secs(10));
    assert!(publishes(&sim.recv(witness).0).is_empty(), "cancelled");

    // A session that ends before the delay publishes the will at its end.
    let mut short = delayed;
    short.properties.will_delay_interval_s = Some(30);
    let (c, _) = sim.connect_v5("c", true, expiry(3), Some(short));
    sim.shard.handle_closed(sim.now, c);
    sim.advance(Duration::from_secs(4));
    assert_eq!(publishes(&sim.recv(witness).0).len(), 1, "at session end");
}

#[test]
fn queued_message_expires_and_carries_the_time_left() {
    let mut sim = Sim::new(Limits::default());
    let (sub, _) = sim.connect_v5("sub", true, expiry(100), None);
    sim.send(sub, &subscribe(1, &[("t", QoS::AtLeastOnce)]));
    sim.recv(sub);
    sim.shard.handle_closed(sim.now, sub);
    let (publisher, _) = sim.connect_v5("pub", true, Properties::default(), None);
    for (payload, expiry_s) in [("short", 2), ("long", 10)] {
        let mut packet = publish("t", payload, QoS::AtLeastOnce, false, Some(1));
        if let Packet::Publish(p) = &mut packet {
            p.properties.message_expiry_interval_s = Some(expiry_s);
        }
        sim.send(publisher, &packet);
    }
    sim.advance(Duration::from_secs(4));
    let (sub, ack) = sim.connect_v5("sub", false, expiry(100), None);
    assert!(ack.session_present);
    let got = sim.recv(sub).0;
    let got = publishes(&got);
    assert_eq!(got.len(), 1, "the 2 s message expired in the queue");
    assert_eq!(&got[0].payload[..], b"long");
    assert_eq!(got[0].properties.message_expiry_interval_s, Some(6));
}

#[test]
fn outbound_topic_aliases_up_to_the_clients_maximum() {
    let mut sim = Sim::new(Limits::default());
    let properties = Properties::from(PropertyValues {
        topic_alias_maximum: Some(1),
        ..Default::default()
    });
    let (sub, _) = sim.connect_v5("sub", true, properties, None);
    sim.send(sub, &subscribe(1, &[("#", QoS::AtMostOnce)]));
    sim.recv(sub);
    let publisher = sim.connect("pub", true).0;
    for topic in ["a", "b", "a", "b"] {
        sim.send(
            publisher,
            &publish(topic, "x", QoS::AtMostOnce, false, None),
        );
    }
    let got = sim.recv(sub).0;
    let seen: Vec<(ByteStr, Option<u16>)> = publishes(&got)
        .iter()
        .map(|p| (p.topic.clone(), p.properties.topic_alias))
        .collect();
    let expected = vec![
        (ByteStr::from("a"), Some(1)),
        (ByteStr::from("b"), None),
        (ByteStr::from(""), Some(1)),
        (ByteStr::from("b"), None),
    ];
    assert_eq!(seen, expected);
}

#[test]
fn resume_with_a_smaller_receive_maximum_resends_only_what_fits() {
    let mut sim = Sim::new(Limits::default());
    let (sub, _) = sim.connect_v5("sub", true, expiry(60), None);
    sim.send(sub, &subscribe(1, &[("t", QoS::AtLeastOnce)]));
    sim.recv(sub);
    let publisher = sim.connect("pub", true).0;
    for id in 1..=5 {
        sim.send(
            publisher,
            &publish("t", &id.to_string(), QoS::AtLeastOnce, false, Some(id)),
        );
    }
    assert_eq!(
        publishes(&sim.recv(sub).0).len(),
        5,
        "all five in flight, unacknowledged"
    );
    sim.shard.handle_closed(sim.now, sub);
    let mut properties = expiry(60);
    properties.receive_maximum = Some(2);
    let (sub, ack) = sim.connect_v5("sub", false, properties, None);
    assert!(ack.session_present);
    let got = sim.recv(sub).0;
    let got = publishes(&got);
    // [MQTT-3.3.4-9]: no more than the new Receive Maximum unacknowledged.
    assert_eq!(got.len(), 2);
    assert!(got.iter().all(|p| p.dup), "resends carry DUP");
    let first = got[0].packet_id.expect("QoS 1");
    sim.send(sub, &Packet::PubAck(crate::codec::Ack::new(first)));
    let next = sim.recv(sub).0;
    let next = publishes(&next);
    assert_eq!(next.len(), 1, "one acknowledged, one more sent");
    assert_eq!(&next[0].payload[..], b"3");
}
