//! mosquitto's `acl_file`, compiled once at start-up for a check on every PUBLISH and every
//! delivery.
//!
//! Owns: the file's grammar, the compiled rules, and the three answers the broker needs:
//! [`Acl::may_publish`], [`Acl::may_read`] (per message; no allocation, no lock, no string
//! building) and [`Acl::subscribe_verdict`] (once per SUBSCRIBE).
//! Does not own: who a client is (the caller passes a [`Subject`] after CONNECT), reason codes,
//! reloading, or the broker's own `$` rules that mosquitto applies before any ACL plugin
//! (`acl__check_dollar`: no PUBLISH to `$SYS` except bridge state, no PUBLISH to `$share`).
//! Immutable once built, so one `Arc<Acl>` serves every shard.
//!
//! # What mosquitto 2.0 does, and so do we (`src/security_default.c`)
//!
//! - `user <name>`: the name is the rest of the line, trimmed, so it may contain spaces. Rules
//!   before the first `user` line belong to anonymous clients (no username). Sections with the
//!   same name merge.
//! - `topic [read|write|readwrite|deny] <filter>` and `pattern [...] <filter>`: no access word
//!   means readwrite; the filter is the rest of the line after the access word, trimmed, so it
//!   may contain spaces; it must be a valid topic filter.
//! - `pattern` rules apply to every client, whatever `user` section they appear in. Each `%c`
//!   becomes the client id and each `%u` the username, as text anywhere in the filter (so
//!   `dev/%c-in` works, and a client id containing `/` spans levels). A pattern with `%u` never
//!   applies to an anonymous client. A username or client id containing `+` or `#` matches no
//!   pattern, and reaching the patterns then denies (mosquitto does not refuse `/`).
//! - Order of decision, per check: the client's own section first (the anonymous one if it has
//!   no username): any matching `deny` refuses; else any matching rule granting the access
//!   allows. Only then the patterns, substituted: any matching `deny` refuses; else any
//!   matching grant allows. Else refused. So `deny` wins over every allow *in the same
//!   stage*, but a user's own allow is decided before a pattern's `deny` is looked at.
//! - A topic starting with `$` is matched only by a rule starting with `$` [MQTT-4.7.2-1].
//! - There is no `subscribe` access word: mosquitto 2.0's ACL file check grants every
//!   SUBSCRIBE (it returns success for `MOSQ_ACL_SUBSCRIBE`, marked FIXME) and checks `read`
//!   on each message it would deliver, retained ones included.
//!
//! # Deliberate differences (each refuses a file rather than answering differently)
//!
//! - `topic read` (an access word and no filter) is refused; mosquitto reads it as a readwrite
//!   rule on a topic literally named `read` (and `topic deny` as *granting* `deny`).
//! - A comment may be indented; mosquitto only skips `#` in the first column and refuses an
//!   indented one. Words may be separated by tabs as well as spaces.
//! - The file must be UTF-8, filters have at most [`crate::topic::TOPIC_LEVELS_MAX`] levels
//!   (mosquitto: 200), and a file holds at most [`ACL_RULES_MAX`] rules.
//! - [`Acl::subscribe_verdict`] may answer [`SubscribeVerdict::Denied`] where mosquitto grants
//!   the SUBSCRIBE and then delivers nothing; see there.
//!
//! # Files
//!
//! | file | holds |
//! |---|---|
//! | `acl.rs` | the grammar, the compiled [`Acl`] and the order of decision |
//! | `acl/matching.rs` | filter against topic (per message, no allocation); filter against filter |
//! | `acl/tests.rs` | the tests, and properties against a naive walk of the rules |

use std::path::Path;

use ahash::AHashMap;

use super::FileError;
use crate::codec::ByteStr;
use crate::topic::{SubscriptionFilter, TopicFilter};

mod matching;
#[cfg(test)]
mod tests;

/// The most rules (`topic` and `pattern` lines) one file may hold. Bounds the memory a load
/// takes; a real file, even one generated per device, has far fewer.
pub const ACL_RULES_MAX: usize = 1_000_000;

/// Who is asking: the connection's username (None = anonymous) and client id.
#[derive(Clone, Copy, Debug)]
pub struct Subject<'a> {
    pub username: Option<&'a str>,
    pub client_id: &'a str,
}

