//! The three questions [`super::Acl`] asks of filters, answered the way mosquitto 2.0 answers
//! them: does a rule's filter match a topic name (per message, so without allocating and over
//! a filter that may be assembled from pattern pieces on the fly), and, at SUBSCRIBE, does a
//! rule's filter meet or cover a subscription's filter.
//!
//! Owns no state. The `$` rule [MQTT-4.7.2-1] is applied as mosquitto's
//! `mosquitto_topic_matches_sub` does: a topic starting with `$` is matched only by a filter
//! starting with `$`, and the other way round. For a valid filter that is the spec's rule, since
//! a filter whose first level is literal text only matches topics with that first level.

use crate::topic::{LEVEL_SEPARATOR, MULTI_LEVEL_WILDCARD, SINGLE_LEVEL_WILDCARD};

/// The level separator as the byte the per-message matcher compares.
const SEPARATOR: u8 = LEVEL_SEPARATOR as u8;
const _: () = assert!(LEVEL_SEPARATOR.is_ascii());
/// The wildcards as bytes. In a validated filter each is a whole level, and pattern pieces
/// substituted into a filter never contain one (the caller refuses such clients first), so
/// meeting one of these bytes means meeting a whole wildcard level.
const SINGLE: u8 = b'+';
const MULTI: u8 = b'#';
/// A topic starting with this is a `$` topic [MQTT-4.7.2-1].
const DOLLAR: u8 = b'$';

/// Whether `topic` may be matched at all: mosquitto refuses to match an empty topic or one
/// containing a wildcard character (`MOSQ_ERR_INVAL`, which its ACL check treats as no
/// match), so such a topic is refused by every rule.
pub(super) fn is_topic_name(topic: &str) -> bool {
    !topic.is_empty() && !topic.bytes().any(|b| b == SINGLE || b == MULTI)
}

/// Whether the filter spelled by `filter` (one byte at a time, possibly from several pieces)
/// matches `topic`, a valid topic name. `Clone` lets the matcher look ahead for `/#` without
/// buffering.
///
/// Byte at a time on purpose: most rules fail on their first bytes, and a variant comparing
/// each literal run as one slice (after finding where the run ends) measured 1.2 to 2.3 times
/// slower in `benches/acl.rs`.
pub(super) fn matches<I>(mut filter: I, topic: &[u8]) -> bool
where
    I: Iterator<Item = u8> + Clone,
{
    let (Some(first), Some(&topic_first)) = (filter.clone().next(), topic.first()) else {
        return false;
    };
    if (first == DOLLAR) != (topic_first == DOLLAR) {
        return false; // [MQTT-4.7.2-1]
    }
    let mut at = 0;
    while let Some(byte) = filter.next() {
        match byte {
            SINGLE => {
                while at < topic.len() && topic[at] != SEPARATOR {
                    at += 1;
                }
            }
            MULTI => return true,
            _ if topic.get(at) == Some(&byte) => at += 1,
            // `a/#` matches its parent `a` (§4.7.1.2), and so does `a/+/#` match `a/b`.
            SEPARATOR if at == topic.len() => return rest_is_multi(filter),
            _ => return false,
        }
    }
    at == topic.len()
}

/// Whether what is left of a filter is exactly `#`.
fn rest_is_multi(mut filter: impl Iterator<Item = u8>) -> bool {
    filter.next() == Some(MULTI) && filter.next().is_none()
}

/// Whether some topic name matches both filters. Exact for valid filters, so that a
/// subscription it calls unreadable really is.
pub(super) fn intersects(a: &str, b: &str) -> bool {
    if dollar_excludes(a, b) || dollar_excludes(b, a) {
        return false;
    }
    let (mut a, mut b) = (a.split(LEVEL_SEPARATOR), b.split(LEVEL_SEPARATOR));
    loop {
        match (a.next(), b.next()) {
            (None, None) => return true,
            // `#` matches any rest, including none: `x/#` meets `x` at the topic `x`.
            (Some(MULTI_LEVEL_WILDCARD), _) | (_, Some(MULTI_LEVEL_WILDCARD)) => return true,
            (None, Some(_)) | (Some(_), None) => return false,
            (Some(x), Some(y)) => {
                if !(x == SINGLE_LEVEL_WILDCARD || y == SINGLE_LEVEL_WILDCARD || x == y) {
                    return false;
                }
            }
        }
    }
}

/// Whether every topic name that `filter` matches is matched by `rule`. Exact for valid
/// filters, so that a subscription it calls fully readable really is.
pub(super) fn covers(rule: &str, filter: &str) -> bool {
    // `filter` matches `$` topics only when it starts with literal `$` text, and then a rule
    // starting with a wildcard matches none of them.
    if filter.starts_with(DOLLAR as char) && starts_with_wildcard(rule) {
        return false;
    }
    let (mut rule, mut filter) = (rule.split(LEVEL_SEPARATOR), filter.split(LEVEL_SEPARATOR));
    loop {
        match (rule.next(), filter.next()) {
            (Some(MULTI_LEVEL_WILDCARD), _) | (None, None) => return true,
            // The filter matches a deeper topic (or its own parent, for `#`) that the rule,
            // ending here without `#`, does not.
            (None, Some(_)) | (Some(_), None) => return false,
            (Some(_), Some(MULTI_LEVEL_WILDCARD)) => return false,
            (Some(r), Some(SINGLE_LEVEL_WILDCARD)) => {
                if r != SINGLE_LEVEL_WILDCARD {
                    return false;
                }
            }
            (Some(r), Some(f)) => {
                if r != SINGLE_LEVEL_WILDCARD && r != f {
                    return false;
                }
            }
        }
    }
}

/// Whether `wild` starts with a wildcard level while `dollar` starts with `$`: then no topic
/// matches both [MQTT-4.7.2-1].
fn dollar_excludes(wild: &str, dollar: &str) -> bool {
    starts_with_wildcard(wild) && dollar.starts_with(DOLLAR as char)
}

fn starts_with_wildcard(filter: &str) -> bool {
    filter.starts_with([SINGLE as char, MULTI as char])
}
