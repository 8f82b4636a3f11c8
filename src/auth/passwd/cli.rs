//! `ringmq passwd [-c] [-D] [-I iterations] FILE USER`: adds, changes or deletes one user's
//! `$7$` entry in a mosquitto password file, like `mosquitto_passwd`.
//!
//! Owns: the arguments, reading the password (terminal without echo, asked twice; or one line
//! of stdin when stdin is not a terminal, so scripts can pipe it; never argv, where any local
//! user could read it in `ps`), the edit of the file's text and its atomic replacement.
//! Does not own: the line grammar or the hash (`passwd.rs`, `hash.rs`).
//!
//! Differences from `mosquitto_passwd`, on purpose: no `-b` (argv passwords), no `-H sha512`
//! (unstretched hashes are never written), and comments and blank lines are kept (where
//! `mosquitto_passwd` calls such a file corrupt). The file is replaced by rename, so a reader
//! (the broker reloading) sees the old file or the new one, never half of one.

use std::fs;
use std::io::{BufRead, IsTerminal, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::{check_username, classify, hash_pbkdf2, Line, PasswordFile};
use super::{PBKDF2_ITERATIONS_DEFAULT, PBKDF2_ITERATIONS_MAX};

/// Longest password we hash, in bytes: `mosquitto_passwd`'s limit ("less than 65536
/// characters"), and the most an MQTT CONNECT's password field can carry.
pub const PASSWORD_BYTES_MAX: usize = 65_535;

/// Mode of a file we create: the hashes are offline-guessable, so only the owner reads them.
const NEW_FILE_MODE: u32 = 0o600;

const USAGE: &str = concat!(
    "usage: ringmq passwd [-c | -D] [-I iterations] FILE USER\n",
    "  -c  create FILE (replacing any file there) holding only USER\n",
    "  -D  delete USER from FILE\n",
    "  -I  PBKDF2 iterations for the new entry (default 210000)\n",
    "The password is read from the terminal (twice, without echo) or, when stdin is not a\n",
    "terminal, as one line of stdin.",
);

/// What the command line asks for.
#[derive(Debug, PartialEq, Eq)]
struct Request {
    action: Action,
    file: PathBuf,
    user: String,
    iterations: u32,
}

#[derive(Debug, PartialEq, Eq)]
enum Action {
    /// Add or replace the user's entry; `create` starts from an empty file.
    Set {
        create: bool,
    },
    Delete,
}

/// Runs `ringmq passwd` with the arguments after `passwd`. `Err` holds the message for stderr.
pub fn run_passwd_command(args: &[String]) -> Result<(), String> {
    if args.iter().any(|a| a == "-h" || a == "--help") {
        println!("{USAGE}");
        return Ok(());
    }
    let request = parse_args(args).map_err(|e| format!("{e}\n{USAGE}"))?;
    check_username(&request.user)?;
    let old = match request.action {
        Action::Set { create: true } => String::new(),
        _ => read_existing(&request.file)?,
    };
    let entry = match request.action {
        Action::Delete => None,
        Action::Set { .. } => {
            let password = read_password()?;
            let hash =
                hash_pbkdf2(password.as_bytes(), request.iterations).map_err(|e| e.to_string())?;
            Some(format!("{}:{hash}", request.user))
        }
    };
    let new = edit(&old, &request.user, entry.as_deref())?;
    write_atomically(
        &request.file,
        &new,
        request.action == Action::Set { create: true },
    )
    .map_err(|e| format!("{}: {e}", request.file.display()))
}

fn parse_args(args: &[String]) -> Result<Request, String> {
    let (mut create, mut delete) = (false, false);
    let mut iterations = PBKDF2_ITERATIONS_DEFAULT;
    let mut positional = Vec::new();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-c" => create = true,
            "-D" => delete = true,
            "-I" => {
                iterations = args
                    .next()
                    .and_then(|n| n.parse().ok())
                    .filter(|n| (1..=PBKDF2_ITERATIONS_MAX).contains(n))
                    .ok_or(format!("-I needs a number in 1..={PBKDF2_ITERATIONS_MAX}"))?;
            }
            "-b" => {
                return Err(
                    "-b (password on the command line) is not supported: any local \
                                user could read it; pipe it on stdin instead"
                        .to_owned(),
                )
            }
            other if other.starts_with('-') && other.len() > 1 => {
                return Err(format!("unknown option {other}"));
            }
            _ => positional.push(arg.clone()),
        }
    }
    let action = match (create, delete) {
        (true, true) => return Err("-c and -D cannot be used together".to_owned()),
        (_, true) => Action::Delete,
        (create, false) => Action::Set { create },
    };
    let [file, user]: [String; 2] = positional
        .try_into()
        .map_err(|_| "expected FILE and USER".to_owned())?;
    Ok(Request {
        action,
        file: PathBuf::from(file),
        user,
        iterations,
    })
}

