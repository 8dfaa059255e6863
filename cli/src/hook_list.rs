//! `onehook list`: the HOOK_POOL table (ID, NAME, TYPE as in the shipped `onehook.yaml`).

use crate::table::{Column, Table, TableError, TableOptions};
use crate::terminal::Terminal;
use crate::xml::Element;

/// The hook table: ID right-aligned 4 wide and never truncated, NAME left-aligned 19 wide and
/// expanded to the terminal, TYPE left-aligned 8 wide.
pub fn hook_table() -> Table {
    Table::new(vec![
        Column::new("ID", "ONE identifier for Hook", 4).adjust(),
        Column::new("NAME", "Name of the Hook", 19).left().expand(),
        Column::new("TYPE", "Type of the hook", 8).left(),
    ])
}

/// One row per HOOK element, in the server's order.
pub fn hook_rows(pool: &Element) -> Vec<Vec<String>> {
    pool.children_named("HOOK")
        .map(|h| {
            vec![
                h.str_at("ID").to_string(),
                h.str_at("NAME").to_string(),
                h.str_at("TYPE").to_string(),
            ]
        })
        .collect()
}

pub fn render_hook_pool(
    pool: &Element,
    options: &TableOptions,
    terminal: &Terminal,
) -> Result<String, TableError> {
    hook_table().render(&hook_rows(pool), options, terminal)
}
