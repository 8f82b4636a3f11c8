//! Enhanced authentication on a shard (MQTT 5.0 section 4.12): the AUTH exchange that runs
//! between CONNECT and CONNACK, and re-authentication on a live connection. The methods live
//! in [`crate::auth`] and are sans-IO; this file keeps each connection's conversation and turns
//! its steps into AUTH, CONNACK and DISCONNECT packets.
//!
//! Only connections that asked for a method have an entry here, so connections that do not use
//! enhanced authentication pay nothing for it.

use crate::codec::PropertyValues;
use std::time::Instant;

use bytes::Bytes;

use crate::auth::{AuthConversation, AuthStep};
use crate::codec::{Auth, ByteStr, Packet, Properties, ProtocolVersion, ReasonCode};
use crate::session::{write_packet, ConnectParams, ConnectRefused};

use super::{ConnState, ConnectionId, End, Shard};

/// One connection's enhanced authentication.
pub(super) struct AuthExchange {
    /// The method named in CONNECT; re-authentication must use the same [MQTT-4.12.1-1].
    method: ByteStr,
    /// A conversation under way (at CONNECT or a re-authentication), if any.
    conversation: Option<Box<dyn AuthConversation>>,
    /// The CONNECT waiting for the exchange to succeed; `None` once connected.
    pending: Option<Box<ConnectParams>>,
    /// When CONNECT arrived: the exchange must end within `CONNECT_TIMEOUT`.
    since: Instant,
}

impl AuthExchange {
    pub(super) fn since(&self) -> Instant {
        self.since
    }
}

impl std::fmt::Debug for AuthExchange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthExchange")
            .field("method", &self.method)
            .field("in_progress", &self.conversation.is_some())
            .finish()
    }
}

impl Shard {
    /// CONNECT named an Authentication Method: an unknown one is refused with 0x8C
    /// [MQTT-4.12.0-1]; a known one starts its conversation.
    pub(super) fn start_auth(&mut self, now: Instant, id: ConnectionId, params: ConnectParams) {
        let method = params
            .properties
            .authentication_method
            .clone()
            .expect("start_auth is called for a CONNECT with a method");
        let Some(handler) = self.authenticator.lookup(method.as_str()) else {
            let refused = ConnectRefused {
                code: Some(ReasonCode::BAD_AUTHENTICATION_METHOD),
                version: params.version,
                why: "unknown authentication method",
            };
            return self.refuse(now, id, refused);
        };
        let data = params
            .properties
            .authentication_data
            .clone()
            .unwrap_or_default();
        let (conversation, step) = handler.start(&data);
        self.auth.insert(
            id,
            AuthExchange {
                method,
                conversation: Some(conversation),
                pending: Some(Box::new(params)),
                since: now,
            },
        );
        self.conns[id.index as usize].state = ConnState::Authenticating;
        self.auth_step(now, id, step);
    }

    /// An AUTH packet from the client: the next step of the conversation at CONNECT, or a
    /// re-authentication (0x19) or its next step on a connected client.
    pub(super) fn handle_auth(&mut self, now: Instant, id: ConnectionId, auth: Auth) {
        let method_ok = |exchange: &AuthExchange| {
            auth.properties.authentication_method.as_ref() == Some(&exchange.method)
        };
        let step = match (self.auth.get_mut(&id), auth.code) {
            (Some(exchange), ReasonCode::CONTINUE_AUTHENTICATION)
                if method_ok(exchange) && exchange.conversation.is_some() =>
            {
                let conversation = exchange.conversation.as_mut().expect("checked above");
                conversation.step(data_of(&auth))
            }
            (Some(exchange), ReasonCode::RE_AUTHENTICATE)
                if method_ok(exchange)
                    && exchange.pending.is_none()
                    && exchange.conversation.is_none() =>
            {
                let handler = self
                    .authenticator
                    .lookup(exchange.method.as_str())
                    .expect("the method was known at CONNECT");
                let (conversation, step) = handler.start(data_of(&auth));
                exchange.conversation = Some(conversation);
                step
            }
            // [MQTT-4.12.0-5]/[MQTT-4.12.1-1]: wrong method, wrong code, or no method at all.
            _ => AuthStep::Failure {
                code: ReasonCode::PROTOCOL_ERROR,
                why: "unexpected AUTH packet",
            },
        };
        self.auth_step(now, id, step);
    }

    /// Acts on one step of a conversation.
    fn auth_step(&mut self, now: Instant, id: ConnectionId, step: AuthStep) {
        let Some(exchange) = self.auth.get_mut(&id) else {
            // AUTH from a client that never named a method.
            if let AuthStep::Failure { code, why } = step {
                self.stats.protocol_errors += 1;
                self.end_connection(now, id, End::Violation(code, why));
            }
            return;
        };
        let method = exchange.method.clone();
        match step {
            AuthStep::Continue(data) => {
                self.write_auth(id, ReasonCode::CONTINUE_AUTHENTICATION, method, Some(data));
            }
            AuthStep::Success { data, username } => {
                exchange.conversation = None;
                match exchange.pending.take() {
                    Some(mut params) => {
                        params.auth = Some((method, data));
                        params.username = Some(username);
                        self.claim_session(now, id, *params);
                    }
                    // [MQTT-4.12.1-2]: a re-authentication that succeeds is answered with AUTH 0x00.
                    None => self.write_auth(id, ReasonCode::SUCCESS, method, data),
                }
            }
            AuthStep::Failure { code, why } => {
                self.stats.auth_failures += 1;
                let pending = exchange.pending.take();
                self.auth.remove(&id);
                if let Some(suppressed) = self.log.allow(super::log::LogKind::AuthFailed, now) {
                    tracing::info!(%method, why, suppressed, "authentication failed");
                }
                match pending {
                    Some(params) => {
                        let refused = ConnectRefused {
                            code: Some(code),
                            version: params.version,
                            why,
                        };
                        self.refuse(now, id, refused);
                    }
                    // A failed re-authentication ends the connection [MQTT-4.12.1-2].
                    None => self.end_connection(now, id, End::Violation(code, why)),
                }
            }
        }
    }

    fn write_auth(
        &mut self,
        id: ConnectionId,
        code: ReasonCode,
        method: ByteStr,
        data: Option<Bytes>,
    ) {
        let Some(conn) = self.conn_mut(id) else {
            return;
        };
        let properties = Properties::from(PropertyValues {
            authentication_method: Some(method),
            authentication_data: data,
            ..Default::default()
        });
        let auth = Auth { code, properties };
        write_packet(&mut conn.out, ProtocolVersion::V5, &Packet::Auth(auth));
        self.mark_dirty(id);
    }
}

fn data_of(auth: &Auth) -> &[u8] {
    auth.properties
        .authentication_data
        .as_deref()
        .unwrap_or_default()
}
