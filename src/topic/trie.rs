//! [`SubscriptionTrie`]: from topic filters to subscribers, matched by a published topic.
//!
//! Owns every subscription of one shard's index, split by the shape of its filter:
//! - **exact filters**, without `+` or `#`, in a hash map keyed by the whole filter text. Such a
//!   filter matches exactly one topic name, the one spelled the same (no normalisation,
//!   [MQTT-4.7.3-4]), so one hash of the published topic and one compare find all of them: no
//!   split into levels, no lookup per level. Devices that each publish to and subscribe on
//!   their own topic, the common point-to-point load, use nothing else.
//! - **wildcard filters** in a `WildcardTrie` (`wildcard.rs`), walked level by level, and only
//!   when it holds a filter the topic could reach.
//!
//! The `$`-topic rule [MQTT-4.7.2-1] is about a wildcard at the first level, so it lives in the
//! wildcard trie alone: an exact `$SYS/uptime` matches the topic `$SYS/uptime` and nothing else.
//!
//! Does not own what a key or value means; the caller picks `K` and `V`.

use std::fmt;
use std::hash::Hash;

use ahash::AHashMap;

use super::subscribers::Subscribers;
use super::wildcard::WildcardTrie;
use super::TopicFilter;

/// Below this many buckets the exact map is never shrunk: a small map costs little, and
/// resizing it back and forth would cost more.
const EXACT_CAPACITY_MIN: usize = 64;

/// Topic filters to subscribers: `K` names a subscriber (a session), `V` is what it asked for
/// (its subscription options). A subscriber holds at most one `V` per filter.
pub struct SubscriptionTrie<K, V> {
    /// Filters without wildcards, by their text. The key is a copy rather than the filter's
    /// `ByteStr`, which may be a slice of a whole SUBSCRIBE packet and would keep it alive.
    exact: AHashMap<Box<str>, Subscribers<K, V>>,
    /// Filters with `+` or `#`.
    wildcard: WildcardTrie<K, V>,
    /// (filter, subscriber) pairs, in both indexes.
    len: usize,
}

impl<K: Copy + Eq + Hash, V> SubscriptionTrie<K, V> {
    pub fn new() -> Self {
        SubscriptionTrie {
            exact: AHashMap::new(),
            wildcard: WildcardTrie::new(),
            len: 0,
        }
    }

    /// How many (filter, subscriber) pairs are stored.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// How many distinct literal levels the wildcard filters use; zero when there are none.
    /// Exact filters intern nothing.
    pub fn interned_levels(&self) -> usize {
        self.wildcard.interned_levels()
    }

    /// How many nodes the wildcard trie holds, including its two roots; for memory accounting.
    /// Exact filters take one map entry each and no node.
    pub fn node_count(&self) -> usize {
        self.wildcard.node_count()
    }

    /// Subscribes `key` to `filter`. If it already was, replaces the value and returns the
    /// old one rather than adding a second subscription [MQTT-3.8.4-3].
    pub fn insert(&mut self, filter: &TopicFilter, key: K, value: V) -> Option<V> {
        let previous = if filter.has_wildcards() {
            self.wildcard.insert(filter, key, value)
        } else if let Some(subscribers) = self.exact.get_mut(filter.as_str()) {
            subscribers.insert(key, value)
        } else {
            let mut subscribers = Subscribers::default();
            subscribers.insert(key, value);
            self.exact.insert(Box::from(filter.as_str()), subscribers);
            None
        };
        if previous.is_none() {
            self.len += 1;
        }
        previous
    }

    /// Unsubscribes `key` from `filter`, freeing whatever no other subscription needs.
    pub fn remove(&mut self, filter: &TopicFilter, key: &K) -> Option<V> {
        let removed = if filter.has_wildcards() {
            self.wildcard.remove(filter, key)?
        } else {
            self.remove_exact(filter.as_str(), key)?
        };
        self.len -= 1;
        Some(removed)
    }

    /// The value `key` subscribed to `filter` with, if it did.
    pub fn get(&self, filter: &TopicFilter, key: &K) -> Option<&V> {
        if filter.has_wildcards() {
            self.wildcard.get(filter, key)
        } else {
            self.exact.get(filter.as_str())?.get(key)
        }
    }

