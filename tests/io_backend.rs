//! The io_uring fallback, tested the way it happens in production: the real `ringmq` binary
//! started under a seccomp filter that refuses `io_uring_setup` with EPERM, as container
//! runtimes' default profiles do. Also covers signals (SIGTERM shutdown, SIGHUP reload) and
//! bad-config exits.

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{text, ConnectOpts, RawClient};
use ringmq::codec::QoS;

/// `io_uring_setup` has the same number on every Linux architecture (it postdates the
/// per-architecture tables).
const SYS_IO_URING_SETUP: u32 = 425;

/// Installs a seccomp filter in the calling process that fails `io_uring_setup` with EPERM.
fn deny_io_uring() -> std::io::Result<()> {
    let filter = [
        // Load the syscall number (offset 0 of `struct seccomp_data`).
        libc::sock_filter {
            code: (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16,
            jt: 0,
            jf: 0,
            k: 0,
        },
        libc::sock_filter {
            code: (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16,
            jt: 0,
            jf: 1,
            k: SYS_IO_URING_SETUP,
        },
        libc::sock_filter {
            code: (libc::BPF_RET | libc::BPF_K) as u16,
            jt: 0,
            jf: 0,
            k: libc::SECCOMP_RET_ERRNO | (libc::EPERM as u32 & libc::SECCOMP_RET_DATA),
        },
        libc::sock_filter {
            code: (libc::BPF_RET | libc::BPF_K) as u16,
            jt: 0,
            jf: 0,
            k: libc::SECCOMP_RET_ALLOW,
        },
    ];
    let program = libc::sock_fprog {
        len: filter.len() as u16,
        filter: filter.as_ptr() as *mut _,
    };
    // SAFETY: plain prctl calls in the child between fork and exec; `program` and `filter`
    // outlive the calls, and the kernel copies the filter.
    let rc = unsafe {
        if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        libc::prctl(
            libc::PR_SET_SECCOMP,
            libc::SECCOMP_MODE_FILTER,
            &program as *const _,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

fn ringmq(args: &[&str], seccomp: bool) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ringmq"));
    command
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if seccomp {
        // SAFETY: `deny_io_uring` only makes async-signal-safe syscalls (prctl).
        unsafe {
            command.pre_exec(deny_io_uring);
        }
    }
    command
}

/// Reads the broker's log until it says where it serves; returns that address and the lines.
fn wait_until_serving(child: &mut Child) -> (SocketAddr, Vec<String>) {
    let (addr, lines, _) = serving_with_log(child);
    (addr, lines)
}

/// [`wait_until_serving`], also returning the rest of the log as it comes.
fn serving_with_log(
    child: &mut Child,
) -> (SocketAddr, Vec<String>, std::sync::mpsc::Receiver<String>) {
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut lines = Vec::new();
    while let Ok(line) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        lines.push(line.clone());
        if let Some(addr) = common::process::first_listener(&line) {
            return (addr, lines, rx);
        }
    }
    panic!("broker never said it was serving; log so far: {lines:#?}");
}

fn round_trip(addr: SocketAddr) {
    let mut sub = RawClient::connected(addr, ConnectOpts::v311("sub"));
    sub.subscribe(&[("io/test", QoS::AtLeastOnce)]);
    let mut publisher = RawClient::connected(addr, ConnectOpts::v311("pub"));
    publisher.publish("io/test", b"works", QoS::AtLeastOnce, false);
    assert_eq!(text(&sub.recv_publish()), "works");
}

fn signal(child: &Child, signal: i32) {
    // SAFETY: sending a signal to our own child process by its pid.
    unsafe {
        libc::kill(child.id() as i32, signal);
    }
}

fn terminate(mut child: Child) -> std::process::ExitStatus {
    signal(&child, libc::SIGTERM);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = child.try_wait().expect("wait for the broker") {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "broker did not exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn blocked_io_uring_falls_back_to_epoll_and_says_so() {
    let mut child = ringmq(&["--listen", "127.0.0.1:0", "--shards", "2"], true)
        .spawn()
        .expect("start ringmq");
    let (addr, lines) = wait_until_serving(&mut child);
    let log = lines.join("\n");
    assert!(
        log.contains("falling back to epoll"),
        "no fallback line in: {log}"
    );
    assert!(log.contains("backend=Epoll"), "not serving on epoll: {log}");
    round_trip(addr);
    let status = terminate(child);
    assert!(status.success(), "clean exit on SIGTERM, got {status}");
}

#[test]
fn forcing_io_uring_when_blocked_is_an_error() {
    let output = ringmq(&["--listen", "127.0.0.1:0", "--io", "uring"], true)
        .output()
        .expect("run ringmq");
    assert!(!output.status.success());
    let log = String::from_utf8_lossy(&output.stdout) + String::from_utf8_lossy(&output.stderr);
    assert!(
        log.contains("io_uring"),
        "error should name io_uring: {log}"
    );
}

#[test]
fn sigterm_shuts_down_cleanly() {
    let mut child = ringmq(&["--listen", "127.0.0.1:0"], false)
        .spawn()
        .expect("start ringmq");
    let (addr, _) = wait_until_serving(&mut child);
    let mut client = RawClient::connected(addr, ConnectOpts::v311("c"));
    client.ping();
    assert!(terminate(child).success());
    client.expect_closed(common::CLOSE_TIMEOUT);
}

#[test]
fn bad_config_key_exits_non_zero_naming_the_key() {
    let dir = std::env::temp_dir().join(format!("ringmq-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("bad.toml");
    std::fs::write(&file, "[limits]\ninflight_maxx = 3\n").expect("write config");
    let output = ringmq(&["--config", file.to_str().expect("utf-8 path")], false)
        .output()
        .expect("run ringmq");
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("inflight_maxx"));
}

/// Waits for a log line containing `needle`.
fn log_line(log: &std::sync::mpsc::Receiver<String>, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    while let Ok(line) = log.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        if line.contains(needle) {
            return line;
        }
    }
    panic!("no log line with {needle:?}");
}

/// Publishes on `topic` until `subscriber` gets it or, with `want` false, until it stops
/// getting it: a reload reaches every shard within a tick.
fn until_delivery(publisher: &mut RawClient, subscriber: &mut RawClient, topic: &str, want: bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        publisher.publish(topic, b"probe", QoS::AtLeastOnce, false);
        let got = !subscriber
            .drain_publishes(Duration::from_millis(200))
            .is_empty();
        if got == want {
            return;
        }
    }
    panic!("delivery on {topic} never became {want}");
}

#[test]
fn sighup_reloads_the_acl_without_disconnecting_and_keeps_it_when_broken() {
    let dir = std::env::temp_dir().join(format!("ringmq-sighup-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let acl = dir.join("acl");
    std::fs::write(&acl, "topic readwrite x/#\n").expect("write acl");
    let config = dir.join("ringmq.toml");
    let toml = format!(
        "listen = [\"127.0.0.1:0\"]\n[auth]\nallow_anonymous = true\nacl_file = {:?}\n",
        acl.to_str().expect("utf-8 path")
    );
    std::fs::write(&config, toml).expect("write config");
    let mut child = ringmq(&["--config", config.to_str().expect("utf-8")], false)
        .spawn()
        .expect("start ringmq");
    let (addr, _, log) = serving_with_log(&mut child);
    let mut sub = RawClient::connected(addr, ConnectOpts::v311("sub"));
    sub.subscribe(&[("x/#", QoS::AtLeastOnce)]);
    let mut publisher = RawClient::connected(addr, ConnectOpts::v311("pub"));
    until_delivery(&mut publisher, &mut sub, "x/1", true);
    // Anonymous clients keep `write` but lose `read`.
    std::fs::write(&acl, "topic write x/#\n").expect("rewrite acl");
    signal(&child, libc::SIGHUP);
    log_line(&log, "access policy reloaded");
    until_delivery(&mut publisher, &mut sub, "x/2", false);
    // A broken file: the error names file:line, and the policy stays as it was.
    std::fs::write(&acl, "topic readwrite x/#\nfrobnicate\n").expect("break acl");
    signal(&child, libc::SIGHUP);
    let line = log_line(&log, "reload failed");
    assert!(line.contains("acl:2"), "{line}");
    publisher.publish("x/3", b"probe", QoS::AtLeastOnce, false);
    assert!(sub.drain_publishes(Duration::from_millis(500)).is_empty());
    sub.ping();
    assert!(terminate(child).success());
    let _ = std::fs::remove_dir_all(&dir);
}

/// A panic on one thread (a shard) ends the whole broker process, loudly, so that a supervisor
/// restarts it instead of the other shards running on against a dead peer. Tested by running
/// this test binary again as a child that installs the broker's hook and panics on a thread.
#[test]
fn a_panic_on_any_thread_aborts_the_process() {
    if std::env::var_os("RINGMQ_PANIC_CHILD").is_some() {
        ringmq::runtime::abort_on_panic();
        let _ = std::thread::spawn(|| panic!("a shard thread dies")).join();
        // Without the hook the panic stays in its thread and the process carries on.
        std::thread::sleep(Duration::from_secs(3));
        std::process::exit(0);
    }
    let output = Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            "a_panic_on_any_thread_aborts_the_process",
            "--nocapture",
        ])
        .env("RINGMQ_PANIC_CHILD", "1")
        .output()
        .expect("run the child");
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(output.status.signal(), Some(libc::SIGABRT), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("a shard thread dies"), "{stderr}");
    assert!(stderr.contains("supervisor restarts"), "{stderr}");
}
