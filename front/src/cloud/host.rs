//! Hosts: the record, storage and the HOST document.

use std::fmt::Write as _;

use one_proto::states::HostState;
use one_proto::template::Template;
use rusqlite::{Connection, OptionalExtension, Transaction, params};

use super::xml;

/// The capacity a simulated host reports once monitored: 8 CPUs (in percent) and 16 GiB (in
/// KiB), as a small KVM node would.
pub(crate) const SIM_TOTAL_CPU: i64 = 800;
pub(crate) const SIM_TOTAL_MEM: i64 = 16 * 1024 * 1024;

/// A hypervisor host.
#[derive(Clone, Debug)]
pub(crate) struct Host {
    pub id: i64,
    pub name: String,
    pub state: HostState,
    /// The state last stored: a store with another state emits an event.
    pub prev_state: HostState,
    pub im_mad: String,
    pub vm_mad: String,
    pub cluster_id: i64,
    pub template: Template,
    /// Down by the failure simulation (`one.hostsim.*`), whatever its state says.
    pub failed: bool,
    pub total_cpu: i64,
    pub total_mem: i64,
    /// When the INIT host is monitored (epoch ms).
    pub monitor_due_ms: Option<i64>,
    /// When a rebooting host comes back (epoch ms).
    pub recover_due_ms: Option<i64>,
}

impl Host {
    /// The earliest pending step.
    pub(crate) fn due_ms(&self) -> Option<i64> {
        match (self.monitor_due_ms, self.recover_due_ms) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The HOST document with the given PREV_STATE, listing the VMs `(id, cpu, memory)` that
    /// occupy it.
    pub(crate) fn to_xml(&self, prev: HostState, vms: &[(i64, f64, i64)]) -> String {
        let mut out = String::with_capacity(1024);
        out.push_str("<HOST>");
        xml::num(&mut out, "ID", self.id);
        xml::text(&mut out, "NAME", &self.name);
        xml::num(&mut out, "STATE", self.state.number());
        xml::num(&mut out, "PREV_STATE", prev.number());
        xml::text(&mut out, "IM_MAD", &self.im_mad);
        xml::text(&mut out, "VM_MAD", &self.vm_mad);
        xml::num(&mut out, "CLUSTER_ID", self.cluster_id);
        xml::text(&mut out, "CLUSTER", "default");
        let cpu_usage: f64 = vms.iter().map(|v| v.1 * 100.0).sum();
        let mem_usage: i64 = vms.iter().map(|v| v.2.saturating_mul(1024)).sum();
        out.push_str("<HOST_SHARE>");
        xml::num(&mut out, "MEM_USAGE", mem_usage);
        xml::num(&mut out, "CPU_USAGE", cpu_usage.round() as i64);
        xml::num(&mut out, "TOTAL_MEM", self.total_mem);
        xml::num(&mut out, "TOTAL_CPU", self.total_cpu);
        xml::num(&mut out, "MAX_MEM", self.total_mem);
        xml::num(&mut out, "MAX_CPU", self.total_cpu);
        xml::num(&mut out, "RUNNING_VMS", vms.len());
        xml::num(&mut out, "VMS_THREAD", 1);
        let _ = write!(
            out,
            "<DATASTORES><DISK_USAGE>0</DISK_USAGE><FREE_DISK>0</FREE_DISK><MAX_DISK>0</MAX_DISK>\
             <USED_DISK>0</USED_DISK></DATASTORES><PCI_DEVICES></PCI_DEVICES><NUMA_NODES></NUMA_NODES>"
        );
        out.push_str("</HOST_SHARE>");
        let ids: Vec<i64> = vms.iter().map(|v| v.0).collect();
        xml::ids(&mut out, "VMS", &ids);
        xml::template(&mut out, &self.template, "TEMPLATE");
        out.push_str("<MONITORING/>");
        out.push_str("</HOST>");
        out
    }
}

const COLUMNS: &str = "oid, name, state, prev_state, im_mad, vm_mad, cluster_id, template, failed, total_cpu, \
                       total_mem, monitor_due_ms, recover_due_ms";

fn state_from(n: i64, column: usize) -> rusqlite::Result<HostState> {
    u32::try_from(n)
        .ok()
        .and_then(HostState::from_number)
        .ok_or(rusqlite::Error::IntegralValueOutOfRange(column, n))
}

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Host> {
    let template: String = r.get(7)?;
    Ok(Host {
        id: r.get(0)?,
        name: r.get(1)?,
        state: state_from(r.get(2)?, 2)?,
        prev_state: state_from(r.get(3)?, 3)?,
        im_mad: r.get(4)?,
        vm_mad: r.get(5)?,
        cluster_id: r.get(6)?,
        template: Template::parse(&template).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(7, rusqlite::types::Type::Text, Box::new(e))
        })?,
        failed: r.get::<_, i64>(8)? != 0,
        total_cpu: r.get(9)?,
        total_mem: r.get(10)?,
        monitor_due_ms: r.get(11)?,
        recover_due_ms: r.get(12)?,
    })
}

