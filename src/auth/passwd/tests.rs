//! Known vectors made by other implementations, and every way a line can be wrong.
//!
//! `$7$`/`$6$` lines with 12-byte salts come from Debian's `mosquitto_passwd` 2.0.11
//! (`mosquitto_passwd -b -H sha512-pbkdf2|sha512 FILE USER PASSWORD`). The 64-byte-salt lines
//! (mosquitto 2.1's length) and the 64 KiB password come from Python's `hashlib`. The argon2id
//! strings come from Debian's `argon2` tool, the reference libargon2 that mosquitto 2.1 links:
//! `echo -n PASSWORD | argon2 SALT -id -t T -k M -p P -l LEN -e`.

use std::path::Path;

use super::*;

/// `mosquitto_passwd -c -b -H sha512-pbkdf2 f alice 'correct horse'`.
const PBKDF2_ALICE: &str = "alice:$7$101$yuiAwd9pcj5BbJVd$S1M4bNqmTjWzz1Q/c++/xtwsu9I9WXfbWmE9sk8nCihikcGvN2C4fNnujrWVF3QSntm6+W4oUdfId4Th4QW14A==";
/// `mosquitto_passwd -b -H sha512-pbkdf2 f empty ''`: batch mode takes an empty password.
const PBKDF2_EMPTY: &str = "empty:$7$101$qxWNZVvc0x+Bt7no$zMajzST4z2Rq9oCIUVWJ9/sCTtM1dxX564orSrhsk9I+JrvtlDbixq0CW5cMYjVGlkUKswranEm0rlkhwgcvFA==";
/// `mosquitto_passwd -c -b -H sha512 f bob 'battery staple'`.
const SHA512_BOB: &str = "bob:$6$YfJk680YS4CIi5hJ$11NoLuNEN6kd8U2XRynhVYMfc7gFidgl5l8gxk4suo8WBV6C45vyeXE7W+0I3YY4AMRYDDHWwnEOk2ujcM4/Tg==";
/// `mosquitto_passwd`, both forms, password 65 535 × `x` (its longest).
const PBKDF2_LONG: &str = "long:$7$101$t/2AmZCcY3dF58pC$0H9/oRYqzpKW1Fq5FbmG5x/1/QREHhd/q6KNgJJye0A/x03HcaaCMt8N7mr+VjqTlyi+mfuoteivWkUSIyDYOQ==";
const SHA512_LONG: &str = "long6:$6$4sbY4oV1Q9jzzn6N$fjJZqPP/Q66wG20J7b4VnEiUwlY5pn/3iFdwPstXnFShr4m3aQkx5Mw3lnDCpEdRZiYtbKTCEJMgA1PVJJ5UsA==";
/// `hashlib.pbkdf2_hmac('sha512', b'y' * 65536, b'sixty-four-k', 101, 64)`.
const PBKDF2_64KIB: &str = "huge:$7$101$c2l4dHktZm91ci1r$uaWkRyLLTnxERZYF6iKH2lwBs8F9rC3Zx5A8WmDtWcdHLZYqW2a7q9uTHRWUGpzfIIirPW1nsV/D9j4rPM5pLQ==";
/// mosquitto 2.1's salt length: `hashlib`, salt `bytes(range(64))`, password 'correct horse'
/// (PBKDF2 with 1000 iterations; SHA-512 with 'battery staple').
const PBKDF2_SALT64: &str = "carol:$7$1000$AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7PD0+Pw==$53KiEygVzVVEVUVTe4h79yMtYp0OxxoKFip82vf7OCrEbcm4/E88oGkCyN0NhQ7fLOSBIpiITuELG/0ldDPFMQ==";
const SHA512_SALT64: &str = "dave:$6$AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7PD0+Pw==$l88dpOEE3Kv5NTlA1oaeu6i+rmK5svYSWR7CRm7k0wHqAv1GFfbh7w/MrE/gAlgpcJ1pWhPpLC83UpmBB4DHSg==";
/// libargon2 with mosquitto 2.1's exact parameters (t=1, m=47104, p=1, 64-byte salt and
/// hash), password 'correct horse'.
const ARGON2_MOSQUITTO: &str = "erin:$argon2id$v=19$m=47104,t=1,p=1$bW9zcXVpdHRvLTIuMS1zYWx0LW9mLXNpeHR5LWZvdXItYnl0ZXMtMDEyMzQ1Njc4OWFiY2RlZmdoaWprbG1ubw$o100/QMdcrPcIEkhJY5euYJpbjDfNqICesjzj5EFsrKl0C5RKzgnqjFhTR1HeD+J3X5mAVqHT2U7MpYYLeH1Aw";
/// libargon2, small and multi-lane: t=2, m=64, p=2, 32-byte hash, password 'correct horse'.
const ARGON2_SMALL: &str = "frank:$argon2id$v=19$m=64,t=2,p=2$c21hbGwtc2FsdC0xNmJ5dA$Onle9fHTyOLgy5cz1l8Yj4JeJI9uptwC/mrJD6V/xw4";

