//! `one_hm`: parses flags, sets up tracing and signals, and calls [`one_hm::run`].

use std::process::ExitCode;

use clap::Parser as _;
use clap::error::ErrorKind;
use one_hm::config::{Cli, Config, split_single_argument};
use one_hm::shutdown::{Shutdown, watch_signals};
use one_hm::{logging, run};
use tracing::error;

/// mimalloc instead of glibc's allocator: the driver allocates and frees a few kilobytes per
/// event on several threads, and glibc returned that memory to the kernel and faulted it back
/// in. It costs resident memory, which the driver can spare and the HEM cannot, so the HEM keeps
/// glibc's allocator (BENCHMARKS.md, design measurements).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The reference driver exits with `exit(-1)` on bad options and bind failures.
const FAILURE: u8 = 255;

fn main() -> ExitCode {
    logging::reserve_standard_fds();
    let args = split_single_argument(std::env::args().collect());
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return match e.kind() {
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => ExitCode::SUCCESS,
                _ => ExitCode::from(FAILURE),
            };
        }
    };
    if let Some([dir, name]) = cli.curve_keygen.as_deref() {
        return curve_keygen(dir, &name.to_string_lossy());
    }
    if let Err(e) = logging::init_tracing(&cli) {
        eprintln!("one_hm: {e}");
        return ExitCode::from(FAILURE);
    }
    let config = match Config::from_cli(cli) {
        Ok(config) => config,
        Err(problems) => {
            for problem in problems {
                error!(problem = %problem, "invalid flag");
            }
            return ExitCode::from(FAILURE);
        }
    };
    let shutdown = Shutdown::new();
    if let Err(e) = watch_signals(shutdown.clone()) {
        error!(error = %e, "cannot set up signal handling");
        return ExitCode::from(FAILURE);
    }
    match run(config, shutdown) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!(error = format!("{e:#}"), "one_hm failed");
            ExitCode::from(FAILURE)
        }
    }
}

/// `--curve-keygen DIR NAME`: one key pair, its paths and public key on stdout.
fn curve_keygen(dir: &std::path::Path, name: &str) -> ExitCode {
    match one_curve::cert::generate(dir, name) {
        Ok(pair) => {
            println!(
                "public-key = \"{}\"\npublic certificate: {}\nsecret certificate: {}",
                pair.public.z85(),
                pair.public_file.display(),
                pair.secret_file.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("one_hm --curve-keygen: {e}");
            ExitCode::from(FAILURE)
        }
    }
}
