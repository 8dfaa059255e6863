//! Virtual machines: the record, its history records, storage and the VM document.
//!
//! The document is oned's extended form (`one.vm.info`, STATE events): every history record in
//! `HISTORY_RECORDS`; pool listings carry only the last record, as oned's short form does.

use std::fmt::Write as _;

use one_proto::states::{LcmState, VmState};
use one_proto::template::Template;
use rusqlite::{Connection, OptionalExtension, Transaction, params};

use super::xml;

/// No host: the VM does not occupy one.
pub(crate) const NO_HOST: i64 = -1;

/// The history ACTION numbers (oned's `VMActions::Action`) the simulation records.
pub(crate) mod action {
    pub const NONE: i64 = 0;
    pub const UNDEPLOY: i64 = 5;
    pub const UNDEPLOY_HARD: i64 = 6;
    pub const HOLD: i64 = 7;
    pub const RELEASE: i64 = 8;
    pub const STOP: i64 = 9;
    pub const SUSPEND: i64 = 10;
    pub const RESUME: i64 = 11;
    pub const REBOOT: i64 = 15;
    pub const REBOOT_HARD: i64 = 16;
    pub const RESCHED: i64 = 17;
    pub const UNRESCHED: i64 = 18;
    pub const POWEROFF: i64 = 19;
    pub const POWEROFF_HARD: i64 = 20;
    pub const TERMINATE: i64 = 27;
    pub const TERMINATE_HARD: i64 = 28;
    /// Set by the monitor, e.g. when a VM is found powered off after a host reboot.
    pub const MONITOR: i64 = 44;
}

/// One placement of a VM on a host (oned's History).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct History {
    pub seq: i64,
    pub hostname: String,
    pub hid: i64,
    pub cid: i64,
    pub stime: i64,
    pub etime: i64,
    pub vm_mad: String,
    pub tm_mad: String,
    pub ds_id: i64,
    pub pstime: i64,
    pub petime: i64,
    pub rstime: i64,
    pub retime: i64,
    pub estime: i64,
    pub eetime: i64,
    pub action: i64,
    pub uid: i64,
    pub gid: i64,
    pub req_id: i64,
}

impl History {
    /// A new placement on a host, all times zero.
    pub(crate) fn new(seq: i64, hid: i64, hostname: &str, vm_mad: &str) -> History {
        History {
            seq,
            hostname: hostname.to_string(),
            hid,
            cid: 0,
            stime: 0,
            etime: 0,
            vm_mad: vm_mad.to_string(),
            tm_mad: "ssh".to_string(),
            ds_id: 0,
            pstime: 0,
            petime: 0,
            rstime: 0,
            retime: 0,
            estime: 0,
            eetime: 0,
            action: action::NONE,
            uid: -1,
            gid: -1,
            req_id: -1,
        }
    }

    fn write_xml(&self, vid: i64, out: &mut String) {
        out.push_str("<HISTORY>");
        xml::num(out, "OID", vid);
        xml::num(out, "SEQ", self.seq);
        xml::text(out, "HOSTNAME", &self.hostname);
        xml::num(out, "HID", self.hid);
        xml::num(out, "CID", self.cid);
        xml::num(out, "STIME", self.stime);
        xml::num(out, "ETIME", self.etime);
        xml::text(out, "VM_MAD", &self.vm_mad);
        xml::text(out, "TM_MAD", &self.tm_mad);
        xml::num(out, "DS_ID", self.ds_id);
        xml::num(out, "PLAN_ID", -1);
        xml::num(out, "ACTION_ID", -1);
        xml::num(out, "PSTIME", self.pstime);
        xml::num(out, "PETIME", self.petime);
        xml::num(out, "RSTIME", self.rstime);
        xml::num(out, "RETIME", self.retime);
        xml::num(out, "ESTIME", self.estime);
        xml::num(out, "EETIME", self.eetime);
        xml::num(out, "ACTION", self.action);
        xml::num(out, "UID", self.uid);
        xml::num(out, "GID", self.gid);
        xml::num(out, "REQUEST_ID", self.req_id);
        out.push_str("</HISTORY>");
    }
}

