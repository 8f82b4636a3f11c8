//! The load generator over TLS, WebSocket and both, against a RingMQ broker started in this
//! process with one listener of each kind. Certificates are made at run time with rcgen (a CA
//! and a server certificate it signed for 127.0.0.1) and removed afterwards; none is
//! committed. Every run is bounded and checks counts, never timings.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use ringmq::config::{ListenerConfig, ListenerProtocol, TlsFiles};
use ringmq_loadgen::cli::{Cli, Command};
use ringmq_loadgen::scenario::{conn, pubsub, retained};
use ringmq_loadgen::{compare, Report};

/// A temp directory with the test PKI in it, removed when dropped.
struct Pki {
    dir: PathBuf,
}

impl Pki {
    fn new(name: &str) -> Pki {
        use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
        let dir = std::env::temp_dir().join(format!("lg-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca =
            CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("key")).expect("CA");
        let key = KeyPair::generate().expect("key");
        let names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
        let leaf = CertificateParams::new(names)
            .expect("params")
            .signed_by(&key, &ca)
            .expect("leaf");
        // An unrelated CA, for the test that must not trust the server.
        let mut other_params = CertificateParams::new(Vec::<String>::new()).expect("params");
        other_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let other = CertifiedIssuer::self_signed(other_params, KeyPair::generate().expect("key"))
            .expect("other CA");
        let write = |file: &str, text: String| std::fs::write(dir.join(file), text).expect("write");
        write("ca.crt", ca.pem());
        write("other-ca.crt", other.pem());
        write("server.crt", leaf.pem());
        write("server.key", key.serialize_pem());
        Pki { dir }
    }

    fn path(&self, file: &str) -> String {
        self.dir.join(file).display().to_string()
    }

    fn files(&self) -> TlsFiles {
        TlsFiles {
            cert_file: self.dir.join("server.crt"),
            key_file: self.dir.join("server.key"),
            client_ca_file: None,
            require_client_certificate: false,
            use_identity_as_username: false,
        }
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Listeners in this order: mqtt, mqtts, ws, wss.
struct Addrs {
    mqtts: SocketAddr,
    ws: SocketAddr,
    wss: SocketAddr,
}

fn start_broker(pki: &Pki) -> (ringmq::runtime::Broker, Addrs) {
    let any: SocketAddr = "127.0.0.1:0".parse().expect("addr");
    let listener = |protocol, tls: Option<TlsFiles>| ListenerConfig {
        protocol,
        tls,
        from_table: true,
        ..ListenerConfig::mqtt(any)
    };
    let config = ringmq::config::Config {
        listeners: vec![
            ListenerConfig::mqtt(any),
            listener(ListenerProtocol::Mqtt, Some(pki.files())),
            listener(ListenerProtocol::Ws, None),
            listener(ListenerProtocol::Ws, Some(pki.files())),
        ],
        sys_interval_s: 1,
        ..Default::default()
    };
    let broker = ringmq::runtime::start(config).expect("broker starts");
    let a = broker.local_addrs();
    let addrs = Addrs {
        mqtts: a[1],
        ws: a[2],
        wss: a[3],
    };
    (broker, addrs)
}

fn command(addr: SocketAddr, argv: &[&str]) -> Command {
    let port = addr.port().to_string();
    let mut all = vec!["ringmq-loadgen"];
    all.extend_from_slice(argv);
    all.extend_from_slice(&["--port", &port, "--threads", "2", "--quiet"]);
    all.extend_from_slice(&["--connect-timeout", "5"]);
    Cli::parse_from(all).command
}

fn pubsub_run(addr: SocketAddr, argv: &[&str]) -> Result<Report, ringmq_loadgen::LoadgenError> {
    let mut all = vec!["pubsub"];
    all.extend_from_slice(argv);
    let Command::Pubsub(args) = command(addr, &all) else {
        unreachable!("pubsub")
    };
    pubsub::run(&args)
}

fn assert_exact(report: &Report) {
    let m = report.messages.as_ref().expect("messages section");
    let t = &m.totals;
    assert!(t.sent > 0, "something was sent: {}", report.render());
    assert_eq!(t.counts.unique, t.expected, "{}", report.render());
    assert_eq!(
        (t.lost, t.extra, t.counts.duplicated, m.unacked),
        (0, 0, 0, 0),
        "{}",
        report.render()
    );
    assert_eq!(report.connections.failed + report.connections.dropped, 0);
}

#[test]
fn qos1_point_to_point_is_exact_over_tls_ws_and_wss() {
    let pki = Pki::new("p2p");
    let (broker, addrs) = start_broker(&pki);
    let ca = pki.path("ca.crt");
    let flags = ["--publishers", "3", "--qos", "1", "--count", "1500"];
    let cases: [(SocketAddr, &str, Vec<&str>); 3] = [
        (addrs.mqtts, "mqtts", vec!["--tls", "--ca-file", &ca]),
        (addrs.ws, "ws", vec!["--ws"]),
        (addrs.wss, "wss", vec!["--tls", "--ws", "--ca-file", &ca]),
    ];
    for (addr, scheme, transport) in cases {
        let mut argv = flags.to_vec();
        argv.extend(transport);
        let report = pubsub_run(addr, &argv).expect("runs");
        assert_exact(&report);
        let m = report.messages.as_ref().expect("messages");
        assert_eq!((m.totals.sent, m.totals.expected), (1500, 1500));
        assert_eq!(report.transport, scheme);
        assert_eq!(report.connections.connect_latency.count, 6);
    }
    broker.shutdown();
}

#[test]
fn qos2_fan_out_over_wss_with_mqtt5_matches_the_sys_counter_read_over_wss() {
    let pki = Pki::new("sys");
    let (broker, addrs) = start_broker(&pki);
    // The probe reads $SYS through the same transport; one interval with no publishes first.
    std::thread::sleep(Duration::from_millis(1_100));
    let argv = [
        "--shape",
        "fan-out",
        "--subscribers",
        "3",
        "--qos",
        "2",
        "--mqtt-version",
        "5",
        "--count",
        "300",
        "--payload-bytes",
        "70000",
        "--sys-check-wait",
        "10",
        "--tls",
        "--insecure",
        "--ws",
    ];
    // 70 kB payloads span WebSocket frames (64 KiB each) and TLS records both ways.
    let report = pubsub_run(addrs.wss, &argv).expect("runs");
    assert_exact(&report);
    let m = report.messages.as_ref().expect("messages");
    assert_eq!((m.totals.sent, m.totals.expected), (300, 900));
    let check = report.sys_check.as_ref().expect("sys check ran");
    assert!(check.matches, "{}", report.render());
    broker.shutdown();
}

#[test]
fn conn_and_retained_over_tls() {
    let pki = Pki::new("conn");
    let (broker, addrs) = start_broker(&pki);
    let Command::Conn(mut args) = command(
        addrs.mqtts,
        &[
            "conn",
            "--clients",
            "100",
            "--duration",
            "0.2",
            "--tls",
            "--insecure",
        ],
    ) else {
        unreachable!("conn")
    };
    // The broker runs in this process, so its pid is ours.
    args.common.broker_pid = Some(std::process::id());
    let report = conn::run(&args).expect("conn runs");
    assert_eq!(
        (report.connections.ready, report.connections.failed),
        (100, 0)
    );
    assert_eq!(report.connections.connect_latency.count, 100);
    let broker_figures = report.broker.as_ref().expect("--broker-pid figures");
    assert!(broker_figures.cpu_us_per_connect.is_some());

    let Command::Retained(args) = command(
        addrs.ws,
        &[
            "retained", "--topics", "200", "--filter", "+/7", "--count", "3", "--ws",
        ],
    ) else {
        unreachable!("retained")
    };
    let report = retained::run(&args).expect("retained runs");
    let r = report.retained.as_ref().expect("retained section");
    assert_eq!((r.matching, r.rounds), (2, 3), "{}", report.render());
    broker.shutdown();
}

#[test]
fn an_untrusted_certificate_fails_unless_insecure() {
    let pki = Pki::new("trust");
    let (broker, addrs) = start_broker(&pki);
    let stranger = pki.path("other-ca.crt");
    let flags = ["--publishers", "1", "--count", "10", "--qos", "1"];
    let mut argv = flags.to_vec();
    argv.extend(["--tls", "--ca-file", &stranger]);
    let error = pubsub_run(addrs.mqtts, &argv).expect_err("a CA we do not trust");
    let text = error.to_string();
    assert!(
        text.contains("could not connect") && text.contains("invalid peer certificate"),
        "{text}"
    );
    // The right CA, but a name the certificate does not carry.
    let ca = pki.path("ca.crt");
    let mut argv = flags.to_vec();
    argv.extend(["--tls", "--ca-file", &ca, "--server-name", "broker.example"]);
    let error = pubsub_run(addrs.mqtts, &argv).expect_err("wrong name");
    assert!(error.to_string().contains("not valid for name"), "{error}");

    let mut argv = flags.to_vec();
    argv.extend(["--tls", "--insecure"]);
    assert_exact(&pubsub_run(addrs.mqtts, &argv).expect("--insecure connects"));
    broker.shutdown();
}

#[test]
fn compare_gives_each_side_its_own_transport() {
    let pki = Pki::new("compare");
    let (broker, addrs) = start_broker(&pki);
    let a = format!("mqtts://{}", addrs.mqtts);
    let b = format!("ws://{}/mqtt", addrs.ws);
    let cli = Cli::parse_from([
        "ringmq-loadgen",
        "compare",
        "--a",
        &a,
        "--b",
        &b,
        "--rounds",
        "1",
        "pubsub",
        "--insecure",
        "--qos",
        "1",
        "--count",
        "200",
        "--threads",
        "1",
        "--quiet",
    ]);
    let Command::Compare(args) = cli.command else {
        unreachable!("compare")
    };
    let comparison = compare::run(&args).expect("compare runs");
    let transports: Vec<&str> = comparison.runs.iter().map(|r| r.report.transport).collect();
    assert_eq!(transports, ["mqtts", "ws"]);
    for run in &comparison.runs {
        assert_exact(&run.report);
    }
    broker.shutdown();
}
