//! A session without its connection: when it ends (5.0 Session Expiry Interval, or
//! `session_expiry_max_s` for 3.x persistent sessions) and when its delayed will is due (5.0
//! Will Delay Interval). Times are absolute `Instant`s handed in by the shard, which keeps one
//! timer list for all its offline sessions and calls [`Session::poll_timers`] when one is due.

use std::time::{Duration, Instant};

use super::{Session, ValidWill};

/// The deadlines of an offline session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Offline {
    /// `None`: kept until the client comes back (expiry `u32::MAX`).
    pub(super) expires_at: Option<Instant>,
    /// A will waiting for its delay: published at this time unless the client reconnects
    /// first [MQTT-3.1.3-9], or when the session ends if that is sooner.
    pub(super) will: Option<(Instant, Box<ValidWill>)>,
}

/// What became of a session whose connection went away.
#[derive(Debug, Default)]
pub struct Detached {
    /// The will to publish now (no delay, or the session ends now), if any.
    pub will: Option<ValidWill>,
    /// The session ends now (expiry 0): the caller discards it.
    pub ends_now: bool,
    /// When [`Session::poll_timers`] has something to do, if ever.
    pub deadline: Option<Instant>,
}

/// What an offline session's timers produced.
#[derive(Debug, Default)]
pub struct Due {
    /// A delayed will whose time came (or whose session ended): publish it.
    pub will: Option<ValidWill>,
    /// The session expired: the caller discards it.
    pub expired: bool,
}

impl Session {
    /// Unbinds the connection. The will it returns is published by the caller; a graceful
    /// DISCONNECT has already discarded it with [`Session::discard_will`].
    pub fn detach(&mut self, now: Instant) -> Detached {
        let link = self
            .link
            .take()
            .expect("detach from a session without a connection");
        let will = link.will;
        self.inflight.release_if_empty();
        self.queue.release_if_empty();
        if self.expiry_s == 0 {
            return Detached {
                will: will.map(|w| *w),
                ends_now: true,
                deadline: None,
            };
        }
        let expires_at =
            (self.expiry_s != u32::MAX).then(|| now + Duration::from_secs(self.expiry_s.into()));
        let mut detached = Detached::default();
        let mut delayed = None;
        if let Some(will) = will {
            match will.will.properties.will_delay_interval_s.unwrap_or(0) {
                0 => detached.will = Some(*will),
                delay_s => {
                    let at = now + Duration::from_secs(delay_s.into());
                    // [MQTT-3.1.3-9]: the delay or the session's end, whichever comes first.
                    let at = expires_at.map_or(at, |end| end.min(at));
                    delayed = Some((at, will));
                }
            }
        }
        if expires_at.is_some() || delayed.is_some() {
            self.offline = Some(Box::new(Offline {
                expires_at,
                will: delayed,
            }));
        }
        detached.deadline = self.next_deadline();
        detached
    }

    /// The earliest time [`Session::poll_timers`] has work, if any.
    pub fn next_deadline(&self) -> Option<Instant> {
        let offline = self.offline.as_ref()?;
        let will_at = offline.will.as_ref().map(|(at, _)| *at);
        match (offline.expires_at, will_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Fires the offline timers that are due at `now`.
    pub fn poll_timers(&mut self, now: Instant) -> Due {
        let mut due = Due::default();
        let Some(offline) = &mut self.offline else {
            return due;
        };
        let expired = offline.expires_at.is_some_and(|at| at <= now);
        if expired || offline.will.as_ref().is_some_and(|(at, _)| *at <= now) {
            due.will = offline.will.take().map(|(_, will)| *will);
        }
        due.expired = expired;
        due
    }

    /// Takes a will still waiting for its delay: the session is ending early (a clean start
    /// replaced it), which publishes the will at once [MQTT-3.1.3-9].
    pub fn take_delayed_will(&mut self) -> Option<ValidWill> {
        self.offline
            .as_mut()
            .and_then(|offline| offline.will.take())
            .map(|(_, will)| *will)
    }
}
