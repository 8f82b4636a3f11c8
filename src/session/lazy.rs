//! Per-session containers that cost one pointer until first used. A broker holds one session
//! per client, most of them idle with nothing in flight: an empty `VecDeque` inline is 32 bytes
//! per session, a `LazyDeque` 8.

use std::collections::VecDeque;

/// A `VecDeque` allocated on first push. Not freed as soon as it empties, which would cost an
/// allocation per message on a window that fills and drains; [`LazyDeque::release_if_empty`]
/// frees it when the session goes idle (its client disconnects).
#[derive(Debug, Clone, PartialEq, Eq)]
// The box is the point: one pointer inline instead of a 32-byte empty deque.
#[allow(clippy::box_collection)]
pub(super) struct LazyDeque<T>(Option<Box<VecDeque<T>>>);

impl<T> Default for LazyDeque<T> {
    fn default() -> LazyDeque<T> {
        LazyDeque(None)
    }
}

impl<T> LazyDeque<T> {
    pub(super) fn len(&self) -> usize {
        self.0.as_ref().map_or(0, |d| d.len())
    }

    pub(super) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = &T> {
        self.0.iter().flat_map(|d| d.iter())
    }

    pub(super) fn iter_mut(&mut self) -> impl Iterator<Item = &mut T> {
        self.0.iter_mut().flat_map(|d| d.iter_mut())
    }

    pub(super) fn get(&self, index: usize) -> Option<&T> {
        self.0.as_ref().and_then(|d| d.get(index))
    }

    pub(super) fn push_back(&mut self, value: T) {
        self.0.get_or_insert_with(Box::default).push_back(value);
    }

    pub(super) fn push_front(&mut self, value: T) {
        self.0.get_or_insert_with(Box::default).push_front(value);
    }

    pub(super) fn pop_front(&mut self) -> Option<T> {
        let deque = self.0.as_mut()?;
        deque.pop_front()
    }

    pub(super) fn remove(&mut self, index: usize) -> Option<T> {
        self.0.as_mut()?.remove(index)
    }

    pub(super) fn retain(&mut self, keep: impl FnMut(&T) -> bool) {
        if let Some(deque) = self.0.as_mut() {
            deque.retain(keep);
        }
    }

    pub(super) fn clear(&mut self) {
        self.0 = None;
    }

    /// Takes every element out, leaving the deque empty (and unallocated).
    pub(super) fn take(&mut self) -> VecDeque<T> {
        self.0.take().map(|d| *d).unwrap_or_default()
    }

    pub(super) fn release_if_empty(&mut self) {
        if self.0.as_ref().is_some_and(|d| d.is_empty()) {
            self.0 = None;
        }
    }
}
