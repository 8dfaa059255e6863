//! The `remote:` section of the HEM configuration and its resolution into settings.
//!
//! ```yaml
//! :remote:
//!   :mode: agent                  # ssh (default) or agent
//!   :user: oneadmin
//!   :identity: /var/lib/one/.ssh/id_ed25519
//!   :known_hosts: /var/lib/one/.ssh/known_hosts
//!   :connect_timeout: 5           # seconds
//!   :max_per_host: 32
//!   :max_connecting: 16
//!   :install_agent: true
//!   :agent_binary: /usr/lib/one/onehem/onehem-agent
//!   :hosts:
//!     node1: { :address: 10.0.0.11, :port: 22, :user: oneadmin, :mode: ssh }
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use tokio::sync::Semaphore;

/// How hooks are run on a host.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExecMode {
    /// One SSH exec channel per hook, through the remote login shell.
    #[default]
    Ssh,
    /// One `onehem-agent --stdio` per connection, hooks multiplexed over its frames.
    Agent,
}

/// One entry of the host map: how to reach a host the cloud knows by name.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HostEntry {
    /// Address or DNS name to connect to (default: the host's name).
    pub address: Option<String>,
    /// SSH port (default: the section's port).
    pub port: Option<u16>,
    /// Login user (default: the section's user).
    pub user: Option<String>,
    /// Execution mode (default: the section's mode).
    pub mode: Option<ExecMode>,
    /// Hook directory on this host (default: the HEM's `remote_hook_base_path`). Commands
    /// resolved below the HEM's directory are run from here instead.
    pub remote_hook_base_path: Option<String>,
}

/// The `remote:` section, with symbol keys already stripped of their `:`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RemoteConfig {
    /// Default execution mode.
    pub mode: ExecMode,
    /// Default login user (default: `$USER`, else `oneadmin`).
    pub user: Option<String>,
    /// Default SSH port (22).
    pub port: Option<u16>,
    /// Private key for authentication (default: the first of `~/.ssh/id_ed25519`,
    /// `~/.ssh/id_ecdsa`, `~/.ssh/id_rsa` that exists).
    pub identity: Option<PathBuf>,
    /// known_hosts file (default: `~/.ssh/known_hosts` and `/etc/ssh/ssh_known_hosts`).
    pub known_hosts: Option<PathBuf>,
    /// Seconds to establish a connection, key exchange and authentication included (5).
    pub connect_timeout: Option<f64>,
    /// Hosts being opened at once (connection, key exchange, authentication, agent start),
    /// across all hosts (16). Further openings wait for a turn before their connect timeout
    /// starts, so that a thousand hosts opened together do not all time out on a busy HEM or
    /// on sshd's `MaxStartups`.
    pub max_connecting: Option<usize>,
    /// Seconds of silence before a keepalive is sent (15).
    pub keepalive_interval: Option<f64>,
    /// Unanswered keepalives before a connection is declared dead (3).
    pub keepalive_max: Option<usize>,
    /// Hooks running at once on one host. Default 32 in agent mode (one channel carries
    /// them all) and 5 in ssh mode, where each hook holds a channel and a timed-out one needs
    /// a second to be killed: sshd allows 10 sessions per connection (`MaxSessions`).
    pub max_per_host: Option<usize>,
    /// Seconds to wait before reconnecting after a failed attempt, doubled on each further
    /// failure up to `reconnect_backoff_max` (0.5 and 10).
    pub reconnect_backoff_min: Option<f64>,
    /// See `reconnect_backoff_min`.
    pub reconnect_backoff_max: Option<f64>,
    /// Path of `onehem-agent` on the hosts (`/var/tmp/one/onehem-agent`).
    pub agent_path: Option<String>,
    /// Upload the local agent binary when a host lacks it or has another build.
    pub install_agent: bool,
    /// The local agent binary to install (default: `onehem-agent` next to the HEM binary).
    pub agent_binary: Option<PathBuf>,
    /// Seconds between SIGTERM and SIGKILL when a timed-out hook's group is killed (2).
    pub kill_grace: Option<f64>,
    /// Host map: the cloud's host name -> how to reach it. Hosts not listed are reached by
    /// their name with the defaults above.
    pub hosts: BTreeMap<String, HostEntry>,
    /// The HEM's top-level `remote_hook_base_path`, filled by the HEM (not read from this
    /// section); default `/var/tmp/one/hooks`.
    #[serde(skip)]
    pub remote_hook_base_path: Option<String>,
}

