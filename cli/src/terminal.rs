//! What the output is connected to: whether stdout is a terminal (bold, underline and colours
//! only then) and the terminal's size (column expansion and paging).

use std::io::IsTerminal;

/// The output's terminal facts, detected once per command.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Terminal {
    /// Stdout is a terminal.
    pub tty: bool,
    /// Columns of stdout's terminal, or else of the controlling terminal (as the reference's
    /// `IO.console`), so that `| cat` in an interactive shell still expands columns.
    pub width: Option<usize>,
    /// Rows of stdout's terminal, only when stdout is one (for the pager).
    pub height: Option<usize>,
}

impl Terminal {
    /// No terminal at all: the output of cron jobs, CI and the tests.
    pub fn plain() -> Terminal {
        Terminal::default()
    }

    /// The same terminal without its size, for tables inside a `show`: the reference prints
    /// them at their columns' own widths, whatever the terminal's width.
    pub fn without_size(self) -> Terminal {
        Terminal {
            tty: self.tty,
            width: None,
            height: None,
        }
    }

    pub fn detect() -> Terminal {
        let stdout = std::io::stdout();
        let tty = stdout.is_terminal();
        let own = if tty {
            rustix::termios::tcgetwinsize(&stdout).ok()
        } else {
            None
        };
        let size = own.or_else(|| {
            let console = std::fs::File::open("/dev/tty").ok()?;
            rustix::termios::tcgetwinsize(&console).ok()
        });
        let width = size.map(|s| usize::from(s.ws_col)).filter(|w| *w > 0);
        let height = own.map(|s| usize::from(s.ws_row)).filter(|h| *h > 0);
        Terminal { tty, width, height }
    }
}

/// Bold, underline and colours, applied only on a terminal.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Style {
    pub tty: bool,
}

const BOLD: &str = "\x1b[1m";
const UNDERLINE: &str = "\x1b[4m";
const RESET: &str = "\x1b[0m";
const RED: &str = "\x1b[31m";
const GREEN: &str = "\x1b[32m";
const YELLOW: &str = "\x1b[33m";

/// State cells shown in green, red and yellow (the reference's `color_state` lists).
const OK_STATES: &[&str] = &["runn", "rdy", "on", "SUCCESS", "RUNNING"];
const BAD_STATES: &[&str] = &[
    "fail",
    "err",
    "error",
    "ERROR",
    "FAILED_DEPLOYING",
    "FAILED_DEPLOYING_NETS",
    "FAILED_UNDEPLOYING",
    "FAILED_UNDEPLOYING_NETS",
    "FAILED_SCALING",
];
const REGULAR_STATES: &[&str] = &[
    "PENDING",
    "DEPLOYING",
    "DEPLOYING_NETS",
    "UNDEPLOYING",
    "UNDEPLOYING_NETS",
    "CONFIGURING",
    "WARNING",
];

impl Style {
    pub fn new(terminal: &Terminal) -> Style {
        Style { tty: terminal.tty }
    }

    /// A section title line (with its newline): bold, and underlined if asked, on a terminal.
    pub fn header(&self, text: &str, underline: bool) -> String {
        if self.tty {
            let u = if underline { UNDERLINE } else { "" };
            format!("{BOLD}{u}{text}{RESET}\n")
        } else {
            format!("{text}\n")
        }
    }

    /// A state cell in its colour; `cell` may be padded, the state is matched without blanks.
    pub fn color_state(&self, cell: &str) -> String {
        if !self.tty {
            return cell.to_string();
        }
        let state = cell.trim();
        let color = if OK_STATES.contains(&state) {
            GREEN
        } else if BAD_STATES.contains(&state) {
            RED
        } else if REGULAR_STATES.contains(&state) {
            YELLOW
        } else {
            return cell.to_string();
        };
        format!("{color}{cell}{RESET}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_output_has_no_escapes() {
        let s = Style { tty: false };
        assert_eq!(s.header("T", true), "T\n");
        assert_eq!(s.color_state("  ERROR"), "  ERROR");
    }

    #[test]
    fn terminal_output_is_styled() {
        let s = Style { tty: true };
        assert_eq!(s.header("T", true), "\x1b[1m\x1b[4mT\x1b[0m\n");
        assert_eq!(s.header("T", false), "\x1b[1mT\x1b[0m\n");
        assert_eq!(s.color_state("SUCCESS"), "\x1b[32mSUCCESS\x1b[0m");
        assert_eq!(s.color_state("  ERROR"), "\x1b[31m  ERROR\x1b[0m");
        assert_eq!(s.color_state("other"), "other");
    }
}
