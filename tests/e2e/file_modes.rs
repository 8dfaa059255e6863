//! Every file and directory the daemons create is private to their user: the databases (with
//! password hashes and VM templates), their WAL and SHM files, the driver's journal, the HEM's
//! state DB and log; and files an earlier version left readable are tightened at start.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use one_e2e::stack::{Stack, StackOptions, wait_for};

/// Every entry below `root`, `root` included, with its permission bits. Bounded in depth: the
/// daemons create two levels at most.
fn modes_below(root: &Path) -> Result<Vec<(PathBuf, u32, bool)>> {
    let mut found = Vec::new();
    let mut pending = vec![(root.to_path_buf(), 0)];
    while let Some((path, depth)) = pending.pop() {
        let meta = std::fs::symlink_metadata(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        found.push((
            path.clone(),
            meta.permissions().mode() & 0o7777,
            meta.is_dir(),
        ));
        if meta.is_dir() && depth < 4 {
            for entry in std::fs::read_dir(&path)? {
                pending.push((entry?.path(), depth + 1));
            }
        }
    }
    found.sort();
    Ok(found)
}

/// The daemons' own trees: oned-lite's var dir (its database and one_auth, the driver's
/// journal, the HEM's state DB) and the directory the HEM created for its log.
fn daemon_trees(stack: &Stack) -> Result<Vec<(PathBuf, u32, bool)>> {
    let mut all = modes_below(&stack.var_dir)?;
    all.extend(modes_below(&stack.dir.path().join("log"))?);
    Ok(all)
}

fn describe(entries: &[(PathBuf, u32, bool)]) -> String {
    entries
        .iter()
        .map(|(p, m, _)| format!("{m:04o} {}", p.display()))
        .collect::<Vec<_>>()
        .join("\n")
}

/// What must be there once a hook ran: each database with its WAL and SHM, and the logs.
fn expected_files(stack: &Stack) -> Vec<PathBuf> {
    let mut files = vec![stack.var_dir.join("one_auth"), stack.hem_log_file(0)];
    for db in ["one.db", "hm-journal.db", "hem-state.db"] {
        for suffix in ["", "-wal", "-shm"] {
            files.push(stack.var_dir.join(format!("{db}{suffix}")));
        }
    }
    files
}

/// Runs one hook end to end, so that every database has committed through its WAL.
fn run_a_hook(stack: &Stack, name: &str) -> Result<()> {
    let hook = stack.client().hook_allocate(&format!(
        "NAME = {name}\nCOMMAND = \"/bin/true\"\nTYPE = api\nCALL = \"one.vm.allocate\"\n"
    ))?;
    stack.vm_allocate("NAME = m\nCPU = 1\nMEMORY = 2\n")?;
    stack.wait_records(hook, 1, Duration::from_secs(60))?;
    Ok(())
}

fn assert_private(stack: &Stack) -> Result<()> {
    let entries = daemon_trees(stack)?;
    for file in expected_files(stack) {
        ensure!(
            entries.iter().any(|(p, _, _)| *p == file),
            "{} is missing; found:\n{}",
            file.display(),
            describe(&entries)
        );
    }
    let loose: Vec<_> = entries
        .iter()
        .filter(|(_, mode, dir)| *mode != if *dir { 0o700 } else { 0o600 })
        .cloned()
        .collect();
    ensure!(
        loose.is_empty(),
        "not private (files 0600, directories 0700):\n{}\nall:\n{}",
        describe(&loose),
        describe(&entries)
    );
    Ok(())
}

#[test]
fn every_file_and_directory_the_daemons_create_is_private() -> Result<()> {
    let stack = Stack::start_with(StackOptions {
        hem_log_file: true,
        ..Default::default()
    })?;
    run_a_hook(&stack, "modes")?;
    assert_private(&stack)
}

#[test]
fn files_an_earlier_version_left_readable_are_tightened_at_start() -> Result<()> {
    let mut stack = Stack::start_with(StackOptions {
        hem_log_file: true,
        ..Default::default()
    })?;
    run_a_hook(&stack, "before")?;
    // A crash leaves the WAL and SHM files in place; an upgrade then finds all of them loose.
    stack.kill_hem()?;
    stack.kill_oned()?;
    for (path, _, dir) in daemon_trees(&stack)? {
        if !dir {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644))?;
        }
    }

    stack.start_oned()?;
    stack.start_hem()?;
    let said = |log: &str, file: &str| {
        let text = std::fs::read_to_string(stack.log_path(log)).unwrap_or_default();
        text.lines()
            .any(|l| l.contains("now private to their owner") && l.contains(file))
    };
    for (log, file) in [
        ("oned", "one.db (was 0644)"),
        ("oned", "one.db-wal (was 0644)"),
        ("oned", "one_auth (was 0644)"),
        ("oned", "hm-journal.db (was 0644)"),
        ("hem", "hem-state.db (was 0644)"),
        ("hem", "hem.log (was 0644)"),
    ] {
        wait_for(
            &format!("{log}.log to say that {file} was tightened"),
            Duration::from_secs(30),
            || said(log, file).then_some(()),
        )
        .with_context(|| stack.tail_log(log))?;
    }
    run_a_hook(&stack, "after")?;
    assert_private(&stack)
}
