//! Golden-output tests of `onehook` against a running `oned-lite` (no hook manager driver, so
//! no execution records: those are covered by the walkthrough on the whole stack).

use crate::common::{Oned, normalize_times};

const HOOK_TMPL: &str = "NAME      = hook-vm
TYPE      = state
COMMAND   = vm-pending.rb
ARGUMENTS = \"$TEMPLATE pending\"
ON        = CUSTOM
RESOURCE  = VM
STATE     = PENDING
LCM_STATE = LCM_INIT
";

fn info_block(id: u32, name: &str, hook_type: &str, lock: &str) -> String {
    format!(
        "{:<80}\nID                : {:<20}\nNAME              : {:<20}\nTYPE              : {:<20}\nLOCK              : {:<20}\n\n",
        format!("HOOK {id} INFORMATION"),
        id,
        name,
        hook_type,
        lock
    )
}

fn vm_hook_show(name: &str, lock: &str) -> String {
    format!(
        "{}{:<80}\nARGUMENTS=\"$TEMPLATE pending\"\nCOMMAND=\"vm-pending.rb\"\nLCM_STATE=\"LCM_INIT\"\n\
         REMOTE=\"NO\"\nRESOURCE=\"VM\"\nSTATE=\"PENDING\"\n\n",
        info_block(0, name, "state", lock),
        "HOOK TEMPLATE"
    )
}

#[test]
fn hook_lifecycle_outputs() {
    let oned = Oned::start();
    let file = oned.write("hook.tmpl", HOOK_TMPL);
    let file = file.to_str().expect("utf-8 path");

    assert_eq!(oned.run("onehook", &["create", file]).ok(), "ID: 0\n");
    // The template on stdin, with the file omitted (stdin is not a terminal) and as '-'.
    let api = "NAME = api-h\nTYPE = api\nCOMMAND = /usr/bin/echo\nCALL = one.vm.allocate\n";
    assert_eq!(oned.run_stdin("onehook", &["create"], api).ok(), "ID: 1\n");
    let long =
        "NAME = hook-vm-with-a-very-long-name\nTYPE = api\nCOMMAND = x\nCALL = one.user.allocate\n";
    assert_eq!(
        oned.run_stdin("onehook", &["create", "-"], long).ok(),
        "ID: 2\n"
    );

    // §9.1: descending ids, NAME cut at 19 without a terminal, header padding kept.
    assert_eq!(
        oned.run("onehook", &["list"]).ok(),
        "  ID NAME                TYPE    \n   2 hook-vm-with-a-very api\n   1 api-h               api\n   0 hook-vm             state\n"
    );
    assert_eq!(
        oned.run("onehook", &["list", "--no-header", "-f", "TYPE=state"])
            .ok(),
        "   0 hook-vm             state\n"
    );
    assert_eq!(
        oned.run("onehook", &["list", "--csv", "-l", "id,name"])
            .ok(),
        "ID,NAME\n2,hook-vm-with-a-very-long-name\n1,api-h\n0,hook-vm\n"
    );

    // §9.2 without execution records: no EXECUTION LOG section.
    assert_eq!(
        oned.run("onehook", &["show", "0"]).ok(),
        vm_hook_show("hook-vm", "None")
    );
    assert_eq!(
        oned.run("onehook", &["show", "hook-vm"]).ok(),
        vm_hook_show("hook-vm", "None")
    );
    assert_eq!(
        oned.run("onehook", &["show", "0", "-e", "0"]).ok(),
        format!(
            "{}Cannot find execution record 0\n",
            info_block(0, "hook-vm", "state", "None")
        )
    );

    // Actions, with -v.
    assert_eq!(
        oned.run("onehook", &["-v", "rename", "0", "vm-pending"])
            .ok(),
        "HOOK 0: renamed\n"
    );
    assert_eq!(
        oned.run("onehook", &["lock", "0", "--verbose"]).ok(),
        "HOOK 0: Hook locked\n"
    );
    assert_eq!(
        oned.run("onehook", &["show", "0"]).ok(),
        vm_hook_show("vm-pending", "Use")
    );
    let stderr = oned
        .run_stdin("onehook", &["update", "0", "--append"], "TIMEOUT = 5\n")
        .failed();
    assert_eq!(
        stderr,
        "[one.hook.update] User [0] : HOOK is locked. [0].\n"
    );
    assert_eq!(
        oned.run("onehook", &["-v", "unlock", "vm-pending"]).ok(),
        "HOOK 0: Hook unlocked\n"
    );
    assert_eq!(
        oned.run_stdin(
            "onehook",
            &["-v", "update", "0", "--append"],
            "TIMEOUT = 5\n"
        )
        .ok(),
        "HOOK 0: modified\n"
    );
    let shown = oned.run("onehook", &["show", "0"]).ok();
    assert!(
        shown.contains("STATE=\"PENDING\"\nTIMEOUT=\"5\"\n\n"),
        "{shown}"
    );
    let replacement = oned.write("api.tmpl", "COMMAND = /bin/true\nCALL = one.vm.deploy\n");
    let replacement = replacement.to_str().expect("utf-8 path");
    assert_eq!(oned.run("onehook", &["update", "1", replacement]).ok(), "");
    // A replace drops REMOTE, as in the reference (§10).
    assert_eq!(
        oned.run("onehook", &["show", "1"]).ok(),
        format!(
            "{}{:<80}\nCALL=\"one.vm.deploy\"\nCOMMAND=\"/bin/true\"\n\n",
            info_block(1, "api-h", "api", "None"),
            "HOOK TEMPLATE"
        )
    );
    assert_eq!(
        oned.run("onehook", &["-v", "delete", "1..2"]).ok(),
        "HOOK 1: deleted\nHOOK 2: deleted\n"
    );
    assert_eq!(
        oned.run("onehook", &["list"]).ok(),
        "  ID NAME                TYPE    \n   0 vm-pending          state\n"
    );

    // No records yet: `log` prints nothing, and -x the empty HOOKLOG.
    assert_eq!(oned.run("onehook", &["log"]).ok(), "");
    assert_eq!(
        oned.run(
            "onehook",
            &["log", "--error", "--hook-id", "0", "--since", "2019-09-23"]
        )
        .ok(),
        ""
    );
    assert_eq!(oned.run("onehook", &["log", "-x"]).ok(), "<HOOKLOG/>\n");
    assert_eq!(
        oned.run("onehook", &["log", "-j"]).ok(),
        "{\n  \"HOOKLOG\": {}\n}\n"
    );
}

