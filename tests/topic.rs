//! Topic names, filters, shared subscriptions, the subscription trie and the retained store,
//! through `ringmq::topic`'s public API: the spec's own examples as tables, then the two indexes
//! checked against the plain matcher on random filters and topics.

use std::collections::BTreeMap;

use proptest::prelude::*;
use proptest::sample::{select, Index};
use ringmq::codec::ByteStr;
use ringmq::topic::*;

fn name(text: &str) -> TopicName {
    TopicName::try_from(text).unwrap_or_else(|e| panic!("{text:?} should be a valid name: {e}"))
}

fn filter(text: &str) -> TopicFilter {
    TopicFilter::try_from(text).unwrap_or_else(|e| panic!("{text:?} should be a valid filter: {e}"))
}

// ---------------------------------------------------------------------------------------------
// Names and filters (§4.7.1, §4.7.3)
// ---------------------------------------------------------------------------------------------

#[test]
fn valid_topic_names() {
    let valid = [
        "sport/tennis/player1",
        "sport",
        "/",            // a single `/` is a valid name (§4.7.3, non-normative)
        "/finance",     // a leading `/` makes a distinct, empty first level
        "sport/",       // ...and a trailing one an empty last level
        "a//b",         // empty levels are levels
        "$SYS/broker",  // `$` topics are valid names; only their matching differs
        "a b/ c ",      // spaces are allowed (§4.7.3)
        "ünïcödé/日本", // any UTF-8 but U+0000
    ];
    for text in valid {
        let topic = name(text);
        assert_eq!(topic.as_str(), text);
        assert_eq!(
            topic.levels().collect::<Vec<_>>(),
            text.split('/').collect::<Vec<_>>()
        );
    }
    assert!(name("$SYS/broker").is_sys());
    assert!(!name("a/$SYS").is_sys());
    assert!(TopicName::from_static("$SYS/broker/uptime").is_ok());
}

#[test]
fn invalid_topic_names() {
    let too_deep = vec!["a"; TOPIC_LEVELS_MAX + 1].join("/");
    let too_long = "a".repeat(TOPIC_LEN_MAX + 1);
    let cases = [
        ("", TopicError::Empty),                      // [MQTT-4.7.3-1]
        ("a\0b", TopicError::NullCharacter),          // [MQTT-4.7.3-2]
        ("sport/+", TopicError::WildcardInTopicName), // [MQTT-3.3.2-2]
        ("sport/#", TopicError::WildcardInTopicName),
        ("#", TopicError::WildcardInTopicName),
        ("sport+", TopicError::WildcardInTopicName), // wildcard characters anywhere
        ("a#b", TopicError::WildcardInTopicName),
        (
            &too_deep,
            TopicError::TooManyLevels {
                levels: TOPIC_LEVELS_MAX + 1,
            },
        ),
        (
            &too_long,
            TopicError::TooLong {
                len_bytes: TOPIC_LEN_MAX + 1,
            },
        ), // [MQTT-4.7.3-3]
    ];
    for (text, error) in cases {
        assert_eq!(TopicName::try_from(text), Err(error), "{text:.20?}");
        assert_eq!(
            TopicName::new(ByteStr::from(text)),
            Err(error),
            "{text:.20?}"
        );
    }
}

#[test]
fn valid_topic_filters() {
    let cases = [
        ("sport/tennis/player1/#", true), // §4.7.1.2
        ("sport/#", true),
        ("#", true),
        ("sport/tennis/#", true),
        ("+", true), // §4.7.1.3
        ("+/tennis/#", true),
        ("sport/+/player1", true),
        ("/+", true),
        ("+/+", true),
        ("+/+/+", true),
        ("$SYS/#", true),
        ("$SYS/monitor/+", true),
        ("sport/tennis/player1", false),
        ("/", false),
        ("//", false),
        ("a//b", false),
        ("$share/g/a", false), // just a filter; `SubscriptionFilter` gives `$share` meaning
    ];
    for (text, has_wildcards) in cases {
        let parsed = filter(text);
        assert_eq!(parsed.as_str(), text);
        assert_eq!(parsed.has_wildcards(), has_wildcards, "{text}");
        let levels: Vec<_> = parsed.levels().map(|level| level.as_str()).collect();
        assert_eq!(levels, text.split('/').collect::<Vec<_>>());
    }
    let deepest = vec!["+"; TOPIC_LEVELS_MAX].join("/");
    assert!(TopicFilter::try_from(deepest.as_str()).is_ok());
}

