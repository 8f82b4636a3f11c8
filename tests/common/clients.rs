//! Third-party clients run as processes: Debian's `mosquitto_pub`/`mosquitto_sub`, Python's
//! paho-mqtt 2.x, and Playwright driving Debian's Chromium. Each is bounded: every wait for a
//! process or a line of its output has a deadline, after which the process is killed and the
//! test fails with what it wrote to stderr.
//!
//! A missing tool skips its test with a "skipped: ..." line, unless `RINGMQ_REQUIRE_INTEROP=1`
//! (as `tests/run.sh` sets), in which case the test fails and says how to install the tool.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::thread;
use std::time::{Duration, Instant};

pub const INSTALL_MOSQUITTO: &str =
    "apt-get install -y mosquitto-clients (Debian/Ubuntu; or run tests/run.sh, which installs it)";
pub const INSTALL_PAHO: &str =
    "tests/run.sh (it makes target/pyenv with paho-mqtt 2.x and puts it first on PATH)";

/// How long a whole client process may run, unless its test says otherwise.
pub const PROCESS_TIMEOUT: Duration = Duration::from_secs(15);

/// True if a third-party tool a test needs can run; otherwise the test skips (prints
/// "skipped: ..."), or fails under `RINGMQ_REQUIRE_INTEROP=1` (as `tests/run.sh` sets) and says
/// how to install the tool.
pub fn tool_ready(what: &str, found: bool, install: &str) -> bool {
    if found {
        return true;
    }
    if std::env::var("RINGMQ_REQUIRE_INTEROP").as_deref() == Ok("1") {
        panic!(
            "{what} is required (RINGMQ_REQUIRE_INTEROP=1) but missing; install it with: {install}"
        );
    }
    println!("skipped: {what} not found; install it with: {install}");
    false
}

/// Runs `program` quietly; `None` if it cannot be started at all.
pub fn exit_status(program: &str, args: &[&str]) -> Option<ExitStatus> {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .ok()
}

pub fn mosquitto_clients_ready() -> bool {
    // `--help` exits non-zero, but that it starts at all shows the tool is installed.
    let found = exit_status("mosquitto_sub", &["--help"]).is_some()
        && exit_status("mosquitto_pub", &["--help"]).is_some();
    tool_ready("mosquitto_sub/mosquitto_pub", found, INSTALL_MOSQUITTO)
}

pub fn paho_ready() -> bool {
    let check = "import paho.mqtt.client as m; m.CallbackAPIVersion.VERSION2";
    let found = exit_status("python3", &["-c", check]).is_some_and(|s| s.success());
    tool_ready("python3 with paho-mqtt 2.x", found, INSTALL_PAHO)
}

/// A client process whose stdout is read line by line; killed when dropped.
pub struct Process {
    name: String,
    child: Child,
    lines: Receiver<String>,
    stderr: Receiver<String>,
}