/// What a subscription may deliver, decided once at SUBSCRIBE.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SubscribeVerdict {
    /// No topic the filter matches is readable (SUBACK 0x87 / 0x80).
    Denied,
    /// Every topic the filter can match is readable and no deny rule can apply: deliveries
    /// need no per-message check.
    Allowed,
    /// Some topics the filter matches may be unreadable (a deny rule or a narrower read rule
    /// overlaps): check `may_read` per delivered message.
    CheckEach,
}

/// The compiled file. Immutable; `Send + Sync`, shared between shard threads via `Arc`.
#[derive(Debug, Default)]
pub struct Acl {
    /// Each named section's `topic` rules, looked up by the connection's username as `&str`.
    users: AHashMap<Box<str>, Rules<Box<str>>>,
    /// The rules before the first `user` line.
    anonymous: Rules<Box<str>>,
    /// Every `pattern` rule, whatever section it appeared in.
    patterns: Rules<Pattern>,
    rule_count: usize,
}

/// One stage's rules, split by what they decide so that a check scans only the lists that can
/// decide it. Within a list order does not matter: mosquitto stops at the first match, and
/// every match in one list gives the same answer.
#[derive(Debug)]
struct Rules<F> {
    deny: Vec<F>,
    read: Vec<F>,
    write: Vec<F>,
}

/// A `pattern` filter, split where `%c` and `%u` are substituted.
#[derive(Debug)]
struct Pattern {
    pieces: Box<[Piece]>,
    /// mosquitto skips a pattern naming `%u` for a client without a username.
    needs_username: bool,
}

#[derive(Debug)]
enum Piece {
    Literal(Box<str>),
    ClientId,
    Username,
}

/// The access a check asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Want {
    Read,
    Write,
}

/// The access word of a rule line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Access {
    Read,
    Write,
    ReadWrite,
    Deny,
}

/// Where the next `topic` rule goes while parsing.
enum Section {
    Anonymous,
    User(Box<str>),
}

impl Acl {
    /// Reads and compiles the file at `path`. An unreadable file is a [`FileError`] at line 0.
    pub fn load(path: &Path) -> Result<Acl, FileError> {
        Acl::parse(&FileError::read_to_string(path)?, path)
    }

