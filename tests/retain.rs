//! Retained messages over real sockets: stored, replaced, deleted, matched by wildcards, the
//! retain flag on delivery, and the `retained_messages_max` limit.
//!
//! "Nothing retained" is shown with a sentinel: after subscribing, another client publishes a
//! live message to the same filter, and it must be the first thing the subscriber sees
//! (retained messages are sent right after the SUBACK, before any later publish).

mod common;

use std::collections::BTreeMap;

use common::{start_broker, start_broker_with, text, ConnectOpts, RawClient};
use ringmq::codec::QoS;

#[test]
fn retained_message_is_delivered_on_subscribe_with_retain_1() {
    let broker = start_broker(|_| {});
    let mut publisher = RawClient::connected(broker.addr, ConnectOpts::v311("pub"));
    publisher.publish("status/door", b"open", QoS::AtLeastOnce, true);
    let mut subscriber = RawClient::connected(broker.addr, ConnectOpts::v311("sub"));
    subscriber.subscribe(&[("status/door", QoS::AtLeastOnce)]);
    // [MQTT-3.3.1-6]: sent on subscribe; [MQTT-3.3.1-8]: with the retain flag set.
    let got = subscriber.recv_publish();
    assert_eq!((got.topic.as_str(), text(&got)), ("status/door", "open"));
    assert!(
        got.retain,
        "a retained message sent on subscribe has retain=1"
    );
    assert_eq!(got.qos, QoS::AtLeastOnce);
}

#[test]
fn live_forward_to_an_existing_subscriber_has_retain_0() {
    let broker = start_broker(|_| {});
    let mut subscriber = RawClient::connected(broker.addr, ConnectOpts::v311("sub"));
    subscriber.subscribe(&[("status/door", QoS::AtMostOnce)]);
    let mut publisher = RawClient::connected(broker.addr, ConnectOpts::v311("pub"));
    publisher.publish("status/door", b"closed", QoS::AtMostOnce, true);
    // [MQTT-3.3.1-9]: a message forwarded to an established subscription has retain=0.
    let got = subscriber.recv_publish();
    assert_eq!(text(&got), "closed");
    assert!(!got.retain, "live forward must have retain=0");
}

#[test]
fn a_new_retained_message_replaces_the_old_one() {
    let broker = start_broker(|_| {});
    let mut publisher = RawClient::connected(broker.addr, ConnectOpts::v311("pub"));
    publisher.publish("status/light", b"on", QoS::AtLeastOnce, true);
    publisher.publish("status/light", b"off", QoS::AtLeastOnce, true);
    let mut subscriber = RawClient::connected(broker.addr, ConnectOpts::v311("sub"));
    subscriber.subscribe(&[("status/light", QoS::AtLeastOnce)]);
    publisher.publish("status/light", b"sentinel", QoS::AtLeastOnce, false);
    // [MQTT-3.3.1-5]: the server keeps only the latest retained message per topic.
    let got = subscriber.recv_publish();
    assert_eq!((text(&got), got.retain), ("off", true));
    assert_eq!(
        text(&subscriber.recv_publish()),
        "sentinel",
        "the old retained message survived"
    );
}

#[test]
fn an_empty_retained_payload_deletes_the_retained_message() {
    let broker = start_broker(|_| {});
    let mut publisher = RawClient::connected(broker.addr, ConnectOpts::v311("pub"));
    publisher.publish("status/fan", b"spinning", QoS::AtLeastOnce, true);
    publisher.publish("status/fan", b"", QoS::AtLeastOnce, true);
    let mut subscriber = RawClient::connected(broker.addr, ConnectOpts::v311("sub"));
    subscriber.subscribe(&[("status/fan", QoS::AtLeastOnce)]);
    publisher.publish("status/fan", b"sentinel", QoS::AtLeastOnce, false);
    // [MQTT-3.3.1-10]/[MQTT-3.3.1-11]: a zero-byte retained message removes the retained one
    // and is not itself stored.
    let got = subscriber.recv_publish();
    assert_eq!(
        (text(&got), got.retain),
        ("sentinel", false),
        "a retained message survived"
    );
}

