//! Tests of [`super::Acl`]: every rule kind, the order mosquitto decides in, every malformed
//! line with its `file:line`, and properties against a naive reference that walks the rules the
//! way mosquitto's `mosquitto_acl_check_default` does, matching with [`TopicFilter::matches`].

use std::path::Path;

use proptest::prelude::*;

use super::{Acl, Subject, SubscribeVerdict};
use crate::topic::{TopicFilter, TopicName};

const PATH: &str = "/etc/ringmq/acl";

fn acl(text: &str) -> Acl {
    Acl::parse(text, Path::new(PATH)).expect("a valid ACL file")
}

fn error(text: &str) -> String {
    Acl::parse(text, Path::new(PATH))
        .expect_err("a malformed ACL file")
        .to_string()
}

const ANONYMOUS: Subject<'static> = Subject {
    username: None,
    client_id: "c1",
};

fn user(name: &str) -> Subject<'_> {
    Subject {
        username: Some(name),
        client_id: "c1",
    }
}

fn client<'a>(username: Option<&'a str>, client_id: &'a str) -> Subject<'a> {
    Subject {
        username,
        client_id,
    }
}

#[test]
fn access_words_grant_what_they_say_and_none_means_readwrite() {
    let acl = acl("topic read r\ntopic write w\ntopic readwrite rw\ntopic deny d\ntopic both\n");
    let can = |t: &str| (acl.may_read(ANONYMOUS, t), acl.may_publish(ANONYMOUS, t));
    assert_eq!(can("r"), (true, false));
    assert_eq!(can("w"), (false, true));
    assert_eq!(can("rw"), (true, true));
    assert_eq!(can("both"), (true, true));
    assert_eq!(can("d"), (false, false));
    assert_eq!(can("unlisted"), (false, false));
    assert_eq!(acl.rule_count(), 5);
}

#[test]
fn lines_before_the_first_user_are_for_anonymous_clients_only() {
    let acl = acl("topic public/#\nuser bob\ntopic read bob/#\n");
    assert!(acl.may_read(ANONYMOUS, "public/x"));
    assert!(!acl.may_read(ANONYMOUS, "bob/x"));
    assert!(acl.may_read(user("bob"), "bob/x"));
    assert!(!acl.may_read(user("bob"), "public/x"));
    assert!(!acl.may_read(user("eve"), "public/x"));
    assert!(!acl.may_read(user(""), "public/x"));
}

#[test]
fn a_user_name_is_the_rest_of_the_line_and_sections_merge() {
    let acl =
        acl("user john smith  \ntopic read a\nuser x\ntopic read b\nuser john smith\ntopic c\n");
    assert!(acl.may_read(user("john smith"), "a"));
    assert!(acl.may_publish(user("john smith"), "c"));
    assert!(!acl.may_read(user("john"), "a"));
    assert!(!acl.may_read(user("john smith"), "b"));
}

#[test]
fn a_filter_is_the_rest_of_the_line_spaces_included() {
    let acl = acl("topic read  my room/temp  \n");
    assert!(acl.may_read(ANONYMOUS, "my room/temp"));
    assert!(!acl.may_read(ANONYMOUS, "room/temp"));
    // Without an access word the single word is the filter, so `my hall` is an unknown
    // access word (mosquitto agrees) and this file cannot load.
    assert_eq!(
        error("topic my hall\n"),
        format!("{PATH}:1: unknown access `my`: expected `read`, `write`, `readwrite` or `deny`")
    );
}

#[test]
fn deny_wins_over_allow_in_the_same_section_whatever_the_order() {
    for text in [
        "topic read a/#\ntopic deny a/secret\n",
        "topic deny a/secret\ntopic read a/#\n",
    ] {
        let acl = acl(text);
        assert!(!acl.may_read(ANONYMOUS, "a/secret"), "{text}");
        assert!(acl.may_read(ANONYMOUS, "a/x"), "{text}");
        assert!(
            acl.may_read(ANONYMOUS, "a"),
            "`a/#` matches its parent: {text}"
        );
    }
}

#[test]
fn a_users_own_allow_is_decided_before_any_pattern_deny() {
    let acl = acl("user bob\ntopic read s/#\npattern deny s/%u\npattern read s/#\n");
    // mosquitto walks the user's own rules first and stops at the allow.
    assert!(acl.may_read(user("bob"), "s/bob"));
    // Without an own rule, the pattern deny beats the pattern allow.
    assert!(!acl.may_read(user("alice"), "s/alice"));
    assert!(acl.may_read(user("alice"), "s/bob"));
}

