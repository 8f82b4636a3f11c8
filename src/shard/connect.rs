//! Connection lifecycle on a shard: CONNECT, take-over, session resume, and every way a
//! connection ends (with or without its will).

use std::time::Instant;

use crate::codec::{
    ConnAck, DecodeError, Disconnect, Packet, Properties, ProtocolVersion, ReasonCode,
};
use crate::session::{
    validate_connect, write_packet, Action, ConnectParams, ConnectRefused, Message, Session,
};

use super::{ConnState, ConnectionId, End, SessionEntry, SessionKey, Shard};

impl Shard {
    /// Acts on one decoded packet from a connection.
    pub(super) fn dispatch(&mut self, now: Instant, id: ConnectionId, packet: Packet) {
        let Some(conn) = self.conn(id) else { return };
        match conn.state {
            ConnState::AwaitingConnect { .. } => match packet {
                Packet::Connect(connect) => self.handle_connect(now, id, *connect),
                // [MQTT-3.1.0-1]: the first packet must be CONNECT; anything else closes.
                _ => {
                    tracing::info!(peer = %conn.peer, "closing connection: first packet not CONNECT");
                    self.stats.protocol_errors += 1;
                    self.end_connection(now, id, End::Refused);
                }
            },
            ConnState::Attached { session, .. } => {
                self.handle_session_packet(now, id, session, packet)
            }
            ConnState::Closing => {}
        }
    }

    fn handle_session_packet(
        &mut self,
        now: Instant,
        id: ConnectionId,
        key: SessionKey,
        packet: Packet,
    ) {
        let mut actions = std::mem::take(&mut self.actions);
        let conn = &mut self.conns[id.index as usize];
        let entry = &mut self.sessions[key.0 as usize];
        let result =
            entry
                .session
                .handle_packet(now, packet, &mut conn.out, &mut actions, &self.limits);
        if !conn.out.is_empty() {
            self.mark_dirty(id);
        }
        for action in actions.drain(..) {
            match action {
                Action::Publish(message) => self.publish(now, Some(key), message),
                Action::Subscribed {
                    filter,
                    options,
                    existed,
                } => self.subscribe(key, &filter, options, existed),
                Action::Unsubscribed(filter) => self.unsubscribe(key, &filter),
                Action::Disconnect => self.end_connection(now, id, End::Graceful),
            }
        }
        self.actions = actions;
        if let Err(violation) = result {
            self.stats.protocol_errors += 1;
            tracing::info!(client_id = %self.sessions[key.0 as usize].session.client_id(),
                why = violation.why, "closing connection: protocol violation");
            self.end_connection(now, id, End::Violation(violation.code));
        }
    }