const DEFAULT_BASE: &str = "/var/tmp/one/hooks";
const DEFAULT_AGENT_PATH: &str = "/var/tmp/one/onehem-agent";
const DEFAULT_MAX_CONNECTING: usize = 16;

impl RemoteConfig {
    /// Adds host `name` at `address`:`port`, with its own hook directory; the rest of the
    /// entry takes the section's defaults.
    pub fn add_host(&mut self, name: &str, address: impl ToString, port: u16, hook_dir: &Path) {
        self.hosts.insert(
            name.to_string(),
            HostEntry {
                address: Some(address.to_string()),
                port: Some(port),
                remote_hook_base_path: Some(hook_dir.display().to_string()),
                ..HostEntry::default()
            },
        );
    }

    /// Reads the section from the (already `:`-stripped) YAML value; an absent section is
    /// the default configuration.
    pub fn from_yaml(value: serde_norway::Value) -> Result<RemoteConfig, String> {
        if value.is_null() {
            return Ok(RemoteConfig::default());
        }
        serde_norway::from_value(value).map_err(|e| format!("remote: {e}"))
    }

    /// Everything wrong with the section, one message per key. The executor still starts
    /// with defaults in place of bad values; the HEM should refuse to start instead.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut secs = |key: &str, v: Option<f64>, allow_zero: bool| {
            if let Some(v) = v
                && !(v.is_finite() && (v > 0.0 || (allow_zero && v == 0.0)) && v < 1e9)
            {
                out.push(format!(
                    "remote.{key}: {v} is not a valid number of seconds"
                ));
            }
        };
        secs("connect_timeout", self.connect_timeout, false);
        secs("keepalive_interval", self.keepalive_interval, false);
        secs("reconnect_backoff_min", self.reconnect_backoff_min, true);
        secs("reconnect_backoff_max", self.reconnect_backoff_max, true);
        secs("kill_grace", self.kill_grace, true);
        if self.max_per_host == Some(0) {
            out.push("remote.max_per_host: must be at least 1".into());
        }
        if self.max_connecting == Some(0) {
            out.push("remote.max_connecting: must be at least 1".into());
        }
        if self.keepalive_max == Some(0) {
            out.push("remote.keepalive_max: must be at least 1".into());
        }
        if let Some(p) = &self.agent_path
            && !p.starts_with('/')
        {
            out.push(format!("remote.agent_path: {p} is not an absolute path"));
        }
        if let Some(p) = &self.identity
            && !p.is_file()
        {
            out.push(format!("remote.identity: {} is not a file", p.display()));
        }
        if self.install_agent {
            match self.agent_binary.clone().or_else(sibling_agent) {
                Some(p) if p.is_file() => {}
                Some(p) => out.push(format!(
                    "remote.agent_binary: {} is not a file (needed by install_agent)",
                    p.display()
                )),
                None => out.push("remote.agent_binary: not set (needed by install_agent)".into()),
            }
        }
        for (name, h) in &self.hosts {
            if let Some(b) = &h.remote_hook_base_path
                && !b.starts_with('/')
            {
                out.push(format!(
                    "remote.hosts.{name}.remote_hook_base_path: {b} is not an absolute path"
                ));
            }
            if h.port == Some(0) {
                out.push(format!("remote.hosts.{name}.port: must not be 0"));
            }
        }
        out
    }
}