#[test]
fn own_deny_refuses_before_patterns_are_asked() {
    let acl = acl("user bob\ntopic deny s/bob\npattern read s/%u\n");
    assert!(!acl.may_read(user("bob"), "s/bob"));
    assert!(acl.may_read(user("carol"), "s/carol"));
}

#[test]
fn patterns_substitute_client_id_and_username_anywhere_in_a_level() {
    let acl = acl("pattern write dev/%c/state\npattern read inbox/%u/#\npattern read dev/%c-in\n");
    let bob = client(Some("bob"), "c1");
    assert!(acl.may_publish(bob, "dev/c1/state"));
    assert!(!acl.may_publish(bob, "dev/c2/state"));
    assert!(!acl.may_read(bob, "dev/c1/state"));
    assert!(acl.may_read(bob, "inbox/bob/1"));
    assert!(!acl.may_read(bob, "inbox/eve/1"));
    assert!(acl.may_read(bob, "dev/c1-in"));
    assert!(!acl.may_read(bob, "dev/c1"));
    // A `%u` pattern never applies to an anonymous client; a `%c` one does.
    assert!(!acl.may_read(ANONYMOUS, "inbox//1"));
    assert!(acl.may_publish(ANONYMOUS, "dev/c1/state"));
}

#[test]
fn percent_signs_are_scanned_left_to_right_like_mosquitto() {
    let acl = acl("pattern read a/%%c\npattern read b/%x\n");
    assert!(acl.may_read(ANONYMOUS, "a/%c1"));
    assert!(acl.may_read(ANONYMOUS, "b/%x"));
}

#[test]
fn a_client_id_with_a_slash_spans_levels_as_in_mosquitto() {
    let acl = acl("pattern readwrite dev/%c/state\n");
    assert!(acl.may_publish(client(None, "site/7"), "dev/site/7/state"));
    assert!(!acl.may_publish(client(None, "site/7"), "dev/site/state"));
}

#[test]
fn a_wildcard_in_client_id_or_username_matches_no_pattern() {
    let acl = acl("pattern read p/%c/#\nuser x+y\ntopic read own\n");
    assert!(acl.may_read(client(None, "c1"), "p/c1/z"));
    for who in [
        client(None, "c+"),
        client(None, "#"),
        client(Some("x+y"), "c1"),
    ] {
        assert!(!acl.may_read(who, "p/c1/z"), "{who:?}");
        assert!(!acl.may_read(who, "p/c+/z"), "{who:?}");
        assert_eq!(
            acl.subscribe_verdict(who, "p/c1/#"),
            SubscribeVerdict::Denied
        );
    }
    // The user's own section still applies: mosquitto refuses only at the pattern stage.
    assert!(acl.may_read(client(Some("x+y"), "c1"), "own"));
}

#[test]
fn dollar_topics_need_a_rule_that_starts_with_dollar() {
    let acl = acl("topic read #\ntopic read +/broker\n");
    assert!(acl.may_read(ANONYMOUS, "a/b"));
    assert!(!acl.may_read(ANONYMOUS, "$SYS/broker")); // [MQTT-4.7.2-1]
    assert!(!acl.may_read(ANONYMOUS, "$SYS"));
    assert_eq!(
        acl.subscribe_verdict(ANONYMOUS, "$SYS/#"),
        SubscribeVerdict::Denied
    );
    let sys = self::acl("topic read $SYS/#\n");
    assert!(sys.may_read(ANONYMOUS, "$SYS/broker/uptime"));
    assert!(!sys.may_read(ANONYMOUS, "SYS/broker"));
    assert_eq!(
        sys.subscribe_verdict(ANONYMOUS, "$SYS/+/x"),
        SubscribeVerdict::Allowed
    );
}

#[test]
fn something_that_is_not_a_topic_name_is_refused() {
    let acl = acl("topic #\n");
    assert!(acl.may_read(ANONYMOUS, "a"));
    for bad in ["", "a/+", "a/#", "+"] {
        assert!(!acl.may_read(ANONYMOUS, bad), "{bad:?}");
        assert!(!acl.may_publish(ANONYMOUS, bad), "{bad:?}");
    }
}

