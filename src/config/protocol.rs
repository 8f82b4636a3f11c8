//! The MQTT 5.0 server capabilities the broker announces in CONNACK and then enforces
//! (`[protocol]` in the TOML file). Each field says what a client that ignores it gets.
//!
//! 3.x clients cannot be told these values, so they are enforced on them the way mosquitto
//! does: a refused CONNECT or a closed connection instead of a reason code.

use serde::Deserialize;

use super::ConfigError;

/// How a shared subscription group (`$share/<group>/<filter>`) picks the member that gets a
/// message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum SharedStrategy {
    /// Members take turns (per publishing shard).
    #[default]
    RoundRobin,
    /// A uniformly random member.
    Random,
    /// A hash of the *publisher's* client id: one publisher's messages all go to one member
    /// (while the group is unchanged), which keeps them in order.
    HashClientId,
}

/// Server-side MQTT 5.0 values. Announced in CONNACK, enforced on every protocol level.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProtocolOptions {
    /// Longest keep-alive a client may ask for, in seconds. 5.0 clients asking for more (or for
    /// none, 0) are told this value as Server Keep Alive; 3.x clients asking for more are
    /// refused with CONNACK 0x02, as mosquitto's `max_keepalive`. 65535, the default, allows
    /// any keep-alive including none.
    pub keep_alive_max_s: u16,
    /// Inbound QoS 2 messages a client may have unreleased (PUBREC sent, PUBREL not received)
    /// at once: 5.0's Receive Maximum. One more is DISCONNECT 0x93 (3.x: the connection is
    /// closed). QoS 1 is acknowledged as it is read, so it never counts against this.
    pub receive_maximum: u16,
    /// Highest QoS accepted in PUBLISH and granted in SUBACK (0, 1 or 2). A PUBLISH above it is
    /// DISCONNECT 0x9B; a SUBSCRIBE above it is granted this QoS.
    pub maximum_qos: u8,
    /// Whether retained messages are accepted. When off, a PUBLISH with RETAIN is DISCONNECT
    /// 0x9A (3.x: closed).
    pub retain_available: bool,
    /// Topic aliases a client may set towards the broker per connection. An alias above it is
    /// DISCONNECT 0x94. Outbound, the broker uses up to the client's own maximum.
    pub topic_alias_max: u16,
    /// Whether filters with `+` or `#` may be subscribed. When off: DISCONNECT 0xA2.
    pub wildcard_subscriptions: bool,
    /// Whether SUBSCRIBE may carry a Subscription Identifier. When off: DISCONNECT 0xA1.
    pub subscription_identifiers: bool,
    /// Whether `$share/<group>/<filter>` may be subscribed. When off: DISCONNECT 0x9E.
    pub shared_subscriptions: bool,
    pub shared_strategy: SharedStrategy,
    /// Longest a session is kept after its client disconnects, in seconds. 5.0 clients asking
    /// for longer are told this value in CONNACK; 3.x persistent sessions expire after it
    /// (mosquitto's `persistent_client_expiration`). u32::MAX, the default, means never.
    pub session_expiry_max_s: u32,
    /// When a 5.0 client sets Request Response Information, CONNACK's Response Information is
    /// this prefix followed by the client id, a topic namespace the client may use for replies.
    /// Empty: never sent.
    pub response_information_prefix: String,
    /// Whether client ids, user names, topic names and topic filters may contain control
    /// characters (U+0001..U+001F, U+007F..U+009F). The standard says they SHOULD NOT and lets
    /// the receiver refuse them (3.1.1 section 1.5.3, 5.0 section 1.5.4), so by default they
    /// are refused: client id CONNACK 0x85 (3.x: 0x02), user name 0x86 (3.x: 0x04), will
    /// topic 0x90 (3.x: closed), PUBLISH DISCONNECT 0x90 (3.x: closed), SUBSCRIBE SUBACK 0x8F
    /// (3.x: 0x80), UNSUBSCRIBE UNSUBACK 0x8F (3.x: closed). On: accepted as any character.
    pub allow_control_characters: bool,
}

impl Default for ProtocolOptions {
    fn default() -> ProtocolOptions {
        ProtocolOptions {
            keep_alive_max_s: u16::MAX,
            receive_maximum: 1024,
            maximum_qos: 2,
            retain_available: true,
            topic_alias_max: 10,
            wildcard_subscriptions: true,
            subscription_identifiers: true,
            shared_subscriptions: true,
            shared_strategy: SharedStrategy::RoundRobin,
            session_expiry_max_s: u32::MAX,
            response_information_prefix: "reply/".into(),
            allow_control_characters: false,
        }
    }
}

impl ProtocolOptions {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.maximum_qos > 2 {
            return Err(ConfigError::Invalid {
                key: "protocol.maximum_qos",
                why: "must be 0, 1 or 2".into(),
            });
        }
        if self.receive_maximum == 0 {
            return Err(ConfigError::Invalid {
                key: "protocol.receive_maximum",
                why: "must be at least 1".into(),
            });
        }
        Ok(())
    }
}
