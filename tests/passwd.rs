//! Password files against the real mosquitto, both ways:
//!
//! 1. files written by Debian's `mosquitto_passwd` (`-H sha512-pbkdf2` and `-H sha512`) load
//!    in [`PasswordFile`] and accept exactly the right password;
//! 2. a file written by our `ringmq passwd` (password on stdin) is accepted by a real
//!    `mosquitto` broker: `mosquitto_pub -u -P` connects with the right password and is refused
//!    with a wrong one, an unknown user or a deleted user.
//!
//! A missing tool skips its test with a "skipped: ..." line, unless `RINGMQ_REQUIRE_INTEROP=1`,
//! in which case the test fails and says how to install the tool. Every process runs under a
//! deadline and is killed when it passes it or when its handle is dropped.

mod common;

use common::tool_ready;
use std::io::Write;
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use ringmq::auth::passwd::PasswordFile;

const INSTALL_MOSQUITTO: &str =
    "apt-get install -y mosquitto mosquitto-clients (Debian/Ubuntu; or run tests/run.sh)";

/// Debian puts the broker in /usr/sbin, which is not on every user's PATH.
const MOSQUITTO_BROKER: &str = "/usr/sbin/mosquitto";

/// How long one short-lived process (a hash, a publish) may run. `ringmq passwd` hashes with
/// 210 000 PBKDF2 iterations, a few seconds in a debug build.
const PROCESS_TIMEOUT: Duration = Duration::from_secs(60);

/// How long the broker may take to listen.
const BROKER_START_TIMEOUT: Duration = Duration::from_secs(10);

/// True if `program` can be started at all (`--help` exits non-zero for these tools).
fn starts(program: &str) -> bool {
    Command::new(program)
        .arg("--help")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// A child process killed (and reaped) when dropped, so a failing assertion leaks nothing.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs `program` with `stdin` fed in, under [`PROCESS_TIMEOUT`]; kills it and panics if it
/// overruns. Outputs are small, so the pipes are read only once it has exited.
fn run(program: &str, args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {program}: {e}"));
    if let Some(mut pipe) = child.stdin.take() {
        // A process that exits without reading gives EPIPE; its exit status tells the story.
        let _ = pipe.write_all(stdin);
    }
    let deadline = Instant::now() + PROCESS_TIMEOUT;
    loop {
        match child.try_wait() {
            Ok(Some(_)) => return child.wait_with_output().expect("collect output"),
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(20)),
            outcome => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{program} {args:?} ran past {PROCESS_TIMEOUT:?}: {outcome:?}");
            }
        }
    }
}

/// A fresh directory for one test's files, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("ringmq-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    fn path(&self, file: &str) -> PathBuf {
        self.0.join(file)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn text(path: &Path) -> &str {
    path.to_str().expect("UTF-8 temp path")
}

#[test]
fn files_from_mosquitto_passwd_verify() {
    if !tool_ready(
        "mosquitto_passwd",
        starts("mosquitto_passwd"),
        INSTALL_MOSQUITTO,
    ) {
        return;
    }
    let dir = TempDir::new("passwd-from-mosquitto");
    for (form, marker) in [("sha512-pbkdf2", "$7$"), ("sha512", "$6$")] {
        let file = dir.path(form);
        let out = run(
            "mosquitto_passwd",
            &[
                "-c",
                "-b",
                "-H",
                form,
                text(&file),
                "alice",
                "correct horse",
            ],
            b"",
        );
        assert!(out.status.success(), "mosquitto_passwd: {out:?}");
        let out = run(
            "mosquitto_passwd",
            &["-b", "-H", form, text(&file), "bob", "battery staple"],
            b"",
        );
        assert!(out.status.success(), "mosquitto_passwd: {out:?}");
        let written = std::fs::read_to_string(&file).expect("read");
        assert!(written.contains(&format!("alice:{marker}")), "{written}");

        let users = PasswordFile::load(&file).unwrap_or_else(|e| panic!("{form}: {e}"));
        assert_eq!(users.len(), 2);
        assert!(users.verify("alice", b"correct horse"), "{form}");
        assert!(users.verify("bob", b"battery staple"), "{form}");
        assert!(!users.verify("alice", b"battery staple"), "{form}");
        assert!(!users.verify("alice", b"correct horse "), "{form}");
        assert!(!users.verify("carol", b"correct horse"), "{form}");
    }
}

/// A mosquitto broker on a free loopback port, killed when dropped.
struct Mosquitto {
    port: u16,
    _process: Killed,
}

