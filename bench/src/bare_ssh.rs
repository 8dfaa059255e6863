//! The ceiling of ssh-channel mode: a bare russh client holding one connection per host and
//! opening one exec channel per execution, with nothing around it (no quoting, no pid line, no
//! stdin, no output kept, no timeout), so what is left is the cost of the channel on both
//! sides and of the session sshd forks for it.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use russh::client::{self, Handle};
use russh::keys::{PrivateKeyWithHashAlg, PublicKey, PublicKeyOrCertificate};
use russh::{ChannelMsg, Preferred};

/// Accepts exactly the host key it was given.
struct KnownKey {
    key: PublicKey,
}

impl client::Handler for KnownKey {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        server_key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        Ok(
            matches!(server_key, PublicKeyOrCertificate::PublicKey { key, .. }
            if key.key_data() == self.key.key_data()),
        )
    }
}

/// One authenticated connection.
pub struct BareConnection {
    handle: Handle<KnownKey>,
}

impl BareConnection {
    /// Connects to `addr:port` (whose key is `host_key`, `ssh-ed25519 AAAA…`) and
    /// authenticates as `user` with the private key at `identity`, with the cipher and the
    /// socket options the HEM's connections use.
    pub async fn connect(
        addr: &str,
        port: u16,
        host_key: &str,
        user: &str,
        identity: &Path,
    ) -> Result<BareConnection> {
        let key = PublicKey::from_openssh(host_key).context("parsing the host key")?;
        let secret = russh::keys::load_secret_key(identity, None).context("loading the key")?;
        let mut preferred = Preferred::default();
        let mut ciphers = preferred.cipher.to_vec();
        ciphers.sort_by_key(|c| *c != russh::cipher::AES_256_GCM);
        preferred.cipher = std::borrow::Cow::Owned(ciphers);
        let config = Arc::new(client::Config {
            nodelay: true,
            inactivity_timeout: None,
            preferred,
            ..client::Config::default()
        });
        let mut handle = client::connect(config, (addr, port), KnownKey { key })
            .await
            .with_context(|| format!("connecting to {addr}:{port}"))?;
        let auth = handle
            .authenticate_publickey(user, PrivateKeyWithHashAlg::new(Arc::new(secret), None))
            .await?;
        if !auth.success() {
            bail!("{addr}:{port} refused the key");
        }
        Ok(BareConnection { handle })
    }

    /// Runs `command` in a new exec channel and waits for the channel to close; fails unless
    /// it exited with status 0.
    pub async fn exec(&self, command: &str) -> Result<()> {
        let mut channel = self.handle.channel_open_session().await?;
        channel.exec(true, command.as_bytes()).await?;
        let mut status = None;
        while let Some(msg) = channel.wait().await {
            match msg {
                ChannelMsg::ExitStatus { exit_status } => status = Some(exit_status),
                ChannelMsg::Close => break,
                _ => {}
            }
        }
        match status {
            Some(0) => Ok(()),
            other => bail!("`{command}` ended with {other:?}"),
        }
    }
}

/// `total` executions with `in_flight` at once, round-robin over `conns` (each with the command
/// it runs); executions per second.
pub async fn exec_rate(
    conns: Arc<Vec<(BareConnection, String)>>,
    total: usize,
    in_flight: usize,
) -> Result<f64> {
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let tasks: Vec<_> = (0..in_flight)
        .map(|_| {
            let (conns, next) = (Arc::clone(&conns), Arc::clone(&next));
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= total {
                        return Ok::<_, anyhow::Error>(());
                    }
                    let (conn, command) = &conns[i % conns.len()];
                    conn.exec(command).await?;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.context("an execution task failed")??;
    }
    Ok(total as f64 / start.elapsed().as_secs_f64())
}
