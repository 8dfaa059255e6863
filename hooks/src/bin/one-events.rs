//! `one-events [--endpoint E] [--after N | --head]`: prints the events the driver journaled,
//! one line each, read back through its replay endpoint.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Parser;
use one_hooks::event_journal::{Journal, describe};

#[derive(Debug, Parser)]
#[command(
    name = "one-events",
    version,
    about = "Prints the events one_hm journaled (its replay endpoint), one line each"
)]
struct Args {
    /// The driver's replay endpoint
    #[arg(long, default_value = "tcp://127.0.0.1:2103")]
    endpoint: String,
    /// Print only the events after this sequence number
    #[arg(long, default_value_t = 0)]
    after: u64,
    /// Print only the newest sequence number
    #[arg(long, conflicts_with = "after")]
    head: bool,
    /// Leave out API events
    #[arg(long = "no-api")]
    no_api: bool,
    /// How long to wait for each reply, in milliseconds
    #[arg(long = "timeout-ms", default_value_t = 5000)]
    timeout_ms: u64,
    /// CURVE: the driver's public certificate (`one_hm.key`), when the driver runs with CURVE
    #[arg(
        long = "curve-server-key",
        env = "ONE_EVENTS_CURVE_SERVER_KEY",
        value_name = "FILE"
    )]
    curve_server_key: Option<PathBuf>,
    /// CURVE: this client's secret certificate (`NAME.key_secret`, mode 0600), whose public
    /// half is in the driver's --curve-clients directory
    #[arg(
        long = "curve-client-key",
        env = "ONE_EVENTS_CURVE_CLIENT_KEY",
        value_name = "FILE"
    )]
    curve_client_key: Option<PathBuf>,
}

impl Args {
    /// The CURVE keys: both files or neither.
    fn curve(&self) -> Result<Option<one_curve::ClientKeys>> {
        match (&self.curve_server_key, &self.curve_client_key) {
            (None, None) => Ok(None),
            (Some(server), Some(client)) => {
                one_curve::check_available().map_err(anyhow::Error::msg)?;
                Ok(Some(one_curve::ClientKeys::load(server, client)?))
            }
            _ => anyhow::bail!("--curve-server-key and --curve-client-key go together"),
        }
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("one-events: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<()> {
    let curve = args.curve()?;
    let journal = Journal::connect(
        &args.endpoint,
        Duration::from_millis(args.timeout_ms),
        curve.as_ref(),
    )
    .context("connecting to the journal")?;
    if args.head {
        println!("{}", journal.head().context("reading the head")?);
        return Ok(());
    }
    for event in journal
        .events_after(args.after)
        .context("replaying events")?
    {
        let line = match &event.message {
            Ok(one_proto::event::HookMessage::Api(_)) if args.no_api => continue,
            Ok(message) => describe(message),
            Err(e) => format!("(unreadable event: {e})"),
        };
        println!("#{:<5} {line}", event.seq);
    }
    Ok(())
}
