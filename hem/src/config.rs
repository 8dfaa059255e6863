//! `onehem-server.conf`: YAML with the reference's symbol keys (`:concurrency: 10`) or plain keys,
//! normalised, then validated into a typed [`Config`] with every error reported at once.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_norway::Value;

use crate::hook_paths::{ALLOWED_KEY, HookPaths};
use crate::remote::RemoteConfig;

/// Where a first start (no state DB yet) begins reading the driver's journal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplayFrom {
    /// The journal's newest event when the HEM starts: only later events run hooks.
    Head,
    /// The oldest event the journal still holds.
    Oldest,
    /// Events after this sequence number.
    After(u64),
}

/// The validated configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// 0 = ERROR, 1 = WARN, 2 = INFO, 3 = DEBUG.
    pub debug_level: u8,
    pub hook_base_path: PathBuf,
    /// Directories besides `hook_base_path` whose commands a local hook may name by an absolute
    /// path (`hook_allowed_paths`); empty by default, so such a COMMAND is refused.
    pub hook_allowed_paths: Vec<PathBuf>,
    /// A path on the hosts, never resolved locally.
    pub remote_hook_base_path: String,
    pub subscriber_endpoint: String,
    pub replier_endpoint: String,
    /// Hook executions running at once.
    pub concurrency: usize,
    /// The driver's journal replay endpoint; `None` runs live-only.
    pub replay_endpoint: Option<String>,
    pub replay_from: ReplayFrom,
    /// Events asked for per replay request.
    pub replay_batch: u32,
    /// How often an idle HEM asks the journal whether it missed events.
    pub replay_poll_interval: Duration,
    /// How long a replay request waits for the journal's reply.
    pub replay_timeout: Duration,
    pub state_db: PathBuf,
    /// Bytes kept of stdout and of stderr each.
    pub output_cap: usize,
    /// Executions of one hook running at once; `None` is unbounded (only `concurrency` applies).
    pub hook_concurrency: Option<usize>,
    /// Executions accepted but not finished before the HEM stops reading events.
    pub max_pending: usize,
    pub log_file: Option<PathBuf>,
    pub log_stderr: bool,
    /// Text or JSON lines, in the file and on stderr alike.
    pub log_format: one_log::Format,
    /// Front-end endpoint; `None` uses ONE_XMLRPC and the OCA defaults.
    pub one_xmlrpc: Option<String>,
    /// File holding `user:password`; `None` uses ONE_AUTH and the OCA defaults.
    pub one_auth: Option<PathBuf>,
    /// Period of the full hook pool reload that backs up the event-driven reloads.
    pub resync_interval: Duration,
    /// How long a result waits for the driver's ACK before its socket is reconnected.
    pub result_timeout: Duration,
    /// Results in flight to the driver at once on the one results socket.
    pub result_senders: usize,
    /// Time between SIGTERM and SIGKILL to a timed-out hook's process group.
    pub kill_grace: Duration,
    /// Time a running execution gets to finish when the HEM stops.
    pub shutdown_grace: Duration,
    /// How long the hook supervisor waits without a HEM and without hooks before it exits.
    pub supervisor_linger: Duration,
    /// The binary started as the hook supervisor (`--supervisor`); not a configuration key:
    /// the running executable, which a test running the HEM in-process points elsewhere.
    pub supervisor_program: PathBuf,
    /// The `remote` section (SSH and agent settings, host map), for the remote executor.
    pub remote: RemoteConfig,
    /// The distributed mode (`nats_servers`); `None` reads the driver's ZeroMQ bus.
    pub nats: Option<NatsSettings>,
    /// CURVE keys for the driver's three sockets (`curve_server_key`, `curve_client_key`);
    /// `None` connects without CURVE, which a driver with CURVE on refuses.
    pub curve: Option<one_curve::ClientKeys>,
    /// Where `GET /metrics` and `GET /health` are served (`metrics_listen`); `None`: nowhere.
    pub metrics_listen: Option<SocketAddr>,
}

impl Config {
    /// Where hook commands resolve and which absolute local commands may run.
    pub fn hook_paths(&self) -> HookPaths {
        HookPaths {
            local: self.hook_base_path.display().to_string(),
            remote: self.remote_hook_base_path.clone(),
            allowed: self
                .hook_allowed_paths
                .iter()
                .map(|d| d.display().to_string())
                .collect(),
        }
    }
}

