//! [`WildcardTrie`]: the filters with a `+` or `#`, matched by a published topic level by level.
//!
//! The FlashMQ / mosquitto shape: a node per filter level, each with literal children, one `+`
//! child and one `#` slot. `#` is always a filter's last level [MQTT-4.7.1-2], so its slot is a
//! subscriber list rather than a node. Filters whose first level starts with `$` live under a
//! root of their own, so a `$SYS/...` topic never visits a `+` or `#` at the top level
//! [MQTT-4.7.2-1], and an ordinary topic never visits the `$` filters.
//!
//! Level text is interned (see `intern.rs`), nodes live in a slab and are pruned, and their
//! levels released, as soon as no subscription needs them: the trie's size follows the live
//! subscriptions, which the caller bounds.
//!
//! The walk works for any filter, but [`super::SubscriptionTrie`] hands it only the ones with
//! wildcards: a filter without any matches one topic, and a hash map finds that in one lookup.

use std::fmt;
use std::hash::Hash;

use slab::Slab;
use smallvec::SmallVec;

use super::children::Children;
use super::intern::{Interner, LevelId};
use super::subscribers::Subscribers;
use super::{FilterLevel, Levels, TopicFilter, TOPIC_LEVELS_MAX};

/// Inline capacity of the matcher's level and stack buffers. The depth-first walk holds at
/// most one pending sibling per level plus two at the deepest, so a topic of up to
/// [`TOPIC_LEVELS_MAX`] levels never makes [`WildcardTrie::for_each_match`] allocate.
const MATCH_INLINE: usize = TOPIC_LEVELS_MAX + 1;

/// Inline capacity of the path `remove` keeps for pruning; removal is not the hot path, so a
/// deep filter may spill to the heap.
const PATH_INLINE: usize = 16;

/// Topic filters to subscribers, walked level by level; see the module doc.
pub(crate) struct WildcardTrie<K, V> {
    nodes: Slab<Node<K, V>>,
    levels: Interner,
    /// Root of the filters whose first level does not start with `$`.
    root: NodeId,
    /// Root of the filters whose first level starts with `$`; only `$` topics look here.
    sys_root: NodeId,
}

/// A node's place in the slab.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct NodeId(u32);

/// The subscriptions whose filter reaches this node, and the ways to go one level deeper.
struct Node<K, V> {
    /// Children reached by a literal level.
    literal: Children<NodeId>,
    /// The child reached by `+`.
    single: Option<NodeId>,
    /// Subscribers of this node's filter followed by `/#`.
    multi: Subscribers<K, V>,
    /// Subscribers of the filter that ends at this node.
    end: Subscribers<K, V>,
}

/// How a parent reaches a child; `remove` remembers it to unlink a pruned node.
#[derive(Debug, Clone, Copy)]
enum Edge<'a> {
    Literal(LevelId, &'a str),
    Single,
}

/// Which of a node's subscriber lists a filter ends in.
#[derive(Debug, Clone, Copy)]
enum Slot {
    End,
    Multi,
}

/// One pending step of the matcher's walk: `node`, reached by matching `depth` topic levels.
#[derive(Debug, Clone, Copy)]
struct Visit {
    node: NodeId,
    depth: usize,
}

/// One level of the topic being matched, and its interned id once the walk has asked for it.
#[derive(Debug, Clone, Copy)]
struct TopicLevel<'t> {
    text: &'t str,
    /// `None` until a node with literal children is reached at this depth; then the level's
    /// id, or `Some(None)` if no filter uses the text, so only `+` and `#` can match it.
    id: Option<Option<LevelId>>,
}

impl<K: Copy + Eq + Hash, V> WildcardTrie<K, V> {
    pub(crate) fn new() -> Self {
        let mut nodes = Slab::new();
        let root = NodeId::of(nodes.insert(Node::default()));
        let sys_root = NodeId::of(nodes.insert(Node::default()));
        WildcardTrie {
            nodes,
            levels: Interner::default(),
            root,
            sys_root,
        }
    }

    /// How many distinct literal levels the stored filters use.
    pub(crate) fn interned_levels(&self) -> usize {
        self.levels.len()
    }

    /// How many nodes the trie holds, including its two roots.
    pub(crate) fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// Subscribes `key` to `filter`, or replaces its value and returns the old one.
    pub(crate) fn insert(&mut self, filter: &TopicFilter, key: K, value: V) -> Option<V> {
        let mut node = self.root_for(filter);
        let mut slot = Slot::End;
        for level in filter.levels() {
            node = match level {
                FilterLevel::MultiLevelWildcard => {
                    slot = Slot::Multi;
                    break;
                }
                FilterLevel::SingleLevelWildcard => self.single_child_or_insert(node),
                FilterLevel::Literal(text) => self.literal_child_or_insert(node, text),
            };
        }
        self.node_mut(node).slot_mut(slot).insert(key, value)
    }