#[test]
fn documents_in_xml_json_and_yaml() {
    let oned = Oned::start();
    let file = oned.write("hook.tmpl", HOOK_TMPL);
    oned.run("onehook", &["create", file.to_str().expect("utf-8 path")])
        .ok();
    assert_eq!(
        oned.run("onehook", &["show", "0", "-x"]).ok(),
        "<HOOK>\n  <ID>0</ID>\n  <NAME>hook-vm</NAME>\n  <TYPE>state</TYPE>\n  <TEMPLATE>\n    \
         <ARGUMENTS><![CDATA[$TEMPLATE pending]]></ARGUMENTS>\n    <COMMAND><![CDATA[vm-pending.rb]]></COMMAND>\n    \
         <LCM_STATE><![CDATA[LCM_INIT]]></LCM_STATE>\n    <REMOTE><![CDATA[NO]]></REMOTE>\n    \
         <RESOURCE><![CDATA[VM]]></RESOURCE>\n    <STATE><![CDATA[PENDING]]></STATE>\n  </TEMPLATE>\n  <HOOKLOG/>\n</HOOK>\n"
    );
    assert_eq!(
        oned.run("onehook", &["list", "--json"]).ok(),
        "{\n  \"HOOK_POOL\": {\n    \"HOOK\": {\n      \"ID\": \"0\",\n      \"NAME\": \"hook-vm\",\n      \
         \"TYPE\": \"state\",\n      \"TEMPLATE\": {\n        \"ARGUMENTS\": \"$TEMPLATE pending\",\n        \
         \"COMMAND\": \"vm-pending.rb\",\n        \"LCM_STATE\": \"LCM_INIT\",\n        \"REMOTE\": \"NO\",\n        \
         \"RESOURCE\": \"VM\",\n        \"STATE\": \"PENDING\"\n      }\n    }\n  }\n}\n"
    );
    let yaml = oned.run("onehook", &["show", "0", "-y"]).ok();
    assert!(
        yaml.starts_with("---\nHOOK:\n  ID: '0'\n  NAME: hook-vm\n"),
        "{yaml}"
    );
    // Quoted, as Ruby writes it, so that YAML 1.1 readers do not take it for false.
    assert!(yaml.contains("\n    REMOTE: 'NO'\n"), "{yaml}");
}

