//! Level strings interned to small ids, so that a trie node keys its children by a `u32`
//! instead of owning a copy of every level's text.
//!
//! Reference counted: each trie node reached by a literal level holds one reference to that
//! level, and a level no node uses is forgotten, so the interner never outgrows the trie.

use ahash::AHashMap;

/// An interned level. Ids of released levels are reused, so they stay dense.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct LevelId(u32);

/// Maps level text to [`LevelId`]s, counting the references to each.
#[derive(Debug, Default)]
pub(crate) struct Interner {
    levels: AHashMap<Box<str>, Interned>,
    /// Ids of released levels, handed out again before `next_id` grows.
    free_ids: Vec<LevelId>,
    next_id: u32,
}

#[derive(Debug)]
struct Interned {
    id: LevelId,
    /// How many trie nodes use this level; the entry goes when it reaches zero.
    refs: u32,
}

impl Interner {
    /// The id of `level` if some node uses it. The matcher calls this at most once per level
    /// of a published topic, where a node it visits has literal children: `None` means only
    /// `+` and `#` can match that level.
    pub(crate) fn get(&self, level: &str) -> Option<LevelId> {
        self.levels.get(level).map(|interned| interned.id)
    }

    /// Takes a reference to `level`, interning it if it is new.
    pub(crate) fn acquire(&mut self, level: &str) -> LevelId {
        if let Some(interned) = self.levels.get_mut(level) {
            // Bounded by the node count, itself a `u32`.
            interned.refs += 1;
            return interned.id;
        }
        let id = self.free_ids.pop().unwrap_or_else(|| {
            let id = LevelId(self.next_id);
            self.next_id = self
                .next_id
                .checked_add(1)
                .expect("invariant: fewer than 2^32 levels in use, as each needs a node");
            id
        });
        self.levels
            .insert(Box::from(level), Interned { id, refs: 1 });
        id
    }

    /// Gives back a reference taken by [`Interner::acquire`].
    pub(crate) fn release(&mut self, level: &str) {
        let interned = self
            .levels
            .get_mut(level)
            .expect("invariant: a released level was acquired");
        interned.refs -= 1;
        if interned.refs == 0 {
            let id = interned.id;
            self.levels.remove(level);
            self.free_ids.push(id);
        }
    }

    /// How many distinct levels are in use.
    pub(crate) fn len(&self) -> usize {
        self.levels.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_references_and_reuses_ids() {
        let mut interner = Interner::default();
        let a = interner.acquire("a");
        assert_eq!(interner.acquire("a"), a);
        let b = interner.acquire("b");
        assert_ne!(a, b);
        interner.release("a");
        assert_eq!(interner.get("a"), Some(a));
        interner.release("a");
        assert_eq!(interner.get("a"), None);
        assert_eq!(interner.len(), 1);
        assert_eq!(interner.acquire("c"), a, "a released id is reused");
        interner.release("b");
        interner.release("c");
        assert_eq!(interner.len(), 0);
    }
}
