//! `onehook update` without a file: the template is edited in `$EDITOR` (default `/usr/bin/vi`).

use std::io::Write;
use std::process::Command;

use crate::console::CliError;

/// The editor used when `$EDITOR` is not set.
pub const DEFAULT_EDITOR: &str = "/usr/bin/vi";

/// Opens `$EDITOR` on a temporary file holding `contents` and returns what was saved. The
/// editor value is run by `sh` like the reference does, so `EDITOR="code -w"` works; the file
/// name is passed as a separate argument, never spliced into the command text.
pub fn edit(contents: &str) -> Result<String, CliError> {
    let io_err = |what: &str, source| CliError::Io {
        what: what.to_string(),
        source,
    };
    let mut file = tempfile::Builder::new()
        .prefix("one_cli")
        .tempfile()
        .map_err(|e| io_err("creating the file to edit", e))?;
    file.write_all(contents.as_bytes())
        .map_err(|e| io_err("writing the file to edit", e))?;
    file.flush()
        .map_err(|e| io_err("writing the file to edit", e))?;
    let editor = std::env::var("EDITOR")
        .ok()
        .filter(|e| !e.trim().is_empty());
    let editor = editor.as_deref().unwrap_or(DEFAULT_EDITOR);
    let status = Command::new("/bin/sh")
        .arg("-c")
        .arg(format!("{editor} \"$1\""))
        .arg("sh")
        .arg(file.path())
        .status();
    match status {
        Ok(s) if s.success() => {}
        _ => return Err(CliError::usage("Editor not defined")),
    }
    std::fs::read_to_string(file.path()).map_err(|e| io_err("reading the edited file", e))
}
