//! `oneimage`: manages images of the simulated cloud.

fn main() -> std::process::ExitCode {
    one_cli::main_with(one_cli::oneimage::run)
}
