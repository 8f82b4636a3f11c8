//! TLS listeners against real clients: `mosquitto_pub`/`mosquitto_sub` (OpenSSL), paho-mqtt
//! (Python's ssl), rumqttc (rustls 0.22) and our own rustls client, each with a publish and
//! subscribe round trip at QoS 0, 1 and 2. Client certificates (accepted from the test CA,
//! refused from another CA or when missing), `use_identity_as_username` with an ACL file,
//! per-listener `allow_anonymous` and `max_connections`. Reloading certificates is in
//! `tls_reload.rs`, bad input in `transport_errors.rs`.
//!
//! Certificates come from [`common::certs::Pki`], made at run time.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::certs::{CertFiles, Pki};
use common::clients::Process;
use common::clients::{mosquitto_clients_ready, paho_ready, paho_round_trip, PahoTransport};
use common::{start_broker_with, tls, Broker, ConnectOpts, RawClient};
use ringmq::codec::{ProtocolVersion, QoS, ReasonCode};
use ringmq::config::{ListenerConfig, TlsFiles};

/// A broker with the plain test listener (0) and one TLS listener (1) made by `listener`,
/// with `tweak` applied to the rest of the configuration.
fn tls_broker(
    files: TlsFiles,
    listener: impl FnOnce(&mut ListenerConfig),
    tweak: impl FnOnce(&mut ringmq::config::Config),
) -> Broker {
    start_broker_with(move |config| {
        let mut tls = ListenerConfig::mqtt(SocketAddr::from(([127, 0, 0, 1], 0)));
        tls.tls = Some(files);
        listener(&mut tls);
        config.listeners.push(tls);
        tweak(config);
    })
}

/// `-p port` and the TLS options of a mosquitto client.
fn mosquitto_args(port: u16, tls: &[String], rest: &[&str]) -> Vec<String> {
    let mut all = vec![
        "-h".to_owned(),
        "127.0.0.1".into(),
        "-p".into(),
        port.to_string(),
    ];
    all.extend_from_slice(tls);
    all.extend(rest.iter().map(|s| s.to_string()));
    all
}

fn cafile_args(pki: &Pki, client: Option<&CertFiles>) -> Vec<String> {
    let mut args = vec!["--cafile".to_owned(), pki.ca_file.display().to_string()];
    if let Some(client) = client {
        args.extend([
            "--cert".to_owned(),
            client.cert.display().to_string(),
            "--key".to_owned(),
            client.key.display().to_string(),
        ]);
    }
    args
}

/// `mosquitto_sub` (QoS 2) and `mosquitto_pub` at QoS 0, 1 and 2, both over TLS with `tls`.
/// The subscriber first gets a message retained on the plain listener: its line on stdout
/// means "subscribed", so nothing is published before the SUBACK.
fn mosquitto_round_trip(broker: &Broker, tls: &[String]) {
    let port = broker.listener(1).port();
    let mut retainer = RawClient::connected(broker.addr, ConnectOpts::v311("ready-retainer"));
    retainer.publish("tls/ready", b"ready", QoS::AtLeastOnce, true);
    let sub_args = [
        "-t",
        "tls/ready",
        "-t",
        "tls/data",
        "-q",
        "2",
        "-C",
        "4",
        "-W",
        "10",
    ];
    let mut sub = Process::spawn(
        "mosquitto_sub",
        &mosquitto_args(port, tls, &[&sub_args[..], &["-F", "%t %q %p"]].concat()),
    );
    assert_eq!(sub.line(Duration::from_secs(5)), "tls/ready 1 ready");
    for qos in ["0", "1", "2"] {
        let payload = format!("m{qos}");
        let args = ["-t", "tls/data", "-q", qos, "-m", &payload];
        Process::spawn("mosquitto_pub", &mosquitto_args(port, tls, &args)).finish();
    }
    assert_eq!(
        sub.finish(),
        ["tls/data 0 m0", "tls/data 1 m1", "tls/data 2 m2"]
    );
}

#[test]
fn mosquitto_clients_with_cafile_deliver_qos_0_1_2() {
    if !mosquitto_clients_ready() {
        return;
    }
    let pki = Pki::new("mosquitto-cafile");
    let broker = tls_broker(pki.tls_files(), |_| {}, |_| {});
    mosquitto_round_trip(&broker, &cafile_args(&pki, None));
}

