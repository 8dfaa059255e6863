//! Hook creation and update: every template of the seed document ends in the stored form
//! `onehook show` prints, and every rule of reference §1.2, §1.3 and §1.5 fails or succeeds
//! with oned's exact text.

use one_proto::hook::{
    CreateError, Hook, HookType, NewHook, UpdateMode, is_registered_call, is_valid_hook_call,
    validate_create, validate_name, validate_update,
};
use one_proto::template::{AttrValue, Template};

fn nobody(_: &str) -> Option<i64> {
    None
}

fn create(text: &str) -> NewHook {
    match validate_create(text, nobody) {
        Ok(h) => h,
        Err(e) => panic!("{text:?} was refused: {e:?}"),
    }
}

fn create_err(text: &str) -> CreateError {
    match validate_create(text, nobody) {
        Ok(h) => panic!("{text:?} was accepted: {h:?}"),
        Err(e) => e,
    }
}

/// The TEMPLATE block of `onehook show`: `KEY="value"` in XML (sorted) order.
fn show(t: &Template) -> String {
    let xml = t.to_xml().unwrap();
    let sorted = Template::parse(&xml).unwrap();
    sorted
        .attributes()
        .iter()
        .map(|a| match &a.value {
            AttrValue::Single(v) => format!("{}=\"{}\"\n", a.name, v.replace('"', "\\\"")),
            AttrValue::Vector(p) => {
                let items: Vec<String> = p.iter().map(|(k, v)| format!("  {k}=\"{v}\"")).collect();
                format!("{}=[\n{} ]\n", a.name, items.join(",\n"))
            }
        })
        .collect()
}

#[test]
fn seed_walkthrough_hook_tmpl() {
    // The file written by the seed's `cat > hook.tmpl << EOF`: the shell turned \$ into $.
    let file = "     NAME      = hook-vm\n     TYPE      = state\n     COMMAND   = vm-pending.rb\n     ARGUMENTS = \"$TEMPLATE pending\"\n     ON        = CUSTOM\n     RESOURCE  = VM\n     STATE     = PENDING\n     LCM_STATE = LCM_INIT\n";
    let hook = create(file);
    assert_eq!(hook.name, "hook-vm");
    assert_eq!(hook.hook_type, HookType::State);
    assert_eq!(
        show(&hook.template),
        "ARGUMENTS=\"$TEMPLATE pending\"\nCOMMAND=\"vm-pending.rb\"\nLCM_STATE=\"LCM_INIT\"\nREMOTE=\"NO\"\nRESOURCE=\"VM\"\nSTATE=\"PENDING\"\n"
    );
    // The stored body is the one of reference §4.1 (without LOCK and HOOKLOG).
    assert_eq!(
        hook.into_hook(3).to_xml(None).unwrap(),
        "<HOOK><ID>3</ID><NAME>hook-vm</NAME><TYPE>state</TYPE><TEMPLATE><ARGUMENTS><![CDATA[$TEMPLATE pending]]></ARGUMENTS><COMMAND><![CDATA[vm-pending.rb]]></COMMAND><LCM_STATE><![CDATA[LCM_INIT]]></LCM_STATE><REMOTE><![CDATA[NO]]></REMOTE><RESOURCE><![CDATA[VM]]></RESOURCE><STATE><![CDATA[PENDING]]></STATE></TEMPLATE></HOOK>"
    );
}

