//! The table of hook execution records: `EXECUTION LOG` in `onehook show` and the whole output
//! of `onehook log` (which adds the HOOK column).

use crate::table::{Column, Table, TableOptions};
use crate::terminal::Terminal;
use crate::timestamp::{Zone, time_to_str};
use crate::xml::Element;

/// Whether the table starts with the hook id column (`onehook log`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HookColumn {
    Shown,
    Hidden,
}

/// Renders HOOK_EXECUTION_RECORD elements in the given order. ID, RC and EXECUTION are at
/// least 5 wide and grow to their longest cell; TIMESTAMP is 15 wide (`%m/%d %H:%M`).
pub fn render_records(
    records: &[&Element],
    hook_column: HookColumn,
    terminal: &Terminal,
    zone: Zone,
) -> String {
    let mut columns = Vec::new();
    let mut names = Vec::new();
    if hook_column == HookColumn::Shown {
        columns.push(Column::new("HOOK", "Hook ID", 5).adjust());
        names.push("HOOK");
    }
    columns.push(Column::new("ID", "Execution ID", 5).adjust());
    columns.push(Column::new("TIMESTAMP", "Timestamp", 15));
    columns.push(Column::new("RC", "Return code", 5).adjust());
    columns.push(Column::new("EXECUTION", "Return code", 5).adjust());
    names.extend(["ID", "TIMESTAMP", "RC", "EXECUTION"]);
    let table = Table::new(columns)
        .with_default(&names)
        .with_stat_column("EXECUTION");

    let rows: Vec<Vec<String>> = records
        .iter()
        .map(|r| {
            let mut row = Vec::new();
            if hook_column == HookColumn::Shown {
                row.push(r.str_at("HOOK_ID").to_string());
            }
            row.push(r.str_at("EXECUTION_ID").to_string());
            row.push(time_to_str(r.str_at("TIMESTAMP"), false, zone));
            let (rc, execution) = outcome(r);
            row.push(rc);
            row.push(execution.to_string());
            row
        })
        .collect();
    // The columns are fixed and well-formed, so rendering cannot fail; an empty table is the
    // harmless fallback.
    table
        .render(&rows, &TableOptions::default(), &terminal.without_size())
        .unwrap_or_default()
}

/// The RC cell and the EXECUTION word. A record without a result body (the front-end keeps
/// those when the body was not valid base64) has no code: "-" and ERROR.
fn outcome(record: &Element) -> (String, &'static str) {
    match record.text_at("EXECUTION_RESULT/CODE") {
        Some(code) => {
            let word = if crate::timestamp::ruby_to_i(code) == 0 {
                "SUCCESS"
            } else {
                "ERROR"
            };
            (code.to_string(), word)
        }
        None => ("-".to_string(), "ERROR"),
    }
}
