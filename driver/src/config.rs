//! Command-line flags and the validated driver configuration.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

/// Flags, as oned's `HM_MAD` ARGUMENTS or an operator pass them.
///
/// The reference's flags take optional values: a flag given without a value means 0 (a bare `-p`
/// binds an ephemeral port). `-h` is the high-water mark, so help is only `--help`.
#[derive(Debug, Parser)]
#[command(
    name = "one_hm",
    version,
    disable_help_flag = true,
    about = "OpenNebula Hook Manager driver: MAD lines on stdin/stdout, events on ZeroMQ PUB, \
             results on REP, with a SQLite event journal and replay",
    after_help = "CURVE is off by default, because the reference Ruby HEM cannot do CURVE: then \
                  any process that reaches the three ports can read every event (VM templates, \
                  CONTEXT passwords included), send results and replay the journal. To turn it \
                  on, make a pair for the driver and one per client \
                  (one_hm --curve-keygen /etc/one/curve one_hm; \
                  one_hm --curve-keygen /etc/one/curve/hem onehem), copy each client's public \
                  NAME.key into a directory of allowed clients (/etc/one/curve/clients), start \
                  the driver with --curve-secret-key /etc/one/curve/one_hm.key_secret \
                  --curve-clients /etc/one/curve/clients (HM_MAD ARGUMENTS in oned.conf) and \
                  give each client the driver's one_hm.key and its own .key_secret \
                  (onehem-server.conf :curve_server_key: and :curve_client_key:)."
)]
pub struct Cli {
    /// Accepted for compatibility; the driver's pipeline does not use action threads.
    #[arg(short = 't', long = "threads", num_args = 0..=1, default_missing_value = "0")]
    pub threads: Option<String>,

    /// PUB port for events (0 picks a free port).
    #[arg(short = 'p', long = "publisher-port", num_args = 0..=1, default_value_t = 2101, default_missing_value = "0")]
    pub publisher_port: u16,

    /// REP port for hook results (0 picks a free port).
    #[arg(short = 'l', long = "logger-port", num_args = 0..=1, default_value_t = 2102, default_missing_value = "0")]
    pub logger_port: u16,

    /// ZMQ_SNDHWM of the PUB socket (messages queued per subscriber before dropping).
    #[arg(short = 'h', long = "hwm", num_args = 0..=1, default_missing_value = "0")]
    pub hwm: Option<i32>,

    /// Address all sockets bind to.
    #[arg(short = 'b', long = "bind", num_args = 0..=1, default_value = "127.0.0.1", default_missing_value = "")]
    pub bind: String,

    /// REP port of the replay endpoint (0 picks a free port).
    #[arg(long = "replay-port", default_value_t = 2103)]
    pub replay_port: u16,

    /// SQLite file of the event journal (created if missing).
    #[arg(long = "journal", default_value = "one_hm.journal.db")]
    pub journal: PathBuf,

    /// What the journal keeps: an event count, an age (`90s`, `30m`, `12h`, `7d`) or both,
    /// comma-separated; whichever limit is reached first trims the oldest events.
    #[arg(long = "journal-retention", default_value = "1000000,7d")]
    pub journal_retention: String,

    /// SQLite `synchronous` level of the journal: `normal` (default; survives a crash of the
    /// driver, a power loss may lose the last commits), `full` (fsync on every group commit) or
    /// `off`.
    #[arg(long = "journal-sync", default_value = "normal")]
    pub journal_sync: String,

    /// How many recent results are remembered for duplicate detection by EXECUTION_UID.
    #[arg(long = "dedupe-window", default_value_t = 100_000)]
    pub dedupe_window: u64,

    /// Refuse results whose EXECUTION_UID is missing or not of our HEM's form. Off by default,
    /// because the reference HEM sends none; turn it on when only onehem-server sends results,
    /// so that a result nobody's HEM could have sent is never stored.
    #[arg(long = "require-execution-uid")]
    pub require_execution_uid: bool,

    /// Publish the bare reference keys, without the `#<seq>` token.
    #[arg(long = "no-sequence")]
    pub no_sequence: bool,