/// A virtual machine.
#[derive(Clone, Debug)]
pub(crate) struct Vm {
    pub id: i64,
    pub uid: i64,
    pub gid: i64,
    pub uname: String,
    pub gname: String,
    pub name: String,
    pub state: VmState,
    pub lcm: LcmState,
    /// The (STATE, LCM_STATE) last stored: a store with a different pair emits an event.
    pub prev_state: VmState,
    pub prev_lcm: LcmState,
    pub resched: bool,
    pub stime: i64,
    pub etime: i64,
    pub deploy_id: String,
    pub template: Template,
    pub user_template: Template,
    /// The host whose capacity (and VMS list) the VM is part of, or [`NO_HOST`].
    pub hid: i64,
    /// When the current transient state ends (epoch ms).
    pub due_ms: Option<i64>,
    /// Where the simulated scheduler places the VM when it is PENDING (set by resume from
    /// STOPPED/UNDEPLOYED).
    pub sched_hid: Option<i64>,
    pub history: Vec<History>,
}

/// Which history records a document carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum HistoryDump {
    All,
    Last,
}

impl Vm {
    /// `state_str()` of oned: the LCM state name for ACTIVE VMs, the state name otherwise.
    pub(crate) fn state_str(&self) -> &'static str {
        if self.state == VmState::Active {
            self.lcm.name()
        } else {
            self.state.name()
        }
    }

    pub(crate) fn last_history(&self) -> Option<&History> {
        self.history.last()
    }

    pub(crate) fn last_history_mut(&mut self) -> Option<&mut History> {
        self.history.last_mut()
    }

    /// CPU and MEMORY of the template, for the host's usage figures.
    pub(crate) fn capacity(&self) -> (f64, i64) {
        let cpu = self
            .template
            .get("CPU")
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or(0.0);
        let memory = self
            .template
            .get("MEMORY")
            .and_then(|v| v.trim().parse::<i64>().ok())
            .unwrap_or(0);
        (cpu, memory)
    }

    /// SERVICE_ID of the user template, when it is an integer.
    pub(crate) fn service_id(&self) -> Option<i64> {
        self.user_template
            .get("SERVICE_ID")
            .and_then(|v| v.trim().parse().ok())
    }

    /// The VM document, with the given PREV_STATE / PREV_LCM_STATE (an event's body carries the
    /// pair before the change).
    pub(crate) fn to_xml(&self, prev: (VmState, LcmState), dump: HistoryDump) -> String {
        let mut out = String::with_capacity(2048);
        out.push_str("<VM>");
        xml::num(&mut out, "ID", self.id);
        xml::num(&mut out, "UID", self.uid);
        xml::num(&mut out, "GID", self.gid);
        xml::text(&mut out, "UNAME", &self.uname);
        xml::text(&mut out, "GNAME", &self.gname);
        xml::text(&mut out, "NAME", &self.name);
        xml::owner_permissions(&mut out);
        xml::num(&mut out, "LAST_POLL", 0);
        xml::num(&mut out, "STATE", self.state.number());
        xml::num(&mut out, "LCM_STATE", self.lcm.number());
        xml::num(&mut out, "PREV_STATE", prev.0.number());
        xml::num(&mut out, "PREV_LCM_STATE", prev.1.number());
        xml::num(&mut out, "RESCHED", u8::from(self.resched));
        xml::num(&mut out, "STIME", self.stime);
        xml::num(&mut out, "ETIME", self.etime);
        xml::text(&mut out, "DEPLOY_ID", &self.deploy_id);
        out.push_str("<MONITORING/>");
        out.push_str("<SCHED_ACTIONS></SCHED_ACTIONS>");
        xml::template(&mut out, &self.template, "TEMPLATE");
        xml::template(&mut out, &self.user_template, "USER_TEMPLATE");
        let records: &[History] = match dump {
            HistoryDump::All => &self.history,
            HistoryDump::Last => self.history.last().map(std::slice::from_ref).unwrap_or(&[]),
        };
        if records.is_empty() {
            out.push_str("<HISTORY_RECORDS/>");
        } else {
            out.push_str("<HISTORY_RECORDS>");
            for h in records {
                h.write_xml(self.id, &mut out);
            }
            out.push_str("</HISTORY_RECORDS>");
        }
        let _ = write!(
            out,
            "<BACKUPS><BACKUP_CONFIG/><BACKUP_IDS></BACKUP_IDS></BACKUPS>"
        );
        out.push_str("</VM>");
        out
    }
}

