//! Style checks that a machine can make (TigerBeetle's `tidy`): the module dependency rule,
//! no stubs or debug macros, bounded file length, and `unsafe` only with a SAFETY comment.
//!
//! The dependency rule reads real paths, not lines: every `use` tree (grouped, nested,
//! multi-line) is expanded into the paths it names, and every `crate::`, `super::` and `self::`
//! path is resolved against the module the code sits in, so `use crate::{shard, topic::X}` and
//! `super::super::shard::Y` are caught like `crate::shard::Y`. A directory a check reads must
//! exist, so that renaming it fails the check instead of silently turning it off.

use std::fs;
use std::path::{Path, PathBuf};

/// Longest source file we accept, in lines (STYLE.md: "files about 800 lines or fewer").
const FILE_LINES_MAX: usize = 800;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("tidy checks {}, which is unreadable: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("readable directory entry").path();
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n == "target") {
                continue;
            }
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every `.rs` file under `sub` (relative to the crate root; a directory or one file), with its
/// text. Panics if `sub` is missing or holds no Rust file: a check over nothing would pass
/// without checking anything.
fn files_under(sub: &str) -> Vec<(PathBuf, String)> {
    let dir = root().join(sub);
    let mut paths = Vec::new();
    if dir.is_file() {
        paths.push(dir);
    } else {
        assert!(
            dir.is_dir(),
            "tidy checks `{sub}`, which does not exist: was it renamed? Update tests/tidy.rs"
        );
        rust_files(&dir, &mut paths);
    }
    assert!(
        !paths.is_empty(),
        "tidy checks `{sub}`, which holds no .rs file"
    );
    paths.sort();
    paths
        .into_iter()
        .map(|p| {
            let text = fs::read_to_string(&p).expect("readable source file");
            (p, text)
        })
        .collect()
}

/// What the dependency rule needs from Rust's lexical grammar: identifiers, `::`, and single
/// punctuation. Comments, strings and character literals are dropped, lifetimes too.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Ident(String),
    PathSep,
    Punct(char),
}

fn is_ident_start(c: char) -> bool {
    c == '_' || c.is_alphabetic()
}

fn is_ident_continue(c: char) -> bool {
    c == '_' || c.is_alphanumeric()
}

/// Splits `text` into [`Token`]s, with the line each starts on.
fn tokenize(text: &str) -> Vec<(Token, usize)> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut line = 1;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '\n' {
            line += 1;
            i += 1;
        } else if c.is_whitespace() {
            i += 1;
        } else if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            i = skip_block_comment(&chars, i, &mut line);
        } else if let Some(end) = raw_string_end(&chars, i) {
            line += chars[i..end].iter().filter(|&&c| c == '\n').count();
            i = end;
        } else if c == '"' || (c == 'b' && next == Some('"')) {
            i = skip_quoted(&chars, if c == 'b' { i + 1 } else { i }, '"', &mut line);
        } else if c == 'b' && next == Some('\'') {
            i = skip_quoted(&chars, i + 1, '\'', &mut line);
        } else if c == '\'' {
            // A character literal ('x', '\n') or a lifetime ('a), which is skipped.
            let escaped = next == Some('\\');
            if escaped || chars.get(i + 2) == Some(&'\'') {
                i = skip_quoted(&chars, i, '\'', &mut line);
            } else {
                i += 1;
            }
        } else if c == 'r'
            && next == Some('#')
            && chars.get(i + 2).is_some_and(|&c| is_ident_start(c))
        {
            i += 2; // A raw identifier: `r#type` is the identifier `type`.
        } else if is_ident_start(c) {
            let start = i;
            while i < chars.len() && is_ident_continue(chars[i]) {
                i += 1;
            }
            tokens.push((Token::Ident(chars[start..i].iter().collect()), line));
        } else if c == ':' && next == Some(':') {
            tokens.push((Token::PathSep, line));
            i += 2;
        } else {
            tokens.push((Token::Punct(c), line));
            i += 1;
        }
    }
    tokens
}

