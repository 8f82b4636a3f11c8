//! rumqttc 3.1.1 and 5.0 clients for the black-box tests: an independent MQTT implementation,
//! so that the broker is not only tested against our own codec.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::RECV_TIMEOUT;

/// A rumqttc 3.1.1 client with a 30 s keep-alive.
pub fn rumqttc_client(
    addr: SocketAddr,
    client_id: &str,
    clean: bool,
) -> (rumqttc::Client, rumqttc::Connection) {
    let mut opts = rumqttc::MqttOptions::new(client_id, addr.ip().to_string(), addr.port());
    opts.set_keep_alive(Duration::from_secs(30));
    opts.set_clean_session(clean);
    rumqttc::Client::new(opts, 64)
}

/// Drives a rumqttc connection until an incoming packet satisfies `pick`; fails after
/// [`RECV_TIMEOUT`] or on a connection error.
pub fn rumqttc_wait<T>(
    connection: &mut rumqttc::Connection,
    what: &str,
    mut pick: impl FnMut(&rumqttc::Packet) -> Option<T>,
) -> T {
    wait_for_incoming("rumqttc", what, |left| {
        match connection.recv_timeout(left) {
            Ok(Ok(rumqttc::Event::Incoming(packet))) => Ok(pick(&packet)),
            Ok(Ok(rumqttc::Event::Outgoing(_))) => Ok(None),
            Ok(Err(error)) => Err(error.to_string()),
            Err(_) => Ok(None),
        }
    })
}

/// The deadline loop both rumqttc versions share: `step` waits at most the time left for one
/// event and says whether it was the one wanted, or why the connection failed.
fn wait_for_incoming<T>(
    client: &str,
    what: &str,
    mut step: impl FnMut(Duration) -> Result<Option<T>, String>,
) -> T {
    let deadline = Instant::now() + RECV_TIMEOUT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "{client}: no {what} within {RECV_TIMEOUT:?}"
        );
        match step(left) {
            Ok(Some(found)) => return found,
            Ok(None) => {}
            Err(error) => panic!("{client} connection error while waiting for {what}: {error}"),
        }
    }
}

/// A rumqttc 5.0 client with a 30 s keep-alive and `tweak` applied to its options.
pub fn rumqttc5_client(
    addr: SocketAddr,
    client_id: &str,
    tweak: impl FnOnce(&mut rumqttc::v5::MqttOptions),
) -> (rumqttc::v5::Client, rumqttc::v5::Connection) {
    let mut opts = rumqttc::v5::MqttOptions::new(client_id, addr.ip().to_string(), addr.port());
    opts.set_keep_alive(Duration::from_secs(30));
    tweak(&mut opts);
    rumqttc::v5::Client::new(opts, 64)
}

/// [`rumqttc_wait`] for a rumqttc 5.0 connection.
pub fn rumqttc5_wait<T>(
    connection: &mut rumqttc::v5::Connection,
    what: &str,
    mut pick: impl FnMut(&rumqttc::v5::mqttbytes::v5::Packet) -> Option<T>,
) -> T {
    wait_for_incoming("rumqttc v5", what, |left| {
        match connection.recv_timeout(left) {
            Ok(Ok(rumqttc::v5::Event::Incoming(packet))) => Ok(pick(&packet)),
            Ok(Ok(rumqttc::v5::Event::Outgoing(_))) => Ok(None),
            Ok(Err(error)) => Err(error.to_string()),
            Err(_) => Ok(None),
        }
    })
}

/// Waits for a rumqttc 5.0 connection's CONNACK and returns it.
pub fn rumqttc5_connack(
    connection: &mut rumqttc::v5::Connection,
) -> rumqttc::v5::mqttbytes::v5::ConnAck {
    rumqttc5_wait(connection, "CONNACK", |p| match p {
        rumqttc::v5::mqttbytes::v5::Packet::ConnAck(ack) => Some(ack.clone()),
        _ => None,
    })
}
