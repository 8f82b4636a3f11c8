//! Real third-party clients as processes against the broker: Debian's `mosquitto_pub` and
//! `mosquitto_sub` (3.1.1 and 5.0) and Python's paho-mqtt 2.x.
//!
//! A missing tool skips its test with a "skipped: ..." line, unless `RINGMQ_REQUIRE_INTEROP=1`
//! (as `tests/run.sh` sets), in which case the test fails and says how to install the tool.
//!
//! Every process is bounded: `mosquitto_sub` gets `-C n -W secs`, and every wait for a process
//! or a line of its output has a deadline after which the process is killed.
//!
//! To know that a `mosquitto_sub` has subscribed before publishing to it, each test first
//! retains a message on `interop/ready` and has the subscriber listen there too: the retained
//! message is sent right after the SUBACK, so its line on stdout means "subscribed".

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::clients::{
    exit_status, mosquitto_clients_ready, paho_ready, paho_round_trip, PahoTransport, Process,
    INSTALL_MOSQUITTO,
};
use common::{start_broker, text, tool_ready, ConnectOpts, RawClient};
use ringmq::codec::QoS;

/// `mosquitto_sub` output format: topic, QoS, retain flag, payload.
const FORMAT: &str = "%t %q %r %p";

fn broker_args(addr: SocketAddr, args: &[&str]) -> Vec<String> {
    let port = addr.port().to_string();
    let mut all = vec!["-h", "127.0.0.1", "-p", port.as_str()];
    all.extend_from_slice(args);
    all.into_iter().map(String::from).collect()
}

fn mosquitto_pub(addr: SocketAddr, args: &[&str]) {
    Process::spawn("mosquitto_pub", &broker_args(addr, args)).finish();
}

/// Starts `mosquitto_sub` on `interop/ready` plus `args`, and returns once it has subscribed.
fn ready_subscriber(addr: SocketAddr, args: &[&str]) -> Process {
    let mut retainer = RawClient::connected(addr, ConnectOpts::v311("ready-retainer"));
    retainer.publish("interop/ready", b"ready", QoS::AtLeastOnce, true);
    let mut all = vec!["-t", "interop/ready", "-F", FORMAT, "-W", "10"];
    all.extend_from_slice(args);
    let mut subscriber = Process::spawn("mosquitto_sub", &broker_args(addr, &all));
    let line = subscriber.line(Duration::from_secs(5));
    assert!(
        line.starts_with("interop/ready "),
        "expected the ready line, got {line:?}"
    );
    subscriber
}

/// mosquitto_pub at QoS 0, 1 and 2 to a mosquitto_sub subscribed at QoS 2, at `version`.
fn mosquitto_delivers_every_qos(version: &str) {
    if !mosquitto_clients_ready() {
        return;
    }
    let broker = start_broker(|_| {});
    let subscriber = ready_subscriber(
        broker.addr,
        &["-V", version, "-q", "2", "-t", "interop/data", "-C", "4"],
    );
    for qos in ["0", "1", "2"] {
        let payload = format!("m{qos}");
        mosquitto_pub(
            broker.addr,
            &[
                "-V",
                version,
                "-q",
                qos,
                "-t",
                "interop/data",
                "-m",
                &payload,
            ],
        );
    }
    // Published QoS equals delivered QoS (granted 2), retain 0, in publishing order.
    assert_eq!(
        subscriber.finish(),
        [
            "interop/data 0 0 m0",
            "interop/data 1 0 m1",
            "interop/data 2 0 m2"
        ]
    );
}

#[test]
fn mosquitto_v311_clients_deliver_qos_0_1_2() {
    mosquitto_delivers_every_qos("mqttv311");
}

#[test]
fn mosquitto_v5_clients_deliver_qos_0_1_2() {
    mosquitto_delivers_every_qos("mqttv5");
}

