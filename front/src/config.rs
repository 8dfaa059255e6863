//! `oned.conf`: OpenNebula template syntax turned into a typed [`Config`].
//!
//! Every problem in a file is reported at once, each with the key it concerns, so an operator
//! fixes a broken file in one pass.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use one_proto::template::Template;

use crate::events::{DEFAULT_ACK_TIMEOUT, DEFAULT_OUTBOX_LIMIT};
use crate::login_throttle::ThrottleConfig;
use crate::sim_config::SimConfig;

/// Default XML-RPC port (oned's `PORT`).
pub const DEFAULT_PORT: u16 = 2633;
/// Retention used when `HOOK_LOG_CONF` is absent (the reference's built-in default).
pub const DEFAULT_LOG_RETENTION: u32 = 10;
/// Database file name used when `DB` names none; relative names live in the var dir.
pub const DEFAULT_DB_FILE: &str = "one.db";
/// Log file name used when `LOG = [ SYSTEM = "file" ]` names none; relative names live in the
/// var dir, as the reference's `oned.log` does.
pub const DEFAULT_LOG_FILE: &str = "oned.log";

/// Every key oned-lite reads: single attributes, vector attributes, and the keys inside
/// vectors as `VECTOR/KEY`. Other top-level attributes are kept for `one.system.config` and
/// warned about at start, since oned-lite does nothing with them.
pub const KEYS: &[&str] = &[
    "PORT",
    "LISTEN_ADDRESS",
    "API_LIST_ORDER",
    "DB",
    "DB/BACKEND",
    "DB/FILE",
    "HM_MAD",
    "HM_MAD/EXECUTABLE",
    "HM_MAD/ARGUMENTS",
    "HOOK_LOG_CONF",
    "HOOK_LOG_CONF/LOG_RETENTION",
    "LOG",
    "LOG/SYSTEM",
    "LOG/DEBUG_LEVEL",
    "LOG/FILE",
    "LOG/FORMAT",
    "MAX_CONN",
    "MAX_CONN_BACKLOG",
    "KEEPALIVE_TIMEOUT",
    "KEEPALIVE_MAX_CONN",
    "TIMEOUT",
    "LOGIN_THROTTLE",
    "LOGIN_THROTTLE/FAILURES",
    "LOGIN_THROTTLE/DELAY",
    "LOGIN_THROTTLE/MAX_DELAY",
    "LOGIN_THROTTLE/ADDRESS_USERS",
    "EVENT_OUTBOX",
    "EVENT_OUTBOX/LIMIT",
    "EVENT_OUTBOX/ACK_TIMEOUT",
    "SIM",
    "METRICS_LISTEN",
    "SIM/PROLOG_DELAY_MS",
    "SIM/BOOT_DELAY_MS",
    "SIM/SHUTDOWN_DELAY_MS",
    "SIM/SAVE_DELAY_MS",
    "SIM/EPILOG_DELAY_MS",
    "SIM/SCHED_DELAY_MS",
    "SIM/MONITOR_DELAY_MS",
    "SIM/REBOOT_DELAY_MS",
    "SIM/IMAGE_DELAY_MS",
];

