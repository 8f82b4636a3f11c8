//! MQTT 5.0 will messages over real sockets: the Will Delay Interval and what cancels or
//! shortens it, DISCONNECT 0x04 (disconnect with will message), and will properties.

mod common;

use ringmq::codec::PropertyValues;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{
    rumqttc5_client, rumqttc5_connack, start_broker, text, will_v5, ConnectOpts, RawClient,
};
use ringmq::codec::{ByteStr, Disconnect, Packet, Properties, Publish, QoS, ReasonCode};

/// A v5 client subscribed to `wills/#`.
fn watcher(addr: SocketAddr) -> RawClient {
    let mut watcher = RawClient::connected(addr, ConnectOpts::v5("watcher"));
    watcher.subscribe(&[("wills/#", QoS::AtLeastOnce)]);
    watcher
}

/// Client `id` with a will on `wills/<id>`, a Will Delay Interval of `delay_s` and a Session
/// Expiry Interval of `expiry_s`.
fn delayed_will(id: &str, delay_s: u32, expiry_s: u32) -> ConnectOpts {
    let properties = Properties::from(PropertyValues {
        will_delay_interval_s: Some(delay_s),
        ..Default::default()
    });
    let will = will_v5(
        &format!("wills/{id}"),
        b"gone",
        QoS::AtLeastOnce,
        properties,
    );
    ConnectOpts::v5(id).session_expiry(expiry_s).will(will)
}

/// The next PUBLISH within `within`, which must be `id`'s will.
fn expect_will_within(watcher: &mut RawClient, id: &str, within: Duration) -> Publish {
    match watcher.recv_timeout(within) {
        Some(Packet::Publish(publish)) => {
            watcher.ack(&publish);
            assert_eq!(
                (publish.topic.as_str(), text(&publish)),
                (format!("wills/{id}").as_str(), "gone")
            );
            publish
        }
        Some(other) => panic!("expected {id}'s will, got {other:?}"),
        None => panic!("no will from {id} within {within:?}"),
    }
}

#[test]
fn will_delay_postpones_the_will() {
    let broker = start_broker(|_| {});
    let mut watcher = watcher(broker.addr);
    drop(RawClient::connected(
        broker.addr,
        delayed_will("late", 2, 10),
    ));
    let dropped = Instant::now();
    // 3.1.3.2.2: not before the delay ...
    watcher.expect_silence(Duration::from_secs(1));
    // ... and [MQTT-3.1.2-8] once it has passed.
    expect_will_within(&mut watcher, "late", Duration::from_millis(2500));
    let elapsed = dropped.elapsed();
    assert!(
        elapsed >= Duration::from_millis(1900),
        "published after {elapsed:?}"
    );
}

#[test]
fn reconnecting_within_the_will_delay_cancels_the_will() {
    let broker = start_broker(|_| {});
    let mut watcher = watcher(broker.addr);
    drop(RawClient::connected(
        broker.addr,
        delayed_will("back", 2, 10),
    ));
    std::thread::sleep(Duration::from_millis(500));
    let opts = ConnectOpts::v5("back").clean(false).session_expiry(10);
    let (_client, connack) = RawClient::connect(broker.addr, opts);
    assert!(connack.session_present);
    // [MQTT-3.1.3-9]: a new connection before the delay ran out: no will.
    watcher.expect_silence(Duration::from_millis(2500));
}

#[test]
fn takeover_within_the_will_delay_does_not_publish_the_will() {
    let broker = start_broker(|_| {});
    let mut watcher = watcher(broker.addr);
    let mut old = RawClient::connected(broker.shard(0), delayed_will("twin", 2, 10));
    let opts = ConnectOpts::v5("twin").clean(false).session_expiry(10);
    let (_new, connack) = RawClient::connect(broker.shard(1), opts);
    assert!(connack.session_present);
    old.expect_disconnect(ReasonCode::SESSION_TAKEN_OVER);
    // [MQTT-3.1.3-9]: the session has a connection again before the delay passed.
    watcher.expect_silence(Duration::from_millis(2500));
}

