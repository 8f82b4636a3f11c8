//! Per-listener rules on a shard: which listener a connection came in on, its share of the
//! listener's `max_connections`, its `allow_anonymous` override, and the certificate identity
//! that `use_identity_as_username` makes the user name. Also where transport failures (TLS,
//! WebSocket; `crate::transport`) are counted and logged, since the driver has no counters.

use std::net::SocketAddr;
use std::time::Instant;

use ahash::AHashMap;

use crate::codec::ByteStr;
use crate::session::Outbox;
use crate::transport::{TransportError, TransportFailure};

use super::{log, Conn, ConnState, ConnectionId, PeerAddr, Shard};

/// A listener's index in the broker's listener list (`Config::listeners`, then the per-shard
/// test listeners). At most [`LISTENERS_MAX`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ListenerId(pub u8);

/// Most listeners a broker has: a connection slot spends one byte on its listener.
pub const LISTENERS_MAX: usize = 255;

/// What the shard enforces for one listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerPolicy {
    /// Overrides the access policy's `allow_anonymous` for this listener's clients.
    pub allow_anonymous: Option<bool>,
    /// This shard's share of the listener's `max_connections`.
    pub connections_share: Option<u32>,
    /// The client certificate's CN is the user name; no password is checked.
    pub use_identity_as_username: bool,
    /// What its connections run over, for the per-transport counters.
    pub transport: crate::metrics::Transport,
}

impl ListenerPolicy {
    /// No rules of its own: the broker-wide ones apply.
    pub const OPEN: ListenerPolicy = ListenerPolicy {
        allow_anonymous: None,
        connections_share: None,
        use_identity_as_username: false,
        transport: crate::metrics::Transport::Mqtt,
    };
}

/// The shard's listener table and what it tracks per listener.
#[derive(Debug, Default)]
pub(super) struct Listeners {
    policies: Vec<ListenerPolicy>,
    /// Connections open per listener, for `connections_share`.
    open: Vec<u32>,
    /// Verified certificate names of connections that have not sent CONNECT yet.
    identities: AHashMap<ConnectionId, ByteStr>,
}

impl Listeners {
    /// The transport of listener `listener`'s connections (array index for `Stats`).
    pub(super) fn transport(&self, listener: ListenerId) -> usize {
        self.policy(listener).transport as usize
    }

    pub(super) fn policy(&self, listener: ListenerId) -> &ListenerPolicy {
        self.policies
            .get(listener.0 as usize)
            .unwrap_or(&ListenerPolicy::OPEN)
    }
}

impl Shard {
    /// Sets the listener table (default: every listener open, as [`ListenerPolicy::OPEN`]).
    pub fn with_listeners(mut self, policies: Vec<ListenerPolicy>) -> Shard {
        self.listeners.open = vec![0; policies.len()];
        self.listeners.policies = policies;
        self
    }

    /// Registers a new connection on listener 0, or refuses it at `connections_max`.
    pub fn accept(&mut self, now: Instant, peer: SocketAddr) -> Option<ConnectionId> {
        self.accept_on(now, peer, ListenerId(0))
    }

