//! Where the template text of `create` and `update` comes from: a file or stdin, the
//! attributes the command's options give, or `$EDITOR` on the current template.

use std::path::Path;

use one_client::UpdateMode;
use one_proto::template::Template;

use crate::console::{CliError, Console};

pub fn read_file(path: &Path) -> Result<String, CliError> {
    std::fs::read_to_string(path).map_err(|source| CliError::Io {
        what: format!("cannot read {}", path.display()),
        source,
    })
}

/// The template a `create` sends: FILE (stdin for `-`), then `from_options`, the attributes
/// the options give. Fails with the usage message `missing` when both are empty. The text
/// ends with a newline.
pub fn create_text(
    file: Option<&Path>,
    from_options: &Template,
    missing: &str,
    console: &mut Console<'_>,
) -> Result<String, CliError> {
    let mut text = match file {
        Some(path) if path.as_os_str() == "-" => console.read_stdin()?,
        Some(path) => read_file(path)?,
        None => String::new(),
    };
    if !from_options.is_empty() {
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str(&from_options.to_text());
    }
    if text.trim().is_empty() {
        return Err(CliError::usage(missing));
    }
    if !text.ends_with('\n') {
        text.push('\n');
    }
    Ok(text)
}

/// `--append` merges the new text into the template; without it the text replaces it.
pub fn update_mode(append: bool) -> UpdateMode {
    if append {
        UpdateMode::Merge
    } else {
        UpdateMode::Replace
    }
}

/// The new text an `update` sends: FILE, else stdin when it is not a terminal and not empty,
/// else what is saved in `$EDITOR`, opened on an empty text to merge or on `current()` to
/// replace.
pub fn update_text(
    file: Option<&Path>,
    mode: UpdateMode,
    console: &mut Console<'_>,
    current: impl FnOnce() -> Result<String, CliError>,
) -> Result<String, CliError> {
    if let Some(path) = file {
        return read_file(path);
    }
    let piped = if console.stdin_tty {
        String::new()
    } else {
        console.read_stdin()?
    };
    if !piped.is_empty() {
        return Ok(piped);
    }
    match mode {
        UpdateMode::Merge => crate::editor::edit(""),
        UpdateMode::Replace => crate::editor::edit(&current()?),
    }
}
