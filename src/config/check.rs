//! `ringmq --check-config FILE`: everything the broker would read at start, read without
//! starting: the TOML file, the password and ACL files and the TLS certificates it names. Each
//! problem is reported as `file:line: what` where there is a line, so an operator can fix the
//! file before a restart fails, or before a SIGHUP is refused.

use std::path::Path;

use super::{Config, ConfigError, FileConfig};

/// What `--check-config` found wrong: one line per problem, each naming its file.
#[derive(Debug)]
pub struct CheckFailed(pub Vec<String>);

/// Checks `path` and the files it names. `Ok` carries a one-line summary.
pub fn check_config_file(path: &Path) -> Result<String, CheckFailed> {
    let shown = path.display();
    let text = std::fs::read_to_string(path)
        .map_err(|e| CheckFailed(vec![format!("{shown}: cannot read: {e}")]))?;
    let file: FileConfig = toml::from_str(&text).map_err(|e| {
        let line = e.span().map(|span| line_at(&text, span.start)).unwrap_or(1);
        CheckFailed(vec![format!("{shown}:{line}: {}", e.message())])
    })?;
    let mut config = Config::default();
    let built = config.apply_file(file).and_then(|()| config.validate());
    if let Err(error) = built {
        let line = match &error {
            ConfigError::Invalid { key, .. } => line_of_key(&text, key),
            _ => None,
        };
        let at = line.map(|l| format!(":{l}")).unwrap_or_default();
        return Err(CheckFailed(vec![format!("{shown}{at}: {error}")]));
    }
    let mut problems = Vec::new();
    if let Err(error) = crate::auth::Access::load(config.access_settings(), 0) {
        // Already `file:line: ...`.
        problems.push(error.to_string());
    }
    if let Err(error) = crate::auth::Authenticator::from_scram_users(&config.auth.scram_sha256) {
        let line = line_of_key(&text, "auth.scram_sha256").map(|l| format!(":{l}"));
        problems.push(format!(
            "{shown}{}: auth.scram_sha256: {error}",
            line.unwrap_or_default()
        ));
    }
    for listener in &config.listeners {
        if let Some(files) = &listener.tls {
            if let Err(error) = crate::transport::load_server_config(files, &[]) {
                problems.push(format!("listener {}: {error}", listener.bind));
            }
        }
    }
    if !problems.is_empty() {
        return Err(CheckFailed(problems));
    }
    Ok(format!(
        "{shown}: ok ({} listener{}, {} shard{}, password file: {}, ACL file: {})",
        config.listeners.len(),
        plural(config.listeners.len()),
        config.shards,
        plural(config.shards),
        yes_no(config.auth.password_file.is_some()),
        yes_no(config.auth.acl_file.is_some()),
    ))
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

fn yes_no(set: bool) -> &'static str {
    if set {
        "yes"
    } else {
        "no"
    }
}

/// 1-based line of byte offset `at`.
fn line_at(text: &str, at: usize) -> usize {
    text[..at.min(text.len())].matches('\n').count() + 1
}

/// The line that sets `key` (`limits.inflight_max` is found as `inflight_max = ...`), if any.
fn line_of_key(text: &str, key: &str) -> Option<usize> {
    let name = key.rsplit('.').next()?;
    text.lines()
        .position(|line| {
            let line = line.trim_start();
            line.strip_prefix(name)
                .is_some_and(|rest| rest.trim_start().starts_with('='))
                || line == format!("[{key}]")
        })
        .map(|index| index + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(name: &str, text: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("ringmq-check-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join(name);
        std::fs::write(&path, text).expect("write");
        path
    }

    #[test]
    fn problems_name_the_file_and_line() {
        let path = write(
            "syntax.toml",
            "shards = 2\n[limits]\ninflight_max = \"many\"\n",
        );
        let CheckFailed(problems) = check_config_file(&path).expect_err("a string limit");
        assert!(problems[0].contains("syntax.toml:3:"), "{problems:?}");
        let path = write("range.toml", "shards = 2\n\n[limits]\ninflight_max = 0\n");
        let CheckFailed(problems) = check_config_file(&path).expect_err("zero");
        assert!(problems[0].contains("range.toml:4:"), "{problems:?}");
        assert!(problems[0].contains("limits.inflight_max"), "{problems:?}");
        let acl = write("broken.acl", "user bob\ntopic frobnicate a/#\n");
        let path = write(
            "acl.toml",
            &format!("[auth]\nacl_file = {:?}\n", acl.display().to_string()),
        );
        let CheckFailed(problems) = check_config_file(&path).expect_err("bad ACL");
        assert!(problems[0].contains("broken.acl:2"), "{problems:?}");
        let path = write(
            "tls.toml",
            "[[listener]]\nbind = \"127.0.0.1:8883\"\ntls = { cert_file = \"/nonexistent.pem\", \
             key_file = \"/nonexistent.key\" }\n",
        );
        let CheckFailed(problems) = check_config_file(&path).expect_err("missing certificate");
        assert!(problems[0].contains("/nonexistent.pem"), "{problems:?}");
        let path = write("good.toml", "shards = 3\nlisten = [\"127.0.0.1:1883\"]\n");
        let summary = check_config_file(&path).expect("valid");
        assert!(summary.contains("ok (1 listener, 3 shards"), "{summary}");
    }

    #[test]
    fn the_printed_configuration_reads_back_the_same() {
        let text = "shards = 3\nlisten = [\"127.0.0.1:1884\"]\n[limits]\ninflight_max = 7\n\
                    [auth.scram_sha256]\nalice = \"secret\"\n[[listener]]\n\
                    bind = \"127.0.0.1:8080\"\nprotocol = \"ws\"\nmax_connections = 10\n";
        let config = Config::from_toml(text).expect("valid");
        let printed = config.to_toml();
        assert!(
            printed.contains("packet_size_max = 1048576"),
            "every default: {printed}"
        );
        assert!(
            printed.contains("tls_handshake_timeout_s = 10"),
            "{printed}"
        );
        assert!(
            !printed.contains("secret"),
            "no password is printed: {printed}"
        );
        let again = Config::from_toml(&printed).expect("the printed file is valid");
        let mut expected = config.clone();
        expected.auth.allow_anonymous = Some(config.allow_anonymous());
        expected
            .auth
            .scram_sha256
            .insert("alice".into(), super::super::print::REDACTED.into());
        assert_eq!(again, expected);
    }
}
