//! MQTT over WebSocket (`ws`) and over WebSocket on TLS (`wss`) with paho-mqtt's websockets
//! transport: a publish and subscribe round trip at QoS 0, 1 and 2. A browser over the same
//! listeners is in `browser.rs`; bad upgrades and frames in `transport_errors.rs`.

mod common;

use std::net::SocketAddr;

use common::certs::Pki;
use common::clients::{paho_ready, paho_round_trip, PahoTransport};
use common::{start_broker_with, Broker};
use ringmq::config::{ListenerConfig, ListenerProtocol, TlsFiles};

/// The plain test listener (0) and a WebSocket listener on `/mqtt` (1), with TLS if given.
fn ws_broker(tls: Option<TlsFiles>) -> Broker {
    start_broker_with(move |config| {
        let mut ws = ListenerConfig::mqtt(SocketAddr::from(([127, 0, 0, 1], 0)));
        ws.protocol = ListenerProtocol::Ws;
        ws.tls = tls;
        config.listeners.push(ws);
    })
}

#[test]
fn paho_over_ws_delivers_qos_0_1_2() {
    if !paho_ready() {
        return;
    }
    let broker = ws_broker(None);
    let how = PahoTransport {
        level: "311",
        transport: "websockets",
        ca_file: None,
        client_cert: None,
    };
    paho_round_trip(broker.listener(1).port(), how);
}

#[test]
fn paho_over_wss_delivers_qos_0_1_2() {
    if !paho_ready() {
        return;
    }
    let pki = Pki::new("paho-wss");
    let broker = ws_broker(Some(pki.tls_files()));
    let how = PahoTransport {
        level: "311",
        transport: "websockets",
        ca_file: Some(&pki.ca_file),
        client_cert: None,
    };
    paho_round_trip(broker.listener(1).port(), how);
}