#[test]
fn seed_example_templates() {
    let cases: &[(&str, &str, HookType, &str)] = &[
        (
            "NAME      = hook-API\nTYPE      = api\nCOMMAND   = \"log_new_user.rb\"\nARGUMENTS = $API\nCALL      = \"one.user.allocate\"\nARGUMENTS_STDIN = yes\n",
            "hook-API",
            HookType::Api,
            "ARGUMENTS=\"$API\"\nARGUMENTS_STDIN=\"yes\"\nCALL=\"one.user.allocate\"\nCOMMAND=\"log_new_user.rb\"\nREMOTE=\"NO\"\n",
        ),
        (
            "# VM\nNAME = hook-vm\nTYPE = state\nCOMMAND = new_vm.rb\nARGUMENTS = $TEMPLATE\nON = PROLOG\nRESOURCE = VM\n",
            "hook-vm",
            HookType::State,
            "ARGUMENTS=\"$TEMPLATE\"\nCOMMAND=\"new_vm.rb\"\nLCM_STATE=\"PROLOG\"\nREMOTE=\"NO\"\nRESOURCE=\"VM\"\nSTATE=\"ACTIVE\"\n",
        ),
        (
            "# HOST\nNAME = hook-host\nTYPE = state\nCOMMAND = host-disabled.rb\nSTATE = DISABLED\nRESOURCE = HOST\nREMOTE = yes\n",
            "hook-host",
            HookType::State,
            "COMMAND=\"host-disabled.rb\"\nREMOTE=\"YES\"\nRESOURCE=\"HOST\"\nSTATE=\"DISABLED\"\n",
        ),
        (
            "# IMAGE\nNAME = hook-image\nTYPE = state\nCOMMAND = image-ready.rb\nSTATE = READY\nRESOURCE = IMAGE\n",
            "hook-image",
            HookType::State,
            "COMMAND=\"image-ready.rb\"\nREMOTE=\"NO\"\nRESOURCE=\"IMAGE\"\nSTATE=\"READY\"\n",
        ),
        // The templates in the comments of the "Developing Hooks" scripts.
        (
            "NAME = user-create\nTYPE = api\nCOMMAND = \"user_create.rb\"\nARGUMENTS = \"$API\"\nCALL = \"one.user.allocate\"\n",
            "user-create",
            HookType::Api,
            "ARGUMENTS=\"$API\"\nCALL=\"one.user.allocate\"\nCOMMAND=\"user_create.rb\"\nREMOTE=\"NO\"\n",
        ),
        (
            "NAME = host-error\nTYPE = state\nCOMMAND = host_error.rb\nARGUMENTS=\"$TEMPLATE\"\nSTATE = ERROR\nRESOURCE = HOST\n",
            "host-error",
            HookType::State,
            "ARGUMENTS=\"$TEMPLATE\"\nCOMMAND=\"host_error.rb\"\nREMOTE=\"NO\"\nRESOURCE=\"HOST\"\nSTATE=\"ERROR\"\n",
        ),
        (
            "NAME = vm-prolog\nTYPE = state\nCOMMAND = vm_prolog.rb\nARGUMENTS = $TEMPLATE\nON = PROLOG\nRESOURCE = VM\n",
            "vm-prolog",
            HookType::State,
            "ARGUMENTS=\"$TEMPLATE\"\nCOMMAND=\"vm_prolog.rb\"\nLCM_STATE=\"PROLOG\"\nREMOTE=\"NO\"\nRESOURCE=\"VM\"\nSTATE=\"ACTIVE\"\n",
        ),
        (
            "NAME = image-ready\nTYPE = state\nCOMMAND = image_ready.rb\nSTATE = READY\nRESOURCE = IMAGE\nARGUMENTS = \"$TEMPLATE\"\n",
            "image-ready",
            HookType::State,
            "ARGUMENTS=\"$TEMPLATE\"\nCOMMAND=\"image_ready.rb\"\nREMOTE=\"NO\"\nRESOURCE=\"IMAGE\"\nSTATE=\"READY\"\n",
        ),
        // The autostart definition files: written into a file, \$TEMPLATE keeps its backslash.
        (
            "NAME = autostart-host\nTYPE = state\nCOMMAND = autostart/host\nARGUMENTS = \\$TEMPLATE\nARGUMENTS_STDIN = yes\nRESOURCE = HOST\nSTATE = MONITORED\n",
            "autostart-host",
            HookType::State,
            "ARGUMENTS=\"\\$TEMPLATE\"\nARGUMENTS_STDIN=\"yes\"\nCOMMAND=\"autostart/host\"\nREMOTE=\"NO\"\nRESOURCE=\"HOST\"\nSTATE=\"MONITORED\"\n",
        ),
        (
            "NAME = autostart-vm\nTYPE = state\nCOMMAND = autostart/vm\nARGUMENTS = \\$TEMPLATE\nARGUMENTS_STDIN = yes\nRESOURCE = VM\nSTATE = POWEROFF\nLCM_STATE = LCM_INIT\nON = CUSTOM\n",
            "autostart-vm",
            HookType::State,
            "ARGUMENTS=\"\\$TEMPLATE\"\nARGUMENTS_STDIN=\"yes\"\nCOMMAND=\"autostart/vm\"\nLCM_STATE=\"LCM_INIT\"\nREMOTE=\"NO\"\nRESOURCE=\"VM\"\nSTATE=\"POWEROFF\"\n",
        ),
    ];
    for (text, name, hook_type, stored) in cases {
        let hook = create(text);
        assert_eq!(&hook.name, name);
        assert_eq!(hook.hook_type, *hook_type);
        assert_eq!(show(&hook.template), *stored, "{name}");
        let stored_hook = hook.into_hook(0);
        assert_eq!(stored_hook.check_loadable(), Ok(()));
    }
    let autostart = create(cases[8].0).into_hook(0);
    assert_eq!(autostart.arguments(), "\\$TEMPLATE");
    assert!(autostart.arguments_stdin());
}

