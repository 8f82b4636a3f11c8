//! The phases every run goes through, and the window in which messages are measured.
//!
//! The coordinator moves all workers through the phases together; each client decides what a
//! phase means for its role. Phases only move forward.
//!
//! | phase | publishers | subscribers | retained |
//! |---|---|---|---|
//! | `Setup` | connect | connect, subscribe | connect |
//! | `Prime` | wait | wait | the flooder stores R retained messages |
//! | `Run` | publish on schedule or at max rate | receive | readers subscribe, unsubscribe, repeat |
//! | `Drain` | no new messages (open loop: the scheduled backlog); await acks | receive | finish the round |
//! | `Cleanup` | wait | wait | the flooder deletes what it stored |
//! | `Stop` | DISCONNECT | DISCONNECT | DISCONNECT |

use crate::clock::MonoNs;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum Phase {
    Setup = 0,
    Prime = 1,
    Run = 2,
    Drain = 3,
    Cleanup = 4,
    Stop = 5,
}

impl Phase {
    pub fn from_u8(value: u8) -> Phase {
        match value {
            0 => Phase::Setup,
            1 => Phase::Prime,
            2 => Phase::Run,
            3 => Phase::Drain,
            4 => Phase::Cleanup,
            _ => Phase::Stop,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Phase::Setup => "setup",
            Phase::Prime => "prime",
            Phase::Run => "run",
            Phase::Drain => "drain",
            Phase::Cleanup => "cleanup",
            Phase::Stop => "stop",
        }
    }
}

/// When publishing starts and when no new message may be scheduled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunWindow {
    pub start: MonoNs,
    pub end: MonoNs,
}

impl RunWindow {
    /// Before the coordinator sets the real window: nothing is due.
    pub const UNSET: RunWindow = RunWindow {
        start: MonoNs::MAX,
        end: MonoNs::MAX,
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_round_trip_in_order() {
        let all = [
            Phase::Setup,
            Phase::Prime,
            Phase::Run,
            Phase::Drain,
            Phase::Cleanup,
            Phase::Stop,
        ];
        for (i, phase) in all.iter().enumerate() {
            assert_eq!(Phase::from_u8(i as u8), *phase);
        }
        assert!(all.windows(2).all(|w| w[0] < w[1]));
    }
}