/// The front-end configuration.
#[derive(Clone, Debug)]
pub struct Config {
    pub port: u16,
    pub listen_address: IpAddr,
    /// The hook manager driver; `None` runs without a driver (events stay in the outbox).
    pub hm_mad: Option<HmMad>,
    pub log_retention: u32,
    /// As written in the file; a relative path is resolved against the var dir by [`Config::db_path`].
    pub db_file: PathBuf,
    /// `API_LIST_ORDER`: pools are listed by descending id unless it is set to something else than `DESC`.
    pub api_list_order_desc: bool,
    /// `SIM = [ … ]`: the simulated cloud's delays.
    pub sim: SimConfig,
    /// `EVENT_OUTBOX = [ LIMIT = n, ACK_TIMEOUT = s ]`.
    pub event_outbox: EventOutbox,
    /// `MAX_CONN`, `MAX_CONN_BACKLOG`, `KEEPALIVE_TIMEOUT`, `KEEPALIVE_MAX_CONN`, `TIMEOUT`.
    pub server: ServerLimits,
    /// `LOGIN_THROTTLE = [ FAILURES = n, DELAY = s, MAX_DELAY = s, ADDRESS_USERS = n ]`.
    pub login_throttle: ThrottleConfig,
    /// `LOG = [ SYSTEM = std | file, DEBUG_LEVEL = n, FILE = path, FORMAT = text | json ]`.
    pub log: LogConf,
    /// Top-level attributes of the file that oned-lite does not read, in file order.
    pub unknown_keys: Vec<String>,
    /// `METRICS_LISTEN = "IP:PORT"`: where `/metrics` and `/health` are served; `None`: nowhere.
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// The file as read, for `one.system.config` only: every key is read into a field above.
    pub as_read: Template,
}

/// `EVENT_OUTBOX = [ LIMIT = n, ACK_TIMEOUT = s ]`: how many events the outbox keeps, and how
/// long a driver has to acknowledge the first events written to it before it is taken for one
/// that never does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EventOutbox {
    pub limit: u64,
    pub ack_timeout: Duration,
}

impl Default for EventOutbox {
    fn default() -> Self {
        EventOutbox {
            limit: DEFAULT_OUTBOX_LIMIT,
            ack_timeout: DEFAULT_ACK_TIMEOUT,
        }
    }
}

/// The XML-RPC server's limits, under the reference's key names (its xmlrpc-c server has the
/// same five); the defaults differ where the reference's would not serve the HEM and its hooks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServerLimits {
    /// `MAX_CONN`: connections kept open at once. At the cap a new connection closes the one
    /// idle for longest instead of waiting (see `connections`).
    pub max_conn: usize,
    /// `MAX_CONN_BACKLOG`: the listen backlog; by default the same as `max_conn`.
    pub backlog: u32,
    /// `KEEPALIVE_TIMEOUT`: how long a connection may stay open between two calls.
    pub keepalive_timeout: Duration,
    /// `KEEPALIVE_MAX_CONN`: calls served on one connection before it is closed; `None`, the
    /// default, for no limit (the HEM keeps one connection for all its calls).
    pub keepalive_max_conn: Option<u32>,
    /// `TIMEOUT`: how long a request (headers and body) may take to arrive once its first
    /// byte has; short, so that a client sending byte by byte holds nothing for long.
    pub timeout: Duration,
}

/// Default `MAX_CONN`.
pub const DEFAULT_MAX_CONN: usize = 512;
/// Default `KEEPALIVE_TIMEOUT` (the reference's value).
pub const DEFAULT_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(15);
/// Default `TIMEOUT`.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits {
            max_conn: DEFAULT_MAX_CONN,
            backlog: DEFAULT_MAX_CONN as u32,
            keepalive_timeout: DEFAULT_KEEPALIVE_TIMEOUT,
            keepalive_max_conn: None,
            timeout: DEFAULT_REQUEST_TIMEOUT,
        }
    }
}

/// Where the log goes: the reference's `SYSTEM` values `std` (stderr) and `file`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogSystem {
    #[default]
    Std,
    File,
}

/// `LOG = [ … ]`: the reference's `SYSTEM` and `DEBUG_LEVEL` (0 = ERROR, 1 = WARNING, 2 = INFO,
/// 3 = DEBUG), and this front-end's `FILE` and `FORMAT`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogConf {
    pub system: LogSystem,
    pub debug_level: u8,
    /// As written; a relative path is resolved against the var dir by [`Config::log_settings`].
    pub file: PathBuf,
    pub format: one_log::Format,
}

impl Default for LogConf {
    fn default() -> Self {
        LogConf {
            system: LogSystem::Std,
            debug_level: 2,
            file: PathBuf::from(DEFAULT_LOG_FILE),
            format: one_log::Format::Text,
        }
    }
}