/// The attributes oned keeps in TEMPLATE; everything else a user gives goes to USER_TEMPLATE.
const TEMPLATE_ATTRIBUTES: &[&str] = &[
    "TEMPLATE_ID",
    "EMULATOR",
    "MEMORY",
    "MEMORY_RESIZE_MODE",
    "MEMORY_MAX",
    "MEMORY_SLOTS",
    "CPU",
    "VCPU",
    "VCPU_MAX",
    "CPU_COST",
    "MEMORY_COST",
    "DISK_COST",
    "DISK",
    "NIC",
    "NIC_ALIAS",
    "NIC_DEFAULT",
    "PCI",
    "CONTEXT",
    "OS",
    "FEATURES",
    "GRAPHICS",
    "VIDEO",
    "INPUT",
    "RAW",
    "CLONING_TEMPLATE_ID",
    "TOPOLOGY",
    "NUMA_NODE",
    "HYPERV_OPTIONS",
    "SPICE_OPTIONS",
    "CPU_MODEL",
    "SCHED_REQUIREMENTS",
    "SCHED_RANK",
    "SCHED_DS_REQUIREMENTS",
    "SCHED_DS_RANK",
    "SECURITY_GROUP_RULE",
    "VMGROUP",
];

/// What `one.vm.allocate` makes of a user's template.
#[derive(Debug)]
pub(crate) struct Allocation {
    pub name: String,
    pub template: Template,
    pub user_template: Template,
    /// `SUBMIT_ON_HOLD = YES` was given.
    pub hold: bool,
}

fn is_yes(v: &str) -> bool {
    let v = v.trim();
    v.eq_ignore_ascii_case("yes") || v.eq_ignore_ascii_case("true")
}

/// Splits an allocation template as oned does: the name, the well-known attributes into
/// TEMPLATE (with VMID and AUTOMATIC_REQUIREMENTS added), the rest into USER_TEMPLATE. The
/// error text is oned's.
pub(crate) fn split_template(mut user: Template, id: i64) -> Result<Allocation, String> {
    let mut template = Template::new();
    user.remove("VMID");
    let name = user.get("NAME").map(str::to_string).unwrap_or_default();
    user.remove("NAME");
    let prefix = user
        .get("TEMPLATE_NAME")
        .map(str::to_string)
        .filter(|p| !p.is_empty());
    user.remove("TEMPLATE_NAME");
    let name = if name.is_empty() {
        format!("{}-{id}", prefix.as_deref().unwrap_or("one"))
    } else {
        name
    };
    super::check_name(&name)?;

    let memory = user
        .get("MEMORY")
        .and_then(|v| v.trim().parse::<i64>().ok())
        .filter(|m| *m > 0);
    if memory.is_none() {
        return Err("MEMORY attribute must be a positive integer value.".into());
    }
    let cpu = user
        .get("CPU")
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|c| c.is_finite() && *c > 0.0);
    let Some(cpu) = cpu else {
        return Err("CPU attribute must be a positive float or integer value.".into());
    };
    if user.contains("VCPU")
        && user
            .get("VCPU")
            .and_then(|v| v.trim().parse::<i64>().ok())
            .filter(|v| *v > 0)
            .is_none()
    {
        return Err("VCPU attribute must be a positive integer value.".into());
    }
    let hold = user.get("SUBMIT_ON_HOLD").is_some_and(is_yes);
    user.remove("SUBMIT_ON_HOLD");

    let mut rest = Template::new();
    for attribute in user.attributes() {
        if TEMPLATE_ATTRIBUTES.contains(&attribute.name.as_str()) {
            template.push(attribute.clone());
        } else {
            rest.push(attribute.clone());
        }
    }
    template.set("CPU", format_float(cpu));
    if let Some(m) = memory {
        template.set("MEMORY", m.to_string());
    }
    template.set("VMID", id.to_string());
    template.set(
        "AUTOMATIC_REQUIREMENTS",
        "!(PUBLIC_CLOUD = YES) & !(PIN_POLICY = PINNED)",
    );
    if hold {
        template.set("SUBMIT_ON_HOLD", "YES");
    }
    Ok(Allocation {
        name,
        template,
        user_template: rest,
        hold,
    })
}

