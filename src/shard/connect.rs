//! Connection lifecycle on a shard: CONNECT, the client-id claim (take-over and session resume,
//! possibly across shards), and every way a connection ends (with or without its will).
//!
//! A valid CONNECT parks its connection in `AwaitingSession` and sends `Claim` to the client
//! id's home shard (`peer.rs` serialises claims per id). The holder of the old session closes
//! the old connection and answers the claimant with `Granted`; only then is CONNACK written.
//! When home, holder and claimant are all this shard, the same messages are handled by direct
//! calls, so one shard and many shards run one code path.

use std::time::Instant;

use crate::codec::{
    ByteStr, ConnAck, Connect, DecodeError, Disconnect, Packet, Properties, ProtocolVersion, QoS,
    ReasonCode,
};
use crate::mesh::ShardId;
use crate::session::{
    validate_connect, write_packet, Action, ConnectParams, ConnectRefused, Message, Reply, Rules,
    Session, ValidWill,
};

use super::log::LogKind;
use super::{
    ConnRef, ConnState, ConnectionId, End, Handoff, Parked, SessionEntry, SessionKey, Shard,
    ShardMessage,
};

impl Shard {
    /// Acts on one decoded packet from a connection.
    pub(super) fn dispatch(&mut self, now: Instant, id: ConnectionId, packet: Packet) {
        let Some(conn) = self.conn(id) else { return };
        match conn.state {
            ConnState::AwaitingConnect { .. } => match packet {
                Packet::Connect(connect) => self.handle_connect(now, id, *connect),
                // [MQTT-3.1.0-1]: the first packet must be CONNECT; anything else closes.
                _ => {
                    let peer = conn.peer.clone();
                    if let Some(suppressed) = self.log.allow(LogKind::Violation, now) {
                        tracing::info!(%peer, suppressed, "closing connection: first packet not CONNECT");
                    }
                    self.stats.protocol_errors += 1;
                    self.end_connection(now, id, End::Refused);
                }
            },
            ConnState::Authenticating => match packet {
                Packet::Auth(auth) => self.handle_auth(now, id, auth),
                Packet::Disconnect(_) => self.end_connection(now, id, End::Refused),
                // [MQTT-4.12.0-4]: only AUTH or DISCONNECT until CONNACK.
                _ => {
                    self.stats.protocol_errors += 1;
                    let version = ProtocolVersion::V5;
                    let refused = ConnectRefused {
                        code: Some(ReasonCode::PROTOCOL_ERROR),
                        version,
                        why: "packet other than AUTH during authentication",
                    };
                    self.auth.remove(&id);
                    self.refuse(now, id, refused);
                }
            },
            ConnState::Attached { .. } if matches!(packet, Packet::Auth(_)) => {
                let Packet::Auth(auth) = packet else {
                    unreachable!("matched AUTH above")
                };
                self.handle_auth(now, id, auth);
            }
            ConnState::Attached { session, .. } => {
                self.handle_session_packet(now, id, session, packet)
            }
            ConnState::AwaitingSession { .. }
            | ConnState::Verifying { .. }
            | ConnState::Closing => {}
        }
    }

