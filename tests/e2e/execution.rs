//! How hooks are run: no shell, timeouts that leave nothing behind, arguments too long for
//! argv.

use std::time::Duration;

use anyhow::{Context, Result};
use one_e2e::stack::{Stack, wait_for};

const WAIT: Duration = Duration::from_secs(30);

/// ARGUMENTS holding shell metacharacters reach the hook as plain argv words; nothing they
/// spell out is run (the reference builds a shell command line).
#[test]
fn shell_metacharacters_are_plain_arguments() -> Result<()> {
    let stack = Stack::start()?;
    let pwned = stack.dir.path().join("pwned");
    stack.write_hook(
        "args.sh",
        "#!/bin/sh\nfor a in \"$@\"; do printf '[%s]\\n' \"$a\"; done\n",
    )?;
    let template = format!(
        "NAME = meta\nTYPE = api\nCOMMAND = args.sh\nCALL = one.user.allocate\n\
         ARGUMENTS = \";touch {p} $(touch {p}) `touch {p}` | && > {p}\"\n",
        p = pwned.display()
    );
    let hook = stack.client().hook_allocate(&template)?;
    stack.client().call(
        "one.user.allocate",
        vec![
            "bob".to_string().into(),
            "pw".to_string().into(),
            String::new().into(),
        ],
    )?;
    let records = stack.wait_records(hook, 1, WAIT)?;
    let r = records[0].result.as_ref().context("no result")?;
    assert_eq!(r.code, 0, "{r:?}");
    let p = pwned.display().to_string();
    let expected: String = [
        ";touch".into(),
        p.clone(),
        "$(touch".into(),
        format!("{p})"),
        "`touch".into(),
        format!("{p}`"),
        "|".into(),
        "&&".into(),
        ">".into(),
        p.clone(),
    ]
    .iter()
    .map(|w| format!("[{w}]\n"))
    .collect();
    assert_eq!(String::from_utf8_lossy(&r.stdout), expected);
    assert!(
        !pwned.exists(),
        "a metacharacter was interpreted by a shell"
    );
    Ok(())
}

fn process_group_members(pgid: i32) -> Vec<i32> {
    let mut members = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return members;
    };
    for e in entries.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // Field 5 (process group) comes after the parenthesised command name.
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // fields[0] = state, [1] = ppid, [2] = pgrp; zombies are already dead.
        if fields.get(2) == Some(&pgid.to_string().as_str()) && fields.first() != Some(&"Z") {
            members.push(pid);
        }
    }
    members
}

/// TIMEOUT kills the hook's whole process group: a background child of the hook does not
/// survive it, and the record says the hook timed out.
#[test]
fn timeout_leaves_no_process_behind() -> Result<()> {
    let stack = Stack::start()?;
    let pgid_file = stack.dir.path().join("pgid");
    stack.write_hook(
        "slow.sh",
        &format!(
            "#!/bin/sh\nps -o pgid= $$ | tr -d ' ' > {f}.tmp && mv {f}.tmp {f}\n\
             sleep 300 &\nsleep 300\n",
            f = pgid_file.display()
        ),
    )?;
    let hook = stack.client().hook_allocate(
        "NAME = slow\nTYPE = state\nCOMMAND = slow.sh\nTIMEOUT = 1\nON = CUSTOM\nRESOURCE = VM\n\
         STATE = PENDING\nLCM_STATE = LCM_INIT\n",
    )?;
    stack.vm_allocate("NAME = t\nCPU = 1\nMEMORY = 2\n")?;
    let pgid: i32 = wait_for("the hook to start", WAIT, || {
        std::fs::read_to_string(&pgid_file)
            .ok()?
            .trim()
            .parse()
            .ok()
    })?;
    assert!(
        !process_group_members(pgid).is_empty(),
        "the hook's group should be running"
    );

    let records = stack.wait_records(hook, 1, WAIT)?;
    let r = records[0].result.as_ref().context("no result")?;
    assert_eq!(r.code, 255);
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert!(stderr.starts_with("Timeout executing "), "{stderr}");
    // The kill is sent before the record is written, but the kernel may need a moment to
    // tear the processes down.
    wait_for(
        "the process group to disappear",
        Duration::from_secs(10),
        || process_group_members(pgid).is_empty().then_some(()),
    )?;
    Ok(())
}

