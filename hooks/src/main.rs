//! `one-autostart host|vm [TEMPLATE]`: the program behind the autostart hooks.
//!
//! The event's base64 document comes from stdin (ARGUMENTS_STDIN = yes) or as the argument.
//! The front-end is found the OpenNebula way: ONE_XMLRPC and ONE_AUTH, which the HEM passes on.
//! Exit status: 0 when every VM was resumed or skipped, 1 when a resume finally failed, 2 when
//! the hook could not run at all.

use std::io::{IsTerminal, Read, Write};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Parser, ValueEnum};
use one_hooks::front_api::FrontApi;
use one_hooks::{Mode, RetryPolicy};

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Which {
    /// A host reached MONITORED: resume its VMs that have AUTOSTART
    Host,
    /// A VM reached POWEROFF: resume it if the monitor powered it off and it has AUTOSTART
    Vm,
}

#[derive(Debug, Parser)]
#[command(
    name = "one-autostart",
    version,
    about = "Resumes VMs with AUTOSTART after their host reboots (the autostart hooks)"
)]
struct Args {
    /// Which hook runs
    #[arg(value_enum)]
    hook: Which,
    /// The base64 HOST or VM document ($TEMPLATE); read from stdin when absent
    template: Option<String>,
    /// Resume attempts per VM before giving up
    #[arg(long, env = "ONE_AUTOSTART_ATTEMPTS", default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=10))]
    attempts: u32,
    /// Wait after the first failed attempt, in milliseconds; each further wait doubles
    #[arg(long = "backoff-ms", env = "ONE_AUTOSTART_BACKOFF_MS", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(0..=60_000))]
    backoff_ms: u64,
}

fn main() -> ExitCode {
    let args = Args::parse();
    // Lines on stdout are the hook's report (the hook log keeps them); diagnostics go to
    // stderr, warnings and errors only unless ONE_AUTOSTART_LOG says otherwise.
    let filter = tracing_subscriber::EnvFilter::try_from_env("ONE_AUTOSTART_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
    match run(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("one-autostart: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(args: Args) -> Result<ExitCode> {
    let argument = match args.template {
        Some(t) => t,
        None => {
            let mut stdin = std::io::stdin();
            if stdin.is_terminal() {
                anyhow::bail!("no $TEMPLATE: give it as an argument or on stdin");
            }
            let mut text = String::new();
            stdin
                .read_to_string(&mut text)
                .context("reading $TEMPLATE from stdin")?;
            text
        }
    };
    let mode = match args.hook {
        Which::Host => Mode::Host,
        Which::Vm => Mode::Vm,
    };
    // A bad argument is reported before the front-end is looked for.
    let plan = one_hooks::run::plan(mode, &argument)?;
    let client =
        one_client::Client::from_env().context("finding the front-end (ONE_XMLRPC, ONE_AUTH)")?;
    let api = FrontApi::new(client);
    let policy = RetryPolicy {
        attempts: args.attempts,
        backoff: Duration::from_millis(args.backoff_ms),
    };
    let mut stdout = std::io::stdout().lock();
    let summary =
        one_hooks::run::execute(&plan, &api, &policy, &mut std::thread::sleep, &mut stdout);
    stdout.flush().context("writing the report")?;
    Ok(if summary.failed() > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