/// `HM_MAD = [ EXECUTABLE = …, ARGUMENTS = … ]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HmMad {
    pub executable: String,
    pub arguments: String,
}

/// One problem with one key of the configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigProblem {
    pub key: String,
    pub message: String,
}

/// Every problem found in a configuration file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    // The cause is the source, which callers print after this text.
    #[error("cannot read configuration file {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("configuration file {path}: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("configuration file {path}: {}", Problems(.problems))]
    Invalid {
        path: PathBuf,
        problems: Vec<ConfigProblem>,
    },
}

struct Problems<'a>(&'a [ConfigProblem]);

impl fmt::Display for Problems<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{}: {}", p.key, p.message)?;
        }
        Ok(())
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            port: DEFAULT_PORT,
            listen_address: IpAddr::V4(Ipv4Addr::LOCALHOST),
            hm_mad: None,
            log_retention: DEFAULT_LOG_RETENTION,
            db_file: PathBuf::from(DEFAULT_DB_FILE),
            api_list_order_desc: true,
            sim: SimConfig::default(),
            event_outbox: EventOutbox::default(),
            server: ServerLimits::default(),
            login_throttle: ThrottleConfig::default(),
            log: LogConf::default(),
            unknown_keys: Vec::new(),
            metrics_listen: None,
            as_read: Template::new(),
        }
    }
}