/// Every row of the create table of reference §1.2, in order.
#[test]
fn create_error_rows() {
    const API: &str = "NAME=h\nTYPE=api\nCOMMAND=c\n";
    const VM: &str = "NAME=h\nTYPE=state\nCOMMAND=c\nRESOURCE=VM\n";
    let rows: &[(String, &str, bool)] = &[
        // 1
        ("NAME=h\nTYPE=api\nA=".into(), "Parse error: syntax error, unexpected $end, expecting OBRACKET or CCDATA or STRING at line 2, columns 18:19", false),
        ("NAME=h\nA= x]]>y\n".into(), "Parse error.", false),
        ("<TEMPLATE><NAME>h</NAME>".into(), "Parse error: XML Template malformed.", false),
        // 3: checked on the lower-cased value, empty when missing.
        ("NAME=h\nTYPE=Hook\nCOMMAND=c".into(), "Invalid Hook type: hook", false),
        ("NAME=h\nCOMMAND=c".into(), "Invalid Hook type: ", false),
        ("NAME=h\nTYPE=[A=api]\nCOMMAND=c".into(), "Invalid Hook type: ", false),
        // 4: the detailed reason is discarded.
        ("TYPE=api\nCOMMAND=c\nCALL=one.vm.allocate".into(), "Invalid name.", false),
        ("NAME=\"a/b\"\nTYPE=api\nCOMMAND=c\nCALL=one.vm.allocate".into(), "Invalid name.", false),
        (format!("NAME={}\nTYPE=api\nCOMMAND=c\nCALL=one.vm.allocate", "n".repeat(129)), "Invalid name.", false),
        // 6: after the id reservation.
        ("NAME=h\nTYPE=api\nCALL=one.vm.allocate".into(), "No COMMAND in template for Hook.", true),
        ("NAME=h\nTYPE=api\nCOMMAND=\nCALL=one.vm.allocate".into(), "No COMMAND in template for Hook.", true),
        ("NAME=h\nTYPE=api\nCOMMAND=[A=1]\nCALL=one.vm.allocate".into(), "No COMMAND in template for Hook.", true),
        // 8, 9
        ("NAME=h\nTYPE=state\nCOMMAND=c\nSTATE=ERROR".into(), "RESOURCE attribute is required for STATE hooks.", true),
        ("NAME=h\nTYPE=state\nCOMMAND=c\nRESOURCE=VNET\nSTATE=READY".into(), "Invalid resource type: VNET", true),
        ("NAME=h\nTYPE=state\nCOMMAND=c\nRESOURCE=vm\nON=RUNNING".into(), "Invalid resource type: vm", true),
        // 10a
        (API.into(), "API call does not exist or is not supported: ", true),
        (format!("{API}CALL=one.vm.info"), "API call does not exist or is not supported: one.vm.info", true),
        (format!("{API}CALL=one.vm.nosuch"), "API call does not exist or is not supported: one.vm.nosuch", true),
        (format!("{API}CALL=ONE.VM.ALLOCATE"), "API call does not exist or is not supported: ONE.VM.ALLOCATE", true),
        // 10b: the typo is the original's.
        (VM.into(), "Unkown state condition: ", true),
        (format!("{VM}ON=boot"), "Unkown state condition: BOOT", true),
        // 10c, 10d
        (format!("{VM}ON=custom\nLCM_STATE=RUNNING"), "Wrong STATE: ", true),
        (format!("{VM}ON=CUSTOM\nSTATE=failed\nLCM_STATE=RUNNING"), "Wrong STATE: FAILED", true),
        (format!("{VM}ON=CUSTOM\nSTATE=active"), "Wrong LCM_STATE: ", true),
        (format!("{VM}ON=CUSTOM\nSTATE=active\nLCM_STATE=cancel"), "Wrong LCM_STATE: CANCEL", true),
        // 10e
        ("NAME=h\nTYPE=state\nCOMMAND=c\nRESOURCE=HOST".into(), "Invalid STATE: ", true),
        ("NAME=h\nTYPE=state\nCOMMAND=c\nRESOURCE=HOST\nSTATE=up".into(), "Invalid STATE: UP", true),
        // 10f, 10g
        ("NAME=h\nTYPE=state\nCOMMAND=c\nRESOURCE=IMAGE".into(), "Hook STATE attribute not found or invalid", true),
        ("NAME=h\nTYPE=state\nCOMMAND=c\nRESOURCE=IMAGE\nSTATE=init".into(), "Invalid or unkown STATE condition: INIT", true),
        ("NAME=h\nTYPE=state\nCOMMAND=c\nRESOURCE=IMAGE\nSTATE=\n".into(), "Invalid or unkown STATE condition: ", true),
        // 10h: case-sensitive, INIT and UPDATE_FAILURE refused, value as given.
        ("NAME=h\nTYPE=state\nCOMMAND=c\nRESOURCE=NET".into(), "Invalid STATE: ", true),
        ("NAME=h\nTYPE=state\nCOMMAND=c\nRESOURCE=NET\nSTATE=ready".into(), "Invalid STATE: ready", true),
        ("NAME=h\nTYPE=state\nCOMMAND=c\nRESOURCE=NET\nSTATE=INIT".into(), "Invalid STATE: INIT", true),
        ("NAME=h\nTYPE=state\nCOMMAND=c\nRESOURCE=NET\nSTATE=UPDATE_FAILURE".into(), "Invalid STATE: UPDATE_FAILURE", true),
        // 11
        (format!("{API}CALL=one.vm.allocate\nDESCRIPTION=\"ok\nnot ]]> ok\""), "Error transforming the Hook to XML.", true),
        (
            "<TEMPLATE><NAME>h</NAME><TYPE>api</TYPE><COMMAND>c</COMMAND><CALL>one.vm.allocate</CALL><X>]]&gt;</X></TEMPLATE>".into(),
            "Error transforming the Hook to XML.",
            true,
        ),
        (format!("{API}CALL=one.vm.allocate\nV=[1A=x]"), "Error transforming the Hook to XML.", true),
        (format!("{API}CALL=one.vm.allocate\nX=\"\u{1}\""), "Error transforming the Hook to XML.", true),
    ];
    for (text, message, reserved) in rows {
        let e = create_err(text);
        assert_eq!(e.message, *message, "{text:?}");
        assert_eq!(e.id_reserved, *reserved, "{text:?}");
    }
}

