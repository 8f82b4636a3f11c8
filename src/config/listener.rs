//! `[[listener]]` tables: where the broker listens, over which transport, and with which
//! per-listener access rules. `listen = [...]` and `--listen` add plain MQTT listeners.

use std::net::SocketAddr;

use serde::Deserialize;

pub use crate::transport::tls_config::TlsFiles;

use super::ConfigError;

/// What a listener speaks above TCP (TLS, if any, is below it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ListenerProtocol {
    /// MQTT over TCP (or TLS): `mqtt://`, `mqtts://`.
    #[default]
    Mqtt,
    /// MQTT over WebSocket (or WebSocket over TLS): `ws://`, `wss://`.
    Ws,
}

/// One `[[listener]]` table.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerConfig {
    /// ADDR:PORT to bind.
    pub bind: SocketAddr,
    #[serde(default)]
    pub protocol: ListenerProtocol,
    /// The HTTP path of the WebSocket upgrade (`ws` only).
    #[serde(default = "default_ws_path")]
    pub path: String,
    /// Overrides `[auth] allow_anonymous` for clients of this listener.
    #[serde(default)]
    pub allow_anonymous: Option<bool>,
    /// Connections this listener holds at once, enforced as an equal share per shard like
    /// `limits.connections_max`; a connection beyond it is closed at accept (counted).
    #[serde(default)]
    pub max_connections: Option<u32>,
    /// TLS on this listener (`mqtts`, `wss`).
    #[serde(default)]
    pub tls: Option<TlsFiles>,
    /// Came from a `[[listener]]` table (which `--listen` does not replace).
    #[serde(skip)]
    pub from_table: bool,
}

fn default_ws_path() -> String {
    "/mqtt".into()
}

impl ListenerConfig {
    /// A plain MQTT listener, as `--listen` makes.
    pub fn mqtt(bind: SocketAddr) -> ListenerConfig {
        ListenerConfig {
            bind,
            protocol: ListenerProtocol::Mqtt,
            path: default_ws_path(),
            allow_anonymous: None,
            max_connections: None,
            tls: None,
            from_table: false,
        }
    }

    /// The URL scheme clients use for it, for logs.
    pub fn scheme(&self) -> &'static str {
        match (self.protocol, self.tls.is_some()) {
            (ListenerProtocol::Mqtt, false) => "mqtt",
            (ListenerProtocol::Mqtt, true) => "mqtts",
            (ListenerProtocol::Ws, false) => "ws",
            (ListenerProtocol::Ws, true) => "wss",
        }
    }

    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key, why: &str| {
            Err(ConfigError::Invalid {
                key,
                why: format!("listener {}: {why}", self.bind),
            })
        };
        if self.protocol == ListenerProtocol::Ws && !self.path.starts_with('/') {
            return invalid("listener.path", "must start with /");
        }
        if self.max_connections == Some(0) {
            return invalid("listener.max_connections", "must be at least 1");
        }
        if let Some(tls) = &self.tls {
            if tls.require_client_certificate && tls.client_ca_file.is_none() {
                return invalid(
                    "listener.tls.require_client_certificate",
                    "needs client_ca_file",
                );
            }
            if tls.use_identity_as_username && !tls.require_client_certificate {
                return invalid(
                    "listener.tls.use_identity_as_username",
                    "needs require_client_certificate = true",
                );
            }
        }
        Ok(())
    }
}