impl Config {
    /// Reads and validates a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Config::from_text(&text, path)
    }

    /// Validates configuration text; `path` is only used in error messages.
    pub fn from_text(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let raw = Template::parse(text).map_err(|e| ConfigError::Syntax {
            path: path.to_path_buf(),
            message: e.oned_message(),
        })?;
        let mut problems = Vec::new();
        let mut config = Config::default();

        if let Some(v) = single(&raw, "PORT", &mut problems) {
            match v.parse::<u16>() {
                Ok(p) => config.port = p,
                Err(_) => problem(
                    &mut problems,
                    "PORT",
                    format!("not a TCP port number: {v:?}"),
                ),
            }
        }
        if let Some(v) = single(&raw, "LISTEN_ADDRESS", &mut problems) {
            match v.parse::<IpAddr>() {
                Ok(a) => config.listen_address = a,
                Err(_) => problem(
                    &mut problems,
                    "LISTEN_ADDRESS",
                    format!("not an IP address: {v:?}"),
                ),
            }
        }
        if let Some(pairs) = vector(&raw, "HM_MAD", &mut problems) {
            let executable = lookup(pairs, "EXECUTABLE")
                .unwrap_or_default()
                .trim()
                .to_string();
            if executable.is_empty() {
                problem(
                    &mut problems,
                    "HM_MAD/EXECUTABLE",
                    "missing or empty".to_string(),
                );
            }
            let arguments = lookup(pairs, "ARGUMENTS").unwrap_or_default().to_string();
            config.hm_mad = Some(HmMad {
                executable,
                arguments,
            });
        }
        if let Some(pairs) = vector(&raw, "HOOK_LOG_CONF", &mut problems) {
            // The reference leaves the retention uninitialised here; an explicit error is safer.
            match lookup(pairs, "LOG_RETENTION") {
                None => problem(
                    &mut problems,
                    "HOOK_LOG_CONF/LOG_RETENTION",
                    "missing".to_string(),
                ),
                Some(v) => match v.trim().parse::<u32>() {
                    Ok(n) => config.log_retention = n,
                    Err(_) => problem(
                        &mut problems,
                        "HOOK_LOG_CONF/LOG_RETENTION",
                        format!("not a non-negative integer: {v:?}"),
                    ),
                },
            }
        }
        if let Some(pairs) = vector(&raw, "DB", &mut problems) {
            if let Some(backend) = lookup(pairs, "BACKEND")
                && !backend.eq_ignore_ascii_case("sqlite")
            {
                problem(
                    &mut problems,
                    "DB/BACKEND",
                    format!("only \"sqlite\" is supported, not {backend:?}"),
                );
            }
            match lookup(pairs, "FILE") {
                Some(f) if f.trim().is_empty() => {
                    problem(&mut problems, "DB/FILE", "empty".to_string())
                }
                Some(f) => config.db_file = PathBuf::from(f.trim()),
                None => {}
            }
        }
        if let Some(v) = single(&raw, "API_LIST_ORDER", &mut problems) {
            config.api_list_order_desc = v.eq_ignore_ascii_case("DESC");
        }
        match SimConfig::from_template(&raw) {
            Ok(sim) => config.sim = sim,
            Err(errors) => problems.extend(errors.into_iter().map(|e| ConfigProblem {
                key: e.key,
                message: e.message,
            })),
        }
        if let Some(pairs) = vector(&raw, "EVENT_OUTBOX", &mut problems) {
            let mut positive = |name: &str| {
                let v = lookup(pairs, name)?;
                match v.trim().parse::<u64>() {
                    Ok(n) if n > 0 => Some(n),
                    _ => {
                        problem(
                            &mut problems,
                            &format!("EVENT_OUTBOX/{name}"),
                            format!("not a positive integer: {v:?}"),
                        );
                        None
                    }
                }
            };
            if let Some(n) = positive("LIMIT") {
                config.event_outbox.limit = n;
            }
            if let Some(s) = positive("ACK_TIMEOUT") {
                config.event_outbox.ack_timeout = Duration::from_secs(s);
            }
        }

        if let Some(v) = single(&raw, "METRICS_LISTEN", &mut problems) {
            match one_metrics::parse_listen(v) {
                Ok(addr) => config.metrics_listen = Some(addr),
                Err(e) => problem(&mut problems, "METRICS_LISTEN", e.to_string()),
            }
        }
        config.server = server_limits(&raw, &mut problems);
        if let Some(pairs) = vector(&raw, "LOGIN_THROTTLE", &mut problems) {
            config.login_throttle = login_throttle(pairs, &mut problems);
        }
        if let Some(pairs) = vector(&raw, "LOG", &mut problems) {
            config.log = log_conf(pairs, &mut problems);
        }
        config.unknown_keys = unknown_keys(&raw);

        if !problems.is_empty() {
            return Err(ConfigError::Invalid {
                path: path.to_path_buf(),
                problems,
            });
        }
        config.as_read = raw;
        Ok(config)
    }

    /// The logs' settings, a relative `LOG/FILE` resolved against `var_dir`.
    pub fn log_settings(&self, var_dir: &Path) -> one_log::Settings {
        let file = match self.log.system {
            LogSystem::Std => None,
            LogSystem::File => Some(var_dir.join(&self.log.file)),
        };
        one_log::Settings {
            level: one_log::debug_level_directive(self.log.debug_level).to_string(),
            format: self.log.format,
            stderr: file.is_none(),
            file,
            target: one_log::Target::Shown,
        }
    }

    /// The database file, relative names resolved against `var_dir`.
    pub fn db_path(&self, var_dir: &Path) -> PathBuf {
        if self.db_file.is_absolute() {
            self.db_file.clone()
        } else {
            var_dir.join(&self.db_file)
        }
    }
}

/// Upper bound of `MAX_CONN` and `MAX_CONN_BACKLOG`: far above what one process serves, low
/// enough that no arithmetic on it overflows.
const MAX_CONN_LIMIT: u64 = 1_000_000;
/// Upper bound of every duration key, in seconds (a day).
const MAX_SECONDS: u64 = 86_400;

/// A positive integer no larger than `max`, or a problem naming `key`.
fn positive(v: &str, key: &str, max: u64, problems: &mut Vec<ConfigProblem>) -> Option<u64> {
    match v.trim().parse::<u64>() {
        Ok(n) if (1..=max).contains(&n) => Some(n),
        _ => {
            problem(
                problems,
                key,
                format!("not an integer from 1 to {max}: {v:?}"),
            );
            None
        }
    }
}