    /// Compiles the text of an ACL file; `path` only names the file in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Acl, FileError> {
        let mut acl = Acl::default();
        let mut section = Section::Anonymous;
        for (index, raw) in text.lines().enumerate() {
            let line_number = index + 1;
            let at = |what: String| FileError::at(path, line_number, what);
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (keyword, rest) = split_word(line);
            match keyword {
                "user" if rest.is_empty() => return Err(at("`user` needs a user name".into())),
                "user" => section = Section::User(rest.into()),
                "topic" | "pattern" => {
                    if acl.rule_count == ACL_RULES_MAX {
                        return Err(at(format!(
                            "more than ACL_RULES_MAX ({ACL_RULES_MAX}) rules"
                        )));
                    }
                    let (access, filter) = parse_rule(keyword, rest).map_err(at)?;
                    acl.add(keyword == "pattern", &section, access, filter);
                }
                other => {
                    return Err(at(format!(
                        "unknown keyword `{other}`: expected `user`, `topic` or `pattern`"
                    )))
                }
            }
        }
        Ok(acl)
    }

    /// How many `topic` and `pattern` lines the file held.
    pub fn rule_count(&self) -> usize {
        self.rule_count
    }

    /// Whether `who` may PUBLISH to the topic name `topic` (`write` access).
    pub fn may_publish(&self, who: Subject<'_>, topic: &str) -> bool {
        self.check(who, topic, Want::Write)
    }

    /// Whether `who` may receive a message on the topic name `topic` (`read` access): checked
    /// per delivered message, retained message and will.
    pub fn may_read(&self, who: Subject<'_>, topic: &str) -> bool {
        self.check(who, topic, Want::Read)
    }

    /// What a subscription to `filter` (a topic filter, or `$share/{name}/{filter}`) may
    /// deliver to `who`.
    ///
    /// mosquitto 2.0 grants every SUBSCRIBE and checks `read` per delivery. We answer
    /// [`SubscribeVerdict::Denied`] instead when no topic the filter matches is readable, so
    /// the difference is only the SUBACK code of a subscription that would never deliver
    /// anything; a broker wanting mosquitto's SUBACK exactly may treat `Denied` as
    /// `CheckEach`. `Allowed` and `Denied` are only answered when proved from the rules (the
    /// filter tests are exact); anything less certain is `CheckEach`, and `may_read` then
    /// gives mosquitto's answer per message. An invalid filter is `Denied`.
    pub fn subscribe_verdict(&self, who: Subject<'_>, filter: &str) -> SubscribeVerdict {
        let Ok(subscription) = SubscriptionFilter::parse(ByteStr::from(filter)) else {
            return SubscribeVerdict::Denied;
        };
        let filter = subscription.filter().as_str();
        let meets = |rule: &str| matching::intersects(rule, filter);
        let covers = |rule: &str| matching::covers(rule, filter);

        // The client's own section decides first, as in `check`.
        let (own_deny, own_read) = match self.own_rules(who) {
            Some(own) => (own.deny.as_slice(), own.read.as_slice()),
            None => (&[][..], &[][..]),
        };
        if own_deny.iter().any(|r| covers(r)) {
            return SubscribeVerdict::Denied;
        }
        let own_deny_meets = own_deny.iter().any(|r| meets(r));
        if !own_deny_meets && own_read.iter().any(|r| covers(r)) {
            return SubscribeVerdict::Allowed;
        }
        let own_read_meets = own_read.iter().any(|r| meets(r));

        // Topics the own section leaves undecided fall to the patterns, if any can apply.
        let Some(patterns) = self.substituted_patterns(who) else {
            return if own_read_meets {
                SubscribeVerdict::CheckEach
            } else {
                SubscribeVerdict::Denied
            };
        };
        let pattern_deny_covers = patterns.deny.iter().any(|r| covers(r));
        let pattern_read_meets = !pattern_deny_covers && patterns.read.iter().any(|r| meets(r));
        if !own_read_meets && !pattern_read_meets {
            return SubscribeVerdict::Denied;
        }
        let any_deny_meets = own_deny_meets || patterns.deny.iter().any(|r| meets(r));
        if !any_deny_meets && patterns.read.iter().any(|r| covers(r)) {
            return SubscribeVerdict::Allowed;
        }
        SubscribeVerdict::CheckEach
    }

    /// mosquitto's `mosquitto_acl_check_default`, in its order; see the module doc.
    fn check(&self, who: Subject<'_>, topic: &str, want: Want) -> bool {
        if !matching::is_topic_name(topic) {
            return false;
        }
        let topic_bytes = topic.as_bytes();
        if let Some(own) = self.own_rules(who) {
            let matches = |rule: &str| matching::matches(rule.bytes(), topic_bytes);
            if own.deny.iter().any(|r| matches(r)) {
                return false;
            }
            if own.granting(want).iter().any(|r| matches(r)) {
                return true;
            }
        }
        if !self.patterns_apply(who) {
            return false;
        }
        let matches = |pattern: &Pattern| {
            (who.username.is_some() || !pattern.needs_username)
                && matching::matches(pattern.bytes(who), topic_bytes)
        };
        if self.patterns.deny.iter().any(matches) {
            return false;
        }
        self.patterns.granting(want).iter().any(matches)
    }

    /// The section for the client's username, or the anonymous one; `None` for a username
    /// the file does not name. A `&str` lookup: no allocation.
    fn own_rules(&self, who: Subject<'_>) -> Option<&Rules<Box<str>>> {
        match who.username {
            None => Some(&self.anonymous),
            Some(name) => self.users.get(name),
        }
    }

    /// Whether the pattern stage can allow anything for `who`. A username or client id with a
    /// wildcard character would let the client widen a pattern to other clients' topics, so
    /// mosquitto denies it at this stage.
    fn patterns_apply(&self, who: Subject<'_>) -> bool {
        let dangerous = |s: &str| s.contains(['+', '#']);
        !self.patterns.is_empty()
            && !who.username.is_some_and(dangerous)
            && !dangerous(who.client_id)
    }

    /// The patterns that apply to `who`, substituted, for [`Acl::subscribe_verdict`] (not a
    /// per-message path, so it may build strings); `None` when the pattern stage denies all.
    fn substituted_patterns(&self, who: Subject<'_>) -> Option<Rules<String>> {
        if !self.patterns_apply(who) {
            return None;
        }
        let substitute = |list: &[Pattern]| -> Vec<String> {
            list.iter()
                .filter(|p| who.username.is_some() || !p.needs_username)
                .map(|p| p.pieces.iter().map(|piece| piece.text(who)).collect())
                .collect()
        };
        Some(Rules {
            deny: substitute(&self.patterns.deny),
            read: substitute(&self.patterns.read),
            write: Vec::new(),
        })
    }

    fn add(&mut self, pattern: bool, section: &Section, access: Access, filter: TopicFilter) {
        self.rule_count += 1;
        if pattern {
            self.patterns
                .add(access, || Pattern::parse(filter.as_str()));
            return;
        }
        let rules = match section {
            Section::Anonymous => &mut self.anonymous,
            Section::User(name) => self.users.entry(name.clone()).or_default(),
        };
        rules.add(access, || filter.as_str().into());
    }
}