#[test]
fn invalid_topic_filters() {
    use TopicError::*;
    let too_deep = vec!["+"; TOPIC_LEVELS_MAX + 1].join("/");
    let cases = [
        ("", Empty),                                    // [MQTT-4.7.3-1]
        ("sport/tennis#", MisplacedMultiLevelWildcard), // [MQTT-4.7.1-2]
        ("sport/tennis/#/ranking", MisplacedMultiLevelWildcard),
        ("#/", MisplacedMultiLevelWildcard),
        ("##", MisplacedMultiLevelWildcard),
        ("a/#b", MisplacedMultiLevelWildcard),
        ("+#", MisplacedMultiLevelWildcard),
        ("sport+", MisplacedSingleLevelWildcard), // [MQTT-4.7.1-3]
        ("+a", MisplacedSingleLevelWildcard),
        ("a/+b/c", MisplacedSingleLevelWildcard),
        ("++", MisplacedSingleLevelWildcard),
        ("a/\0", NullCharacter), // [MQTT-4.7.3-2]
        (
            &too_deep,
            TooManyLevels {
                levels: TOPIC_LEVELS_MAX + 1,
            },
        ),
    ];
    for (text, error) in cases {
        assert_eq!(TopicFilter::try_from(text), Err(error), "{text:.20?}");
    }
}

// ---------------------------------------------------------------------------------------------
// Matching (§4.7.1, §4.7.2), by the plain matcher, the trie and the retained store alike
// ---------------------------------------------------------------------------------------------

/// (filter, topic, matches)
const MATCHING: &[(&str, &str, bool)] = &[
    // §4.7.1.2: `#` matches the parent level and any number of children.
    ("sport/tennis/player1/#", "sport/tennis/player1", true),
    (
        "sport/tennis/player1/#",
        "sport/tennis/player1/ranking",
        true,
    ),
    (
        "sport/tennis/player1/#",
        "sport/tennis/player1/score/wimbledon",
        true,
    ),
    ("sport/tennis/player1/#", "sport/tennis/player2", false),
    ("sport/#", "sport", true),
    ("sport/#", "sport/", true),
    ("sport/#", "sports", false),
    ("#", "sport/tennis", true),
    ("#", "/", true),
    // §4.7.1.3: `+` matches exactly one level, which may be empty.
    ("sport/tennis/+", "sport/tennis/player1", true),
    ("sport/tennis/+", "sport/tennis/player2", true),
    ("sport/tennis/+", "sport/tennis/player1/ranking", false),
    ("sport/+", "sport", false),
    ("sport/+", "sport/", true),
    ("+", "sport", true),
    ("+/+", "/finance", true),
    ("/+", "/finance", true),
    ("+", "/finance", false),
    ("+/tennis/#", "sport/tennis", true),
    ("+/tennis/#", "sport/tennis/player1/ranking", true),
    ("+/+", "a", false),
    ("a/+/b", "a//b", true),
    ("a//b", "a//b", true),
    ("a//b", "a/b", false),
    // §4.7.2: wildcards at the first level never match `$` topics [MQTT-4.7.2-1].
    ("#", "$SYS/x", false),
    ("#", "$SYS", false),
    ("+", "$SYS", false),
    ("+/monitor/Clients", "$SYS/monitor/Clients", false),
    ("+/#", "$SYS/monitor", false),
    ("$SYS/#", "$SYS/monitor/Clients", true),
    ("$SYS/#", "$SYS", true),
    ("$SYS/monitor/+", "$SYS/monitor/Clients", true),
    ("$SYS/+/Clients", "$SYS/monitor/Clients", true),
    ("$SYS/#", "SYS/monitor", false),
    ("a/#", "a/$SYS/x", true), // `$` only matters in the first level
    ("a/+", "a/$x", true),
    // Matching is exact: no case folding, no normalisation [MQTT-4.7.3-4].
    ("Sport", "sport", false),
    ("sport/", "sport", false),
    ("$share/g/a", "$share/g/a", true),
];