fn server_limits(raw: &Template, problems: &mut Vec<ConfigProblem>) -> ServerLimits {
    let mut limits = ServerLimits::default();
    let mut read = |key: &str, max: u64| {
        let v = single(raw, key, problems)?;
        positive(v, key, max, problems)
    };
    let max_conn = read("MAX_CONN", MAX_CONN_LIMIT);
    let backlog = read("MAX_CONN_BACKLOG", MAX_CONN_LIMIT);
    let keepalive = read("KEEPALIVE_TIMEOUT", MAX_SECONDS);
    let per_connection = read("KEEPALIVE_MAX_CONN", u64::from(u32::MAX));
    let timeout = read("TIMEOUT", MAX_SECONDS);
    if let Some(n) = max_conn {
        limits.max_conn = n as usize;
        limits.backlog = n as u32;
    }
    if let Some(n) = backlog {
        limits.backlog = n as u32;
    }
    if let Some(s) = keepalive {
        limits.keepalive_timeout = Duration::from_secs(s);
    }
    limits.keepalive_max_conn = per_connection.map(|n| n as u32);
    if let Some(s) = timeout {
        limits.timeout = Duration::from_secs(s);
    }
    limits
}

fn login_throttle(pairs: &[(String, String)], problems: &mut Vec<ConfigProblem>) -> ThrottleConfig {
    let mut throttle = ThrottleConfig::default();
    let mut read = |name: &str, max: u64| {
        let v = lookup(pairs, name)?;
        positive(v, &format!("LOGIN_THROTTLE/{name}"), max, problems)
    };
    let failures = read("FAILURES", u64::from(u32::MAX));
    let delay = read("DELAY", MAX_SECONDS);
    let max_delay = read("MAX_DELAY", MAX_SECONDS);
    let address_users = read("ADDRESS_USERS", 1000);
    if let Some(n) = failures {
        throttle.failures = n as u32;
    }
    if let Some(s) = delay {
        throttle.delay = Duration::from_secs(s);
    }
    if let Some(s) = max_delay {
        throttle.max_delay = Duration::from_secs(s);
    }
    if let Some(n) = address_users {
        throttle.address_users = n as usize;
    }
    if throttle.max_delay < throttle.delay {
        problem(
            problems,
            "LOGIN_THROTTLE/MAX_DELAY",
            format!(
                "{} s is shorter than DELAY ({} s)",
                throttle.max_delay.as_secs(),
                throttle.delay.as_secs()
            ),
        );
    }
    throttle
}

fn log_conf(pairs: &[(String, String)], problems: &mut Vec<ConfigProblem>) -> LogConf {
    let mut log = LogConf::default();
    if let Some(v) = lookup(pairs, "SYSTEM") {
        match v.trim().to_ascii_lowercase().as_str() {
            "std" => log.system = LogSystem::Std,
            "file" => log.system = LogSystem::File,
            _ => problem(
                problems,
                "LOG/SYSTEM",
                format!("must be \"std\" or \"file\", not {v:?}"),
            ),
        }
    }
    if let Some(v) = lookup(pairs, "DEBUG_LEVEL") {
        match v.trim().parse::<u8>() {
            Ok(n) if n <= 5 => log.debug_level = n,
            _ => problem(
                problems,
                "LOG/DEBUG_LEVEL",
                format!("not an integer from 0 to 5: {v:?}"),
            ),
        }
    }
    match lookup(pairs, "FILE") {
        Some(f) if f.trim().is_empty() => problem(problems, "LOG/FILE", "empty".to_string()),
        Some(f) => log.file = PathBuf::from(f.trim()),
        None => {}
    }
    if let Some(v) = lookup(pairs, "FORMAT") {
        match v.parse::<one_log::Format>() {
            Ok(format) => log.format = format,
            Err(message) => problem(problems, "LOG/FORMAT", message),
        }
    }
    log
}

/// The top-level attributes that no key of [`KEYS`] names, each once.
fn unknown_keys(raw: &Template) -> Vec<String> {
    let mut unknown: Vec<String> = Vec::new();
    for attribute in raw.attributes() {
        let name = attribute.name.as_str();
        if !KEYS.contains(&name) && !unknown.iter().any(|u| u == name) {
            unknown.push(name.to_string());
        }
    }
    unknown
}

