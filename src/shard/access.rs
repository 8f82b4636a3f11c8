//! Access control on a shard: CONNECT admission (anonymous clients, the password file), the
//! ACL checks on publish, subscribe and delivery, and taking in a reloaded policy. The policy
//! itself is [`crate::auth::Access`], sans-IO and shared; this file applies it to connections
//! and sessions, and counts and logs what it refuses.
//!
//! # Passwords never stall the shard
//! PBKDF2 and argon2 cost milliseconds by design, and a shard routes for thousands of clients
//! while one connects. So a password check is not run here: the shard parks the connection in
//! `ConnState::Verifying` and queues a [`VerifyRequest`]; the driver hands it to the verifier
//! threads (`verifier.rs`, low priority) and feeds the answer back through
//! [`Shard::handle_verified`]. At most `auth_verify_queue_max` checks are outstanding per
//! shard; a CONNECT beyond that gets 0x89 Server busy (3.1.1: 0x03), so a flood of password
//! CONNECTs costs the verifier threads, never the routing.
//!
//! Concurrent CONNECTs with the same user name and password share one check (devices that
//! reconnect together after an outage often share credentials). A successful check is
//! remembered per user (a keyed SHA-256 of the password, never the password) until the policy
//! is reloaded, so a client that reconnects with the same password connects without a
//! verifier round trip. The cache holds at most `auth_cache_max` users per shard and starts
//! afresh when full.

use std::sync::Arc;
use std::time::Instant;

use ahash::AHashMap;
use bytes::Bytes;
use sha2::{Digest, Sha256};

use crate::auth::{Access, Admission};
use crate::codec::{ByteStr, ReasonCode};
use crate::session::{ConnectParams, ConnectRefused};

use super::{ConnState, ConnectionId, Parked, SessionKey, Shard};

/// A password check for the verifier threads.
pub struct VerifyRequest {
    pub file: Arc<crate::auth::passwd::PasswordFile>,
    pub username: ByteStr,
    pub password: Bytes,
    /// Carried back so a success can be cached without keeping the password.
    digest: [u8; 32],
    /// The policy generation the check was asked under; a result from an older one is used
    /// but not cached.
    generation: u64,
}

impl VerifyRequest {
    /// Runs the check (CPU-heavy: call it off the shard thread) and makes the answer.
    pub fn verify(self) -> Verified {
        let ok = self.file.verify(self.username.as_str(), &self.password);
        self.answer(ok)
    }

    /// The answer when the check cannot be run at all: refused.
    pub fn refuse(self) -> Verified {
        self.answer(false)
    }

    fn answer(self, ok: bool) -> Verified {
        Verified {
            ok,
            username: self.username,
            digest: self.digest,
            generation: self.generation,
        }
    }
}

/// The verifier's answer to a [`VerifyRequest`].
pub struct Verified {
    pub ok: bool,
    username: ByteStr,
    digest: [u8; 32],
    generation: u64,
}

/// The shard's side of password checks.
pub(super) struct Verifications {
    /// Checks for the driver to hand to the verifier threads.
    outbox: Vec<VerifyRequest>,
    /// Checks handed out and not yet answered, by user name and password digest, with the
    /// connections waiting for each: a hundred devices that reconnect at once with the same
    /// credentials cost one check, not a hundred. Bounded by `auth_verify_queue_max` checks.
    waiting: AHashMap<(ByteStr, [u8; 32]), Vec<ConnectionId>>,
    /// User name -> keyed digest of the password that last verified.
    cache: AHashMap<ByteStr, [u8; 32]>,
    /// Random per shard, so the digests are useless outside this process.
    key: [u8; 32],
}

impl Verifications {
    pub(super) fn new() -> Verifications {
        let mut key = [0u8; 32];
        // Without OS randomness the digests are still one-way hashes of the password; the key
        // only makes them useless to anyone who reads this process's memory elsewhere.
        let _ = getrandom::fill(&mut key);
        Verifications {
            outbox: Vec::new(),
            waiting: AHashMap::new(),
            cache: AHashMap::new(),
            key,
        }
    }

    fn digest(&self, username: &str, password: &[u8]) -> [u8; 32] {
        let mut hash = Sha256::new();
        hash.update(self.key);
        hash.update((username.len() as u64).to_le_bytes());
        hash.update(username.as_bytes());
        hash.update(password);
        hash.finalize().into()
    }
}

impl Shard {
    /// Sets the access policy (default: [`Access::open`]).
    pub fn with_access(mut self, access: Arc<Access>) -> Shard {
        self.access = access;
        self
    }

    /// Takes in a reloaded policy: forgets cached password checks and decides again which
    /// subscriptions need a check per delivery. Connected clients stay connected (as with
    /// mosquitto); the new rules apply from their next packet and next delivery.
    pub fn set_access(&mut self, access: Arc<Access>) {
        self.access = access;
        self.verify.cache.clear();
        let keys: Vec<usize> = self.sessions.iter().map(|(k, _)| k).collect();
        for key in keys {
            let changed = self.sessions[key]
                .session
                .recheck_subscriptions(&self.access);
            for subscription in changed {
                // Shared groups keep their members' parameters on every shard; they are
                // checked per delivery through `read_check` on the member's shard below.
                if !subscription.filter.is_shared() {
                    let key = SessionKey(key as u32);
                    self.trie
                        .insert(subscription.filter.filter(), key, subscription.params());
                }
            }
        }
    }

