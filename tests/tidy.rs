//! Style checks that a machine can make (TigerBeetle's `tidy`): the module dependency rule,
//! no stubs or debug macros, bounded file length, and `unsafe` only with a SAFETY comment.

use std::fs;
use std::path::{Path, PathBuf};

/// Longest source file we accept, in lines (STYLE.md: "files about 800 lines or fewer").
const FILE_LINES_MAX: usize = 900;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
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

fn files_under(sub: &str) -> Vec<(PathBuf, String)> {
    let mut paths = Vec::new();
    rust_files(&root().join(sub), &mut paths);
    paths
        .into_iter()
        .map(|p| {
            let text = fs::read_to_string(&p).expect("readable source file");
            (p, text)
        })
        .collect()
}

/// `codec <- topic <- session <- shard`: lower layers never import higher ones or tokio.
#[test]
fn dependency_rule_holds() {
    let rules: [(&str, &[&str]); 5] = [
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
        ("src/mesh", &["crate::shard", "crate::runtime"]),
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
    let mut broken = Vec::new();
    for (dir, forbidden) in rules {
        for (path, text) in files_under(dir) {
            for line in text.lines() {
                let code = line.trim_start();
                if code.starts_with("//") {
                    continue;
                }
                for f in forbidden {
                    if code.contains(&format!("{f}::")) || code.contains(&format!("use {f}")) {
                        broken.push(format!("{}: `{}` imports {f}", path.display(), code));
                    }
                }
            }
        }
    }
    assert!(
        broken.is_empty(),
        "dependency rule broken:\n{}",
        broken.join("\n")
    );
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
    for dir in ["src", "loadgen/src"] {
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