pub(crate) fn load(c: &Connection, id: i64) -> rusqlite::Result<Option<Host>> {
    c.prepare_cached(&format!("SELECT {COLUMNS} FROM host_pool WHERE oid = ?1"))?
        .query_row([id], row)
        .optional()
}

/// The id of the host with this name.
pub(crate) fn id_by_name(c: &Connection, name: &str) -> rusqlite::Result<Option<i64>> {
    c.prepare_cached("SELECT oid FROM host_pool WHERE name = ?1")?
        .query_row([name], |r| r.get(0))
        .optional()
}

pub(crate) fn list(c: &Connection, descending: bool) -> rusqlite::Result<Vec<Host>> {
    let order = if descending { "DESC" } else { "ASC" };
    let mut stmt = c.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM host_pool ORDER BY oid {order}"
    ))?;
    stmt.query_map([], row)?.collect()
}

/// Ids and earliest due times of every host with a pending step.
pub(crate) fn pending(c: &Connection) -> rusqlite::Result<Vec<(i64, i64)>> {
    let mut stmt = c.prepare_cached(
        "SELECT oid, MIN(COALESCE(monitor_due_ms, recover_due_ms), COALESCE(recover_due_ms, monitor_due_ms)) \
         FROM host_pool WHERE monitor_due_ms IS NOT NULL OR recover_due_ms IS NOT NULL",
    )?;
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect()
}

pub(crate) fn store(tx: &Transaction<'_>, h: &Host) -> rusqlite::Result<()> {
    tx.prepare_cached(&format!(
        "INSERT OR REPLACE INTO host_pool ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)"
    ))?
    .execute(params![
        h.id,
        h.name,
        h.state.number(),
        h.prev_state.number(),
        h.im_mad,
        h.vm_mad,
        h.cluster_id,
        h.template.to_text(),
        i64::from(h.failed),
        h.total_cpu,
        h.total_mem,
        h.monitor_due_ms,
        h.recover_due_ms,
    ])?;
    Ok(())
}

pub(crate) fn delete(tx: &Transaction<'_>, id: i64) -> rusqlite::Result<usize> {
    tx.execute("DELETE FROM host_pool WHERE oid = ?1", [id])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_lists_vms_and_usage() {
        let h = Host {
            id: 3,
            name: "node&3".into(),
            state: HostState::Monitored,
            prev_state: HostState::Init,
            im_mad: "kvm".into(),
            vm_mad: "kvm".into(),
            cluster_id: 0,
            template: Template::new(),
            failed: false,
            total_cpu: SIM_TOTAL_CPU,
            total_mem: SIM_TOTAL_MEM,
            monitor_due_ms: None,
            recover_due_ms: Some(7),
        };
        let x = h.to_xml(HostState::Init, &[(1, 0.5, 128), (4, 1.0, 256)]);
        assert!(
            x.starts_with(
                "<HOST><ID>3</ID><NAME>node&amp;3</NAME><STATE>2</STATE><PREV_STATE>0</PREV_STATE>"
            ),
            "{x}"
        );
        assert!(x.contains("<MEM_USAGE>393216</MEM_USAGE><CPU_USAGE>150</CPU_USAGE>"));
        assert!(x.contains("<RUNNING_VMS>2</RUNNING_VMS>"));
        assert!(
            x.contains("<VMS><ID>1</ID><ID>4</ID></VMS><TEMPLATE></TEMPLATE><MONITORING/></HOST>")
        );
        assert_eq!(h.due_ms(), Some(7));
    }
}
