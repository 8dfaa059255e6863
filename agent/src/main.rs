use std::time::Duration;

use anyhow::{Context, bail};
use clap::Parser;
use onehem_agent::cli::Cli;
use onehem_agent::{Base, ExecSettings, Options};

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    // stderr is an SSH channel that may close before the agent exits: a failed log write
    // must not turn into a panic, and colour codes would only clutter the HEM's log.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .log_internal_errors(false)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("ONEHEM_AGENT_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    match start(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            use std::io::Write as _;
            let _ = writeln!(std::io::stderr(), "onehem-agent: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn start(cli: Cli) -> anyhow::Result<()> {
    if !cli.stdio {
        bail!("only --stdio is supported; the agent is started by the HEM over SSH");
    }
    if !(cli.kill_grace.is_finite() && cli.kill_grace >= 0.0) {
        bail!("--kill-grace must be a non-negative number of seconds");
    }
    let base = Base::open(&cli.base)
        .with_context(|| format!("cannot use hook directory {}", cli.base.display()))?;
    let options = Options {
        base,
        exec: ExecSettings {
            kill_grace: Duration::from_secs_f64(cli.kill_grace),
            ..ExecSettings::default()
        },
        max_running: cli.max_running.max(1),
    };
    // Before any other thread: hooks start with the default for signals whoever started the
    // agent ignored.
    one_exec::default_for_children();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    let outcome = runtime.block_on(onehem_agent::run(
        options,
        tokio::io::stdin(),
        tokio::io::stdout(),
    ));
    // A stdin read may still sit in the blocking pool; it must not keep the process alive.
    runtime.shutdown_timeout(Duration::from_millis(100));
    outcome.context("agent stopped")
}