#[test]
fn create_check_order() {
    // Step 5 uses the caller's name lookup.
    let taken = |name: &str| (name == "dup").then_some(7);
    let e =
        validate_create("NAME=dup\nTYPE=api\nCOMMAND=c\nCALL=one.vm.allocate", taken).unwrap_err();
    assert_eq!(
        e,
        CreateError {
            message: "NAME is already taken by Hook 7.".into(),
            id_reserved: false
        }
    );
    // TYPE before NAME, NAME before COMMAND, COMMAND before RESOURCE, RESOURCE before STATE.
    assert_eq!(
        create_err("NAME=\"a;b\"\nTYPE=x").message,
        "Invalid Hook type: x"
    );
    assert_eq!(
        validate_create("NAME=dup\nTYPE=state", taken)
            .unwrap_err()
            .message,
        "NAME is already taken by Hook 7."
    );
    assert_eq!(
        create_err("NAME=h\nTYPE=state\nRESOURCE=nope").message,
        "No COMMAND in template for Hook."
    );
    assert_eq!(
        create_err("NAME=h\nTYPE=state\nCOMMAND=c\nRESOURCE=nope").message,
        "Invalid resource type: nope"
    );
    // A CALL is not needed on state hooks, nor a RESOURCE on API hooks.
    create("NAME=h\nTYPE=state\nCOMMAND=c\nRESOURCE=HOST\nSTATE=ERROR\nCALL=nonsense");
    create("NAME=h\nTYPE=api\nCOMMAND=c\nCALL=one.vm.allocate\nRESOURCE=nonsense");
}

#[test]
fn stored_form_rules() {
    // NAME and TYPE leave the template; COMMAND and CALL keep their first value; REMOTE is
    // always there, YES only for an upper-case YES; unknown attributes and vectors stay.
    let h = create(
        "NAME=h\nTYPE=API\nCOMMAND=first\nCOMMAND=second\nCALL=one.hook.retry\nCALL=one.vm.deploy\nREMOTE=Yes\nX=[b=2,a=1]\nY=1\nY=2\n",
    );
    assert_eq!(h.hook_type, HookType::Api);
    let t = &h.template;
    assert!(!t.contains("NAME") && !t.contains("TYPE"));
    assert_eq!(t.get("COMMAND"), Some("first"));
    assert_eq!(t.remove_count_of("COMMAND"), 1);
    assert_eq!(t.get("CALL"), Some("one.hook.retry"));
    assert_eq!(t.remove_count_of("CALL"), 1);
    assert_eq!(t.get("REMOTE"), Some("YES"));
    assert_eq!(
        t.get_vector("X").unwrap(),
        &[
            ("A".to_string(), "1".to_string()),
            ("B".to_string(), "2".to_string())
        ]
    );
    assert_eq!(t.remove_count_of("Y"), 2);
    for (remote, stored) in [("no", "NO"), ("No", "NO"), ("YES", "YES"), ("yes ", "YES")] {
        let h = create(&format!(
            "NAME=h\nTYPE=api\nCOMMAND=c\nCALL=one.vm.allocate\nREMOTE=\"{remote}\""
        ));
        assert_eq!(h.template.get("REMOTE"), Some(stored), "{remote}");
    }
    // one.internal* is accepted without checks; hook calls themselves are allowed.
    for call in [
        "one.internal.vmmonitor",
        "one.internalanything",
        "one.hook.allocate",
        "one.hook.delete",
        "one.hookpool.infoextended",
    ] {
        let r = validate_create(&format!("NAME=h\nTYPE=api\nCOMMAND=c\nCALL={call}"), nobody);
        assert_eq!(r.is_ok(), call != "one.hookpool.infoextended", "{call}");
    }
}

trait CountOf {
    fn remove_count_of(&self, name: &str) -> usize;
}

impl CountOf for Template {
    fn remove_count_of(&self, name: &str) -> usize {
        self.clone().remove(name)
    }
}

