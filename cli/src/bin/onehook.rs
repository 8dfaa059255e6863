//! `onehook`: manages hooks and their execution log.

fn main() -> std::process::ExitCode {
    one_cli::main_with(one_cli::onehook::run)
}