/// Skips a (possibly nested) block comment starting at `i`; returns the index after it.
fn skip_block_comment(chars: &[char], mut i: usize, line: &mut usize) -> usize {
    let mut depth = 0;
    while i < chars.len() {
        if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
            depth += 1;
            i += 2;
        } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
            depth -= 1;
            i += 2;
            if depth == 0 {
                return i;
            }
        } else {
            if chars[i] == '\n' {
                *line += 1;
            }
            i += 1;
        }
    }
    i
}

/// Skips a literal opened by `quote` at `i` (escapes honoured); returns the index after it.
fn skip_quoted(chars: &[char], mut i: usize, quote: char, line: &mut usize) -> usize {
    i += 1;
    while i < chars.len() {
        match chars[i] {
            '\\' => i += 2,
            c if c == quote => return i + 1,
            c => {
                if c == '\n' {
                    *line += 1;
                }
                i += 1;
            }
        }
    }
    i
}

/// If a raw string (`r"..."`, `r#"..."#`, `br##"..."##`) starts at `i`, the index after it.
fn raw_string_end(chars: &[char], i: usize) -> Option<usize> {
    // An identifier that merely ends in `r` or `br` is not a prefix.
    if i > 0 && is_ident_continue(chars[i - 1]) {
        return None;
    }
    let mut j = i;
    if chars.get(j) == Some(&'b') {
        j += 1;
    }
    if chars.get(j) != Some(&'r') {
        return None;
    }
    j += 1;
    let hashes = chars[j..].iter().take_while(|&&c| c == '#').count();
    j += hashes;
    if chars.get(j) != Some(&'"') {
        return None;
    }
    j += 1;
    while j < chars.len() {
        if chars[j] == '"' && chars[j + 1..].iter().take_while(|&&c| c == '#').count() >= hashes {
            return Some(j + 1 + hashes);
        }
        j += 1;
    }
    Some(j)
}

/// The module a source file defines, as path segments from the crate root:
/// `src/shard/driver.rs` is `["shard", "driver"]`, `src/shard/mod.rs` is `["shard"]`.
fn module_of(path: &Path) -> Vec<String> {
    let relative = path
        .strip_prefix(root().join("src"))
        .expect("dependency rule applies to files under src/");
    let mut segments: Vec<String> = relative
        .with_extension("")
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if segments
        .last()
        .is_some_and(|s| s == "mod" || s == "lib" || s == "main")
    {
        segments.pop();
    }
    segments
}

/// A path the code names, as written (`super::super::shard::X`), with the line it is on.
#[derive(Debug)]
struct NamedPath {
    segments: Vec<String>,
    /// The module the path is written in, for resolving `self` and `super`.
    module: Vec<String>,
    line: usize,
}

impl NamedPath {
    /// The path from the crate root (`crate::shard::X`), or as written if it starts with an
    /// external crate (`tokio::sync::Notify`). `None` if it climbs above the crate root.
    fn resolve(&self) -> Option<String> {
        let mut segments = self.segments.iter().peekable();
        let mut resolved = match segments.peek().map(|s| s.as_str()) {
            Some("crate") => {
                segments.next();
                vec![]
            }
            Some("self") => {
                segments.next();
                self.module.clone()
            }
            Some("super") => self.module.clone(),
            _ => return Some(self.segments.join("::")),
        };
        while segments.peek().is_some_and(|s| *s == "super") {
            segments.next();
            resolved.pop()?;
        }
        let rest: Vec<&str> = segments.map(|s| s.as_str()).collect();
        let mut out = String::from("crate");
        for s in resolved.iter().map(|s| s.as_str()).chain(rest) {
            out.push_str("::");
            out.push_str(s);
        }
        Some(out)
    }
}

