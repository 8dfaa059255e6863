//! `onehost`: manages hosts of the simulated cloud, including failure and reboot simulation.

fn main() -> std::process::ExitCode {
    one_cli::main_with(one_cli::onehost::run)
}
