//! [`RetainedStore`]: the last retained message of each topic, found by a subscription's filter.
//!
//! The mirror image of the subscription trie: the stored keys are topic names and the query is
//! a filter, so the tree is one of topic levels and the walk branches on the filter's wildcards.
//! `+` visits every child, `#` a whole subtree, a literal level one child, so a SUBSCRIBE
//! touches only the branches that can match. Nodes are pruned when their last message goes.
//!
//! Recursion here is bounded: a stored topic has at most [`super::TOPIC_LEVELS_MAX`] levels,
//! so no walk goes deeper than that, whatever the query.

use ahash::AHashMap;

use super::{FilterLevel, FilterLevels, Levels, TopicFilter, TopicName};

/// The order of retained updates, the same on every shard: a Lamport clock, then the shard
/// that stamped the update to break ties. Two shards storing the same topic at the same moment
/// each apply both updates, in whatever order their rings deliver them; comparing stamps makes
/// every copy of the store keep the same one, the later in this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct RetainStamp {
    pub clock: u64,
    pub shard: u16,
}

/// Topic -> retained message `V` (the shard's stored PUBLISH). Holds at most one per topic:
/// a new retained message replaces the old one ([MQTT-3.3.1-5] in 5.0).
pub struct RetainedStore<V> {
    /// Stands for the empty topic, which is invalid, so it never holds a message itself.
    root: Node<V>,
    /// Stored messages.
    len: usize,
}

/// One topic level.
struct Node<V> {
    /// Level text -> the node one level deeper. Plain strings rather than interned ids: a
    /// SUBSCRIBE's `+` iterates these, and this store is touched per SUBSCRIBE, not per PUBLISH.
    children: AHashMap<Box<str>, Node<V>>,
    /// The retained message of the topic that ends here, with that topic for the caller.
    message: Option<(TopicName, V)>,
}

impl<V> RetainedStore<V> {
    pub fn new() -> Self {
        RetainedStore {
            root: Node::default(),
            len: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Stores `value` as `topic`'s retained message, returning the one it replaces.
    pub fn insert(&mut self, topic: TopicName, value: V) -> Option<V> {
        let mut node = &mut self.root;
        for level in topic.levels() {
            if !node.children.contains_key(level) {
                node.children.insert(Box::from(level), Node::default());
            }
            node = node
                .children
                .get_mut(level)
                .expect("invariant: inserted just above");
        }
        let previous = node.message.replace((topic, value)).map(|(_, value)| value);
        if previous.is_none() {
            self.len += 1;
        }
        previous
    }

    /// Removes `topic`'s retained message (a retained PUBLISH with an empty payload does this:
    /// [MQTT-3.3.1-6] in 5.0, [MQTT-3.3.1-10] in 3.1.1), pruning levels no other topic needs.
    pub fn remove(&mut self, topic: &str) -> Option<V> {
        let removed = remove_at(&mut self.root, &mut Levels::new(topic))?;
        self.len -= 1;
        Some(removed)
    }

    pub fn get(&self, topic: &str) -> Option<&V> {
        let mut node = &self.root;
        for level in Levels::new(topic) {
            node = node.children.get(level)?;
        }
        node.message.as_ref().map(|(_, value)| value)
    }

    /// Calls `f` for each retained message whose topic `filter` matches, in no given order.
    /// A filter that starts with a wildcard skips the `$` topics [MQTT-4.7.2-1].
    pub fn for_each_match(&self, filter: &TopicFilter, mut f: impl FnMut(&TopicName, &V)) {
        match_at(&self.root, filter.levels(), true, &mut f);
    }

    /// Calls `f` for every retained message, `$` topics included; for persistence and expiry.
    pub fn for_each(&self, mut f: impl FnMut(&TopicName, &V)) {
        visit_subtree(&self.root, &mut f);
    }
}

impl<V> Node<V> {
    fn is_empty(&self) -> bool {
        self.message.is_none() && self.children.is_empty()
    }

    fn visit_message(&self, f: &mut impl FnMut(&TopicName, &V)) {
        if let Some((topic, value)) = &self.message {
            f(topic, value);
        }
    }

    /// Children a filter level may descend into: at the root a wildcard must not reach the
    /// `$` topics [MQTT-4.7.2-1].
    fn wildcard_children(&self, at_root: bool) -> impl Iterator<Item = &Node<V>> {
        self.children
            .iter()
            .filter(move |(level, _)| !(at_root && level.starts_with('$')))
            .map(|(_, child)| child)
    }
}

impl<V> Default for Node<V> {
    fn default() -> Self {
        Node {
            children: AHashMap::new(),
            message: None,
        }
    }
}

impl<V> Default for RetainedStore<V> {
    fn default() -> Self {
        RetainedStore::new()
    }
}

impl<V> std::fmt::Debug for RetainedStore<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RetainedStore")
            .field("len", &self.len)
            .finish()
    }
}

fn remove_at<'a, V>(node: &mut Node<V>, levels: &mut impl Iterator<Item = &'a str>) -> Option<V> {
    let Some(level) = levels.next() else {
        return node.message.take().map(|(_, value)| value);
    };
    let child = node.children.get_mut(level)?;
    let removed = remove_at(child, levels)?;
    if child.is_empty() {
        node.children.remove(level);
    }
    Some(removed)
}

/// Visits the messages under `node` that the rest of a filter, `levels`, matches.
fn match_at<V>(
    node: &Node<V>,
    mut levels: FilterLevels<'_>,
    at_root: bool,
    f: &mut impl FnMut(&TopicName, &V),
) {
    let Some(level) = levels.next() else {
        node.visit_message(f);
        return;
    };
    match level {
        FilterLevel::Literal(text) => {
            if let Some(child) = node.children.get(text) {
                match_at(child, levels, false, f);
            }
        }
        FilterLevel::SingleLevelWildcard => {
            for child in node.wildcard_children(at_root) {
                match_at(child, levels.clone(), false, f);
            }
        }
        // `#` matches the parent level too: `sport/#` matches `sport` (§4.7.1.2).
        FilterLevel::MultiLevelWildcard => {
            node.visit_message(f);
            for child in node.wildcard_children(at_root) {
                visit_subtree(child, f);
            }
        }
    }
}

fn visit_subtree<V>(node: &Node<V>, f: &mut impl FnMut(&TopicName, &V)) {
    node.visit_message(f);
    for child in node.children.values() {
        visit_subtree(child, f);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic(text: &str) -> TopicName {
        TopicName::try_from(text).expect("valid topic")
    }

    #[test]
    fn remove_prunes_and_counts() {
        let mut store = RetainedStore::new();
        assert_eq!(store.insert(topic("a/b/c"), 1), None);
        assert_eq!(store.insert(topic("a"), 2), None);
        assert_eq!(store.insert(topic("a"), 3), Some(2));
        assert_eq!(store.len(), 2);
        assert_eq!(store.remove("a/b"), None);
        assert_eq!(store.remove("a/b/c"), Some(1));
        assert!(store.root.children["a"].children.is_empty(), "`a/b` pruned");
        assert_eq!(store.get("a"), Some(&3));
        assert_eq!(store.remove("a"), Some(3));
        assert!(store.root.is_empty());
        assert!(store.is_empty());
    }
}