/// The current file, which must parse: editing a file the broker would refuse only hides the
/// problem until the next restart.
fn read_existing(path: &Path) -> Result<String, String> {
    let text = fs::read_to_string(path)
        .map_err(|e| format!("{}: {e} (use -c to create a new file)", path.display()))?;
    PasswordFile::parse(&text, path).map_err(|e| e.to_string())?;
    Ok(text)
}

/// `old` with `user`'s line replaced by `entry` (or removed when `entry` is `None`); every
/// other line, comment and blank line is kept byte for byte. A new user goes at the end.
fn edit(old: &str, user: &str, entry: Option<&str>) -> Result<String, String> {
    let mut new = String::with_capacity(old.len() + entry.map_or(0, |e| e.len() + 1));
    let mut found = false;
    for raw in old.split_inclusive('\n') {
        let body = raw.strip_suffix('\n').unwrap_or(raw);
        let is_user = matches!(classify(body), Ok(Line::Entry { user: u, .. }) if u == user);
        if !is_user {
            new.push_str(raw);
            continue;
        }
        found = true;
        if let Some(entry) = entry {
            new.push_str(entry);
            new.push('\n');
        }
    }
    match (found, entry) {
        (false, None) => return Err(format!("user {user:?} is not in the password file")),
        (false, Some(entry)) => {
            if !new.is_empty() && !new.ends_with('\n') {
                new.push('\n');
            }
            new.push_str(entry);
            new.push('\n');
        }
        (true, _) => {}
    }
    Ok(new)
}

/// The password from the terminal (asked twice, compared) or from one line of stdin.
fn read_password() -> Result<String, String> {
    let password = if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password("Password: ").map_err(|e| e.to_string())?;
        let again = rpassword::prompt_password("Reenter password: ").map_err(|e| e.to_string())?;
        if first != again {
            return Err("passwords do not match".to_owned());
        }
        first
    } else {
        read_stdin_line()?
    };
    check_password(&password)?;
    Ok(password)
}

/// One line of stdin, without its line ending, read no further than the longest password.
fn read_stdin_line() -> Result<String, String> {
    let mut line = Vec::new();
    let limit = PASSWORD_BYTES_MAX as u64 + 2; // room for "\r\n"
    std::io::stdin()
        .lock()
        .take(limit)
        .read_until(b'\n', &mut line)
        .map_err(|e| format!("reading the password from stdin: {e}"))?;
    while line.last().is_some_and(|&b| b == b'\n' || b == b'\r') {
        line.pop();
    }
    String::from_utf8(line).map_err(|_| "the password is not UTF-8".to_owned())
}

fn check_password(password: &str) -> Result<(), String> {
    if password.is_empty() {
        return Err("empty password".to_owned());
    }
    if password.len() > PASSWORD_BYTES_MAX {
        return Err(format!(
            "password longer than PASSWORD_BYTES_MAX ({PASSWORD_BYTES_MAX} bytes)"
        ));
    }
    // mosquitto treats passwords as C strings: it could never match one with a NUL in it.
    if password.contains('\0') {
        return Err("the password has a NUL byte".to_owned());
    }
    Ok(())
}