/// Every path a source file names: each leaf of each `use` tree, expanded, and each path of
/// two or more segments in the code. Inline `mod x { .. }` blocks shift what `super` means.
fn named_paths(text: &str, file_module: &[String]) -> Vec<NamedPath> {
    let tokens = tokenize(text);
    let mut paths = Vec::new();
    // Inline modules we are inside, with the brace depth their body opened at.
    let mut inline: Vec<(String, usize)> = Vec::new();
    let mut depth = 0;
    let mut i = 0;
    while i < tokens.len() {
        let module = || {
            let mut m = file_module.to_vec();
            m.extend(inline.iter().map(|(name, _)| name.clone()));
            m
        };
        match &tokens[i].0 {
            Token::Punct('{') => {
                depth += 1;
                i += 1;
            }
            Token::Punct('}') => {
                if inline.last().is_some_and(|&(_, d)| d == depth) {
                    inline.pop();
                }
                depth -= 1;
                i += 1;
            }
            Token::Ident(kw) if kw == "mod" => {
                if let (Some((Token::Ident(name), _)), Some((Token::Punct('{'), _))) =
                    (tokens.get(i + 1), tokens.get(i + 2))
                {
                    depth += 1;
                    inline.push((name.clone(), depth));
                    i += 3;
                } else {
                    i += 1;
                }
            }
            Token::Ident(kw) if kw == "use" => {
                let module = module();
                let mut leaves = Vec::new();
                i = parse_use_tree(&tokens, i + 1, &mut Vec::new(), &mut leaves);
                paths.extend(leaves.into_iter().map(|(segments, line)| NamedPath {
                    segments,
                    module: module.clone(),
                    line,
                }));
            }
            Token::Ident(first) => {
                let line = tokens[i].1;
                let after_sep = i > 0 && tokens[i - 1].0 == Token::PathSep;
                let mut segments = vec![first.clone()];
                i += 1;
                while let (Some((Token::PathSep, _)), Some((Token::Ident(s), _))) =
                    (tokens.get(i), tokens.get(i + 1))
                {
                    segments.push(s.clone());
                    i += 2;
                }
                if !after_sep && segments.len() > 1 {
                    paths.push(NamedPath {
                        segments,
                        module: module(),
                        line,
                    });
                }
            }
            _ => i += 1,
        }
    }
    paths
}

/// Parses one use tree starting at `i` (after `use`, or inside a group), appending every leaf
/// path, prefixed with `prefix`, to `leaves`. Returns the index just after the tree (at the `,`,
/// `}` or `;` that ends it; a `;` is consumed).
fn parse_use_tree(
    tokens: &[(Token, usize)],
    mut i: usize,
    prefix: &mut Vec<String>,
    leaves: &mut Vec<(Vec<String>, usize)>,
) -> usize {
    let depth_at_start = prefix.len();
    // A leading `::` (`use ::tokio::x`) names an external crate; the segments say which.
    if tokens.get(i).is_some_and(|(t, _)| *t == Token::PathSep) {
        i += 1;
    }
    loop {
        match tokens.get(i) {
            Some((Token::Ident(s), line)) => {
                let line = *line;
                i += 1;
                if s == "self" && !prefix.is_empty() {
                    // `use a::{self}` names `a` itself.
                } else {
                    prefix.push(s.clone());
                }
                if tokens.get(i).is_some_and(|(t, _)| *t == Token::PathSep) {
                    i += 1;
                    continue;
                }
                leaves.push((prefix.clone(), line));
                // `as name` renames the leaf; the path is what it was.
                if matches!(tokens.get(i), Some((Token::Ident(a), _)) if a == "as") {
                    i += 2;
                }
                break;
            }
            Some((Token::Punct('*'), line)) => {
                leaves.push((prefix.clone(), *line));
                i += 1;
                break;
            }
            Some((Token::Punct('{'), _)) => {
                i += 1;
                loop {
                    match tokens.get(i) {
                        Some((Token::Punct('}'), _)) => {
                            i += 1;
                            break;
                        }
                        Some((Token::Punct(','), _)) => i += 1,
                        None => break,
                        Some(_) => i = parse_use_tree(tokens, i, prefix, leaves),
                    }
                }
                break;
            }
            _ => break,
        }
    }
    prefix.truncate(depth_at_start);
    if tokens.get(i).is_some_and(|(t, _)| *t == Token::Punct(';')) {
        i += 1;
    }
    i
}

