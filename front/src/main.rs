//! `oned-lite [--config PATH] [--var-dir DIR]`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser;
use oned_lite::install_paths::Lookup;

/// OpenNebula-compatible front-end: XML-RPC API, hook pool, hook log and a simulated cloud.
#[derive(Parser, Debug)]
#[command(name = "oned-lite", version)]
struct Args {
    /// Configuration file in OpenNebula template syntax [default: $ONE_LOCATION/etc/oned.conf,
    /// else the first of /etc/one/oned.conf and etc/oned.conf in an ancestor of this binary's
    /// directory].
    #[arg(long, value_name = "PATH")]
    config: Option<PathBuf>,
    /// Directory for the database and the oneadmin credentials (`one_auth`) [default:
    /// $ONE_LOCATION/var, /var/lib/one for /etc/one/oned.conf, else `var` beside the
    /// configuration's `etc` directory].
    #[arg(long, value_name = "DIR")]
    var_dir: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match start(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("oned-lite: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn start(args: Args) -> anyhow::Result<()> {
    let paths = Lookup::from_process(args.config, args.var_dir).resolve()?;
    let config = oned_lite::Config::load(&paths.config)?;
    let logs = one_log::init(&config.log_settings(&paths.var_dir))?;
    tracing::info!(
        config = %paths.config.display(),
        var_dir = %paths.var_dir.display(),
        "oned-lite starting"
    );
    for key in &config.unknown_keys {
        tracing::warn!(key = %key, config = %paths.config.display(), "unknown configuration key ignored");
    }
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async move {
        tokio::spawn(
            logs.reopen_on_hangup()
                .context("cannot install the SIGHUP handler")?,
        );
        let addr = SocketAddr::new(config.listen_address, config.port);
        let listener = oned_lite::server::listen(addr, config.server.backlog)
            .with_context(|| format!("cannot listen on {addr}"))?;
        oned_lite::run(config, paths.var_dir, listener, shutdown_signal()).await
    })
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = interrupt => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = interrupt.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
    tracing::info!("shutting down");
}
