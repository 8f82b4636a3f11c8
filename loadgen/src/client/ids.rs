//! Packet identifiers in use on one connection: a 65,536-bit set plus a bounded window.
//!
//! MQTT gives each QoS 1/2 flow a 16-bit id that must not be reused until the flow ends
//! [MQTT-2.3.1-2]. Acks usually come back in order, so a rotating cursor finds a free id at
//! once; the bitset keeps that correct when they do not. 8 KiB per publisher, boxed so that
//! idle connections do not pay for it.

use ringmq::codec::PacketId;

const WORDS: usize = 65_536 / 64;

/// A set of packet identifiers, with at most `capacity` in use at once.
#[derive(Debug, Clone)]
pub(crate) struct IdWindow {
    used: Box<[u64; WORDS]>,
    in_use: u32,
    capacity: u32,
    cursor: PacketId,
}

impl IdWindow {
    /// `capacity` is clamped to 1..=65,535, the ids MQTT has.
    pub(crate) fn new(capacity: u32) -> IdWindow {
        IdWindow {
            used: Box::new([0; WORDS]),
            in_use: 0,
            capacity: capacity.clamp(1, 65_535),
            cursor: PacketId::new(1).expect("1 is a valid packet id"),
        }
    }

    pub(crate) fn set_capacity(&mut self, capacity: u32) {
        self.capacity = capacity.clamp(1, 65_535);
    }

    pub(crate) fn capacity(&self) -> u32 {
        self.capacity
    }

    pub(crate) fn in_use(&self) -> u32 {
        self.in_use
    }

    pub(crate) fn is_full(&self) -> bool {
        self.in_use >= self.capacity
    }

    /// A free id, or `None` when the window is full.
    pub(crate) fn acquire(&mut self) -> Option<PacketId> {
        if self.is_full() {
            return None;
        }
        // in_use < 65,535, so a free id exists and the scan ends.
        let mut id = self.cursor;
        while self.contains(id) {
            id = id.next();
        }
        self.mark(id, true);
        self.in_use += 1;
        self.cursor = id.next();
        Some(id)
    }

    /// Marks a received id (QoS 2 receive side); false if it was already in use.
    pub(crate) fn insert(&mut self, id: PacketId) -> bool {
        if self.contains(id) {
            return false;
        }
        self.mark(id, true);
        self.in_use += 1;
        true
    }

    /// Frees `id`; false if it was not in use (a peer acking something we never sent).
    pub(crate) fn release(&mut self, id: PacketId) -> bool {
        if !self.contains(id) {
            return false;
        }
        self.mark(id, false);
        self.in_use -= 1;
        true
    }

    pub(crate) fn contains(&self, id: PacketId) -> bool {
        let n = usize::from(id.get());
        self.used[n / 64] & (1 << (n % 64)) != 0
    }

    fn mark(&mut self, id: PacketId, used: bool) {
        let n = usize::from(id.get());
        if used {
            self.used[n / 64] |= 1 << (n % 64);
        } else {
            self.used[n / 64] &= !(1 << (n % 64));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_bounds_outstanding_ids() {
        let mut window = IdWindow::new(3);
        let ids: Vec<_> = (0..3).filter_map(|_| window.acquire()).collect();
        assert_eq!(ids.iter().map(|i| i.get()).collect::<Vec<_>>(), [1, 2, 3]);
        assert!(window.is_full() && window.acquire().is_none());
        assert!(window.release(ids[1]));
        assert!(!window.release(ids[1]), "double ack is refused");
        assert_eq!(window.acquire().map(|i| i.get()), Some(4));
    }

    #[test]
    fn wraps_and_skips_ids_still_in_use() {
        let mut window = IdWindow::new(65_535);
        for _ in 0..65_535 {
            assert!(window.acquire().is_some());
        }
        assert!(window.acquire().is_none());
        let seven = PacketId::new(7).expect("nonzero");
        assert!(window.release(seven));
        assert_eq!(
            window.acquire(),
            Some(seven),
            "the only free id is found after wrapping"
        );
    }

    #[test]
    fn receive_side_insert_detects_redelivery() {
        let mut pending = IdWindow::new(65_535);
        let id = PacketId::new(9).expect("nonzero");
        assert!(pending.insert(id));
        assert!(!pending.insert(id));
        assert!(pending.release(id));
        assert_eq!(pending.in_use(), 0);
    }
}
