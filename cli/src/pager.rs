//! Long listings on a terminal go through a pager (`$ONE_PAGER`, default `more`), as the
//! reference does, unless `--no-pager` is given.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::console::{CliError, Console};

/// Writes `text` (with `rows` data rows) through the pager when stdout is a terminal and the
/// rows do not fit on it; else writes it directly. A pager that cannot be started is skipped.
pub fn page(
    console: &mut Console<'_>,
    text: &str,
    rows: usize,
    no_pager: bool,
) -> Result<(), CliError> {
    let fits = match console.terminal.height {
        Some(height) => rows < height.saturating_sub(1),
        None => true,
    };
    if no_pager || !console.terminal.tty || fits {
        return console.write(text);
    }
    let pager = std::env::var("ONE_PAGER")
        .ok()
        .filter(|p| !p.trim().is_empty())
        .unwrap_or_else(|| "more".to_string());
    let Ok(mut child) = Command::new(pager.trim()).stdin(Stdio::piped()).spawn() else {
        return console.write(text);
    };
    if let Some(mut stdin) = child.stdin.take() {
        // The reader may quit early (`q` in the pager); that is not an error.
        let _ = stdin.write_all(text.as_bytes());
    }
    let _ = child.wait();
    Ok(())
}