    fn handle_session_packet(
        &mut self,
        now: Instant,
        id: ConnectionId,
        key: SessionKey,
        packet: Packet,
    ) {
        // What may change the session's persistent state, and what in `sync` mode
        // acknowledges something the log must hold first (PUBACK, PUBREC, SUBACK).
        let (changes, acknowledges) = match &packet {
            Packet::PingReq => (false, false),
            // Only QoS 2 leaves state in the publisher's session (its packet id until PUBREL).
            Packet::Publish(p) => (p.qos == QoS::ExactlyOnce, p.qos != QoS::AtMostOnce),
            // SUBACK, UNSUBACK, PUBREL (we recorded the PUBREC) and PUBCOMP (we forgot the id).
            Packet::Subscribe(_)
            | Packet::Unsubscribe(_)
            | Packet::PubRec(_)
            | Packet::PubRel(_) => (true, true),
            _ => (true, false),
        };
        let marks = self.persist_marks();
        let mut actions = std::mem::take(&mut self.actions);
        let conn = &mut self.conns[id.index as usize];
        let entry = &mut self.sessions[key.0 as usize];
        let result = entry.session.handle_packet(
            now,
            packet,
            &mut conn.out,
            &mut actions,
            Rules {
                limits: &self.limits,
                protocol: &self.protocol,
                access: &self.access,
            },
        );
        let expired = u64::from(std::mem::take(&mut conn.out.dropped));
        let too_large = u64::from(entry.session.take_dropped_too_large());
        self.stats.count_drops(expired, too_large);
        let pumped = pumped_by_qos(&mut conn.out, &mut entry.session);
        self.count_publish_sent(id, pumped);
        if !self.conns[id.index as usize].out.is_empty() {
            self.mark_dirty(id);
        }
        for action in actions.drain(..) {
            match action {
                Action::Publish(message, reply) => {
                    if !self.may_publish(now, key, message.topic.as_str()) {
                        self.publish_refused(id, key, reply, ReasonCode::NOT_AUTHORIZED);
                        continue;
                    }
                    if message.retain && !message.payload.is_empty() && self.persistence_full() {
                        // A retained message is persistent state: refused, not half-stored.
                        self.stats.persist_full += 1;
                        self.publish_refused(id, key, reply, ReasonCode::QUOTA_EXCEEDED);
                        continue;
                    }
                    let matched = self.publish(now, Some(key), message);
                    if let (Some(reply), Some(conn)) = (reply, self.conn_mut(id)) {
                        let version = conn_version(&conn.state);
                        write_packet(&mut conn.out, version, &reply.packet(matched));
                        self.mark_dirty(id);
                    }
                }
                Action::Subscribed {
                    filter,
                    params,
                    existed,
                } => self.subscribe(now, key, &filter, params, existed),
                Action::Unsubscribed(filter) => self.unsubscribe(key, &filter),
                Action::Disconnect => self.end_connection(now, id, End::Graceful),
            }
        }
        self.actions = actions;
        if changes {
            self.log_session(key);
        }
        if acknowledges {
            self.hold_if_logged(id, marks);
        }
        // Acknowledgements may have drained a congested queue.
        self.check_congestion_of(now, key);
        if let Err(violation) = result {
            self.stats.protocol_errors += 1;
            let client_id = self
                .sessions
                .get(key.0 as usize)
                .map(|e| e.session.client_id().clone())
                .unwrap_or_default();
            if let Some(suppressed) = self.log.allow(LogKind::Violation, now) {
                tracing::info!(%client_id, why = violation.why, suppressed,
                    "closing connection: protocol violation");
            }
            self.end_connection(now, id, End::Violation(violation.code, violation.why));
        }
    }

    /// A PUBLISH the broker will not take (the ACL: 0x87; `persisted_bytes_max`: 0x97): 5.0
    /// gets PUBACK/PUBREC with `code`; 3.x has no way to say no, so it is acknowledged and
    /// dropped, as mosquitto does. QoS 0 is dropped either way. Counted by the caller.
    fn publish_refused(
        &mut self,
        id: ConnectionId,
        key: SessionKey,
        reply: Option<Reply>,
        code: ReasonCode,
    ) {
        let Some(reply) = reply else { return };
        let Some(conn) = self.conn_mut(id) else {
            return;
        };
        let version = conn_version(&conn.state);
        let packet = if version.is_v5() {
            if let Reply::PubRec(packet_id) = reply {
                // The error PUBREC ends the QoS 2 flow: no PUBREL will free the id.
                self.sessions[key.0 as usize]
                    .session
                    .forget_inbound_qos2(packet_id);
            }
            reply.with_code(code)
        } else {
            reply.packet(true)
        };
        let conn = &mut self.conns[id.index as usize];
        write_packet(&mut conn.out, version, &packet);
        self.mark_dirty(id);
    }