/// A float as C++ streams print it for ordinary values: no trailing `.0`.
fn format_float(v: f64) -> String {
    format!("{v}")
}

/// Whether a template can be stored (written as XML), with oned's error text otherwise.
pub(crate) fn check_xml(t: &Template, root: &str) -> Result<(), String> {
    t.to_xml_named(root)
        .map(|_| ())
        .map_err(|_| "Error transforming the VM to XML.".to_string())
}

// ------------------------------------------------------------------------------------------
// Storage

const COLUMNS: &str = "oid, uid, gid, uname, gname, name, state, lcm_state, prev_state, prev_lcm_state, \
                       resched, stime, etime, deploy_id, template, user_template, hid, due_ms, sched_hid";

fn state_from(n: i64) -> rusqlite::Result<VmState> {
    u32::try_from(n)
        .ok()
        .and_then(VmState::from_number)
        .ok_or_else(|| rusqlite::Error::IntegralValueOutOfRange(6, n))
}

fn lcm_from(n: i64) -> rusqlite::Result<LcmState> {
    u32::try_from(n)
        .ok()
        .and_then(LcmState::from_number)
        .ok_or_else(|| rusqlite::Error::IntegralValueOutOfRange(7, n))
}

fn parse_stored(text: &str) -> rusqlite::Result<Template> {
    Template::parse(text).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
    })
}

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Vm> {
    Ok(Vm {
        id: r.get(0)?,
        uid: r.get(1)?,
        gid: r.get(2)?,
        uname: r.get(3)?,
        gname: r.get(4)?,
        name: r.get(5)?,
        state: state_from(r.get(6)?)?,
        lcm: lcm_from(r.get(7)?)?,
        prev_state: state_from(r.get(8)?)?,
        prev_lcm: lcm_from(r.get(9)?)?,
        resched: r.get::<_, i64>(10)? != 0,
        stime: r.get(11)?,
        etime: r.get(12)?,
        deploy_id: r.get(13)?,
        template: parse_stored(&r.get::<_, String>(14)?)?,
        user_template: parse_stored(&r.get::<_, String>(15)?)?,
        hid: r.get(16)?,
        due_ms: r.get(17)?,
        sched_hid: r.get(18)?,
        history: Vec::new(),
    })
}

fn history_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<History> {
    Ok(History {
        seq: r.get(0)?,
        hostname: r.get(1)?,
        hid: r.get(2)?,
        cid: r.get(3)?,
        stime: r.get(4)?,
        etime: r.get(5)?,
        vm_mad: r.get(6)?,
        tm_mad: r.get(7)?,
        ds_id: r.get(8)?,
        pstime: r.get(9)?,
        petime: r.get(10)?,
        rstime: r.get(11)?,
        retime: r.get(12)?,
        estime: r.get(13)?,
        eetime: r.get(14)?,
        action: r.get(15)?,
        uid: r.get(16)?,
        gid: r.get(17)?,
        req_id: r.get(18)?,
    })
}

fn load_history(c: &Connection, vm: &mut Vm) -> rusqlite::Result<()> {
    let mut stmt = c.prepare_cached(
        "SELECT seq, hostname, hid, cid, stime, etime, vm_mad, tm_mad, ds_id, pstime, petime, rstime, retime, \
         estime, eetime, action, uid, gid, req_id FROM vm_history WHERE vid = ?1 ORDER BY seq",
    )?;
    vm.history = stmt
        .query_map([vm.id], history_row)?
        .collect::<rusqlite::Result<_>>()?;
    Ok(())
}

