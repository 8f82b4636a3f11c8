//! Sans-IO MQTT 3.1 / 3.1.1 / 5.0 wire format: bytes in, `Packet` out, and back.
//!
//! Owns: the packet types, framing, decoding, encoding, properties and reason codes.
//! Does not own: what a packet *means* (that is `session`), topic rules beyond "valid UTF-8
//! without U+0000" (that is `topic`), or any I/O. Imports only `std` and `bytes`, so the broker,
//! the tests and `ringmq-loadgen` share this one codec.
//!
//! Driven by calling [`decode`] on a connection's read buffer until it returns
//! [`Decoded::Incomplete`], and [`encode`] into a connection's write buffer.
//!
//! Framing comes first: [`check`] reads only the fixed header, refuses a packet larger than
//! `packet_size_max` before its body is buffered, and reports how many more bytes a partial
//! frame needs. `Incomplete` is a normal result, not an error.
//!
//! # Files
//!
//! | file | holds |
//! |---|---|
//! | `packet`, `properties`, `reason`, `error` | the data types of the public API |
//! | `bytestr` | [`ByteStr`], the zero-copy UTF-8 string both `packet` and `properties` hold |
//! | `decode` | [`check`], [`decode`], dispatch by type, CONNACK, the PUBACK family, DISCONNECT, AUTH |
//! | `decode_connect`, `decode_pubsub` | CONNECT; PUBLISH, SUBSCRIBE, UNSUBSCRIBE and their acks |
//! | `encode`, `encode_body` | [`encode`], [`encoded_len`], the [`encode_publish`] hot path; other bodies |
//! | `properties_codec` | 5.0 property blocks: which property goes where, repeats, values |
//! | `reason_check` | which 5.0 reason codes each packet may carry |
//! | `reader`, `writer`, `varint` | bounds-checked field reads; length-prefixed writes; varints |

mod bytestr;
mod decode;
mod decode_connect;
mod decode_pubsub;
mod encode;
mod encode_body;
mod error;
mod packet;
mod properties;
mod properties_codec;
mod reader;
mod reason;
mod reason_check;
mod varint;
mod writer;

pub use bytestr::ByteStr;
pub use decode::{check, decode, Decoded, Frame};
pub use encode::{
    encode, encode_publish, encode_publish_view, encoded_len, publish_view_len, PublishView,
};
pub use error::{DecodeError, EncodeError};
pub use packet::{
    Ack, Auth, ConnAck, Connect, Disconnect, Packet, PacketId, PacketKind, ProtocolVersion,
    Publish, QoS, RetainHandling, SubAck, Subscribe, SubscriptionOptions, UnsubAck, Unsubscribe,
    Will,
};
pub use properties::{Properties, PropertyId, PropertyValues};
pub use reason::ReasonCode;

/// The largest Remaining Length the variable-byte encoding can express [MQTT-1.5.5].
pub const REMAINING_LENGTH_MAX: u32 = 268_435_455;

/// Writes `properties` as a PUBLISH (or, with `will`, a CONNECT's will) carries them: the
/// write-ahead log (`crate::persist`) stores message properties in the wire's own encoding.
pub(crate) fn put_message_properties(
    out: &mut bytes::BytesMut,
    properties: &Properties,
) -> Result<(), EncodeError> {
    let len = properties_codec::properties_len(properties);
    properties_codec::put_properties(out, properties, len)
}

/// Reads a property block written by [`put_message_properties`] from the front of `bytes`;
/// returns the properties and what follows them.
pub(crate) fn read_message_properties(
    bytes: bytes::Bytes,
    will: bool,
) -> Result<(Properties, bytes::Bytes), DecodeError> {
    let mut reader = reader::Reader::new(bytes);
    let context = if will {
        properties_codec::PropertyContext::Will
    } else {
        properties_codec::PropertyContext::Publish
    };
    let properties = properties_codec::decode_properties(&mut reader, context)?;
    Ok((properties, reader.take_rest()))
}