fn problem(problems: &mut Vec<ConfigProblem>, key: &str, message: String) {
    problems.push(ConfigProblem {
        key: key.to_string(),
        message,
    });
}

fn count(raw: &Template, key: &str) -> usize {
    raw.attributes().iter().filter(|a| a.name == key).count()
}

/// The value of a single attribute, with a problem when it is repeated or a vector.
fn single<'t>(raw: &'t Template, key: &str, problems: &mut Vec<ConfigProblem>) -> Option<&'t str> {
    let n = count(raw, key);
    if n == 0 {
        return None;
    }
    if n > 1 {
        problem(problems, key, "given more than once".to_string());
    }
    match raw.get(key) {
        Some(v) => Some(v.trim()),
        None => {
            problem(
                problems,
                key,
                "must be a single value, not a vector".to_string(),
            );
            None
        }
    }
}

/// The pairs of a vector attribute, with a problem when it is repeated or a single value.
fn vector<'t>(
    raw: &'t Template,
    key: &str,
    problems: &mut Vec<ConfigProblem>,
) -> Option<&'t [(String, String)]> {
    let n = count(raw, key);
    if n == 0 {
        return None;
    }
    if n > 1 {
        problem(problems, key, "given more than once".to_string());
    }
    match raw.get_vector(key) {
        Some(v) => Some(v),
        None => {
            problem(
                problems,
                key,
                "must be a vector attribute ( KEY = [ … ] )".to_string(),
            );
            None
        }
    }
}

