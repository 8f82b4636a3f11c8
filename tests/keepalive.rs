//! Keep-alive over real sockets: a silent client is closed after one and a half keep-alive
//! periods, PINGREQ keeps it open, and a keep-alive of 0 turns the check off.
//!
//! These tests wait on the clock by nature; every wait is bounded and a few seconds at most.

mod common;

use std::thread;
use std::time::{Duration, Instant};

use common::{start_broker, ConnectOpts, RawClient};

#[test]
fn silent_client_is_closed_after_one_and_a_half_keep_alives() {
    let broker = start_broker(|_| {});
    // Timed from before CONNECT, so the broker's own timer cannot have started earlier.
    let started = Instant::now();
    let mut client = RawClient::connected(broker.addr, ConnectOpts::v311("silent").keep_alive(1));
    client.expect_closed(Duration::from_secs(4));
    let elapsed = started.elapsed();
    // [MQTT-3.1.2-24]: closed once 1.5 x keep-alive passes without a packet. The broker
    // checks on a 1 s timer, so the close lands between 1.5 s and about 2.5 s.
    assert!(
        elapsed >= Duration::from_millis(1500),
        "closed too early, after {elapsed:?}"
    );
    assert!(
        elapsed <= Duration::from_millis(3000),
        "closed too late, after {elapsed:?}"
    );
}

#[test]
fn pingreq_gets_pingresp_and_keeps_the_connection_alive() {
    let broker = start_broker(|_| {});
    let mut client = RawClient::connected(broker.addr, ConnectOpts::v311("pinger").keep_alive(1));
    let started = Instant::now();
    // [MQTT-3.12.4-1]: PINGREQ is answered with PINGRESP; [MQTT-3.1.2-24]: it is a control
    // packet, so the connection outlives 1.5 x keep-alive.
    while started.elapsed() < Duration::from_secs(3) {
        client.ping();
        thread::sleep(Duration::from_millis(500));
    }
    client.ping();
}

#[test]
fn keep_alive_0_never_times_out() {
    let broker = start_broker(|_| {});
    let mut client = RawClient::connected(broker.addr, ConnectOpts::v311("patient").keep_alive(0));
    // MQTT 3.1.1 section 3.1.2.10: a keep-alive of zero turns the mechanism off.
    client.expect_silence(Duration::from_secs(3));
    client.ping();
}

#[test]
fn any_packet_resets_the_keep_alive_timer() {
    let broker = start_broker(|_| {});
    let mut client = RawClient::connected(broker.addr, ConnectOpts::v311("busy").keep_alive(1));
    let started = Instant::now();
    // [MQTT-3.1.2-24]: any control packet counts, not only PINGREQ.
    while started.elapsed() < Duration::from_secs(3) {
        client.subscribe(&[("busy/topic", ringmq::codec::QoS::AtMostOnce)]);
        thread::sleep(Duration::from_millis(500));
    }
    client.ping();
}
