//! The reference CLI's list tables (`CLIHelper::ShowTable`): fixed-size columns that are padded
//! and truncated, `adjust` columns that grow to their longest cell, `expand` columns that take
//! the rest of the terminal's width, a header padded like the cells, CSV output, column
//! selection and filters.

use crate::terminal::{Style, Terminal};

/// One column's definition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Column {
    pub name: String,
    pub desc: String,
    pub size: usize,
    /// Left-aligned (the default is right-aligned).
    pub left: bool,
    /// Never truncated; grows to the longest cell.
    pub adjust: bool,
    /// Takes the free width of the terminal, when there is one.
    pub expand: bool,
}

impl Column {
    pub fn new(name: &str, desc: &str, size: usize) -> Column {
        Column {
            name: name.to_string(),
            desc: desc.to_string(),
            size,
            left: false,
            adjust: false,
            expand: false,
        }
    }

    pub fn left(mut self) -> Column {
        self.left = true;
        self
    }

    pub fn adjust(mut self) -> Column {
        self.adjust = true;
        self
    }

    pub fn expand(mut self) -> Column {
        self.expand = true;
        self
    }

    fn format(&self, data: &str) -> String {
        let size = self.size;
        if self.adjust {
            if self.left {
                format!("{data:<size$}")
            } else {
                format!("{data:>size$}")
            }
        } else {
            let cut: String = data.chars().take(size).collect();
            if self.left {
                format!("{cut:<size$}")
            } else {
                format!("{cut:>size$}")
            }
        }
    }
}

/// The list options every `list` command takes (the reference's `CLIHelper::OPTIONS`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TableOptions {
    /// `-l/--list`: the columns to show, in this order.
    pub list: Option<Vec<String>>,
    /// `--csv`.
    pub csv: bool,
    /// `--csv-del`.
    pub csv_del: Option<String>,
    /// `--no-header`.
    pub no_header: bool,
    /// `--adjust`: columns that are never truncated.
    pub adjust: Vec<String>,
    /// `-s/--size col=n`.
    pub size: Vec<String>,
    /// `--expand [col=prop,…]`: `Some(empty)` expands every column.
    pub expand: Option<Vec<String>>,
    /// `--no-expand`.
    pub no_expand: bool,
    /// `-f/--filter col<op>value,…`.
    pub filter: Vec<String>,
    /// `--operator AND|OR`.
    pub operator: Option<String>,
}

/// A bad table option.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TableError {
    #[error("Column {0} not defined.")]
    UnknownColumn(String),
    #[error("Column '{0}' not found")]
    FilterColumn(String),
    #[error("Expression '{0}' incorrect")]
    FilterExpression(String),
    #[error("Invalid size '{0}': use column=size")]
    Size(String),
    #[error("Invalid expand proportion '{0}'")]
    Expand(String),
    #[error("Unknown operator '{0}': use AND or OR")]
    Operator(String),
}

/// A table: its columns (in definition order, which is also the order of each row's cells),
/// the default column selection and the column whose cells are coloured as states.
#[derive(Clone, Debug)]
pub struct Table {
    pub columns: Vec<Column>,
    pub default: Vec<String>,
    pub stat_column: String,
}

impl Table {
    /// A table whose default selection is every column.
    pub fn new(columns: Vec<Column>) -> Table {
        let default = columns.iter().map(|c| c.name.clone()).collect();
        Table {
            columns,
            default,
            stat_column: "STAT".to_string(),
        }
    }

    pub fn with_default(mut self, default: &[&str]) -> Table {
        self.default = default.iter().map(|s| (*s).to_string()).collect();
        self
    }

    pub fn with_stat_column(mut self, name: &str) -> Table {
        self.stat_column = name.to_string();
        self
    }