    /// A frame could not be decoded: answer as the protocol says, then close.
    pub(super) fn decode_failed(&mut self, now: Instant, id: ConnectionId, error: DecodeError) {
        let Some(conn) = self.conn_mut(id) else {
            return;
        };
        if let (ConnState::AwaitingConnect { .. }, DecodeError::UnsupportedProtocolLevel(_)) =
            (&conn.state, &error)
        {
            // [MQTT-3.1.2-2]: CONNACK 0x01 (unacceptable protocol level), then close. Sent in
            // 3.1.1 form, which every level's client can read.
            let connack = ConnAck {
                session_present: false,
                code: ReasonCode::UNSUPPORTED_PROTOCOL_VERSION,
                properties: Properties::default(),
            };
            write_packet(
                &mut conn.out,
                ProtocolVersion::V3_1_1,
                &Packet::ConnAck(connack),
            );
            self.stats.connections_refused += 1;
            self.stats
                .refused
                .connack(ReasonCode::UNSUPPORTED_PROTOCOL_VERSION.0);
            self.end_connection(now, id, End::Refused);
            return;
        }
        if let (ConnState::AwaitingConnect { .. }, Some(version)) =
            (&conn.state, error.connect_protocol())
        {
            // 5.0 (3.2.2.2, 4.13): CONNACK with the reason, then close. 3.x has return codes
            // only for the level and the client id, so a malformed CONNECT is closed without
            // CONNACK [MQTT-3.1.4-1] [MQTT-3.2.2-4].
            let refused = ConnectRefused {
                code: version.is_v5().then(|| error.reason_code()),
                version,
                why: "malformed CONNECT",
            };
            return self.refuse(now, id, refused);
        }
        self.end_connection(
            now,
            id,
            End::Violation(error.reason_code(), "malformed packet"),
        );
    }

    fn handle_connect(&mut self, now: Instant, id: ConnectionId, mut connect: Connect) {
        // Validation keeps the user name (for the ACL); the password is only for the check.
        let password = connect.password.take();
        let params = match validate_connect(connect, &self.limits, &self.protocol, &mut self.ids) {
            Ok(params) => params,
            Err(refused) => return self.refuse(now, id, refused),
        };
        if params.properties.authentication_method.is_some() {
            return self.start_auth(now, id, params);
        }
        self.admit(now, id, params, password);
    }

    /// CONNECT is valid (and authenticated): ask the client id's home shard for the session.
    pub(super) fn claim_session(&mut self, now: Instant, id: ConnectionId, params: ConnectParams) {
        let local = self.clients.contains_key(&params.client_id);
        if !local && self.sessions.len() >= self.sessions_max {
            let refused = ConnectRefused {
                code: Some(ReasonCode::QUOTA_EXCEEDED),
                version: params.version,
                why: "sessions_max reached",
            };
            return self.refuse(now, id, refused);
        }
        if !local && params.session_expiry_s > 0 && self.persistence_full() {
            // New persistent state while the log is at `persisted_bytes_max` (or cannot be
            // written). A session this shard already holds may still resume.
            self.stats.persist_full += 1;
            let refused = ConnectRefused {
                code: Some(ReasonCode::QUOTA_EXCEEDED),
                version: params.version,
                why: "persisted_bytes_max reached",
            };
            return self.refuse(now, id, refused);
        }
        let client_id = params.client_id.clone();
        let clean_start = params.clean_start;
        self.conns[id.index as usize].state = ConnState::AwaitingSession {
            parked: Box::new(Parked { params, since: now }),
        };
        let conn = ConnRef {
            shard: self.id,
            conn: id,
        };
        let home = self.peers.home_of(&client_id);
        self.send_to(
            now,
            home,
            ShardMessage::Claim {
                client_id,
                conn,
                clean_start,
            },
        );
    }

    pub(super) fn refuse(&mut self, now: Instant, id: ConnectionId, refused: ConnectRefused) {
        self.stats.connections_refused += 1;
        // A malformed CONNECT is closed without CONNACK; it still counts, as `malformed`.
        let code = refused.code.map_or(0x81, |code| code.0);
        self.stats.refused.connack(code);
        let Some(conn) = self
            .conns
            .get_mut(id.index as usize)
            .filter(|c| c.generation == id.generation)
        else {
            return;
        };
        if let Some(suppressed) = self.log.allow(LogKind::ConnectRefused, now) {
            tracing::info!(peer = %conn.peer, why = refused.why, suppressed, "CONNECT refused");
        }
        if let Some(connack) = refused.connack() {
            write_packet(&mut conn.out, refused.version, &Packet::ConnAck(connack));
        }
        self.end_connection(now, id, End::Refused);
    }