fn path() -> &'static Path {
    Path::new("pw.conf")
}

fn file(lines: &[&str]) -> PasswordFile {
    PasswordFile::parse(&lines.join("\n"), path()).expect("valid password file")
}

/// The error for `text`, as `file:line: what`.
fn error(text: &str) -> String {
    PasswordFile::parse(text, path())
        .expect_err("an invalid file")
        .to_string()
}

#[test]
fn mosquitto_vectors_verify() {
    let f = file(&[
        PBKDF2_ALICE,
        PBKDF2_EMPTY,
        SHA512_BOB,
        PBKDF2_SALT64,
        SHA512_SALT64,
    ]);
    assert_eq!(f.len(), 5);
    assert!(f.verify("alice", b"correct horse"));
    assert!(!f.verify("alice", b"correct horsE"));
    // mosquitto would cut the password at the NUL and accept it; we hash every byte.
    assert!(!f.verify("alice", b"correct horse\0x"));
    // HMAC pads a short key with zeros, so trailing NULs give the same PBKDF2 key: a property
    // of `$7$` itself (OpenSSL's too), not a bug here.
    assert!(f.verify("alice", b"correct horse\0"));
    assert!(!f.verify("alice", b""));
    assert!(f.verify("empty", b""));
    assert!(!f.verify("empty", b" "));
    assert!(f.verify("bob", b"battery staple"));
    assert!(!f.verify("bob", b"battery"));
    assert!(f.verify("carol", b"correct horse"));
    assert!(!f.verify("carol", b"battery staple"));
    assert!(f.verify("dave", b"battery staple"));
    assert!(!f.verify("dave", b"correct horse"));
}

#[test]
fn argon2id_vectors_verify() {
    let f = file(&[ARGON2_SMALL]);
    assert!(f.verify("frank", b"correct horse"));
    assert!(!f.verify("frank", b"correct horsf"));
    assert!(!f.verify("frank", b""));
    let f = file(&[ARGON2_MOSQUITTO]);
    assert!(f.verify("erin", b"correct horse"));
    assert!(!f.verify("erin", b"wrong"));
}

#[test]
fn long_passwords() {
    let f = file(&[PBKDF2_LONG, SHA512_LONG, PBKDF2_64KIB, ARGON2_SMALL]);
    let x = vec![b'x'; 65_535];
    assert!(f.verify("long", &x));
    assert!(f.verify("long6", &x));
    assert!(!f.verify("long", &x[1..]));
    let y = vec![b'y'; 64 * 1024];
    assert!(f.verify("huge", &y));
    assert!(!f.verify("huge", &y[1..]));
    // Far past any limit: still just `false`.
    let big = vec![0xFFu8; 1024 * 1024];
    for user in ["long", "long6", "huge", "frank", "nobody"] {
        assert!(!f.verify(user, &big), "{user}");
    }
}