/// TLS 1.2 is served as well as 1.3 (older devices and OpenSSL builds).
#[test]
fn mosquitto_clients_over_tls_1_2_deliver_qos_0_1_2() {
    if !mosquitto_clients_ready() {
        return;
    }
    let pki = Pki::new("mosquitto-tls12");
    let broker = tls_broker(pki.tls_files(), |_| {}, |_| {});
    let mut args = cafile_args(&pki, None);
    args.extend(["--tls-version".to_owned(), "tlsv1.2".to_owned()]);
    mosquitto_round_trip(&broker, &args);
}

#[test]
fn mosquitto_clients_with_client_certificates_deliver_qos_0_1_2() {
    if !mosquitto_clients_ready() {
        return;
    }
    let pki = Pki::new("mosquitto-certs");
    let broker = tls_broker(pki.tls_files_requiring_clients(false), |_| {}, |_| {});
    mosquitto_round_trip(&broker, &cafile_args(&pki, Some(&pki.client("alice"))));
}

#[test]
fn mosquitto_clients_without_a_certificate_or_from_another_ca_are_refused() {
    if !mosquitto_clients_ready() {
        return;
    }
    let pki = Pki::new("mosquitto-refused");
    let broker = tls_broker(pki.tls_files_requiring_clients(false), |_| {}, |_| {});
    let port = broker.listener(1).port();
    let witness = common::Witness::new(broker.addr);
    let foreign = pki.foreign_client("mallory");
    for client in [None, Some(&foreign)] {
        let args = mosquitto_args(port, &cafile_args(&pki, client), &["-t", "t", "-m", "x"]);
        Process::spawn("mosquitto_pub", &args).expect_failure();
    }
    // The same two through rustls, which shows the alert that says why.
    for (client, alert) in [(None, "CertificateRequired"), (Some(&foreign), "UnknownCA")] {
        let config = tls::client_config(&pki.ca_file, client, &[]);
        let refusal = tls::expect_refused(broker.listener(1), &config);
        assert!(refusal.contains(alert), "expected alert {alert}: {refusal}");
    }
    // A client with a good certificate still gets in, and so do plain clients.
    let config = tls::client_config(&pki.ca_file, Some(&pki.client("alice")), &[]);
    tls::connected(broker.listener(1), &config, ConnectOpts::v311("good")).ping();
    witness.assert_alive();
}

#[test]
fn paho_over_tls_delivers_qos_0_1_2_with_and_without_a_client_certificate() {
    if !paho_ready() {
        return;
    }
    let pki = Pki::new("paho-tls");
    let broker = tls_broker(pki.tls_files(), |_| {}, |_| {});
    let how = PahoTransport {
        level: "311",
        transport: "tcp",
        ca_file: Some(&pki.ca_file),
        client_cert: None,
    };
    paho_round_trip(broker.listener(1).port(), how);
    let broker = tls_broker(pki.tls_files_requiring_clients(false), |_| {}, |_| {});
    let alice = pki.client("alice");
    let how = PahoTransport {
        level: "311",
        transport: "tcp",
        ca_file: Some(&pki.ca_file),
        client_cert: Some((&alice.cert, &alice.key)),
    };
    paho_round_trip(broker.listener(1).port(), how);
}