impl Process {
    pub fn spawn(program: &str, args: &[String]) -> Process {
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {program}: {e}"));
        let (line_tx, lines) = mpsc::channel();
        let stdout = child.stdout.take().expect("piped stdout");
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = line_tx.send(line);
            }
        });
        let (err_tx, stderr) = mpsc::channel();
        let mut pipe = child.stderr.take().expect("piped stderr");
        thread::spawn(move || {
            let mut all = String::new();
            let _ = pipe.read_to_string(&mut all);
            let _ = err_tx.send(all);
        });
        Process {
            name: format!("{program} {}", args.join(" ")),
            child,
            lines,
            stderr,
        }
    }

    /// The next line of stdout; fails after `within`.
    pub fn line(&mut self, within: Duration) -> String {
        match self.lines.recv_timeout(within) {
            Ok(line) => line,
            Err(_) => self.fail(format!("no output within {within:?}")),
        }
    }

    /// Waits for a successful exit and returns the stdout lines not read yet.
    pub fn finish(self) -> Vec<String> {
        self.finish_within(PROCESS_TIMEOUT)
    }

    /// [`Process::finish`] with a deadline of the test's choice.
    pub fn finish_within(mut self, timeout: Duration) -> Vec<String> {
        let status = self.wait(timeout);
        if !status.success() {
            self.fail(format!("exited with {status}"));
        }
        // The reader thread ends at EOF, which closes the channel.
        self.lines.iter().collect()
    }

    /// Waits for the process to fail (a refused client) and returns its stderr.
    pub fn expect_failure(mut self) -> String {
        let status = self.wait(PROCESS_TIMEOUT);
        let stderr = self
            .stderr
            .recv_timeout(Duration::from_secs(1))
            .unwrap_or_default();
        assert!(
            !status.success(),
            "`{}` succeeded but should have been refused; stderr: {stderr:?}",
            self.name
        );
        stderr
    }

    fn wait(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("poll the child") {
                return status;
            }
            if Instant::now() >= deadline {
                self.fail(format!("still running after {timeout:?}"));
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL: the process gets no chance to send DISCONNECT.
    pub fn kill(mut self) {
        self.child.kill().expect("SIGKILL the child");
        let _ = self.child.wait();
    }

    /// Kills the process and fails the test with `why` and whatever it wrote to stderr.
    fn fail(&mut self, why: String) -> ! {
        let _ = self.child.kill();
        let stderr = self
            .stderr
            .recv_timeout(Duration::from_secs(1))
            .unwrap_or_default();
        panic!("`{}`: {why}; stderr: {stderr:?}", self.name);
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How a paho client reaches the broker in [`paho_round_trip`].
pub struct PahoTransport<'a> {
    /// `tcp` or `websockets` (paho's names).
    pub transport: &'a str,
    /// The CA file to verify the server with; `None` for no TLS.
    pub ca_file: Option<&'a Path>,
    /// A client certificate and key (PEM files).
    pub client_cert: Option<(&'a Path, &'a Path)>,
    /// The protocol level: `311` or `5`.
    pub level: &'a str,
}

/// A paho subscriber (QoS 2) and a paho publisher (QoS 0, 1, 2) at the given protocol level,
/// over the given transport. Prints "qos payload" per received message; exits non-zero on any timeout or
/// refused connection.
const PAHO_ROUND_TRIP: &str = r#"
import sys, threading
import paho.mqtt.client as mqtt

host, port, transport, ca, cert, key, level = sys.argv[1:8]
protocol = mqtt.MQTTv5 if level == "5" else mqtt.MQTTv311
received, done = [], threading.Event()
subscribed, pub_connected = threading.Event(), threading.Event()

def client(name):
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=name + level,
                    transport=transport, protocol=protocol)
    if transport == "websockets":
        c.ws_set_options(path="/mqtt")
    if ca != "-":
        c.tls_set(ca_certs=ca, certfile=None if cert == "-" else cert,
                  keyfile=None if key == "-" else key)
    return c

def on_sub_connect(c, userdata, flags, reason_code, properties):
    if reason_code.is_failure:
        print("subscriber refused: %s" % reason_code, file=sys.stderr)
    c.subscribe("paho/data", qos=2)

def on_message(c, userdata, msg):
    received.append("%d %s" % (msg.qos, msg.payload.decode()))
    if len(received) == 3:
        done.set()

sub = client("paho-sub-" + transport)
sub.on_connect = on_sub_connect
sub.on_subscribe = lambda c, u, mid, codes, props: subscribed.set()
sub.on_message = on_message
sub.connect(host, int(port))
sub.loop_start()
if not subscribed.wait(5):
    sys.exit("no SUBACK")

pub = client("paho-pub-" + transport)
pub.on_connect = lambda c, u, f, rc, p: pub_connected.set()
pub.connect(host, int(port))
pub.loop_start()
if not pub_connected.wait(5):
    sys.exit("no CONNACK for the publisher")
for qos in (0, 1, 2):
    pub.publish("paho/data", "paho-%d" % qos, qos=qos).wait_for_publish(5)
if not done.wait(5):
    sys.exit("received only %r" % received)
print("\n".join(received), flush=True)
pub.disconnect()
sub.disconnect()
pub.loop_stop()
sub.loop_stop()
"#;

/// Runs [`PAHO_ROUND_TRIP`] against `127.0.0.1:port` and asserts every QoS arrived.
pub fn paho_round_trip(port: u16, how: PahoTransport) {
    let path = |p: Option<&Path>| p.map_or("-".to_owned(), |p| p.display().to_string());
    let args = [
        "-c".to_owned(),
        PAHO_ROUND_TRIP.to_owned(),
        "127.0.0.1".to_owned(),
        port.to_string(),
        how.transport.to_owned(),
        path(how.ca_file),
        path(how.client_cert.map(|c| c.0)),
        path(how.client_cert.map(|c| c.1)),
        how.level.to_owned(),
    ];
    let lines = Process::spawn("python3", &args).finish();
    assert_eq!(
        lines,
        ["0 paho-0", "1 paho-1", "2 paho-2"],
        "{}",
        how.transport
    );
}