#[test]
fn errors_print_the_server_message_and_exit_255() {
    let oned = Oned::start();
    assert_eq!(
        oned.run("onehook", &["show", "9"]).failed(),
        "[one.hook.info] Error getting hook [9].\n"
    );
    assert_eq!(
        oned.run("onehook", &["show", "nope"]).failed(),
        "HOOK named nope not found.\n"
    );
    let bad = oned
        .run_stdin("onehook", &["create"], "NAME = x\nTYPE = api\n")
        .failed();
    assert!(bad.starts_with("[one.hook.allocate] "), "{bad}");
    assert_eq!(
        oned.run("onehook", &["create"]).failed(),
        "No hook template provided\n"
    );
    assert_eq!(
        oned.run("onehook", &["retry", "0", "x"]).failed(),
        "Argument 'x' is not a valid ID\n"
    );
    let created = oned
        .run_stdin(
            "onehook",
            &["create"],
            "NAME = retried\nTYPE = api\nCOMMAND = x\nCALL = \"one.vm.allocate\"\n",
        )
        .ok();
    let hook = created.trim().strip_prefix("ID: ").expect("ID: <n>");
    assert_eq!(
        oned.run("onehook", &["retry", hook, "99"]).failed(),
        format!(
            "[one.hook.retry] Invalid HookLog body. Arguments not found: execution 99 of hook \
             {hook} does not exist.\n"
        )
    );
    let e = oned
        .run("onehook", &["log", "--since", "not a date"])
        .failed();
    assert!(e.starts_with("invalid date: \"not a date\""), "{e}");
    // Several ids: each failure is reported, the others still run.
    let file = oned.write("hook.tmpl", HOOK_TMPL);
    let created = oned
        .run("onehook", &["create", file.to_str().expect("utf-8 path")])
        .ok();
    let id = created
        .trim()
        .strip_prefix("ID: ")
        .expect("ID: <n>")
        .to_string();
    let run = oned.run("onehook", &["-v", "delete", &format!("5,{id}")]);
    assert_eq!(run.code, 255);
    assert_eq!(run.stdout, format!("HOOK {id}: deleted\n"));
    assert_eq!(run.stderr, "[one.hook.delete] Error getting hook [5].\n");
    // A usage error exits 255 too; help exits 0 and shows examples.
    assert_eq!(oned.run("onehook", &["show"]).code, 255);
    let help = oned.run("onehook", &["retry", "--help"]).ok();
    assert!(help.contains("Examples:\n  onehook retry 0 0"), "{help}");
}

#[test]
fn connection_options_override_the_environment() {
    let oned = Oned::start();
    let session = oned.session();
    let (user, password) = session.split_once(':').expect("user:password");
    let no_env = [
        ("ONE_XMLRPC", "http://127.0.0.1:1/RPC2"),
        ("ONE_AUTH", "/nonexistent"),
    ];
    let run = oned.run_with(
        "onehook",
        &[
            "list",
            "--endpoint",
            &oned.endpoint,
            "--user",
            user,
            "--password",
            password,
        ],
        None,
        &no_env,
    );
    assert_eq!(run.ok(), "  ID NAME                TYPE    \n");
    let wrong = oned.run_with(
        "onehook",
        &["list", "--user", user, "--password", "wrong"],
        None,
        &[],
    );
    assert_eq!(
        wrong.failed(),
        "[one.hookpool.info] User couldn't be authenticated, aborting call.\n"
    );
    let unreachable = oned.run_with("onehook", &["list"], None, &no_env[..1]);
    assert!(
        unreachable
            .failed()
            .starts_with("cannot reach http://127.0.0.1:1/RPC2")
    );
    // --dry and --describe need no server.
    let dry = oned.run_with(
        "onehook",
        &["create", "--dry", "-"],
        Some("NAME = x\n"),
        &no_env,
    );
    assert_eq!(dry.ok(), "NAME = x\n");
    let described = oned
        .run_with("onehook", &["list", "--describe"], None, &no_env)
        .ok();
    assert!(
        described.starts_with("ID                  : ONE identifier for Hook"),
        "{described}"
    );
    assert_eq!(
        normalize_times("09/23 15:10:38 x 09/23 15:10"),
        "MM/DD hh:mm:ss x MM/DD hh:mm"
    );
}

#[test]
fn update_through_the_editor() {
    let oned = Oned::start();
    let file = oned.write("hook.tmpl", HOOK_TMPL);
    oned.run("onehook", &["create", file.to_str().expect("utf-8 path")])
        .ok();
    // No file and nothing on stdin: $EDITOR opens on the current template text.
    let edit = [("EDITOR", "sed -i s/vm-pending.rb/other.rb/")];
    assert_eq!(
        oned.run_with("onehook", &["-v", "update", "0"], None, &edit)
            .ok(),
        "HOOK 0: modified\n"
    );
    let shown = oned.run("onehook", &["show", "0"]).ok();
    assert!(shown.contains("COMMAND=\"other.rb\"\n"), "{shown}");
    // With --append the editor starts empty, and what it saves is merged.
    let append = [("EDITOR", "sh -c 'echo TIMEOUT=9 > \"$0\"'")];
    oned.run_with("onehook", &["update", "0", "--append"], None, &append)
        .ok();
    let shown = oned.run("onehook", &["show", "0"]).ok();
    assert!(
        shown.contains("COMMAND=\"other.rb\"\n") && shown.contains("TIMEOUT=\"9\"\n"),
        "{shown}"
    );
    // An editor that fails changes nothing.
    let failing = oned.run_with("onehook", &["update", "0"], None, &[("EDITOR", "false")]);
    assert_eq!(failing.failed(), "Editor not defined\n");
    assert_eq!(oned.run("onehook", &["show", "0"]).ok(), shown);
}