#[test]
fn subscribe_verdicts_for_the_contract_examples() {
    let acl = acl("topic read a/#\ntopic deny a/secret\n");
    assert_eq!(
        acl.subscribe_verdict(ANONYMOUS, "a/#"),
        SubscribeVerdict::CheckEach
    );
    assert_eq!(
        acl.subscribe_verdict(ANONYMOUS, "a/x"),
        SubscribeVerdict::Allowed
    );
    assert_eq!(
        acl.subscribe_verdict(ANONYMOUS, "a/secret"),
        SubscribeVerdict::Denied
    );

    let acl = self::acl("topic read a/#\n");
    assert_eq!(
        acl.subscribe_verdict(ANONYMOUS, "a/+/c"),
        SubscribeVerdict::Allowed
    );
    assert_eq!(
        acl.subscribe_verdict(ANONYMOUS, "a"),
        SubscribeVerdict::Allowed
    );
    assert_eq!(
        acl.subscribe_verdict(ANONYMOUS, "b/#"),
        SubscribeVerdict::Denied
    );
    // mosquitto grants `#` and delivers what `a/#` allows.
    assert_eq!(
        acl.subscribe_verdict(ANONYMOUS, "#"),
        SubscribeVerdict::CheckEach
    );
    assert_eq!(
        acl.subscribe_verdict(ANONYMOUS, "+/x"),
        SubscribeVerdict::CheckEach
    );
    assert_eq!(
        acl.subscribe_verdict(user("bob"), "a/#"),
        SubscribeVerdict::Denied
    );
    assert_eq!(
        acl.subscribe_verdict(ANONYMOUS, "a/+x"),
        SubscribeVerdict::Denied
    );
    assert_eq!(
        acl.subscribe_verdict(ANONYMOUS, "$share/group/a/b"),
        SubscribeVerdict::Allowed
    );
}

#[test]
fn subscribe_verdicts_with_write_only_and_pattern_rules() {
    let acl = acl("topic write w/#\npattern read dev/%c/#\npattern deny dev/%c/secret\n");
    assert_eq!(
        acl.subscribe_verdict(ANONYMOUS, "w/#"),
        SubscribeVerdict::Denied
    );
    assert_eq!(
        acl.subscribe_verdict(ANONYMOUS, "dev/c1/+"),
        SubscribeVerdict::CheckEach
    );
    assert_eq!(
        acl.subscribe_verdict(ANONYMOUS, "dev/c1/x/#"),
        SubscribeVerdict::Allowed
    );
    assert_eq!(
        acl.subscribe_verdict(ANONYMOUS, "dev/c1/secret"),
        SubscribeVerdict::Denied
    );
    assert_eq!(
        acl.subscribe_verdict(ANONYMOUS, "dev/c2/#"),
        SubscribeVerdict::Denied
    );
    assert_eq!(
        acl.subscribe_verdict(ANONYMOUS, "dev/+/x"),
        SubscribeVerdict::CheckEach
    );
}

#[test]
fn comments_blank_lines_indentation_tabs_and_crlf_are_accepted() {
    let acl = acl("# a comment\n\n   \n  # indented\n\tuser\tbob \r\n  topic\tread\ta/b\r\n");
    assert!(acl.may_read(user("bob"), "a/b"));
    assert_eq!(acl.rule_count(), 1);
}

#[test]
fn an_empty_file_denies_everything() {
    let acl = acl("# nothing here\n");
    assert_eq!(acl.rule_count(), 0);
    assert!(!acl.may_read(ANONYMOUS, "a"));
    assert_eq!(
        acl.subscribe_verdict(ANONYMOUS, "#"),
        SubscribeVerdict::Denied
    );
}

#[test]
fn every_malformed_line_names_its_file_and_line() {
    let cases = [
        ("users bob", "unknown keyword `users`: expected `user`, `topic` or `pattern`"),
        ("user", "`user` needs a user name"),
        ("user   ", "`user` needs a user name"),
        ("topic", "`topic` needs a topic filter"),
        ("pattern  ", "`pattern` needs a topic filter"),
        ("topic read", "`topic read` needs a topic filter after `read`"),
        ("pattern deny", "`pattern deny` needs a topic filter after `deny`"),
        (
            "topic subscribe a/b",
            "unknown access `subscribe`: expected `read`, `write`, `readwrite` or `deny`",
        ),
        (
            "topic read a/#/b",
            "invalid topic filter `a/#/b`: the multi-level wildcard `#` must be a whole level and the last one",
        ),
        (
            "pattern a+",
            "invalid topic filter `a+`: the single-level wildcard `+` must be a whole level",
        ),
        (
            "topic read a/b#",
            "invalid topic filter `a/b#`: the multi-level wildcard `#` must be a whole level and the last one",
        ),
    ];
    for (line, what) in cases {
        // Two valid lines, a blank one and a comment first, so the line number is 5.
        let text = format!("topic a\n\n# c\nuser u\n{line}\ntopic b\n");
        assert_eq!(error(&text), format!("{PATH}:5: {what}"), "{line:?}");
    }
}