    /// After binding, write the bound endpoints here (`publisher=…`, `logger=…`, `replay=…`).
    #[arg(long = "endpoints-file")]
    pub endpoints_file: Option<PathBuf>,

    /// Serve `GET /metrics` (Prometheus text format) and `GET /health` on this `IP:PORT`.
    /// Off when absent.
    #[arg(long = "metrics-listen", value_name = "IP:PORT")]
    pub metrics_listen: Option<String>,

    /// NATS servers (`nats://host:port` or `tls://host:port`, comma-separated). Selects the
    /// NATS mode: events and results are journaled in JetStream streams instead of the SQLite
    /// journal (ARCHITECTURE.md "Distributed mode").
    #[arg(long = "nats", value_name = "URL[,URL...]")]
    pub nats: Option<String>,

    /// NATS user (with --nats-password).
    #[arg(long = "nats-user")]
    pub nats_user: Option<String>,

    /// NATS password; better given in the environment than on the command line.
    #[arg(
        long = "nats-password",
        env = "ONE_HM_NATS_PASSWORD",
        hide_env_values = true
    )]
    pub nats_password: Option<String>,

    /// NATS credentials file (user JWT and nkey seed), instead of a user and password.
    #[arg(long = "nats-creds")]
    pub nats_creds: Option<PathBuf>,

    /// CA certificate the NATS servers' certificates are checked against (requires TLS).
    #[arg(long = "nats-tls-ca")]
    pub nats_tls_ca: Option<PathBuf>,

    /// Client certificate for NATS (with --nats-tls-key).
    #[arg(long = "nats-tls-cert")]
    pub nats_tls_cert: Option<PathBuf>,

    /// Key of the client certificate.
    #[arg(long = "nats-tls-key")]
    pub nats_tls_key: Option<PathBuf>,

    /// Replicas of the events and results streams when the driver creates them (at most the
    /// number of servers in the cluster).
    #[arg(long = "nats-replicas", default_value_t = 1)]
    pub nats_replicas: usize,

    /// Partitions of the events stream: HEMs divide the work by partition, and the events of
    /// one resource always go to the same one. Fixed for the life of the stream.
    #[arg(long = "nats-partitions", default_value_t = 8)]
    pub nats_partitions: u32,

    /// Subject prefix of events and results.
    #[arg(long = "nats-prefix", default_value = one_proto::subjects::DEFAULT_PREFIX)]
    pub nats_prefix: String,

    /// Name of the events stream.
    #[arg(long = "nats-events-stream", default_value = "ONE_EVENTS")]
    pub nats_events_stream: String,

    /// Name of the results stream.
    #[arg(long = "nats-results-stream", default_value = "ONE_RESULTS")]
    pub nats_results_stream: String,

    /// How long the streams remember message ids: an event or result sent again within this
    /// time is stored once (`90s`, `10m`, `1h`).
    #[arg(long = "nats-dedupe-window", default_value = "10m")]
    pub nats_dedupe_window: String,

    /// How long a result forwarded to oned may wait for oned's acknowledgement before JetStream
    /// delivers it again (to this driver or the next one).
    #[arg(long = "nats-result-ack-wait", default_value = "10s")]
    pub nats_result_ack_wait: String,

    /// CURVE: the driver's secret certificate (`NAME.key_secret`, mode 0600). With
    /// --curve-clients, all three sockets require CURVE and admit only the listed clients.
    #[arg(long = "curve-secret-key", value_name = "FILE")]
    pub curve_secret_key: Option<PathBuf>,

    /// CURVE: the directory of allowed clients' public certificates (every `*.key` in it).
    #[arg(long = "curve-clients", value_name = "DIR")]
    pub curve_clients: Option<PathBuf>,

    /// Write a new key pair, DIR/NAME.key (public) and DIR/NAME.key_secret (0600), and exit.
    #[arg(long = "curve-keygen", num_args = 2, value_names = ["DIR", "NAME"])]
    pub curve_keygen: Option<Vec<PathBuf>>,

    /// Log level: an `EnvFilter` directive such as `warn`, `debug` or `one_hm=debug`. The
    /// ONE_LOG environment variable overrides it.
    #[arg(long = "log-level", default_value = "info")]
    pub log_level: String,

    /// Log lines on stderr as `text` or `json` (one object per line).
    #[arg(long = "log-format", default_value = "text")]
    pub log_format: one_log::Format,

    /// Print help.
    #[arg(long = "help", action = clap::ArgAction::Help)]
    pub help: Option<bool>,
}

