//! The Variable Byte Integer of MQTT [MQTT-1.5.5]: seven bits per byte, least significant group
//! first, the high bit saying "another byte follows", at most four bytes.
//!
//! Used for the Remaining Length of the fixed header, the Property Length, the property
//! identifier and the Subscription Identifier value. Non-minimal encodings (`0x80 0x00` for 0)
//! are accepted on decode, as mosquitto does; the encoder always writes the minimal form.

use bytes::{BufMut, BytesMut};

/// The largest value four bytes can carry: 268,435,455 [MQTT-1.5.5].
pub(crate) const VARINT_MAX: u32 = 268_435_455;

/// The most bytes a variable byte integer may take on the wire [MQTT-1.5.5-1].
pub(crate) const VARINT_LEN_MAX: usize = 4;

/// The outcome of reading a variable byte integer from the front of a slice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum VarInt {
    /// The value and how many bytes it took.
    Value { value: u32, len: usize },
    /// The slice ends before the last byte of the integer.
    Incomplete,
    /// A fourth byte still had its continuation bit set.
    Malformed,
}

/// Reads a variable byte integer from the front of `buf`.
pub(crate) fn read_varint(buf: &[u8]) -> VarInt {
    let mut value: u32 = 0;
    for (index, &byte) in buf.iter().take(VARINT_LEN_MAX).enumerate() {
        value |= u32::from(byte & 0x7F) << (7 * index);
        if byte & 0x80 == 0 {
            return VarInt::Value {
                value,
                len: index + 1,
            };
        }
    }
    if buf.len() >= VARINT_LEN_MAX {
        // [MQTT-1.5.5-1] four bytes at most: the fourth must not ask for a fifth.
        VarInt::Malformed
    } else {
        VarInt::Incomplete
    }
}

/// How many bytes the minimal encoding of `value` takes. Values over `VARINT_MAX` are not
/// encodable; they report 5 so that a length computed with them can never be mistaken for a
/// valid one.
pub(crate) const fn varint_len(value: u32) -> usize {
    match value {
        0..=127 => 1,
        128..=16_383 => 2,
        16_384..=2_097_151 => 3,
        2_097_152..=VARINT_MAX => 4,
        _ => 5,
    }
}

/// Appends the minimal encoding of `value`. The caller has checked `value <= VARINT_MAX`.
pub(crate) fn put_varint(out: &mut BytesMut, value: u32) {
    debug_assert!(value <= VARINT_MAX, "caller checks the varint range");
    let mut rest = value;
    loop {
        let byte = (rest & 0x7F) as u8;
        rest >>= 7;
        if rest == 0 {
            out.put_u8(byte);
            return;
        }
        out.put_u8(byte | 0x80);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_boundaries_round_trip() {
        // The boundary table of [MQTT-1.5.5].
        let cases: [(u32, &[u8]); 8] = [
            (0, &[0x00]),
            (127, &[0x7F]),
            (128, &[0x80, 0x01]),
            (16_383, &[0xFF, 0x7F]),
            (16_384, &[0x80, 0x80, 0x01]),
            (2_097_151, &[0xFF, 0xFF, 0x7F]),
            (2_097_152, &[0x80, 0x80, 0x80, 0x01]),
            (VARINT_MAX, &[0xFF, 0xFF, 0xFF, 0x7F]),
        ];
        for (value, wire) in cases {
            let mut out = BytesMut::new();
            put_varint(&mut out, value);
            assert_eq!(&out[..], wire);
            assert_eq!(varint_len(value), wire.len());
            assert_eq!(
                read_varint(wire),
                VarInt::Value {
                    value,
                    len: wire.len()
                }
            );
        }
    }

    #[test]
    fn non_minimal_is_accepted_and_fifth_byte_is_not() {
        assert_eq!(
            read_varint(&[0x80, 0x00]),
            VarInt::Value { value: 0, len: 2 }
        );
        assert_eq!(
            read_varint(&[0x80, 0x80, 0x80, 0x80, 0x01]),
            VarInt::Malformed
        );
        assert_eq!(read_varint(&[0x80, 0x80, 0x80, 0x80]), VarInt::Malformed);
        assert_eq!(read_varint(&[0x80, 0x80]), VarInt::Incomplete);
        assert_eq!(read_varint(&[]), VarInt::Incomplete);
    }
}