#[test]
fn a_missing_file_is_an_error_at_line_zero() {
    let path = Path::new("/nonexistent/ringmq/acl_file");
    let e = Acl::load(path).expect_err("no such file");
    assert_eq!(e.line, 0);
    assert!(
        e.to_string().starts_with("/nonexistent/ringmq/acl_file: "),
        "{e}"
    );
}

#[test]
fn load_reads_a_file() {
    let path = std::env::temp_dir().join(format!("ringmq-acl-test-{}", std::process::id()));
    std::fs::write(&path, "user bob\ntopic read x\n").expect("temp file");
    let acl = Acl::load(&path);
    std::fs::remove_file(&path).expect("temp file removed");
    assert!(acl.expect("loads").may_read(user("bob"), "x"));
}

#[test]
fn acl_is_shareable_between_threads() {
    fn shareable<T: Send + Sync>() {}
    shareable::<Acl>();
}

// ---- Properties against a naive reference -------------------------------------------------

/// One generated rule: which section it is in (`None` = pattern), its access word and filter.
#[derive(Clone, Debug)]
struct Rule {
    section: Section,
    access: &'static str,
    filter: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Section {
    Anonymous,
    User(&'static str),
    Pattern,
}

const USERS: [&str; 2] = ["u1", "u 2"];
const RULE_LEVELS: [&str; 9] = ["a", "b", "$SYS", "+", "%c", "%u", "x%c", "c1", ""];
const TOPIC_LEVELS: [&str; 8] = ["a", "b", "$SYS", "c1", "u1", "xc1", "u 2", ""];
const ACCESS: [&str; 5] = ["", "read ", "write ", "readwrite ", "deny "];

fn filter_strategy(levels: &'static [&'static str]) -> impl Strategy<Value = String> {
    (
        prop::collection::vec(prop::sample::select(levels), 1..4),
        any::<bool>(),
    )
        .prop_map(|(mut levels, hash)| {
            if hash {
                levels.push("#");
            }
            match levels.join("/") {
                // One empty level is the empty string, which no filter or topic may be.
                empty if empty.is_empty() => "/".to_owned(),
                joined => joined,
            }
        })
}

fn rule_strategy() -> impl Strategy<Value = Rule> {
    let section = prop_oneof![
        Just(Section::Anonymous),
        prop::sample::select(&USERS[..]).prop_map(Section::User),
        Just(Section::Pattern),
    ];
    (
        section,
        prop::sample::select(&ACCESS[..]),
        filter_strategy(&RULE_LEVELS),
    )
        .prop_map(|(section, access, filter)| Rule {
            section,
            access,
            filter,
        })
}

/// The file text: anonymous rules first (they must precede any `user` line), then the rest in
/// order, with a `user` line whenever the section changes, so sections also get merged.
fn file_text(rules: &[Rule]) -> String {
    let mut text = String::new();
    for rule in rules.iter().filter(|r| r.section == Section::Anonymous) {
        text += &format!("topic {}{}\n", rule.access, rule.filter);
    }
    let mut current = None;
    for rule in rules {
        match rule.section {
            Section::Anonymous => {}
            Section::Pattern => text += &format!("pattern {}{}\n", rule.access, rule.filter),
            Section::User(name) => {
                if current != Some(name) {
                    text += &format!("user {name}\n");
                    current = Some(name);
                }
                text += &format!("topic {}{}\n", rule.access, rule.filter);
            }
        }
    }
    text
}

/// mosquitto's substitution: one left-to-right scan of the pattern.
fn substitute(pattern: &str, who: Subject<'_>) -> String {
    let mut out = String::new();
    let mut rest = pattern;
    while let Some(c) = rest.chars().next() {
        if let Some(tail) = rest.strip_prefix("%c") {
            out += who.client_id;
            rest = tail;
        } else if let (Some(tail), Some(name)) = (rest.strip_prefix("%u"), who.username) {
            out += name;
            rest = tail;
        } else {
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    out
}

/// mosquitto's list walk: deny rules first, then the rest in file order; the first matching
/// deny refuses, the first matching rule granting `write`/`read` allows.
fn walk<'r>(
    rules: impl Iterator<Item = (&'r str, String)>,
    topic: &TopicName,
    write: bool,
) -> Option<bool> {
    let (deny, other): (Vec<_>, Vec<_>) = rules.partition(|(access, _)| *access == "deny ");
    for (access, filter) in deny.into_iter().chain(other) {
        let filter = TopicFilter::try_from(filter.as_str()).expect("valid after substitution");
        if !filter.matches(topic) {
            continue;
        }
        let grants = match access {
            "deny " => return Some(false),
            "read " => !write,
            "write " => write,
            _ => true,
        };
        if grants {
            return Some(true);
        }
    }
    None
}

fn reference(rules: &[Rule], who: Subject<'_>, topic: &str, write: bool) -> bool {
    let Ok(topic) = TopicName::try_from(topic) else {
        return false;
    };
    let own = match who.username {
        None => Section::Anonymous,
        Some(name) => USERS
            .into_iter()
            .find(|u| *u == name)
            .map_or(Section::Pattern, Section::User),
    };
    let own_rules = rules
        .iter()
        .filter(|r| own != Section::Pattern && r.section == own)
        .map(|r| (r.access, r.filter.clone()));
    if let Some(decided) = walk(own_rules, &topic, write) {
        return decided;
    }
    let patterns: Vec<&Rule> = rules
        .iter()
        .filter(|r| r.section == Section::Pattern)
        .collect();
    let dangerous = |s: &str| s.contains('+') || s.contains('#');
    if patterns.is_empty() || who.username.is_some_and(dangerous) || dangerous(who.client_id) {
        return false;
    }
    let substituted = patterns
        .into_iter()
        .filter(|r| who.username.is_some() || !r.filter.contains("%u"))
        .map(|r| (r.access, substitute(&r.filter, who)));
    walk(substituted, &topic, write).unwrap_or(false)
}

fn subject_strategy() -> impl Strategy<Value = Subject<'static>> {
    (
        prop::sample::select(&[None, Some("u1"), Some("u 2"), Some("u3"), Some("a+")][..]),
        prop::sample::select(&["c1", "c#", "a/b", "$x", "xc1"][..]),
    )
        .prop_map(|(username, client_id)| Subject {
            username,
            client_id,
        })
}

/// Topics the filter matches: each `+` replaced by a level picked by `picks`, `#` by zero to
/// two levels.
fn instances(filter: &str, picks: &[usize]) -> Vec<String> {
    let mut out = Vec::new();
    for (n, seed) in picks.iter().enumerate() {
        let mut levels = Vec::new();
        for (i, level) in filter.split('/').enumerate() {
            let pick = |k: usize| TOPIC_LEVELS[(seed + n + i + k) % TOPIC_LEVELS.len()];
            match level {
                "+" => levels.push(pick(0)),
                "#" => levels.extend((0..seed % 3).map(pick)),
                literal => levels.push(literal),
            }
        }
        out.push(levels.join("/"));
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn checks_agree_with_mosquittos_walk(
        rules in prop::collection::vec(rule_strategy(), 0..8),
        who in subject_strategy(),
        topics in prop::collection::vec(filter_strategy(&TOPIC_LEVELS), 1..8),
    ) {
        let text = file_text(&rules);
        let acl = acl(&text);
        for topic in topics.iter().map(|t| t.trim_end_matches("/#")) {
            prop_assert_eq!(acl.may_read(who, topic), reference(&rules, who, topic, false),
                "read {:?} by {:?} under\n{}", topic, who, text);
            prop_assert_eq!(acl.may_publish(who, topic), reference(&rules, who, topic, true),
                "publish {:?} by {:?} under\n{}", topic, who, text);
        }
    }

    #[test]
    fn subscribe_verdicts_hold_for_every_matching_topic(
        rules in prop::collection::vec(rule_strategy(), 0..8),
        who in subject_strategy(),
        filter in filter_strategy(&["a", "b", "$SYS", "+", "c1", "xc1"]),
        picks in prop::collection::vec(0usize..64, 1..12),
        topics in prop::collection::vec(filter_strategy(&TOPIC_LEVELS), 1..8),
    ) {
        let text = file_text(&rules);
        let acl = acl(&text);
        let verdict = acl.subscribe_verdict(who, &filter);
        let parsed = TopicFilter::try_from(filter.as_str()).expect("generated filters are valid");
        let candidates = instances(&filter, &picks).into_iter()
            .chain(topics.iter().map(|t| t.trim_end_matches("/#").to_owned()));
        for topic in candidates {
            let Ok(name) = TopicName::try_from(topic.as_str()) else { continue };
            if !parsed.matches(&name) {
                continue;
            }
            let readable = reference(&rules, who, &topic, false);
            prop_assert_eq!(acl.may_read(who, &topic), readable);
            match verdict {
                SubscribeVerdict::Allowed => prop_assert!(readable,
                    "Allowed {:?} but {:?} unreadable for {:?} under\n{}", filter, topic, who, text),
                SubscribeVerdict::Denied => prop_assert!(!readable,
                    "Denied {:?} but {:?} readable for {:?} under\n{}", filter, topic, who, text),
                SubscribeVerdict::CheckEach => {}
            }
        }
    }
}