/// The NATS mode's settings.
#[derive(Debug, Clone)]
pub struct NatsConfig {
    pub bus: one_bus::Settings,
    pub layout: one_bus::Layout,
    pub replicas: usize,
    pub partitions: u32,
    pub dedupe_window: Duration,
    pub result_ack_wait: Duration,
}

/// How many events and for how long the journal keeps them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Keep at most this many events (the newest).
    pub max_events: Option<u64>,
    /// Drop events older than this.
    pub max_age: Option<Duration>,
}

/// SQLite `synchronous` level of the journal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncMode {
    /// No fsync at all.
    Off,
    /// WAL default: fsync at checkpoints only.
    Normal,
    /// fsync of the WAL at every commit.
    Full,
}

impl SyncMode {
    /// What a commit of the journal promises.
    pub fn durability(self) -> one_wal::Durability {
        match self {
            SyncMode::Off => one_wal::Durability::Off,
            SyncMode::Normal => one_wal::Durability::Normal,
            SyncMode::Full => one_wal::Durability::Full,
        }
    }
}

/// Whether published keys carry the sequence token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyStyle {
    /// `<reference key> #<seq>` (ARCHITECTURE.md "Sequence token").
    WithSequence,
    /// The bare reference key.
    Reference,
}

/// The validated configuration `run` works from.
#[derive(Debug, Clone)]
pub struct Config {
    /// Bind address of all three sockets.
    pub bind: String,
    /// PUB port.
    pub publisher_port: u16,
    /// Results REP port.
    pub logger_port: u16,
    /// Replay REP port.
    pub replay_port: u16,
    /// ZMQ_SNDHWM of the PUB socket, if set.
    pub hwm: Option<i32>,
    /// Journal file.
    pub journal: PathBuf,
    /// Journal retention.
    pub retention: Retention,
    /// Journal fsync policy.
    pub sync: SyncMode,
    /// Results remembered for duplicate detection.
    pub dedupe_window: u64,
    /// Refuse results without an execution uid of our form.
    pub require_execution_uid: bool,
    /// Key style on the PUB socket.
    pub key_style: KeyStyle,
    /// Where to write the bound endpoints.
    pub endpoints_file: Option<PathBuf>,
    /// NATS mode; `None` journals in SQLite.
    pub nats: Option<NatsConfig>,
    /// CURVE on all three sockets; `None` leaves them open to anyone who reaches them.
    pub curve: Option<one_curve::ServerKeys>,
    /// Where `/metrics` and `/health` are served; `None`: nowhere.
    pub metrics_listen: Option<SocketAddr>,
}

impl Config {
    /// Validates the flags, reporting every problem at once.
    pub fn from_cli(cli: Cli) -> Result<Config, Vec<String>> {
        let mut problems = Vec::new();
        let retention = parse_retention(&cli.journal_retention)
            .map_err(|e| problems.push(format!("--journal-retention: {e}")))
            .ok();
        let sync = parse_sync(&cli.journal_sync)
            .map_err(|e| problems.push(format!("--journal-sync: {e}")))
            .ok();
        if cli.bind.is_empty() {
            problems.push("--bind: empty address".to_owned());
        }
        if cli.hwm.is_some_and(|h| h < 0) {
            problems.push("--hwm: must not be negative".to_owned());
        }
        let nats = nats_config(&cli, &mut problems);
        let curve = curve_config(&cli, &mut problems);
        let metrics_listen = cli.metrics_listen.as_deref().and_then(|s| {
            one_metrics::parse_listen(s)
                .map_err(|e| problems.push(format!("--metrics-listen: {e}")))
                .ok()
        });
        let (Some(retention), Some(sync), true) = (retention, sync, problems.is_empty()) else {
            return Err(problems);
        };
        Ok(Config {
            bind: cli.bind,
            publisher_port: cli.publisher_port,
            logger_port: cli.logger_port,
            replay_port: cli.replay_port,
            hwm: cli.hwm,
            journal: cli.journal,
            retention,
            sync,
            dedupe_window: cli.dedupe_window,
            require_execution_uid: cli.require_execution_uid,
            key_style: if cli.no_sequence {
                KeyStyle::Reference
            } else {
                KeyStyle::WithSequence
            },
            endpoints_file: cli.endpoints_file,
            nats,
            curve,
            metrics_listen,
        })
    }

