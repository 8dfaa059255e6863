//! `onehem-server --config PATH [sync-hooks …]`: parses flags, sets up logging and the runtime,
//! and calls the library: the daemon's `run`, the `sync-hooks` command, or (hidden flag
//! `--supervisor`, started by the daemon itself) the hook supervisor.

use std::process::ExitCode;

use clap::Parser;
use onehem_server::cli::{Args, Command};
use onehem_server::config::Config;
use onehem_server::front_end::FrontEndAccess;
use onehem_server::sync_command::{self, SyncHosts, SyncRequest};

fn main() -> ExitCode {
    let args = Args::parse();
    if let (true, Some(socket)) = (args.supervisor, &args.socket) {
        let linger = std::time::Duration::from_secs(args.linger);
        return supervisor(socket, linger, args.hook_open_files);
    }
    let config = match onehem_server::config::load(&args.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(1);
        }
    };
    match args.command {
        None => daemon(config),
        Some(Command::SyncHooks { dir, all, hosts }) => {
            let hosts = if all {
                SyncHosts::All
            } else {
                SyncHosts::Named(hosts)
            };
            sync_hooks(config, SyncRequest { dir, hosts })
        }
    }
}

fn daemon(config: Config) -> ExitCode {
    export_hook_env(&config);
    let logs = match onehem_server::logging::init(&config) {
        Ok(logs) => logs,
        Err(e) => {
            eprintln!("onehem-server: {e}");
            return ExitCode::from(1);
        }
    };
    raise_fd_limit();
    let Some(runtime) = runtime() else {
        return ExitCode::from(1);
    };
    let result = runtime.block_on(async move {
        let reopen = logs
            .reopen_on_hangup()
            .map_err(|e| anyhow::anyhow!("cannot install the SIGHUP handler: {e}"))?;
        tokio::spawn(reopen);
        onehem_server::run(config, shutdown_signal()).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("onehem-server: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn supervisor(
    socket: &std::path::Path,
    linger: std::time::Duration,
    hook_open_files: Option<u64>,
) -> ExitCode {
    if let Err(e) = onehem_server::logging::init_supervisor() {
        eprintln!("{e:#}");
        return ExitCode::from(1);
    }
    match onehem_server::supervisor::server::serve(socket, linger, hook_open_files) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("hook supervisor: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn sync_hooks(config: Config, request: SyncRequest) -> ExitCode {
    // A command's warnings go to the terminal, not to the daemon's log file.
    if let Err(e) = onehem_server::logging::init_command() {
        eprintln!("onehem-server: {e}");
        return ExitCode::from(1);
    }
    let Some(runtime) = runtime() else {
        return ExitCode::from(1);
    };
    let mut stdout = std::io::stdout().lock();
    match runtime.block_on(sync_command::run(&config, &request, &mut stdout)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("onehem-server sync-hooks: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// Puts the variables local hooks get (`ONE_XMLRPC`, `ONE_AUTH`: the front-end the HEM talks
/// to) into the HEM's own environment, so that hooks inherit them and a spawn does not rebuild
/// the environment (see `LocalExecutor::with_env`, which then has nothing left to add). When
/// the front-end cannot be resolved nothing is exported; the daemon reports that error itself.
fn export_hook_env(config: &Config) {
    let Ok(access) =
        FrontEndAccess::resolve(config.one_xmlrpc.as_deref(), config.one_auth.as_deref())
    else {
        return;
    };
    for (name, value) in access.hook_env() {
        // SAFETY: called at the start of `main`'s daemon path, before logging, the runtime or
        // any other thread exists, so nothing reads or writes the environment concurrently.
        #[allow(unsafe_code)]
        unsafe {
            std::env::set_var(name, value);
        }
    }
}

/// Raises the soft limit of open files (see `remote::raise_open_files_limit`) and logs it.
fn raise_fd_limit() {
    match onehem_server::remote::raise_open_files_limit() {
        Ok(Some((from, to))) => tracing::info!(from, to, "open files limit raised"),
        Ok(None) => {}
        Err(e) => tracing::warn!(error = %e, "cannot raise the open files limit"),
    }
}

fn runtime() -> Option<tokio::runtime::Runtime> {
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("hem-worker")
        .build()
    {
        Ok(rt) => Some(rt),
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            None
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
    one_notify::stopping();
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