    fn index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }

    /// `--describe`: one `%-20s: %-20s` line per column.
    pub fn describe(&self) -> String {
        let mut out = String::new();
        for c in &self.columns {
            out.push_str(&format!("{:<20}: {:<20}\n", c.name, c.desc));
        }
        out
    }

    /// Renders `rows` (one cell per defined column, in definition order).
    pub fn render(
        &self,
        rows: &[Vec<String>],
        options: &TableOptions,
        terminal: &Terminal,
    ) -> Result<String, TableError> {
        let style = Style::new(terminal);
        let mut columns = self.columns.clone();
        let selected: Vec<String> = match &options.list {
            Some(list) => list.iter().map(|s| s.trim().to_uppercase()).collect(),
            None => self.default.clone(),
        };
        let mut indexes = Vec::with_capacity(selected.len());
        for name in &selected {
            indexes.push(
                self.index(name)
                    .ok_or_else(|| TableError::UnknownColumn(name.clone()))?,
            );
        }
        let rows = self.filter(rows, options)?;

        self.update_sizes(&mut columns, &indexes, &rows, options, terminal)?;

        let mut out = String::new();
        let del = options.csv_del.clone().unwrap_or_else(|| ",".to_string());
        if !options.no_header {
            if options.csv {
                out.push_str(&csv_line(&selected, &del));
            } else {
                let header: Vec<String> = indexes
                    .iter()
                    .map(|&i| columns[i].format(&columns[i].name))
                    .collect();
                out.push_str(&style.header(&header.join(" "), true));
            }
        }
        for row in &rows {
            let cells: Vec<String> = indexes
                .iter()
                .map(|&i| row.get(i).cloned().unwrap_or_default())
                .collect();
            if options.csv {
                out.push_str(&csv_line(&cells, &del));
                continue;
            }
            let formatted: Vec<String> = indexes
                .iter()
                .zip(&cells)
                .map(|(&i, cell)| {
                    let s = columns[i].format(cell);
                    if columns[i].name == self.stat_column {
                        style.color_state(&s)
                    } else {
                        s
                    }
                })
                .collect();
            out.push_str(formatted.join(" ").trim_end());
            out.push('\n');
        }
        Ok(out)
    }

    fn filter(
        &self,
        rows: &[Vec<String>],
        options: &TableOptions,
    ) -> Result<Vec<Vec<String>>, TableError> {
        if options.filter.is_empty() {
            return Ok(rows.to_vec());
        }
        let or = match options
            .operator
            .as_deref()
            .map(str::to_uppercase)
            .as_deref()
        {
            None | Some("AND") => false,
            Some("OR") => true,
            Some(other) => return Err(TableError::Operator(other.to_string())),
        };
        let mut stems = Vec::new();
        for expr in &options.filter {
            let (left, op, right) =
                split_filter(expr).ok_or_else(|| TableError::FilterExpression(expr.clone()))?;
            let index = self
                .default
                .iter()
                .any(|d| *d == left.to_uppercase())
                .then(|| self.index(&left.to_uppercase()))
                .flatten()
                .ok_or_else(|| TableError::FilterColumn(left.to_string()))?;
            stems.push((index, op, right.to_string()));
        }
        Ok(rows
            .iter()
            .filter(|row| {
                let mut results = stems.iter().map(|(i, op, right)| {
                    filter_matches(row.get(*i).map(String::as_str).unwrap_or(""), op, right)
                });
                if or {
                    results.any(|m| m)
                } else {
                    results.all(|m| m)
                }
            })
            .cloned()
            .collect())
    }

    fn update_sizes(
        &self,
        columns: &mut [Column],
        indexes: &[usize],
        rows: &[Vec<String>],
        options: &TableOptions,
        terminal: &Terminal,
    ) -> Result<(), TableError> {
        let expand_all = matches!(&options.expand, Some(list) if list.is_empty());

        // Adjusted columns grow to their longest cell (unless every column is expanded).
        if !expand_all {
            let mut adjust: Vec<usize> = Vec::new();
            for name in &options.adjust {
                let upper = name.trim().to_uppercase();
                let i = self.index(&upper).ok_or(TableError::UnknownColumn(upper))?;
                adjust.push(i);
            }
            adjust.extend(indexes.iter().copied().filter(|&i| columns[i].adjust));
            for i in adjust {
                let longest = rows
                    .iter()
                    .filter_map(|r| r.get(i))
                    .map(|c| c.chars().count())
                    .max();
                if let Some(longest) = longest
                    && longest > columns[i].size
                {
                    columns[i].adjust = true;
                    columns[i].size = longest;
                }
            }
        }

        for spec in &options.size {
            let (name, size) = spec
                .split_once('=')
                .ok_or_else(|| TableError::Size(spec.clone()))?;
            let upper = name.trim().to_uppercase();
            let i = self.index(&upper).ok_or(TableError::UnknownColumn(upper))?;
            columns[i].adjust = false;
            columns[i].size = size
                .trim()
                .parse()
                .map_err(|_| TableError::Size(spec.clone()))?;
        }

        if options.no_expand {
            return Ok(());
        }
        let mut expand: Vec<(usize, Option<f64>)> = Vec::new();
        match &options.expand {
            Some(list) if list.is_empty() => expand.extend(indexes.iter().map(|&i| (i, None))),
            Some(list) => {
                for spec in list {
                    let (name, prop) = match spec.split_once('=') {
                        Some((n, p)) => (
                            n,
                            Some(
                                p.trim()
                                    .parse::<f64>()
                                    .map_err(|_| TableError::Expand(spec.clone()))?,
                            ),
                        ),
                        None => (spec.as_str(), None),
                    };
                    let upper = name.trim().to_uppercase();
                    let i = self.index(&upper).ok_or(TableError::UnknownColumn(upper))?;
                    expand.push((i, prop));
                }
            }
            None => {}
        }
        expand.extend(
            indexes
                .iter()
                .copied()
                .filter(|&i| self.columns[i].expand)
                .map(|i| (i, None)),
        );
        if let Some(width) = terminal.width {
            expand_columns(columns, indexes, &expand, width);
        }
        Ok(())
    }
}