    /// `tcp://<bind>:<port>`, with brackets around an IPv6 address.
    pub fn endpoint(&self, port: u16) -> String {
        if self.is_ipv6() {
            format!("tcp://[{}]:{port}", self.bind)
        } else {
            format!("tcp://{}:{port}", self.bind)
        }
    }

    /// Whether only this machine can reach the sockets: a loopback address or `localhost`. An
    /// interface name or `*` may be anything, so it counts as reachable from outside.
    pub fn binds_loopback(&self) -> bool {
        match self.bind.parse::<IpAddr>() {
            Ok(ip) => ip.is_loopback(),
            Err(_) => self.bind.eq_ignore_ascii_case("localhost"),
        }
    }

    /// Whether the bind address is an IPv6 literal (ZeroMQ then needs ZMQ_IPV6).
    pub fn is_ipv6(&self) -> bool {
        matches!(self.bind.parse::<IpAddr>(), Ok(IpAddr::V6(_)))
    }
}

/// oned execs the driver with the whole ARGUMENTS string as one argv element (the reference's
/// shell wrapper splits it); split such an element so the binary can be HM_MAD directly.
pub fn split_single_argument(args: Vec<String>) -> Vec<String> {
    match args.as_slice() {
        [program, only] if only.split_whitespace().nth(1).is_some() => {
            let mut out = vec![program.clone()];
            out.extend(only.split_whitespace().map(str::to_owned));
            out
        }
        _ => args,
    }
}

/// The CURVE keys when both `--curve-secret-key` and `--curve-clients` are given.
fn curve_config(cli: &Cli, problems: &mut Vec<String>) -> Option<one_curve::ServerKeys> {
    let (secret, clients) = match (&cli.curve_secret_key, &cli.curve_clients) {
        (None, None) => return None,
        (Some(secret), Some(clients)) => (secret, clients),
        (Some(_), None) => {
            problems.push("--curve-secret-key: needs --curve-clients (the allowed clients)".into());
            return None;
        }
        (None, Some(_)) => {
            problems.push("--curve-clients: needs --curve-secret-key (the driver's key)".into());
            return None;
        }
    };
    if let Err(e) = one_curve::check_available() {
        problems.push(format!("--curve-secret-key: {e}"));
        return None;
    }
    let mut keys = None;
    match one_curve::cert::load_secret(secret) {
        Ok(cert) => keys = Some(cert),
        Err(e) => problems.push(format!("--curve-secret-key: {e}")),
    }
    match one_curve::AllowList::load_dir(clients) {
        Ok(list) => keys.map(|cert| one_curve::ServerKeys {
            cert,
            clients: list,
        }),
        Err(e) => {
            problems.push(format!("--curve-clients: {e}"));
            None
        }
    }
}

