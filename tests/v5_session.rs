//! MQTT 5.0 session expiry over real sockets: the CONNECT Session Expiry Interval (absent is
//! 0), Clean Start, a new interval in DISCONNECT, the server maximum, and a session resumed
//! on another shard.

mod common;

use ringmq::codec::PropertyValues;
use std::net::SocketAddr;
use std::time::Duration;

use common::{
    rumqttc5_client, rumqttc5_connack, rumqttc5_wait, start_broker, start_broker_with, text,
    ConnectOpts, RawClient,
};
use ringmq::codec::{Disconnect, Packet, Properties, QoS, ReasonCode};

/// Long enough for a 1 s session expiry to have passed, even for a timer checked once a
/// second (the broker's tick): 1 s, plus up to a tick, plus slack.
const EXPIRED_1S: Duration = Duration::from_millis(2500);

/// A v5 client `id` resuming (Clean Start 0) with `expiry_s`, if given.
fn resuming(id: &str, expiry_s: Option<u32>) -> ConnectOpts {
    let opts = ConnectOpts::v5(id).clean(false);
    match expiry_s {
        Some(s) => opts.session_expiry(s),
        None => opts,
    }
}

/// Connects `opts` and subscribes to `filter` at QoS 1; the caller ends the connection.
fn subscribed(addr: SocketAddr, opts: ConnectOpts, filter: &str) -> RawClient {
    let mut client = RawClient::connected(addr, opts);
    client.subscribe(&[(filter, QoS::AtLeastOnce)]);
    client
}

/// Reconnects and returns the client and the CONNACK's Session Present.
fn reconnect(addr: SocketAddr, opts: ConnectOpts) -> (RawClient, bool) {
    let (client, connack) = RawClient::connect(addr, opts);
    assert_eq!(connack.code, ReasonCode::SUCCESS, "{connack:?}");
    (client, connack.session_present)
}

fn publish(addr: SocketAddr, topic: &str, payload: &str) {
    let mut publisher = RawClient::connected(addr, ConnectOpts::v5("pub"));
    publisher.publish(topic, payload.as_bytes(), QoS::AtLeastOnce, false);
    publisher.disconnect();
}

fn disconnect_with_expiry(client: RawClient, expiry_s: u32) {
    client.disconnect_with(Disconnect {
        code: ReasonCode::NORMAL_DISCONNECTION,
        properties: Properties::from(PropertyValues {
            session_expiry_interval_s: Some(expiry_s),
            ..Default::default()
        }),
    });
}

#[test]
fn absent_session_expiry_ends_the_session_at_disconnect() {
    let broker = start_broker(|_| {});
    subscribed(broker.addr, resuming("brief", None), "s").disconnect();
    publish(broker.addr, "s", "for nobody");
    // 3.1.2.11.2: absent means 0, and the session ends when the connection closes, even
    // with Clean Start 0.
    let (mut client, present) = reconnect(broker.addr, resuming("brief", None));
    assert!(!present, "[MQTT-3.2.2-3]: no session was kept");
    client.expect_silence(Duration::from_millis(300));
}

#[test]
fn session_resumed_within_its_expiry_keeps_subscriptions_and_messages() {
    let broker = start_broker(|_| {});
    // The connection drops without DISCONNECT: the session outlives it all the same.
    drop(subscribed(broker.addr, resuming("keeper", Some(2)), "s"));
    std::thread::sleep(Duration::from_millis(100));
    publish(broker.addr, "s", "while offline");
    std::thread::sleep(Duration::from_millis(500));
    let (mut client, present) = reconnect(broker.addr, resuming("keeper", Some(2)));
    // [MQTT-3.1.2-23]/[MQTT-3.1.2-5]/[MQTT-3.2.2-3].
    assert!(present);
    assert_eq!(text(&client.recv_publish()), "while offline");
    publish(broker.addr, "s", "live");
    assert_eq!(
        text(&client.recv_publish()),
        "live",
        "the subscription was kept"
    );
}