    /// On the shard holding `client_id`'s session: close its connection (a take-over, so the
    /// will is published [MQTT-3.1.4-2]) and hand the session to the claimant, or discard it
    /// for a clean start [MQTT-3.1.2-4].
    pub(super) fn on_evict(
        &mut self,
        now: Instant,
        client_id: ByteStr,
        claimant: ConnRef,
        clean_start: bool,
    ) {
        if let Some(old) = self
            .clients
            .get(&client_id)
            .and_then(|k| self.sessions[k.0 as usize].conn)
        {
            self.stats.takeovers += 1;
            self.end_connection(now, old, End::TakenOver);
        }
        // Ending the old connection may have discarded a non-persistent session: look again.
        let handoff = match self.clients.get(&client_id).copied() {
            None => Handoff::Fresh,
            Some(key) if clean_start => {
                self.discard_session(now, key);
                Handoff::Fresh
            }
            Some(_) if claimant.shard == self.id => Handoff::Kept,
            Some(key) => Handoff::Moved(Box::new(self.hand_off(key, claimant.shard))),
        };
        let granted = ShardMessage::Granted {
            client_id,
            conn: claimant.conn,
            handoff,
        };
        self.send_to(now, claimant.shard, granted);
    }

    /// On the claimant: the session is ours. Attach it and write CONNACK, or keep it offline if
    /// the connection went away while we waited.
    pub(super) fn on_granted(
        &mut self,
        now: Instant,
        from: ShardId,
        client_id: ByteStr,
        id: ConnectionId,
        handoff: Handoff,
    ) {
        let params = match self.conn_mut(id) {
            Some(conn) if matches!(conn.state, ConnState::AwaitingSession { .. }) => {
                match std::mem::replace(&mut conn.state, ConnState::Closing) {
                    ConnState::AwaitingSession { parked } => Some(parked.params),
                    _ => unreachable!("matched AwaitingSession above"),
                }
            }
            _ => None,
        };
        let home = self.peers.home_of(&client_id);
        let Some(params) = params else {
            let holds_session = match handoff {
                Handoff::Moved(session) => {
                    let key = self.adopt_session(*session);
                    // The home hears `Settled` once the old holder stops forwarding.
                    return self.adopted(now, key, from);
                }
                Handoff::Kept => self.clients.contains_key(&client_id),
                Handoff::Fresh => false,
            };
            self.send_to(
                now,
                home,
                ShardMessage::Settled {
                    client_id,
                    holds_session,
                },
            );
            return;
        };
        let moved = matches!(handoff, Handoff::Moved(_));
        let (key, session_present) = match handoff {
            Handoff::Moved(session) if !params.clean_start => (self.adopt_session(*session), true),
            Handoff::Kept if !params.clean_start => match self.clients.get(&client_id) {
                Some(key) => (*key, true),
                None => (self.new_session(&params), false),
            },
            _ => (self.new_session(&params), false),
        };
        self.attach(now, id, key, &params, session_present);
        // A resumed session's subscriptions just became this shard's interest: hold CONNACK and
        // what follows until every peer knows, so nothing published after CONNACK is missed.
        self.hold_output(id);
        if moved {
            // The home hears `Settled` once the old holder stops forwarding (`handoff.rs`).
            self.adopted(now, key, from);
        } else {
            let settled = ShardMessage::Settled {
                client_id,
                holds_session: true,
            };
            self.send_to(now, home, settled);
        }
        self.peers.resume_input(id);
        // Its reader paused while the CONNECT waited (`is_throttled`): read on.
        self.flow.resume_later(id);
    }