/// The distributed mode's settings (ARCHITECTURE.md "Distributed mode").
#[derive(Clone, Debug)]
pub struct NatsSettings {
    pub bus: one_bus::Settings,
    pub layout: one_bus::Layout,
    /// Replicas of the HEMs' key-value bucket and of the partition consumers.
    pub replicas: usize,
    /// How soon the work of a HEM that stopped is taken over by the others: its heartbeat, its
    /// hold on a partition and its events' acknowledgement wait all expire within this time.
    pub takeover: Duration,
    /// Events delivered to a partition's holder and not yet finished, at most.
    pub in_flight: usize,
    /// This HEM's name among the members (unique per process).
    pub member: String,
    /// How long a start marker is kept after its execution ended (and refreshed while its
    /// event is pending).
    pub marker_ttl: Duration,
}

/// One problem with one key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyError {
    pub key: String,
    pub reason: String,
}

/// Why a configuration was rejected.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("Error loading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("Error loading {path}: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("{}", invalid_text(path, errors))]
    Invalid {
        path: PathBuf,
        errors: Vec<KeyError>,
    },
}

fn invalid_text(path: &Path, errors: &[KeyError]) -> String {
    let mut text = format!(
        "Error loading {}: {} invalid key(s)",
        path.display(),
        errors.len()
    );
    for e in errors {
        text.push_str(&format!("\n  {}: {}", e.key, e.reason));
    }
    text
}

impl ConfigError {
    /// The per-key problems, empty for read and syntax errors.
    pub fn key_errors(&self) -> &[KeyError] {
        match self {
            ConfigError::Invalid { errors, .. } => errors,
            _ => &[],
        }
    }
}

/// Reads and validates a configuration file.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse(&text, path)
}

/// Validates configuration text; `path` only names the source in errors.
pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
    let one_location = std::env::var_os("ONE_LOCATION").map(PathBuf::from);
    parse_with_location(text, path, one_location.as_deref())
}

/// As [`parse`], with the ONE_LOCATION of a self-contained install given explicitly.
pub fn parse_with_location(
    text: &str,
    path: &Path,
    one_location: Option<&Path>,
) -> Result<Config, ConfigError> {
    parse_recording(text, path, one_location, &mut Vec::new())
}

/// Every key the parser accepts: the top-level keys (those of the distributed mode among
/// them), `remote.KEY` for the keys of the `remote` section and `remote.hosts.NAME.KEY` for
/// those of a host entry. docs/configuration.md must describe each.
pub fn accepted_keys() -> Vec<String> {
    let mut keys = Vec::new();
    // With nats_servers given, the keys of the distributed mode are read as well.
    let _ = parse_recording(
        "nats_servers: nats://127.0.0.1:4222",
        Path::new("keys"),
        None,
        &mut keys,
    );
    // The remote section is read by serde, which lists its fields when it meets another.
    for (section, prefix) in [
        ("remote: { zz_unknown: 1 }", "remote."),
        (
            "remote: { hosts: { NAME: { zz_unknown: 1 } } }",
            "remote.hosts.NAME.",
        ),
    ] {
        let errors = match parse_recording(section, Path::new("keys"), None, &mut Vec::new()) {
            Err(e) => e.key_errors().to_vec(),
            Ok(_) => Vec::new(),
        };
        for error in errors {
            keys.extend(
                expected_fields(&error.reason)
                    .into_iter()
                    .map(|field| format!("{prefix}{field}")),
            );
        }
    }
    keys.sort();
    keys.dedup();
    keys
}

