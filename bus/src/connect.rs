//! Connection settings (servers, credentials, TLS), checked before anything connects, and the
//! connection itself.

use std::path::PathBuf;
use std::time::Duration;

use async_nats::ConnectOptions;

/// How a component authenticates.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Auth {
    /// No credentials (a server without authorization).
    #[default]
    None,
    /// A user and password from the server's `authorization` block.
    UserPassword { user: String, password: String },
    /// A `.creds` file (user JWT and nkey seed) of a decentralized (operator mode) server.
    Creds(PathBuf),
}

/// TLS files. With a CA the connection must be TLS and the server's certificate is checked
/// against it; a client certificate is optional.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Tls {
    pub ca: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

/// Where and how to connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// `nats://host:port` or `tls://host:port` (or `host:port`); the client fails over between
    /// them.
    pub servers: Vec<String>,
    pub auth: Auth,
    pub tls: Tls,
    /// The connection's name, as the server's monitoring shows it.
    pub name: String,
}

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("cannot connect to NATS at {servers}: {message}")]
    Connect { servers: String, message: String },
    #[error("cannot read the NATS credentials file {path}: {source}")]
    Creds {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("JetStream {what}: {message}")]
    JetStream { what: String, message: String },
}

impl BusError {
    pub fn jetstream(what: impl Into<String>, e: impl std::fmt::Display) -> BusError {
        BusError::JetStream {
            what: what.into(),
            message: e.to_string(),
        }
    }
}

impl Settings {
    /// Splits a server list given as one text (`URL[,URL...]`, blanks allowed).
    pub fn split_servers(list: &str) -> Vec<String> {
        list.split([',', ' ', '\t', '\n'])
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    }

    /// Every problem with the settings, named after the option that holds it (`option` maps a
    /// setting name such as `servers` to the flag or key the operator wrote).
    pub fn problems(&self, option: impl Fn(&str) -> String) -> Vec<String> {
        let mut out = Vec::new();
        if self.servers.is_empty() {
            out.push(format!("{}: no server given", option("servers")));
        }
        for s in &self.servers {
            let rest = match s.split_once("://") {
                Some(("nats" | "tls", rest)) => rest,
                Some((scheme, _)) => {
                    out.push(format!(
                        "{}: {s:?} has scheme {scheme:?}; use nats:// or tls://",
                        option("servers")
                    ));
                    continue;
                }
                None => s.as_str(),
            };
            let port_ok = rest
                .rsplit_once(':')
                .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
            if !port_ok {
                out.push(format!(
                    "{}: {s:?} is not host:port (for example nats://127.0.0.1:4222)",
                    option("servers")
                ));
            }
        }
        if let Auth::UserPassword { user, .. } = &self.auth
            && user.is_empty()
        {
            out.push(format!("{}: empty user", option("user")));
        }
        if let Auth::Creds(path) = &self.auth
            && !path.is_file()
        {
            out.push(format!(
                "{}: {} is not a file",
                option("creds"),
                path.display()
            ));
        }
        for (name, file) in [
            ("tls_ca", &self.tls.ca),
            ("tls_cert", &self.tls.cert),
            ("tls_key", &self.tls.key),
        ] {
            if let Some(path) = file
                && !path.is_file()
            {
                out.push(format!(
                    "{}: {} is not a file",
                    option(name),
                    path.display()
                ));
            }
        }
        if self.tls.cert.is_some() != self.tls.key.is_some() {
            out.push(format!(
                "{} and {} go together",
                option("tls_cert"),
                option("tls_key")
            ));
        }
        out
    }

    /// The servers as one text, for messages.
    pub fn server_list(&self) -> String {
        self.servers.join(",")
    }
}

/// How long the first connection attempt may take before it counts as failed.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the client pings the server: a dead server is noticed within a few of these.
const PING_INTERVAL: Duration = Duration::from_secs(2);

/// Connects. Later disconnections are handled by the client, which reconnects to any of the
/// servers without limit, and are logged.
pub async fn connect(settings: &Settings) -> Result<async_nats::Client, BusError> {
    let mut options = ConnectOptions::new()
        .name(&settings.name)
        .connection_timeout(CONNECT_TIMEOUT)
        .ping_interval(PING_INTERVAL)
        .max_reconnects(None)
        .event_callback(|event| async move {
            match event {
                async_nats::Event::Connected => tracing::info!("NATS connected"),
                async_nats::Event::Disconnected => {
                    tracing::warn!("NATS disconnected; reconnecting")
                }
                // Permission violations among them: the user lacks a permission it needs.
                async_nats::Event::ServerError(e) => {
                    tracing::error!(error = %e, "NATS server error")
                }
                other => tracing::debug!(event = %other, "NATS event"),
            }
        });
    options = match &settings.auth {
        Auth::None => options,
        Auth::UserPassword { user, password } => {
            options.user_and_password(user.clone(), password.clone())
        }
        Auth::Creds(path) => {
            options
                .credentials_file(path)
                .await
                .map_err(|source| BusError::Creds {
                    path: path.clone(),
                    source,
                })?
        }
    };
    if let Some(ca) = &settings.tls.ca {
        options = options.add_root_certificates(ca.clone()).require_tls(true);
    }
    if let (Some(cert), Some(key)) = (&settings.tls.cert, &settings.tls.key) {
        options = options.add_client_certificate(cert.clone(), key.clone());
    }
    let servers: Vec<async_nats::ServerAddr> = settings
        .servers
        .iter()
        .map(|s| {
            s.parse().map_err(|e| BusError::Connect {
                servers: settings.server_list(),
                message: format!("{s:?}: {e}"),
            })
        })
        .collect::<Result<_, _>>()?;
    options
        .connect(servers)
        .await
        .map_err(|e| BusError::Connect {
            servers: settings.server_list(),
            message: e.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(servers: &[&str]) -> Settings {
        Settings {
            servers: servers.iter().map(|s| s.to_string()).collect(),
            auth: Auth::None,
            tls: Tls::default(),
            name: "test".into(),
        }
    }

    #[test]
    fn server_lists_split_on_commas_and_blanks() {
        assert_eq!(
            Settings::split_servers(" nats://a:1, tls://b:2 c:3,,"),
            ["nats://a:1", "tls://b:2", "c:3"]
        );
    }

    #[test]
    fn every_problem_is_named_after_its_option() {
        let flag = |s: &str| format!("--nats-{}", s.replace('_', "-"));
        assert!(
            settings(&["nats://127.0.0.1:4222", "127.0.0.2:4222"])
                .problems(flag)
                .is_empty()
        );
        let mut bad = settings(&["http://x:1", "nats://nohost", "nats://:4222"]);
        bad.auth = Auth::Creds("/nonexistent/x.creds".into());
        bad.tls.cert = Some("/nonexistent/c.pem".into());
        let problems = bad.problems(flag);
        assert_eq!(problems.len(), 6, "{problems:#?}");
        assert!(problems[0].starts_with("--nats-servers: \"http://x:1\""));
        assert!(
            problems
                .iter()
                .any(|p| p == "--nats-tls-cert and --nats-tls-key go together")
        );
        assert!(settings(&[]).problems(flag)[0].contains("no server"));
    }
}
