//! MQTT 5.0 properties [MQTT-2.2.2]: one struct for every packet, since the sets overlap.
//!
//! Which property may appear in which packet is the decoder's check (a property that does not
//! belong is a protocol error), not this type's. 3.x packets always carry `Properties::default()`.

use bytes::Bytes;

use super::bytestr::ByteStr;

/// Every property identifier of MQTT 5.0, with its wire byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PropertyId {
    PayloadFormatIndicator = 0x01,
    MessageExpiryInterval = 0x02,
    ContentType = 0x03,
    ResponseTopic = 0x08,
    CorrelationData = 0x09,
    SubscriptionIdentifier = 0x0B,
    SessionExpiryInterval = 0x11,
    AssignedClientIdentifier = 0x12,
    ServerKeepAlive = 0x13,
    AuthenticationMethod = 0x15,
    AuthenticationData = 0x16,
    RequestProblemInformation = 0x17,
    WillDelayInterval = 0x18,
    RequestResponseInformation = 0x19,
    ResponseInformation = 0x1A,
    ServerReference = 0x1C,
    ReasonString = 0x1F,
    ReceiveMaximum = 0x21,
    TopicAliasMaximum = 0x22,
    TopicAlias = 0x23,
    MaximumQos = 0x24,
    RetainAvailable = 0x25,
    UserProperty = 0x26,
    MaximumPacketSize = 0x27,
    WildcardSubscriptionAvailable = 0x28,
    SubscriptionIdentifierAvailable = 0x29,
    SharedSubscriptionAvailable = 0x2A,
}

/// The properties of one packet, boxed, and allocated only when the packet has any.
///
/// Every packet type carries properties, and inline they are 400 bytes: moving a decoded
/// PUBLISH through the broker then cost 13% of its CPU in `memmove`, and every packet and
/// routed message carried 400 mostly empty bytes. This handle is one pointer. It reads like
/// the values through `Deref` (an absent box reads as [`PropertyValues::EMPTY`]) and
/// allocates on the first write through `DerefMut`, so `props.topic_alias = Some(1)` works as
/// on a plain struct. Build one with fields set from [`PropertyValues`]:
/// `Properties::from(PropertyValues { topic_alias: Some(1), ..Default::default() })`.
#[derive(Clone, Default)]
pub struct Properties(Option<Box<PropertyValues>>);

impl Properties {
    pub fn is_empty(&self) -> bool {
        self.0
            .as_deref()
            .is_none_or(|values| *values == PropertyValues::EMPTY)
    }
}

impl std::ops::Deref for Properties {
    type Target = PropertyValues;

    fn deref(&self) -> &PropertyValues {
        self.0.as_deref().unwrap_or(&NO_PROPERTIES)
    }
}

impl std::ops::DerefMut for Properties {
    fn deref_mut(&mut self) -> &mut PropertyValues {
        self.0.get_or_insert_with(Box::default)
    }
}

impl From<PropertyValues> for Properties {
    fn from(values: PropertyValues) -> Properties {
        Properties(Some(Box::new(values)))
    }
}

impl PartialEq for Properties {
    fn eq(&self, other: &Properties) -> bool {
        **self == **other
    }
}

impl Eq for Properties {}

impl std::fmt::Debug for Properties {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        (**self).fmt(f)
    }
}

/// All properties of one packet. `None`/empty means absent on the wire.
///
/// Byte-valued flags (`payload_format_indicator`, `maximum_qos`, the `*_available` ones,
/// `request_*_information`) keep the raw byte; the decoder rejects values outside 0/1
/// (0..=1 for maximum QoS) as a protocol error.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PropertyValues {
    pub payload_format_indicator: Option<u8>,
    pub message_expiry_interval_s: Option<u32>,
    pub content_type: Option<ByteStr>,
    pub response_topic: Option<ByteStr>,
    pub correlation_data: Option<Bytes>,
    /// Several in a server-to-client PUBLISH; at most one in SUBSCRIBE. Values 1..=268,435,455.
    pub subscription_identifiers: Vec<u32>,
    pub session_expiry_interval_s: Option<u32>,
    pub assigned_client_identifier: Option<ByteStr>,
    pub server_keep_alive_s: Option<u16>,
    pub authentication_method: Option<ByteStr>,
    pub authentication_data: Option<Bytes>,
    pub request_problem_information: Option<u8>,
    pub will_delay_interval_s: Option<u32>,
    pub request_response_information: Option<u8>,
    pub response_information: Option<ByteStr>,
    pub server_reference: Option<ByteStr>,
    pub reason_string: Option<ByteStr>,
    /// Zero is a protocol error.
    pub receive_maximum: Option<u16>,
    pub topic_alias_maximum: Option<u16>,
    /// Zero is a protocol error.
    pub topic_alias: Option<u16>,
    pub maximum_qos: Option<u8>,
    pub retain_available: Option<u8>,
    /// May repeat, and order matters [MQTT-3.3.2-18].
    pub user_properties: Vec<(ByteStr, ByteStr)>,
    /// Zero is a protocol error.
    pub maximum_packet_size: Option<u32>,
    pub wildcard_subscription_available: Option<u8>,
    pub subscription_identifier_available: Option<u8>,
    pub shared_subscription_available: Option<u8>,
}

/// What an absent box reads as (a static: a `const` with a `Vec` cannot be borrowed for ever).
static NO_PROPERTIES: PropertyValues = PropertyValues::EMPTY;

impl PropertyValues {
    /// No property at all; what an absent [`Properties`] box reads as.
    pub const EMPTY: PropertyValues = PropertyValues {
        payload_format_indicator: None,
        message_expiry_interval_s: None,
        content_type: None,
        response_topic: None,
        correlation_data: None,
        subscription_identifiers: Vec::new(),
        session_expiry_interval_s: None,
        assigned_client_identifier: None,
        server_keep_alive_s: None,
        authentication_method: None,
        authentication_data: None,
        request_problem_information: None,
        will_delay_interval_s: None,
        request_response_information: None,
        response_information: None,
        server_reference: None,
        reason_string: None,
        receive_maximum: None,
        topic_alias_maximum: None,
        topic_alias: None,
        maximum_qos: None,
        retain_available: None,
        user_properties: Vec::new(),
        maximum_packet_size: None,
        wildcard_subscription_available: None,
        subscription_identifier_available: None,
        shared_subscription_available: None,
    };
}
