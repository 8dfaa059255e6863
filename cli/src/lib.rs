//! Shared code of the command-line tools `onehook`, `onevm`, `onehost` and `oneimage`:
//! connection options, the reference CLI's table and show layouts, and the commands.

pub mod connection;
pub mod console;
pub mod date;
pub mod editor;
pub mod exec_table;
pub mod hook_list;
pub mod hook_show;
pub mod host_render;
pub mod id_list;
pub mod image_render;
pub mod list_args;
pub mod onehook;
pub mod onehost;
pub mod oneimage;
pub mod onevm;
pub mod pager;
pub mod session;
pub mod short_state;
pub mod table;
pub mod template_input;
pub mod template_text;
pub mod terminal;
pub mod timestamp;
pub mod units;
pub mod vm_render;
pub mod xml;

use std::io::IsTerminal;
use std::process::ExitCode;

use console::{Console, FAILURE};
use terminal::Terminal;
use timestamp::Zone;

/// The body of every tool's `main`: parses the arguments (a usage error exits with 255 like
/// the reference; `--help` and `--version` with 0), then runs the command on the process's
/// stdio with local time.
pub fn main_with<A: clap::Parser>(run: impl FnOnce(&A, &mut Console<'_>) -> u8) -> ExitCode {
    let args = match A::try_parse() {
        Ok(args) => args,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { FAILURE } else { 0 });
        }
    };
    let stdout = std::io::stdout();
    let stderr = std::io::stderr();
    let stdin = std::io::stdin();
    let stdin_tty = stdin.is_terminal();
    let mut out = stdout.lock();
    let mut err = stderr.lock();
    let mut input = stdin.lock();
    let mut console = Console {
        out: &mut out,
        err: &mut err,
        stdin: &mut input,
        stdin_tty,
        terminal: Terminal::detect(),
        zone: Zone::Local,
    };
    let code = run(&args, &mut console);
    let _ = console.out.flush();
    ExitCode::from(code)
}
