//! Per-session containers that cost one pointer until first used. A broker holds one session
//! per client, most of them idle with nothing in flight: an empty `VecDeque` inline is 32 bytes
//! per session, a `LazyDeque` 8.

use std::collections::VecDeque;

/// What an element adds to its deque's [`LazyDeque::bytes`]: for a queued message, its
/// topic and payload (the bytes `queued_bytes_max` bounds). It must not change while the
/// element is in the deque.
pub(super) trait Weigh {
    fn weight(&self) -> u64;
}

/// A `VecDeque` allocated on first push, that keeps the total [`Weigh::weight`] of what it
/// holds. Not freed as soon as it empties, which would cost an allocation per message on a
/// window that fills and drains; [`LazyDeque::release_if_empty`] frees it when the session
/// goes idle (its client disconnects).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct LazyDeque<T>(Option<Box<Inner<T>>>);

#[derive(Debug, Clone, PartialEq, Eq)]
struct Inner<T> {
    items: VecDeque<T>,
    bytes: u64,
}

impl<T> Default for Inner<T> {
    fn default() -> Inner<T> {
        Inner {
            items: VecDeque::new(),
            bytes: 0,
        }
    }
}

impl<T> Default for LazyDeque<T> {
    fn default() -> LazyDeque<T> {
        LazyDeque(None)
    }
}

impl<T: Weigh> LazyDeque<T> {
    pub(super) fn len(&self) -> usize {
        self.0.as_ref().map_or(0, |d| d.items.len())
    }

    pub(super) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The total weight of the elements.
    pub(super) fn bytes(&self) -> u64 {
        self.0.as_ref().map_or(0, |d| d.bytes)
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = &T> {
        self.0.iter().flat_map(|d| d.items.iter())
    }

    /// For changes that keep each element's weight.
    pub(super) fn iter_mut(&mut self) -> impl Iterator<Item = &mut T> {
        self.0.iter_mut().flat_map(|d| d.items.iter_mut())
    }

    pub(super) fn get(&self, index: usize) -> Option<&T> {
        self.0.as_ref().and_then(|d| d.items.get(index))
    }

    pub(super) fn push_back(&mut self, value: T) {
        let inner = self.0.get_or_insert_with(Box::default);
        inner.bytes += value.weight();
        inner.items.push_back(value);
    }

    pub(super) fn push_front(&mut self, value: T) {
        let inner = self.0.get_or_insert_with(Box::default);
        inner.bytes += value.weight();
        inner.items.push_front(value);
    }

    pub(super) fn pop_front(&mut self) -> Option<T> {
        let inner = self.0.as_mut()?;
        let value = inner.items.pop_front()?;
        inner.bytes -= value.weight();
        Some(value)
    }

    pub(super) fn remove(&mut self, index: usize) -> Option<T> {
        let inner = self.0.as_mut()?;
        let value = inner.items.remove(index)?;
        inner.bytes -= value.weight();
        Some(value)
    }

    pub(super) fn retain(&mut self, mut keep: impl FnMut(&T) -> bool) {
        if let Some(inner) = self.0.as_mut() {
            let mut removed = 0;
            inner.items.retain(|value| {
                let kept = keep(value);
                if !kept {
                    removed += value.weight();
                }
                kept
            });
            inner.bytes -= removed;
        }
    }

    pub(super) fn clear(&mut self) {
        self.0 = None;
    }

    /// Takes every element out, leaving the deque empty (and unallocated).
    pub(super) fn take(&mut self) -> VecDeque<T> {
        self.0.take().map(|d| d.items).unwrap_or_default()
    }

    pub(super) fn release_if_empty(&mut self) {
        if self.0.as_ref().is_some_and(|d| d.items.is_empty()) {
            self.0 = None;
        }
    }
}