/// The ON table of reference §1.3 and the resource-specific STATE handling.
#[test]
fn on_shortcuts_and_state_names() {
    let base = "NAME=h\nTYPE=state\nCOMMAND=c\nRESOURCE=VM\n";
    for (on, state, lcm) in [
        ("PROLOG", "ACTIVE", "PROLOG"),
        ("running", "ACTIVE", "RUNNING"),
        ("Shutdown", "ACTIVE", "EPILOG"),
        ("STOP", "STOPPED", "LCM_INIT"),
        ("done", "DONE", "LCM_INIT"),
        ("UNKNOWN", "ACTIVE", "UNKNOWN"),
    ] {
        // A user-given STATE/LCM_STATE is overwritten; ON is removed.
        let h = create(&format!(
            "{base}ON={on}\nSTATE=HOLD\nLCM_STATE=BOOT\nSTATE=PENDING"
        ));
        assert_eq!(h.template.get("STATE"), Some(state), "{on}");
        assert_eq!(h.template.get("LCM_STATE"), Some(lcm), "{on}");
        assert!(!h.template.contains("ON"));
        assert_eq!(h.template.remove_count_of("STATE"), 1);
    }
    let h = create(&format!(
        "{base}ON=Custom\nSTATE=cloning_failure\nLCM_STATE=hotplug_saveas_stopped"
    ));
    assert_eq!(h.template.get("STATE"), Some("CLONING_FAILURE"));
    assert_eq!(h.template.get("LCM_STATE"), Some("HOTPLUG_SAVEAS_STOPPED"));
    // HOST: case-insensitive, INIT allowed; ON stays on non-VM hooks.
    let h = create("NAME=h\nTYPE=state\nCOMMAND=c\nRESOURCE=HOST\nSTATE=init\nON=PROLOG");
    assert_eq!(h.template.get("STATE"), Some("INIT"));
    assert_eq!(h.template.get("ON"), Some("PROLOG"));
    // IMAGE: the persistent variants are stored under the names events carry.
    for (given, stored) in [
        ("used_pers", "USED"),
        ("LOCKED_USED_PERS", "LOCKED_USED"),
        ("Locked_Used", "LOCKED_USED"),
        ("delete", "DELETE"),
    ] {
        let h = create(&format!(
            "NAME=h\nTYPE=state\nCOMMAND=c\nRESOURCE=IMAGE\nSTATE={given}"
        ));
        assert_eq!(h.template.get("STATE"), Some(stored), "{given}");
    }
    // NET: exact names only.
    for state in ["READY", "LOCK_CREATE", "LOCK_DELETE", "DONE", "ERROR"] {
        let h = create(&format!(
            "NAME=h\nTYPE=state\nCOMMAND=c\nRESOURCE=NET\nSTATE={state}"
        ));
        assert_eq!(h.template.get("STATE"), Some(state));
    }
}

#[test]
fn registered_calls() {
    assert!(is_registered_call("one.vm.deploy"));
    assert!(is_registered_call("one.backupjob.backup"));
    assert!(is_registered_call("one.hooklog.info"));
    assert!(is_registered_call("one.system.version"));
    assert!(!is_registered_call("one.vm.nosuch"));
    assert!(!is_registered_call("one.vm"));
    assert!(is_valid_hook_call("one.zone.raftstatus"));
    for unsupported in one_proto::hook::UNSUPPORTED_CALLS {
        assert!(is_registered_call(unsupported), "{unsupported}");
        assert!(!is_valid_hook_call(unsupported), "{unsupported}");
    }
}

fn stored(text: &str) -> Hook {
    create(text).into_hook(5)
}

fn update_err(hook: &Hook, text: &str, mode: UpdateMode) -> String {
    match validate_update(hook, text, mode) {
        Ok(t) => panic!("{text:?} was accepted: {t:?}"),
        Err(e) => e,
    }
}