#[test]
fn session_ending_before_the_will_delay_publishes_the_will_then() {
    let broker = start_broker(|_| {});
    let mut watcher = watcher(broker.addr);
    drop(RawClient::connected(
        broker.addr,
        delayed_will("short", 3, 1),
    ));
    let dropped = Instant::now();
    // [MQTT-3.1.2-8]: published when the delay passes *or the session ends*, whichever is
    // first: here the session, after 1 s, not the 3 s delay.
    watcher.expect_silence(Duration::from_millis(500));
    expect_will_within(&mut watcher, "short", Duration::from_millis(2000));
    let elapsed = dropped.elapsed();
    assert!(
        elapsed >= Duration::from_millis(900),
        "published after {elapsed:?}"
    );
}

#[test]
fn disconnect_with_will_message_publishes_the_will() {
    let broker = start_broker(|_| {});
    let mut watcher = watcher(broker.addr);
    let will = will_v5(
        "wills/asked",
        b"gone",
        QoS::AtLeastOnce,
        Properties::default(),
    );
    let client = RawClient::connected(broker.addr, ConnectOpts::v5("asked").will(will));
    // 3.14.2.1: reason 0x04 asks the server to publish the will anyway.
    client.disconnect_with(Disconnect::new(ReasonCode::DISCONNECT_WITH_WILL_MESSAGE));
    expect_will_within(&mut watcher, "asked", Duration::from_secs(2));
}

#[test]
fn normal_disconnect_discards_the_will() {
    let broker = start_broker(|_| {});
    let mut watcher = watcher(broker.addr);
    let will = will_v5(
        "wills/polite",
        b"gone",
        QoS::AtLeastOnce,
        Properties::default(),
    );
    let client = RawClient::connected(broker.addr, ConnectOpts::v5("polite").will(will));
    // [MQTT-3.14.4-3]: reason 0x00 deletes the will.
    client.disconnect_with(Disconnect::new(ReasonCode::NORMAL_DISCONNECTION));
    watcher.expect_silence(Duration::from_secs(1));
}

/// Will properties a publisher may give its will, all of which reach subscribers.
fn described_will_properties() -> Properties {
    Properties::from(PropertyValues {
        payload_format_indicator: Some(1),
        content_type: Some(ByteStr::from("text/plain")),
        response_topic: Some(ByteStr::from("wills/replies")),
        correlation_data: Some(Bytes::from_static(b"\x01\x02corr")),
        user_properties: vec![
            (ByteStr::from("k"), ByteStr::from("v1")),
            (ByteStr::from("a"), ByteStr::from("b")),
            (ByteStr::from("k"), ByteStr::from("v2")),
        ],
        ..Default::default()
    })
}

#[test]
fn will_properties_reach_a_v5_subscriber() {
    let broker = start_broker(|_| {});
    let mut watcher = watcher(broker.addr);
    let will = will_v5(
        "wills/described",
        b"gone",
        QoS::AtLeastOnce,
        described_will_properties(),
    );
    drop(RawClient::connected(
        broker.addr,
        ConnectOpts::v5("described").will(will),
    ));
    let got = expect_will_within(&mut watcher, "described", Duration::from_secs(2));
    // 3.1.3.2: they travel with the will; [MQTT-3.1.3-10]: user properties in order.
    assert_eq!(got.properties, described_will_properties());
}

#[test]
fn rumqttc_v5_will_with_delay_is_published_after_the_delay() {
    use rumqttc::v5::mqttbytes::v5::{ConnectProperties, LastWill, LastWillProperties};
    let broker = start_broker(|_| {});
    let mut watcher = watcher(broker.addr);
    {
        let (_client, mut connection) = rumqttc5_client(broker.addr, "rumqttc-will", |o| {
            let properties = LastWillProperties {
                delay_interval: Some(1),
                payload_format_indicator: None,
                message_expiry_interval: None,
                content_type: None,
                response_topic: None,
                correlation_data: None,
                user_properties: Vec::new(),
            };
            o.set_last_will(LastWill::new(
                "wills/rumqttc-will",
                "gone",
                rumqttc::v5::mqttbytes::QoS::AtLeastOnce,
                false,
                Some(properties),
            ));
            let mut connect = ConnectProperties::new();
            connect.session_expiry_interval = Some(10);
            o.set_connect_properties(connect);
        });
        rumqttc5_connack(&mut connection);
        // Dropped: the socket closes without DISCONNECT.
    }
    watcher.expect_silence(Duration::from_millis(500));
    expect_will_within(&mut watcher, "rumqttc-will", Duration::from_millis(2000));
}