#[test]
fn spec_matching_examples() {
    for &(filter_text, topic_text, expected) in MATCHING {
        let (f, t) = (filter(filter_text), name(topic_text));
        assert_eq!(
            f.matches(&t),
            expected,
            "plain: {filter_text} vs {topic_text}"
        );

        let mut trie = SubscriptionTrie::new();
        trie.insert(&f, 1u8, ());
        let mut hits = 0;
        trie.for_each_match(topic_text, |_, ()| hits += 1);
        assert_eq!(
            hits,
            usize::from(expected),
            "trie: {filter_text} vs {topic_text}"
        );

        let mut store = RetainedStore::new();
        store.insert(t, ());
        let mut hits = 0;
        store.for_each_match(&f, |_, ()| hits += 1);
        assert_eq!(
            hits,
            usize::from(expected),
            "retained: {filter_text} vs {topic_text}"
        );
    }
}

#[test]
fn trie_fans_out_to_every_matching_filter() {
    let mut trie = SubscriptionTrie::new();
    for (key, text) in [
        "#",
        "sport/#",
        "sport/+",
        "sport/tennis",
        "+/tennis",
        "$SYS/#",
    ]
    .iter()
    .enumerate()
    {
        assert_eq!(trie.insert(&filter(text), key, *text), None);
    }
    // The same subscriber on two overlapping filters is visited twice; the caller dedups.
    trie.insert(&filter("+/+"), 1, "+/+");
    assert_eq!(trie.len(), 7);

    let mut hits = Vec::new();
    trie.for_each_match("sport/tennis", |key, value| hits.push((*key, *value)));
    hits.sort_unstable();
    let expected = [
        (0, "#"),
        (1, "+/+"),
        (1, "sport/#"),
        (2, "sport/+"),
        (3, "sport/tennis"),
        (4, "+/tennis"),
    ];
    assert_eq!(hits, expected);

    let mut hits = Vec::new();
    trie.for_each_match("$SYS/broker/load", |key, _| hits.push(*key));
    assert_eq!(hits, [5]);
}

#[test]
fn trie_subscribing_twice_replaces() {
    // [MQTT-3.8.4-3]: a second SUBSCRIBE to the same filter replaces the subscription.
    let mut trie = SubscriptionTrie::new();
    let f = filter("a/+");
    assert_eq!(trie.insert(&f, 9u32, 0u8), None);
    assert_eq!(trie.insert(&f, 9, 1), Some(0));
    assert_eq!(trie.len(), 1);
    assert_eq!(trie.get(&f, &9), Some(&1));
    assert_eq!(trie.get(&filter("a/b"), &9), None);
    assert_eq!(trie.remove(&filter("a/b"), &9), None, "a different filter");
    assert_eq!(trie.remove(&f, &8), None, "a different subscriber");
    assert_eq!(trie.remove(&f, &9), Some(1));
    assert!(trie.is_empty());
    assert_eq!(trie.node_count(), 2, "only the two roots remain");
}

#[test]
fn trie_many_subscribers_on_one_filter() {
    // Past the linear-scan threshold a node indexes its subscribers; results must not change.
    let mut trie = SubscriptionTrie::new();
    let (all, some) = (filter("#"), filter("a/+"));
    for key in 0..200u32 {
        trie.insert(&all, key, key);
        if key % 2 == 0 {
            trie.insert(&some, key, key + 1000);
        }
    }
    for key in (0..200u32).filter(|key| key % 3 == 0) {
        assert_eq!(trie.remove(&all, &key), Some(key));
        assert_eq!(trie.remove(&all, &key), None);
    }
    let mut hits = Vec::new();
    trie.for_each_match("a/b", |key, value| hits.push((*key, *value)));
    hits.sort_unstable();
    let mut expected: Vec<_> = (0..200u32).filter(|k| k % 3 != 0).map(|k| (k, k)).collect();
    expected.extend((0..200u32).filter(|k| k % 2 == 0).map(|k| (k, k + 1000)));
    expected.sort_unstable();
    assert_eq!(hits, expected);
}

#[test]
fn retained_store_basics() {
    let mut store = RetainedStore::new();
    assert_eq!(store.insert(name("sport/tennis"), 1), None);
    assert_eq!(store.insert(name("sport/tennis"), 2), Some(1), "replaces");
    store.insert(name("sport"), 3);
    store.insert(name("$SYS/uptime"), 4);
    assert_eq!(store.len(), 3);
    assert_eq!(store.get("sport/tennis"), Some(&2));
    assert_eq!(store.get("sport/golf"), None);

    let mut hits = Vec::new();
    store.for_each_match(&filter("#"), |topic, value| {
        hits.push((topic.to_string(), *value))
    });
    hits.sort();
    assert_eq!(
        hits,
        [("sport".to_string(), 3), ("sport/tennis".to_string(), 2)]
    );

    let mut all = 0;
    store.for_each(|_, _| all += 1);
    assert_eq!(all, 3, "`for_each` includes `$` topics");

    assert_eq!(store.remove("sport/tennis"), Some(2));
    assert_eq!(store.remove("sport/tennis"), None);
    assert_eq!(store.remove("no/such/topic"), None);
    assert_eq!(store.remove(""), None);
    assert_eq!(store.len(), 2);
}

