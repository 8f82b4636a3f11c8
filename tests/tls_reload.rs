//! Certificate reload (`Broker::reload`, what SIGHUP calls): new handshakes get the new
//! certificate, connections made before keep their TLS session and are not disconnected, and
//! a certificate or key that cannot be used fails the reload, names the file, and leaves the
//! listener on the certificate it had. Which certificate a handshake got is read from the
//! client side: its serial number and CN.

mod common;

use std::net::SocketAddr;

use common::certs::Pki;
use common::{start_broker_with, text, tls, Broker, ConnectOpts, RawClient};
use ringmq::codec::{ProtocolVersion, QoS};
use ringmq::config::ListenerConfig;

/// The CN and serial `Pki::new` gives the first server certificate.
const FIRST: (u64, &str) = (1, "ringmq-test-server");

fn tls_broker(pki: &Pki) -> Broker {
    let files = pki.tls_files();
    start_broker_with(move |config| {
        let mut tls = ListenerConfig::mqtt(SocketAddr::from(([127, 0, 0, 1], 0)));
        tls.tls = Some(files);
        config.listeners.push(tls);
    })
}

/// A TLS client of listener 1, connected, and the certificate its handshake got.
fn client(broker: &Broker, pki: &Pki, id: &str) -> (RawClient, (u64, String)) {
    let config = tls::client_config(&pki.ca_file, None, &[]);
    let stream = tls::connect(broker.listener(1), &config).expect("TLS handshake");
    let identity = tls::server_identity(&stream);
    let client = RawClient::over(Box::new(stream), ProtocolVersion::V3_1_1);
    (
        RawClient::connected_over(client, ConnectOpts::v311(id)),
        identity,
    )
}

fn owned((serial, cn): (u64, &str)) -> (u64, String) {
    (serial, cn.to_owned())
}

#[test]
fn reload_gives_new_handshakes_the_new_certificate_and_keeps_old_connections() {
    let pki = Pki::new("reload");
    let broker = tls_broker(&pki);
    let (mut before, identity) = client(&broker, &pki, "before");
    assert_eq!(identity, owned(FIRST));
    before.subscribe(&[("reload/#", QoS::ExactlyOnce)]);

    let (cert, key) = pki.server_pem("ringmq-test-server-renewed", 2);
    std::fs::write(&pki.server.cert, cert).expect("replace the certificate");
    std::fs::write(&pki.server.key, key).expect("replace the key");
    broker.reload().expect("the reload succeeds");

    let (mut after, identity) = client(&broker, &pki, "after");
    assert_eq!(identity, owned((2, "ringmq-test-server-renewed")));
    // The connection from before the reload was not closed, and its session still carries
    // traffic both ways, at every QoS.
    for qos in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
        after.publish("reload/new", b"from after", qos, false);
        let got = before.recv_publish();
        assert_eq!((text(&got), got.qos), ("from after", qos));
    }
    before.publish("reload/old", b"from before", QoS::ExactlyOnce, false);
    assert_eq!(text(&before.recv_publish()), "from before");
    before.ping();
}

#[test]
fn reload_with_an_unusable_certificate_names_the_file_and_keeps_the_old_one() {
    let pki = Pki::new("reload-broken");
    let broker = tls_broker(&pki);
    let (mut before, _) = client(&broker, &pki, "before");

    // Not a certificate at all.
    std::fs::write(&pki.server.cert, "not a certificate\n").expect("break the certificate");
    let error = broker
        .reload()
        .expect_err("a broken certificate fails the reload");
    let cert_file = pki.server.cert.display().to_string();
    assert!(
        error.to_string().contains(&cert_file),
        "the error names {cert_file}: {error}"
    );
    assert_eq!(client(&broker, &pki, "still-old").1, owned(FIRST));

    // A valid certificate whose key is not the one in the key file.
    let (cert, _) = pki.server_pem("ringmq-test-server-mismatch", 3);
    std::fs::write(&pki.server.cert, cert).expect("replace the certificate");
    let error = broker
        .reload()
        .expect_err("a key mismatch fails the reload");
    let key_file = pki.server.key.display().to_string();
    assert!(
        error.to_string().contains(&key_file),
        "the error names {key_file}: {error}"
    );
    assert_eq!(client(&broker, &pki, "still-old-2").1, owned(FIRST));
    before.ping();
}