/// The section resolved: every default applied, bad values replaced by defaults.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub mode: ExecMode,
    pub user: String,
    pub port: u16,
    pub identity: Option<PathBuf>,
    pub known_hosts: Vec<PathBuf>,
    pub connect_timeout: Duration,
    /// Turns to open a host (see `RemoteConfig::max_connecting`), shared by every host.
    pub opening: Arc<Semaphore>,
    pub keepalive_interval: Duration,
    pub keepalive_max: usize,
    pub max_per_host: Option<usize>,
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    pub agent_path: String,
    pub install_agent: bool,
    pub agent_binary: Option<PathBuf>,
    pub kill_grace: Duration,
    pub global_base: String,
    pub hosts: BTreeMap<String, HostEntry>,
}

/// Where and how to reach one host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HostTarget {
    pub name: String,
    pub address: String,
    pub port: u16,
    pub user: String,
    pub mode: ExecMode,
    pub base: String,
    pub max_running: usize,
}

impl HostTarget {
    /// `address:port` for messages.
    pub fn endpoint(&self) -> String {
        if self.address.contains(':') {
            format!("[{}]:{}", self.address, self.port)
        } else {
            format!("{}:{}", self.address, self.port)
        }
    }
}

fn seconds(v: Option<f64>, default: f64, allow_zero: bool) -> Duration {
    match v {
        Some(v) if v.is_finite() && (v > 0.0 || (allow_zero && v == 0.0)) && v < 1e9 => {
            Duration::from_secs_f64(v)
        }
        _ => Duration::from_secs_f64(default),
    }
}

fn home() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
}

fn sibling_agent() -> Option<PathBuf> {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join("onehem-agent")))
}

impl Settings {
    pub fn resolve(cfg: RemoteConfig) -> Settings {
        let known_hosts = match cfg.known_hosts {
            Some(p) => vec![p],
            None => {
                let mut v: Vec<PathBuf> = home()
                    .map(|h| h.join(".ssh/known_hosts"))
                    .into_iter()
                    .collect();
                v.push(PathBuf::from("/etc/ssh/ssh_known_hosts"));
                v
            }
        };
        let backoff_min = seconds(cfg.reconnect_backoff_min, 0.5, true);
        let backoff_max = seconds(cfg.reconnect_backoff_max, 10.0, true).max(backoff_min);
        Settings {
            mode: cfg.mode,
            user: cfg
                .user
                .or_else(|| std::env::var("USER").ok().filter(|u| !u.is_empty()))
                .unwrap_or_else(|| "oneadmin".to_string()),
            port: cfg.port.filter(|p| *p != 0).unwrap_or(22),
            identity: cfg.identity,
            known_hosts,
            connect_timeout: seconds(cfg.connect_timeout, 5.0, false),
            opening: Arc::new(Semaphore::new(
                cfg.max_connecting
                    .filter(|n| *n > 0)
                    .unwrap_or(DEFAULT_MAX_CONNECTING)
                    .min(Semaphore::MAX_PERMITS),
            )),
            keepalive_interval: seconds(cfg.keepalive_interval, 15.0, false),
            keepalive_max: cfg.keepalive_max.filter(|n| *n > 0).unwrap_or(3),
            max_per_host: cfg.max_per_host.filter(|n| *n > 0),
            backoff_min,
            backoff_max,
            agent_path: cfg
                .agent_path
                .filter(|p| p.starts_with('/'))
                .unwrap_or_else(|| DEFAULT_AGENT_PATH.to_string()),
            install_agent: cfg.install_agent,
            agent_binary: cfg.agent_binary.or_else(sibling_agent),
            kill_grace: seconds(cfg.kill_grace, 2.0, true),
            global_base: cfg
                .remote_hook_base_path
                .filter(|p| p.starts_with('/'))
                .unwrap_or_else(|| DEFAULT_BASE.to_string()),
            hosts: cfg.hosts,
        }
    }

