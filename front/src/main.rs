//! `oned-lite [--config PATH] [--var-dir DIR]`.

use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser;
use oned_lite::cli::Args;
use oned_lite::install_paths::Lookup;

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
    one_notify::stopping();
}
