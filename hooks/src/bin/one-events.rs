//! `one-events [--endpoint E] [--after N | --head]`: prints the events the driver journaled,
//! one line each, read back through its replay endpoint.

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
    let journal = Journal::connect(&args.endpoint, Duration::from_millis(args.timeout_ms))
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