/// The NATS settings when `--nats` is given; other `--nats-*` flags without it are refused, as
/// they would be silently ignored.
fn nats_config(cli: &Cli, problems: &mut Vec<String>) -> Option<NatsConfig> {
    let Some(servers) = &cli.nats else {
        let stray = [
            ("--nats-user", cli.nats_user.is_some()),
            ("--nats-creds", cli.nats_creds.is_some()),
            ("--nats-tls-ca", cli.nats_tls_ca.is_some()),
            ("--nats-tls-cert", cli.nats_tls_cert.is_some()),
            ("--nats-tls-key", cli.nats_tls_key.is_some()),
        ];
        for (flag, _) in stray.iter().filter(|(_, given)| *given) {
            problems.push(format!("{flag}: only with --nats"));
        }
        return None;
    };
    let auth = match (&cli.nats_user, &cli.nats_password, &cli.nats_creds) {
        (None, None, None) => one_bus::Auth::None,
        (Some(user), Some(password), None) => one_bus::Auth::UserPassword {
            user: user.clone(),
            password: password.clone(),
        },
        (None, None, Some(creds)) => one_bus::Auth::Creds(creds.clone()),
        (Some(_), None, _) => {
            problems.push("--nats-user: needs --nats-password (or ONE_HM_NATS_PASSWORD)".into());
            one_bus::Auth::None
        }
        (None, Some(_), _) => {
            problems.push("--nats-password: needs --nats-user".into());
            one_bus::Auth::None
        }
        (_, _, Some(_)) => {
            problems.push("--nats-creds: give either a credentials file or a user".into());
            one_bus::Auth::None
        }
    };
    let bus = one_bus::Settings {
        servers: one_bus::Settings::split_servers(servers),
        auth,
        tls: one_bus::Tls {
            ca: cli.nats_tls_ca.clone(),
            cert: cli.nats_tls_cert.clone(),
            key: cli.nats_tls_key.clone(),
        },
        name: format!("one_hm@{}", hostname()),
    };
    problems.extend(bus.problems(|name| match name {
        "servers" => "--nats".to_string(),
        other => format!("--nats-{}", other.replace('_', "-")),
    }));
    let layout = one_bus::Layout {
        prefix: cli.nats_prefix.clone(),
        events_stream: cli.nats_events_stream.clone(),
        results_stream: cli.nats_results_stream.clone(),
        ..one_bus::Layout::default()
    };
    if !one_proto::subjects::valid_prefix(&layout.prefix) {
        problems.push(format!(
            "--nats-prefix: {:?} is not a subject prefix (tokens of letters, digits, _ and -, \
             separated by dots)",
            layout.prefix
        ));
    }
    for (flag, name) in [
        ("--nats-events-stream", &layout.events_stream),
        ("--nats-results-stream", &layout.results_stream),
    ] {
        if !valid_stream_name(name) {
            problems.push(format!(
                "{flag}: {name:?} is not a stream name (letters, digits, _ and -)"
            ));
        }
    }
    if layout.events_stream == layout.results_stream {
        problems.push("--nats-results-stream: must differ from the events stream".into());
    }
    if !(1..=5).contains(&cli.nats_replicas) {
        problems.push("--nats-replicas: must be from 1 to 5".into());
    }
    if !(1..=1024).contains(&cli.nats_partitions) {
        problems.push("--nats-partitions: must be from 1 to 1024".into());
    }
    let dedupe_window = parse_age(&cli.nats_dedupe_window)
        .map_err(|e| problems.push(format!("--nats-dedupe-window: {e}")))
        .ok();
    let result_ack_wait = parse_age(&cli.nats_result_ack_wait)
        .map_err(|e| problems.push(format!("--nats-result-ack-wait: {e}")))
        .ok();
    Some(NatsConfig {
        bus,
        layout,
        replicas: cli.nats_replicas,
        partitions: cli.nats_partitions,
        dedupe_window: dedupe_window.unwrap_or(Duration::from_secs(600)),
        result_ack_wait: result_ack_wait.unwrap_or(Duration::from_secs(10)),
    })
}

fn valid_stream_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// This machine's name, for the connection name the NATS monitoring shows.
fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "localhost".into())
}

/// An age with unit s, m, h or d (`90s`, `10m`).
pub fn parse_age(spec: &str) -> Result<Duration, String> {
    match parse_retention(spec)? {
        Retention {
            max_age: Some(age),
            max_events: None,
        } => Ok(age),
        _ => Err(format!("{spec:?} is not an age such as 90s, 10m or 1h")),
    }
}

