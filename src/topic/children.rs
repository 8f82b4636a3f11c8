//! The literal children of one wildcard-trie node: interned level -> child.
//!
//! Most nodes have one or two (`site/+/temp` has one under `site`), a few have thousands (one
//! per site under `site`). A short inline list compared id by id costs less than hashing the id
//! into a map, and it needs no map, no hasher state and no heap; past [`CHILDREN_SCAN_MAX`] a
//! map keeps lookups O(1).

use ahash::AHashMap;
use smallvec::SmallVec;

use super::intern::LevelId;

/// The longest list searched by a linear scan: eight `u32` compares cost less than one hash.
const CHILDREN_SCAN_MAX: usize = 8;

/// Entries kept inline before a short list spills to the heap; two cover most nodes.
const CHILDREN_INLINE: usize = 2;

/// Level -> child, each level at most once.
#[derive(Debug)]
pub(crate) enum Children<T> {
    /// At most [`CHILDREN_SCAN_MAX`] entries, in no order.
    Few(SmallVec<[(LevelId, T); CHILDREN_INLINE]>),
    /// More than [`CHILDREN_SCAN_MAX`] / 2: a list that hovers at the threshold is not
    /// rebuilt on every change.
    Many(AHashMap<LevelId, T>),
}

impl<T: Copy> Children<T> {
    pub(crate) fn is_empty(&self) -> bool {
        match self {
            Children::Few(list) => list.is_empty(),
            Children::Many(map) => map.is_empty(),
        }
    }

    pub(crate) fn get(&self, level: LevelId) -> Option<T> {
        match self {
            Children::Few(list) => list
                .iter()
                .find(|(id, _)| *id == level)
                .map(|(_, child)| *child),
            Children::Many(map) => map.get(&level).copied(),
        }
    }

    /// Adds a child for a level that has none yet.
    pub(crate) fn insert(&mut self, level: LevelId, child: T) {
        assert!(self.get(level).is_none(), "a level has one child");
        match self {
            Children::Few(list) if list.len() < CHILDREN_SCAN_MAX => list.push((level, child)),
            Children::Few(list) => {
                let mut map: AHashMap<LevelId, T> = list.drain(..).collect();
                map.insert(level, child);
                *self = Children::Many(map);
            }
            Children::Many(map) => {
                map.insert(level, child);
            }
        }
    }

    pub(crate) fn remove(&mut self, level: LevelId) {
        match self {
            Children::Few(list) => {
                if let Some(at) = list.iter().position(|(id, _)| *id == level) {
                    list.swap_remove(at);
                }
                if list.is_empty() {
                    // A node often outlives its children; give back a spilled list.
                    *list = SmallVec::new();
                }
            }
            Children::Many(map) => {
                map.remove(&level);
                if map.len() <= CHILDREN_SCAN_MAX / 2 {
                    *self = Children::Few(map.drain().collect());
                }
            }
        }
    }
}

impl<T> Default for Children<T> {
    fn default() -> Self {
        Children::Few(SmallVec::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topic::intern::Interner;

    #[test]
    fn map_comes_and_goes_and_stays_right() {
        let mut interner = Interner::default();
        let ids: Vec<LevelId> = (0..3 * CHILDREN_SCAN_MAX)
            .map(|n| interner.acquire(&n.to_string()))
            .collect();
        let mut children = Children::default();
        for (child, &id) in ids.iter().enumerate() {
            children.insert(id, child);
        }
        assert!(matches!(children, Children::Many(_)));
        for (child, &id) in ids.iter().enumerate().filter(|(child, _)| child % 8 != 0) {
            assert_eq!(children.get(id), Some(child));
            children.remove(id);
            assert_eq!(children.get(id), None);
        }
        assert!(matches!(children, Children::Few(_)), "{children:?}");
        for (child, &id) in ids.iter().enumerate() {
            let expected = (child % 8 == 0).then_some(child);
            assert_eq!(children.get(id), expected);
        }
        ids.iter().for_each(|&id| children.remove(id));
        assert!(children.is_empty());
    }
}