#[test]
fn unknown_user_is_refused_and_checked_against_the_commonest_cost() {
    let f = file(&[PBKDF2_ALICE, PBKDF2_EMPTY, SHA512_BOB]);
    assert!(!f.contains("mallory"));
    assert!(!f.verify("mallory", b"correct horse"));
    assert!(!f.verify("mallory", b""));
    // User names are exact: no case folding, no trimming at verify time.
    assert!(!f.verify("Alice", b"correct horse"));
    assert!(!f.verify(" alice", b"correct horse"));
    let dummy = f.dummy.as_ref().expect("a dummy for a non-empty file");
    assert_eq!(
        dummy.cost(),
        f.users["alice"].cost(),
        "two $7$ 101-iteration entries outnumber one $6$"
    );
    let f = file(&[SHA512_BOB, SHA512_SALT64, PBKDF2_ALICE]);
    assert_eq!(
        f.dummy.as_ref().map(PasswordHash::cost),
        Some(f.users["alice"].cost()),
        "a tie goes to the first cost in order, whatever the hash map does"
    );
    let empty = file(&["# nobody yet", ""]);
    assert!(empty.is_empty());
    assert!(empty.dummy.is_none());
    assert!(!empty.verify("alice", b"correct horse"));
}

#[test]
fn comments_blank_lines_blanks_and_crlf() {
    let text = format!(
        "# a comment: with a colon\n\n   \n\t{PBKDF2_ALICE}  \r\n{}\r\n",
        SHA512_BOB.replacen(':', " : ", 1)
    );
    let f = PasswordFile::parse(&text, path()).expect("valid");
    assert_eq!(f.len(), 2);
    assert!(f.contains("alice") && f.contains("bob"));
    assert!(!f.contains("# a comment"));
    assert!(f.verify("alice", b"correct horse"));
    assert!(f.verify("bob", b"battery staple"));
    // No trailing newline is fine too.
    assert_eq!(file(&[PBKDF2_ALICE]).len(), 1);
}

#[test]
fn malformed_lines_name_file_and_line() {
    let alice = PBKDF2_ALICE;
    let cases: &[(String, &str)] = &[
        (format!("{alice}\nno colon here"), "pw.conf:2: no ':'"),
        (":$7$x".to_owned(), "pw.conf:1: empty user name"),
        ("  :$7$x".to_owned(), "pw.conf:1: empty user name"),
        ("\nbob:".to_owned(), "pw.conf:2: user \"bob\" has no hash"),
        (
            "bob:   \r".to_owned(),
            "pw.conf:1: user \"bob\" has no hash",
        ),
        (
            "b\u{1}b:$7$x".to_owned(),
            "pw.conf:1: user name \"b\\u{1}b\" has a control",
        ),
        (
            format!("{alice}:extra"),
            "pw.conf:1: user \"alice\": more than one ':'",
        ),
        (
            format!("#\n{alice}\n{alice}"),
            "pw.conf:3: user \"alice\" is already on line 2",
        ),
        (
            "bob:secret".to_owned(),
            "pw.conf:1: user \"bob\": not a $6$, $7$ or $argon2id$",
        ),
        (
            "bob:$5$abc$def".to_owned(),
            "pw.conf:1: user \"bob\": not a $6$",
        ),
        (
            "bob:$7$$yuiAwd9pcj5BbJVd$S1M4".to_owned(),
            "pw.conf:1: user \"bob\": $7$ iterations",
        ),
        (
            "bob:$7$0$yuiAwd9pcj5BbJVd$S1M4".to_owned(),
            "$7$ iterations must be",
        ),
        (
            "bob:$7$-5$yuiAwd9pcj5BbJVd$S1M4".to_owned(),
            "$7$ iterations must be",
        ),
        (
            "bob:$7$101x$yuiAwd9pcj5BbJVd$S1M4".to_owned(),
            "$7$ iterations must be",
        ),
        (
            "bob:$7$1000001$yuiAwd9pcj5BbJVd$S1M4".to_owned(),
            "1..=1000000",
        ),
        (
            "bob:$7$99999999999$yuiAwd9pcj5BbJVd$S1M4".to_owned(),
            "$7$ iterations must be",
        ),
        (
            "bob:$7$101$yuiAwd9pcj5BbJVd".to_owned(),
            "$7$ hash must have a salt and a hash",
        ),
        (
            format!("{alice}$more"),
            "$7$ hash must have a salt and a hash",
        ),
        (
            "bob:$6$YfJk680YS4CIi5hJ".to_owned(),
            "$6$ hash must have a salt and a hash",
        ),
    ];
    for (text, want) in cases {
        let got = error(text);
        assert!(got.contains(want), "{text:?}: got {got:?}, want {want:?}");
    }
}