fn lookup<'p>(pairs: &'p [(String, String)], key: &str) -> Option<&'p str> {
    pairs
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| v.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::from_text(text, Path::new("oned.conf"))
    }

    /// The keys of the problems `text` has, in order, and the whole error's text.
    fn problem_keys(text: &str) -> (Vec<String>, String) {
        let err = parse(text).unwrap_err();
        let ConfigError::Invalid { problems, .. } = &err else {
            panic!("unexpected {err}");
        };
        (
            problems.iter().map(|p| p.key.clone()).collect(),
            err.to_string(),
        )
    }

    #[test]
    fn defaults_apply_to_an_empty_file() {
        let c = parse("").unwrap();
        assert_eq!(c.port, 2633);
        assert_eq!(c.listen_address, IpAddr::V4(Ipv4Addr::LOCALHOST));
        assert_eq!(c.log_retention, 10);
        assert!(c.hm_mad.is_none());
        assert!(c.api_list_order_desc);
        assert_eq!(c.db_path(Path::new("/v")), PathBuf::from("/v/one.db"));
    }

    #[test]
    fn reads_every_key() {
        let c = parse(
            "PORT = 2700\nLISTEN_ADDRESS = \"0.0.0.0\"\n\
             HM_MAD = [ EXECUTABLE = \"one_hm\", ARGUMENTS = \"-p 2101 -l 2102 -b 127.0.0.1\" ]\n\
             HOOK_LOG_CONF = [ LOG_RETENTION = 20 ]\nDB = [ BACKEND = \"sqlite\", FILE = \"/tmp/x.db\" ]\n\
             API_LIST_ORDER = ASC\nSIM_SPEED = 3\n",
        )
        .unwrap();
        assert_eq!(c.port, 2700);
        assert_eq!(c.listen_address.to_string(), "0.0.0.0");
        assert_eq!(
            c.hm_mad,
            Some(HmMad {
                executable: "one_hm".into(),
                arguments: "-p 2101 -l 2102 -b 127.0.0.1".into()
            })
        );
        assert_eq!(c.log_retention, 20);
        assert_eq!(c.db_path(Path::new("/v")), PathBuf::from("/tmp/x.db"));
        assert!(!c.api_list_order_desc);
        assert_eq!(c.as_read.get("SIM_SPEED"), Some("3"));
        assert_eq!(c.unknown_keys, ["SIM_SPEED"]);
        assert_eq!(c.log, LogConf::default());
    }

    #[test]
    fn every_vector_key_listed_is_read() {
        for key in KEYS {
            let Some((vector, inner)) = key.split_once('/') else {
                continue;
            };
            // A value no key accepts: the parser must name the key in its complaint.
            let text = format!("{vector} = [ {inner} = \"@\" ]\n");
            // Text keys take any value.
            let text_key = matches!(
                *key,
                "HM_MAD/EXECUTABLE" | "HM_MAD/ARGUMENTS" | "DB/FILE" | "LOG/FILE"
            );
            match parse(&text) {
                Err(ConfigError::Invalid { problems, .. }) => assert!(
                    text_key || problems.iter().any(|p| p.key.eq_ignore_ascii_case(key)),
                    "{key}: {problems:?}"
                ),
                Err(other) => panic!("{key}: {other}"),
                Ok(_) => assert!(text_key, "{key} was not read"),
            }
        }
    }

    #[test]
    fn reports_every_problem_with_its_key() {
        let (keys, text) = problem_keys(
            "PORT = 70000\nLISTEN_ADDRESS = nowhere\nHM_MAD = [ ARGUMENTS = \"-p 1\" ]\n\
             HOOK_LOG_CONF = [ OTHER = 1 ]\nDB = [ BACKEND = mysql ]\n",
        );
        assert_eq!(
            keys,
            [
                "PORT",
                "LISTEN_ADDRESS",
                "HM_MAD/EXECUTABLE",
                "HOOK_LOG_CONF/LOG_RETENTION",
                "DB/BACKEND"
            ]
        );
        assert!(text.contains("PORT: not a TCP port number"), "{text}");
    }

    #[test]
    fn the_event_outbox_and_the_simulation_are_read_and_checked_with_the_rest() {
        let c = parse("").unwrap();
        assert_eq!(c.event_outbox, EventOutbox::default());
        assert_eq!(c.event_outbox.limit, DEFAULT_OUTBOX_LIMIT);
        let c = parse("EVENT_OUTBOX = [ LIMIT = 50 ]\nSIM = [ BOOT_DELAY_MS = 7 ]\n").unwrap();
        assert_eq!(c.event_outbox.limit, 50);
        assert_eq!(c.event_outbox.ack_timeout, DEFAULT_ACK_TIMEOUT);
        assert_eq!(c.sim.boot, Duration::from_millis(7));
        let c = parse("EVENT_OUTBOX = [ ACK_TIMEOUT = 2 ]").unwrap();
        assert_eq!(c.event_outbox.ack_timeout, Duration::from_secs(2));
        for (bad, key) in [
            ("EVENT_OUTBOX = [ LIMIT = 0 ]", "EVENT_OUTBOX/LIMIT"),
            ("EVENT_OUTBOX = [ LIMIT = x ]", "EVENT_OUTBOX/LIMIT"),
            ("EVENT_OUTBOX = 5", "EVENT_OUTBOX"),
            (
                "EVENT_OUTBOX = [ ACK_TIMEOUT = -1 ]",
                "EVENT_OUTBOX/ACK_TIMEOUT",
            ),
            ("SIM = 5", "SIM"),
        ] {
            let (keys, text) = problem_keys(bad);
            assert_eq!(keys, [key], "{bad}: {text}");
        }
        // Every problem of the file at once, the simulation's and the outbox's among them.
        let (keys, _) =
            problem_keys("PORT = x\nSIM = 5\nEVENT_OUTBOX = [ LIMIT = 0, ACK_TIMEOUT = y ]\n");
        assert_eq!(
            keys,
            [
                "PORT",
                "SIM",
                "EVENT_OUTBOX/LIMIT",
                "EVENT_OUTBOX/ACK_TIMEOUT"
            ]
        );
    }

    #[test]
    fn the_server_limits_and_the_login_throttle_are_read_and_checked() {
        let c = parse("").unwrap();
        assert_eq!(c.server, ServerLimits::default());
        assert_eq!(c.server.backlog, DEFAULT_MAX_CONN as u32);
        assert_eq!(c.login_throttle, ThrottleConfig::default());
        let c = parse(
            "MAX_CONN = 100\nKEEPALIVE_TIMEOUT = 3\nKEEPALIVE_MAX_CONN = 30\nTIMEOUT = 2\n\
             LOGIN_THROTTLE = [ FAILURES = 4, DELAY = 2, MAX_DELAY = 8, ADDRESS_USERS = 6 ]\n",
        )
        .unwrap();
        assert_eq!(
            c.server,
            ServerLimits {
                max_conn: 100,
                backlog: 100,
                keepalive_timeout: Duration::from_secs(3),
                keepalive_max_conn: Some(30),
                timeout: Duration::from_secs(2),
            }
        );
        assert_eq!(
            c.login_throttle,
            ThrottleConfig {
                failures: 4,
                delay: Duration::from_secs(2),
                max_delay: Duration::from_secs(8),
                address_users: 6,
            }
        );
        let c = parse("MAX_CONN = 100\nMAX_CONN_BACKLOG = 20\n").unwrap();
        assert_eq!((c.server.max_conn, c.server.backlog), (100, 20));
        for (bad, key) in [
            ("MAX_CONN = 0", "MAX_CONN"),
            ("MAX_CONN = -5", "MAX_CONN"),
            ("MAX_CONN = 99999999999", "MAX_CONN"),
            ("MAX_CONN_BACKLOG = x", "MAX_CONN_BACKLOG"),
            ("KEEPALIVE_TIMEOUT = [ A = 1 ]", "KEEPALIVE_TIMEOUT"),
            ("KEEPALIVE_MAX_CONN = 0", "KEEPALIVE_MAX_CONN"),
            ("TIMEOUT = 1.5", "TIMEOUT"),
            ("LOGIN_THROTTLE = 3", "LOGIN_THROTTLE"),
            (
                "LOGIN_THROTTLE = [ FAILURES = 0 ]",
                "LOGIN_THROTTLE/FAILURES",
            ),
            (
                "LOGIN_THROTTLE = [ DELAY = 10, MAX_DELAY = 5 ]",
                "LOGIN_THROTTLE/MAX_DELAY",
            ),
            (
                "LOGIN_THROTTLE = [ ADDRESS_USERS = 5000 ]",
                "LOGIN_THROTTLE/ADDRESS_USERS",
            ),
        ] {
            let (keys, text) = problem_keys(bad);
            assert_eq!(keys, [key], "{bad}: {text}");
        }
    }

    #[test]
    fn metrics_listen_is_an_ip_and_a_port() {
        assert_eq!(parse("").unwrap().metrics_listen, None);
        let c = parse("METRICS_LISTEN = \"127.0.0.1:9924\"\n").unwrap();
        assert_eq!(c.metrics_listen, Some("127.0.0.1:9924".parse().unwrap()));
        for bad in [
            "METRICS_LISTEN = \"localhost:9924\"",
            "METRICS_LISTEN = 9924",
        ] {
            let (keys, text) = problem_keys(bad);
            assert_eq!(keys, ["METRICS_LISTEN"], "{bad}: {text}");
            assert!(text.contains("must be IP:PORT"), "{text}");
        }
    }

    #[test]
    fn the_shipped_file_is_valid() {
        let c = parse(include_str!("../../etc/oned.conf")).unwrap();
        assert_eq!(c.port, 2633);
        assert_eq!(c.log_retention, 20);
        assert_eq!(c.hm_mad.unwrap().arguments, "-p 2101 -l 2102 -b 127.0.0.1");
        assert_eq!(c.db_file, PathBuf::from("one.db"));
    }

    #[test]
    fn syntax_errors_carry_the_parser_message() {
        let err = parse("PORT = \n= 1").unwrap_err();
        assert!(matches!(err, ConfigError::Syntax { .. }), "{err}");
        assert!(err.to_string().contains("Parse error"), "{err}");
    }
}
