//! `onehem-server --config PATH`: parses flags, sets up logging and the runtime, calls `run`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

#[derive(Parser, Debug)]
#[command(
    name = "onehem-server",
    version,
    about = "OpenNebula Hook Execution Manager"
)]
struct Args {
    /// Configuration file (YAML; the reference's symbol keys or plain keys).
    #[arg(long, default_value = "etc/onehem-server.conf")]
    config: PathBuf,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let config = match onehem_server::config::load(&args.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(1);
        }
    };
    if let Err(e) = onehem_server::logging::init(&config) {
        eprintln!("{e:#}");
        return ExitCode::from(1);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("hem-worker")
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(onehem_server::run(config, shutdown_signal()));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("onehem-server: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// Completes on SIGINT, SIGTERM or SIGQUIT (the reference exits 0 on SIGINT and SIGQUIT). A
/// second signal during the orderly shutdown exits at once.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term), Ok(mut quit)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
        signal(SignalKind::quit()),
    ) else {
        eprintln!("cannot install the signal handlers; stop the HEM with SIGKILL");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = int.recv() => {}
        _ = term.recv() => {}
        _ = quit.recv() => {}
    }
    tracing::info!("signal received; stopping (a second signal forces exit)");
    tokio::spawn(async move {
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
            _ = quit.recv() => {}
        }
        eprintln!("second signal: exiting now");
        std::process::exit(130);
    });
}
