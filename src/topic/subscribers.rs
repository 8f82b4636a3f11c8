//! The subscribers of one filter: the list an exact filter's map entry keeps, and a wildcard
//! trie node for the filter that ends there and for its `#` slot.
//!
//! Most filters have one subscriber (a device's own topic), a few have thousands (a dashboard's
//! `#`). A `Vec` scanned linearly is the fastest both to iterate and, while short, to search;
//! past [`SUBSCRIBERS_SCAN_MAX`] an index from key to position keeps insert and remove O(1).

use std::hash::Hash;

use ahash::AHashMap;

/// The longest list searched by a linear scan. Comparing up to 16 small `Copy` keys costs
/// about what hashing one does, and needs no index memory.
pub(crate) const SUBSCRIBERS_SCAN_MAX: usize = 16;

/// (subscriber, value) pairs, each key at most once [MQTT-3.8.4-3].
#[derive(Debug)]
pub(crate) struct Subscribers<K, V> {
    entries: Vec<(K, V)>,
    /// Key -> position in `entries`; present only while `entries` is longer than
    /// [`SUBSCRIBERS_SCAN_MAX`] / 2, so a list that hovers at the threshold is not re-indexed
    /// on every change.
    index: Option<Box<AHashMap<K, usize>>>,
}

impl<K: Copy + Eq + Hash, V> Subscribers<K, V> {
    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &(K, V)> {
        self.entries.iter()
    }

    pub(crate) fn get(&self, key: &K) -> Option<&V> {
        self.position(key).map(|at| &self.entries[at].1)
    }

    /// Adds `key`, or replaces its value and returns the old one: a second SUBSCRIBE to the
    /// same filter replaces the subscription [MQTT-3.8.4-3].
    pub(crate) fn insert(&mut self, key: K, value: V) -> Option<V> {
        if let Some(at) = self.position(&key) {
            return Some(std::mem::replace(&mut self.entries[at].1, value));
        }
        self.entries.push((key, value));
        let at = self.entries.len() - 1;
        match &mut self.index {
            Some(index) => {
                index.insert(key, at);
            }
            None if self.entries.len() > SUBSCRIBERS_SCAN_MAX => self.build_index(),
            None => {}
        }
        None
    }

    pub(crate) fn remove(&mut self, key: &K) -> Option<V> {
        let at = self.position(key)?;
        let (_, value) = self.entries.swap_remove(at);
        if let Some(index) = &mut self.index {
            index.remove(key);
            if let Some((moved, _)) = self.entries.get(at) {
                index.insert(*moved, at);
            }
            if self.entries.len() <= SUBSCRIBERS_SCAN_MAX / 2 {
                self.index = None;
            }
        }
        if self.entries.is_empty() {
            // A node that loses its last subscriber often lives on for its children.
            self.entries = Vec::new();
        }
        Some(value)
    }

    fn position(&self, key: &K) -> Option<usize> {
        match &self.index {
            Some(index) => index.get(key).copied(),
            None => self.entries.iter().position(|(k, _)| k == key),
        }
    }

    fn build_index(&mut self) {
        let index = self
            .entries
            .iter()
            .enumerate()
            .map(|(at, (k, _))| (*k, at))
            .collect();
        self.index = Some(Box::new(index));
    }
}

impl<K, V> Default for Subscribers<K, V> {
    fn default() -> Self {
        Subscribers {
            entries: Vec::new(),
            index: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_comes_and_goes_and_stays_right() {
        let mut list = Subscribers::default();
        let count = 3 * SUBSCRIBERS_SCAN_MAX as u32;
        for key in 0..count {
            assert_eq!(list.insert(key, key), None);
        }
        assert!(list.index.is_some());
        assert_eq!(list.insert(6, 600), Some(6));
        for key in (0..count).filter(|k| k % 3 != 0) {
            assert!(list.remove(&key).is_some());
            assert_eq!(list.remove(&key), None);
        }
        assert_eq!(list.len(), SUBSCRIBERS_SCAN_MAX);
        assert!(list.index.is_some());
        for key in (0..count).filter(|k| k % 3 == 0) {
            let expected = if key == 6 { 600 } else { key };
            assert_eq!(list.get(&key), Some(&expected));
        }
        for key in (0..count).filter(|k| k % 3 == 0).take(10) {
            assert!(list.remove(&key).is_some());
        }
        assert!(list.index.is_none());
        assert_eq!(list.len(), SUBSCRIBERS_SCAN_MAX - 10);
        assert_eq!(list.get(&33), Some(&33));
    }
}