/// `1000000`, `7d`, `1000000,7d`: an event count and/or an age with unit s, m, h or d.
pub fn parse_retention(spec: &str) -> Result<Retention, String> {
    let mut retention = Retention {
        max_events: None,
        max_age: None,
    };
    for part in spec.split(',').map(str::trim) {
        if part.is_empty() {
            return Err(format!("empty item in {spec:?}"));
        }
        let unit = part
            .char_indices()
            .last()
            .filter(|(_, c)| c.is_ascii_alphabetic());
        match unit {
            Some((at, unit)) => {
                let seconds_per = match unit {
                    's' => 1,
                    'm' => 60,
                    'h' => 3600,
                    'd' => 86_400,
                    _ => {
                        return Err(format!(
                            "unknown age unit {unit:?} in {part:?} (s, m, h, d)"
                        ));
                    }
                };
                let n: u64 = part[..at]
                    .parse()
                    .map_err(|_| format!("{part:?} is not <number><unit>"))?;
                let secs = n
                    .checked_mul(seconds_per)
                    .filter(|s| *s > 0)
                    .ok_or_else(|| format!("age {part:?} must be positive"))?;
                if retention
                    .max_age
                    .replace(Duration::from_secs(secs))
                    .is_some()
                {
                    return Err("age given twice".to_owned());
                }
            }
            None => {
                let n: u64 = part
                    .parse()
                    .map_err(|_| format!("{part:?} is neither an event count nor an age"))?;
                if n == 0 {
                    return Err("event count must be positive".to_owned());
                }
                if retention.max_events.replace(n).is_some() {
                    return Err("event count given twice".to_owned());
                }
            }
        }
    }
    Ok(retention)
}