#[test]
fn mosquitto_retained_message_reaches_a_late_subscriber() {
    if !mosquitto_clients_ready() {
        return;
    }
    let broker = start_broker(|_| {});
    mosquitto_pub(
        broker.addr,
        &["-q", "1", "-r", "-t", "interop/state", "-m", "on"],
    );
    let args = [
        "-q",
        "1",
        "-t",
        "interop/state",
        "-F",
        FORMAT,
        "-C",
        "1",
        "-W",
        "10",
    ];
    let subscriber = Process::spawn("mosquitto_sub", &broker_args(broker.addr, &args));
    assert_eq!(subscriber.finish(), ["interop/state 1 1 on"]);
}

#[test]
fn mosquitto_sub_will_is_published_when_it_is_killed() {
    if !mosquitto_clients_ready() {
        return;
    }
    let broker = start_broker(|_| {});
    let mut watcher = RawClient::connected(broker.addr, ConnectOpts::v311("watcher"));
    watcher.subscribe(&[("interop/will", QoS::AtLeastOnce)]);
    let subscriber = ready_subscriber(
        broker.addr,
        &[
            "--will-topic",
            "interop/will",
            "--will-payload",
            "sub died",
            "--will-qos",
            "1",
        ],
    );
    subscriber.kill();
    let will = watcher.recv_publish();
    assert_eq!(
        (will.topic.as_str(), text(&will), will.qos),
        ("interop/will", "sub died", QoS::AtLeastOnce)
    );
}

#[test]
fn mosquitto_sub_persistent_session_gets_messages_published_while_it_was_down() {
    if !mosquitto_clients_ready() {
        return;
    }
    let broker = start_broker(|_| {});
    let session = [
        "-c",
        "-i",
        "interop-persistent",
        "-q",
        "1",
        "-t",
        "interop/data",
    ];
    ready_subscriber(broker.addr, &session).kill();

    let mut publisher = RawClient::connected(broker.addr, ConnectOpts::v311("publisher"));
    for payload in ["m1", "m2", "m3"] {
        publisher.publish("interop/data", payload.as_bytes(), QoS::AtLeastOnce, false);
    }
    let mut args = session.to_vec();
    args.extend_from_slice(&["-t", "interop/ready", "-F", FORMAT, "-C", "4", "-W", "10"]);
    let lines = Process::spawn("mosquitto_sub", &broker_args(broker.addr, &args)).finish();
    // The retained ready line comes again (mosquitto_sub resubscribes); the data lines are the
    // three queued messages, in order, at QoS 1. A resend of a message that was in flight when
    // the process was killed would carry DUP, which the format does not show.
    let data: Vec<&String> = lines
        .iter()
        .filter(|l| l.starts_with("interop/data "))
        .collect();
    assert_eq!(
        data,
        [
            "interop/data 1 0 m1",
            "interop/data 1 0 m2",
            "interop/data 1 0 m3"
        ],
        "{lines:?}"
    );
}

fn paho_delivers_every_qos(level: &str) {
    if !paho_ready() {
        return;
    }
    let broker = start_broker(|_| {});
    let how = PahoTransport {
        transport: "tcp",
        ca_file: None,
        client_cert: None,
        level,
    };
    paho_round_trip(broker.addr.port(), how);
}

#[test]
fn paho_v311_clients_deliver_qos_0_1_2() {
    paho_delivers_every_qos("311");
}

#[test]
fn paho_v5_clients_deliver_qos_0_1_2() {
    paho_delivers_every_qos("5");
}

/// Runs Debian's `mosquitto_passwd -b` (batch mode: the password on the command line, which
/// is fine for a test) to add a user to `file`.
fn mosquitto_passwd(file: &std::path::Path, hash: &str, user: &str, password: &str) {
    let file = file.to_str().expect("utf-8 path");
    let status = exit_status(
        "mosquitto_passwd",
        &["-H", hash, "-b", file, user, password],
    );
    assert!(
        status.is_some_and(|s| s.success()),
        "mosquitto_passwd failed"
    );
}

/// Runs mosquitto_pub with `args` to its end, whatever its exit status.
fn mosquitto_pub_status(args: &[String]) -> Option<std::process::ExitStatus> {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    exit_status("mosquitto_pub", &args)
}