/// rumqttc over rustls: subscribes at QoS 2, publishes to itself at QoS 0, 1 and 2.
fn rumqttc_round_trip(addr: SocketAddr, pki: &Pki, client: Option<&CertFiles>) {
    use rumqttc::{Event, Packet, TlsConfiguration, Transport};
    let read = |path: &std::path::Path| std::fs::read(path).expect("read a PEM file");
    let mut opts = rumqttc::MqttOptions::new("rumqttc-tls", "127.0.0.1", addr.port());
    opts.set_keep_alive(Duration::from_secs(30));
    opts.set_transport(Transport::tls_with_config(TlsConfiguration::Simple {
        ca: read(&pki.ca_file),
        alpn: None,
        client_auth: client.map(|c| (read(&c.cert), read(&c.key))),
    }));
    let (client, mut connection) = rumqttc::Client::new(opts, 64);
    client
        .subscribe("rumqttc/tls", rumqttc::QoS::ExactlyOnce)
        .expect("queue SUBSCRIBE");
    common::rumqttc_wait(&mut connection, "SUBACK", |p| {
        matches!(p, Packet::SubAck(_)).then_some(())
    });
    let levels = [
        rumqttc::QoS::AtMostOnce,
        rumqttc::QoS::AtLeastOnce,
        rumqttc::QoS::ExactlyOnce,
    ];
    for qos in levels {
        let payload = format!("{qos:?}");
        client
            .publish("rumqttc/tls", qos, false, payload)
            .expect("queue PUBLISH");
    }
    let mut got = Vec::new();
    while got.len() < levels.len() {
        let publish = common::rumqttc_wait(&mut connection, "PUBLISH", |p| match p {
            Packet::Publish(publish) => Some(publish.clone()),
            _ => None,
        });
        got.push((
            publish.qos,
            String::from_utf8_lossy(&publish.payload).into_owned(),
        ));
    }
    let expected: Vec<_> = levels.iter().map(|q| (*q, format!("{q:?}"))).collect();
    assert_eq!(got, expected);
    client.disconnect().expect("queue DISCONNECT");
    // Drive the connection until rumqttc has sent the DISCONNECT.
    for event in connection.iter() {
        if matches!(
            event,
            Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect)) | Err(_)
        ) {
            break;
        }
    }
}

#[test]
fn rumqttc_over_tls_delivers_qos_0_1_2() {
    let pki = Pki::new("rumqttc-tls");
    let broker = tls_broker(pki.tls_files(), |_| {}, |_| {});
    rumqttc_round_trip(broker.listener(1), &pki, None);
}

#[test]
fn rumqttc_with_a_client_certificate_delivers_qos_0_1_2() {
    let pki = Pki::new("rumqttc-cert");
    let broker = tls_broker(pki.tls_files_requiring_clients(false), |_| {}, |_| {});
    rumqttc_round_trip(broker.listener(1), &pki, Some(&pki.client("alice")));
}

/// alice may use alice/#; bob may read alice/#; everyone has users/<their name>/#.
const IDENTITY_ACL: &str = "\
user alice
topic readwrite alice/#

user bob
topic read alice/#

pattern readwrite users/%u/#
";

#[test]
fn use_identity_as_username_applies_the_certificate_names_acl_rules() {
    let pki = Pki::new("identity");
    let acl = pki.write("acl", IDENTITY_ACL);
    let broker = tls_broker(
        pki.tls_files_requiring_clients(true),
        |_| {},
        move |config| {
            config.auth.allow_anonymous = Some(false);
            config.auth.acl_file = Some(acl);
        },
    );
    let tls_addr = broker.listener(1);
    let alice_tls = tls::client_config(&pki.ca_file, Some(&pki.client("alice")), &[]);
    let bob_tls = tls::client_config(&pki.ca_file, Some(&pki.client("bob")), &[]);
    // bob's certificate, alice's name and a wrong password in the CONNECT: the certificate
    // decides, and no password is checked.
    let mut posing = ConnectOpts::v5("bob-dev");
    posing.username = Some("alice".into());
    posing.password = Some(b"wrong".to_vec());
    let mut bob = tls::connected(tls_addr, &bob_tls, posing);
    let granted = bob.subscribe(&[("alice/#", QoS::AtLeastOnce)]);
    assert_eq!(granted.codes, [ReasonCode::GRANTED_QOS_1]);
    let mut alice = tls::connected(tls_addr, &alice_tls, ConnectOpts::v5("alice-dev"));
    let ack = alice.publish_qos1_ack(common::make_publish(
        "alice/news",
        b"hi",
        QoS::AtLeastOnce,
        false,
    ));
    assert_eq!(ack.code, ReasonCode::SUCCESS);
    assert_eq!(common::text(&bob.recv_publish()), "hi");
    // bob may read alice/# but not write it, whatever name his CONNECT claimed.
    let ack = bob.publish_qos1_ack(common::make_publish(
        "alice/news",
        b"x",
        QoS::AtLeastOnce,
        false,
    ));
    assert_eq!(ack.code, ReasonCode::NOT_AUTHORIZED);
    // %u is the certificate's name.
    bob.subscribe(&[("users/bob/#", QoS::AtLeastOnce)]);
    let own = common::make_publish("users/bob/status", b"up", QoS::AtLeastOnce, false);
    assert_eq!(bob.publish_qos1_ack(own).code, ReasonCode::SUCCESS);
    assert_eq!(common::text(&bob.recv_publish()), "up");
    let other = common::make_publish("users/alice/status", b"up", QoS::AtLeastOnce, false);
    assert_eq!(bob.publish_qos1_ack(other).code, ReasonCode::NOT_AUTHORIZED);
    // The plain listener has no certificates: anonymous clients are refused there.
    let (_, connack) = RawClient::connect(broker.addr, ConnectOpts::v5("anon"));
    assert_eq!(connack.code, ReasonCode::NOT_AUTHORIZED);
}