    /// Unsubscribes `key` from `filter`, pruning the nodes and levels no longer needed.
    pub(crate) fn remove(&mut self, filter: &TopicFilter, key: &K) -> Option<V> {
        let mut path: SmallVec<[(NodeId, Edge<'_>); PATH_INLINE]> = SmallVec::new();
        let (node, slot) = self.find(filter, |parent, edge| path.push((parent, edge)))?;
        let removed = self.node_mut(node).slot_mut(slot).remove(key)?;
        self.prune(node, &path);
        Some(removed)
    }

    pub(crate) fn get(&self, filter: &TopicFilter, key: &K) -> Option<&V> {
        let (node, slot) = self.find(filter, |_, _| {})?;
        self.node(node).slot(slot).get(key)
    }

    /// Calls `f` once per (subscriber, value) whose filter matches `topic`.
    pub(crate) fn for_each_match(&self, topic: &str, f: &mut impl FnMut(&K, &V)) {
        // A `$` topic only meets filters that spell out its first level [MQTT-4.7.2-1].
        let root = if topic.starts_with('$') {
            self.sys_root
        } else {
            self.root
        };
        if self.node(root).is_empty() {
            return;
        }
        // Built in place: collecting into a `SmallVec` returns it by value, copying all of its
        // inline buffer (3 KiB) on every PUBLISH.
        let mut levels: SmallVec<[TopicLevel<'_>; MATCH_INLINE]> = SmallVec::new();
        levels.extend(Levels::new(topic).map(|text| TopicLevel { text, id: None }));
        let mut stack: SmallVec<[Visit; MATCH_INLINE]> = SmallVec::new();
        stack.push(Visit {
            node: root,
            depth: 0,
        });
        while let Some(Visit { node, depth }) = stack.pop() {
            let node = self.node(node);
            // `#` matches whatever is left, even nothing: `sport/#` matches `sport` (§4.7.1.2).
            node.multi.iter().for_each(|(key, value)| f(key, value));
            let Some(level) = levels.get_mut(depth) else {
                node.end.iter().for_each(|(key, value)| f(key, value));
                continue;
            };
            let depth = depth + 1;
            if let Some(child) = node.single {
                stack.push(Visit { node: child, depth });
            }
            if node.literal.is_empty() {
                continue;
            }
            // Looked up on first need and remembered: `+` branches that reach this depth again
            // do not hash the level twice, and a level where no visited node has literal
            // children is never hashed at all.
            let id = *level.id.get_or_insert_with(|| self.levels.get(level.text));
            if let Some(child) = id.and_then(|id| node.literal.get(id)) {
                stack.push(Visit { node: child, depth });
            }
        }
    }

    /// Walks `filter`'s path without creating anything, telling `on_step` each edge taken.
    fn find<'f>(
        &self,
        filter: &'f TopicFilter,
        mut on_step: impl FnMut(NodeId, Edge<'f>),
    ) -> Option<(NodeId, Slot)> {
        let mut node = self.root_for(filter);
        for level in filter.levels() {
            let (edge, child) = match level {
                FilterLevel::MultiLevelWildcard => return Some((node, Slot::Multi)),
                FilterLevel::SingleLevelWildcard => (Edge::Single, self.node(node).single?),
                FilterLevel::Literal(text) => {
                    let id = self.levels.get(text)?;
                    (Edge::Literal(id, text), self.node(node).literal.get(id)?)
                }
            };
            on_step(node, edge);
            node = child;
        }
        Some((node, Slot::End))
    }

    /// Frees `node` and its ancestors along `path` for as long as they hold nothing.
    fn prune(&mut self, mut node: NodeId, path: &[(NodeId, Edge<'_>)]) {
        for &(parent, edge) in path.iter().rev() {
            if !self.node(node).is_empty() {
                return;
            }
            self.nodes.remove(node.index());
            let parent_node = &mut self.nodes[parent.index()];
            match edge {
                Edge::Single => parent_node.single = None,
                Edge::Literal(id, text) => {
                    parent_node.literal.remove(id);
                    self.levels.release(text);
                }
            }
            node = parent;
        }
    }

    fn single_child_or_insert(&mut self, parent: NodeId) -> NodeId {
        if let Some(child) = self.node(parent).single {
            return child;
        }
        let child = NodeId::of(self.nodes.insert(Node::default()));
        self.node_mut(parent).single = Some(child);
        child
    }

    fn literal_child_or_insert(&mut self, parent: NodeId, text: &str) -> NodeId {
        let existing = self
            .levels
            .get(text)
            .and_then(|id| self.node(parent).literal.get(id));
        if let Some(child) = existing {
            return child;
        }
        let id = self.levels.acquire(text);
        let child = NodeId::of(self.nodes.insert(Node::default()));
        self.node_mut(parent).literal.insert(id, child);
        child
    }

    fn root_for(&self, filter: &TopicFilter) -> NodeId {
        if filter.is_sys() {
            self.sys_root
        } else {
            self.root
        }
    }

    fn node(&self, id: NodeId) -> &Node<K, V> {
        &self.nodes[id.index()]
    }

    fn node_mut(&mut self, id: NodeId) -> &mut Node<K, V> {
        &mut self.nodes[id.index()]
    }
}

impl NodeId {
    fn of(slab_key: usize) -> NodeId {
        // Each node holds at least one subscription or child, and 2^32 of them would not fit
        // in memory long before this fails.
        NodeId(u32::try_from(slab_key).expect("invariant: fewer than 2^32 trie nodes"))
    }

    fn index(self) -> usize {
        self.0 as usize
    }
}

impl<K: Copy + Eq + Hash, V> Node<K, V> {
    fn is_empty(&self) -> bool {
        self.literal.is_empty()
            && self.single.is_none()
            && self.multi.is_empty()
            && self.end.is_empty()
    }

    fn slot(&self, slot: Slot) -> &Subscribers<K, V> {
        match slot {
            Slot::End => &self.end,
            Slot::Multi => &self.multi,
        }
    }

    fn slot_mut(&mut self, slot: Slot) -> &mut Subscribers<K, V> {
        match slot {
            Slot::End => &mut self.end,
            Slot::Multi => &mut self.multi,
        }
    }
}

impl<K, V> Default for Node<K, V> {
    fn default() -> Self {
        Node {
            literal: Children::default(),
            single: None,
            multi: Subscribers::default(),
            end: Subscribers::default(),
        }
    }
}

impl<K, V> fmt::Debug for WildcardTrie<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WildcardTrie")
            .field("nodes", &self.nodes.len())
            .field("interned_levels", &self.levels.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(text: &str) -> TopicFilter {
        TopicFilter::try_from(text).expect("valid filter")
    }

    fn matches(trie: &WildcardTrie<u32, ()>, topic: &str) -> Vec<u32> {
        let mut keys = Vec::new();
        trie.for_each_match(topic, &mut |key, ()| keys.push(*key));
        keys.sort_unstable();
        keys
    }

    #[test]
    fn sys_filters_live_under_their_own_root() {
        let mut trie = WildcardTrie::new();
        trie.insert(&filter("$SYS/#"), 1, ());
        trie.insert(&filter("#"), 2, ());
        trie.insert(&filter("+/uptime"), 3, ());
        assert!(trie.node(trie.sys_root).multi.is_empty());
        assert!(trie.node(trie.sys_root).single.is_none());
        assert_eq!(matches(&trie, "$SYS/uptime"), [1]);
        assert_eq!(matches(&trie, "SYS/uptime"), [2, 3]);
    }

    #[test]
    fn removing_prunes_only_what_is_unused() {
        let mut trie = WildcardTrie::new();
        trie.insert(&filter("a/b/c"), 1, ());
        trie.insert(&filter("a/+/#"), 1, ());
        assert_eq!(
            trie.node_count(),
            2 + 4,
            "a, b, c and +; `#` is a slot, not a node"
        );
        assert_eq!(trie.remove(&filter("a/b/c"), &1), Some(()));
        assert_eq!(trie.node_count(), 2 + 2, "`a` and `+` stay for `a/+/#`");
        assert_eq!(trie.interned_levels(), 1);
        assert_eq!(trie.remove(&filter("a/+/#"), &2), None, "another key");
        assert_eq!(trie.remove(&filter("a/+/#"), &1), Some(()));
        assert_eq!(trie.node_count(), 2);
        assert_eq!(trie.interned_levels(), 0);
    }

    #[test]
    fn deepest_topic_matches() {
        let deepest = vec!["+"; TOPIC_LEVELS_MAX].join("/");
        let mut trie = WildcardTrie::new();
        trie.insert(&filter(&deepest), 7, ());
        let topic = vec!["x"; TOPIC_LEVELS_MAX].join("/");
        assert_eq!(matches(&trie, &topic), [7]);
    }

    #[test]
    fn plus_branches_meet_again_at_a_literal_level() {
        let mut trie = WildcardTrie::new();
        trie.insert(&filter("a/+/c"), 1, ());
        trie.insert(&filter("+/+/c"), 2, ());
        // No node at depth 1 has literal children, so `x` is never looked up; both branches
        // reach a literal `c` at depth 2 and share its one lookup.
        assert_eq!(matches(&trie, "a/x/c"), [1, 2]);
        assert_eq!(matches(&trie, "b/x/c"), [2]);
        assert_eq!(matches(&trie, "a/x/d"), []);
    }
}