    fn attach(
        &mut self,
        now: Instant,
        id: ConnectionId,
        key: SessionKey,
        params: &ConnectParams,
        session_present: bool,
    ) {
        let conn = &mut self.conns[id.index as usize];
        conn.state = ConnState::Attached {
            session: key,
            version: params.version,
        };
        let entry = &mut self.sessions[key.0 as usize];
        entry.conn = Some(id);
        // Back online: its offline deadline no longer applies. Removed here (O(log n)) rather
        // than left stale, so a client that reconnects often does not pile up timer entries.
        if let Some(at) = entry.session.next_deadline() {
            self.timers.remove(&(at, key));
        }
        entry.session.attach(
            now,
            params,
            session_present,
            &mut conn.out,
            &self.limits,
            &self.protocol,
        );
        let expired = u64::from(std::mem::take(&mut conn.out.dropped));
        let too_large = u64::from(entry.session.take_dropped_too_large());
        self.stats.count_drops(expired, too_large);
        let pumped = pumped_by_qos(&mut conn.out, &mut entry.session);
        self.stats.clients_connected += 1;
        self.stats.connects += 1;
        tracing::debug!(client_id = %params.client_id, peer = %conn.peer,
            version = params.version.level(), session_present, "client connected");
        self.count_publish_sent(id, pumped);
        self.mark_dirty(id);
        self.log_session(key);
        if session_present {
            self.shared_presence(key, true);
        }
    }

    fn new_session(&mut self, params: &ConnectParams) -> SessionKey {
        if let Some(key) = self.clients.get(&params.client_id).copied() {
            // A clean start where the old session was kept here: drop it first.
            self.drop_session(key);
        }
        let session = Session::new(params.client_id.clone(), params.session_expiry_s);
        self.insert_session(session)
    }

    fn insert_session(&mut self, session: Session) -> SessionKey {
        let client_id = session.client_id().clone();
        let key = SessionKey(self.sessions.insert(SessionEntry {
            session,
            conn: None,
            congested: false,
            logged: false,
            log_dirty: false,
        }) as u32);
        self.clients.insert(client_id, key);
        key
    }

    /// Takes in a session moved from another shard (offline): its subscriptions join this
    /// shard's trie and groups, and its deadlines this shard's timers.
    pub(super) fn adopt_session(&mut self, session: Session) -> SessionKey {
        let subscriptions: Vec<_> = session.subscriptions().cloned().collect();
        let deadline = session.next_deadline();
        let key = self.insert_session(session);
        for subscription in subscriptions {
            self.add_subscription(key, &subscription.filter, subscription.params(), false);
        }
        if let Some(at) = deadline {
            self.timers.insert((at, key));
        }
        self.log_session(key);
        key
    }

    /// Ends a connection: detaches its session (publishing the will unless a DISCONNECT
    /// discarded it, or later if it has a delay), ends a session that does not outlive its
    /// connection, and marks the transport for closing after its remaining output is flushed.
    pub(super) fn end_connection(&mut self, now: Instant, id: ConnectionId, end: End) {
        if !self.auth.is_empty() {
            self.auth.remove(&id);
        }
        let Some(conn) = self.conn_mut(id) else {
            return;
        };
        let state = std::mem::replace(&mut conn.state, ConnState::Closing);
        // Also when `state` is the placeholder `Closing` of `on_granted`/`handle_verified`;
        // `expire_closing` ignores a second entry.
        self.closing.push_back((now, id));
        if state.is_parked() {
            // Its reader waits for the state to change; let it see the close.
            self.flow.resume_later(id);
        }
        if let ConnState::Attached {
            session: key,
            version,
        } = state
        {
            if version.is_v5() {
                if let Some(code) = end.disconnect_reason() {
                    let mut disconnect = Disconnect::new(code);
                    // Says why in words, unless that would exceed the client's Maximum Packet
                    // Size [MQTT-3.14.2-3]; the code alone always fits (4 bytes).
                    let fits = self.sessions[key.0 as usize]
                        .session
                        .client_packet_size_max()
                        >= DISCONNECT_WITH_REASON_MAX_BYTES;
                    if fits {
                        disconnect.properties.reason_string = end.why().map(ByteStr::from_static);
                    }
                    let conn = &mut self.conns[id.index as usize];
                    write_packet(&mut conn.out, version, &Packet::Disconnect(disconnect));
                }
            }
            self.stats.clients_connected -= 1;
            let entry = &mut self.sessions[key.0 as usize];
            entry.conn = None;
            let detached = entry.session.detach(now);
            if let Some(will) = detached.will {
                self.publish_will(now, key, will);
            }
            if detached.ends_now {
                self.redeliver_shared(now, key);
                self.discard_session(now, key);
            } else {
                self.shared_presence(key, false);
                self.redeliver_shared(now, key);
                if let Some(at) = detached.deadline {
                    self.timers.insert((at, key));
                }
                self.log_session(key);
            }
        }
        self.mark_dirty(id);
    }