#[test]
fn listener_allow_anonymous_overrides_the_broker_wide_setting() {
    let pki = Pki::new("anonymous");
    for (broker_wide, listener_says) in [(false, true), (true, false)] {
        let broker = tls_broker(
            pki.tls_files(),
            |l| l.allow_anonymous = Some(listener_says),
            |config| config.auth.allow_anonymous = Some(broker_wide),
        );
        let config = tls::client_config(&pki.ca_file, None, &[]);
        let stream = tls::connect(broker.listener(1), &config).expect("TLS handshake");
        let client = RawClient::over(Box::new(stream), ProtocolVersion::V5);
        let (_, on_tls) = RawClient::connect_over(client, ConnectOpts::v5("anon-tls"));
        let (_, on_plain) = RawClient::connect(broker.addr, ConnectOpts::v5("anon-plain"));
        let code = |allowed| {
            if allowed {
                ReasonCode::SUCCESS
            } else {
                ReasonCode::NOT_AUTHORIZED
            }
        };
        assert_eq!(on_tls.code, code(listener_says), "TLS listener");
        assert_eq!(on_plain.code, code(broker_wide), "plain listener");
    }
}

#[test]
fn listener_max_connections_refuses_connections_beyond_its_share() {
    let pki = Pki::new("max-connections");
    let shards = common::shards_from_env() as u32;
    // Two per shard: the limit is enforced as an equal share per shard, and the kernel picks
    // the shard of each connection, so only the total is exact.
    let max = 2 * shards;
    let broker = tls_broker(pki.tls_files(), |l| l.max_connections = Some(max), |_| {});
    let config = tls::client_config(&pki.ca_file, None, &[]);
    let mut open = Vec::new();
    let mut refused = 0;
    for i in 0..=max {
        match tls::connect(broker.listener(1), &config) {
            Ok(stream) => {
                let client = RawClient::over(Box::new(stream), ProtocolVersion::V3_1_1);
                open.push(RawClient::connected_over(
                    client,
                    ConnectOpts::v311(&format!("c{i}")),
                ));
            }
            Err(_) => refused += 1,
        }
    }
    assert!(open.len() as u32 <= max, "{} open, max {max}", open.len());
    assert!(
        refused >= 1,
        "no connection refused beyond max_connections {max}"
    );
    if shards == 1 {
        assert_eq!(open.len() as u32, max);
    }
    // The plain listener has no such limit.
    let extra: Vec<_> = (0..=max)
        .map(|i| RawClient::connected(broker.addr, ConnectOpts::v311(&format!("p{i}"))))
        .collect();
    drop(extra);
    // Once they close, the listener takes connections again.
    for client in open {
        client.disconnect();
    }
    let deadline = Instant::now() + common::CLOSE_TIMEOUT;
    loop {
        match tls::connect(broker.listener(1), &config) {
            Ok(stream) => {
                let client = RawClient::over(Box::new(stream), ProtocolVersion::V3_1_1);
                RawClient::connected_over(client, ConnectOpts::v311("again")).ping();
                break;
            }
            Err(error) => assert!(
                Instant::now() < deadline,
                "still refused after every connection closed: {error}"
            ),
        }
    }
}