// ---------------------------------------------------------------------------------------------
// Shared subscriptions (MQTT 5.0 §4.8.2)
// ---------------------------------------------------------------------------------------------

#[test]
fn shared_subscription_parsing() {
    let cases = [
        (
            "$share/consumer1/sport/tennis/+",
            Some("consumer1"),
            "sport/tennis/+",
        ),
        (
            "$share/consumer2/sport/tennis/+",
            Some("consumer2"),
            "sport/tennis/+",
        ),
        ("$share/consumer1//finance", Some("consumer1"), "/finance"),
        ("$share/g/#", Some("g"), "#"),
        ("$share/g/$SYS/#", Some("g"), "$SYS/#"),
        ("$share/$g/a", Some("$g"), "a"),
        ("$share/g/$share/h/a", Some("g"), "$share/h/a"),
        ("sport/tennis/+", None, "sport/tennis/+"),
        ("$sharex/a", None, "$sharex/a"),
        ("a/$share/g/b", None, "a/$share/g/b"),
        ("$SYS/#", None, "$SYS/#"),
    ];
    for (text, group, filter_text) in cases {
        let parsed = SubscriptionFilter::parse(ByteStr::from(text)).expect(text);
        assert_eq!(parsed.share_group().map(ByteStr::as_str), group, "{text}");
        assert_eq!(parsed.is_shared(), group.is_some());
        assert_eq!(parsed.filter().as_str(), filter_text, "{text}");
    }
}