/// One VM with its history.
pub(crate) fn load(c: &Connection, id: i64) -> rusqlite::Result<Option<Vm>> {
    let mut stmt = c.prepare_cached(&format!("SELECT {COLUMNS} FROM vm_pool WHERE oid = ?1"))?;
    let Some(mut vm) = stmt.query_row([id], row).optional()? else {
        return Ok(None);
    };
    load_history(c, &mut vm)?;
    Ok(Some(vm))
}

/// The VMs a pool listing selects: owner filter, id range and state filter as oned's
/// `one.vmpool.info` (state -2 any, -1 any but DONE, else that state number).
pub(crate) fn list(
    c: &Connection,
    owner: Option<i64>,
    range: (i64, i64),
    state: i64,
    descending: bool,
) -> rusqlite::Result<Vec<Vm>> {
    let order = if descending { "DESC" } else { "ASC" };
    let mut stmt = c.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM vm_pool WHERE (?1 IS NULL OR uid = ?1) AND (?2 < 0 OR oid >= ?2) \
         AND (?3 < 0 OR oid <= ?3) AND (?4 = -2 OR (?4 = -1 AND state <> 6) OR state = ?4) ORDER BY oid {order}"
    ))?;
    let mut vms = stmt
        .query_map(params![owner, range.0, range.1, state], row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    for vm in &mut vms {
        load_history(c, vm)?;
    }
    Ok(vms)
}

/// The VMs occupying a host, ordered by id.
pub(crate) fn on_host(c: &Connection, hid: i64) -> rusqlite::Result<Vec<Vm>> {
    let mut stmt = c.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM vm_pool WHERE hid = ?1 ORDER BY oid"
    ))?;
    let mut vms = stmt
        .query_map([hid], row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    for vm in &mut vms {
        load_history(c, vm)?;
    }
    Ok(vms)
}

