//! [`TopicFilter`]: the validated filter of a SUBSCRIBE or UNSUBSCRIBE, and the plain matcher
//! that the indexes are checked against.

use std::fmt;

use crate::codec::ByteStr;

use super::name::{check_common, Levels};
use super::{TopicError, TopicName, MULTI_LEVEL_WILDCARD, SINGLE_LEVEL_WILDCARD};

/// A topic filter: the [`TopicName`] rules except that `+` may be a whole level and `#` a whole
/// last level. `$share/...` is an ordinary filter here; [`super::SubscriptionFilter`] is the
/// type that gives it meaning.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicFilter {
    text: ByteStr,
    /// Cached because the trie and the session ask on every SUBSCRIBE.
    has_wildcards: bool,
}

/// One level of a filter, with the wildcards already told apart from literal text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterLevel<'a> {
    /// Matches exactly this text; may be empty.
    Literal(&'a str),
    /// `+`: matches any one level, including an empty one.
    SingleLevelWildcard,
    /// `#`: matches the parent level and any number of levels below it; always last.
    MultiLevelWildcard,
}

/// The levels of a filter as [`FilterLevel`]s.
#[derive(Debug, Clone)]
pub struct FilterLevels<'a>(Levels<'a>);

impl TopicFilter {
    /// Checks the §4.7 rules for a topic filter.
    pub fn new(text: ByteStr) -> Result<TopicFilter, TopicError> {
        let scan = check_common(text.as_str())?;
        if scan.has_wildcard {
            check_wildcards(text.as_str())?;
        }
        Ok(TopicFilter {
            text,
            has_wildcards: scan.has_wildcard,
        })
    }

    /// For filters fixed in the source: no copy.
    pub fn from_static(text: &'static str) -> Result<TopicFilter, TopicError> {
        TopicFilter::new(ByteStr::from_static(text))
    }

    pub fn as_str(&self) -> &str {
        self.text.as_str()
    }

    pub fn as_byte_str(&self) -> &ByteStr {
        &self.text
    }

    pub fn into_byte_str(self) -> ByteStr {
        self.text
    }

    /// Whether the filter has a `+` or `#` level. A filter without one matches exactly the
    /// topic name spelled the same, so a caller may look it up directly.
    pub fn has_wildcards(&self) -> bool {
        self.has_wildcards
    }

    /// Whether the first level starts with `$`, so the filter can only match `$` topics.
    pub fn is_sys(&self) -> bool {
        self.as_str().starts_with('$')
    }

    /// Whether the first level is a wildcard, so the filter never matches a `$` topic
    /// [MQTT-4.7.2-1].
    pub fn starts_with_wildcard(&self) -> bool {
        self.as_str().starts_with(['+', '#'])
    }

    pub fn levels(&self) -> FilterLevels<'_> {
        FilterLevels(Levels::new(self.as_str()))
    }

    /// The reference matcher: one pass over both strings, no index. The trie and the retained
    /// store must agree with it, and their property tests check that they do.
    pub fn matches(&self, topic: &TopicName) -> bool {
        if topic.is_sys() && self.starts_with_wildcard() {
            return false; // [MQTT-4.7.2-1]
        }
        let mut topic_levels = topic.levels();
        for level in self.levels() {
            let matched = match level {
                // `#` also matches the parent level: `sport/#` matches `sport` (§4.7.1.2).
                FilterLevel::MultiLevelWildcard => return true,
                FilterLevel::SingleLevelWildcard => topic_levels.next().is_some(),
                FilterLevel::Literal(text) => topic_levels.next() == Some(text),
            };
            if !matched {
                return false;
            }
        }
        topic_levels.next().is_none()
    }
}

impl<'a> FilterLevel<'a> {
    pub fn parse(level: &'a str) -> FilterLevel<'a> {
        match level {
            SINGLE_LEVEL_WILDCARD => FilterLevel::SingleLevelWildcard,
            MULTI_LEVEL_WILDCARD => FilterLevel::MultiLevelWildcard,
            text => FilterLevel::Literal(text),
        }
    }

    pub fn as_str(&self) -> &'a str {
        match self {
            FilterLevel::Literal(text) => text,
            FilterLevel::SingleLevelWildcard => SINGLE_LEVEL_WILDCARD,
            FilterLevel::MultiLevelWildcard => MULTI_LEVEL_WILDCARD,
        }
    }
}

impl<'a> Iterator for FilterLevels<'a> {
    type Item = FilterLevel<'a>;

    fn next(&mut self) -> Option<FilterLevel<'a>> {
        self.0.next().map(FilterLevel::parse)
    }
}

impl TryFrom<&str> for TopicFilter {
    type Error = TopicError;

    /// Copies `text`; prefer [`TopicFilter::new`] with the wire `ByteStr`.
    fn try_from(text: &str) -> Result<TopicFilter, TopicError> {
        TopicFilter::new(ByteStr::from(text))
    }
}

impl TryFrom<ByteStr> for TopicFilter {
    type Error = TopicError;

    fn try_from(text: ByteStr) -> Result<TopicFilter, TopicError> {
        TopicFilter::new(text)
    }
}

impl AsRef<str> for TopicFilter {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Debug for TopicFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for TopicFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Runs only when the filter has a `+` or `#` somewhere.
fn check_wildcards(text: &str) -> Result<(), TopicError> {
    let mut levels = Levels::new(text).peekable();
    while let Some(level) = levels.next() {
        match level {
            MULTI_LEVEL_WILDCARD if levels.peek().is_some() => {
                return Err(TopicError::MisplacedMultiLevelWildcard); // [MQTT-4.7.1-2]
            }
            MULTI_LEVEL_WILDCARD | SINGLE_LEVEL_WILDCARD => {}
            _ if level.contains('#') => {
                return Err(TopicError::MisplacedMultiLevelWildcard); // [MQTT-4.7.1-2]
            }
            _ if level.contains('+') => {
                return Err(TopicError::MisplacedSingleLevelWildcard); // [MQTT-4.7.1-3]
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(text: &str) -> TopicFilter {
        TopicFilter::try_from(text).expect("valid filter")
    }

    #[test]
    fn levels_tell_wildcards_from_text() {
        let parsed = filter("a/+//#");
        let levels: Vec<_> = parsed.levels().collect();
        assert_eq!(
            levels,
            [
                FilterLevel::Literal("a"),
                FilterLevel::SingleLevelWildcard,
                FilterLevel::Literal(""),
                FilterLevel::MultiLevelWildcard,
            ]
        );
    }

    #[test]
    fn wildcard_flags() {
        assert!(!filter("a/b").has_wildcards());
        assert!(filter("a/+").has_wildcards());
        assert!(filter("#").starts_with_wildcard());
        assert!(filter("$SYS/#").is_sys());
        assert!(!filter("$SYS/#").starts_with_wildcard());
    }
}