/// Spreads the terminal's free width over the expanded columns, in proportion to their sizes
/// unless a proportion is given; what rounding leaves over goes to the last one.
fn expand_columns(
    columns: &mut [Column],
    selected: &[usize],
    expand: &[(usize, Option<f64>)],
    width: usize,
) {
    let Some(&(last, _)) = expand.last() else {
        return;
    };
    let total: usize = selected.iter().map(|&i| columns[i].size).sum();
    let expand_total: usize = expand.iter().map(|&(i, _)| columns[i].size).sum();
    let available = width as i64 - (selected.len() as i64 - 1);
    let left = available - total as i64;
    if left <= 0 || expand_total == 0 {
        return;
    }
    let mut remaining = left;
    for &(i, prop) in expand {
        let prop = prop.unwrap_or(columns[i].size as f64 / expand_total as f64);
        let grow = (left as f64 * prop).round() as i64;
        columns[i].adjust = false;
        columns[i].size = (columns[i].size as i64 + grow).max(0) as usize;
        remaining -= grow;
    }
    if remaining > 0 {
        columns[last].size += remaining as usize;
    }
    let now: i64 = selected.iter().map(|&i| columns[i].size as i64).sum();
    if now != available {
        let diff = now - available;
        columns[last].size = (columns[last].size as i64 - diff).max(0) as usize;
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FilterOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Contains,
}

/// Splits `left<op>right` at the first operator.
fn split_filter(expr: &str) -> Option<(&str, FilterOp, &str)> {
    for (pos, c) in expr.char_indices() {
        let rest = &expr[pos..];
        let (op, len) = if rest.starts_with("!=") {
            (FilterOp::Ne, 2)
        } else if rest.starts_with("<=") {
            (FilterOp::Le, 2)
        } else if rest.starts_with(">=") {
            (FilterOp::Ge, 2)
        } else {
            match c {
                '=' => (FilterOp::Eq, 1),
                '<' => (FilterOp::Lt, 1),
                '>' => (FilterOp::Gt, 1),
                '~' => (FilterOp::Contains, 1),
                _ => continue,
            }
        };
        return Some((&expr[..pos], op, &expr[pos + len..]));
    }
    None
}

/// Compares numerically when both sides are numbers, else as strings.
fn filter_matches(cell: &str, op: &FilterOp, right: &str) -> bool {
    use std::cmp::Ordering;
    let ordering = match (cell.trim().parse::<f64>(), right.trim().parse::<f64>()) {
        (Ok(a), Ok(b)) => a.partial_cmp(&b).unwrap_or(Ordering::Equal),
        _ => cell.cmp(right),
    };
    match op {
        FilterOp::Eq => cell == right,
        FilterOp::Ne => cell != right,
        FilterOp::Lt => ordering == Ordering::Less,
        FilterOp::Le => ordering != Ordering::Greater,
        FilterOp::Gt => ordering == Ordering::Greater,
        FilterOp::Ge => ordering != Ordering::Less,
        FilterOp::Contains => cell.contains(right),
    }
}

/// One CSV line (Ruby's `CSV.generate_line`): fields quoted when they hold the delimiter, a
/// quote or a line break.
fn csv_line(fields: &[String], del: &str) -> String {
    let quoted: Vec<String> = fields
        .iter()
        .map(|f| {
            if f.contains(del) || f.contains('"') || f.contains('\n') || f.contains('\r') {
                format!("\"{}\"", f.replace('"', "\"\""))
            } else {
                f.clone()
            }
        })
        .collect();
    format!("{}\n", quoted.join(del))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hooks() -> Table {
        Table::new(vec![
            Column::new("ID", "ONE identifier for Hook", 4).adjust(),
            Column::new("NAME", "Name of the Hook", 19).left().expand(),
            Column::new("TYPE", "Type of the hook", 8).left(),
        ])
    }

    fn rows() -> Vec<Vec<String>> {
        vec![
            vec![
                "1".into(),
                "hook-vm-with-a-very-long-name".into(),
                "state".into(),
            ],
            vec!["0".into(), "api-h".into(), "api".into()],
        ]
    }

    #[test]
    fn no_terminal_truncates_and_keeps_the_header_padding() {
        let out = hooks()
            .render(&rows(), &TableOptions::default(), &Terminal::plain())
            .unwrap();
        assert_eq!(
            out,
            "  ID NAME                TYPE    \n   1 hook-vm-with-a-very state\n   0 api-h               api\n"
        );
    }

    #[test]
    fn a_terminal_width_expands_the_name_column() {
        let term = Terminal {
            tty: false,
            width: Some(40),
            height: None,
        };
        let out = hooks()
            .render(&rows(), &TableOptions::default(), &term)
            .unwrap();
        // 40 columns: ID 4, two separators, TYPE 8, NAME takes the remaining 26.
        assert_eq!(out.lines().next().unwrap().len(), 40);
        assert_eq!(
            out.lines().nth(1).unwrap(),
            "   1 hook-vm-with-a-very-long-n state"
        );
    }

    #[test]
    fn id_grows_to_its_longest_cell() {
        let rows = vec![vec!["123456".into(), "x".into(), "api".into()]];
        let out = hooks()
            .render(&rows, &TableOptions::default(), &Terminal::plain())
            .unwrap();
        assert_eq!(
            out,
            "    ID NAME                TYPE    \n123456 x                   api\n"
        );
    }

    #[test]
    fn list_csv_filter_and_errors() {
        let opts = TableOptions {
            list: Some(vec!["name".into(), "id".into()]),
            csv: true,
            ..Default::default()
        };
        let out = hooks().render(&rows(), &opts, &Terminal::plain()).unwrap();
        assert_eq!(out, "NAME,ID\nhook-vm-with-a-very-long-name,1\napi-h,0\n");

        let opts = TableOptions {
            filter: vec!["TYPE=api".into()],
            no_header: true,
            ..Default::default()
        };
        let out = hooks().render(&rows(), &opts, &Terminal::plain()).unwrap();
        assert_eq!(out, "   0 api-h               api\n");

        let opts = TableOptions {
            filter: vec!["name~very".into(), "ID>=0".into()],
            ..Default::default()
        };
        let out = hooks().render(&rows(), &opts, &Terminal::plain()).unwrap();
        assert_eq!(out.lines().count(), 2);

        let opts = TableOptions {
            filter: vec!["NOPE=1".into()],
            ..Default::default()
        };
        assert_eq!(
            hooks().render(&rows(), &opts, &Terminal::plain()),
            Err(TableError::FilterColumn("NOPE".into()))
        );
        let opts = TableOptions {
            filter: vec!["ID".into()],
            ..Default::default()
        };
        assert_eq!(
            hooks().render(&rows(), &opts, &Terminal::plain()),
            Err(TableError::FilterExpression("ID".into()))
        );
        let opts = TableOptions {
            list: Some(vec!["X".into()]),
            ..Default::default()
        };
        assert_eq!(
            hooks().render(&rows(), &opts, &Terminal::plain()),
            Err(TableError::UnknownColumn("X".into()))
        );
    }

    #[test]
    fn size_option_truncates() {
        let opts = TableOptions {
            size: vec!["name=5".into()],
            ..Default::default()
        };
        let out = hooks().render(&rows(), &opts, &Terminal::plain()).unwrap();
        assert_eq!(
            out,
            "  ID NAME  TYPE    \n   1 hook- state\n   0 api-h api\n"
        );
    }

    #[test]
    fn describe_lists_columns() {
        assert!(
            hooks()
                .describe()
                .starts_with("ID                  : ONE identifier for Hook")
        );
    }
}