/// The update rules of reference §1.5.
#[test]
fn update_rules() {
    use UpdateMode::{Merge, Replace};
    let api = stored("NAME=a\nTYPE=api\nCOMMAND=c\nCALL=one.vm.allocate\nREMOTE=yes");
    let vm = stored("NAME=v\nTYPE=state\nCOMMAND=c\nRESOURCE=VM\nON=RUNNING");
    let host = stored("NAME=h\nTYPE=state\nCOMMAND=c\nRESOURCE=HOST\nSTATE=ERROR");
    let image = stored("NAME=i\nTYPE=state\nCOMMAND=c\nRESOURCE=IMAGE\nSTATE=READY");
    let net = stored("NAME=n\nTYPE=state\nCOMMAND=c\nRESOURCE=NET\nSTATE=READY");

    // Parse errors keep their text.
    assert_eq!(
        update_err(&api, "A=", Replace),
        "Parse error: syntax error, unexpected $end, expecting OBRACKET or CCDATA or STRING at line 0, columns 2:3"
    );
    assert_eq!(update_err(&api, "A=x]]>", Merge), "Parse error.");
    // COMMAND must be non-empty.
    assert_eq!(
        update_err(&api, "CALL=one.vm.allocate", Replace),
        "The COMMAND attribute is not defined."
    );
    assert_eq!(
        update_err(&api, "COMMAND=\"\"", Merge),
        "The COMMAND attribute is not defined."
    );
    // REMOTE is re-normalised when present, and a replace may drop it.
    let t = validate_update(
        &api,
        "COMMAND=d\nCOMMAND=e\nCALL=one.vm.deploy\nREMOTE=yes",
        Replace,
    )
    .unwrap();
    assert_eq!(
        (t.get("COMMAND"), t.get("CALL"), t.get("REMOTE")),
        (Some("d"), Some("one.vm.deploy"), Some("YES"))
    );
    assert_eq!(t.remove_count_of("COMMAND"), 1);
    let t = validate_update(&api, "COMMAND=d\nCALL=one.vm.deploy", Replace).unwrap();
    assert_eq!(t.get("REMOTE"), None);
    let t = validate_update(&api, "REMOTE=no", Merge).unwrap();
    assert_eq!(t.get("REMOTE"), Some("NO"));
    // API: the CALL rule.
    assert_eq!(
        update_err(&api, "COMMAND=c", Replace),
        "The CALL attribute is not defined or it's invalid."
    );
    assert_eq!(
        update_err(&api, "CALL=one.vm.info", Merge),
        "The CALL attribute is not defined or it's invalid."
    );
    assert!(validate_update(&api, "CALL=one.internal.x", Merge).is_ok());
    // NAME and TYPE in the text are plain template attributes.
    let t = validate_update(&api, "NAME=other\nTYPE=state", Merge).unwrap();
    assert_eq!(
        (t.get("NAME"), t.get("TYPE")),
        (Some("other"), Some("state"))
    );

    // VM: both states must be valid; ON is ignored; values are upper-cased, not rewritten.
    assert_eq!(
        update_err(&vm, "COMMAND=c\nON=RUNNING", Replace),
        "The STATE attribute is not defined or it's invalid."
    );
    assert_eq!(
        update_err(&vm, "STATE=bogus", Merge),
        "The STATE attribute is not defined or it's invalid."
    );
    assert_eq!(
        update_err(&vm, "LCM_STATE=bogus", Merge),
        "The LCM_STATE attribute is not defined or it's invalid."
    );
    assert_eq!(
        update_err(&vm, "COMMAND=c\nSTATE=ACTIVE", Replace),
        "The LCM_STATE attribute is not defined or it's invalid."
    );
    let t = validate_update(&vm, "ON=PROLOG\nSTATE=poweroff\nLCM_STATE=lcm_init", Merge).unwrap();
    assert_eq!(
        (t.get("STATE"), t.get("LCM_STATE"), t.get("ON")),
        (Some("POWEROFF"), Some("LCM_INIT"), Some("PROLOG"))
    );

    // HOST: STATE must be valid.
    assert_eq!(
        update_err(&host, "STATE=up", Merge),
        "The STATE attribute is not defined or it's invalid."
    );
    assert_eq!(
        update_err(&host, "COMMAND=c", Replace),
        "The STATE attribute is not defined or it's invalid."
    );
    assert_eq!(
        validate_update(&host, "STATE=offline", Merge)
            .unwrap()
            .get("STATE"),
        Some("OFFLINE")
    );

    // IMAGE and NET: STATE must exist; an invalid value is kept as given.
    assert_eq!(
        update_err(&image, "COMMAND=c", Replace),
        "The STATE attribute is not defined or it's invalid."
    );
    assert_eq!(
        validate_update(&image, "STATE=bogus", Merge)
            .unwrap()
            .get("STATE"),
        Some("bogus")
    );
    assert_eq!(
        validate_update(&image, "STATE=used_pers", Merge)
            .unwrap()
            .get("STATE"),
        Some("USED_PERS")
    );
    assert_eq!(
        update_err(&net, "COMMAND=c", Replace),
        "The STATE attribute is not defined or it's invalid."
    );
    assert_eq!(
        validate_update(&net, "STATE=ready", Merge)
            .unwrap()
            .get("STATE"),
        Some("ready")
    );
    // Such a hook can then no longer be loaded by oned.
    let broken = Hook {
        template: validate_update(&image, "STATE=bogus", Merge).unwrap(),
        ..image.clone()
    };
    assert_eq!(
        broken.check_loadable(),
        Err("Invalid or unknown STATE attribute".to_string())
    );

    // The stored RESOURCE decides: a VM hook moved to IMAGE is checked with the VM rules...
    let moved = validate_update(&vm, "RESOURCE=IMAGE", Merge).unwrap();
    assert_eq!(moved.get("RESOURCE"), Some("IMAGE"));
    let moved = Hook {
        template: moved,
        ..vm.clone()
    };
    // ... and its ACTIVE state does not fit the new type.
    assert_eq!(
        moved.check_loadable(),
        Err("Invalid or unknown STATE attribute".to_string())
    );
    assert_eq!(
        update_err(
            &host,
            "RESOURCE=VM\nSTATE=ACTIVE\nLCM_STATE=RUNNING\nSTATE=bogus",
            Merge
        ),
        "The STATE attribute is not defined or it's invalid."
    );

    // Merge: names in the text replace all of that name; an empty vector deletes.
    let h = stored("NAME=m\nTYPE=api\nCOMMAND=c\nCALL=one.vm.allocate\nX=1\nX=2\nV=[A=1]\nKEEP=k");
    let t = validate_update(&h, "X=3\nV=[]\nNEW=n", Merge).unwrap();
    assert_eq!(
        (t.get("X"), t.get("KEEP"), t.get("NEW"), t.contains("V")),
        (Some("3"), Some("k"), Some("n"), false)
    );
    assert_eq!(t.remove_count_of("X"), 1);

    // A value that cannot be stored is refused (oned would answer success and not store it).
    assert_eq!(
        update_err(&api, "DESCRIPTION=\"a\nb]]>\"", Merge),
        "Error transforming the Hook to XML."
    );
}