impl<F> Rules<F> {
    fn granting(&self, want: Want) -> &[F] {
        match want {
            Want::Read => &self.read,
            Want::Write => &self.write,
        }
    }

    fn is_empty(&self) -> bool {
        self.deny.is_empty() && self.read.is_empty() && self.write.is_empty()
    }

    /// Files the rule under the lists it decides; `readwrite` goes in both grant lists.
    fn add(&mut self, access: Access, make: impl Fn() -> F) {
        match access {
            Access::Deny => self.deny.push(make()),
            Access::Read => self.read.push(make()),
            Access::Write => self.write.push(make()),
            Access::ReadWrite => {
                self.read.push(make());
                self.write.push(make());
            }
        }
    }
}

impl<F> Default for Rules<F> {
    fn default() -> Self {
        Rules {
            deny: Vec::new(),
            read: Vec::new(),
            write: Vec::new(),
        }
    }
}

impl Pattern {
    /// Splits at each `%c` and `%u`, scanning left to right as mosquitto does (so `%%c` is a
    /// `%` then the client id). Any other `%` is literal text.
    fn parse(text: &str) -> Pattern {
        let mut pieces = Vec::new();
        let mut literal = String::new();
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            let piece = match (c, chars.peek()) {
                ('%', Some('c')) => Piece::ClientId,
                ('%', Some('u')) => Piece::Username,
                _ => {
                    literal.push(c);
                    continue;
                }
            };
            chars.next();
            if !literal.is_empty() {
                pieces.push(Piece::Literal(std::mem::take(&mut literal).into()));
            }
            pieces.push(piece);
        }
        if !literal.is_empty() {
            pieces.push(Piece::Literal(literal.into()));
        }
        let needs_username = pieces.iter().any(|p| matches!(p, Piece::Username));
        Pattern {
            pieces: pieces.into(),
            needs_username,
        }
    }

    /// The substituted filter's bytes, produced on the fly: the per-message path builds no
    /// string.
    fn bytes<'a>(&'a self, who: Subject<'a>) -> impl Iterator<Item = u8> + Clone + 'a {
        self.pieces.iter().flat_map(move |p| p.text(who).bytes())
    }
}

impl Piece {
    fn text<'a>(&'a self, who: Subject<'a>) -> &'a str {
        match self {
            Piece::Literal(text) => text,
            Piece::ClientId => who.client_id,
            // Patterns naming `%u` are skipped for anonymous clients before this is asked.
            Piece::Username => who.username.unwrap_or(""),
        }
    }
}

/// The first word of `line` and the rest, trimmed.
fn split_word(line: &str) -> (&str, &str) {
    match line.split_once(char::is_whitespace) {
        Some((word, rest)) => (word, rest.trim_start()),
        None => (line, ""),
    }
}

/// The access word and filter of a `topic` or `pattern` line, after the keyword.
fn parse_rule(keyword: &str, rest: &str) -> Result<(Access, TopicFilter), String> {
    if rest.is_empty() {
        return Err(format!("`{keyword}` needs a topic filter"));
    }
    let (word, after) = split_word(rest);
    let access = match word {
        "read" => Some(Access::Read),
        "write" => Some(Access::Write),
        "readwrite" => Some(Access::ReadWrite),
        "deny" => Some(Access::Deny),
        _ => None,
    };
    let (access, filter) = match (access, after.is_empty()) {
        (Some(_), true) => {
            return Err(format!(
                "`{keyword} {word}` needs a topic filter after `{word}`"
            ))
        }
        (Some(access), false) => (access, after),
        // mosquitto: with one word it is the filter; with more, the first must be an access word.
        (None, true) => (Access::ReadWrite, rest),
        (None, false) => {
            return Err(format!(
                "unknown access `{word}`: expected `read`, `write`, `readwrite` or `deny`"
            ))
        }
    };
    let filter = TopicFilter::try_from(filter)
        .map_err(|e| format!("invalid topic filter `{filter}`: {e}"))?;
    Ok((access, filter))
}
