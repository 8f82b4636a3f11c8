//! The password-verifier threads: where PBKDF2 and argon2 run, so that no shard ever spends
//! milliseconds on a login while it routes for everyone else (`access.rs` explains the flow).
//!
//! Owns: `[auth] verify_threads` threads at the lowest CPU priority, one bounded job queue
//! shared by all shards, and a bounded answer channel per shard. The shard bounds what it
//! hands out (`auth_verify_queue_max`), so the job queue, sized for every shard's share, never
//! refuses a job, and an answer never waits for room.
//!
//! Why low priority: on a host whose cores all run shards, a verifier competes with a shard
//! for its core; at nice 19 the kernel gives the shard the core whenever it has work, and the
//! checks take the idle time. Logins under load wait; publishes do not.

use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use tokio::sync::mpsc;

use super::{Verified, VerifyRequest};

/// One job: a check and the shard to answer.
struct Job {
    request: VerifyRequest,
    answer: mpsc::Sender<Verified>,
}

/// The verifier threads. Dropping it ends them once the shards have dropped their handles.
pub struct VerifierPool {
    jobs: SyncSender<Job>,
    threads: Vec<JoinHandle<()>>,
}

/// What a shard's driver holds: where to send checks, and where its answers come back.
pub struct ShardVerifier {
    pub submitter: Submitter,
    pub answers: mpsc::Receiver<Verified>,
}

/// The sending half of a [`ShardVerifier`].
pub struct Submitter {
    jobs: SyncSender<Job>,
    answer: mpsc::Sender<Verified>,
}

impl VerifierPool {
    /// Starts `threads` verifier threads with room for `queue_max` outstanding checks per
    /// shard for `shards` shards.
    pub fn start(threads: u32, shards: usize, queue_max: u32) -> std::io::Result<VerifierPool> {
        let capacity = shards.saturating_mul(queue_max as usize);
        let (jobs, receiver) = sync_channel::<Job>(capacity);
        // std's receiver is single-consumer; the threads take turns on it. The lock is held
        // only to take a job, never on a shard thread.
        let receiver = Arc::new(Mutex::new(receiver));
        let mut handles = Vec::new();
        for index in 0..threads {
            let receiver = receiver.clone();
            let handle = std::thread::Builder::new()
                .name(format!("ringmq-verify-{index}"))
                .spawn(move || run(receiver))?;
            handles.push(handle);
        }
        Ok(VerifierPool {
            jobs,
            threads: handles,
        })
    }

    /// A shard's handle, with an answer channel as deep as its outstanding checks may be.
    pub fn for_shard(&self, queue_max: u32) -> ShardVerifier {
        let (answer, answers) = mpsc::channel(queue_max.max(1) as usize);
        ShardVerifier {
            submitter: Submitter {
                jobs: self.jobs.clone(),
                answer,
            },
            answers,
        }
    }

    /// Waits for the threads to end (after every shard has dropped its handle).
    pub fn join(self) {
        drop(self.jobs);
        for thread in self.threads {
            let _ = thread.join();
        }
    }
}

impl Submitter {
    /// Hands a check to the threads. The queue has room for every shard's allowance, so a
    /// full or closed queue means the threads are gone: the check fails rather than hangs.
    pub fn submit(&self, request: VerifyRequest) -> Result<(), Verified> {
        let job = Job {
            request,
            answer: self.answer.clone(),
        };
        match self.jobs.try_send(job) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(job)) | Err(TrySendError::Disconnected(job)) => {
                tracing::error!("password verifier queue unavailable; refusing the login");
                Err(job.request.refuse())
            }
        }
    }
}

fn run(receiver: Arc<Mutex<Receiver<Job>>>) {
    lower_priority();
    loop {
        let job = {
            let receiver = receiver.lock().unwrap_or_else(|e| e.into_inner());
            receiver.recv()
        };
        let Ok(job) = job else { return };
        let verified = job.request.verify();
        // The shard bounds its outstanding checks by the channel's depth, so there is room;
        // an error means the shard has stopped, and nobody waits for the answer.
        let _ = job.answer.try_send(verified);
    }
}

/// Nice 19 for the calling thread (on Linux, `setpriority` on a thread id affects only that
/// thread). Failing to lower it is harmless: the checks just compete as equals.
fn lower_priority() {
    // SAFETY: `gettid` takes no arguments and cannot fail; `setpriority` takes plain integers
    // and only reads them. Neither touches memory we own.
    let result = unsafe {
        let tid = libc::gettid();
        libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, 19)
    };
    if result != 0 {
        tracing::debug!("could not lower the verifier thread's priority");
    }
}

impl std::fmt::Debug for VerifierPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifierPool")
            .field("threads", &self.threads.len())
            .finish()
    }
}
