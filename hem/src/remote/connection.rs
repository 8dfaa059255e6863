//! One authenticated SSH connection to a host (russh): connect with a deadline, verify the host
//! key against known_hosts, authenticate with the configured key, open channels.

use std::borrow::Cow;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use russh::client::{self, Handle};
use russh::keys::{PrivateKey, PrivateKeyWithHashAlg, PublicKey, PublicKeyOrCertificate};
use russh::{ChannelMsg, ChannelWriteHalf, Disconnect, Preferred};

use super::config::{HostTarget, Settings};
use super::error::{RemoteError, io_text};
use super::known_hosts::{HostKeyProblem, KnownHosts, key_family, lookup_name};

/// The russh event handler: only the host key check matters to us.
pub(crate) struct ClientHandler {
    names: Vec<String>,
    /// known_hosts until the host key is verified, then dropped: a connection lives as long as
    /// the HEM and must not keep its own copy of a file with a line per host.
    known: Option<KnownHosts>,
    /// The key verified when the connection was made; a key re-exchange must present it again.
    accepted: Option<PublicKey>,
    problem: Arc<Mutex<Option<HostKeyProblem>>>,
}

impl client::Handler for ClientHandler {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        server_key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let key = match server_key {
            PublicKeyOrCertificate::PublicKey { key, .. } => key,
            PublicKeyOrCertificate::Certificate(_) => {
                *self.problem.lock().unwrap_or_else(PoisonError::into_inner) =
                    Some(HostKeyProblem::Certificate);
                return Ok(false);
            }
        };
        if let Some(accepted) = &self.accepted {
            return Ok(accepted.key_data() == key.key_data());
        }
        let Some(known) = self.known.take() else {
            return Ok(false);
        };
        match known.verify(&self.names, key) {
            Ok(()) => {
                self.accepted = Some(key.clone());
                Ok(true)
            }
            Err(problem) => {
                *self.problem.lock().unwrap_or_else(PoisonError::into_inner) = Some(problem);
                Ok(false)
            }
        }
    }
}

/// Output of a short helper command run on the host.
#[derive(Debug, Default)]
pub(crate) struct Captured {
    pub code: Option<u32>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// A live connection.
pub(crate) struct SshConnection {
    handle: Handle<ClientHandler>,
    pub target: HostTarget,
}

impl SshConnection {
    /// Connects, verifies the host key and authenticates, all within the connect timeout.
    pub async fn connect(
        target: &HostTarget,
        settings: &Settings,
    ) -> Result<SshConnection, RemoteError> {
        // The turn comes first, before the key and known_hosts are read: a thousand hosts
        // opened together must not hold a thousand parsed copies of known_hosts while they
        // wait. The connect timeout bounds the attempt, not the wait for a turn; a turn is
        // held at most one connect timeout.
        let _turn = settings
            .opening
            .acquire()
            .await
            .map_err(|_| RemoteError::ShutDown)?;
        let key = load_identity(settings, target).await?;
        let known = KnownHosts::load(&settings.known_hosts).map_err(|e| RemoteError::Config {
            message: format!("cannot read known_hosts: {e}"),
        })?;
        let mut names = vec![lookup_name(&target.name, target.port)];
        let by_address = lookup_name(&target.address, target.port);
        if !names.contains(&by_address) {
            names.push(by_address);
        }
        // Ask first for the key types known_hosts has for this host, as OpenSSH does, so a
        // host known by its RSA key is not refused for offering ed25519 first.
        let known_types: Vec<String> = known
            .algorithms_for(&names)
            .iter()
            .map(key_family)
            .collect();
        let mut preferred = Preferred::default();
        let mut algos = preferred.key.to_vec();
        algos.sort_by_key(|a| !known_types.contains(&key_family(a)));
        preferred.key = Cow::Owned(algos);
        // AES-GCM runs on the CPU's AES instructions (through aws-lc); it costs a fraction of
        // ChaCha20-Poly1305 per packet, and every hook is a few packets.
        let mut ciphers = preferred.cipher.to_vec();
        ciphers.sort_by_key(|c| *c != russh::cipher::AES_256_GCM);
        preferred.cipher = Cow::Owned(ciphers);
        let config = Arc::new(client::Config {
            nodelay: true,
            keepalive_interval: Some(settings.keepalive_interval),
            keepalive_max: settings.keepalive_max,
            inactivity_timeout: None,
            preferred,
            ..client::Config::default()
        });
        let problem = Arc::new(Mutex::new(None));
        let handler = ClientHandler {
            names,
            known: Some(known),
            accepted: None,
            problem: Arc::clone(&problem),
        };
        let attempt = async {
            let mut handle =
                client::connect(config, (target.address.as_str(), target.port), handler)
                    .await
                    .map_err(|e| {
                        let found = problem
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .take();
                        match found {
                            Some(problem) => RemoteError::HostKey {
                                host: target.name.clone(),
                                endpoint: target.endpoint(),
                                problem,
                                known_hosts: settings
                                    .known_hosts
                                    .iter()
                                    .map(|p| p.display().to_string())
                                    .collect::<Vec<_>>()
                                    .join(", "),
                            },
                            None => connect_error(target, &e),
                        }
                    })?;
            let hash = handle
                .best_supported_rsa_hash()
                .await
                .map_err(|e| connect_error(target, &e))?
                .flatten();
            let auth = handle
                .authenticate_publickey(
                    target.user.clone(),
                    PrivateKeyWithHashAlg::new(Arc::new(key.0), hash),
                )
                .await
                .map_err(|e| connect_error(target, &e))?;
            if !auth.success() {
                return Err(RemoteError::Auth {
                    host: target.name.clone(),
                    endpoint: target.endpoint(),
                    user: target.user.clone(),
                    identity: key.1.clone(),
                });
            }
            Ok(handle)
        };
        let handle = tokio::time::timeout(settings.connect_timeout, attempt)
            .await
            .map_err(|_| RemoteError::ConnectTimeout {
                host: target.name.clone(),
                endpoint: target.endpoint(),
                timeout: settings.connect_timeout,
            })??;
        Ok(SshConnection {
            handle,
            target: target.clone(),
        })
    }

