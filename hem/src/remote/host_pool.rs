//! One slot per host: its connection (opened on demand, reopened with backoff after failures),
//! its agent, and the bound on hooks running there at once.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Mutex, Semaphore};
use tokio::time::Instant;

use super::agent_link::AgentLink;
use super::config::{HostTarget, Settings};
use super::connection::SshConnection;
use super::error::RemoteError;

/// A connection and the agent started on it.
pub(crate) struct Live {
    pub ssh: SshConnection,
    pub agent: Mutex<Option<Arc<AgentLink>>>,
}

enum ConnState {
    Idle,
    Up(Arc<Live>),
    Down {
        error: RemoteError,
        failed_at: Instant,
        retry_at: Instant,
        backoff: Duration,
    },
}

pub(crate) struct HostSlot {
    pub target: HostTarget,
    pub permits: Semaphore,
    state: Mutex<ConnState>,
    /// What a scrape shows, written at each change of `state` (never on a hook's path).
    seen: std::sync::Mutex<HostState>,
}

/// A host's connection as the metrics show it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HostState {
    pub name: String,
    pub up: bool,
    /// The last connection error, kept after the host is up again.
    pub last_error: Option<String>,
}

impl HostSlot {
    pub fn new(target: HostTarget, max_running: usize) -> HostSlot {
        HostSlot {
            permits: Semaphore::new(max_running),
            seen: std::sync::Mutex::new(HostState {
                name: target.name.clone(),
                ..HostState::default()
            }),
            target,
            state: Mutex::new(ConnState::Idle),
        }
    }

    /// The connection's state for a scrape: up only while the connection is open.
    pub fn seen(&self) -> HostState {
        let mut seen = self
            .seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        // A connection that dropped is only noticed by the next hook; the scrape looks now,
        // unless a connection attempt holds the state.
        if seen.up
            && let Ok(state) = self.state.try_lock()
            && !matches!(&*state, ConnState::Up(live) if !live.ssh.is_closed())
        {
            seen.up = false;
        }
        seen
    }

    fn note(&self, up: bool, error: Option<String>) {
        let mut seen = self
            .seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        seen.up = up;
        if error.is_some() {
            seen.last_error = error;
        }
    }

    /// The live connection, opening one if needed. While the host is in backoff after a
    /// failure this fails at once; callers that waited for an attempt in progress share its
    /// outcome instead of each trying again.
    pub async fn connection(&self, settings: &Settings) -> Result<Arc<Live>, RemoteError> {
        let asked = Instant::now();
        let mut state = self.state.lock().await;
        let previous_backoff = match &*state {
            ConnState::Up(live) if !live.ssh.is_closed() => return Ok(Arc::clone(live)),
            ConnState::Up(_) => {
                tracing::info!(host = %self.target.name, "connection lost, reconnecting");
                None
            }
            ConnState::Idle => None,
            ConnState::Down {
                error,
                failed_at,
                retry_at,
                backoff,
            } => {
                if *failed_at >= asked {
                    return Err(error.clone());
                }
                let now = Instant::now();
                if now < *retry_at {
                    return Err(RemoteError::Backoff {
                        host: self.target.name.clone(),
                        retry_in: *retry_at - now,
                        last: error.to_string(),
                    });
                }
                Some(*backoff)
            }
        };
        match SshConnection::connect(&self.target, settings).await {
            Ok(ssh) => {
                tracing::info!(host = %self.target.name, endpoint = %self.target.endpoint(),
                    "connected");
                let live = Arc::new(Live {
                    ssh,
                    agent: Mutex::new(None),
                });
                *state = ConnState::Up(Arc::clone(&live));
                self.note(true, None);
                Ok(live)
            }
            Err(error) => {
                let backoff = next_backoff(previous_backoff, settings);
                tracing::warn!(host = %self.target.name, error = %error,
                    retry_in = ?backoff, "connection failed");
                let now = Instant::now();
                *state = ConnState::Down {
                    error: error.clone(),
                    failed_at: now,
                    retry_at: now + backoff,
                    backoff,
                };
                self.note(false, Some(error.to_string()));
                Err(error)
            }
        }
    }

    /// Forgets `live` if it is still the current connection (it turned out to be dead).
    pub async fn discard(&self, live: &Arc<Live>) {
        let mut state = self.state.lock().await;
        if let ConnState::Up(current) = &*state
            && Arc::ptr_eq(current, live)
        {
            *state = ConnState::Idle;
            self.note(false, None);
        }
    }

    /// Closes the connection, if any (the agent's stdin closes with it, which stops it).
    pub async fn close(&self) {
        let mut state = self.state.lock().await;
        if let ConnState::Up(live) = std::mem::replace(&mut *state, ConnState::Idle) {
            live.agent.lock().await.take();
            live.ssh.disconnect().await;
        }
        self.note(false, None);
    }
}

fn next_backoff(previous: Option<Duration>, settings: &Settings) -> Duration {
    match previous {
        None => settings.backoff_min,
        Some(b) => (b * 2).clamp(settings.backoff_min, settings.backoff_max),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::remote::config::RemoteConfig;

    #[test]
    fn backoff_doubles_up_to_the_maximum() {
        let s = Settings::resolve(RemoteConfig {
            reconnect_backoff_min: Some(0.5),
            reconnect_backoff_max: Some(3.0),
            ..RemoteConfig::default()
        });
        let mut b = None;
        let mut seen = Vec::new();
        for _ in 0..5 {
            let n = next_backoff(b, &s);
            seen.push(n.as_millis());
            b = Some(n);
        }
        assert_eq!(seen, [500, 1000, 2000, 3000, 3000]);
    }
}