    /// Calls `f` once per (subscriber, value) whose filter matches `topic`: a subscriber with
    /// two overlapping filters is visited twice, and the caller deduplicates. The order is
    /// unspecified.
    ///
    /// `topic` should be a valid [`super::TopicName`]; any other text is matched level by level
    /// all the same, but one deeper than [`super::TOPIC_LEVELS_MAX`] makes the walk allocate.
    pub fn for_each_match(&self, topic: &str, mut f: impl FnMut(&K, &V)) {
        // Checked first so that a shard without exact filters does not hash the topic.
        if !self.exact.is_empty() {
            if let Some(subscribers) = self.exact.get(topic) {
                subscribers.iter().for_each(|(key, value)| f(key, value));
            }
        }
        self.wildcard.for_each_match(topic, &mut f);
    }

    fn remove_exact(&mut self, text: &str, key: &K) -> Option<V> {
        let subscribers = self.exact.get_mut(text)?;
        let removed = subscribers.remove(key)?;
        if subscribers.is_empty() {
            self.exact.remove(text);
            // The map never shrinks by itself; a quarter full, halve its size so that memory
            // follows the live subscriptions, at an amortised O(1) per removal.
            let capacity = self.exact.capacity();
            if capacity > EXACT_CAPACITY_MIN && self.exact.len() < capacity / 4 {
                self.exact.shrink_to(capacity / 2);
            }
        }
        Some(removed)
    }
}

impl<K: Copy + Eq + Hash, V> Default for SubscriptionTrie<K, V> {
    fn default() -> Self {
        SubscriptionTrie::new()
    }
}

impl<K, V> fmt::Debug for SubscriptionTrie<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SubscriptionTrie")
            .field("len", &self.len)
            .field("exact_filters", &self.exact.len())
            .field("wildcard", &self.wildcard)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(text: &str) -> TopicFilter {
        TopicFilter::try_from(text).expect("valid filter")
    }

    fn matches(trie: &SubscriptionTrie<u32, u32>, topic: &str) -> Vec<(u32, u32)> {
        let mut hits = Vec::new();
        trie.for_each_match(topic, |key, value| hits.push((*key, *value)));
        hits.sort_unstable();
        hits
    }

    #[test]
    fn exact_filters_take_no_nodes() {
        let mut trie = SubscriptionTrie::new();
        assert_eq!(trie.insert(&filter("a/b"), 1, 10), None);
        assert_eq!(trie.insert(&filter("a/b"), 2, 20), None);
        assert_eq!(trie.insert(&filter("$SYS/x"), 1, 30), None);
        assert_eq!(trie.node_count(), 2, "only the wildcard trie's roots");
        assert_eq!(trie.interned_levels(), 0);
        assert_eq!(matches(&trie, "a/b"), [(1, 10), (2, 20)]);
        assert_eq!(matches(&trie, "$SYS/x"), [(1, 30)]);
        assert_eq!(matches(&trie, "a/b/c"), []);

        trie.insert(&filter("a/+"), 1, 40);
        assert_eq!(matches(&trie, "a/b"), [(1, 10), (1, 40), (2, 20)]);
        assert_eq!(trie.len(), 4);
        assert_eq!(trie.insert(&filter("a/b"), 1, 11), Some(10), "replaces");
        assert_eq!(trie.get(&filter("a/b"), &1), Some(&11));
        assert_eq!(trie.get(&filter("a/+"), &1), Some(&40));
        assert_eq!(trie.remove(&filter("a/b"), &3), None, "another key");
        assert_eq!(trie.remove(&filter("a/c"), &1), None, "another filter");
        assert_eq!(trie.remove(&filter("a/b"), &1), Some(11));
        assert_eq!(trie.remove(&filter("a/b"), &2), Some(20));
        assert_eq!(trie.exact.len(), 1, "`a/b` is gone, `$SYS/x` stays");
        assert_eq!(trie.len(), 2);
    }

    #[test]
    fn exact_map_shrinks_as_filters_go() {
        let mut trie = SubscriptionTrie::new();
        let filters: Vec<_> = (0..4096).map(|n| filter(&format!("d/{n}"))).collect();
        for (key, f) in (0..).zip(&filters) {
            trie.insert(f, key, key);
        }
        let full = trie.exact.capacity();
        for (key, f) in (0..).zip(&filters).skip(16) {
            assert_eq!(trie.remove(f, &key), Some(key));
        }
        assert!(
            trie.exact.capacity() <= full / 8,
            "{full} -> {}",
            trie.exact.capacity()
        );
        assert_eq!(matches(&trie, "d/15"), [(15, 15)]);
        assert_eq!(trie.len(), 16);
    }
}