/// An argument longer than the kernel allows in argv (a large `$TEMPLATE`, OpenNebula issue
/// 3369) gets a failure record that says so and points to ARGUMENTS_STDIN; the same hook
/// with ARGUMENTS_STDIN=yes succeeds.
#[test]
fn oversized_argument_points_to_stdin_mode() -> Result<()> {
    let stack = Stack::start()?;
    stack.write_hook(
        "count.sh",
        "#!/bin/sh\nif [ $# -gt 0 ]; then printf %s \"$1\" | wc -c; else wc -c; fi\n",
    )?;
    let c = stack.client();
    let argv_hook = c.hook_allocate(
        "NAME = big-argv\nTYPE = state\nCOMMAND = count.sh\nARGUMENTS = $TEMPLATE\nON = CUSTOM\n\
         RESOURCE = VM\nSTATE = PENDING\nLCM_STATE = LCM_INIT\n",
    )?;
    let stdin_hook = c.hook_allocate(
        "NAME = big-stdin\nTYPE = state\nCOMMAND = count.sh\nARGUMENTS = $TEMPLATE\n\
         ARGUMENTS_STDIN = yes\nON = CUSTOM\nRESOURCE = VM\nSTATE = PENDING\nLCM_STATE = LCM_INIT\n",
    )?;
    // Linux caps one argv string at 128 KiB (MAX_ARG_STRLEN); a 200 KB user template
    // attribute makes the base64 VM document well over that.
    let big = "x".repeat(200_000);
    stack.vm_allocate(&format!(
        "NAME = big\nCPU = 1\nMEMORY = 2\nNOTES = \"{big}\"\n"
    ))?;

    let r = stack.wait_records(argv_hook, 1, WAIT)?[0]
        .result
        .clone()
        .context("no result")?;
    assert_eq!(r.code, 255);
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert!(stderr.contains("ARGUMENTS_STDIN"), "{stderr}");

    let r = stack.wait_records(stdin_hook, 1, WAIT)?[0]
        .result
        .clone()
        .context("no result")?;
    assert_eq!(r.code, 0, "{r:?}");
    let bytes: usize = String::from_utf8_lossy(&r.stdout).trim().parse()?;
    assert!(bytes > 200_000, "{bytes}");
    Ok(())
}

/// A negative or non-numeric TIMEOUT, a REMOTE other than yes or no, and an unterminated quote
/// are refused by `onehook create` and `onehook update` (the real CLI and oned-lite), the pool
/// stays byte for byte as it was, and the existing hook keeps its TIMEOUT: it still stops its
/// hook after one second.
#[test]
fn bad_timeout_remote_and_quotes_are_refused_and_the_timeout_holds() -> Result<()> {
    let stack = Stack::start()?;
    stack.write_hook("slow.sh", "#!/bin/sh\nsleep 300\n")?;
    let valid = "NAME = slow\nTYPE = state\nCOMMAND = slow.sh\nTIMEOUT = 1\nON = CUSTOM\n\
                 RESOURCE = VM\nSTATE = PENDING\nLCM_STATE = LCM_INIT\n";
    let hook = stack.client().hook_allocate(valid)?;
    let pool = stack.client().hookpool_info()?;
    let nonneg = "TIMEOUT must be a non-negative integer (seconds).";
    let attacks = [
        (
            valid.replace("TIMEOUT = 1", "TIMEOUT = -5"),
            format!("Invalid TIMEOUT: -5. {nonneg}"),
        ),
        (
            valid.replace("TIMEOUT = 1", "TIMEOUT = abc"),
            format!("Invalid TIMEOUT: abc. {nonneg}"),
        ),
        (
            format!("{valid}REMOTE = maybe\n"),
            "Invalid REMOTE: maybe. REMOTE must be YES or NO.".to_owned(),
        ),
        (
            valid.replace("COMMAND = slow.sh", "COMMAND = \"slow.sh"),
            "Parse error: unterminated quoted value at line 2, columns 37:38".to_owned(),
        ),
    ];
    for (i, (template, message)) in attacks.iter().enumerate() {
        let file = stack.dir.path().join(format!("attack-{i}.tmpl"));
        std::fs::write(&file, template.replace("NAME = slow", "NAME = other"))?;
        let file = file.display().to_string();
        let runs: [(&[&str], &str); 3] = [
            (&["create", &file], "[one.hook.allocate] "),
            (
                &["update", &hook.to_string(), &file],
                "[one.hook.update] Cannot update template. ",
            ),
            (
                &["update", &hook.to_string(), &file, "--append"],
                "[one.hook.update] Cannot update template. ",
            ),
        ];
        for (args, prefix) in runs {
            let out = stack.cli("onehook", args)?;
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(255), "{args:?}: {stderr}");
            assert_eq!(stderr, format!("{prefix}{message}\n"), "{args:?}");
            assert_eq!(stack.client().hookpool_info()?, pool, "{args:?}");
        }
    }

    stack.vm_allocate("NAME = t\nCPU = 1\nMEMORY = 2\n")?;
    let records = stack.wait_records(hook, 1, WAIT)?;
    let r = records[0].result.as_ref().context("no result")?;
    assert_eq!(r.code, 255);
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert!(stderr.starts_with("Timeout executing "), "{stderr}");
    Ok(())
}
