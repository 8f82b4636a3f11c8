//! Why a topic name, topic filter or shared-subscription filter was refused.
//!
//! Every variant is a peer's mistake: the session turns it into a reason code (0x90 Topic Name
//! invalid, 0x8F Topic Filter invalid) or, in MQTT 3.1.1, a close.

use super::{TOPIC_LEN_MAX, TOPIC_LEVELS_MAX};

/// A rule of MQTT §4.7 or §4.8.2 that a topic name or filter broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    /// Topic names and filters are at least one character long [MQTT-4.7.3-1].
    #[error("a topic name or filter must be at least one character long")]
    Empty,
    /// Longer than [`TOPIC_LEN_MAX`] bytes [MQTT-4.7.3-3].
    #[error("a topic name or filter is {len_bytes} bytes long; the most is {TOPIC_LEN_MAX}")]
    TooLong { len_bytes: usize },
    /// Contains U+0000 [MQTT-4.7.3-2].
    #[error("a topic name or filter must not contain the null character")]
    NullCharacter,
    /// More than [`TOPIC_LEVELS_MAX`] levels: this broker's limit, not the spec's.
    #[error("a topic name or filter has {levels} levels; the most is {TOPIC_LEVELS_MAX}")]
    TooManyLevels { levels: usize },
    /// A topic name contains `+` or `#` [MQTT-3.3.2-2] [MQTT-4.7.1-1].
    #[error("a topic name must not contain the wildcard characters `+` or `#`")]
    WildcardInTopicName,
    /// `#` is not a whole level, or not the last one [MQTT-4.7.1-2].
    #[error("the multi-level wildcard `#` must be a whole level and the last one")]
    MisplacedMultiLevelWildcard,
    /// `+` is not a whole level [MQTT-4.7.1-3].
    #[error("the single-level wildcard `+` must be a whole level")]
    MisplacedSingleLevelWildcard,
    /// `$share/` is not followed by a ShareName of at least one character [MQTT-4.8.2-1].
    #[error("a shared subscription needs a ShareName of at least one character")]
    EmptyShareName,
    /// The ShareName contains `+` or `#` [MQTT-4.8.2-2].
    #[error("a ShareName must not contain `+` or `#`")]
    InvalidShareName,
    /// Contains U+0001..U+001F or U+007F..U+009F, which a string SHOULD NOT (5.0 section
    /// 1.5.4), while the server refuses them (`protocol.allow_control_characters` off). Returned
    /// only by [`super::TopicName::new_refusing_controls`]; see [`super::has_control_characters`].
    #[error("a topic name or filter contains a control character")]
    ControlCharacter,
    /// The ShareName is not followed by `/` and a topic filter [MQTT-4.8.2-2].
    #[error("a ShareName must be followed by `/` and a topic filter")]
    MissingSharedFilter,
}