#[test]
fn a_wildcard_subscription_gets_every_matching_retained_message() {
    let broker = start_broker(|_| {});
    let mut publisher = RawClient::connected(broker.addr, ConnectOpts::v311("pub"));
    for (topic, payload) in [
        ("a/1", "one"),
        ("a/2", "two"),
        ("a/b/3", "three"),
        ("b/4", "four"),
    ] {
        publisher.publish(topic, payload.as_bytes(), QoS::AtLeastOnce, true);
    }
    let mut subscriber = RawClient::connected(broker.addr, ConnectOpts::v311("sub"));
    subscriber.subscribe(&[("a/#", QoS::AtLeastOnce)]);
    publisher.publish("a/end", b"sentinel", QoS::AtLeastOnce, false);
    // [MQTT-3.3.1-6]: every retained message matching the filter, in any order.
    let mut retained = BTreeMap::new();
    loop {
        let got = subscriber.recv_publish();
        if !got.retain {
            assert_eq!(text(&got), "sentinel");
            break;
        }
        retained.insert(got.topic.as_str().to_owned(), text(&got).to_owned());
    }
    let expected: BTreeMap<String, String> = [("a/1", "one"), ("a/2", "two"), ("a/b/3", "three")]
        .into_iter()
        .map(|(t, p)| (t.to_owned(), p.to_owned()))
        .collect();
    assert_eq!(retained, expected);
}

#[test]
fn retained_messages_max_refuses_a_new_topic_but_replacing_still_works() {
    // `$SYS` is off here so that only this test's messages count towards the limit.
    let broker = start_broker_with(|config| {
        config.sys_interval_s = 0;
        config.limits.retained_messages_max = 2;
    });
    let mut publisher = RawClient::connected(broker.addr, ConnectOpts::v311("pub"));
    publisher.publish("limit/1", b"first", QoS::AtLeastOnce, true);
    publisher.publish("limit/2", b"second", QoS::AtLeastOnce, true);
    publisher.publish("limit/3", b"over the limit", QoS::AtLeastOnce, true);
    publisher.publish("limit/1", b"replaced", QoS::AtLeastOnce, true);

    let mut subscriber = RawClient::connected(broker.addr, ConnectOpts::v311("sub"));
    subscriber.subscribe(&[("limit/#", QoS::AtLeastOnce)]);
    publisher.publish("limit/end", b"sentinel", QoS::AtLeastOnce, false);
    let mut retained = BTreeMap::new();
    loop {
        let got = subscriber.recv_publish();
        if !got.retain {
            break;
        }
        retained.insert(got.topic.as_str().to_owned(), text(&got).to_owned());
    }
    let expected: BTreeMap<String, String> = [("limit/1", "replaced"), ("limit/2", "second")]
        .into_iter()
        .map(|(t, p)| (t.to_owned(), p.to_owned()))
        .collect();
    assert_eq!(retained, expected);
}

#[test]
fn deleting_frees_room_under_retained_messages_max() {
    let broker = start_broker_with(|config| {
        config.sys_interval_s = 0;
        config.limits.retained_messages_max = 1;
    });
    let mut publisher = RawClient::connected(broker.addr, ConnectOpts::v311("pub"));
    publisher.publish("room/1", b"first", QoS::AtLeastOnce, true);
    publisher.publish("room/1", b"", QoS::AtLeastOnce, true);
    publisher.publish("room/2", b"fits now", QoS::AtLeastOnce, true);

    let mut subscriber = RawClient::connected(broker.addr, ConnectOpts::v311("sub"));
    subscriber.subscribe(&[("room/#", QoS::AtLeastOnce)]);
    let got = subscriber.recv_publish();
    assert_eq!(
        (got.topic.as_str(), text(&got), got.retain),
        ("room/2", "fits now", true)
    );
}