/// Ids and capacity of the VMs occupying a host, ordered by id (for the HOST document).
pub(crate) fn usage_on_host(c: &Connection, hid: i64) -> rusqlite::Result<Vec<(i64, f64, i64)>> {
    let mut stmt =
        c.prepare_cached("SELECT oid, cpu, memory FROM vm_pool WHERE hid = ?1 ORDER BY oid")?;
    stmt.query_map([hid], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect()
}

/// Ids and due times of every VM with a pending step.
pub(crate) fn pending(c: &Connection) -> rusqlite::Result<Vec<(i64, i64)>> {
    let mut stmt = c.prepare_cached("SELECT oid, due_ms FROM vm_pool WHERE due_ms IS NOT NULL")?;
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect()
}

/// Writes the VM row and its history records.
pub(crate) fn store(tx: &Transaction<'_>, vm: &Vm) -> rusqlite::Result<()> {
    let (cpu, memory) = vm.capacity();
    tx.prepare_cached(&format!(
        "INSERT OR REPLACE INTO vm_pool ({COLUMNS}, cpu, memory) VALUES \
         (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21)"
    ))?
    .execute(params![
        vm.id,
        vm.uid,
        vm.gid,
        vm.uname,
        vm.gname,
        vm.name,
        vm.state.number(),
        vm.lcm.number(),
        vm.prev_state.number(),
        vm.prev_lcm.number(),
        i64::from(vm.resched),
        vm.stime,
        vm.etime,
        vm.deploy_id,
        vm.template.to_text(),
        vm.user_template.to_text(),
        vm.hid,
        vm.due_ms,
        vm.sched_hid,
        cpu,
        memory,
    ])?;
    let mut stmt = tx.prepare_cached(
        "INSERT OR REPLACE INTO vm_history (vid, seq, hostname, hid, cid, stime, etime, vm_mad, tm_mad, ds_id, \
         pstime, petime, rstime, retime, estime, eetime, action, uid, gid, req_id) VALUES \
         (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20)",
    )?;
    for h in &vm.history {
        stmt.execute(params![
            vm.id, h.seq, h.hostname, h.hid, h.cid, h.stime, h.etime, h.vm_mad, h.tm_mad, h.ds_id,
            h.pstime, h.petime, h.rstime, h.retime, h.estime, h.eetime, h.action, h.uid, h.gid,
            h.req_id
        ])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocation_splits_the_template_like_oned() {
        let t = Template::parse(
            "NAME = web\nCPU = 1\nMEMORY = 128\nAUTOSTART = yes\nDISK = [ IMAGE_ID = 3 ]\nSERVICE_ID = 4\nVMID = 99",
        )
        .unwrap();
        let a = split_template(t, 7).unwrap();
        assert_eq!(a.name, "web");
        assert!(!a.hold);
        assert_eq!(a.template.get("VMID"), Some("7"));
        assert_eq!(a.template.get("CPU"), Some("1"));
        assert_eq!(a.template.get("MEMORY"), Some("128"));
        assert!(a.template.get_vector("DISK").is_some());
        assert!(a.template.get("AUTOMATIC_REQUIREMENTS").is_some());
        assert_eq!(a.user_template.get("AUTOSTART"), Some("yes"));
        assert_eq!(a.user_template.get("SERVICE_ID"), Some("4"));
        assert!(!a.user_template.contains("VMID") && !a.user_template.contains("NAME"));
    }

    #[test]
    fn allocation_defaults_the_name_and_reads_hold() {
        let a = split_template(
            Template::parse("CPU=0.5\nMEMORY=2\nSUBMIT_ON_HOLD=yes").unwrap(),
            3,
        )
        .unwrap();
        assert_eq!(a.name, "one-3");
        assert!(a.hold);
        assert_eq!(a.template.get("CPU"), Some("0.5"));
    }

    #[test]
    fn allocation_requires_cpu_and_memory() {
        let e = split_template(Template::parse("CPU=1").unwrap(), 0).unwrap_err();
        assert_eq!(e, "MEMORY attribute must be a positive integer value.");
        let e = split_template(Template::parse("MEMORY=1\nCPU=0").unwrap(), 0).unwrap_err();
        assert_eq!(
            e,
            "CPU attribute must be a positive float or integer value."
        );
    }

    #[test]
    fn the_document_carries_history_and_prev_state() {
        let a = split_template(Template::parse("NAME=ab\nCPU=1\nMEMORY=2").unwrap(), 1).unwrap();
        let mut vm = Vm {
            id: 1,
            uid: 0,
            gid: 0,
            uname: "oneadmin".into(),
            gname: "oneadmin".into(),
            // Names cannot hold `<`, but the writer must not rely on that.
            name: "a<b".into(),
            state: VmState::Active,
            lcm: LcmState::Running,
            prev_state: VmState::Active,
            prev_lcm: LcmState::Boot,
            resched: false,
            stime: 1,
            etime: 0,
            deploy_id: String::new(),
            template: a.template,
            user_template: a.user_template,
            hid: 0,
            due_ms: None,
            sched_hid: None,
            history: vec![
                History::new(0, 0, "node0", "kvm"),
                History::new(1, 2, "node2", "kvm"),
            ],
        };
        vm.history[1].action = action::MONITOR;
        let x = vm.to_xml((VmState::Active, LcmState::Boot), HistoryDump::All);
        assert!(x.starts_with("<VM><ID>1</ID><UID>0</UID>"), "{x}");
        assert!(x.contains("<NAME>a&lt;b</NAME>"));
        assert!(x.contains("<STATE>3</STATE><LCM_STATE>3</LCM_STATE><PREV_STATE>3</PREV_STATE><PREV_LCM_STATE>2</PREV_LCM_STATE>"));
        assert!(
            x.contains("<HISTORY><OID>1</OID><SEQ>1</SEQ><HOSTNAME>node2</HOSTNAME><HID>2</HID>")
        );
        assert!(x.contains("<ACTION>44</ACTION>"));
        assert!(x.contains("<USER_TEMPLATE></USER_TEMPLATE>"));
        assert_eq!(x.matches("<HISTORY>").count(), 2);
        let short = vm.to_xml((VmState::Active, LcmState::Running), HistoryDump::Last);
        assert_eq!(short.matches("<HISTORY>").count(), 1);
        vm.history.clear();
        assert!(
            vm.to_xml((vm.state, vm.lcm), HistoryDump::All)
                .contains("<HISTORY_RECORDS/>")
        );
    }
}
