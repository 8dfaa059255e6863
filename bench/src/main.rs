//! `one-bench`: the benchmark suite. `scripts/bench` builds in release mode and runs
//! `one-bench all`, which writes BENCHMARKS.md and benchmarks.json.

mod ceiling;
mod report;

use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand};

use report::Report;

#[derive(Parser)]
#[command(about = "Benchmarks of the hook subsystem, run against the real processes")]
struct Cli {
    /// Smaller workloads and fewer runs (a smoke test of the suite, under a minute).
    #[arg(long, global = true)]
    quick: bool,
    /// Runs per figure (the median is reported with the min-max).
    #[arg(long, global = true)]
    runs: Option<usize>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Every benchmark; writes the Markdown report and its JSON twin.
    All {
        #[arg(long, default_value = "BENCHMARKS.md")]
        out: PathBuf,
        #[arg(long, default_value = "benchmarks.json")]
        json: PathBuf,
    },
    /// Raw fork/exec of /bin/true per second: the machine's ceiling for local hooks.
    Ceiling,
}

/// Workload sizes shared by every benchmark.
#[derive(Clone, Copy, Debug)]
pub struct Scale {
    pub quick: bool,
    pub runs: usize,
}

impl Scale {
    /// `full` in a normal run, `quick` with `--quick`.
    pub fn pick(&self, full: usize, quick: usize) -> usize {
        if self.quick { quick } else { full }
    }
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let scale = Scale {
        quick: cli.quick,
        runs: cli.runs.unwrap_or(if cli.quick { 1 } else { 3 }),
    };
    let mut report = Report::new(scale);
    match cli.command {
        Command::All { out, json } => {
            ceiling::run(&mut report, scale)?;
            report.write(&out, &json)?;
            println!("wrote {} and {}", out.display(), json.display());
        }
        Command::Ceiling => {
            ceiling::run(&mut report, scale)?;
            print!("{}", report.markdown());
        }
    }
    Ok(())
}