#[test]
fn invalid_shared_subscriptions() {
    use TopicError::*;
    let cases = [
        ("$share", EmptyShareName), // [MQTT-4.8.2-1]
        ("$share/", EmptyShareName),
        ("$share//a", EmptyShareName),
        ("$share/g", MissingSharedFilter), // [MQTT-4.8.2-2]
        ("$share/g/", MissingSharedFilter),
        ("$share/g+/a", InvalidShareName), // [MQTT-4.8.2-2]
        ("$share/+/a", InvalidShareName),
        ("$share/#/a", InvalidShareName),
        ("$share/g#/a", InvalidShareName),
        ("$share/g/a#", MisplacedMultiLevelWildcard), // the filter's own rules still hold
        ("$share/g/a/+b", MisplacedSingleLevelWildcard),
        ("sport+", MisplacedSingleLevelWildcard),
        ("", Empty),
    ];
    for (text, error) in cases {
        assert_eq!(
            SubscriptionFilter::parse(ByteStr::from(text)),
            Err(error),
            "{text}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Properties: both indexes agree with `TopicFilter::matches`
// ---------------------------------------------------------------------------------------------

/// Few level names, so random filters and topics collide often; `""` and `$x` exercise the
/// empty-level and `$` rules, `c` appears only in topics (a level no filter interns).
const FILTER_LEVELS: &[&str] = &["a", "b", "", "$x", "+"];
const TOPIC_LEVELS: &[&str] = &["a", "b", "", "$x", "c"];

fn filter_text() -> impl Strategy<Value = String> {
    (
        prop::collection::vec(select(FILTER_LEVELS), 0..5),
        any::<bool>(),
    )
        .prop_map(|(mut levels, multi)| {
            if multi || levels.is_empty() {
                levels.push("#");
            }
            levels.join("/")
        })
        .prop_filter("filters are non-empty", |text| !text.is_empty())
}

fn topic_text() -> impl Strategy<Value = String> {
    prop::collection::vec(select(TOPIC_LEVELS), 1..6)
        .prop_map(|levels| levels.join("/"))
        .prop_filter("topic names are non-empty", |text| !text.is_empty())
}

type Model = BTreeMap<(String, u8), u32>;

fn check_trie(
    trie: &SubscriptionTrie<u8, u32>,
    model: &Model,
    topics: &[String],
) -> Result<(), TestCaseError> {
    prop_assert_eq!(trie.len(), model.len());
    for topic in topics {
        let topic_name = name(topic);
        let mut expected: Vec<(u8, u32)> = model
            .iter()
            .filter(|((f, _), _)| filter(f).matches(&topic_name))
            .map(|((_, key), value)| (*key, *value))
            .collect();
        expected.sort_unstable();
        let mut actual = Vec::new();
        trie.for_each_match(topic, |key, value| actual.push((*key, *value)));
        actual.sort_unstable();
        prop_assert_eq!(actual, expected, "topic {:?}", topic);
    }
    Ok(())
}

/// A filter drawn as often without wildcards as with: the trie keeps the two kinds apart.
fn mixed_filter_text() -> impl Strategy<Value = String> {
    prop_oneof![topic_text(), filter_text()]
}

/// Subscribes (`Some(value)`) or unsubscribes (`None`) key `.1` to the pool's filter `.0`.
/// Three keys, so that one subscriber often holds several overlapping filters.
fn step() -> impl Strategy<Value = (Index, u8, Option<u32>)> {
    (
        any::<Index>(),
        0u8..3,
        prop::option::weighted(0.6, any::<u32>()),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn trie_agrees_with_plain_matcher(
        subscriptions in prop::collection::vec((filter_text(), 0u8..4), 0..48),
        removals in prop::collection::vec(any::<Index>(), 0..32),
        topics in prop::collection::vec(topic_text(), 1..16),
    ) {
        let mut trie = SubscriptionTrie::new();
        let mut model = Model::new();
        for (value, (text, key)) in subscriptions.iter().enumerate() {
            let value = value as u32;
            let previous = trie.insert(&filter(text), *key, value);
            prop_assert_eq!(previous, model.insert((text.clone(), *key), value));
        }
        check_trie(&trie, &model, &topics)?;

        for index in removals {
            if model.is_empty() {
                break;
            }
            let (text, key) = model.keys().nth(index.index(model.len())).cloned().expect("in range");
            let expected = model.remove(&(text.clone(), key));
            prop_assert_eq!(trie.remove(&filter(&text), &key), expected);
            prop_assert_eq!(trie.remove(&filter(&text), &key), None);
        }
        check_trie(&trie, &model, &topics)?;

        for ((text, key), value) in &model {
            prop_assert_eq!(trie.get(&filter(text), key), Some(value));
            prop_assert_eq!(trie.remove(&filter(text), key), Some(*value));
        }
        prop_assert!(trie.is_empty());
        prop_assert_eq!(trie.interned_levels(), 0);
        prop_assert_eq!(trie.node_count(), 2);
        check_trie(&trie, &Model::new(), &topics)?;
    }

    #[test]
    fn trie_agrees_with_plain_matcher_through_mixed_steps(
        pool in prop::collection::vec(mixed_filter_text(), 1..12),
        steps in prop::collection::vec(step(), 1..64),
        random_topics in prop::collection::vec(topic_text(), 1..6),
    ) {
        // The pool's exact filters are topics too, or random topics would rarely hit them.
        let mut topics = random_topics;
        topics.extend(pool.iter().filter(|text| !filter(text).has_wildcards()).cloned());
        let mut trie = SubscriptionTrie::new();
        let mut model = Model::new();
        for (index, key, value) in steps {
            let text = index.get(&pool);
            let step = (text.clone(), key);
            match value {
                Some(value) => prop_assert_eq!(trie.insert(&filter(text), key, value), model.insert(step, value)),
                None => prop_assert_eq!(trie.remove(&filter(text), &key), model.remove(&step)),
            }
            check_trie(&trie, &model, &topics)?;
        }
        for ((text, key), value) in &model {
            prop_assert_eq!(trie.get(&filter(text), key), Some(value));
            prop_assert_eq!(trie.remove(&filter(text), key), Some(*value));
        }
        prop_assert!(trie.is_empty());
        prop_assert_eq!(trie.node_count(), 2);
        prop_assert_eq!(trie.interned_levels(), 0);
        check_trie(&trie, &Model::new(), &topics)?;
    }

    #[test]
    fn retained_store_agrees_with_plain_matcher(
        operations in prop::collection::vec((topic_text(), prop::option::of(any::<u32>())), 0..64),
        filters in prop::collection::vec(filter_text(), 1..16),
    ) {
        let mut store = RetainedStore::new();
        let mut model = BTreeMap::new();
        for (topic, value) in &operations {
            match value {
                Some(value) => {
                    prop_assert_eq!(store.insert(name(topic), *value), model.insert(topic.clone(), *value));
                }
                None => prop_assert_eq!(store.remove(topic), model.remove(topic)),
            }
        }
        prop_assert_eq!(store.len(), model.len());
        for (topic, value) in &model {
            prop_assert_eq!(store.get(topic), Some(value));
        }
        for text in &filters {
            let f = filter(text);
            let mut expected: Vec<(String, u32)> = model
                .iter()
                .filter(|(topic, _)| f.matches(&name(topic)))
                .map(|(topic, value)| (topic.clone(), *value))
                .collect();
            let mut actual = Vec::new();
            store.for_each_match(&f, |topic, value| actual.push((topic.to_string(), *value)));
            actual.sort();
            expected.sort();
            prop_assert_eq!(actual, expected, "filter {:?}", text);
        }
        for topic in model.keys() {
            prop_assert!(store.remove(topic).is_some());
        }
        prop_assert!(store.is_empty());
    }

    #[test]
    fn names_are_filters_that_match_themselves(topic in topic_text()) {
        let topic_name = name(&topic);
        prop_assert!(filter(&topic).matches(&topic_name));
        prop_assert!(!filter(&topic).has_wildcards());
    }
}

#[test]
fn control_characters_are_u0001_to_u001f_and_u007f_to_u009f() {
    // 1.5.4: the code points a UTF-8 string SHOULD NOT contain, at both ends of each range.
    for c in ['\u{1}', '\u{1F}', '\u{7F}', '\u{9F}'] {
        assert!(has_control_characters(&format!("a/{c}/b")), "{:?}", c);
    }
    // U+0000 is the codec's (always refused); space, U+00A0 and beyond are ordinary.
    for text in ["", "a/b", "\u{0}", " ", "~", "\u{A0}", "é/ü/😀"] {
        assert!(!has_control_characters(text), "{text:?}");
    }
}

proptest! {
    /// The byte scan agrees with the definition, code point by code point, on any text
    /// (including U+0080..U+00BF, whose encodings start with 0xC2 too).
    #[test]
    fn control_characters_byte_scan_matches_the_definition(text in "\\PC*|[\\u{0}-\\u{FF}]{0,16}") {
        let by_chars = text
            .chars()
            .any(|c| matches!(c, '\u{1}'..='\u{1F}' | '\u{7F}'..='\u{9F}'));
        prop_assert_eq!(has_control_characters(&text), by_chars);
    }
}

proptest! {
    /// The PUBLISH path's one-pass check refuses exactly the topics with a control character.
    #[test]
    fn refusing_controls_matches_has_control_characters(text in "[^+#\\u{0}]{1,24}|[a/\\u{1}-\\u{22}\\u{24}-\\u{2A}\\u{2C}-\\u{FF}]{1,24}") {
        let refused = TopicName::new_refusing_controls(ByteStr::from(text.clone()), true);
        let expected = has_control_characters(&text);
        prop_assert_eq!(matches!(refused, Err(TopicError::ControlCharacter)), expected);
        if !expected {
            prop_assert!(refused.is_ok() || TopicName::new(ByteStr::from(text.clone())).is_err());
        }
        prop_assert!(TopicName::new_refusing_controls(ByteStr::from(text.clone()), false).is_ok()
            == TopicName::new(ByteStr::from(text)).is_ok());
    }
}

proptest! {
    /// The word-at-a-time scan agrees with the rules checked byte by byte, at every offset
    /// (strings up to 48 bytes: several words and a tail).
    #[test]
    fn topic_name_checks_agree_with_a_byte_by_byte_reading(text in "[a/+#\\u{0}\\u{1}\\u{7f}é]{1,48}") {
        let levels = text.matches('/').count() + 1;
        let expected = if text.contains('\0') {
            Err(TopicError::NullCharacter)
        } else if levels > TOPIC_LEVELS_MAX {
            Err(TopicError::TooManyLevels { levels })
        } else if text.contains(['+', '#']) {
            Err(TopicError::WildcardInTopicName)
        } else if has_control_characters(&text) {
            Err(TopicError::ControlCharacter)
        } else {
            Ok(())
        };
        let got = TopicName::new_refusing_controls(ByteStr::from(text), true).map(|_| ());
        prop_assert_eq!(got, expected);
    }
}