/// The field names of serde's "unknown field `x`, expected one of `a`, `b`" message.
fn expected_fields(reason: &str) -> Vec<String> {
    let Some((_, expected)) = reason.split_once("expected") else {
        return Vec::new();
    };
    expected
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

/// As [`parse_with_location`], adding to `asked` every top-level key the parser looked for.
fn parse_recording(
    text: &str,
    path: &Path,
    one_location: Option<&Path>,
    asked: &mut Vec<String>,
) -> Result<Config, ConfigError> {
    let syntax = |message: String| ConfigError::Syntax {
        path: path.to_path_buf(),
        message,
    };
    // An empty file (or one holding only comments) is a configuration with every default.
    let value: Value = if text.trim().is_empty() {
        Value::Null
    } else {
        serde_norway::from_str(text).map_err(|e| syntax(e.to_string()))?
    };
    let mut errors = Vec::new();
    let map = match value {
        Value::Null => BTreeMap::new(),
        Value::Mapping(m) => normalise_mapping(m, "", &mut errors),
        other => {
            return Err(syntax(format!(
                "the file must hold a mapping of keys to values, not {}",
                kind(&other)
            )));
        }
    };
    let mut fields = Fields {
        map,
        errors,
        asked: Vec::new(),
    };
    let defaults = Defaults::new(one_location);

    let mut config = Config {
        debug_level: fields.uint("debug_level", 2, 0, 3) as u8,
        hook_base_path: PathBuf::from(fields.string("hook_base_path", &defaults.hook_base_path)),
        hook_allowed_paths: fields.directories(ALLOWED_KEY),
        remote_hook_base_path: fields.string("remote_hook_base_path", "/var/tmp/one/hooks"),
        subscriber_endpoint: fields.endpoint("subscriber_endpoint", "tcp://localhost:2101"),
        replier_endpoint: fields.endpoint("replier_endpoint", "tcp://localhost:2102"),
        concurrency: fields.uint("concurrency", 10, 1, 10_000) as usize,
        replay_endpoint: fields.optional_endpoint("replay_endpoint", "tcp://localhost:2103"),
        replay_from: fields.replay_from("replay_from"),
        replay_batch: fields.uint("replay_batch", 1000, 1, 100_000) as u32,
        replay_poll_interval: fields.seconds("replay_poll_interval", 1.0, 0.01, 3600.0),
        replay_timeout: fields.seconds("replay_timeout", 10.0, 0.05, 3600.0),
        state_db: PathBuf::from(fields.string("state_db", &defaults.state_db)),
        output_cap: fields.uint("output_cap", 1 << 20, 0, 1 << 30) as usize,
        hook_concurrency: match fields.uint("hook_concurrency", 0, 0, 10_000) {
            0 => None,
            n => Some(n as usize),
        },
        max_pending: fields.uint("max_pending", 2_000, 1, 10_000_000) as usize,
        log_file: fields.optional_path("log_file", &defaults.log_file),
        log_stderr: fields.boolean("log_stderr", false),
        log_format: fields.log_format("log_format"),
        one_xmlrpc: fields.optional_string("one_xmlrpc"),
        one_auth: fields.optional_string("one_auth").map(PathBuf::from),
        resync_interval: fields.seconds("resync_interval", 300.0, 1.0, 86_400.0),
        result_timeout: fields.seconds("result_timeout", 5.0, 0.05, 3600.0),
        result_senders: fields.uint("result_senders", 64, 1, 4096) as usize,
        kill_grace: fields.seconds("kill_grace", 2.0, 0.0, 3600.0),
        shutdown_grace: fields.seconds("shutdown_grace", 10.0, 0.0, 3600.0),
        supervisor_linger: fields.seconds("supervisor_linger", 300.0, 1.0, 86_400.0),
        supervisor_program: std::env::current_exe()
            .unwrap_or_else(|_| PathBuf::from("onehem-server")),
        remote: RemoteConfig::default(),
        nats: None,
        curve: None,
        metrics_listen: fields.listen("metrics_listen"),
    };
    config.nats = fields.nats();
    config.curve = fields.curve();
    let section = fields.section("remote");
    match RemoteConfig::from_yaml(section) {
        Ok(mut remote) => {
            for problem in remote.problems() {
                let (key, reason) = match problem.split_once(": ") {
                    Some((k, r)) => (k.to_string(), r.to_string()),
                    None => ("remote".to_string(), problem),
                };
                fields.fail(&key, reason);
            }
            remote.remote_hook_base_path = Some(config.remote_hook_base_path.clone());
            config.remote = remote;
        }
        Err(e) => {
            let reason = e.strip_prefix("remote: ").unwrap_or(&e).to_string();
            fields.fail("remote", reason);
        }
    }
    asked.append(&mut fields.asked);
    let mut errors = fields.errors;
    for key in fields.map.keys() {
        errors.push(KeyError {
            key: key.clone(),
            reason: "unknown key".to_string(),
        });
    }
    if errors.is_empty() {
        Ok(config)
    } else {
        Err(ConfigError::Invalid {
            path: path.to_path_buf(),
            errors,
        })
    }
}

/// Install-dependent defaults: system-wide paths, or paths below ONE_LOCATION.
struct Defaults {
    hook_base_path: String,
    state_db: String,
    log_file: String,
}

impl Defaults {
    fn new(one_location: Option<&Path>) -> Defaults {
        match one_location {
            // The reference spells this default `var/remotest/hooks`; that typo is not kept.
            Some(loc) => Defaults {
                hook_base_path: loc.join("var/remotes/hooks").display().to_string(),
                state_db: loc.join("var/onehem.db").display().to_string(),
                log_file: loc.join("var/onehem.log").display().to_string(),
            },
            None => Defaults {
                hook_base_path: "/var/lib/one/remotes/hooks".into(),
                state_db: "/var/lib/one/onehem.db".into(),
                log_file: "/var/log/one/onehem.log".into(),
            },
        }
    }
}

/// Strips the leading `:` of Ruby symbol keys, recursively, and reports keys that are not
/// strings or that appear twice once normalised (`:concurrency` next to `concurrency`).
fn normalise_mapping(
    map: serde_norway::Mapping,
    prefix: &str,
    errors: &mut Vec<KeyError>,
) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    for (k, v) in map {
        let name = match &k {
            Value::String(s) => s.strip_prefix(':').unwrap_or(s).to_string(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            other => {
                errors.push(KeyError {
                    key: format!("{prefix}{other:?}"),
                    reason: "a key must be a string".into(),
                });
                continue;
            }
        };
        let full = format!("{prefix}{name}");
        let v = normalise_value(v, &full, errors);
        if out.insert(name, v).is_some() {
            errors.push(KeyError {
                key: full,
                reason: "given more than once (with and without the leading ':')".into(),
            });
        }
    }
    out
}

fn normalise_value(v: Value, key: &str, errors: &mut Vec<KeyError>) -> Value {
    match v {
        Value::Mapping(m) => {
            let inner = normalise_mapping(m, &format!("{key}."), errors);
            let mut mapping = serde_norway::Mapping::new();
            for (k, v) in inner {
                mapping.insert(Value::String(k), v);
            }
            Value::Mapping(mapping)
        }
        Value::Sequence(seq) => Value::Sequence(
            seq.into_iter()
                .map(|item| normalise_value(item, key, errors))
                .collect(),
        ),
        Value::Tagged(t) => normalise_value(t.value, key, errors),
        other => other,
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "an empty value",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a mapping",
        Value::Tagged(_) => "a tagged value",
    }
}

fn show(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{s:?}"),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        other => kind(other).to_string(),
    }
}

