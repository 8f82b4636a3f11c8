//! [`SubscriptionFilter`]: what a SUBSCRIBE entry asks for once `$share/{ShareName}/` is split
//! off (MQTT 5.0 §4.8.2). Choosing which member of a share group gets a message is the shard's
//! job, not this module's.

use crate::codec::ByteStr;

use super::{TopicError, TopicFilter, LEVEL_SEPARATOR, SHARED_PREFIX};

/// A subscription's filter, and the share group it belongs to if it is a shared subscription.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SubscriptionFilter {
    /// The ShareName: non-empty, without `/`, `+` or `#`. Kept as a slice of the wire bytes.
    share_group: Option<ByteStr>,
    /// The filter that messages are matched against; for a shared subscription, the part after
    /// `$share/{ShareName}/`.
    filter: TopicFilter,
}

impl SubscriptionFilter {
    /// Splits off `$share/{ShareName}/` when the first level is exactly `$share`; any other
    /// text is an ordinary [`TopicFilter`]. Does not copy: both parts share `text`'s bytes.
    pub fn parse(text: ByteStr) -> Result<SubscriptionFilter, TopicError> {
        let Some(rest) = shared_rest(text.as_str()) else {
            let filter = TopicFilter::new(text)?;
            return Ok(SubscriptionFilter {
                share_group: None,
                filter,
            });
        };
        let rest_start = text.len() - rest.len();
        // The ShareName ends at the first `/`, so it cannot contain one [MQTT-4.8.2-2].
        let Some((share_name, filter)) = rest.split_once(LEVEL_SEPARATOR) else {
            return Err(if rest.is_empty() {
                TopicError::EmptyShareName // [MQTT-4.8.2-1]
            } else {
                TopicError::MissingSharedFilter // [MQTT-4.8.2-2]
            });
        };
        if share_name.is_empty() {
            return Err(TopicError::EmptyShareName); // [MQTT-4.8.2-1]
        }
        if share_name.contains(['+', '#']) {
            return Err(TopicError::InvalidShareName); // [MQTT-4.8.2-2]
        }
        if filter.is_empty() {
            return Err(TopicError::MissingSharedFilter); // [MQTT-4.8.2-2]
        }
        let share_end = rest_start + share_name.len();
        let share_group = slice(&text, rest_start, share_end);
        let filter = TopicFilter::new(slice(&text, share_end + 1, text.len()))?;
        Ok(SubscriptionFilter {
            share_group: Some(share_group),
            filter,
        })
    }

    /// A filter that is not shared.
    pub fn unshared(filter: TopicFilter) -> SubscriptionFilter {
        SubscriptionFilter {
            share_group: None,
            filter,
        }
    }

    /// The ShareName, if this is a shared subscription.
    pub fn share_group(&self) -> Option<&ByteStr> {
        self.share_group.as_ref()
    }

    pub fn is_shared(&self) -> bool {
        self.share_group.is_some()
    }

    /// The filter messages are matched against, without the `$share/{ShareName}/` prefix.
    pub fn filter(&self) -> &TopicFilter {
        &self.filter
    }

    pub fn into_parts(self) -> (Option<ByteStr>, TopicFilter) {
        (self.share_group, self.filter)
    }
}

impl From<TopicFilter> for SubscriptionFilter {
    fn from(filter: TopicFilter) -> SubscriptionFilter {
        SubscriptionFilter::unshared(filter)
    }
}

/// What follows `$share/`, or `None` when the first level is not exactly `$share`. A bare
/// `$share` is a shared subscription with nothing after it, so it yields `Some("")`.
fn shared_rest(text: &str) -> Option<&str> {
    let rest = text.strip_prefix(SHARED_PREFIX)?;
    if rest.is_empty() {
        return Some(rest);
    }
    rest.strip_prefix(LEVEL_SEPARATOR)
}

/// `text[start..end]` without copying. Both ends sit next to an ASCII `/` or at an end of the
/// string, so the slice is valid UTF-8 whatever the peer sent.
fn slice(text: &ByteStr, start: usize, end: usize) -> ByteStr {
    ByteStr::from_utf8(text.as_bytes().slice(start..end))
        .expect("invariant: slicing next to an ASCII '/' keeps UTF-8 valid")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_share_the_wire_bytes() {
        let text = ByteStr::from("$share/g/a/+");
        let parsed = SubscriptionFilter::parse(text.clone()).expect("valid");
        let group = parsed.share_group().expect("shared");
        let base = text.as_bytes().as_ptr() as usize;
        assert_eq!(group.as_bytes().as_ptr() as usize, base + "$share/".len());
        assert_eq!(
            parsed.filter().as_byte_str().as_bytes().as_ptr() as usize,
            base + 9
        );
    }
}
