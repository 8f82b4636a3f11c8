//! A value one thread replaces now and then (a reloaded access policy) and every shard picks
//! up at its own pace, without a lock on any shard's hot path.
//!
//! The writer bumps a generation after storing the new value; a shard compares the generation
//! once per tick (one relaxed-cost atomic load) and takes the lock only when it changed, which
//! is once per reload. Generic over the value, so the mesh stays free of protocol types.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// The newest value and how many times it was replaced.
pub struct Published<T> {
    generation: AtomicU64,
    value: Mutex<Arc<T>>,
}

impl<T> Published<T> {
    pub fn new(value: Arc<T>) -> Published<T> {
        Published {
            generation: AtomicU64::new(0),
            value: Mutex::new(value),
        }
    }

    /// Replaces the value; shards see it at their next [`Published::newer_than`].
    pub fn publish(&self, value: Arc<T>) {
        // A poisoned lock only means a reader panicked while cloning an `Arc`; the value in it
        // is still whole, so carry on with it.
        let mut slot = self.value.lock().unwrap_or_else(|e| e.into_inner());
        *slot = value;
        // Release after the store, under the lock: a reader that sees the new generation
        // finds the new value, and `current` sees both or neither.
        self.generation.fetch_add(1, Ordering::Release);
        drop(slot);
    }

    /// The value now, and the generation it belongs to (for a later `newer_than`).
    pub fn current(&self) -> (Arc<T>, u64) {
        let slot = self.value.lock().unwrap_or_else(|e| e.into_inner());
        // Read under the lock: `publish` bumps the generation while holding it.
        (slot.clone(), self.generation.load(Ordering::Acquire))
    }

    /// The value, if it was replaced since generation `*seen`; updates `*seen`.
    pub fn newer_than(&self, seen: &mut u64) -> Option<Arc<T>> {
        let now = self.generation.load(Ordering::Acquire);
        if now == *seen {
            return None;
        }
        *seen = now;
        let slot = self.value.lock().unwrap_or_else(|e| e.into_inner());
        Some(slot.clone())
    }
}

impl<T> std::fmt::Debug for Published<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Published")
            .field("generation", &self.generation.load(Ordering::Relaxed))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reader_sees_each_new_value_once() {
        let cell = Published::new(Arc::new(1));
        let mut seen = 0;
        assert_eq!(cell.newer_than(&mut seen), None);
        cell.publish(Arc::new(2));
        assert_eq!(cell.newer_than(&mut seen).as_deref(), Some(&2));
        assert_eq!(cell.newer_than(&mut seen), None);
        cell.publish(Arc::new(3));
        cell.publish(Arc::new(4));
        assert_eq!(cell.newer_than(&mut seen).as_deref(), Some(&4));
    }
}