/// The keys still to be read; every accessor removes its key so the rest are unknown keys.
struct Fields {
    map: BTreeMap<String, Value>,
    errors: Vec<KeyError>,
    /// Every key asked for, present or not: the keys this parser accepts.
    asked: Vec<String>,
}

impl Fields {
    fn fail(&mut self, key: &str, reason: String) {
        self.errors.push(KeyError {
            key: key.to_string(),
            reason,
        });
    }

    /// A present, non-null value; a null (`key:` with nothing after it) means "use the default".
    fn take(&mut self, key: &str) -> Option<Value> {
        self.asked.push(key.to_string());
        match self.map.remove(key) {
            None | Some(Value::Null) => None,
            Some(v) => Some(v),
        }
    }

    fn uint(&mut self, key: &str, default: u64, min: u64, max: u64) -> u64 {
        let Some(v) = self.take(key) else {
            return default;
        };
        let parsed = match &v {
            Value::Number(n) => n.as_u64(),
            Value::String(s) => s.trim().parse::<u64>().ok(),
            _ => None,
        };
        match parsed {
            Some(n) if (min..=max).contains(&n) => n,
            _ => {
                self.fail(
                    key,
                    format!("must be an integer from {min} to {max}, got {}", show(&v)),
                );
                default
            }
        }
    }