impl Mosquitto {
    fn start(dir: &TempDir, password_file: &Path) -> Mosquitto {
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let conf = dir.path("mosquitto.conf");
        // `user root`: started as root, mosquitto would otherwise switch to the `mosquitto`
        // user, which cannot read our 0600 file in a root-owned temp dir.
        let config = format!(
            "listener {port} 127.0.0.1\nallow_anonymous false\npassword_file {}\n\
             persistence false\nuser root\nlog_dest stderr\n",
            text(password_file)
        );
        std::fs::write(&conf, config).expect("write mosquitto.conf");
        let child = Command::new(MOSQUITTO_BROKER)
            .args(["-c", text(&conf)])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start mosquitto");
        let mut process = Killed(child);
        let deadline = Instant::now() + BROKER_START_TIMEOUT;
        while TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err() {
            if let Ok(Some(status)) = process.0.try_wait() {
                let mut log = String::new();
                if let Some(mut err) = process.0.stderr.take() {
                    let _ = std::io::Read::read_to_string(&mut err, &mut log);
                }
                panic!("mosquitto exited ({status}) before listening:\n{log}");
            }
            assert!(
                Instant::now() < deadline,
                "mosquitto did not listen in time"
            );
            thread::sleep(Duration::from_millis(50));
        }
        Mosquitto {
            port,
            _process: process,
        }
    }

    /// Publishes once as `user`; `Ok` if mosquitto accepted the login, else the client's error.
    fn login(&self, user: &str, password: &str) -> Result<(), String> {
        let port = self.port.to_string();
        let args = [
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-u",
            user,
            "-P",
            password,
            "-t",
            "passwd/test",
            "-m",
            "hi",
            "-q",
            "1",
        ];
        let out = run("mosquitto_pub", &args, b"");
        if out.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }
}

#[test]
fn mosquitto_accepts_what_ringmq_passwd_writes() {
    let found = std::path::Path::new(MOSQUITTO_BROKER).exists() && starts("mosquitto_pub");
    if !tool_ready("mosquitto and mosquitto_pub", found, INSTALL_MOSQUITTO) {
        return;
    }
    let ringmq = env!("CARGO_BIN_EXE_ringmq");
    let dir = TempDir::new("passwd-to-mosquitto");
    let file = dir.path("passwords");
    let passwd = |args: &[&str], stdin: &[u8]| {
        let out = run(ringmq, &[&["passwd"], args].concat(), stdin);
        assert!(out.status.success(), "ringmq passwd {args:?}: {out:?}");
    };
    // alice with the default iteration count; the others cheaper, to keep the test quick.
    passwd(&["-c", text(&file), "alice"], b"correct horse\n");
    passwd(&["-I", "1000", text(&file), "bob"], b"battery staple\r\n");
    passwd(&["-I", "1000", text(&file), "carol"], b"to be deleted\n");
    passwd(&["-D", text(&file), "carol"], b"");
    // Changing a password replaces the line in place.
    passwd(&["-I", "1000", text(&file), "bob"], b"new staple\n");

    let written = std::fs::read_to_string(&file).expect("read");
    let lines: Vec<&str> = written.lines().collect();
    assert_eq!(lines.len(), 2, "{written}");
    assert!(lines[0].starts_with("alice:$7$210000$"), "{written}");
    assert!(lines[1].starts_with("bob:$7$1000$"), "{written}");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&file).expect("stat").permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);

    let ours = PasswordFile::load(&file).expect("our own file loads");
    assert!(ours.verify("alice", b"correct horse"));
    assert!(ours.verify("bob", b"new staple"));

    let broker = Mosquitto::start(&dir, &file);
    assert_eq!(broker.login("alice", "correct horse"), Ok(()));
    assert_eq!(broker.login("bob", "new staple"), Ok(()));
    for (user, password) in [
        ("alice", "correct horsE"),
        ("bob", "battery staple"),
        ("carol", "to be deleted"),
        ("mallory", "correct horse"),
    ] {
        let refused = broker.login(user, password).expect_err(user);
        assert!(refused.contains("not authori"), "{user}: {refused}");
    }
}

#[test]
fn ringmq_passwd_refuses_bad_requests() {
    let ringmq = env!("CARGO_BIN_EXE_ringmq");
    let dir = TempDir::new("passwd-refusals");
    let file = dir.path("passwords");
    let refused = |args: &[&str], stdin: &[u8]| {
        let out = run(ringmq, &[&["passwd"], args].concat(), stdin);
        assert!(!out.status.success(), "ringmq passwd {args:?} should fail");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    assert!(refused(&[text(&file), "alice"], b"pw\n").contains("use -c"));
    assert!(refused(&["-c", text(&file), "alice"], b"\n").contains("empty password"));
    assert!(refused(&["-c", text(&file), "a:b"], b"pw\n").contains("':'"));
    assert!(refused(&["-c", "-D", text(&file), "alice"], b"").contains("together"));
    assert!(!file.exists(), "no refused request creates the file");
    std::fs::write(&file, "alice:plaintext\n").expect("write");
    let err = refused(&["-I", "1000", text(&file), "bob"], b"pw\n");
    assert!(err.contains("passwords:1:"), "{err}");
    assert_eq!(
        std::fs::read_to_string(&file).expect("read"),
        "alice:plaintext\n",
        "a file that does not parse is left alone"
    );
}
