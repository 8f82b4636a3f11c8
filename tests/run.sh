#!/usr/bin/env bash
# The whole test suite, as the README and CI run it. Installs what the tests need (Debian's
# mosquitto clients and Chromium, Python's paho-mqtt and Playwright, npm's MQTT.js), checks
# style, then runs every test under each I/O backend and shard count. Exits non-zero if
# anything fails.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v mosquitto_pub >/dev/null 2>&1 || need_apt+=(mosquitto-clients)
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || need_apt+=(mosquitto)
# tests/metrics.rs has a real Prometheus server scrape the broker.
[ -x /usr/bin/prometheus ] || need_apt+=(prometheus)
# tests/browser.rs: Debian's Chromium, driven by Playwright (whose own browser download cannot
# work offline), and npm to fetch MQTT.js for the page.
[ -x /usr/bin/chromium ] || need_apt+=(chromium)
command -v npm >/dev/null 2>&1 || need_apt+=(npm)

if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
  # The packages start system services (mosquitto on 1883, prometheus on 9090); tests and
  # benches start their own.
  for service in mosquitto prometheus prometheus-node-exporter; do
    $SUDO systemctl stop "$service" >/dev/null 2>&1 || $SUDO service "$service" stop >/dev/null 2>&1 || true
  done
fi
# paho-mqtt goes into a virtual environment under target/: Debian's and Ubuntu's system Python
# refuses `pip install` (PEP 668), and Debian's python3-paho-mqtt is 1.x. Debian ships `venv`
# in a package of its own (python3-venv).
pyenv=target/pyenv
if [ ! -x "$pyenv/bin/python3" ] && ! python3 -m venv "$pyenv" >/dev/null 2>&1; then
  rm -rf "$pyenv"
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
  python3 -m venv "$pyenv"
fi
"$pyenv/bin/python3" -c 'import paho.mqtt' 2>/dev/null || "$pyenv/bin/python3" -m pip install -q 'paho-mqtt>=2,<3'
# Playwright for Python drives /usr/bin/chromium; its driver ships inside the wheel.
"$pyenv/bin/python3" -c 'import playwright.sync_api' 2>/dev/null ||
  "$pyenv/bin/python3" -m pip install -q 'playwright>=1.40,<2'
# MQTT.js's browser bundle (node_modules/mqtt/dist/mqtt.min.js), which the browser test's page
# loads; kept under target/ like the venv.
[ -f target/mqttjs/node_modules/mqtt/dist/mqtt.min.js ] ||
  npm install --prefix target/mqttjs --no-audit --no-fund --silent 'mqtt@5'
# The interop tests run `python3`: this one.
export PATH="$PWD/$pyenv/bin:$PATH"

# Interop tests fail, rather than skip, when their tools are missing.
export RINGMQ_REQUIRE_INTEROP=1

cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo build --workspace --all-targets

# Unit, property and simulator tests once; the black-box suite under every backend and with 1
# and 3 shards (3 shards on 2 cores forces the cross-shard paths).
echo "=== test suite: --io uring --shards 1 (all tests) ==="
RINGMQ_TEST_IO=uring RINGMQ_TEST_SHARDS=1 cargo test --workspace
for combo in "uring 3" "epoll 1" "epoll 3"; do
  set -- $combo
  echo "=== black-box suite: --io $1 --shards $2 ==="
  RINGMQ_TEST_IO=$1 RINGMQ_TEST_SHARDS=$2 cargo test -p ringmq --test '*'
done

# Every cargo-fuzz target for a short fixed time (RINGMQ_FUZZ_S seconds each, default 15; 0
# skips), so that a crash the fuzzer finds within seconds fails CI; a crash exits non-zero and
# `set -e` fails the script. Long runs are on demand (tests/fuzz/README.md). Measured on a
# shared 2-core machine: cargo-fuzz install ~55 s (once), build ~90 s, runs ~32 s.
# RUSTC_BOOTSTRAP=1 lets a stable toolchain take cargo-fuzz's `-Z` flags. No sanitizer: outside
# the mesh rings the broker is safe Rust, and ASan makes the fuzzing five times slower. The
# build goes to target/fuzz, apart from the default (ASan) one in tests/fuzz/target.
fuzz_s=${RINGMQ_FUZZ_S:-15}
if [ "$fuzz_s" -gt 0 ]; then
  command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked --quiet
  fuzz_build=(--fuzz-dir tests/fuzz --sanitizer none --target-dir target/fuzz)
  # One build for all targets, so the broker is compiled once.
  RUSTC_BOOTSTRAP=1 cargo fuzz build "${fuzz_build[@]}"
  for target in $(RUSTC_BOOTSTRAP=1 cargo fuzz list --fuzz-dir tests/fuzz); do
    echo "=== fuzz: $target for ${fuzz_s}s ==="
    RUSTC_BOOTSTRAP=1 cargo fuzz run "${fuzz_build[@]}" "$target" -- \
      -max_total_time="$fuzz_s" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1
  done
fi