/// Replaces `path` with `text` through a temporary file in the same directory and a rename.
/// A new file (or `-c`) gets [`NEW_FILE_MODE`]; a replaced one keeps its mode. A symlink is
/// followed, so the link stays and its target changes, as with `mosquitto_passwd`.
fn write_atomically(path: &Path, text: &str, create: bool) -> std::io::Result<()> {
    let target = if path.exists() {
        fs::canonicalize(path)?
    } else {
        path.to_owned()
    };
    let mode = match fs::metadata(&target) {
        Ok(meta) if !create => meta.permissions().mode() & 0o7777,
        _ => NEW_FILE_MODE,
    };
    let dir = match target.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_owned(),
        _ => PathBuf::from("."),
    };
    let name = target.file_name().unwrap_or(target.as_os_str());
    let mut nonce = [0u8; 8];
    getrandom::fill(&mut nonce).map_err(std::io::Error::other)?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        name.to_string_lossy(),
        u64::from_le_bytes(nonce)
    ));
    let result = (|| {
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(NEW_FILE_MODE)
            .open(&tmp)?;
        file.write_all(text.as_bytes())?;
        // The umask may have narrowed the mode at creation; set exactly what we want.
        file.set_permissions(fs::Permissions::from_mode(mode))?;
        file.sync_all()?;
        fs::rename(&tmp, &target)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result?;
    // Make the rename itself durable; a failure here leaves a correct file, so it is ignored.
    if let Ok(dir) = fs::File::open(&dir) {
        let _ = dir.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn arguments() {
        let r = parse_args(&args(&["-c", "f", "u"])).expect("valid");
        assert_eq!(r.action, Action::Set { create: true });
        assert_eq!((r.file, r.user), (PathBuf::from("f"), "u".to_owned()));
        assert_eq!(r.iterations, PBKDF2_ITERATIONS_DEFAULT);
        let r = parse_args(&args(&["-D", "f", "u"])).expect("valid");
        assert_eq!(r.action, Action::Delete);
        let r = parse_args(&args(&["-I", "1000", "f", "u"])).expect("valid");
        assert_eq!(r.iterations, 1000);
        for bad in [
            &["-c", "-D", "f", "u"][..],
            &["f"],
            &["f", "u", "extra"],
            &["-b", "f", "u", "pw"],
            &["-x", "f", "u"],
            &["-I", "0", "f", "u"],
            &["-I", "1000001", "f", "u"],
        ] {
            assert!(parse_args(&args(bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn usage_names_the_real_default() {
        let default = format!("(default {PBKDF2_ITERATIONS_DEFAULT})");
        assert!(USAGE.contains(&default), "{USAGE}");
    }

    #[test]
    fn edit_keeps_other_lines() {
        let old = "# users\nalice:$7$old\n\nbob:$6$x\r\n";
        assert_eq!(
            edit(old, "alice", Some("alice:$7$new")).expect("edit"),
            "# users\nalice:$7$new\n\nbob:$6$x\r\n"
        );
        assert_eq!(
            edit(old, "bob", None).expect("delete"),
            "# users\nalice:$7$old\n\n"
        );
        assert_eq!(
            edit("alice:$7$a", "carol", Some("carol:$7$c")).expect("append"),
            "alice:$7$a\ncarol:$7$c\n"
        );
        assert_eq!(
            edit("", "carol", Some("carol:$7$c")).expect("new"),
            "carol:$7$c\n"
        );
        assert!(edit(old, "nobody", None).is_err());
        // A commented-out entry is not the user's entry.
        assert_eq!(
            edit("#alice:$7$a\n", "alice", None).unwrap_err(),
            "user \"alice\" is not in the password file"
        );
    }

    #[test]
    fn passwords_mosquitto_cannot_match_are_refused() {
        assert!(check_password("").is_err());
        assert!(check_password("a\0b").is_err());
        assert!(check_password(&"x".repeat(PASSWORD_BYTES_MAX + 1)).is_err());
        assert!(check_password(&"x".repeat(PASSWORD_BYTES_MAX)).is_ok());
    }

    #[test]
    fn atomic_write_modes() {
        let dir = std::env::temp_dir().join(format!("ringmq-passwd-cli-{}", std::process::id()));
        fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("pw");
        let _ = fs::remove_file(&path);
        write_atomically(&path, "a:b\n", false).expect("create");
        let mode = |p: &Path| fs::metadata(p).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).expect("chmod");
        write_atomically(&path, "a:c\n", false).expect("update");
        assert_eq!(mode(&path), 0o640, "an update keeps the mode");
        assert_eq!(fs::read_to_string(&path).expect("read"), "a:c\n");
        write_atomically(&path, "a:d\n", true).expect("recreate");
        assert_eq!(mode(&path), 0o600, "-c makes a private file");
        let left: Vec<_> = fs::read_dir(&dir).expect("ls").flatten().collect();
        assert_eq!(left.len(), 1, "no temporary file is left behind");
        fs::remove_dir_all(&dir).expect("clean up");
    }
}
