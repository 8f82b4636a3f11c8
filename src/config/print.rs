//! `ringmq --print-config`: the effective configuration, every default included, as a TOML file
//! that `--config` reads back to the same configuration (a test checks the round trip), and
//! `ringmq --print-systemd-unit`.

use serde::Serialize;

use super::{AuthConfig, Config, IoBackend, Limits, ListenerConfig, ProtocolOptions};

/// What `--print-config` writes: the file's shape, with nothing left to a default.
#[derive(Serialize)]
struct Printed<'a> {
    listen: Vec<String>,
    shards: usize,
    pin_cores: bool,
    io: IoBackend,
    log_level: &'a str,
    sys_interval_s: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    metrics_listen: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    persistence_dir: Option<String>,
    durability: super::Durability,
    fsync_interval_ms: u32,
    persisted_bytes_max: u64,
    limits: &'a Limits,
    protocol: &'a ProtocolOptions,
    auth: AuthConfig,
    listener: Vec<&'a ListenerConfig>,
}

/// Stands in for SCRAM passwords and verifiers, which are secrets.
pub const REDACTED: &str = "<redacted>";

impl Config {
    /// The configuration as TOML. `allow_anonymous` is printed as decided (unset means "only
    /// on loopback"); SCRAM passwords are replaced by [`REDACTED`].
    pub fn to_toml(&self) -> String {
        let mut auth = self.auth.clone();
        auth.allow_anonymous = Some(self.allow_anonymous());
        for secret in auth.scram_sha256.values_mut() {
            *secret = REDACTED.into();
        }
        let printed = Printed {
            listen: self
                .listeners
                .iter()
                .filter(|l| !l.from_table)
                .map(|l| l.bind.to_string())
                .collect(),
            shards: self.shards,
            pin_cores: self.pin_cores,
            io: self.io,
            log_level: &self.log_level,
            sys_interval_s: self.sys_interval_s,
            metrics_listen: self.metrics_listen.map(|a| a.to_string()),
            persistence_dir: self
                .persistence
                .dir
                .as_ref()
                .map(|d| d.display().to_string()),
            durability: self.persistence.durability,
            fsync_interval_ms: self.persistence.fsync_interval_ms,
            persisted_bytes_max: self.persistence.bytes_max,
            limits: &self.limits,
            protocol: &self.protocol,
            auth,
            listener: self.listeners.iter().filter(|l| l.from_table).collect(),
        };
        // Every field is a plain value, a table of them or an array of tables: serialising
        // cannot fail.
        toml::to_string(&printed).unwrap_or_else(|e| format!("# cannot print: {e}\n"))
    }
}

/// A hardened systemd unit that runs `binary` with `config` (if any).
pub fn systemd_unit(binary: &str, config: Option<&str>) -> String {
    let config = config.map(|c| format!(" --config {c}")).unwrap_or_default();
    format!(
        "\
# ringmq --print-systemd-unit > /etc/systemd/system/ringmq.service
[Unit]
Description=RingMQ MQTT broker
Documentation=https://github.com/ringmq/ringmq
After=network-online.target
Wants=network-online.target

[Service]
Type=simple
ExecStart={binary}{config}
# SIGHUP re-reads the password and ACL files and the TLS certificates; nobody is disconnected.
ExecReload=/bin/kill -HUP $MAINPID
Restart=on-failure
RestartSec=1s
DynamicUser=yes
# For `persistence_dir`: /var/lib/ringmq, owned by the service user.
StateDirectory=ringmq
# One descriptor per connection; io_uring rings are locked memory on kernels before 5.12.
LimitNOFILE=1048576
LimitMEMLOCK=infinity
# Ports below 1024 (1883 and 8883 are above) need this capability and no other.
AmbientCapabilities=CAP_NET_BIND_SERVICE
CapabilityBoundingSet=CAP_NET_BIND_SERVICE
NoNewPrivileges=yes
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes
PrivateDevices=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
MemoryDenyWriteExecute=yes
SystemCallArchitectures=native
# @system-service leaves out io_uring; without these three the broker falls back to epoll.
SystemCallFilter=@system-service io_uring_setup io_uring_enter io_uring_register

[Install]
WantedBy=multi-user.target
"
    )
}

#[cfg(test)]
mod tests {
    /// The unit reloads with SIGHUP, raises the descriptor limit, and keeps io_uring allowed
    /// under its system call filter.
    #[test]
    fn the_systemd_unit_reloads_and_allows_io_uring() {
        let unit = super::systemd_unit("/usr/bin/ringmq", Some("/etc/ringmq.toml"));
        for line in [
            "ExecStart=/usr/bin/ringmq --config /etc/ringmq.toml",
            "ExecReload=/bin/kill -HUP $MAINPID",
            "LimitNOFILE=1048576",
            "NoNewPrivileges=yes",
            "StateDirectory=ringmq",
        ] {
            assert!(unit.lines().any(|l| l == line), "{line} missing:\n{unit}");
        }
        let filter = unit
            .lines()
            .find(|l| l.starts_with("SystemCallFilter="))
            .expect("a filter");
        assert!(filter.contains("io_uring_setup") && filter.contains("io_uring_enter"));
    }
}