#[test]
fn session_is_discarded_once_its_expiry_has_passed() {
    let broker = start_broker(|_| {});
    subscribed(broker.addr, resuming("gone", Some(1)), "s").disconnect();
    publish(broker.addr, "s", "lost with the session");
    // Past the 1 s interval with room for a timer that only fires once a second.
    std::thread::sleep(EXPIRED_1S);
    // [MQTT-4.1.0-2]: after the interval the server discards the session state.
    let (mut client, present) = reconnect(broker.addr, resuming("gone", Some(1)));
    assert!(!present);
    publish(broker.addr, "s", "no subscription any more");
    client.expect_silence(Duration::from_millis(300));
}

#[test]
fn expiry_is_counted_from_the_disconnect() {
    let broker = start_broker(|_| {});
    let client = subscribed(broker.addr, resuming("long-lived", Some(1)), "s");
    // Connected for longer than the interval: that time does not count.
    std::thread::sleep(Duration::from_millis(1500));
    client.disconnect();
    let (_client, present) = reconnect(broker.addr, resuming("long-lived", Some(1)));
    assert!(present);
}

#[test]
fn clean_start_discards_the_old_session_but_the_new_one_persists() {
    let broker = start_broker(|_| {});
    subscribed(broker.addr, resuming("fresh", Some(10)), "old").disconnect();
    publish(broker.addr, "old", "queued for the old session");
    let opts = ConnectOpts::v5("fresh").session_expiry(10);
    let (mut client, present) = reconnect(broker.addr, opts);
    // [MQTT-3.1.2-4]/[MQTT-3.2.2-2]: Clean Start 1 discards it; Session Present 0.
    assert!(!present);
    client.expect_silence(Duration::from_millis(300));
    client.subscribe(&[("new", QoS::AtLeastOnce)]);
    client.disconnect();
    publish(broker.addr, "old", "old subscription");
    publish(broker.addr, "new", "new subscription");
    let (mut client, present) = reconnect(broker.addr, resuming("fresh", Some(10)));
    assert!(present, "the Clean Start 1 session has an expiry too");
    let got = client.recv_publish();
    assert_eq!(
        (got.topic.as_str(), text(&got)),
        ("new", "new subscription")
    );
    client.expect_silence(Duration::from_millis(300));
}

#[test]
fn disconnect_with_session_expiry_0_ends_the_session() {
    let broker = start_broker(|_| {});
    let client = subscribed(broker.addr, resuming("quitter", Some(10)), "s");
    // 3.14.2.2.2: the DISCONNECT's interval replaces the CONNECT's.
    disconnect_with_expiry(client, 0);
    let (_client, present) = reconnect(broker.addr, resuming("quitter", Some(10)));
    assert!(!present);
}

#[test]
fn disconnect_can_extend_a_nonzero_session_expiry() {
    let broker = start_broker(|_| {});
    let client = subscribed(broker.addr, resuming("stayer", Some(1)), "s");
    disconnect_with_expiry(client, 10);
    std::thread::sleep(Duration::from_secs(2));
    let (mut client, present) = reconnect(broker.addr, resuming("stayer", Some(1)));
    assert!(
        present,
        "the DISCONNECT's 10 s applied, not the CONNECT's 1 s"
    );
    publish(broker.addr, "s", "kept");
    assert_eq!(text(&client.recv_publish()), "kept");
}

#[test]
fn disconnect_setting_an_expiry_after_connect_0_gets_disconnect_0x82() {
    let broker = start_broker(|_| {});
    let mut client = subscribed(broker.addr, resuming("sneaky", None), "s");
    client.send(&Packet::Disconnect(Disconnect {
        code: ReasonCode::NORMAL_DISCONNECTION,
        properties: Properties::from(PropertyValues {
            session_expiry_interval_s: Some(10),
            ..Default::default()
        }),
    }));
    // 3.14.2.2.2: non-zero after a CONNECT with 0 is a Protocol Error; the server answers 0x82.
    let answer = client.expect_disconnect(ReasonCode::PROTOCOL_ERROR);
    // [MQTT-3.14.2-2]: the server never sends a Session Expiry Interval in DISCONNECT.
    assert_eq!(answer.properties.session_expiry_interval_s, None);
    // The invalid DISCONNECT did not extend anything: the session ended with the connection.
    let (_client, present) = reconnect(broker.addr, resuming("sneaky", None));
    assert!(!present);
}