#[test]
fn rename_names() {
    assert_eq!(
        validate_name(""),
        Err("Invalid NAME, it cannot be empty".into())
    );
    assert_eq!(
        validate_name("a/b"),
        Err("Invalid NAME, char '/' is not allowed".into())
    );
    assert_eq!(
        validate_name("x&|"),
        Err("Invalid NAME, char '&' is not allowed".into())
    );
    assert_eq!(
        validate_name("tab\there"),
        Err("Invalid NAME, char '\t' is not allowed".into())
    );
    assert_eq!(
        validate_name(&"é".repeat(65)),
        Err("Invalid NAME, max length is 128 chars".into())
    );
    assert_eq!(
        validate_name(&"n".repeat(129)),
        Err("Invalid NAME, max length is 128 chars".into())
    );
    // Characters come before the length; the name is not trimmed.
    assert_eq!(
        validate_name(&format!("{}$", "n".repeat(200))),
        Err("Invalid NAME, char '$' is not allowed".into())
    );
    assert_eq!(validate_name(" spaced name "), Ok(()));
    assert_eq!(validate_name(&"n".repeat(128)), Ok(()));
    for c in [
        '&', '|', ':', '\\', '"', ';', '/', '\'', '#', '{', '}', '$', '<', '>', '\t', '\n',
        '\u{0B}', '\u{0C}', '\r',
    ] {
        assert!(validate_name(&format!("a{c}b")).is_err(), "{c:?}");
    }
}

#[test]
fn accessors_for_the_hem() {
    // As a reference oned stores them: it checks neither TIMEOUT nor REMOTE.
    let hook = |extra: &str| Hook {
        id: 5,
        name: "h".into(),
        hook_type: HookType::Api,
        lock: None,
        template: Template::parse(&format!("COMMAND=/bin/c\nCALL=one.vm.allocate\n{extra}"))
            .unwrap(),
    };
    for (timeout, expected) in [
        ("10", Some(10)),
        ("\" 12abc\"", Some(12)),
        ("1_000", Some(1000)),
        ("1__0", Some(1)),
        ("+7", Some(7)),
        ("0d30", Some(30)),
        ("0", None),
        ("-5", None),
        ("abc", None),
        ("_1", None),
        ("0x10", None),
        ("99999999999999999999999", Some(u64::MAX)),
    ] {
        assert_eq!(
            hook(&format!("TIMEOUT={timeout}")).timeout_secs(),
            expected,
            "{timeout}"
        );
    }
    assert_eq!(hook("").timeout_secs(), None);
    for (value, stdin) in [
        ("yes", true),
        ("YES", true),
        ("true", true),
        ("True", true),
        ("no", false),
        ("1", false),
    ] {
        assert_eq!(
            hook(&format!("ARGUMENTS_STDIN={value}")).arguments_stdin(),
            stdin,
            "{value}"
        );
    }
    assert!(!hook("").arguments_stdin());
    let h = hook("ARGUMENTS=\"$API x\"\nREMOTE=yes");
    assert_eq!(
        (
            h.command(),
            h.arguments(),
            h.remote(),
            h.call(),
            h.resource()
        ),
        (
            Some("/bin/c"),
            "$API x",
            true,
            Some("one.vm.allocate"),
            None
        )
    );
    assert_eq!(hook("").arguments(), "");
    let s = stored("NAME=s\nTYPE=state\nCOMMAND=c\nRESOURCE=VM\nON=DONE");
    assert_eq!(
        (s.resource(), s.state(), s.lcm_state(), s.remote()),
        (Some("VM"), Some("DONE"), Some("LCM_INIT"), false)
    );
}

