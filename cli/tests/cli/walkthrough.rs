//! The seed document's walkthrough, end to end on the whole stack (oned-lite spawning the
//! real one_hm, and onehem-server): create the hook, create a VM, see the failed execution
//! and its "No such file or directory" message, create the script, retry, see the success.

use crate::common::{Run, normalize_times, run_tool};
use one_e2e::stack::Stack;

const HOOK_TMPL: &str = "NAME      = hook-vm
TYPE      = state
COMMAND   = vm-pending.rb
ARGUMENTS = \"$TEMPLATE pending\"
ON        = CUSTOM
RESOURCE  = VM
STATE     = PENDING
LCM_STATE = LCM_INIT
";

fn tool(stack: &Stack, name: &str, args: &[&str]) -> Run {
    let path = match name {
        "onehook" => env!("CARGO_BIN_EXE_onehook"),
        "onevm" => env!("CARGO_BIN_EXE_onevm"),
        other => panic!("unknown tool {other}"),
    };
    let auth = stack.var_dir.join("one_auth");
    run_tool(
        std::path::Path::new(path),
        args,
        None,
        &stack.endpoint,
        &auth,
        &[],
    )
}

/// Polls like `wait_until`, but a timeout shows the daemons' logs.
fn wait_for(stack: &Stack, what: &str, mut f: impl FnMut() -> bool) {
    let waited = one_e2e::stack::wait_for(what, std::time::Duration::from_secs(30), || {
        f().then_some(())
    });
    if let Err(e) = waited {
        panic!(
            "{e:#}\n{}\n{}",
            stack.tail_log("oned"),
            stack.tail_log("hem")
        );
    }
}

fn info_and_template() -> String {
    format!(
        "{:<80}\nID                : 0                   \nNAME              : hook-vm             \n\
         TYPE              : state               \nLOCK              : None                \n\n\
         {:<80}\nARGUMENTS=\"$TEMPLATE pending\"\nCOMMAND=\"vm-pending.rb\"\nLCM_STATE=\"LCM_INIT\"\n\
         REMOTE=\"NO\"\nRESOURCE=\"VM\"\nSTATE=\"PENDING\"\n",
        "HOOK 0 INFORMATION", "HOOK TEMPLATE"
    )
}