/// The modules and crates each directory may not reach, as resolved paths.
const DEPENDENCY_RULES: [(&str, &[&str]); 9] = [
    (
        "src/codec",
        &[
            "crate::topic",
            "crate::session",
            "crate::shard",
            "crate::runtime",
            "crate::config",
            "tokio",
        ],
    ),
    (
        "src/topic",
        &[
            "crate::auth",
            "crate::session",
            "crate::shard",
            "crate::runtime",
            "crate::config",
            "tokio",
        ],
    ),
    ("src/session", &["crate::shard", "crate::runtime", "tokio"]),
    // The shard is driven by the runtime, never the other way round: what the driver needs
    // (e.g. handing freed pages back) lives in the shard.
    ("src/shard", &["crate::runtime"]),
    // The rings are generic: the messages they carry, and every type those name, belong to the
    // shard (`shard/message.rs`).
    (
        "src/mesh",
        &[
            "crate::codec",
            "crate::topic",
            "crate::session",
            "crate::shard",
            "crate::runtime",
        ],
    ),
    // The log is the shard's record, below it: it knows sessions and messages, never who
    // writes it or how (`shard/driver/wal.rs` does the I/O of a running shard).
    (
        "src/persist",
        &[
            "crate::shard",
            "crate::runtime",
            "crate::mesh",
            "crate::transport",
            "tokio",
        ],
    ),
    // `ByteStr` has its own file so that `packet` (which holds `Properties`) and `properties`
    // do not import each other.
    ("src/codec/properties.rs", &["crate::codec::packet"]),
    // Transports are sans-IO byte transforms under the shard: bytes in, bytes out, no socket,
    // no MQTT, no knowledge of who drives them.
    (
        "src/transport",
        &[
            "crate::codec",
            "crate::session",
            "crate::shard",
            "crate::mesh",
            "crate::runtime",
            "crate::config",
            "tokio",
        ],
    ),
    // Auth is sans-IO and sits beside the codec: it may import `codec`, and `topic` for the
    // ACL file's filters (topic imports only codec, so there is no cycle), and nothing else.
    (
        "src/auth",
        &[
            "crate::session",
            "crate::shard",
            "crate::mesh",
            "crate::runtime",
            "crate::config",
            "crate::metrics",
            "tokio",
        ],
    ),
];

/// Whether `path` (resolved) is `forbidden` or inside it.
fn reaches(path: &str, forbidden: &str) -> bool {
    path.strip_prefix(forbidden)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
}

/// The paths in `text` (the file at `path`) that reach one of `forbidden`, as messages.
fn forbidden_paths(path: &Path, text: &str, forbidden: &[&str]) -> Vec<String> {
    let mut broken = Vec::new();
    for named in named_paths(text, &module_of(path)) {
        let written = named.segments.join("::");
        let Some(resolved) = named.resolve() else {
            broken.push(format!(
                "{}:{}: `{written}` climbs above the crate root",
                path.display(),
                named.line
            ));
            continue;
        };
        for f in forbidden.iter().filter(|f| reaches(&resolved, f)) {
            broken.push(format!(
                "{}:{}: `{written}` reaches {f}",
                path.display(),
                named.line
            ));
        }
    }
    broken
}

/// `codec <- topic <- session <- shard -> mesh`: lower layers never import higher ones or tokio.
#[test]
fn dependency_rule_holds() {
    let mut broken = Vec::new();
    for (dir, forbidden) in DEPENDENCY_RULES {
        for (path, text) in files_under(dir) {
            broken.extend(forbidden_paths(&path, &text, forbidden));
        }
    }
    assert!(
        broken.is_empty(),
        "dependency rule broken:\n{}",
        broken.join("\n")
    );
}