    /// A frame could not be decoded: answer as the protocol says, then close.
    pub(super) fn decode_failed(&mut self, now: Instant, id: ConnectionId, error: DecodeError) {
        let Some(conn) = self.conn_mut(id) else {
            return;
        };
        if let (ConnState::AwaitingConnect { .. }, DecodeError::UnsupportedProtocolLevel(_)) =
            (conn.state, &error)
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
            self.end_connection(now, id, End::Refused);
            return;
        }
        self.end_connection(now, id, End::Violation(error.reason_code()));
    }

    fn handle_connect(&mut self, now: Instant, id: ConnectionId, connect: crate::codec::Connect) {
        let params = match validate_connect(connect, &self.limits, &mut self.ids) {
            Ok(params) => params,
            Err(refused) => return self.refuse(now, id, refused),
        };
        let existing = self.clients.get(&params.client_id).copied();
        if existing.is_none() && self.sessions.len() >= self.limits.sessions_max as usize {
            self.stats.connections_refused += 1;
            let refused = ConnectRefused {
                code: Some(ReasonCode::QUOTA_EXCEEDED),
                version: params.version,
                why: "sessions_max reached",
            };
            return self.refuse(now, id, refused);
        }
        let (key, session_present) = match existing {
            Some(key) => self.take_over(now, key, &params),
            None => self.fresh_session(&params),
        };
        let conn = &mut self.conns[id.index as usize];
        conn.state = ConnState::Attached {
            session: key,
            version: params.version,
        };
        let entry = &mut self.sessions[key.0 as usize];
        entry.conn = Some(id);
        entry
            .session
            .attach(now, &params, session_present, &mut conn.out, &self.limits);
        self.stats.clients_connected += 1;
        tracing::debug!(client_id = %params.client_id, peer = %conn.peer,
            version = params.version.level(), session_present, "client connected");
        self.mark_dirty(id);
    }

    /// The client id already has a session: close its connection if it has one (will
    /// published, [MQTT-3.1.4-2]), then keep or discard the session by Clean Start.
    fn take_over(
        &mut self,
        now: Instant,
        key: SessionKey,
        params: &ConnectParams,
    ) -> (SessionKey, bool) {
        if let Some(old) = self.sessions[key.0 as usize].conn {
            self.stats.takeovers += 1;
            self.end_connection(now, old, End::TakenOver);
        }
        // The old connection's end may have discarded a clean session: look again.
        match self.clients.get(&params.client_id).copied() {
            Some(key) if !params.clean_start => (key, true),
            Some(key) => {
                // [MQTT-3.1.2-6]: Clean Session 1 discards any previous session.
                self.discard_session(key);
                self.fresh_session(params)
            }
            None => self.fresh_session(params),
        }
    }

    fn fresh_session(&mut self, params: &ConnectParams) -> (SessionKey, bool) {
        let session = Session::new(params.client_id.clone(), !params.clean_start);
        let key = SessionKey(self.sessions.insert(SessionEntry {
            session,
            conn: None,
        }) as u32);
        self.clients.insert(params.client_id.clone(), key);
        (key, false)
    }

    fn refuse(&mut self, now: Instant, id: ConnectionId, refused: ConnectRefused) {
        self.stats.connections_refused += 1;
        let Some(conn) = self.conn_mut(id) else {
            return;
        };
        tracing::info!(peer = %conn.peer, why = refused.why, "CONNECT refused");
        if let Some(connack) = refused.connack() {
            write_packet(&mut conn.out, refused.version, &Packet::ConnAck(connack));
        }
        self.end_connection(now, id, End::Refused);
    }

    /// Ends a connection: detaches its session (publishing the will if the loss was
    /// ungraceful), ends a non-persistent session, and marks the transport for closing after
    /// its remaining output is flushed.
    pub(super) fn end_connection(&mut self, now: Instant, id: ConnectionId, end: End) {
        let Some(conn) = self.conn_mut(id) else {
            return;
        };
        let state = std::mem::replace(&mut conn.state, ConnState::Closing);
        if let ConnState::Attached {
            session: key,
            version,
        } = state
        {
            if version.is_v5() {
                if let Some(code) = end.disconnect_reason() {
                    let packet = Packet::Disconnect(Disconnect::new(code));
                    write_packet(&mut conn.out, version, &packet);
                }
            }
            self.stats.clients_connected -= 1;
            let entry = &mut self.sessions[key.0 as usize];
            entry.conn = None;
            let will = entry.session.detach();
            let persistent = entry.session.is_persistent();
            if end != End::Graceful {
                if let Some(will) = will {
                    self.stats.wills_published += 1;
                    let message = Message::from_will(will);
                    self.publish(now, None, message);
                }
            }
            if !persistent {
                self.discard_session(key);
            }
        }
        self.mark_dirty(id);
    }

    /// Forgets a session entirely: its subscriptions leave the trie and its id is free.
    pub(super) fn discard_session(&mut self, key: SessionKey) {
        let entry = self.sessions.remove(key.0 as usize);
        assert!(
            entry.conn.is_none(),
            "discarding a session that still has a connection"
        );
        for subscription in entry.session.subscriptions() {
            self.trie.remove(subscription.filter.filter(), &key);
        }
        if self.clients.get(entry.session.client_id()) == Some(&key) {
            self.clients.remove(entry.session.client_id());
        }
    }
}

impl End {
    /// The 5.0 DISCONNECT reason a server sends for this end, if it sends one.
    fn disconnect_reason(self) -> Option<ReasonCode> {
        match self {
            End::Violation(code) => Some(code),
            End::KeepAliveTimeout => Some(ReasonCode::KEEP_ALIVE_TIMEOUT),
            End::TakenOver => Some(ReasonCode::SESSION_TAKEN_OVER),
            End::ServerShutdown => Some(ReasonCode::SERVER_SHUTTING_DOWN),
            End::Graceful | End::Lost | End::ConnectTimeout | End::Refused => None,
        }
    }
}