    /// Password checks waiting for the verifier threads (the driver drains them).
    pub fn drain_verify_requests(&mut self, into: &mut Vec<VerifyRequest>) {
        into.append(&mut self.verify.outbox);
    }

    /// Decides a valid CONNECT that did not ask for enhanced authentication: connect now,
    /// refuse, or check its password first.
    pub(super) fn admit(
        &mut self,
        now: Instant,
        id: ConnectionId,
        params: ConnectParams,
        password: Option<Bytes>,
    ) {
        let mut params = params;
        match self.identity_for(id) {
            // `use_identity_as_username`: the certificate authenticated the client.
            Some(Ok(name)) => {
                params.username = Some(name);
                return self.claim_session(now, id, params);
            }
            Some(Err(())) => {
                let code = ReasonCode::NOT_AUTHORIZED;
                let why = "no verified client certificate name to use as the user name";
                return self.refuse_access(now, id, params.version, code, why);
            }
            None => {}
        }
        let username = params.username.clone();
        let anonymous = self.listener_allows_anonymous(id);
        match self.access.admit(
            username.as_ref().map(ByteStr::as_str),
            password.as_deref(),
            anonymous,
        ) {
            Admission::Accept => self.claim_session(now, id, params),
            Admission::Refuse(code, why) => self.refuse_access(now, id, params.version, code, why),
            Admission::Verify(file) => {
                let (Some(username), Some(password)) = (username, password) else {
                    unreachable!("Admission::Verify is only given for a user name and a password")
                };
                let digest = self.verify.digest(username.as_str(), &password);
                if self.verify.cache.get(&username) == Some(&digest) {
                    return self.claim_session(now, id, params);
                }
                let version = params.version;
                let parked = ConnState::Verifying {
                    parked: Box::new(Parked { params, since: now }),
                };
                let check = (username, digest);
                if let Some(waiters) = self.verify.waiting.get_mut(&check) {
                    // The same credentials are being checked already: wait for that answer.
                    waiters.push(id);
                    self.conns[id.index as usize].state = parked;
                    return;
                }
                if self.verify.waiting.len() >= self.limits.auth_verify_queue_max as usize {
                    self.stats.auth_busy += 1;
                    let refused = ConnectRefused {
                        code: Some(ReasonCode::SERVER_BUSY),
                        version,
                        why: "auth_verify_queue_max password checks already waiting",
                    };
                    return self.refuse(now, id, refused);
                }
                self.verify.waiting.insert(check.clone(), vec![id]);
                self.verify.outbox.push(VerifyRequest {
                    file,
                    username: check.0,
                    password,
                    digest: check.1,
                    generation: self.access.generation(),
                });
                self.conns[id.index as usize].state = parked;
            }
        }
    }

    /// The verifier's answer, for every connection parked in `Verifying` on it.
    pub fn handle_verified(&mut self, now: Instant, verified: Verified) {
        let check = (verified.username, verified.digest);
        let waiters = self.verify.waiting.remove(&check).unwrap_or_default();
        if verified.ok && verified.generation == self.access.generation() {
            if self.verify.cache.len() >= self.limits.auth_cache_max as usize {
                self.verify.cache.clear();
            }
            if self.limits.auth_cache_max > 0 {
                self.verify.cache.insert(check.0, check.1);
            }
        }
        for id in waiters {
            let params = match self.conn_mut(id) {
                Some(conn) if matches!(conn.state, ConnState::Verifying { .. }) => {
                    match std::mem::replace(&mut conn.state, ConnState::Closing) {
                        ConnState::Verifying { parked } => parked.params,
                        _ => unreachable!("matched Verifying above"),
                    }
                }
                // The client went away while we checked.
                _ => continue,
            };
            if verified.ok {
                self.claim_session(now, id, params);
            } else {
                // Unknown user and wrong password alike: 0x86, 3.1.1 0x04.
                let code = ReasonCode::BAD_USER_NAME_OR_PASSWORD;
                self.refuse_access(now, id, params.version, code, "bad user name or password");
            }
        }
    }

    fn refuse_access(
        &mut self,
        now: Instant,
        id: ConnectionId,
        version: crate::codec::ProtocolVersion,
        code: ReasonCode,
        why: &'static str,
    ) {
        self.stats.auth_failures += 1;
        let refused = ConnectRefused {
            code: Some(code),
            version,
            why,
        };
        self.refuse(now, id, refused);
    }

    /// May session `key` publish to `topic`? Counts a refusal.
    pub(super) fn may_publish(&mut self, now: Instant, key: SessionKey, topic: &str) -> bool {
        if self.access.allows_every_topic() {
            return true;
        }
        let session = &self.sessions[key.0 as usize].session;
        let allowed = self.access.may_publish(session.subject(), topic);
        if !allowed {
            self.stats.acl_denied += 1;
            let client_id = session.client_id().clone();
            if let Some(suppressed) = self.log.allow(super::log::LogKind::AclDenied, now) {
                tracing::info!(%client_id, topic, suppressed, "publish refused by the ACL");
            }
        }
        allowed
    }

    /// May session `key` receive a message on `topic`? Counts a refusal (the message is not
    /// delivered to it; others still get theirs).
    pub(super) fn may_read(&mut self, key: SessionKey, topic: &str) -> bool {
        if self.access.allows_every_topic() || self.is_ghost(key) {
            // A ghost's deliveries are checked where its session went (`handoff.rs`).
            return true;
        }
        let session = &self.sessions[key.0 as usize].session;
        let allowed = self.access.may_read(session.subject(), topic);
        self.stats.acl_denied += u64::from(!allowed);
        allowed
    }
}