#[test]
fn seed_walkthrough() {
    // The stack's HEM reads the journal from its oldest event, so the VM created right after
    // the daemons start is not missed while the HEM connects.
    let stack = Stack::start().expect("starting oned-lite, one_hm and onehem-server");
    let tmpl = stack.dir.path().join("hook.tmpl");
    std::fs::write(&tmpl, HOOK_TMPL).expect("writing hook.tmpl");

    assert_eq!(
        tool(
            &stack,
            "onehook",
            &["create", tmpl.to_str().expect("utf-8 path")]
        )
        .ok(),
        "ID: 0\n"
    );
    assert_eq!(
        tool(
            &stack,
            "onevm",
            &["create", "--cpu", "1", "--memory", "2", "--name", "test"]
        )
        .ok(),
        "ID: 0\n"
    );

    // The script does not exist yet: the execution fails with 255.
    wait_for(&stack, "the first execution record", || {
        tool(&stack, "onehook", &["show", "0"])
            .ok()
            .contains("EXECUTION LOG")
    });
    let show = tool(&stack, "onehook", &["show", "0"]).ok();
    println!("$ onehook show 0\n{show}");
    assert_eq!(
        normalize_times(&show),
        format!(
            // EXECUTION is only as wide as its longest cell: 5 while every record is an ERROR.
            "{}\nEXECUTION LOG\n   ID       TIMESTAMP    RC EXECUTION\n    0     MM/DD hh:mm   255 ERROR\n\n",
            info_and_template()
        )
    );

    let record = tool(&stack, "onehook", &["show", "0", "-e", "0"]).ok();
    println!("$ onehook show 0 -e 0\n{record}");
    let script = stack.hook_dir.join("vm-pending.rb");
    let script = script.to_str().expect("utf-8 path");
    let record = normalize_times(&record);
    let head = format!(
        "{:<80}\nID                : 0                   \nNAME              : hook-vm             \n\
         TYPE              : state               \nLOCK              : None                \n\n\
         {:<80}\nEXECUTION ID      : 0                   \nTIMESTAMP         : MM/DD hh:mm:ss      \n\
         COMMAND           : {script} ",
        "HOOK 0 INFORMATION", "HOOK EXECUTION RECORD"
    );
    assert!(record.starts_with(&head), "{record}");
    // The command line carries $TEMPLATE as one base64 word; ARGUMENTS shows it decoded.
    let command_line = record.lines().nth(9).unwrap_or_default();
    assert!(command_line.ends_with(" pending"), "{command_line}");
    let arguments = record
        .split("ARGUMENTS         : ")
        .nth(1)
        .unwrap_or_default();
    assert!(arguments.starts_with("<VM><ID>0</ID>"), "{arguments}");
    assert!(
        arguments.contains("<NAME>test</NAME>") && arguments.contains("<STATE>1</STATE>"),
        "{arguments}"
    );
    let tail = format!(
        "</VM> pending \nEXIT CODE         : 255                 \n\n{:<80}\n\n\n{:<80}\n\
         Internal error No such file or directory - {script}\n\n",
        "EXECUTION STDOUT", "EXECUTION STDERR"
    );
    assert!(record.ends_with(&tail), "{record}");

    // Create the script, retry: a new record, successful.
    stack
        .write_hook("vm-pending.rb", "#!/bin/sh\necho \"Executed!\"\n")
        .expect("writing the hook script");
    assert_eq!(tool(&stack, "onehook", &["retry", "0", "0"]).ok(), "");
    wait_for(&stack, "the retried execution record", || {
        tool(&stack, "onehook", &["show", "0"])
            .ok()
            .contains("SUCCESS")
    });
    let show = tool(&stack, "onehook", &["show", "0"]).ok();
    println!("$ onehook show 0\n{show}");
    assert_eq!(
        normalize_times(&show),
        format!(
            "{}\nEXECUTION LOG\n   ID       TIMESTAMP    RC EXECUTION\n    0     MM/DD hh:mm   255   ERROR\n    \
             1     MM/DD hh:mm     0 SUCCESS\n\n",
            info_and_template()
        )
    );
    let retried = normalize_times(&tool(&stack, "onehook", &["show", "0", "-e", "1"]).ok());
    assert!(
        retried.ends_with(&format!(
            "EXIT CODE         : 0                   \n\n{:<80}\nExecuted!\n\n{:<80}\n\n\n",
            "EXECUTION STDOUT", "EXECUTION STDERR"
        )),
        "{retried}"
    );

    let list = tool(&stack, "onehook", &["list"]).ok();
    println!("$ onehook list\n{list}");
    assert_eq!(
        list,
        "  ID NAME                TYPE    \n   0 hook-vm             state\n"
    );
    let log = tool(&stack, "onehook", &["log"]).ok();
    println!("$ onehook log\n{log}");
    assert_eq!(
        normalize_times(&log),
        " HOOK    ID       TIMESTAMP    RC EXECUTION\n    0     0     MM/DD hh:mm   255   ERROR\n    \
         0     1     MM/DD hh:mm     0 SUCCESS\n"
    );
    assert_eq!(
        normalize_times(&tool(&stack, "onehook", &["log", "--success"]).ok()),
        " HOOK    ID       TIMESTAMP    RC EXECUTION\n    0     1     MM/DD hh:mm     0 SUCCESS\n"
    );
    // --success wins over --error, as in the reference.
    assert_eq!(
        normalize_times(&tool(&stack, "onehook", &["log", "--error", "--success"]).ok()),
        " HOOK    ID       TIMESTAMP    RC EXECUTION\n    0     1     MM/DD hh:mm     0 SUCCESS\n"
    );
    assert_eq!(
        normalize_times(&tool(&stack, "onehook", &["log", "--error", "--hook-id", "0"]).ok()),
        " HOOK    ID       TIMESTAMP    RC EXECUTION\n    0     0     MM/DD hh:mm   255 ERROR\n"
    );
    // Both bounds are exclusive and far from now: nothing.
    assert_eq!(
        tool(&stack, "onehook", &["log", "--until", "2019-09-23"]).ok(),
        ""
    );
}