    fn seconds(&mut self, key: &str, default: f64, min: f64, max: f64) -> Duration {
        let fallback = Duration::from_secs_f64(default);
        let Some(v) = self.take(key) else {
            return fallback;
        };
        let parsed = match &v {
            Value::Number(n) => n.as_f64(),
            Value::String(s) => s.trim().parse::<f64>().ok(),
            _ => None,
        };
        match parsed {
            Some(n) if n.is_finite() && n >= min && n <= max => Duration::from_secs_f64(n),
            _ => {
                self.fail(
                    key,
                    format!(
                        "must be a number of seconds from {min} to {max}, got {}",
                        show(&v)
                    ),
                );
                fallback
            }
        }
    }

    fn boolean(&mut self, key: &str, default: bool) -> bool {
        let Some(v) = self.take(key) else {
            return default;
        };
        match &v {
            Value::Bool(b) => *b,
            Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
                "yes" | "true" | "on" => true,
                "no" | "false" | "off" => false,
                _ => {
                    self.fail(key, format!("must be true or false, got {}", show(&v)));
                    default
                }
            },
            _ => {
                self.fail(key, format!("must be true or false, got {}", show(&v)));
                default
            }
        }
    }

    fn raw_string(&mut self, key: &str) -> Option<String> {
        let v = self.take(key)?;
        match v {
            Value::String(s) => Some(s),
            other => {
                self.fail(key, format!("must be a string, got {}", kind(&other)));
                None
            }
        }
    }

    fn string(&mut self, key: &str, default: &str) -> String {
        match self.raw_string(key) {
            Some(s) if s.trim().is_empty() => {
                self.fail(key, "must not be empty".into());
                default.to_string()
            }
            Some(s) => s.trim().to_string(),
            None => default.to_string(),
        }
    }

    fn optional_string(&mut self, key: &str) -> Option<String> {
        self.raw_string(key)
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
    }

    /// A list of existing absolute directories without `..` (one may be given as a plain
    /// string); every bad entry is reported.
    fn directories(&mut self, key: &str) -> Vec<PathBuf> {
        let items = match self.take(key) {
            None => return Vec::new(),
            Some(Value::Sequence(items)) => items,
            Some(v @ Value::String(_)) => vec![v],
            Some(other) => {
                self.fail(
                    key,
                    format!(
                        "must be a list of absolute directories, got {}",
                        kind(&other)
                    ),
                );
                return Vec::new();
            }
        };
        let mut dirs = Vec::new();
        for item in items {
            let Value::String(s) = &item else {
                self.fail(
                    key,
                    format!("{} is not a directory path (a string)", show(&item)),
                );
                continue;
            };
            let dir = s.trim();
            let problem = if !dir.starts_with('/') {
                Some("is not an absolute path")
            } else if dir.split('/').any(|w| w == "..") {
                Some("must not contain '..'")
            } else if !Path::new(dir).is_dir() {
                Some("is not an existing directory")
            } else {
                None
            };
            match problem {
                Some(problem) => self.fail(key, format!("{dir:?} {problem}")),
                None => dirs.push(PathBuf::from(dir)),
            }
        }
        dirs
    }

    /// A path that `none` or an empty string turns off.
    fn optional_path(&mut self, key: &str, default: &str) -> Option<PathBuf> {
        if matches!(self.map.get(key), Some(Value::Bool(false))) {
            self.map.remove(key);
            return None;
        }
        match self.raw_string(key) {
            None => Some(PathBuf::from(default)),
            Some(s) if off(&s) => None,
            Some(s) => Some(PathBuf::from(s.trim())),
        }
    }

    fn endpoint(&mut self, key: &str, default: &str) -> String {
        let s = self.string(key, default);
        if !valid_endpoint(&s) {
            self.fail(
                key,
                format!("must be a ZeroMQ endpoint such as tcp://host:port, got {s:?}"),
            );
        }
        s
    }

    fn optional_endpoint(&mut self, key: &str, default: &str) -> Option<String> {
        if matches!(self.map.get(key), Some(Value::Bool(false))) {
            self.map.remove(key);
            return None;
        }
        match self.raw_string(key) {
            None => Some(default.to_string()),
            Some(s) if off(&s) => None,
            Some(s) => {
                let s = s.trim().to_string();
                if !valid_endpoint(&s) {
                    self.fail(
                        key,
                        format!(
                            "must be a ZeroMQ endpoint such as tcp://host:port, or none, got {s:?}"
                        ),
                    );
                }
                Some(s)
            }
        }
    }

    fn log_format(&mut self, key: &str) -> one_log::Format {
        match self.raw_string(key).map(|s| s.parse::<one_log::Format>()) {
            None => one_log::Format::Text,
            Some(Ok(format)) => format,
            Some(Err(reason)) => {
                self.fail(key, reason);
                one_log::Format::Text
            }
        }
    }

    /// An `IP:PORT` to listen on; absent, `none` or empty: off.
    fn listen(&mut self, key: &str) -> Option<SocketAddr> {
        let s = self.raw_string(key)?;
        if off(&s) {
            return None;
        }
        match one_metrics::parse_listen(&s) {
            Ok(addr) => Some(addr),
            Err(e) => {
                self.fail(key, e.to_string());
                None
            }
        }
    }

    fn replay_from(&mut self, key: &str) -> ReplayFrom {
        let Some(v) = self.take(key) else {
            return ReplayFrom::Head;
        };
        let parsed = match &v {
            Value::Number(n) => n.as_u64().map(ReplayFrom::After),
            Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
                "head" => Some(ReplayFrom::Head),
                "oldest" => Some(ReplayFrom::Oldest),
                other => other.parse::<u64>().ok().map(ReplayFrom::After),
            },
            _ => None,
        };
        parsed.unwrap_or_else(|| {
            self.fail(
                key,
                format!(
                    "must be head, oldest or a sequence number, got {}",
                    show(&v)
                ),
            );
            ReplayFrom::Head
        })
    }

    /// `nats_servers` and the keys that go with it; without it, those keys are refused.
    fn nats(&mut self) -> Option<NatsSettings> {
        let servers = match self.take("nats_servers") {
            None => {
                for key in NATS_KEYS {
                    if self.map.remove(*key).is_some() {
                        self.fail(key, "only with nats_servers".into());
                    }
                }
                return None;
            }
            Some(Value::String(s)) => one_bus::Settings::split_servers(&s),
            Some(Value::Sequence(items)) => items
                .iter()
                .filter_map(|v| match v {
                    Value::String(s) => Some(s.trim().to_string()),
                    _ => None,
                })
                .collect(),
            Some(other) => {
                self.fail(
                    "nats_servers",
                    format!("must be a URL list (text or list), got {}", kind(&other)),
                );
                Vec::new()
            }
        };
        let user = self.optional_string("nats_user");
        let password = self.raw_string("nats_password");
        let creds = self.optional_string("nats_creds").map(PathBuf::from);
        let auth = match (user, password, creds) {
            (None, None, None) => one_bus::Auth::None,
            (Some(user), Some(password), None) => one_bus::Auth::UserPassword { user, password },
            (None, None, Some(creds)) => one_bus::Auth::Creds(creds),
            (Some(_), None, None) => {
                self.fail("nats_user", "needs nats_password".into());
                one_bus::Auth::None
            }
            (None, Some(_), None) => {
                self.fail("nats_password", "needs nats_user".into());
                one_bus::Auth::None
            }
            (_, _, Some(_)) => {
                self.fail(
                    "nats_creds",
                    "give either a credentials file or a user".into(),
                );
                one_bus::Auth::None
            }
        };
        let tls = one_bus::Tls {
            ca: self.optional_string("nats_tls_ca").map(PathBuf::from),
            cert: self.optional_string("nats_tls_cert").map(PathBuf::from),
            key: self.optional_string("nats_tls_key").map(PathBuf::from),
        };
        let defaults = one_bus::Layout::default();
        let layout = one_bus::Layout {
            prefix: self.string("nats_prefix", &defaults.prefix),
            events_stream: self.string("nats_events_stream", &defaults.events_stream),
            results_stream: self.string("nats_results_stream", &defaults.results_stream),
            bucket: self.string("nats_bucket", &defaults.bucket),
        };
        if !one_proto::subjects::valid_prefix(&layout.prefix) {
            self.fail(
                "nats_prefix",
                format!("{:?} is not a subject prefix (tokens of letters, digits, _ and -, separated by dots)", layout.prefix),
            );
        }
        for (key, name) in [
            ("nats_events_stream", &layout.events_stream),
            ("nats_results_stream", &layout.results_stream),
            ("nats_bucket", &layout.bucket),
        ] {
            let valid = name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
            if !valid {
                self.fail(
                    key,
                    format!("{name:?} may hold only letters, digits, _ and -"),
                );
            }
        }
        let member = self
            .optional_string("nats_name")
            .unwrap_or_else(default_member);
        if !member
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            self.fail(
                "nats_name",
                format!("{member:?} may hold only letters, digits, _ and -"),
            );
        }
        let bus = one_bus::Settings {
            servers,
            auth,
            tls,
            name: format!("onehem-server {member}"),
        };
        for problem in bus.problems(|name| format!("nats_{name}")) {
            let (key, reason) = problem
                .split_once(": ")
                .map_or(("nats_servers".to_string(), problem.clone()), |(k, r)| {
                    (k.to_string(), r.to_string())
                });
            self.fail(&key, reason);
        }
        Some(NatsSettings {
            bus,
            layout,
            replicas: self.uint("nats_replicas", 1, 1, 5) as usize,
            takeover: self.seconds("nats_takeover", 4.0, 1.0, 600.0),
            in_flight: self.uint("nats_in_flight", 1000, 1, 100_000) as usize,
            member,
            marker_ttl: self.seconds("nats_marker_ttl", 600.0, 60.0, 7.0 * 86_400.0),
        })
    }

    fn section(&mut self, key: &str) -> Value {
        match self.take(key) {
            None => Value::Null,
            Some(v @ Value::Mapping(_)) => v,
            Some(other) => {
                self.fail(key, format!("must be a mapping, got {}", kind(&other)));
                Value::Null
            }
        }
    }
}