#[test]
fn session_expiry_is_capped_by_the_server_maximum() {
    let broker = start_broker_with(|c| c.protocol.session_expiry_max_s = 1);
    let (client, connack) = RawClient::connect(broker.addr, resuming("capped", Some(60)));
    assert_eq!(connack.properties.session_expiry_interval_s, Some(1));
    client.disconnect();
    std::thread::sleep(EXPIRED_1S);
    let (_client, present) = reconnect(broker.addr, resuming("capped", Some(60)));
    assert!(!present, "the session outlived the server maximum");
}

#[test]
fn v311_persistent_session_expires_after_the_server_maximum() {
    // `ProtocolOptions::session_expiry_max_s`: mosquitto's persistent_client_expiration.
    let broker = start_broker_with(|c| c.protocol.session_expiry_max_s = 1);
    let opts = || ConnectOpts::v311("old-timer").clean(false);
    subscribed(broker.addr, opts(), "s").disconnect();
    let (client, present) = reconnect(broker.addr, opts());
    assert!(present, "kept within the maximum");
    client.disconnect();
    std::thread::sleep(EXPIRED_1S);
    let (_client, present) = reconnect(broker.addr, opts());
    assert!(!present);
}

#[test]
fn session_resumed_on_another_shard_keeps_its_expiry() {
    let broker = start_broker_with(|c| c.shards = 3);
    subscribed(broker.shard(0), resuming("roamer", Some(1)), "roam").disconnect();
    let mut publisher = RawClient::connected(broker.shard(1), ConnectOpts::v5("pub"));
    publisher.publish("roam", b"queued", QoS::AtLeastOnce, false);
    let (mut client, present) = reconnect(broker.shard(2), resuming("roamer", Some(1)));
    assert!(present);
    assert_eq!(text(&client.recv_publish()), "queued");
    client.disconnect();
    std::thread::sleep(EXPIRED_1S);
    let (mut client, present) = reconnect(broker.shard(1), resuming("roamer", Some(1)));
    assert!(!present, "the session moved to shard 2 and expired there");
    publisher.publish("roam", b"nobody", QoS::AtLeastOnce, false);
    client.expect_silence(Duration::from_millis(300));
}

#[test]
fn rumqttc_v5_session_with_expiry_gets_messages_published_while_offline() {
    use rumqttc::v5::mqttbytes::v5::{ConnectProperties, Packet as V5Packet};
    let broker = start_broker(|_| {});
    let options = |o: &mut rumqttc::v5::MqttOptions| {
        o.set_clean_start(false);
        let mut props = ConnectProperties::new();
        props.session_expiry_interval = Some(10);
        o.set_connect_properties(props);
    };
    {
        let (client, mut connection) = rumqttc5_client(broker.addr, "rumqttc-expiry", options);
        client
            .subscribe("offline/#", rumqttc::v5::mqttbytes::QoS::AtLeastOnce)
            .expect("queue SUBSCRIBE");
        rumqttc5_wait(&mut connection, "SUBACK", |p| {
            matches!(p, V5Packet::SubAck(_)).then_some(())
        });
        // Dropped: the socket closes without DISCONNECT.
    }
    std::thread::sleep(Duration::from_millis(100));
    publish(broker.addr, "offline/x", "kept for you");
    let (_client, mut connection) = rumqttc5_client(broker.addr, "rumqttc-expiry", options);
    assert!(rumqttc5_connack(&mut connection).session_present);
    let got = rumqttc5_wait(&mut connection, "PUBLISH", |p| match p {
        V5Packet::Publish(publish) => Some(publish.clone()),
        _ => None,
    });
    assert_eq!(&got.payload[..], b"kept for you");
}
