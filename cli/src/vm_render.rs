//! `onevm list` and `onevm show` layouts (after the reference's `onevm.yaml` and
//! `OneVMHelper`, without the parts the simulated cloud has no data for).

use crate::short_state::{history_action, lcm_state_name, lock_level, vm_short, vm_state_name};
use crate::table::{Column, Table, TableOptions};
use crate::template_text::template_lines;
use crate::terminal::{Style, Terminal};
use crate::timestamp::{Zone, ruby_to_i, time_to_str};
use crate::units::{period_to_str, short_period_to_str, unit_to_str};
use crate::xml::Element;

/// ID, USER, GROUP, NAME, STAT, CPU, MEM, HOST, TIME.
pub fn vm_table() -> Table {
    Table::new(vec![
        Column::new("ID", "ONE identifier for Virtual Machine", 4).adjust(),
        Column::new("USER", "Username of the Virtual Machine owner", 8).left(),
        Column::new("GROUP", "Group of the Virtual Machine", 8).left(),
        Column::new("NAME", "Name of the Virtual Machine", 15)
            .left()
            .expand(),
        Column::new("STAT", "Actual status", 4),
        Column::new("CPU", "CPU assigned to the VM", 4),
        Column::new("MEM", "Memory assigned to the VM", 7),
        Column::new("HOST", "Host where the VM is running", 10)
            .left()
            .expand(),
        Column::new("TIME", "Time since the VM was submitted", 10),
    ])
}

/// The host a VM is on: the last history record's, while ACTIVE, SUSPENDED or POWEROFF.
pub fn vm_host(vm: &Element) -> Option<&str> {
    let state = vm_state_name(vm.str_at("STATE"));
    if !matches!(state.as_str(), "ACTIVE" | "SUSPENDED" | "POWEROFF") {
        return None;
    }
    vm.child("HISTORY_RECORDS")?
        .children_named("HISTORY")
        .last()
        .and_then(|h| h.text_at("HOSTNAME"))
}

/// One row per VM, `now` being the current epoch (for the TIME column of running VMs).
pub fn vm_rows(pool: &Element, now: i64) -> Vec<Vec<String>> {
    pool.children_named("VM")
        .map(|vm| vm_row(vm, now))
        .collect()
}

pub fn vm_row(vm: &Element, now: i64) -> Vec<String> {
    let name = if vm.str_at("RESCHED") == "1" {
        format!("*{}", vm.str_at("NAME"))
    } else {
        vm.str_at("NAME").to_string()
    };
    let stime = ruby_to_i(vm.str_at("STIME"));
    let etime = match vm.str_at("ETIME") {
        "0" | "" => now,
        e => ruby_to_i(e),
    };
    vec![
        vm.str_at("ID").to_string(),
        vm.str_at("UNAME").to_string(),
        vm.str_at("GNAME").to_string(),
        name,
        vm_short(vm.str_at("STATE"), vm.str_at("LCM_STATE")),
        vm.text_at("TEMPLATE/CPU").unwrap_or("0").to_string(),
        unit_to_str(ruby_to_i(vm.str_at("TEMPLATE/MEMORY")), "M"),
        vm_host(vm).unwrap_or("").to_string(),
        period_to_str(etime - stime, false),
    ]
}

pub fn render_vm_pool(
    pool: &Element,
    options: &TableOptions,
    terminal: &Terminal,
    now: i64,
) -> Result<String, crate::table::TableError> {
    vm_table()
        .with_default(&VM_DEFAULT)
        .render(&vm_rows(pool, now), options, terminal)
}

const VM_DEFAULT: [&str; 9] = [
    "ID", "USER", "GROUP", "NAME", "STAT", "CPU", "MEM", "HOST", "TIME",
];