/// TIMEOUT and REMOTE, which oned does not check, on create, update and load: after every
/// check of oned's, with a clear text, reserving no id.
#[test]
fn timeout_and_remote_are_checked() {
    use UpdateMode::{Merge, Replace};
    let base = "NAME=h\nTYPE=api\nCOMMAND=c\nCALL=one.vm.allocate\n";
    let nonneg = "TIMEOUT must be a non-negative integer (seconds).";
    let yes_no = "REMOTE must be YES or NO.";
    for (extra, message) in [
        ("TIMEOUT=-5", format!("Invalid TIMEOUT: -5. {nonneg}")),
        ("TIMEOUT=abc", format!("Invalid TIMEOUT: abc. {nonneg}")),
        ("TIMEOUT=12abc", format!("Invalid TIMEOUT: 12abc. {nonneg}")),
        ("TIMEOUT=+7", format!("Invalid TIMEOUT: +7. {nonneg}")),
        ("TIMEOUT=1_000", format!("Invalid TIMEOUT: 1_000. {nonneg}")),
        ("TIMEOUT=1.5", format!("Invalid TIMEOUT: 1.5. {nonneg}")),
        ("TIMEOUT=\"\"", format!("Invalid TIMEOUT: . {nonneg}")),
        (
            "TIMEOUT=[A=1]",
            format!("Invalid TIMEOUT: a vector attribute. {nonneg}"),
        ),
        (
            "TIMEOUT=5\nTIMEOUT=-1",
            format!("Invalid TIMEOUT: -1. {nonneg}"),
        ),
        (
            "TIMEOUT=18446744073709551616",
            "Invalid TIMEOUT: 18446744073709551616. TIMEOUT must be at most 18446744073709551615 seconds."
                .to_owned(),
        ),
        ("REMOTE=maybe", format!("Invalid REMOTE: maybe. {yes_no}")),
        ("REMOTE=true", format!("Invalid REMOTE: true. {yes_no}")),
        ("REMOTE=\"\"", format!("Invalid REMOTE: . {yes_no}")),
        (
            "REMOTE=[A=YES]",
            format!("Invalid REMOTE: a vector attribute. {yes_no}"),
        ),
        (
            "REMOTE=yes\nREMOTE=maybe",
            format!("Invalid REMOTE: maybe. {yes_no}"),
        ),
        (
            &format!("TIMEOUT={}", "9x".repeat(50)),
            format!("Invalid TIMEOUT: {}.... {nonneg}", "9x".repeat(32)),
        ),
    ] {
        let e = create_err(&format!("{base}{extra}"));
        assert_eq!(e.message, message, "{extra}");
        assert!(!e.id_reserved, "{extra}");
    }
    for (extra, timeout, remote) in [
        ("TIMEOUT=0", "0", "NO"),
        ("TIMEOUT=\" 30 \"\nREMOTE=Yes", "30", "YES"),
        ("TIMEOUT=007\nREMOTE=no", "007", "NO"),
        (
            "TIMEOUT=18446744073709551615\nREMOTE=YES",
            "18446744073709551615",
            "YES",
        ),
    ] {
        let t = create(&format!("{base}{extra}")).template;
        assert_eq!(
            (t.get("TIMEOUT"), t.get("REMOTE")),
            (Some(timeout), Some(remote))
        );
    }
    // A template oned refuses gets oned's answer first.
    assert_eq!(
        create_err("NAME=h\nTYPE=api\nCOMMAND=c\nCALL=one.vm.info\nTIMEOUT=-5").message,
        "API call does not exist or is not supported: one.vm.info"
    );
    assert_eq!(
        create_err("NAME=h\nTYPE=api\nREMOTE=maybe").message,
        "No COMMAND in template for Hook."
    );

    // Update: the resulting template is checked, after oned's checks.
    let api = stored("NAME=a\nTYPE=api\nCOMMAND=c\nCALL=one.vm.allocate\nTIMEOUT=5");
    assert_eq!(
        update_err(&api, "TIMEOUT=-5", Merge),
        format!("Invalid TIMEOUT: -5. {nonneg}")
    );
    assert_eq!(
        update_err(
            &api,
            "COMMAND=c\nCALL=one.vm.allocate\nTIMEOUT=abc",
            Replace
        ),
        format!("Invalid TIMEOUT: abc. {nonneg}")
    );
    assert_eq!(
        update_err(&api, "REMOTE=maybe", Merge),
        format!("Invalid REMOTE: maybe. {yes_no}")
    );
    assert_eq!(
        update_err(&api, "REMOTE=maybe\nCALL=one.vm.info", Merge),
        "The CALL attribute is not defined or it's invalid."
    );
    let t = validate_update(&api, "TIMEOUT=10\nREMOTE=yes", Merge).unwrap();
    assert_eq!(
        (t.get("TIMEOUT"), t.get("REMOTE")),
        (Some("10"), Some("YES"))
    );

    // Load: a hook stored without these checks (by oned, or before them) fails them, and an
    // update must mend it.
    let legacy = Hook {
        template: Template::parse("COMMAND=c\nCALL=one.vm.allocate\nREMOTE=NO\nTIMEOUT=-5")
            .unwrap(),
        ..api.clone()
    };
    let expected = format!("Invalid TIMEOUT: -5. {nonneg}");
    assert_eq!(legacy.check_run_settings(), Err(expected.clone()));
    assert_eq!(legacy.check_loadable(), Err(expected.clone()));
    assert_eq!(update_err(&legacy, "X=1", Merge), expected);
    assert!(validate_update(&legacy, "TIMEOUT=0", Merge).is_ok());
    assert_eq!(api.check_loadable(), Ok(()));
}