    /// Whether the connection is gone (peer closed, keepalives unanswered, disconnected).
    pub fn is_closed(&self) -> bool {
        self.handle.is_closed()
    }

    /// A new session channel.
    pub async fn open_session(&self) -> Result<russh::Channel<client::Msg>, RemoteError> {
        self.handle
            .channel_open_session()
            .await
            .map_err(|e| RemoteError::Channel {
                host: self.target.name.clone(),
                message: e.to_string(),
                connection_lost: self.handle.is_closed()
                    || matches!(
                        e,
                        russh::Error::Disconnect
                            | russh::Error::SendError
                            | russh::Error::RecvError
                            | russh::Error::HUP
                    ),
            })
    }

    /// Runs a helper command through the login shell and collects its output (all of it, up
    /// to `cap` bytes each), with `stdin` fed and closed. Fails after `limit`.
    pub async fn exec_capture(
        &self,
        command: &str,
        stdin: Option<Vec<u8>>,
        cap: usize,
        limit: Duration,
    ) -> Result<Captured, RemoteError> {
        let channel = self.open_session().await?;
        let host = self.target.name.clone();
        let lost = |e: russh::Error| RemoteError::Channel {
            host: host.clone(),
            message: e.to_string(),
            connection_lost: true,
        };
        channel.exec(true, command.as_bytes()).await.map_err(lost)?;
        let (mut rd, wr) = channel.split();
        let mut out = Captured::default();
        let work = async {
            let read = async {
                while let Some(msg) = rd.wait().await {
                    match msg {
                        ChannelMsg::Data { data } => {
                            push_capped(&mut out.stdout, &data, cap);
                        }
                        ChannelMsg::ExtendedData { data, .. } => {
                            push_capped(&mut out.stderr, &data, cap);
                        }
                        ChannelMsg::ExitStatus { exit_status } => out.code = Some(exit_status),
                        ChannelMsg::Close => break,
                        _ => {}
                    }
                }
            };
            tokio::pin!(read);
            feed_while_reading(&wr, stdin, read).await.map_err(lost)
        };
        let outcome = tokio::time::timeout(limit, work).await;
        let _ = wr.close().await;
        match outcome {
            Ok(Ok(())) => Ok(out),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(RemoteError::Channel {
                host: self.target.name.clone(),
                message: format!("`{command}` did not finish within {limit:?}"),
                connection_lost: false,
            }),
        }
    }

    /// Closes the connection.
    pub async fn disconnect(&self) {
        let _ = self
            .handle
            .disconnect(Disconnect::ByApplication, "HEM shutting down", "en")
            .await;
    }
}

/// Writes `stdin` (if any) and then EOF to a channel while `read` runs. Returns what `read`
/// returned once it ended, or the write's error as soon as a write fails (`read` can then be
/// awaited on). The reader ends the work: a command that exits without reading its stdin must
/// not leave us waiting for window space that never comes.
pub(crate) async fn feed_while_reading<F: Future>(
    wr: &ChannelWriteHalf<client::Msg>,
    stdin: Option<Vec<u8>>,
    mut read: Pin<&mut F>,
) -> Result<F::Output, russh::Error> {
    let feed = async {
        if let Some(data) = stdin {
            wr.data_bytes(data).await?;
        }
        wr.eof().await
    };
    tokio::pin!(feed);
    let mut fed = false;
    loop {
        tokio::select! {
            r = &mut feed, if !fed => {
                fed = true;
                r?;
            }
            done = &mut read => return Ok(done),
        }
    }
}

/// Appends to `buf` what fits under `cap`.
pub(crate) fn push_capped(buf: &mut Vec<u8>, data: &[u8], cap: usize) -> bool {
    let room = cap.saturating_sub(buf.len());
    buf.extend_from_slice(&data[..data.len().min(room)]);
    data.len() > room
}

async fn load_identity(
    settings: &Settings,
    target: &HostTarget,
) -> Result<(PrivateKey, String), RemoteError> {
    let candidates = settings.identities();
    if candidates.is_empty() {
        return Err(RemoteError::Identity {
            path: "~/.ssh/id_ed25519".into(),
            message: format!(
                "no identity configured (remote.identity) and none found for {}",
                target.user
            ),
        });
    }
    let mut last = None;
    for path in candidates {
        let shown = path.display().to_string();
        match tokio::fs::read_to_string(&path).await {
            Ok(text) => match russh::keys::decode_secret_key(&text, None) {
                Ok(key) => return Ok((key, shown)),
                Err(e) => {
                    last = Some(RemoteError::Identity {
                        path: shown,
                        message: e.to_string(),
                    });
                }
            },
            Err(e) => {
                last = Some(RemoteError::Identity {
                    path: shown,
                    message: io_text(&e),
                });
            }
        }
    }
    Err(last.unwrap_or_else(|| RemoteError::Identity {
        path: String::new(),
        message: "no usable identity".into(),
    }))
}

fn connect_error(target: &HostTarget, e: &russh::Error) -> RemoteError {
    let message = match e {
        russh::Error::IO(io) => io_text(io),
        other => other.to_string(),
    };
    RemoteError::Connect {
        host: target.name.clone(),
        endpoint: target.endpoint(),
        message,
    }
}
