//! Reads docs/configuration.md, the configuration reference, for the tests that compare it with
//! the keys each parser accepts (one per daemon crate).
//!
//! Each configuration has a `## ` section whose title names it; every key is a table row whose
//! first cell holds the key, and any other spellings of it, in backticks:
//!
//! ```text
//! | `--publisher-port`, `-p` | port | 2101 | the PUB socket's port |
//! ```

use std::collections::BTreeSet;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};

/// The reference's path in the repository.
pub fn path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/configuration.md")
}

/// Every backticked name in the first cell of the table rows of the section whose `## ` title
/// contains `title`.
pub fn documented_keys(title: &str) -> Result<BTreeSet<String>> {
    let path = path();
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let mut in_section = false;
    let mut found_section = false;
    let mut keys = BTreeSet::new();
    for line in text.lines() {
        if let Some(heading) = line.strip_prefix("## ") {
            in_section = heading.contains(title);
            found_section |= in_section;
            continue;
        }
        if !in_section {
            continue;
        }
        let Some(row) = line.trim().strip_prefix('|') else {
            continue;
        };
        let first = row.split('|').next().unwrap_or("");
        keys.extend(first.split('`').skip(1).step_by(2).map(str::to_string));
    }
    if !found_section {
        bail!("{} has no section titled {title:?}", path.display());
    }
    Ok(keys)
}

/// Fails naming the keys the parser accepts that the reference does not describe, and the
/// keys it describes that the parser no longer accepts.
pub fn compare(title: &str, accepted: &BTreeSet<String>) -> Result<()> {
    let documented = documented_keys(title)?;
    let missing: Vec<_> = accepted.difference(&documented).collect();
    let stale: Vec<_> = documented.difference(accepted).collect();
    if !missing.is_empty() || !stale.is_empty() {
        bail!(
            "docs/configuration.md, section {title:?}:\n  accepted but not documented: {missing:?}\n  \
             documented but not accepted: {stale:?}"
        );
    }
    Ok(())
}