#[test]
fn malformed_base64_and_lengths() {
    let (salt12, hash64) = PBKDF2_ALICE
        .strip_prefix("alice:$7$101$")
        .and_then(|s| s.split_once('$'))
        .expect("vector shape");
    let cases = [
        // 11-byte salt, 13-byte salt, no padding, bad character.
        (
            format!("u:$7$101$AAAAAAAAAAAAAAA=${hash64}"),
            "$7$ salt must be",
        ),
        (
            format!("u:$7$101$AAAAAAAAAAAAAAAAAA==${hash64}"),
            "$7$ salt must be",
        ),
        (
            format!("u:$7$101$AAAAAAAAAAAAAAAAAA${hash64}"),
            "$7$ salt must be",
        ),
        (
            format!("u:$7$101$yuiAwd9pcj5BbJV*${hash64}"),
            "$7$ salt must be",
        ),
        // 63-byte hash, hash without its padding.
        (
            format!("u:$7$101${salt12}${}", &hash64[..84]),
            "$7$ hash must be",
        ),
        (
            format!("u:$6${salt12}${}", hash64.trim_end_matches('=')),
            "$6$ hash must be",
        ),
    ];
    for (text, want) in &cases {
        let got = error(text);
        assert!(got.starts_with("pw.conf:1: user \"u\": "), "{got}");
        assert!(got.contains(want), "{text:?}: got {got:?}, want {want:?}");
    }
}

#[test]
fn malformed_argon2id() {
    let salt = "c21hbGwtc2FsdC0xNmJ5dA";
    let hash = "Onle9fHTyOLgy5cz1l8Yj4JeJI9uptwC/mrJD6V/xw4";
    let cases = [
        (
            format!("u:$argon2id$v=16$m=64,t=2,p=2${salt}${hash}"),
            "must say v=19",
        ),
        (
            format!("u:$argon2id$m=64,t=2,p=2${salt}${hash}"),
            "must say v=19",
        ),
        (
            format!("u:$argon2id$v=19$t=2,m=64,p=2${salt}${hash}"),
            "parameters must be",
        ),
        (
            format!("u:$argon2id$v=19$m=64,t=2${salt}${hash}"),
            "parameters must be",
        ),
        (
            format!("u:$argon2id$v=19$m=64,t=2,p=2,x=1${salt}${hash}"),
            "parameters must be",
        ),
        (
            format!("u:$argon2id$v=19$m=262145,t=1,p=1${salt}${hash}"),
            "out of range",
        ),
        (
            format!("u:$argon2id$v=19$m=64,t=11,p=1${salt}${hash}"),
            "out of range",
        ),
        (
            format!("u:$argon2id$v=19$m=64,t=0,p=1${salt}${hash}"),
            "out of range",
        ),
        (
            format!("u:$argon2id$v=19$m=64,t=1,p=0${salt}${hash}"),
            "out of range",
        ),
        (
            format!("u:$argon2id$v=19$m=64,t=1,p=9${salt}${hash}"),
            "out of range",
        ),
        (
            format!("u:$argon2id$v=19$m=64,t=2,p=2${salt}"),
            "must end in",
        ),
        (
            format!("u:$argon2id$v=19$m=64,t=2,p=2${salt}==${hash}"),
            "salt must be",
        ),
        (
            format!("u:$argon2id$v=19$m=64,t=2,p=2$c2FsdA${hash}"),
            "salt must be",
        ),
        (
            format!("u:$argon2id$v=19$m=64,t=2,p=2${salt}$AAA"),
            "hash must be",
        ),
        (
            format!("u:$argon2i$v=19$m=64,t=2,p=2${salt}${hash}"),
            "not a $6$",
        ),
    ];
    for (text, want) in &cases {
        let got = error(text);
        assert!(got.starts_with("pw.conf:1: user \"u\": "), "{got}");
        assert!(got.contains(want), "{text:?}: got {got:?}, want {want:?}");
    }
}

