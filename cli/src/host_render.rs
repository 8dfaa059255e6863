//! `onehost list` and `onehost show` layouts (after the reference's `onehost.yaml` and
//! `OneHostHelper`).

use crate::short_state::{host_short, host_state_name};
use crate::table::{Column, Table, TableError, TableOptions};
use crate::template_text::template_lines;
use crate::terminal::{Style, Terminal};
use crate::timestamp::{Zone, ruby_to_i, time_to_str};
use crate::units::unit_to_str;
use crate::vm_render::render_vm_pool;
use crate::xml::Element;

/// ID, NAME, CLUSTER, TVM, ALLOCATED_CPU, ALLOCATED_MEM, STAT.
pub fn host_table() -> Table {
    Table::new(vec![
        Column::new("ID", "ONE identifier for Host", 4).adjust(),
        Column::new("NAME", "Name of the Host", 15).left().expand(),
        Column::new("CLUSTER", "Name of the Cluster", 10).left(),
        Column::new("TVM", "Total Virtual Machines allocated to the Host", 3),
        Column::new("ALLOCATED_CPU", "Allocated CPU", 18),
        Column::new("ALLOCATED_MEM", "Allocated MEM", 18),
        Column::new("STAT", "Host status", 6).left(),
    ])
}

pub fn host_rows(pool: &Element) -> Vec<Vec<String>> {
    pool.children_named("HOST").map(host_row).collect()
}

fn host_row(h: &Element) -> Vec<String> {
    let max_cpu = ruby_to_i(h.str_at("HOST_SHARE/MAX_CPU"));
    let cpu_usage = ruby_to_i(h.str_at("HOST_SHARE/CPU_USAGE"));
    let cpu = match (max_cpu, cpu_usage) {
        (0, 0) => "-".to_string(),
        (0, used) => format!("{used} / -"),
        (max, used) => format!("{used} / {max} ({}%)", used * 100 / max),
    };
    let max_mem = ruby_to_i(h.str_at("HOST_SHARE/MAX_MEM"));
    let mem_usage = ruby_to_i(h.str_at("HOST_SHARE/MEM_USAGE"));
    let mem = match (max_mem, mem_usage) {
        (0, 0) => "-".to_string(),
        (0, used) => format!("{} / -", unit_to_str(used, "K")),
        (max, used) => format!(
            "{} / {} ({}%)",
            unit_to_str(used, "K"),
            unit_to_str(max, "K"),
            used * 100 / max
        ),
    };
    let cluster = h.str_at("CLUSTER");
    vec![
        h.str_at("ID").to_string(),
        h.str_at("NAME").to_string(),
        if cluster.is_empty() {
            "-".to_string()
        } else {
            cluster.to_string()
        },
        h.text_at("HOST_SHARE/RUNNING_VMS")
            .unwrap_or("0")
            .to_string(),
        cpu,
        mem,
        host_short(h.str_at("STATE")),
    ]
}

pub fn render_host_pool(
    pool: &Element,
    options: &TableOptions,
    terminal: &Terminal,
) -> Result<String, TableError> {
    host_table().render(&host_rows(pool), options, terminal)
}

/// `onehost show`: information, shares, the monitoring template and the host's VMs (`vms`
/// is a VM_POOL document holding them).
pub fn render_host(
    host: &Element,
    vms: Option<&Element>,
    terminal: &Terminal,
    zone: Zone,
    now: i64,
) -> String {
    let style = Style::new(terminal);
    let row = |label: &str, value: &str| format!("{label:<22}: {value:<20}\n");
    let mut out = String::new();
    let title = format!("HOST {} INFORMATION", ruby_to_i(host.str_at("ID")));
    out.push_str(&style.header(&format!("{title:<80}"), true));
    out.push_str(&row("ID", &ruby_to_i(host.str_at("ID")).to_string()));
    out.push_str(&row("NAME", host.str_at("NAME")));
    let cluster = host.str_at("CLUSTER");
    out.push_str(&row(
        "CLUSTER",
        if cluster.is_empty() { "-" } else { cluster },
    ));
    out.push_str(&row("STATE", &host_state_name(host.str_at("STATE"))));
    out.push_str(&row("IM_MAD", host.str_at("IM_MAD")));
    out.push_str(&row("VM_MAD", host.str_at("VM_MAD")));
    out.push_str(&row(
        "LAST MONITORING TIME",
        &time_to_str(host.str_at("MONITORING/TIMESTAMP"), true, zone),
    ));
    out.push('\n');
    out.push_str(&style.header(&format!("{:<80}", "HOST SHARES"), false));
    out.push_str(&row("RUNNING VMS", host.str_at("HOST_SHARE/RUNNING_VMS")));
    out.push_str(&style.header(&format!("{:<80}", "MEMORY"), false));
    out.push_str(&row(
        "  TOTAL",
        &unit_to_str(ruby_to_i(host.str_at("HOST_SHARE/TOTAL_MEM")), "K"),
    ));
    out.push_str(&row(
        "  TOTAL +/- RESERVED",
        &unit_to_str(ruby_to_i(host.str_at("HOST_SHARE/MAX_MEM")), "K"),
    ));
    out.push_str(&row(
        "  USED (ALLOCATED)",
        &unit_to_str(ruby_to_i(host.str_at("HOST_SHARE/MEM_USAGE")), "K"),
    ));
    out.push_str(&style.header(&format!("{:<80}", "CPU"), false));
    out.push_str(&row("  TOTAL", host.str_at("HOST_SHARE/TOTAL_CPU")));
    out.push_str(&row(
        "  TOTAL +/- RESERVED",
        host.str_at("HOST_SHARE/MAX_CPU"),
    ));
    out.push_str(&row(
        "  USED (ALLOCATED)",
        host.str_at("HOST_SHARE/CPU_USAGE"),
    ));
    out.push('\n');
    out.push_str(&style.header(&format!("{:<80}", "MONITORING INFORMATION"), false));
    out.push_str(
        &host
            .child("TEMPLATE")
            .map(template_lines)
            .unwrap_or_default(),
    );
    out.push('\n');
    if let Some(vms) = vms.filter(|v| v.child("VM").is_some()) {
        out.push('\n');
        out.push_str(&style.header(&format!("{:<80}", "VIRTUAL MACHINES"), false));
        out.push('\n');
        let section = terminal.without_size();
        out.push_str(
            &render_vm_pool(vms, &TableOptions::default(), &section, now).unwrap_or_default(),
        );
    }
    out
}