    /// The identity files to try, in order.
    pub fn identities(&self) -> Vec<PathBuf> {
        match &self.identity {
            Some(p) => vec![p.clone()],
            None => home()
                .map(|h| {
                    ["id_ed25519", "id_ecdsa", "id_rsa"]
                        .iter()
                        .map(|n| h.join(".ssh").join(n))
                        .filter(|p| p.is_file())
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    pub fn target(&self, host: &str) -> HostTarget {
        let entry = self.hosts.get(host);
        let get = |f: fn(&HostEntry) -> Option<String>| entry.and_then(f);
        let mode = entry.and_then(|e| e.mode).unwrap_or(self.mode);
        HostTarget {
            name: host.to_string(),
            address: get(|e| e.address.clone()).unwrap_or_else(|| host.to_string()),
            port: entry
                .and_then(|e| e.port)
                .filter(|p| *p != 0)
                .unwrap_or(self.port),
            user: get(|e| e.user.clone()).unwrap_or_else(|| self.user.clone()),
            mode,
            base: get(|e| e.remote_hook_base_path.clone())
                .filter(|b| b.starts_with('/'))
                .unwrap_or_else(|| self.global_base.clone()),
            max_running: self.max_per_host.unwrap_or(match mode {
                ExecMode::Agent => 32,
                ExecMode::Ssh => 5,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_section_and_resolves_hosts() {
        let yaml = "mode: agent\nuser: oneadmin\nconnect_timeout: 0.5\nhosts:\n  node1: { address: 10.0.0.1, port: 2222, mode: ssh, remote_hook_base_path: /srv/hooks }\n";
        let v: serde_norway::Value = serde_norway::from_str(yaml).unwrap();
        let mut cfg = RemoteConfig::from_yaml(v).unwrap();
        cfg.remote_hook_base_path = Some("/var/tmp/one/hooks".into());
        assert!(cfg.problems().is_empty(), "{:?}", cfg.problems());
        let s = Settings::resolve(cfg);
        assert_eq!(s.connect_timeout, Duration::from_millis(500));
        let t = s.target("node1");
        assert_eq!(
            (t.address.as_str(), t.port, t.mode, t.base.as_str()),
            ("10.0.0.1", 2222, ExecMode::Ssh, "/srv/hooks")
        );
        assert_eq!(t.user, "oneadmin");
        let t = s.target("node2");
        assert_eq!(
            (t.address.as_str(), t.port, t.mode, t.base.as_str()),
            ("node2", 22, ExecMode::Agent, "/var/tmp/one/hooks")
        );
        assert_eq!(t.max_running, 32);
    }

    #[test]
    fn absent_section_is_default_and_bad_values_are_reported() {
        let cfg = RemoteConfig::from_yaml(serde_norway::Value::Null).unwrap();
        assert_eq!(cfg.mode, ExecMode::Ssh);
        let v: serde_norway::Value = serde_norway::from_str("colour: red").unwrap();
        assert!(RemoteConfig::from_yaml(v).unwrap_err().contains("colour"));
        let v: serde_norway::Value =
            serde_norway::from_str("connect_timeout: -1\nmax_per_host: 0\nmode: telnet").unwrap();
        assert!(RemoteConfig::from_yaml(v).is_err());
        let cfg = RemoteConfig {
            connect_timeout: Some(-1.0),
            max_per_host: Some(0),
            ..RemoteConfig::default()
        };
        assert_eq!(cfg.problems().len(), 2);
        let s = Settings::resolve(cfg);
        assert_eq!(s.connect_timeout, Duration::from_secs(5));
        assert_eq!(s.max_per_host, None);
        assert_eq!(s.target("h").max_running, 5);
        let cfg = RemoteConfig {
            max_connecting: Some(0),
            ..RemoteConfig::default()
        };
        assert_eq!(
            cfg.problems(),
            ["remote.max_connecting: must be at least 1"]
        );
        assert_eq!(
            Settings::resolve(cfg).opening.available_permits(),
            DEFAULT_MAX_CONNECTING
        );
    }
}
