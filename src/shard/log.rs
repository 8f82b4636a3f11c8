//! Rate-limited logging for events a client can cause at will (refused connections, malformed
//! packets, failed logins...). A flood of them must not turn into a flood of log lines: each
//! kind gets at most [`LINES_PER_KIND_PER_S`] lines a second per shard, and the first line after
//! a quiet spell says how many were left out. The counters in `$SYS` still count every event.

use std::time::{Duration, Instant};

/// Lines per kind and second, per shard.
pub const LINES_PER_KIND_PER_S: u32 = 10;

/// The events a peer can repeat as fast as it likes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum LogKind {
    ConnectionRefused,
    ConnectRefused,
    Malformed,
    Violation,
    AuthFailed,
    RetainedDropped,
    AclDenied,
    /// TLS handshakes and WebSocket upgrades that failed.
    Transport,
}

const KINDS: usize = 8;

#[derive(Debug, Clone, Copy, Default)]
struct Window {
    started: Option<Instant>,
    lines: u32,
    /// Lines left out since the last one written.
    suppressed: u64,
}

/// One shard's log budget.
#[derive(Debug, Default)]
pub(super) struct LogLimiter {
    windows: [Window; KINDS],
}

impl LogLimiter {
    /// `Some(n)`: write the line, and say that `n` lines of this kind were left out before it.
    /// `None`: leave it out (it is counted).
    pub(super) fn allow(&mut self, kind: LogKind, now: Instant) -> Option<u64> {
        let window = &mut self.windows[kind as usize];
        let fresh = window
            .started
            .is_none_or(|started| now.saturating_duration_since(started) >= Duration::from_secs(1));
        if fresh {
            window.started = Some(now);
            window.lines = 0;
        }
        if window.lines >= LINES_PER_KIND_PER_S {
            window.suppressed += 1;
            return None;
        }
        window.lines += 1;
        Some(std::mem::take(&mut window.suppressed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_is_cut_to_the_budget_and_the_next_line_counts_what_was_left_out() {
        let mut log = LogLimiter::default();
        let start = Instant::now();
        let written = (0..1000)
            .filter(|_| log.allow(LogKind::Malformed, start).is_some())
            .count();
        assert_eq!(written, LINES_PER_KIND_PER_S as usize);
        // Another kind has its own budget.
        assert_eq!(log.allow(LogKind::AuthFailed, start), Some(0));
        let later = start + Duration::from_secs(1);
        assert_eq!(log.allow(LogKind::Malformed, later), Some(990));
        assert_eq!(log.allow(LogKind::Malformed, later), Some(0));
    }
}