#[test]
fn over_long_fields() {
    let long_user = "u".repeat(USERNAME_BYTES_MAX + 1);
    assert!(error(&format!("{long_user}:$7$x")).contains("USERNAME_BYTES_MAX"));
    let long_hash = "A".repeat(HASH_TEXT_BYTES_MAX + 1);
    assert!(error(&format!("u:$7${long_hash}")).contains("HASH_TEXT_BYTES_MAX"));
}

#[test]
fn missing_file_is_line_zero() {
    let missing = std::env::temp_dir().join("ringmq-no-such-password-file");
    let err = PasswordFile::load(&missing).expect_err("missing file");
    assert_eq!(err.line, 0);
    assert_eq!(err.path, missing);
    assert!(err.to_string().starts_with(&missing.display().to_string()));
}

#[test]
fn load_reads_a_file() {
    let path = std::env::temp_dir().join(format!("ringmq-passwd-load-{}", std::process::id()));
    std::fs::write(&path, format!("{PBKDF2_ALICE}\n{SHA512_BOB}\nbroken\n")).expect("write");
    let err = PasswordFile::load(&path).expect_err("line 3 is broken");
    assert_eq!((err.line, err.path.as_path()), (3, path.as_path()));
    std::fs::write(&path, format!("{PBKDF2_ALICE}\n{SHA512_BOB}\n")).expect("write");
    let f = PasswordFile::load(&path).expect("valid file");
    std::fs::remove_file(&path).expect("clean up");
    assert!(f.verify("alice", b"correct horse"));
    assert!(f.verify("bob", b"battery staple"));
}

#[test]
fn hash_pbkdf2_writes_what_mosquitto_writes() {
    let entry = hash_pbkdf2(b"correct horse", 101).expect("hash");
    let fields: Vec<&str> = entry.split('$').collect();
    assert_eq!(fields[..3], ["", "7", "101"]);
    assert_eq!(fields[3].len(), 16, "12-byte salt, base64");
    assert_eq!(fields[4].len(), 88, "64-byte hash, padded base64");
    let hash = PasswordHash::parse(&entry).expect("parses");
    assert!(hash.verify(b"correct horse"));
    assert!(!hash.verify(b"correct horse "));
    assert_ne!(
        entry,
        hash_pbkdf2(b"correct horse", 101).expect("hash"),
        "fresh salt"
    );
    assert!(matches!(
        hash_pbkdf2(b"x", 0),
        Err(HashError::Iterations(0))
    ));
    assert!(hash_pbkdf2(b"x", PBKDF2_ITERATIONS_MAX + 1).is_err());
}

#[test]
fn shared_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<PasswordFile>();
}

#[test]
fn debug_output_hides_hashes() {
    let f = file(&[PBKDF2_ALICE]);
    let shown = format!("{f:?}");
    assert!(!shown.contains("S1M4bNqm"), "{shown}");
    assert!(shown.contains("iterations: 101"), "{shown}");
}
