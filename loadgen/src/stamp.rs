//! The 16-byte stamp at the front of every measured payload: when the message was meant to be
//! sent, by which publisher, and its sequence number on that publisher.
//!
//! 16 bytes because the standard scenarios use 16-byte payloads, so the stamp must fit in the
//! smallest payload we send. Layout, little-endian:
//!
//! | bytes | field |
//! |---|---|
//! | 0..8 | `sent_at`: [`MonoNs`] of the *scheduled* send (open loop) or the actual send (max rate) |
//! | 8..12 | `publisher`: [`PublisherId`], dense from 0 within one run |
//! | 12..16 | `seq`: [`Seq`], 0, 1, 2... per publisher |
//!
//! Bytes after the stamp are filler. A payload shorter than the stamp is someone else's message
//! and decodes to `None`: payloads are network data and never trusted.

use crate::clock::MonoNs;

/// Bytes of the stamp, and so the smallest `--payload-bytes`.
pub const STAMP_LEN: usize = 16;

/// One publisher of a run, numbered densely from 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct PublisherId(pub u32);

/// A message's position in its publisher's stream. u32: 4 billion messages per publisher is
/// far beyond any bounded run, and it keeps the stamp at 16 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Seq(pub u32);

/// The decoded stamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub sent_at: MonoNs,
    pub publisher: PublisherId,
    pub seq: Seq,
}

impl Stamp {
    /// Writes the stamp into the first [`STAMP_LEN`] bytes of `payload`.
    ///
    /// Panics if `payload` is shorter: the CLI refuses such payload sizes, so this would be a
    /// programmer's error.
    pub fn write(&self, payload: &mut [u8]) {
        assert!(payload.len() >= STAMP_LEN, "payload shorter than the stamp");
        payload[0..8].copy_from_slice(&self.sent_at.0.to_le_bytes());
        payload[8..12].copy_from_slice(&self.publisher.0.to_le_bytes());
        payload[12..16].copy_from_slice(&self.seq.0.to_le_bytes());
    }

    /// Reads a stamp from the front of a received payload.
    pub fn read(payload: &[u8]) -> Option<Stamp> {
        let sent_at = u64::from_le_bytes(payload.get(0..8)?.try_into().ok()?);
        let publisher = u32::from_le_bytes(payload.get(8..12)?.try_into().ok()?);
        let seq = u32::from_le_bytes(payload.get(12..16)?.try_into().ok()?);
        Some(Stamp {
            sent_at: MonoNs(sent_at),
            publisher: PublisherId(publisher),
            seq: Seq(seq),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_with_filler() {
        let stamp = Stamp {
            sent_at: MonoNs(0x0102_0304_0506_0708),
            publisher: PublisherId(7),
            seq: Seq(u32::MAX),
        };
        let mut payload = vec![0xAAu8; 1024];
        stamp.write(&mut payload);
        assert_eq!(Stamp::read(&payload), Some(stamp));
        assert!(payload[STAMP_LEN..].iter().all(|&b| b == 0xAA));
    }

    #[test]
    fn exact_layout_is_little_endian() {
        let stamp = Stamp {
            sent_at: MonoNs(1),
            publisher: PublisherId(2),
            seq: Seq(3),
        };
        let mut payload = [0u8; STAMP_LEN];
        stamp.write(&mut payload);
        assert_eq!(payload, [1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0]);
    }

    #[test]
    fn short_payload_is_not_a_stamp() {
        for len in 0..STAMP_LEN {
            assert_eq!(Stamp::read(&vec![0u8; len]), None, "len {len}");
        }
    }

    #[test]
    #[should_panic(expected = "shorter than the stamp")]
    fn writing_into_a_short_payload_is_a_bug() {
        let stamp = Stamp {
            sent_at: MonoNs(1),
            publisher: PublisherId(2),
            seq: Seq(3),
        };
        stamp.write(&mut [0u8; 15]);
    }
}
