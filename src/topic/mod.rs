//! Topic names, topic filters, the subscription trie and the retained-message store.
//!
//! Owns: every rule of MQTT §4.7 (topic names, filters, wildcards, `$`-topics) and the
//! `$share/{ShareName}/{filter}` syntax of MQTT 5.0 §4.8.2, plus the two indexes a shard needs
//! to route a PUBLISH: [`SubscriptionTrie`] (filter -> subscribers, matched by a topic) and
//! [`RetainedStore`] (topic -> retained message, matched by a filter).
//!
//! Does not own: who a subscriber is, what its options mean, shared-subscription load balancing,
//! or any limit on how many subscriptions a client may hold. Those are `session` and `shard`,
//! which pick the key `K` and value `V` the trie stores.
//!
//! Driven by plain method calls from one shard's thread: the types here hold no locks, do no
//! I/O and import only `std`, `bytes`, `ahash`, `smallvec`, `slab` and [`crate::codec`].
//!
//! # Layout
//!
//! | file | owns |
//! |---|---|
//! | `name.rs` | [`TopicName`]: what a PUBLISH may name |
//! | `filter.rs` | [`TopicFilter`] and the reference matcher [`TopicFilter::matches`] |
//! | `shared.rs` | [`SubscriptionFilter`]: `$share/{ShareName}/{filter}` |
//! | `children.rs` | one wildcard-trie node's literal children |
//! | `intern.rs` | level strings interned to `LevelId`s, reference counted |
//! | `subscribers.rs` | one filter's subscriber list |
//! | `trie.rs` | [`SubscriptionTrie`]: exact filters in a hash map, the rest in `wildcard.rs` |
//! | `wildcard.rs` | the trie of filters with `+` or `#`, walked level by level |
//! | `retained.rs` | [`RetainedStore`] |

mod children;
mod error;
mod filter;
mod intern;
mod name;
mod retained;
mod shared;
mod subscribers;
mod trie;
mod wildcard;

pub use error::TopicError;
pub use filter::{FilterLevel, FilterLevels, TopicFilter};
pub use name::{Levels, TopicName};
pub use retained::{RetainStamp, RetainedStore};
pub use shared::SubscriptionFilter;
pub use trie::SubscriptionTrie;

/// The most levels a topic name or filter may have; more is [`TopicError::TooManyLevels`].
///
/// The spec sets no such limit, but matching walks one level per step and keeps an explicit
/// stack sized by this constant, so bounding it bounds both the work per PUBLISH and the stack
/// that [`SubscriptionTrie::for_each_match`] keeps without allocating. 128 is far deeper than
/// the handful of levels real hierarchies use, yet small enough that the matcher's inline
/// buffers stay around 5 KiB of stack.
pub const TOPIC_LEVELS_MAX: usize = 128;

/// The longest topic name or filter in bytes: a UTF-8 string on the wire has a 16-bit length
/// prefix [MQTT-4.7.3-3]. Checked again here because `ByteStr` can also come from `&str`.
pub const TOPIC_LEN_MAX: usize = 65_535;

/// Whether `text` contains a control character, U+0001..U+001F or U+007F..U+009F: code points
/// a UTF-8 string SHOULD NOT contain (3.1.1 section 1.5.3, 5.0 section 1.5.4), which the
/// receiver may refuse. U+0000 is not counted: it is never valid, and the codec refuses it.
/// Not part of [`TopicName::new`]: whether to refuse them is the server's choice, made by the
/// session (`protocol.allow_control_characters`), and it applies to client ids and user names
/// as well.
///
/// A byte scan, not a `chars()` walk (it runs on every topic a client publishes): U+0001..U+001F
/// and U+007F are single bytes; U+0080..U+009F are 0xC2 followed by 0x80..=0x9F, and 0xC2 is
/// never a continuation byte, so a match is always a whole character.
pub fn has_control_characters(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.iter().enumerate().any(|(i, &b)| {
        matches!(b, 0x01..=0x1F | 0x7F)
            || (b == 0xC2 && matches!(bytes.get(i + 1), Some(0x80..=0x9F)))
    })
}

/// Separates the levels of a topic name or filter (§4.7.1.1).
pub const LEVEL_SEPARATOR: char = '/';

/// The single-level wildcard, as a whole level (§4.7.1.3).
pub const SINGLE_LEVEL_WILDCARD: &str = "+";

/// The multi-level wildcard, as a whole and last level (§4.7.1.2).
pub const MULTI_LEVEL_WILDCARD: &str = "#";

/// The first level of every shared-subscription filter (MQTT 5.0 §4.8.2).
pub const SHARED_PREFIX: &str = "$share";
