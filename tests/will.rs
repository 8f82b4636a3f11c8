//! Will messages over real sockets: published on every ungraceful end of a connection, never
//! after DISCONNECT, with the will's retain flag and QoS.

mod common;

use std::time::Duration;

use common::{start_broker, text, will, ConnectOpts, RawClient, CLOSE_TIMEOUT};
use ringmq::codec::{QoS, ReasonCode};

/// A client subscribed to `wills/#` at QoS 2, to see every will as it was published.
fn watcher(addr: std::net::SocketAddr) -> RawClient {
    let mut watcher = RawClient::connected(addr, ConnectOpts::v311("watcher"));
    watcher.subscribe(&[("wills/#", QoS::ExactlyOnce)]);
    watcher
}

fn with_will(id: &str) -> ConnectOpts {
    ConnectOpts::v311(id).will(will(
        &format!("wills/{id}"),
        b"gone",
        QoS::AtLeastOnce,
        false,
    ))
}

fn assert_will(watcher: &mut RawClient, id: &str) {
    let got = watcher.recv_publish();
    assert_eq!(
        (got.topic.as_str(), text(&got)),
        (format!("wills/{id}").as_str(), "gone")
    );
}

#[test]
fn will_is_published_when_the_socket_drops() {
    let broker = start_broker(|_| {});
    let mut watcher = watcher(broker.addr);
    let client = RawClient::connected(broker.addr, with_will("dropped"));
    // [MQTT-3.1.2-8]: a network connection closed without DISCONNECT publishes the will.
    drop(client);
    assert_will(&mut watcher, "dropped");
}

#[test]
fn will_is_published_on_keep_alive_timeout() {
    let broker = start_broker(|_| {});
    let mut watcher = watcher(broker.addr);
    let mut client = RawClient::connected(broker.addr, with_will("silent").keep_alive(1));
    // [MQTT-3.1.2-24]: no packet within 1.5 x keep-alive closes the connection; the will goes.
    client.expect_closed(Duration::from_secs(4));
    assert_will(&mut watcher, "silent");
}

#[test]
fn will_is_published_on_a_protocol_error() {
    let broker = start_broker(|_| {});
    let mut watcher = watcher(broker.addr);
    let opts = with_will("rude");
    let mut client = RawClient::connected(broker.addr, opts.clone());
    // [MQTT-3.1.0-2]: a second CONNECT is a protocol violation; the server closes the
    // connection, which [MQTT-3.1.2-8] counts as an ungraceful end.
    client.send(&opts.to_packet());
    client.expect_closed(CLOSE_TIMEOUT);
    assert_will(&mut watcher, "rude");
}

#[test]
fn will_is_published_on_takeover_and_v5_client_is_told_why() {
    let broker = start_broker(|_| {});
    let mut watcher = watcher(broker.addr);
    let opts = ConnectOpts::v5("twin").will(will("wills/twin", b"gone", QoS::AtLeastOnce, false));
    let mut first = RawClient::connected(broker.addr, opts);
    let _second = RawClient::connected(broker.addr, ConnectOpts::v5("twin"));
    // [MQTT-3.1.4-3] (5.0): the existing connection is closed, with DISCONNECT 0x8E
    // (session taken over), and its will is published.
    let disconnect = first
        .expect_closed(CLOSE_TIMEOUT)
        .expect("a 5.0 client is sent DISCONNECT");
    assert_eq!(disconnect.code, ReasonCode::SESSION_TAKEN_OVER);
    assert_will(&mut watcher, "twin");
}

#[test]
fn will_is_not_published_after_disconnect() {
    let broker = start_broker(|_| {});
    let mut watcher = watcher(broker.addr);
    let client = RawClient::connected(broker.addr, with_will("polite"));
    // [MQTT-3.1.2-10]: DISCONNECT deletes the will. `disconnect` waits for the broker's close.
    client.disconnect();
    let mut other = RawClient::connected(broker.addr, ConnectOpts::v311("other"));
    other.publish("wills/sentinel", b"sentinel", QoS::AtMostOnce, false);
    let got = watcher.recv_publish();
    assert_eq!(
        got.topic.as_str(),
        "wills/sentinel",
        "the will was published after DISCONNECT"
    );
}

#[test]
fn will_retain_flag_stores_the_will_as_retained() {
    let broker = start_broker(|_| {});
    let opts =
        ConnectOpts::v311("retainer").will(will("wills/retainer", b"gone", QoS::AtLeastOnce, true));
    let mut watcher = watcher(broker.addr);
    drop(RawClient::connected(broker.addr, opts));
    // Wait until the will has been published before subscribing afresh.
    assert_will(&mut watcher, "retainer");
    let mut late = RawClient::connected(broker.addr, ConnectOpts::v311("late"));
    late.subscribe(&[("wills/retainer", QoS::AtLeastOnce)]);
    // [MQTT-3.1.2-17]: Will Retain 1 publishes the will as a retained message.
    let got = late.recv_publish();
    assert_eq!((text(&got), got.retain), ("gone", true));
}

#[test]
fn will_qos_is_honoured() {
    let broker = start_broker(|_| {});
    let mut watcher = watcher(broker.addr);
    for (id, qos) in [("q1", QoS::AtLeastOnce), ("q2", QoS::ExactlyOnce)] {
        let opts = ConnectOpts::v311(id).will(will(&format!("wills/{id}"), b"gone", qos, false));
        drop(RawClient::connected(broker.addr, opts));
        // [MQTT-3.1.2.6]: the will is published at its Will QoS (the watcher granted 2).
        let got = watcher.recv_publish_no_ack();
        assert_eq!(
            (got.topic.as_str(), got.qos),
            (format!("wills/{id}").as_str(), qos)
        );
        watcher.ack(&got);
    }
}

#[test]
fn will_is_not_published_for_a_refused_connect() {
    let broker = start_broker(|limits| limits.client_id_len_max = 8);
    let mut watcher = watcher(broker.addr);
    let opts =
        ConnectOpts::v311("far-too-long").will(will("wills/x", b"gone", QoS::AtLeastOnce, false));
    let (mut client, connack) = RawClient::connect(broker.addr, opts);
    assert_eq!(connack.code, ReasonCode::CLIENT_IDENTIFIER_NOT_VALID);
    client.expect_closed(CLOSE_TIMEOUT);
    let mut other = RawClient::connected(broker.addr, ConnectOpts::v311("ok"));
    other.publish("wills/sentinel", b"sentinel", QoS::AtMostOnce, false);
    // A CONNECT that was refused never started a session, so it has no will to publish.
    assert_eq!(watcher.recv_publish().topic.as_str(), "wills/sentinel");
}
