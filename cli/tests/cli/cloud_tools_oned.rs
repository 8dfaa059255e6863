//! Golden-output tests of `onevm`, `onehost` and `oneimage` against a running `oned-lite`.

use crate::common::{Oned, normalize_times, wait_until};

/// The STAT cell of one row of a `--csv -l ID,STAT` listing.
fn stat(oned: &Oned, tool: &str, id: &str) -> String {
    let out = oned
        .run(tool, &["list", "--csv", "--no-header", "-l", "ID,STAT"])
        .ok();
    out.lines()
        .find_map(|l| l.strip_prefix(&format!("{id},")).map(str::to_string))
        .unwrap_or_default()
}

fn wait_stat(oned: &Oned, tool: &str, id: &str, want: &str) {
    wait_until(&format!("{tool} {id} to be {want}"), || {
        stat(oned, tool, id) == want
    });
}

/// Masks the REQ column of the VM history table (request ids are not stable).
fn mask_history_req(text: &str) -> String {
    let mut in_history = false;
    text.lines()
        .map(|l| {
            if l.starts_with("SEQ UID  REQ") {
                in_history = true;
                return l.to_string();
            }
            if in_history && l.is_empty() {
                in_history = false;
            }
            if in_history && l.len() > 14 {
                format!("{}#####{}", &l[..9], &l[14..])
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

#[test]
fn hosts_and_vms() {
    let oned = Oned::start();
    assert_eq!(oned.run("onehost", &["create", "host01"]).ok(), "ID: 0\n");
    wait_stat(&oned, "onehost", "0", "on");
    assert_eq!(
        oned.run("onehost", &["list"]).ok(),
        "  ID NAME            CLUSTER    TVM      ALLOCATED_CPU      ALLOCATED_MEM STAT  \n   \
         0 host01          default      0       0 / 800 (0%)      0K / 16G (0%) on\n"
    );

    assert_eq!(
        oned.run(
            "onevm",
            &["create", "--cpu", "1", "--memory", "2", "--name", "test"]
        )
        .ok(),
        "ID: 0\n"
    );
    assert_eq!(
        normalize_times(&oned.run("onevm", &["list"]).ok()),
        "  ID USER     GROUP    NAME            STAT  CPU     MEM HOST             TIME\n   \
         0 oneadmin oneadmin test            pend    1      2M              0d 00h00\n"
    );
    assert_eq!(
        oned.run("onevm", &["-v", "deploy", "test", "host01"]).ok(),
        "VM 0: deploying\n"
    );
    wait_stat(&oned, "onevm", "0", "runn");
    assert_eq!(
        normalize_times(&oned.run("onevm", &["list"]).ok()),
        "  ID USER     GROUP    NAME            STAT  CPU     MEM HOST             TIME\n   \
         0 oneadmin oneadmin test            runn    1      2M host01       0d 00h00\n"
    );
    assert_eq!(
        oned.run_stdin("onevm", &["update", "0", "--append"], "AUTOSTART = yes\n")
            .ok(),
        ""
    );
    let show = mask_history_req(&normalize_times(&oned.run("onevm", &["show", "0"]).ok()));
    assert_eq!(
        show,
        format!(
            "{:<80}\nID                  : 0\nNAME                : test\nUSER                : oneadmin\n\
             GROUP               : oneadmin\nSTATE               : ACTIVE\nLCM_STATE           : RUNNING\n\
             LOCK                : None\nRESCHED             : No\nHOST                : host01\n\
             START TIME          : MM/DD hh:mm:ss\nEND TIME            : -\nDEPLOY ID           : one-0\n\n\
             {:<80}\nSEQ UID  REQ   HOST         ACTION       DS           START        TIME     PROLOG\n  \
             0 0    ##### host01       none          0  MM/DD hh:mm:ss   0d 00h00m   0h00m00s\n\n\
             {:<80}\nAUTOSTART=\"yes\"\n\n{:<80}\n\
             AUTOMATIC_REQUIREMENTS=\"!(PUBLIC_CLOUD = YES) & !(PIN_POLICY = PINNED)\"\nCPU=\"1\"\nMEMORY=\"2\"\nVMID=\"0\"\n",
            "VIRTUAL MACHINE 0 INFORMATION",
            "VIRTUAL MACHINE HISTORY",
            "USER TEMPLATE",
            "VIRTUAL MACHINE TEMPLATE"
        )
    );
    let host = normalize_times(&oned.run("onehost", &["show", "host01"]).ok());
    assert!(
        host.starts_with(&format!(
            "{:<80}\nID                    : 0                   \n",
            "HOST 0 INFORMATION"
        )),
        "{host}"
    );
    assert!(
        host.contains("STATE                 : MONITORED           \n"),
        "{host}"
    );
    assert!(
        host.contains("RUNNING VMS           : 1                   \n"),
        "{host}"
    );
    assert!(
        host.ends_with(&format!(
            "{:<80}\n\n  ID USER     GROUP    NAME            STAT  CPU     MEM HOST             TIME\n   \
             0 oneadmin oneadmin test            runn    1      2M host01       0d 00h00\n",
            "VIRTUAL MACHINES"
        )),
        "{host}"
    );

    // The life cycle by hand.
    oned.run("onevm", &["poweroff", "0"]).ok();
    wait_stat(&oned, "onevm", "0", "poff");
    oned.run("onevm", &["resume", "0"]).ok();
    wait_stat(&oned, "onevm", "0", "runn");
    oned.run("onevm", &["suspend", "0"]).ok();
    wait_stat(&oned, "onevm", "0", "susp");
    oned.run("onevm", &["resume", "0"]).ok();
    wait_stat(&oned, "onevm", "0", "runn");

    // Host failure: the host goes err and its VM unkn; the recovery finds the VM powered off.
    assert_eq!(
        oned.run("onehost", &["-v", "fail", "host01"]).ok(),
        "HOST 0: failed\n"
    );
    assert_eq!(stat(&oned, "onehost", "0"), "err");
    assert_eq!(stat(&oned, "onevm", "0"), "unkn");
    oned.run("onehost", &["recover", "0"]).ok();
    wait_stat(&oned, "onevm", "0", "poff");
    assert_eq!(stat(&oned, "onehost", "0"), "on");
    assert_eq!(
        oned.run("onehost", &["recover", "0"]).failed(),
        "[one.hostsim.recover] Host 0 has not failed\n"
    );
    oned.run("onevm", &["resume", "0"]).ok();
    wait_stat(&oned, "onevm", "0", "runn");
    // A reboot: down, then back with the VM powered off.
    oned.run("onehost", &["reboot", "host01", "--down-ms", "50"])
        .ok();
    wait_stat(&oned, "onevm", "0", "poff");

    oned.run("onevm", &["stop", "0"]).failed();
    oned.run("onevm", &["terminate", "0", "--hard"]).ok();
    // DONE VMs leave the default listing, as in OpenNebula; show still finds them.
    wait_until("the VM to be DONE", || {
        oned.run("onevm", &["show", "0"])
            .ok()
            .contains("STATE               : DONE\n")
    });
    assert_eq!(stat(&oned, "onevm", "0"), "");
    assert_eq!(
        oned.run("onevm", &["poweroff", "0"]).failed(),
        "[one.vm.action] Error performing action \"poweroff\": This action is not available for state DONE\n"
    );
    assert_eq!(
        oned.run("onevm", &["show", "7"]).failed(),
        "[one.vm.info] Error getting virtual machine [7].\n"
    );

    assert_eq!(
        oned.run("onehost", &["-v", "disable", "host01"]).ok(),
        "HOST 0: disabled\n"
    );
    assert_eq!(stat(&oned, "onehost", "0"), "dsbl");
    oned.run("onehost", &["offline", "0"]).ok();
    assert_eq!(stat(&oned, "onehost", "0"), "off");
    oned.run("onehost", &["enable", "0"]).ok();
    wait_stat(&oned, "onehost", "0", "on");
    assert_eq!(
        oned.run("onehost", &["-v", "delete", "host01"]).ok(),
        "HOST 0: deleted\n"
    );
    assert_eq!(
        oned.run("onehost", &["list"]).ok(),
        "  ID NAME            CLUSTER    TVM      ALLOCATED_CPU      ALLOCATED_MEM STAT  \n"
    );
}

#[test]
fn vm_create_from_a_file_with_user_attributes() {
    let oned = Oned::start();
    let file = oned.write("vm.tmpl", "CPU = 0.5\nMEMORY = 128\n");
    let file = file.to_str().expect("utf-8 path");
    let dry = oned
        .run(
            "onevm",
            &[
                "create",
                file,
                "--name",
                "web",
                "--attr",
                "AUTOSTART=always",
                "--dry",
            ],
        )
        .ok();
    assert_eq!(
        dry,
        "CPU = 0.5\nMEMORY = 128\nNAME=\"web\"\nAUTOSTART=\"always\"\n"
    );
    assert_eq!(
        oned.run(
            "onevm",
            &[
                "create",
                file,
                "--name",
                "web",
                "--attr",
                "AUTOSTART=always",
                "--hold"
            ]
        )
        .ok(),
        "ID: 0\n"
    );
    assert_eq!(stat(&oned, "onevm", "0"), "hold");
    let show = oned.run("onevm", &["show", "web"]).ok();
    assert!(
        show.contains(&format!("{:<80}\nAUTOSTART=\"always\"\n", "USER TEMPLATE")),
        "{show}"
    );
    oned.run("onevm", &["release", "web"]).ok();
    assert_eq!(stat(&oned, "onevm", "0"), "pend");
    let e = oned
        .run("onevm", &["create", "--name", "x", "--memory", "0"])
        .failed();
    assert_eq!(e, "Invalid memory '0': use MB, or a number with m or g\n");
    let e = oned.run("onevm", &["create", "--name", "x"]).failed();
    assert!(
        e.starts_with("[one.vm.allocate] ")
            && e.contains("MEMORY attribute must be a positive integer value."),
        "{e}"
    );
}

#[test]
fn images() {
    let oned = Oned::start();
    assert_eq!(
        oned.run(
            "oneimage",
            &[
                "create",
                "--name",
                "disk",
                "--size",
                "1024",
                "--type",
                "DATABLOCK"
            ]
        )
        .ok(),
        "ID: 0\n"
    );
    wait_stat(&oned, "oneimage", "0", "rdy");
    assert_eq!(
        oned.run("oneimage", &["list"]).ok(),
        "  ID USER     GROUP    NAME            DATASTORE     SIZE TYPE PER STAT RVMS\n   \
         0 oneadmin oneadmin disk            default      1024M DB    No rdy     0\n"
    );
    let show = normalize_times(&oned.run("oneimage", &["show", "disk"]).ok());
    assert!(show.starts_with(&format!("{:<80}\nID             : 0                   \nNAME           : disk                \n", "IMAGE 0 INFORMATION")), "{show}");
    assert!(
        show.contains("TYPE           : DATABLOCK           \n"),
        "{show}"
    );
    assert!(
        show.contains("STATE          : rdy                 \n"),
        "{show}"
    );
    assert!(
        show.ends_with(&format!("{:<80}\nDEV_PREFIX=\"sd\"\n", "IMAGE TEMPLATE")),
        "{show}"
    );
    assert_eq!(
        oned.run("oneimage", &["-v", "disable", "disk"]).ok(),
        "IMAGE 0: disabled\n"
    );
    assert_eq!(stat(&oned, "oneimage", "0"), "disa");
    assert_eq!(
        oned.run("oneimage", &["-v", "enable", "0"]).ok(),
        "IMAGE 0: enabled\n"
    );
    assert_eq!(stat(&oned, "oneimage", "0"), "rdy");
    assert_eq!(
        oned.run("oneimage", &["-v", "delete", "disk"]).ok(),
        "IMAGE 0: deleted\n"
    );
    wait_until("the image to be gone", || {
        oned.run("oneimage", &["list", "--no-header"])
            .ok()
            .is_empty()
    });
    assert_eq!(
        oned.run(
            "oneimage",
            &["create", "-d", "nowhere", "--name", "x", "--size", "1"]
        )
        .failed(),
        "DATASTORE named nowhere not found.\n"
    );
    let e = oned.run("oneimage", &["create", "--name", "x"]).failed();
    assert!(e.starts_with("[one.image.allocate] "), "{e}");
}

#[test]
fn every_command_has_help_with_an_example() {
    let oned = Oned::start();
    let commands: [(&str, &[&str]); 4] = [
        (
            "onehook",
            &[
                "create", "delete", "update", "rename", "list", "top", "show", "lock", "unlock",
                "retry", "log",
            ],
        ),
        (
            "onevm",
            &[
                "create",
                "list",
                "show",
                "deploy",
                "poweroff",
                "resume",
                "terminate",
                "stop",
                "suspend",
                "undeploy",
                "reboot",
                "hold",
                "release",
                "update",
            ],
        ),
        (
            "onehost",
            &[
                "create", "list", "show", "enable", "disable", "offline", "delete", "fail",
                "recover", "reboot",
            ],
        ),
        (
            "oneimage",
            &["create", "list", "show", "enable", "disable", "delete"],
        ),
    ];
    for (tool, subcommands) in commands {
        let top = oned.run(tool, &["--help"]).ok();
        assert!(top.contains("Examples:"), "{tool} --help: {top}");
        for sub in subcommands {
            let help = oned.run(tool, &[sub, "--help"]).ok();
            assert!(
                help.contains("Examples:") && help.contains(&format!("{tool} {sub}")),
                "{tool} {sub} --help: {help}"
            );
        }
    }
}