    /// Publishes a will on behalf of session `key` [MQTT-3.1.2-8].
    /// The ACL decides when the will is sent, not at CONNECT (as mosquitto does): a will
    /// the client may not write is dropped then, counted in `acl_denied`.
    pub(super) fn publish_will(&mut self, now: Instant, key: SessionKey, will: ValidWill) {
        if !self.may_publish(now, key, will.topic.as_str()) {
            return;
        }
        self.stats.wills_published += 1;
        let message = Message::from_will(will, now);
        if self.awaiting_restored() {
            // Came due while the broker was down: routed once the subscribers restored on the
            // other shards are known here (`peer.rs`: `announce_restored`).
            return self.peers.hold_will(message);
        }
        self.publish(now, None, message);
    }

    /// Forgets a session entirely and tells the client id's home shard. A will still waiting
    /// for its delay goes out now: the session it belonged to has ended [MQTT-3.1.3-9].
    pub(super) fn discard_session(&mut self, now: Instant, key: SessionKey) {
        if let Some(at) = self.sessions[key.0 as usize].session.next_deadline() {
            self.timers.remove(&(at, key));
        }
        if let Some(will) = self.sessions[key.0 as usize].session.take_delayed_will() {
            self.publish_will(now, key, will);
        }
        let session = self.drop_session(key);
        let client_id = session.client_id().clone();
        let home = self.peers.home_of(&client_id);
        self.send_to(now, home, ShardMessage::SessionDiscarded { client_id });
    }

    /// Removes a session from this shard (slab, client map and trie), to discard it or to move
    /// it to another shard.
    fn drop_session(&mut self, key: SessionKey) -> Session {
        let entry = self.sessions.remove(key.0 as usize);
        assert!(
            entry.conn.is_none(),
            "removing a session that still has a connection"
        );
        if let Some(at) = entry.session.next_deadline() {
            // The slot may be reused by another session: leave no entry that names it.
            self.timers.remove(&(at, key));
        }
        self.adoption_ended(key);
        for subscription in entry.session.subscriptions() {
            self.remove_subscription(key, &subscription.filter);
        }
        if self.clients.get(entry.session.client_id()) == Some(&key) {
            self.clients.remove(entry.session.client_id());
        }
        if entry.logged {
            self.log_session_end(entry.session.client_id());
        }
        entry.session
    }
}

fn conn_version(state: &ConnState) -> ProtocolVersion {
    match state {
        ConnState::Attached { version, .. } => *version,
        _ => ProtocolVersion::V3_1_1,
    }
}

/// An upper bound on a DISCONNECT with one of our reason strings (all under 100 bytes).
const DISCONNECT_WITH_REASON_MAX_BYTES: u32 = 128;

impl End {
    /// The reason string sent with the DISCONNECT, if any.
    fn why(self) -> Option<&'static str> {
        match self {
            End::Violation(_, why) => Some(why),
            End::KeepAliveTimeout => Some("keep-alive timeout"),
            End::TakenOver => Some("another connection took over this client id"),
            End::ServerShutdown => Some("server shutting down"),
            _ => None,
        }
    }

    /// The 5.0 DISCONNECT reason a server sends for this end, if it sends one.
    fn disconnect_reason(self) -> Option<ReasonCode> {
        match self {
            End::Violation(code, _) => Some(code),
            End::KeepAliveTimeout => Some(ReasonCode::KEEP_ALIVE_TIMEOUT),
            End::TakenOver => Some(ReasonCode::SESSION_TAKEN_OVER),
            End::ServerShutdown => Some(ReasonCode::SERVER_SHUTTING_DOWN),
            End::Graceful | End::Lost | End::ConnectTimeout | End::Refused => None,
        }
    }
}

/// Queued messages sent since the shard last looked, by QoS (QoS 0 is never queued).
fn pumped_by_qos(out: &mut crate::session::Outbox, session: &mut Session) -> [u16; 3] {
    let pumped = std::mem::take(&mut out.pumped);
    let qos2 = session.take_pumped_qos2();
    [0, pumped.saturating_sub(qos2), qos2]
}
