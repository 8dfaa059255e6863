//! `one-bench`: the benchmark suite. `scripts/bench` builds in release mode and runs
//! `one-bench all`, which writes BENCHMARKS.md and benchmarks.json.

mod bare_ssh;
mod burst;
mod ceiling;
mod driver;
mod fleet;
mod footprint;
mod front;
mod hook_log_db;
mod local;
mod nats;
mod procs;
mod remote;
mod report;
mod supervisor;
mod workload;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Result;
use clap::{Parser, Subcommand};

use report::Report;

#[derive(Parser)]
#[command(about = "Benchmarks of the hook subsystem, run against the real processes")]
struct Cli {
    /// Smaller workloads and one run per figure (a smoke test of the suite, about a minute).
    #[arg(long, global = true)]
    quick: bool,
    /// Runs per figure (the median is reported with the min-max).
    #[arg(long, global = true)]
    runs: Option<usize>,
    /// The Markdown report (`all`: BENCHMARKS.md unless given; one section: printed, and
    /// written here too if given).
    #[arg(long, global = true)]
    out: Option<PathBuf>,
    /// The report's JSON twin (`all`: benchmarks.json unless given).
    #[arg(long, global = true)]
    json: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Clone, Copy, PartialEq, Eq)]
enum Section {
    /// 1. Raw fork/exec of /bin/true per second: the machine's ceiling for local hooks.
    Ceiling,
    /// 2. one_hm: MAD lines in to PUB frames out, journal on; replay rate.
    Driver,
    /// 3. Local hooks end to end: throughput against the ceiling, hook start latency.
    Local,
    /// 4. Remote hooks: agent, ssh channel and a new ssh per hook, on 1 and 20 fake hosts.
    Remote,
    /// 5. oned-lite: XML-RPC rates, hook log inserts, hook log queries at 1,000,000 records.
    Front,
    /// 6. Resident memory and CPU time of the HEM and the driver.
    Footprint,
    /// 7. 10,000 events in about one second: every one must end as a record.
    Burst,
    /// 8. Distributed mode over NATS JetStream: 1-3 HEMs against the ZeroMQ route, failover.
    Nats,
    /// 9. One remote executor with 1,000 hosts in agent mode: connect, memory, exec/s, a dead host.
    Fleet,
    /// 10. The hook supervisor alone, driven over its socket: spawns/s and CPU per spawn.
    Supervisor,
}

#[derive(Subcommand)]
enum Command {
    /// Every benchmark; writes the Markdown report and its JSON twin.
    All,
    #[command(flatten)]
    One(Section),
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    let scale = Scale {
        quick: cli.quick,
        runs: cli.runs.unwrap_or(if cli.quick { 1 } else { 3 }).max(1),
    };
    match run(cli.command, scale, cli.out, cli.json) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("one-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the benchmarks; `Ok(false)` when a section could not complete (the report says which).
fn run(
    command: Command,
    scale: Scale,
    out: Option<PathBuf>,
    json: Option<PathBuf>,
) -> Result<bool> {
    let mut report = Report::new(scale);
    match command {
        Command::All => {
            let out = out.unwrap_or_else(|| PathBuf::from("BENCHMARKS.md"));
            let json = json.unwrap_or_else(|| PathBuf::from("benchmarks.json"));
            let all = [
                Section::Ceiling,
                Section::Driver,
                Section::Local,
                Section::Remote,
                Section::Front,
                Section::Footprint,
                Section::Burst,
                Section::Nats,
                Section::Fleet,
                Section::Supervisor,
            ];
            for section in all {
                run_section(section, &mut report, scale);
            }
            report.write(&out, &json)?;
            println!("wrote {} and {}", out.display(), json.display());
        }
        Command::One(section) => {
            run_section(section, &mut report, scale);
            print!("{}", report.markdown());
            match (out, json) {
                (None, None) => {}
                (out, json) => {
                    let out = out.unwrap_or_else(|| sibling(json.as_deref(), "md"));
                    let json = json.unwrap_or_else(|| sibling(Some(&out), "json"));
                    report.write(&out, &json)?;
                    println!("wrote {} and {}", out.display(), json.display());
                }
            }
        }
    }
    Ok(!report.has_failures())
}

/// `path` with the extension `ext` (the other file of a report given only one).
fn sibling(path: Option<&std::path::Path>, ext: &str) -> PathBuf {
    path.map(|p| p.with_extension(ext))
        .unwrap_or_else(|| PathBuf::from(format!("one-bench.{ext}")))
}

fn run_section(section: Section, report: &mut Report, scale: Scale) {
    let start = Instant::now();
    let (name, result) = match section {
        Section::Ceiling => (ceiling::SECTION, ceiling::run(report, scale)),
        Section::Driver => (driver::SECTION, driver::run(report, scale)),
        Section::Local => (local::SECTION, local::run(report, scale)),
        Section::Remote => (remote::SECTION, remote::run(report, scale)),
        Section::Front => (front::SECTION, front::run(report, scale)),
        Section::Footprint => (footprint::SECTION, footprint::run(report, scale)),
        Section::Burst => (burst::SECTION, burst::run(report, scale)),
        Section::Nats => (nats::SECTION, nats::run(report, scale)),
        Section::Fleet => (fleet::SECTION, fleet::run(report, scale)),
        Section::Supervisor => (supervisor::SECTION, supervisor::run(report, scale)),
    };
    if let Err(e) = result {
        report.failed(name, &e);
    }
    report.end_section(name);
    println!("   ({name}: {:.1} s)", start.elapsed().as_secs_f64());
}
