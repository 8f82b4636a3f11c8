//! The load generator over each transport the broker serves: TLS (with a CA file, and
//! `--insecure`), WebSocket, and WebSocket over TLS, against an in-process RingMQ with test
//! certificates made by rcgen at run time. QoS 1 runs must deliver everything exactly once; a
//! certificate the CA file does not vouch for must fail every connection.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;
use ringmq::config::{ListenerConfig, ListenerProtocol, TlsFiles};
use ringmq_loadgen::cli::{Cli, Command};
use ringmq_loadgen::scenario::pubsub;
use ringmq_loadgen::Report;

/// A temporary directory with a CA, a localhost certificate signed by it, and a second,
/// unrelated CA; removed on drop.
struct Certs {
    dir: PathBuf,
}

impl Certs {
    fn new(tag: &str) -> Certs {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
        let dir =
            std::env::temp_dir().join(format!("loadgen-transports-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let ca = |name: &str| {
            let key = KeyPair::generate().expect("key");
            let mut params = CertificateParams::new(Vec::new()).expect("params");
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            params.distinguished_name.push(DnType::CommonName, name);
            let cert = params.self_signed(&key).expect("ca");
            (cert, Issuer::new(params, key))
        };
        let (ca_cert, issuer) = ca("loadgen test CA");
        let (other_ca, _) = ca("some other CA");
        let key = KeyPair::generate().expect("key");
        let server = CertificateParams::new(vec!["localhost".into()])
            .expect("params")
            .signed_by(&key, &issuer)
            .expect("server cert");
        let write = |name: &str, text: String| std::fs::write(dir.join(name), text).expect("write");
        write("ca.pem", ca_cert.pem());
        write("other-ca.pem", other_ca.pem());
        write("server.pem", server.pem());
        write("server.key", key.serialize_pem());
        Certs { dir }
    }

    fn path(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }

    fn files(&self) -> TlsFiles {
        TlsFiles {
            cert_file: self.dir.join("server.pem"),
            key_file: self.dir.join("server.key"),
            client_ca_file: None,
            require_client_certificate: false,
            use_identity_as_username: false,
        }
    }
}

impl Drop for Certs {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A broker with an mqtts, a ws and a wss listener, in that order.
fn start_broker(certs: &Certs) -> (ringmq::runtime::Broker, [SocketAddr; 3]) {
    let any: SocketAddr = "127.0.0.1:0".parse().expect("addr");
    let listener = |protocol, tls: bool| ListenerConfig {
        protocol,
        tls: tls.then(|| certs.files()),
        ..ListenerConfig::mqtt(any)
    };
    let config = ringmq::config::Config {
        listeners: vec![
            listener(ListenerProtocol::Mqtt, true),
            listener(ListenerProtocol::Ws, false),
            listener(ListenerProtocol::Ws, true),
        ],
        ..Default::default()
    };
    let broker = ringmq::runtime::start(config).expect("broker starts");
    let addrs = broker.local_addrs();
    let addrs = [addrs[0], addrs[1], addrs[2]];
    (broker, addrs)
}

fn run(addr: SocketAddr, transport: &[&str]) -> Report {
    try_run(addr, transport).expect("pubsub runs")
}

fn try_run(addr: SocketAddr, transport: &[&str]) -> Result<Report, ringmq_loadgen::LoadgenError> {
    let port = addr.port().to_string();
    let mut argv = vec![
        "ringmq-loadgen",
        "pubsub",
        "--host",
        "localhost",
        "--port",
        &port,
        "--shape",
        "p2p",
        "--publishers",
        "4",
        "--subscribers",
        "4",
        "--qos",
        "1",
        "--window",
        "50",
        "--duration",
        "0.5",
        "--threads",
        "2",
        "--quiet",
        "--connect-timeout",
        "5",
    ];
    argv.extend_from_slice(transport);
    let Command::Pubsub(args) = Cli::parse_from(argv).command else {
        unreachable!("pubsub")
    };
    pubsub::run(&args)
}

fn assert_exactly_once(report: &Report, what: &str) {
    let m = report.messages.as_ref().expect("messages section");
    let t = &m.totals;
    assert!(t.sent > 0, "{what}: nothing sent\n{}", report.render());
    assert_eq!(t.counts.unique, t.expected, "{what}\n{}", report.render());
    assert_eq!(t.counts.duplicated, 0, "{what}");
}

#[test]
fn qos1_runs_over_tls_ws_and_wss_deliver_everything_once() {
    let certs = Certs::new("qos1");
    let (_broker, [mqtts, ws, wss]) = start_broker(&certs);
    let ca = certs.path("ca.pem");
    assert_exactly_once(&run(mqtts, &["--tls", "--ca-file", &ca]), "mqtts, CA file");
    assert_exactly_once(&run(mqtts, &["--tls", "--insecure"]), "mqtts, insecure");
    assert_exactly_once(&run(ws, &["--ws"]), "ws");
    assert_exactly_once(&run(wss, &["--tls", "--ca-file", &ca, "--ws"]), "wss");
}

#[test]
fn a_certificate_the_ca_file_does_not_vouch_for_fails_every_connection() {
    let certs = Certs::new("unknown-ca");
    let (_broker, [mqtts, _, _]) = start_broker(&certs);
    let other = certs.path("other-ca.pem");
    let error = try_run(mqtts, &["--tls", "--ca-file", &other])
        .map(|r| r.render())
        .expect_err("no client gets through");
    let error = error.to_string();
    assert!(error.contains("UnknownIssuer"), "{error}");
}