impl Fields {
    /// `curve_server_key` (the driver's public certificate) and `curve_client_key` (this HEM's
    /// secret certificate): both or neither, each file read and checked now.
    fn curve(&mut self) -> Option<one_curve::ClientKeys> {
        const SERVER: &str = "curve_server_key";
        const CLIENT: &str = "curve_client_key";
        let server = self.optional_string(SERVER);
        let client = self.optional_string(CLIENT);
        let (server, client) = match (server, client) {
            (None, None) => return None,
            (Some(server), Some(client)) => (PathBuf::from(server), PathBuf::from(client)),
            (Some(_), None) => {
                self.fail(
                    SERVER,
                    format!("needs {CLIENT} (this HEM's secret certificate)"),
                );
                return None;
            }
            (None, Some(_)) => {
                self.fail(
                    CLIENT,
                    format!("needs {SERVER} (the driver's public certificate)"),
                );
                return None;
            }
        };
        if let Err(e) = one_curve::check_available() {
            self.fail(SERVER, e);
            return None;
        }
        let server_key = one_curve::cert::load_public(&server)
            .map_err(|e| self.fail(SERVER, e.to_string()))
            .ok();
        let cert = one_curve::cert::load_secret(&client)
            .map_err(|e| self.fail(CLIENT, e.to_string()))
            .ok();
        Some(one_curve::ClientKeys {
            server: server_key?,
            cert: cert?,
        })
    }
}

/// The keys that only mean something with `nats_servers`.
const NATS_KEYS: &[&str] = &[
    "nats_user",
    "nats_password",
    "nats_creds",
    "nats_tls_ca",
    "nats_tls_cert",
    "nats_tls_key",
    "nats_prefix",
    "nats_events_stream",
    "nats_results_stream",
    "nats_bucket",
    "nats_replicas",
    "nats_takeover",
    "nats_in_flight",
    "nats_name",
    "nats_marker_ttl",
];

/// `<host>-<pid>`: unique among the HEMs of one cloud while they run.
fn default_member() -> String {
    let host = nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "hem".into());
    let host: String = host
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{host}-{}", std::process::id())
}

fn off(s: &str) -> bool {
    let s = s.trim();
    s.is_empty() || s.eq_ignore_ascii_case("none")
}

fn valid_endpoint(s: &str) -> bool {
    match s.split_once("://") {
        Some((scheme, rest)) => {
            matches!(scheme, "tcp" | "ipc" | "inproc" | "ws" | "wss") && !rest.is_empty()
        }
        None => false,
    }
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.reason)
    }
}