/// `onevm show`: the information block, the history, the user template and the template.
pub fn render_vm(vm: &Element, terminal: &Terminal, zone: Zone, now: i64) -> String {
    let style = Style::new(terminal);
    let row = |label: &str, value: &str| format!("{label:<20}: {value}\n");
    let mut out = String::new();
    let title = format!("VIRTUAL MACHINE {} INFORMATION", vm.str_at("ID"));
    out.push_str(&style.header(&format!("{title:<80}"), true));
    out.push_str(&row("ID", &ruby_to_i(vm.str_at("ID")).to_string()));
    out.push_str(&row("NAME", vm.str_at("NAME")));
    out.push_str(&row("USER", vm.str_at("UNAME")));
    out.push_str(&row("GROUP", vm.str_at("GNAME")));
    out.push_str(&row("STATE", &vm_state_name(vm.str_at("STATE"))));
    out.push_str(&row("LCM_STATE", &lcm_state_name(vm.str_at("LCM_STATE"))));
    out.push_str(&row("LOCK", lock_level(vm.text_at("LOCK/LOCKED"))));
    out.push_str(&row(
        "RESCHED",
        if vm.str_at("RESCHED") == "1" {
            "Yes"
        } else {
            "No"
        },
    ));
    if let Some(host) = vm_host(vm) {
        out.push_str(&row("HOST", host));
    }
    out.push_str(&row(
        "START TIME",
        &time_to_str(vm.str_at("STIME"), true, zone),
    ));
    out.push_str(&row(
        "END TIME",
        &time_to_str(vm.str_at("ETIME"), true, zone),
    ));
    let deploy = vm.str_at("DEPLOY_ID");
    out.push_str(&row(
        "DEPLOY ID",
        if deploy.is_empty() { "-" } else { deploy },
    ));

    let history: Vec<&Element> = vm
        .child("HISTORY_RECORDS")
        .map(|h| h.children_named("HISTORY").collect())
        .unwrap_or_default();
    if !history.is_empty() {
        out.push('\n');
        out.push_str(&style.header(&format!("{:<80}", "VIRTUAL MACHINE HISTORY"), false));
        out.push_str(&render_history(&history, terminal, zone, now));
    }
    if let Some(user) = vm.child("USER_TEMPLATE").filter(|t| t.has_elements()) {
        out.push('\n');
        out.push_str(&style.header(&format!("{:<80}", "USER TEMPLATE"), false));
        out.push_str(&template_lines(user));
        out.push('\n');
    }
    out.push('\n');
    out.push_str(&style.header(&format!("{:<80}", "VIRTUAL MACHINE TEMPLATE"), false));
    out.push_str(&vm.child("TEMPLATE").map(template_lines).unwrap_or_default());
    out.push('\n');
    out
}

fn render_history(records: &[&Element], terminal: &Terminal, zone: Zone, now: i64) -> String {
    let table = Table::new(vec![
        Column::new("SEQ", "Sequence number", 3),
        Column::new("UID", "UID of the user that performed the action", 4).left(),
        Column::new("REQ", "Request ID of the action", 5).left(),
        Column::new("HOST", "Host name of the VM container", 12).left(),
        Column::new("ACTION", "VM state change action", 10).left(),
        Column::new("DS", "System Datastore", 4),
        Column::new("START", "Time when the state changed", 15),
        Column::new("TIME", "Total time in this state", 11),
        Column::new("PROLOG", "Prolog time for this state", 10),
    ]);
    let dash = |v: &str| {
        if v == "-1" {
            "-".to_string()
        } else {
            v.to_string()
        }
    };
    let rows: Vec<Vec<String>> = records
        .iter()
        .map(|h| {
            let stime = ruby_to_i(h.str_at("STIME"));
            let etime = match h.str_at("ETIME") {
                "0" | "" => now,
                e => ruby_to_i(e),
            };
            let pstime = ruby_to_i(h.str_at("PSTIME"));
            let petime = match (h.str_at("PSTIME"), h.str_at("PETIME")) {
                ("0", _) => 0,
                (_, "0") => now,
                (_, e) => ruby_to_i(e),
            };
            vec![
                h.str_at("SEQ").to_string(),
                dash(h.str_at("UID")),
                dash(h.str_at("REQUEST_ID")),
                h.str_at("HOSTNAME").to_string(),
                history_action(h.str_at("ACTION")),
                h.str_at("DS_ID").to_string(),
                time_to_str(h.str_at("STIME"), true, zone),
                period_to_str(etime - stime, false),
                short_period_to_str(petime - pstime),
            ]
        })
        .collect();
    table
        .render(&rows, &TableOptions::default(), &terminal.without_size())
        .unwrap_or_default()
}