    /// Registers a new transport connection on `listener`, or refuses it at
    /// `connections_max` or at the listener's `max_connections`.
    pub fn accept_on(
        &mut self,
        now: Instant,
        peer: SocketAddr,
        listener: ListenerId,
    ) -> Option<ConnectionId> {
        let share = self.listeners.policy(listener).connections_share;
        let open = self.listeners.open.get(listener.0 as usize).copied();
        let listener_full = matches!((share, open), (Some(share), Some(open)) if open >= share);
        if self.conns.len() >= self.conns_max || listener_full {
            self.stats.connections_refused += 1;
            if listener_full {
                self.stats.refused.listener_max += 1;
            } else {
                self.stats.refused.connections_max += 1;
            }
            if let Some(suppressed) = self.log.allow(log::LogKind::ConnectionRefused, now) {
                let why = if listener_full {
                    "the listener's max_connections reached on this shard"
                } else {
                    "connections_max reached on this shard"
                };
                tracing::warn!(%peer, listener = listener.0, suppressed, "{why}");
            }
            return None;
        }
        if let Some(open) = self.listeners.open.get_mut(listener.0 as usize) {
            *open += 1;
        }
        self.next_generation = self.next_generation.wrapping_add(1);
        let generation = self.next_generation;
        let index = self.conns.insert(Conn {
            generation,
            state: ConnState::AwaitingConnect { since: now },
            read_buf: None,
            out: Outbox::default(),
            dirty: false,
            listener,
            hold_until: 0,
            throttles: 0,
            peer: PeerAddr::from(peer),
        });
        self.stats.connections_accepted += 1;
        Some(ConnectionId {
            index: index as u32,
            generation,
        })
    }

    /// Connection `id` is still open (its slot has not been reused).
    pub fn has_connection(&self, id: ConnectionId) -> bool {
        self.conn(id).is_some()
    }

    /// A connection's slot is being freed: its listener has room for one more.
    pub(super) fn release_listener(&mut self, id: ConnectionId) {
        self.listeners.identities.remove(&id);
        let Some(conn) = self.conn(id) else {
            return;
        };
        let listener = conn.listener.0 as usize;
        if let Some(open) = self.listeners.open.get_mut(listener) {
            *open = open.saturating_sub(1);
        }
    }

    /// The transport verified a client certificate with this common name. On a listener with
    /// `use_identity_as_username` it becomes the user name of the connection's CONNECT.
    pub fn set_identity(&mut self, id: ConnectionId, common_name: &str) {
        let Some(conn) = self.conn(id) else {
            return;
        };
        if self
            .listeners
            .policy(conn.listener)
            .use_identity_as_username
        {
            self.listeners
                .identities
                .insert(id, ByteStr::from(common_name.to_owned()));
        }
    }

    /// The listener rules for a CONNECT on `id`: `Some(Ok(name))` to admit it as user `name`
    /// without a password check, `Some(Err(()))` to refuse it (no certificate identity), `None`
    /// to decide by the access policy with the listener's `allow_anonymous`.
    pub(super) fn identity_for(&mut self, id: ConnectionId) -> Option<Result<ByteStr, ()>> {
        let listener = self.conn(id)?.listener;
        if !self.listeners.policy(listener).use_identity_as_username {
            return None;
        }
        Some(self.listeners.identities.remove(&id).ok_or(()))
    }

    /// The `allow_anonymous` override of the listener `id` came in on.
    pub(super) fn listener_allows_anonymous(&self, id: ConnectionId) -> Option<bool> {
        let conn = self.conn(id)?;
        self.listeners.policy(conn.listener).allow_anonymous
    }

    /// The transport gave up on connection `id` (the driver closes it): count it, and log it
    /// at debug, rate-limited; a scanner on a TLS port must not fill the log.
    pub fn transport_failed(
        &mut self,
        now: Instant,
        id: ConnectionId,
        failure: TransportFailure,
        error: Option<&TransportError>,
    ) {
        match failure {
            TransportFailure::TlsHandshake => self.stats.tls_handshake_failures += 1,
            TransportFailure::HandshakeTimeout => self.stats.handshake_timeouts += 1,
            TransportFailure::WsUpgrade => self.stats.ws_upgrades_refused += 1,
            TransportFailure::WsProtocol => self.stats.ws_protocol_errors += 1,
        }
        let peer = self
            .conn(id)
            .map(|c| c.peer.to_string())
            .unwrap_or_default();
        if let Some(suppressed) = self.log.allow(log::LogKind::Transport, now) {
            match error {
                Some(error) => {
                    tracing::debug!(%peer, %error, suppressed, "transport closed the connection")
                }
                None => {
                    tracing::debug!(%peer, ?failure, suppressed, "transport closed the connection")
                }
            }
        }
    }
}
