//! The access policy one broker generation enforces: who may connect (anonymous clients, the
//! password file) and what they may publish, subscribe to and receive (the ACL file,
//! `$SYS` for anonymous clients). Sans-IO and immutable: the runtime builds one at start and
//! one per SIGHUP reload, and every shard holds an `Arc` of the newest.
//!
//! Owns: the decisions. Does not own: the CPU-heavy password check (the shard hands
//! [`Admission::Verify`] to a verifier thread so that PBKDF2/argon2 never stall a shard), the
//! cache of successful checks (per shard), reason-code placement (the shard), or counting.
//!
//! The rules, as mosquitto 2 applies them (`README.md`, "Access control", says the same):
//! - a client without a user name is anonymous: accepted only with `allow_anonymous`;
//! - a client with a user name, when there is a password file, must match it: an unknown
//!   user, a missing or wrong password all get 0x86 (3.1.1: 0x04), the same answer in the same
//!   time; with no password file a user name is accepted only with `allow_anonymous` (it is
//!   then a label for the ACL, as in mosquitto);
//! - a client that completed MQTT 5 enhanced authentication (SCRAM) is authenticated;
//! - with no ACL file everything is allowed; with one, only what it grants, and `deny` wins;
//! - with `sys_anonymous = false`, anonymous clients may not read `$SYS`.

use std::path::Path;
use std::sync::Arc;

use crate::codec::ReasonCode;

use super::acl::{Acl, Subject, SubscribeVerdict};
use super::passwd::PasswordFile;
use super::FileError;

/// What a CONNECT without enhanced authentication gets.
#[derive(Clone)]
pub enum Admission {
    /// Connect now.
    Accept,
    /// Check the password against this file (off the shard thread), then connect or refuse
    /// with [`ReasonCode::BAD_USER_NAME_OR_PASSWORD`].
    Verify(Arc<PasswordFile>),
    /// Refuse with this CONNACK code.
    Refuse(ReasonCode, &'static str),
}

/// Where the policy's files are and the switches that go with them (from `[auth]`).
#[derive(Debug, Clone, Copy)]
pub struct AccessSettings<'a> {
    pub allow_anonymous: bool,
    pub sys_anonymous: bool,
    pub password_file: Option<&'a Path>,
    pub acl_file: Option<&'a Path>,
}

/// One generation of the access policy.
pub struct Access {
    /// Counts reloads; shards compare it to know when to re-check subscriptions.
    generation: u64,
    allow_anonymous: bool,
    sys_anonymous: bool,
    passwords: Option<Arc<PasswordFile>>,
    acl: Option<Acl>,
}

impl Access {
    /// Everything allowed: anonymous clients, every topic. The embedded default on loopback.
    pub fn open() -> Access {
        Access {
            generation: 0,
            allow_anonymous: true,
            sys_anonymous: true,
            passwords: None,
            acl: None,
        }
    }

    /// Reads the files the settings name. A file that is missing or has a bad line is an error
    /// naming `file:line`; at start the broker then does not start, on reload it keeps the
    /// policy it had.
    pub fn load(settings: AccessSettings<'_>, generation: u64) -> Result<Access, FileError> {
        let passwords = match settings.password_file {
            Some(path) => Some(Arc::new(PasswordFile::load(path)?)),
            None => None,
        };
        let acl = match settings.acl_file {
            Some(path) => Some(Acl::load(path)?),
            None => None,
        };
        Ok(Access {
            generation,
            allow_anonymous: settings.allow_anonymous,
            sys_anonymous: settings.sys_anonymous,
            passwords,
            acl,
        })
    }

    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// True when no topic check can fail: no ACL, and `$SYS` open to everyone. The shard
    /// skips every per-topic call then.
    pub fn allows_every_topic(&self) -> bool {
        self.acl.is_none() && self.sys_anonymous
    }

    /// Users in the password file (0 without one); for the start-up log.
    pub fn password_users(&self) -> usize {
        self.passwords.as_ref().map_or(0, |p| p.len())
    }

    /// Rules in the ACL file (0 without one); for the start-up log.
    pub fn acl_rules(&self) -> usize {
        self.acl.as_ref().map_or(0, |a| a.rule_count())
    }

    /// True when a client can prove who it is some way other than enhanced authentication.
    pub fn has_password_file(&self) -> bool {
        self.passwords.is_some()
    }

    pub fn allows_anonymous(&self) -> bool {
        self.allow_anonymous
    }

    /// Decides a CONNECT that did not use enhanced authentication.
    pub fn admit(
        &self,
        username: Option<&str>,
        password: Option<&[u8]>,
        allow_anonymous: Option<bool>,
    ) -> Admission {
        let allow_anonymous = allow_anonymous.unwrap_or(self.allow_anonymous);
        match (username, &self.passwords) {
            (None, _) if allow_anonymous => Admission::Accept,
            // [MQTT-3.1.4-3]-style refusal: 3.1.1 0x05, 5.0 0x87.
            (None, _) => Admission::Refuse(
                ReasonCode::NOT_AUTHORIZED,
                "anonymous clients are not allowed",
            ),
            (Some(_), Some(file)) => match password {
                Some(_) => Admission::Verify(file.clone()),
                None => Admission::Refuse(
                    ReasonCode::BAD_USER_NAME_OR_PASSWORD,
                    "user name without a password",
                ),
            },
            (Some(_), None) if allow_anonymous => Admission::Accept,
            (Some(_), None) => Admission::Refuse(
                ReasonCode::NOT_AUTHORIZED,
                "no password file to check the user name against",
            ),
        }
    }

    /// May `who` publish to `topic` (also checked for a will at CONNECT)?
    pub fn may_publish(&self, who: Subject<'_>, topic: &str) -> bool {
        self.acl
            .as_ref()
            .is_none_or(|acl| acl.may_publish(who, topic))
    }

    /// May `who` receive a message on `topic`?
    pub fn may_read(&self, who: Subject<'_>, topic: &str) -> bool {
        if who.username.is_none() && !self.sys_anonymous && is_sys(topic) {
            return false;
        }
        self.acl.as_ref().is_none_or(|acl| acl.may_read(who, topic))
    }

    /// What a subscription to `filter` (without any `$share/<group>/` prefix) may deliver.
    pub fn subscribe_verdict(&self, who: Subject<'_>, filter: &str) -> SubscribeVerdict {
        if who.username.is_none() && !self.sys_anonymous && is_sys(filter) {
            return SubscribeVerdict::Denied;
        }
        match &self.acl {
            Some(acl) => acl.subscribe_verdict(who, filter),
            None => SubscribeVerdict::Allowed,
        }
    }
}

impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Access")
            .field("generation", &self.generation)
            .field("allow_anonymous", &self.allow_anonymous)
            .field("sys_anonymous", &self.sys_anonymous)
            .field("password_users", &self.password_users())
            .field("acl_rules", &self.acl_rules())
            .finish()
    }
}

/// `$SYS` or below it: the broker's own tree. A filter such as `$SYS/#` or `$SYS/+/x` is too;
/// wildcards at the first level never match `$` topics [MQTT-4.7.2-1].
fn is_sys(topic_or_filter: &str) -> bool {
    topic_or_filter == "$SYS" || topic_or_filter.starts_with("$SYS/")
}
