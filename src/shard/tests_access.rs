//! Access control in the simulator: password checks parked off the shard, the cache of good
//! checks, the bound on outstanding checks, and a client that leaves mid-check.

use std::sync::Arc;

use bytes::Bytes;

use crate::auth::passwd::hash_pbkdf2;
use crate::auth::{Access, AccessSettings};
use crate::codec::{ByteStr, Connect, Packet, Properties, ProtocolVersion, ReasonCode};
use crate::config::Limits;

use super::tests::Sim;
use super::{ConnectionId, VerifyRequest};

/// A shard whose policy has one user, `alice` / `secret`, and refuses anonymous clients.
fn sim(limits: Limits) -> Sim {
    let dir = std::env::temp_dir().join(format!("ringmq-sim-access-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    // A file of its own per call: tests run in parallel, and one rewriting a shared file while
    // another loads it made that one read a half-written file (a CI failure, 0x86 for alice).
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = dir.join(format!("passwd-{n}"));
    let hash = hash_pbkdf2(b"secret", 101).expect("hash");
    std::fs::write(&path, format!("alice:{hash}\n")).expect("write");
    let settings = AccessSettings {
        allow_anonymous: false,
        sys_anonymous: true,
        password_file: Some(&path),
        acl_file: None,
    };
    let access = Access::load(settings, 1).expect("valid file");
    let mut sim = Sim::new(limits);
    sim.shard.set_access(Arc::new(access));
    sim
}

fn login(sim: &mut Sim, client_id: &str, password: &str) -> ConnectionId {
    let id = sim.open();
    let connect = Connect {
        protocol: ProtocolVersion::V3_1_1,
        clean_start: true,
        keep_alive_s: 0,
        properties: Properties::default(),
        client_id: ByteStr::from(client_id),
        will: None,
        username: Some(ByteStr::from("alice")),
        password: Some(Bytes::copy_from_slice(password.as_bytes())),
    };
    sim.send(id, &Packet::Connect(Box::new(connect)));
    id
}

fn requests(sim: &mut Sim) -> Vec<VerifyRequest> {
    let mut out = Vec::new();
    sim.shard.drain_verify_requests(&mut out);
    out
}

fn connack_code(sim: &mut Sim, id: ConnectionId) -> Option<ReasonCode> {
    let (packets, _) = sim.recv(id);
    packets.into_iter().find_map(|p| match p {
        Packet::ConnAck(ack) => Some(ack.code),
        _ => None,
    })
}

#[test]
fn a_password_is_checked_off_the_shard_then_cached_until_reload() {
    let mut sim = sim(Limits::default());
    let first = login(&mut sim, "c1", "secret");
    // Parked: no CONNACK until the verifier answers.
    assert_eq!(connack_code(&mut sim, first), None);
    let mut pending = requests(&mut sim);
    assert_eq!(pending.len(), 1);
    let verified = pending.pop().expect("one").verify();
    sim.shard.handle_verified(sim.now, verified);
    assert_eq!(connack_code(&mut sim, first), Some(ReasonCode::SUCCESS));
    // Same user, same password: from the cache, no check handed out.
    let second = login(&mut sim, "c2", "secret");
    assert!(requests(&mut sim).is_empty());
    assert_eq!(connack_code(&mut sim, second), Some(ReasonCode::SUCCESS));
    // A wrong password is never answered from the cache.
    let third = login(&mut sim, "c3", "guess");
    let verified = requests(&mut sim).pop().expect("checked").verify();
    sim.shard.handle_verified(sim.now, verified);
    assert_eq!(
        connack_code(&mut sim, third),
        Some(ReasonCode::BAD_USER_NAME_OR_PASSWORD)
    );
    assert_eq!(sim.shard.stats().auth_failures, 1);
}

#[test]
fn checks_beyond_auth_verify_queue_max_get_server_busy() {
    let limits = Limits {
        auth_verify_queue_max: 2,
        ..Limits::default()
    };
    let mut sim = sim(limits);
    // Two different passwords: two checks.
    let good = login(&mut sim, "w0", "secret");
    let bad = login(&mut sim, "w1", "guess");
    let busy = login(&mut sim, "late", "another guess");
    // 3.1.1 reads 0x89 Server busy as 0x03 Server unavailable.
    assert_eq!(
        connack_code(&mut sim, busy),
        Some(ReasonCode::SERVER_UNAVAILABLE)
    );
    assert_eq!(sim.shard.stats().auth_busy, 1);
    for request in requests(&mut sim) {
        let verified = request.verify();
        sim.shard.handle_verified(sim.now, verified);
    }
    assert_eq!(connack_code(&mut sim, good), Some(ReasonCode::SUCCESS));
    assert_eq!(
        connack_code(&mut sim, bad),
        Some(ReasonCode::BAD_USER_NAME_OR_PASSWORD)
    );
    // Room again once the answers came back; the good password is cached by now.
    let _ = login(&mut sim, "again", "secret");
    assert_eq!(requests(&mut sim).len(), 0);
    let _ = login(&mut sim, "again2", "guess 2");
    assert_eq!(requests(&mut sim).len(), 1);
}

/// A hundred devices reconnecting at once with the same credentials cost one check.
#[test]
fn concurrent_logins_with_the_same_credentials_share_one_check() {
    let limits = Limits {
        auth_verify_queue_max: 1,
        ..Limits::default()
    };
    let mut sim = sim(limits);
    let ids: Vec<_> = (0..100)
        .map(|i| login(&mut sim, &format!("dev{i}"), "secret"))
        .collect();
    let mut pending = requests(&mut sim);
    assert_eq!(pending.len(), 1, "one check for all of them");
    assert_eq!(sim.shard.stats().auth_busy, 0);
    let verified = pending.pop().expect("one").verify();
    sim.shard.handle_verified(sim.now, verified);
    for id in ids {
        assert_eq!(connack_code(&mut sim, id), Some(ReasonCode::SUCCESS));
    }
}

#[test]
fn a_client_that_leaves_while_its_password_is_checked_is_forgotten() {
    let mut sim = sim(Limits::default());
    let id = login(&mut sim, "gone", "secret");
    let request = requests(&mut sim).pop().expect("one");
    sim.shard.handle_closed(sim.now, id);
    sim.shard.handle_verified(sim.now, request.verify());
    assert_eq!(sim.shard.connection_count(), 0);
    assert_eq!(sim.shard.stats().clients_connected, 0);
}

#[test]
fn anonymous_is_refused_without_a_check() {
    let mut sim = sim(Limits::default());
    let id = sim.open();
    sim.send(id, &super::tests::connect_packet("anon", true, 0, None));
    assert!(requests(&mut sim).is_empty());
    // 3.1.1: 0x05 Not authorized.
    assert_eq!(connack_code(&mut sim, id), Some(ReasonCode::NOT_AUTHORIZED));
}