/// The files a mosquitto user already has, made by mosquitto's own tool, work unchanged: the
/// password file (both the `$7$` default and the older `$6$`) and an ACL with a deny rule.
fn mosquitto_files_work_unchanged(version: &str) {
    if !mosquitto_clients_ready() {
        return;
    }
    let found = exit_status("mosquitto_passwd", &["--help"]).is_some();
    if !tool_ready("mosquitto_passwd", found, INSTALL_MOSQUITTO) {
        return;
    }
    let dir = std::env::temp_dir().join(format!(
        "ringmq-interop-auth-{}-{version}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let passwd = dir.join("passwd");
    let _ = std::fs::remove_file(&passwd);
    std::fs::write(&passwd, "").expect("empty password file");
    mosquitto_passwd(&passwd, "sha512-pbkdf2", "sensor", "s3cret");
    mosquitto_passwd(&passwd, "sha512", "legacy", "0ld");
    mosquitto_passwd(&passwd, "sha512-pbkdf2", "dash", "d4sh");
    let acl = dir.join("acl");
    std::fs::write(
        &acl,
        "topic readwrite interop/ready\n\nuser sensor\ntopic write sensors/#\n\n\
         user legacy\ntopic write sensors/#\n\n\
         user dash\ntopic read sensors/#\ntopic deny sensors/secret\ntopic read interop/ready\n",
    )
    .expect("write acl");
    let (passwd_path, acl_path) = (passwd.clone(), acl.clone());
    let broker = common::start_broker_with(move |config| {
        config.auth.allow_anonymous = Some(true);
        config.auth.password_file = Some(passwd_path);
        config.auth.acl_file = Some(acl_path);
    });
    let subscriber = ready_subscriber(
        broker.addr,
        &[
            "-V",
            version,
            "-u",
            "dash",
            "-P",
            "d4sh",
            "-q",
            "1",
            "-t",
            "sensors/#",
            "-C",
            "4",
        ],
    );
    for (user, password, topic, message) in [
        ("sensor", "s3cret", "sensors/secret", "hidden"),
        ("sensor", "s3cret", "sensors/t1", "21.5"),
        ("legacy", "0ld", "sensors/t2", "from-6"),
    ] {
        mosquitto_pub(
            broker.addr,
            &[
                "-V", version, "-u", user, "-P", password, "-q", "1", "-t", topic, "-m", message,
            ],
        );
    }
    // dash may not write: 5.0 reports the 0x87 PUBACK as an error, 3.1.1 is acked silently.
    let login = |user: &'static str, password: &'static str, topic: &'static str| {
        let args = [
            "-V", version, "-u", user, "-P", password, "-q", "1", "-t", topic, "-m", "x",
        ];
        broker_args(broker.addr, &args)
    };
    let _ = mosquitto_pub_status(&login("dash", "d4sh", "sensors/t3"));
    let last = [
        "-V",
        version,
        "-u",
        "sensor",
        "-P",
        "s3cret",
        "-q",
        "1",
        "-t",
        "sensors/t4",
    ];
    mosquitto_pub(broker.addr, &[&last[..], &["-m", "last"]].concat());
    let lines = subscriber.finish();
    assert_eq!(
        lines,
        vec![
            "sensors/t1 1 0 21.5",
            "sensors/t2 1 0 from-6",
            "sensors/t4 1 0 last"
        ],
        "{version}"
    );
    // A wrong password: mosquitto_pub is refused and says so.
    let refused = mosquitto_pub_status(&login("sensor", "nope", "sensors/x"));
    assert!(
        refused.is_some_and(|s| !s.success()),
        "{version}: wrong password accepted"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn mosquitto_v311_clients_with_mosquitto_passwd_and_acl_files() {
    mosquitto_files_work_unchanged("mqttv311");
}

#[test]
fn mosquitto_v5_clients_with_mosquitto_passwd_and_acl_files() {
    mosquitto_files_work_unchanged("mqttv5");
}
