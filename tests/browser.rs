//! A real browser as the client: headless Chromium (Debian's `chromium`) driven by Playwright
//! for Python loads a page with MQTT.js (npm `mqtt`, its bundled `dist/mqtt.min.js`), which
//! connects over `ws://` or `wss://`, subscribes at QoS 2, publishes at QoS 0, 1 and 2, and
//! writes what it received into the page; the test reads it back from the page.
//!
//! `--dump-dom` returns before a WebSocket round trip completes, hence Playwright, which waits
//! for the page to report. Playwright's own browser download cannot work here, so it drives
//! `/usr/bin/chromium` (`executable_path`). The page is `page.set_content` with MQTT.js
//! inlined by `add_script_tag`: no HTTP server.
//!
//! `wss://` with the test CA: Chromium is told to accept the server certificate's public key
//! by `--ignore-certificate-errors-spki-list=<base64 SHA-256 of its SPKI>`. Without it the
//! WebSocket closes before CONNECT (checked). Playwright's `ignore_https_errors` also makes it
//! connect, but accepts any certificate; the pin accepts this one key only.
//!
//! `tests/run.sh` installs Chromium (apt), MQTT.js (npm, into `target/mqttjs`) and Playwright
//! (pip, into `target/pyenv`). The whole browser run is bounded by [`BROWSER_TIMEOUT`].

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use common::certs::Pki;
use common::clients::{exit_status, tool_ready, Process};
use common::{start_broker_with, Broker};
use ringmq::config::{ListenerConfig, ListenerProtocol};
use sha2::Digest;

const CHROMIUM: &str = "/usr/bin/chromium";

/// The longest a browser run may take, start to finish.
const BROWSER_TIMEOUT: Duration = Duration::from_secs(60);

const INSTALL: &str = "tests/run.sh (apt chromium, npm mqtt into target/mqttjs, pip playwright \
                       into target/pyenv, which it puts first on PATH)";

/// MQTT.js's browser bundle, as `tests/run.sh` installs it.
fn mqtt_js() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("target/mqttjs/node_modules/mqtt/dist/mqtt.min.js")
}

fn browser_ready() -> bool {
    let chromium = Path::new(CHROMIUM).exists();
    let playwright =
        exit_status("python3", &["-c", "import playwright.sync_api"]).is_some_and(|s| s.success());
    tool_ready("Debian's chromium", chromium, INSTALL)
        && tool_ready("Playwright for Python", playwright, INSTALL)
        && tool_ready("MQTT.js (target/mqttjs)", mqtt_js().exists(), INSTALL)
}

/// Launches Chromium with a fresh profile, runs the round trip in a page, prints the page's
/// report. Arguments: URL, MQTT.js path, profile dir, extra Chromium flag (or "-").
const PLAYWRIGHT_SCRIPT: &str = r##"
import sys
from playwright.sync_api import sync_playwright

url, mqtt_js, profile, extra = sys.argv[1:5]
args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
if extra != "-":
    args.append(extra)

ROUND_TRIP = r"""(url) => {
  const out = document.getElementById("result");
  const report = (text) => { if (!out.textContent) out.textContent = text; };
  const got = [];
  const client = mqtt.connect(url, {
    protocolVersion: 4, clientId: "browser-" + Math.random().toString(16).slice(2),
    reconnectPeriod: 0, connectTimeout: 10000 });
  client.on("error", (e) => report("error: " + e.message));
  client.on("close", () => report("error: closed before the round trip"));
  client.on("connect", () => {
    client.subscribe("browser/data", { qos: 2 }, (err, granted) => {
      if (err) return report("error: subscribe: " + err.message);
      for (const qos of [0, 1, 2]) client.publish("browser/data", "browser-" + qos, { qos });
    });
  });
  client.on("message", (topic, payload, packet) => {
    got.push(packet.qos + " " + payload.toString());
    if (got.length === 3) { report(got.sort().join("\n")); client.end(); }
  });
}"""

with sync_playwright() as p:
    context = p.chromium.launch_persistent_context(
        profile, executable_path="/usr/bin/chromium", headless=True, args=args, timeout=30000)
    page = context.new_page()
    page.set_content('<html><body><pre id="result"></pre></body></html>')
    page.add_script_tag(path=mqtt_js)
    page.evaluate(ROUND_TRIP, url)
    page.wait_for_function("document.getElementById('result').textContent !== ''",
                           timeout=20000)
    print(page.text_content("#result"), flush=True)
    context.close()
"##;

/// The plain test listener (0) and a WebSocket listener (1), on TLS for `wss`.
fn ws_broker(pki: &Pki, wss: bool) -> Broker {
    let tls = wss.then(|| pki.tls_files());
    start_broker_with(move |config| {
        let mut ws = ListenerConfig::mqtt(SocketAddr::from(([127, 0, 0, 1], 0)));
        ws.protocol = ListenerProtocol::Ws;
        ws.tls = tls;
        config.listeners.push(ws);
    })
}

/// Chromium's pin for the server certificate: base64 of the SHA-256 of its
/// SubjectPublicKeyInfo.
fn spki_pin(cert_file: &Path) -> String {
    let pem = std::fs::read(cert_file).expect("read the server certificate");
    let (_, pem) = x509_parser::pem::parse_x509_pem(&pem).expect("a PEM certificate");
    let cert = pem.parse_x509().expect("a valid certificate");
    let spki = cert.tbs_certificate.subject_pki.raw;
    base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(spki))
}

fn browser_round_trip(scheme: &str) {
    if !browser_ready() {
        return;
    }
    let pki = Pki::new(&format!("browser-{scheme}"));
    let wss = scheme == "wss";
    let broker = ws_broker(&pki, wss);
    // 127.0.0.1, the name the server certificate is for.
    let url = format!("{scheme}://127.0.0.1:{}/mqtt", broker.listener(1).port());
    let extra = if wss {
        format!(
            "--ignore-certificate-errors-spki-list={}",
            spki_pin(&pki.server.cert)
        )
    } else {
        "-".to_owned()
    };
    let profile = pki.dir().join("chromium-profile");
    let args = [
        "-c".to_owned(),
        PLAYWRIGHT_SCRIPT.to_owned(),
        url,
        mqtt_js().display().to_string(),
        profile.display().to_string(),
        extra,
    ];
    let lines = Process::spawn("python3", &args).finish_within(BROWSER_TIMEOUT);
    assert_eq!(lines, ["0 browser-0", "1 browser-1", "2 browser-2"]);
}

#[test]
fn chromium_with_mqtt_js_round_trips_over_ws() {
    browser_round_trip("ws");
}

#[test]
fn chromium_with_mqtt_js_round_trips_over_wss_with_the_test_ca() {
    browser_round_trip("wss");
}