fn parse_sync(value: &str) -> Result<SyncMode, String> {
    match value.to_ascii_lowercase().as_str() {
        "off" => Ok(SyncMode::Off),
        "normal" => Ok(SyncMode::Normal),
        "full" => Ok(SyncMode::Full),
        other => Err(format!("{other:?} is not off, normal or full")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cli(args: &[&str]) -> Cli {
        Cli::try_parse_from(std::iter::once("one_hm").chain(args.iter().copied())).expect("flags")
    }

    #[test]
    fn reference_flags_parse_with_and_without_values() {
        let c = cli(&[
            "-p",
            "3101",
            "-l",
            "3102",
            "-b",
            "127.0.0.2",
            "-h",
            "50",
            "-t",
            "15",
        ]);
        assert_eq!(
            (c.publisher_port, c.logger_port, c.hwm),
            (3101, 3102, Some(50))
        );
        assert_eq!(c.bind, "127.0.0.2");
        let bare = cli(&["-p", "-l"]);
        assert_eq!((bare.publisher_port, bare.logger_port), (0, 0));
        let long = cli(&["--publisher-port=1", "--logger-port", "2", "--hwm=3"]);
        assert_eq!(
            (long.publisher_port, long.logger_port, long.hwm),
            (1, 2, Some(3))
        );
        let defaults = cli(&[]);
        assert_eq!(
            (
                defaults.publisher_port,
                defaults.logger_port,
                defaults.replay_port
            ),
            (2101, 2102, 2103)
        );
        assert!(Cli::try_parse_from(["one_hm", "-p", "notaport"]).is_err());
        assert!(Cli::try_parse_from(["one_hm", "--bogus"]).is_err());
    }

    #[test]
    fn one_argument_holding_all_flags_is_split() {
        let args = split_single_argument(vec!["one_hm".into(), "-p 2101 -l 2102".into()]);
        assert_eq!(args, ["one_hm", "-p", "2101", "-l", "2102"]);
        let plain = split_single_argument(vec!["one_hm".into(), "-p".into()]);
        assert_eq!(plain, ["one_hm", "-p"]);
    }

    #[test]
    fn retention_takes_a_count_an_age_or_both() {
        assert_eq!(
            parse_retention("1000,7d"),
            Ok(Retention {
                max_events: Some(1000),
                max_age: Some(Duration::from_secs(7 * 86_400))
            })
        );
        assert_eq!(
            parse_retention("90s").map(|r| (r.max_events, r.max_age)),
            Ok((None, Some(Duration::from_secs(90))))
        );
        for bad in ["", "0", "7w", "1,2", "1d,2h", "x", "-1", "0s", "1,,2"] {
            assert!(parse_retention(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn all_problems_are_reported_at_once() {
        let c = cli(&[
            "--journal-retention",
            "7w",
            "--journal-sync",
            "sometimes",
            "-b",
        ]);
        let problems = Config::from_cli(c).expect_err("invalid");
        assert_eq!(problems.len(), 3, "{problems:?}");
    }

    #[test]
    fn curve_needs_both_flags_and_good_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let server = one_curve::cert::generate(dir.path(), "one_hm").expect("pair");
        let clients = dir.path().join("clients");
        one_curve::cert::generate(&clients, "hem").expect("pair");
        let secret = server.secret_file.display().to_string();
        let dir_arg = clients.display().to_string();
        let problems = |args: &[&str]| Config::from_cli(cli(args)).expect_err("invalid");
        assert_eq!(
            problems(&["--curve-secret-key", &secret]),
            ["--curve-secret-key: needs --curve-clients (the allowed clients)"]
        );
        assert_eq!(
            problems(&["--curve-clients", &dir_arg]),
            ["--curve-clients: needs --curve-secret-key (the driver's key)"]
        );
        let public = server.public_file.display().to_string();
        let both_bad = problems(&["--curve-secret-key", &public, "--curve-clients", &public]);
        assert_eq!(both_bad.len(), 2, "{both_bad:?}");
        assert!(both_bad[0].contains("no secret-key line") || both_bad[0].contains("mode"));
        assert!(both_bad[1].starts_with("--curve-clients: "), "{both_bad:?}");
        let config = Config::from_cli(cli(&[
            "--curve-secret-key",
            &secret,
            "--curve-clients",
            &dir_arg,
        ]))
        .expect("valid");
        let keys = config.curve.expect("CURVE on");
        assert_eq!((keys.cert.public, keys.clients.len()), (server.public, 1));
        assert!(Config::from_cli(cli(&[])).expect("valid").curve.is_none());
    }

    #[test]
    fn loopback_binds_are_told_apart() {
        let bound = |addr: &str| {
            Config::from_cli(cli(&["-b", addr]))
                .expect("valid")
                .binds_loopback()
        };
        for addr in ["127.0.0.1", "127.3.2.1", "::1", "localhost"] {
            assert!(bound(addr), "{addr}");
        }
        for addr in ["0.0.0.0", "::", "*", "eth0", "10.0.0.1"] {
            assert!(!bound(addr), "{addr}");
        }
    }

    #[test]
    fn metrics_listen_is_off_unless_given_and_must_be_an_ip_and_a_port() {
        assert_eq!(
            Config::from_cli(cli(&[])).expect("valid").metrics_listen,
            None
        );
        let c = Config::from_cli(cli(&["--metrics-listen", "[::1]:9925"])).expect("valid");
        assert_eq!(
            c.metrics_listen,
            Some("[::1]:9925".parse().expect("address"))
        );
        let problems =
            Config::from_cli(cli(&["--metrics-listen", "localhost:9925"])).expect_err("invalid");
        assert_eq!(
            problems,
            [
                "--metrics-listen: must be IP:PORT such as 127.0.0.1:9926 or [::1]:9926, got \"localhost:9925\""
            ]
        );
    }

    #[test]
    fn ipv6_endpoints_are_bracketed() {
        let mut c = Config::from_cli(cli(&["-b", "::1"])).expect("valid");
        assert_eq!(c.endpoint(5), "tcp://[::1]:5");
        c.bind = "127.0.0.1".into();
        assert_eq!(c.endpoint(5), "tcp://127.0.0.1:5");
    }
}
