//! Options shared by the read commands: `-x/-j/-y` document formats, and the list table
//! options of the reference CLI (`-l`, `--csv`, `-f`, `--no-header`, `--adjust`, …).

use crate::console::{CliError, Console};
use crate::session::{PoolKind, Session};
use crate::table::{Table, TableOptions};
use crate::xml::{DocumentForms, Element};

#[derive(Clone, Debug, Default, clap::Args)]
pub struct FormatArgs {
    /// Show the resource in XML format
    #[arg(short = 'x', long)]
    pub xml: bool,
    /// Show the resource in JSON format
    #[arg(short = 'j', long)]
    pub json: bool,
    /// Show the resource in YAML format
    #[arg(short = 'y', long)]
    pub yaml: bool,
}

impl FormatArgs {
    /// The document in the chosen format (XML wins over JSON, JSON over YAML, as in the
    /// reference), or `None` for the human layout.
    pub fn render(&self, doc: &Element) -> Option<String> {
        if self.xml {
            Some(doc.to_pretty_xml())
        } else if self.json {
            Some(format!("{}\n", doc.to_hash().to_pretty_json()))
        } else if self.yaml {
            Some(doc.to_hash().to_yaml())
        } else {
            None
        }
    }

    /// `show`: the document in the chosen format, else the `human` layout of it.
    pub fn show<T: AsRef<[u8]>>(
        &self,
        doc: &Element,
        console: &mut Console<'_>,
        human: impl FnOnce(&Console<'_>) -> T,
    ) -> Result<(), CliError> {
        match self.render(doc) {
            Some(text) => console.write(text),
            None => {
                let text = human(console);
                console.write(text)
            }
        }
    }
}

#[derive(Clone, Debug, Default, clap::Args)]
pub struct ListArgs {
    /// Selects columns to display with list command
    #[arg(
        short = 'l',
        long = "list",
        value_name = "x,y,z",
        value_delimiter = ','
    )]
    pub list: Option<Vec<String>>,
    /// Write table in csv format
    #[arg(long)]
    pub csv: bool,
    /// Set delimiter for csv output
    #[arg(long = "csv-del", value_name = "del")]
    pub csv_del: Option<String>,
    /// Filter data: column=value pairs; operators =,!=,<,<=,>,>=,~ (e.g. NAME~test)
    #[arg(
        short = 'f',
        long = "filter",
        value_name = "x,y,z",
        value_delimiter = ','
    )]
    pub filter: Vec<String>,
    /// Logical operator used on filters: AND, OR. Default: AND.
    #[arg(long, value_name = "operator")]
    pub operator: Option<String>,
    /// Hides the header of the table
    #[arg(long = "no-header")]
    pub no_header: bool,
    /// Disable pagination
    #[arg(long = "no-pager")]
    pub no_pager: bool,
    /// Adjust size to not truncate selected columns
    #[arg(long, value_name = "x,y,z", value_delimiter = ',')]
    pub adjust: Vec<String>,
    /// Change the size of selected columns, e.g. --size name=20
    #[arg(short = 's', long, value_name = "x=size,y=size", value_delimiter = ',')]
    pub size: Vec<String>,
    /// Expands the columns size to fill the terminal (all columns when no list is given)
    #[arg(long, value_name = "x=prop,y=prop", value_delimiter = ',', num_args = 0..=1, require_equals = false)]
    pub expand: Option<Vec<String>>,
    /// Disable expand
    #[arg(long = "no-expand")]
    pub no_expand: bool,
    /// Show the columns of the table and what they hold
    #[arg(long)]
    pub describe: bool,
    /// Do not translate user and group IDs (accepted for compatibility)
    #[arg(short = 'n', long)]
    pub numeric: bool,
    #[command(flatten)]
    pub format: FormatArgs,
}

impl ListArgs {
    pub fn table_options(&self) -> TableOptions {
        TableOptions {
            list: self.list.clone(),
            csv: self.csv,
            csv_del: self.csv_del.clone(),
            no_header: self.no_header,
            adjust: self.adjust.clone(),
            size: self.size.clone(),
            expand: self.expand.clone(),
            no_expand: self.no_expand,
            filter: self.filter.clone(),
            operator: self.operator.clone(),
        }
    }
}

/// `list`: the columns with `--describe` (no server needed), else the pool from the server
/// with [`print_list`].
pub fn list_pool(
    session: &mut Session<'_>,
    console: &mut Console<'_>,
    list: &ListArgs,
    kind: PoolKind,
    table: &Table,
    rows: impl FnOnce(&Element) -> Vec<Vec<String>>,
) -> Result<(), CliError> {
    if list.describe {
        return console.write(table.describe());
    }
    let pool = session.pool(kind)?;
    print_list(console, list, &pool, table, &rows(&pool))
}

/// Prints a pool: a document format, or the table (through the pager on a terminal).
pub fn print_list(
    console: &mut Console<'_>,
    list: &ListArgs,
    pool: &Element,
    table: &Table,
    rows: &[Vec<String>],
) -> Result<(), CliError> {
    if let Some(text) = list.format.render(pool) {
        return console.write(text);
    }
    let text = table.render(rows, &list.table_options(), &console.terminal)?;
    crate::pager::page(console, &text, rows.len(), list.no_pager)
}