/// The path reader behind [`dependency_rule_holds`] sees through the forms a line match misses.
#[test]
fn dependency_rule_reads_use_trees() {
    let source = r##"
        //! Mentions crate::runtime only in a comment.
        use crate::{codec::ByteStr, shard, topic::{self, TopicFilter as F}};
        use super::super::runtime::Thing;
        pub(crate) use ::tokio::sync::{
            Notify,
            mpsc::{self, Sender},
        };
        const S: &str = "crate::config::X";
        const R: &str = r#"crate::config::Y"#;
        fn f<'a>(c: char) -> bool { c == '{' && crate::metrics::Stats::new() == self::local::x() }
        mod tests {
            use super::super::super::auth::*;
        }
    "##;
    // Written as if it were src/mesh/ring.rs.
    let module = vec!["mesh".to_string(), "ring".to_string()];
    let resolved: Vec<String> = named_paths(source, &module)
        .iter()
        .map(|p| p.resolve().unwrap_or_else(|| "<above root>".into()))
        .collect();
    assert_eq!(
        resolved,
        [
            "crate::codec::ByteStr",
            "crate::shard",
            "crate::topic",
            "crate::topic::TopicFilter",
            "crate::runtime::Thing",
            "tokio::sync::Notify",
            "tokio::sync::mpsc",
            "tokio::sync::mpsc::Sender",
            "crate::metrics::Stats::new",
            "crate::mesh::ring::local::x",
            "crate::auth",
        ]
    );
    assert!(reaches("crate::shard", "crate::shard"));
    assert!(reaches("crate::shard::driver", "crate::shard"));
    assert!(!reaches("crate::sharded", "crate::shard"));
    assert!(!reaches("tokio_uring::fs", "tokio"));
}

#[test]
fn no_stubs_or_debug_macros() {
    let mut found = Vec::new();
    for dir in ["src", "loadgen/src", "tests", "benches"] {
        for (path, text) in files_under(dir) {
            for (n, line) in text.lines().enumerate() {
                // Built from pieces so that this file does not match its own search.
                for bad in [
                    concat!("todo", "!("),
                    concat!("unimplemented", "!("),
                    concat!("dbg", "!("),
                ] {
                    if line.contains(bad) {
                        found.push(format!("{}:{}: {}", path.display(), n + 1, line.trim()));
                    }
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "stubs left in the code:\n{}",
        found.join("\n")
    );
}

#[test]
fn files_are_small() {
    let mut long = Vec::new();
    for dir in ["src", "loadgen/src", "tests"] {
        for (path, text) in files_under(dir) {
            let lines = text.lines().count();
            if lines > FILE_LINES_MAX {
                long.push(format!("{}: {lines} lines", path.display()));
            }
        }
    }
    assert!(
        long.is_empty(),
        "files over {FILE_LINES_MAX} lines:\n{}",
        long.join("\n")
    );
}

#[test]
fn unsafe_has_safety_comment() {
    let mut bare = Vec::new();
    for dir in ["src", "loadgen/src"] {
        for (path, text) in files_under(dir) {
            let lines: Vec<&str> = text.lines().collect();
            for (n, line) in lines.iter().enumerate() {
                let code = line.trim_start();
                if code.starts_with("//") || !code.contains("unsafe ") {
                    continue;
                }
                let before = &lines[n.saturating_sub(3)..n];
                if !before.iter().any(|l| l.contains("SAFETY:")) {
                    bare.push(format!("{}:{}", path.display(), n + 1));
                }
            }
        }
    }
    assert!(
        bare.is_empty(),
        "unsafe without a SAFETY comment:\n{}",
        bare.join("\n")
    );
}

/// Every module opens with a `//!` doc saying what it owns.
#[test]
fn modules_have_docs() {
    let mut undocumented = Vec::new();
    for (path, text) in files_under("src") {
        if !text.trim_start().starts_with("//!") {
            undocumented.push(path.display().to_string());
        }
    }
    assert!(
        undocumented.is_empty(),
        "modules without //! docs:\n{}",
        undocumented.join("\n")
    );
}
