//! The real `ringmq` binary as a child process, for tests that kill it, limit it or read its
//! output (`crash.rs`, `persistence_full.rs`).

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A `ringmq` process, killed if a test fails while it runs.
pub struct Process {
    child: Child,
    pub addr: SocketAddr,
}

impl Process {
    /// Starts `ringmq --config <config>` with `args` and waits until it serves.
    pub fn start(config: &Path, args: &[&str]) -> Process {
        Process::start_limited(config, args, None)
    }

    /// As [`Process::start`], with its files limited to `file_bytes_max` (`ulimit -f`): a
    /// disk that fills up, without a mount.
    pub fn start_limited(config: &Path, args: &[&str], file_bytes_max: Option<u64>) -> Process {
        let mut command = Command::new(env!("CARGO_BIN_EXE_ringmq"));
        command
            .arg("--config")
            .arg(config)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if let Some(limit) = file_bytes_max {
            // SAFETY: between fork and exec only `setrlimit`, which is async-signal-safe, runs.
            unsafe {
                command.pre_exec(move || {
                    let rlimit = libc::rlimit {
                        rlim_cur: limit,
                        rlim_max: limit,
                    };
                    if libc::setrlimit(libc::RLIMIT_FSIZE, &rlimit) == 0 {
                        Ok(())
                    } else {
                        Err(std::io::Error::last_os_error())
                    }
                });
            }
        }
        let mut child = command.spawn().expect("start ringmq");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            // Keeps reading after the address is found, so that the pipe never fills.
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut lines = Vec::new();
        while let Ok(line) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            if let Some(addr) = first_listener(&line) {
                return Process { child, addr };
            }
            lines.push(line);
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("ringmq never said it was serving; its log: {lines:#?}");
    }

    /// SIGKILL: no shutdown, no flush.
    pub fn kill(mut self) {
        self.child.kill().expect("SIGKILL the broker");
        self.child.wait().expect("reap the broker");
    }

    /// SIGTERM, and the exit status of the graceful shutdown.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        // SAFETY: sending a signal to our own child process by its pid.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for the broker") {
                return status;
            }
            assert!(Instant::now() < deadline, "no exit after SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The first listener's address in the broker's "serving" log line,
/// `listeners=["mqtt://127.0.0.1:PORT", ...]`.
pub fn first_listener(line: &str) -> Option<std::net::SocketAddr> {
    const FIRST: &str = "listeners=[\"mqtt://";
    let rest = &line[line.find(FIRST)? + FIRST.len()..];
    let addr = rest[..rest.find('"').expect("closing quote")]
        .parse()
        .expect("address");
    Some(addr)
}
