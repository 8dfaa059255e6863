//! Hooks: the model, create and update validation with oned's order and texts (reference
//! §1), the accessors the HEM needs (§8.2, §8.3), and the HOOK / HOOK_POOL documents (§4.1,
//! §4.2).

use std::fmt;

use crate::states::{HostState, ImageState, LcmState, NetState, ObjectKind, VmState};
use crate::template::xml::{self, Element};
use crate::template::{Template, TemplateError};

/// The two kinds of hook.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HookType {
    Api,
    State,
}

impl HookType {
    /// The stored form: `api` or `state`.
    pub fn as_str(self) -> &'static str {
        match self {
            HookType::Api => "api",
            HookType::State => "state",
        }
    }

    /// Parses a TYPE value case-insensitively, as oned does.
    pub fn from_name(s: &str) -> Option<HookType> {
        if s.eq_ignore_ascii_case("api") {
            Some(HookType::Api)
        } else if s.eq_ignore_ascii_case("state") {
            Some(HookType::State)
        } else {
            None
        }
    }
}

impl fmt::Display for HookType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A lock on a hook: level 1=USE, 2=MANAGE, 3=ADMIN (4=ALL is stored as 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Lock {
    pub level: u8,
    pub owner: i64,
    pub time: i64,
    pub req_id: i64,
}

/// A stored hook.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hook {
    pub id: i64,
    pub name: String,
    pub hook_type: HookType,
    pub lock: Option<Lock>,
    pub template: Template,
}

/// A validated hook that has no id yet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewHook {
    pub name: String,
    pub hook_type: HookType,
    pub template: Template,
}

impl NewHook {
    /// The hook this becomes once stored with `id`.
    pub fn into_hook(self, id: i64) -> Hook {
        Hook {
            id,
            name: self.name,
            hook_type: self.hook_type,
            lock: None,
            template: self.template,
        }
    }
}

/// A failed `one.hook.allocate`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct CreateError {
    /// The text after the `[one.hook.allocate] ` prefix.
    pub message: String,
    /// oned reserves an id before checks 6 to 11 (§1.2); when those fail, the reservation is
    /// rolled back to `max(previous, 0)`, which burns id 0 on an empty pool.
    pub id_reserved: bool,
}

/// The update modes of `one.hook.update`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpdateMode {
    /// Mode 0: the new text replaces the template.
    Replace,
    /// Mode 1: the new text is merged into the template (§1.5).
    Merge,
}

impl UpdateMode {
    /// The mode for the XML-RPC integer; `None` for anything but 0 and 1.
    pub fn from_flag(flag: i64) -> Option<UpdateMode> {
        match flag {
            0 => Some(UpdateMode::Replace),
            1 => Some(UpdateMode::Merge),
            _ => None,
        }
    }
}

/// A HOOK or HOOK_POOL document that cannot be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HookParseError {
    #[error("malformed hook XML: {0}")]
    Malformed(String),
    #[error("expected a <{expected}> document, found <{found}>")]
    WrongRoot {
        expected: &'static str,
        found: String,
    },
    #[error("hook {id}: missing <{element}>")]
    Missing { id: String, element: &'static str },
    #[error("hook {id}: invalid <{element}> value {value:?}")]
    Invalid {
        id: String,
        element: &'static str,
        value: String,
    },
}

/// The calls oned refuses as CALL and never reports as API events (§1.4).
pub const UNSUPPORTED_CALLS: [&str; 43] = [
    "one.vm.info",
    "one.vmpool.info",
    "one.vmpool.infoextended",
    "one.template.info",
    "one.templatepool.info",
    "one.host.info",
    "one.hostpool.info",
    "one.group.info",
    "one.grouppool.info",
    "one.groupquota.info",
    "one.vn.info",
    "one.vnpool.info",
    "one.user.info",
    "one.userpool.info",
    "one.userquota.info",
    "one.datastore.info",
    "one.datastorepool.info",
    "one.image.info",
    "one.imagepool.info",
    "one.acl.info",
    "one.vntemplate.info",
    "one.vntemplatepool.info",
    "one.cluster.info",
    "one.clusterpool.info",
    "one.document.info",
    "one.documentpool.info",
    "one.zone.info",
    "one.zonepool.info",
    "one.secgroup.info",
    "one.secgrouppool.info",
    "one.vmgroup.info",
    "one.vmgrouppool.info",
    "one.vdc.info",
    "one.vdcpool.info",
    "one.vrouter.info",
    "one.vrouterpool.info",
    "one.market.info",
    "one.marketpool.info",
    "one.marketapp.info",
    "one.marketapppool.info",
    "one.hook.info",
    "one.hookpool.info",
    "one.hooklog.info",
];

/// Every method oned's XML-RPC server registers (OpenNebula 7.5), sorted byte-wise.
const REGISTERED_CALLS: &[&str] = &[
    "one.acl.addrule",
    "one.acl.delrule",
    "one.acl.info",
    "one.backupjob.allocate",
    "one.backupjob.backup",
    "one.backupjob.cancel",
    "one.backupjob.chmod",
    "one.backupjob.chown",
    "one.backupjob.delete",
    "one.backupjob.info",
    "one.backupjob.lock",
    "one.backupjob.priority",
    "one.backupjob.rename",
    "one.backupjob.retry",
    "one.backupjob.schedadd",
    "one.backupjob.scheddelete",
    "one.backupjob.schedupdate",
    "one.backupjob.unlock",
    "one.backupjob.update",
    "one.backupjobpool.info",
    "one.cluster.adddatastore",
    "one.cluster.addhost",
    "one.cluster.addvnet",
    "one.cluster.allocate",
    "one.cluster.deldatastore",
    "one.cluster.delete",
    "one.cluster.delhost",
    "one.cluster.delvnet",
    "one.cluster.info",
    "one.cluster.optimize",
    "one.cluster.plandelete",
    "one.cluster.planexecute",
    "one.cluster.rename",
    "one.cluster.update",
    "one.clusterpool.info",
    "one.datastore.allocate",
    "one.datastore.chmod",
    "one.datastore.chown",
    "one.datastore.delete",
    "one.datastore.enable",
    "one.datastore.info",
    "one.datastore.rename",
    "one.datastore.update",
    "one.datastorepool.info",
    "one.document.allocate",
    "one.document.chmod",
    "one.document.chown",
    "one.document.clone",
    "one.document.delete",
    "one.document.info",
    "one.document.lock",
    "one.document.rename",
    "one.document.unlock",
    "one.document.update",
    "one.documentpool.info",
    "one.group.addadmin",
    "one.group.allocate",
    "one.group.deladmin",
    "one.group.delete",
    "one.group.info",
    "one.group.quota",
    "one.group.update",
    "one.group.vlan",
    "one.grouppool.info",
    "one.groupquota.info",
    "one.groupquota.update",
    "one.hook.allocate",
    "one.hook.delete",
    "one.hook.info",
    "one.hook.lock",
    "one.hook.rename",
    "one.hook.retry",
    "one.hook.unlock",
    "one.hook.update",
    "one.hooklog.info",
    "one.hookpool.info",
    "one.host.allocate",
    "one.host.delete",
    "one.host.info",
    "one.host.monitoring",
    "one.host.rename",
    "one.host.status",
    "one.host.update",
    "one.hostpool.info",
    "one.hostpool.monitoring",
    "one.image.allocate",
    "one.image.chmod",
    "one.image.chown",
    "one.image.chtype",
    "one.image.clone",
    "one.image.delete",
    "one.image.enable",
    "one.image.info",
    "one.image.lock",
    "one.image.persistent",
    "one.image.rename",
    "one.image.restore",
    "one.image.snapshotdelete",
    "one.image.snapshotflatten",
    "one.image.snapshotrevert",
    "one.image.unlock",
    "one.image.update",
    "one.imagepool.info",
    "one.market.allocate",
    "one.market.allocatedb",
    "one.market.chmod",
    "one.market.chown",
    "one.market.delete",
    "one.market.enable",
    "one.market.info",
    "one.market.rename",
    "one.market.update",
    "one.market.updatedb",
    "one.marketapp.allocate",
    "one.marketapp.allocatedb",
    "one.marketapp.chmod",
    "one.marketapp.chown",
    "one.marketapp.delete",
    "one.marketapp.dropdb",
    "one.marketapp.enable",
    "one.marketapp.info",
    "one.marketapp.lock",
    "one.marketapp.rename",
    "one.marketapp.unlock",
    "one.marketapp.update",
    "one.marketapp.updatedb",
    "one.marketapppool.info",
    "one.marketpool.info",
    "one.secgroup.allocate",
    "one.secgroup.chmod",
    "one.secgroup.chown",
    "one.secgroup.clone",
    "one.secgroup.commit",
    "one.secgroup.delete",
    "one.secgroup.info",
    "one.secgroup.rename",
    "one.secgroup.update",
    "one.secgrouppool.info",
    "one.system.config",
    "one.system.sql",
    "one.system.sqlquery",
    "one.system.version",
    "one.template.allocate",
    "one.template.chmod",
    "one.template.chown",
    "one.template.clone",
    "one.template.delete",
    "one.template.info",
    "one.template.instantiate",
    "one.template.lock",
    "one.template.rename",
    "one.template.unlock",
    "one.template.update",
    "one.templatepool.info",
    "one.user.addgroup",
    "one.user.allocate",
    "one.user.chauth",
    "one.user.chgrp",
    "one.user.delete",
    "one.user.delgroup",
    "one.user.enable",
    "one.user.info",
    "one.user.login",
    "one.user.passwd",
    "one.user.quota",
    "one.user.update",
    "one.userpool.info",
    "one.userquota.info",
    "one.userquota.update",
    "one.vdc.addcluster",
    "one.vdc.adddatastore",
    "one.vdc.addgroup",
    "one.vdc.addhost",
    "one.vdc.addvnet",
    "one.vdc.allocate",
    "one.vdc.delcluster",
    "one.vdc.deldatastore",
    "one.vdc.delete",
    "one.vdc.delgroup",
    "one.vdc.delhost",
    "one.vdc.delvnet",
    "one.vdc.info",
    "one.vdc.rename",
    "one.vdc.update",
    "one.vdcpool.info",
    "one.vm.action",
    "one.vm.allocate",
    "one.vm.attach",
    "one.vm.attachnic",
    "one.vm.attachpci",
    "one.vm.attachsg",
    "one.vm.backup",
    "one.vm.backupcancel",
    "one.vm.cancelexec",
    "one.vm.chmod",
    "one.vm.chown",
    "one.vm.deploy",
    "one.vm.detach",
    "one.vm.detachnic",
    "one.vm.detachpci",
    "one.vm.detachsg",
    "one.vm.diskresize",
    "one.vm.disksaveas",
    "one.vm.disksnapshotcreate",
    "one.vm.disksnapshotdelete",
    "one.vm.disksnapshotrename",
    "one.vm.disksnapshotrevert",
    "one.vm.exec",
    "one.vm.info",
    "one.vm.lock",
    "one.vm.migrate",
    "one.vm.monitoring",
    "one.vm.recover",
    "one.vm.rename",
    "one.vm.resize",
    "one.vm.restore",
    "one.vm.retryexec",
    "one.vm.schedadd",
    "one.vm.scheddelete",
    "one.vm.schedupdate",
    "one.vm.snapshotcreate",
    "one.vm.snapshotdelete",
    "one.vm.snapshotrevert",
    "one.vm.unlock",
    "one.vm.update",
    "one.vm.updateconf",
    "one.vm.updatenic",
    "one.vm.vmgroupadd",
    "one.vm.vmgroupdel",
    "one.vmgroup.allocate",
    "one.vmgroup.chmod",
    "one.vmgroup.chown",
    "one.vmgroup.delete",
    "one.vmgroup.info",
    "one.vmgroup.lock",
    "one.vmgroup.rename",
    "one.vmgroup.roleadd",
    "one.vmgroup.roledelete",
    "one.vmgroup.roleupdate",
    "one.vmgroup.unlock",
    "one.vmgroup.update",
    "one.vmgrouppool.info",
    "one.vmpool.accounting",
    "one.vmpool.calculateshowback",
    "one.vmpool.info",
    "one.vmpool.infoextended",
    "one.vmpool.infoset",
    "one.vmpool.monitoring",
    "one.vmpool.showback",
    "one.vn.add_ar",
    "one.vn.allocate",
    "one.vn.chmod",
    "one.vn.chown",
    "one.vn.delete",
    "one.vn.free_ar",
    "one.vn.hold",
    "one.vn.info",
    "one.vn.lock",
    "one.vn.recover",
    "one.vn.release",
    "one.vn.rename",
    "one.vn.reserve",
    "one.vn.rm_ar",
    "one.vn.unlock",
    "one.vn.update",
    "one.vn.update_ar",
    "one.vnpool.info",
    "one.vntemplate.allocate",
    "one.vntemplate.chmod",
    "one.vntemplate.chown",
    "one.vntemplate.clone",
    "one.vntemplate.delete",
    "one.vntemplate.info",
    "one.vntemplate.instantiate",
    "one.vntemplate.lock",
    "one.vntemplate.rename",
    "one.vntemplate.unlock",
    "one.vntemplate.update",
    "one.vntemplatepool.info",
    "one.vrouter.allocate",
    "one.vrouter.attachnic",
    "one.vrouter.chmod",
    "one.vrouter.chown",
    "one.vrouter.delete",
    "one.vrouter.detachnic",
    "one.vrouter.info",
    "one.vrouter.instantiate",
    "one.vrouter.lock",
    "one.vrouter.rename",
    "one.vrouter.unlock",
    "one.vrouter.update",
    "one.vrouterpool.info",
    "one.zone.addserver",
    "one.zone.allocate",
    "one.zone.delete",
    "one.zone.delserver",
    "one.zone.enable",
    "one.zone.fedreplicate",
    "one.zone.info",
    "one.zone.raftstatus",
    "one.zone.rename",
    "one.zone.replicate",
    "one.zone.resetserver",
    "one.zone.update",
    "one.zone.updatedb",
    "one.zone.voterequest",
    "one.zonepool.info",
];

/// Whether `name` is a method oned's XML-RPC server registers.
pub fn is_registered_call(name: &str) -> bool {
    REGISTERED_CALLS.binary_search(&name).is_ok()
}

/// Whether `name` is one of the 43 calls that never produce API events (§1.4).
pub fn is_unsupported_call(name: &str) -> bool {
    UNSUPPORTED_CALLS.contains(&name)
}

/// Whether oned accepts `call` as the CALL of an API hook: any `one.internal*` name, or a
/// registered method that is not on the unsupported list.
pub fn is_valid_hook_call(call: &str) -> bool {
    call.starts_with("one.internal") || (is_registered_call(call) && !is_unsupported_call(call))
}

/// The characters oned forbids in object names.
const INVALID_NAME_CHARS: &[char] = &[
    '&', '|', ':', '\\', '"', ';', '/', '\'', '#', '{', '}', '$', '<', '>', '\t', '\n', '\u{0B}',
    '\u{0C}', '\r',
];

/// oned's name check, with the texts `one.hook.rename` returns (§7.2). The name is not
/// trimmed; its length is counted in bytes.
pub fn validate_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("Invalid NAME, it cannot be empty".to_owned());
    }
    if let Some(c) = name.chars().find(|c| INVALID_NAME_CHARS.contains(c)) {
        return Err(format!("Invalid NAME, char '{c}' is not allowed"));
    }
    if name.len() > 128 {
        return Err("Invalid NAME, max length is 128 chars".to_owned());
    }
    Ok(())
}

/// The boolean oned reads from a template: true when the upper-cased value is `YES`.
fn yes(value: Option<&str>) -> bool {
    value.is_some_and(|v| v.eq_ignore_ascii_case("YES"))
}

fn yes_no(b: bool) -> &'static str {
    if b { "YES" } else { "NO" }
}

/// The STATE/LCM_STATE pair of an `ON` shortcut other than CUSTOM (§1.3).
fn on_shortcut(on: &str) -> Option<(VmState, LcmState)> {
    Some(match on {
        "PROLOG" => (VmState::Active, LcmState::Prolog),
        "RUNNING" => (VmState::Active, LcmState::Running),
        "SHUTDOWN" => (VmState::Active, LcmState::Epilog),
        "STOP" => (VmState::Stopped, LcmState::LcmInit),
        "DONE" => (VmState::Done, LcmState::LcmInit),
        "UNKNOWN" => (VmState::Active, LcmState::Unknown),
        _ => return None,
    })
}

/// IMAGE states a hook may use: every state but INIT.
fn image_hook_state(s: &str) -> Option<ImageState> {
    ImageState::from_name(s).filter(|st| *st != ImageState::Init)
}

/// NET states a hook may use: exact names, neither INIT nor UPDATE_FAILURE.
fn net_hook_state(s: &str) -> Option<NetState> {
    NetState::from_name(s).filter(|st| !matches!(st, NetState::Init | NetState::UpdateFailure))
}

/// Validates a `one.hook.allocate` template (§1.2, steps 1 and 3 to 11; step 2, the
/// authorization, is the caller's). `name_owner` returns the id of the hook that already has
/// a name. On success the template is in its stored form: NAME and TYPE removed, COMMAND and
/// CALL single, REMOTE present as YES or NO, STATE/LCM_STATE canonical, ON removed for VM
/// hooks.
pub fn validate_create(
    text: &str,
    name_owner: impl Fn(&str) -> Option<i64>,
) -> Result<NewHook, CreateError> {
    let early = |message: String| CreateError {
        message,
        id_reserved: false,
    };
    let late = |message: String| CreateError {
        message,
        id_reserved: true,
    };

    // 1. Parse.
    let mut t = Template::parse(text).map_err(|e| early(e.oned_message()))?;

    // 3. TYPE, checked on the lower-cased value.
    let type_value = t.get("TYPE").unwrap_or("").to_ascii_lowercase();
    let Some(hook_type) = HookType::from_name(&type_value) else {
        return Err(early(format!("Invalid Hook type: {type_value}")));
    };

    // 4, 5. NAME.
    let name = t.get("NAME").unwrap_or("").to_owned();
    if validate_name(&name).is_err() {
        return Err(early("Invalid name.".to_owned()));
    }
    if let Some(owner) = name_owner(&name) {
        return Err(early(format!("NAME is already taken by Hook {owner}.")));
    }

    // From here on oned has reserved an id.
    t.remove("NAME");

    // 6. COMMAND: the first value survives.
    let command = t.get("COMMAND").unwrap_or("").to_owned();
    t.remove("COMMAND");
    if command.is_empty() {
        return Err(late("No COMMAND in template for Hook.".to_owned()));
    }
    t.set("COMMAND", command);

    // REMOTE is always present, as YES or NO.
    let remote = yes(t.get("REMOTE"));
    t.set("REMOTE", yes_no(remote));

    t.remove("TYPE");

    // 8 to 10.
    match hook_type {
        HookType::Api => {
            let call = t.get("CALL").unwrap_or("").to_owned();
            t.remove("CALL");
            if !is_valid_hook_call(&call) {
                return Err(late(format!(
                    "API call does not exist or is not supported: {call}"
                )));
            }
            t.set("CALL", call);
        }
        HookType::State => {
            let resource = t.get("RESOURCE").unwrap_or("").to_owned();
            if resource.is_empty() {
                return Err(late(
                    "RESOURCE attribute is required for STATE hooks.".to_owned(),
                ));
            }
            let Some(kind) = ObjectKind::from_name(&resource) else {
                return Err(late(format!("Invalid resource type: {resource}")));
            };
            create_state_rules(kind, &mut t).map_err(late)?;
        }
    }

    // 11. The stored body must be well-formed XML.
    let hook = Hook {
        id: 0,
        name,
        hook_type,
        lock: None,
        template: t,
    };
    if hook.to_xml(None).is_err() {
        return Err(late("Error transforming the Hook to XML.".to_owned()));
    }
    Ok(NewHook {
        name: hook.name,
        hook_type: hook.hook_type,
        template: hook.template,
    })
}

/// Step 10 for state hooks: resource-specific STATE handling.
fn create_state_rules(kind: ObjectKind, t: &mut Template) -> Result<(), String> {
    match kind {
        ObjectKind::Vm => {
            let on = t.get("ON").unwrap_or("").to_ascii_uppercase();
            t.remove("ON");
            let (state, lcm) = match on_shortcut(&on) {
                Some(pair) => pair,
                None if on == "CUSTOM" => {
                    let state_value = t.get("STATE").unwrap_or("").to_ascii_uppercase();
                    let state = VmState::from_name(&state_value)
                        .ok_or_else(|| format!("Wrong STATE: {state_value}"))?;
                    let lcm_value = t.get("LCM_STATE").unwrap_or("").to_ascii_uppercase();
                    let lcm = LcmState::from_name(&lcm_value)
                        .ok_or_else(|| format!("Wrong LCM_STATE: {lcm_value}"))?;
                    (state, lcm)
                }
                None => return Err(format!("Unkown state condition: {on}")),
            };
            t.set("STATE", state.name());
            t.set("LCM_STATE", lcm.name());
        }
        ObjectKind::Host => {
            let value = t.get("STATE").unwrap_or("").to_ascii_uppercase();
            let state =
                HostState::from_name(&value).ok_or_else(|| format!("Invalid STATE: {value}"))?;
            t.set("STATE", state.name());
        }
        ObjectKind::Image => {
            let Some(value) = t.get("STATE") else {
                return Err("Hook STATE attribute not found or invalid".to_owned());
            };
            let value = value.to_ascii_uppercase();
            let state = image_hook_state(&value)
                .ok_or_else(|| format!("Invalid or unkown STATE condition: {value}"))?;
            // Events carry USED and LOCKED_USED for the persistent variants.
            t.set("STATE", state.event_name());
        }
        ObjectKind::Net => {
            let value = t.get("STATE").unwrap_or("").to_owned();
            let state = net_hook_state(&value).ok_or_else(|| format!("Invalid STATE: {value}"))?;
            t.set("STATE", state.name());
        }
    }
    Ok(())
}

/// Validates a `one.hook.update` (§1.5) and returns the template to store. The error text
/// goes after `Cannot update template. `. The type-specific checks follow the hook's stored
/// TYPE and RESOURCE, as oned's do; call [`Hook::check_loadable`] first, since oned cannot
/// even load a hook that fails it.
///
/// Deviation: oned reports success for an update whose result cannot be serialised (a value
/// containing `]]>`) and silently does not store it; this returns
/// `Error transforming the Hook to XML.` instead.
pub fn validate_update(hook: &Hook, text: &str, mode: UpdateMode) -> Result<Template, String> {
    let parsed = Template::parse(text).map_err(|e| e.oned_message())?;
    let mut t = match mode {
        UpdateMode::Replace => parsed,
        UpdateMode::Merge => {
            let mut t = hook.template.clone();
            t.merge(parsed);
            t
        }
    };

    let command = t.get("COMMAND").unwrap_or("").to_owned();
    if command.is_empty() {
        return Err("The COMMAND attribute is not defined.".to_owned());
    }
    t.set("COMMAND", command);

    // REMOTE is re-normalised only when present.
    if let Some(remote) = t.get("REMOTE") {
        let remote = yes(Some(remote));
        t.set("REMOTE", yes_no(remote));
    }

    const STATE_ERROR: &str = "The STATE attribute is not defined or it's invalid.";
    match hook.hook_type {
        HookType::Api => {
            let call = t.get("CALL").unwrap_or("").to_owned();
            if !is_valid_hook_call(&call) {
                return Err("The CALL attribute is not defined or it's invalid.".to_owned());
            }
            t.set("CALL", call);
        }
        HookType::State => {
            let stored = hook.template.get("RESOURCE").unwrap_or("");
            match ObjectKind::from_name(stored) {
                // ON is ignored on update.
                Some(ObjectKind::Vm) => {
                    let state = t
                        .get("STATE")
                        .map(str::to_ascii_uppercase)
                        .filter(|s| VmState::from_name(s).is_some());
                    let Some(state) = state else {
                        return Err(STATE_ERROR.to_owned());
                    };
                    t.set("STATE", state);
                    let lcm = t
                        .get("LCM_STATE")
                        .map(str::to_ascii_uppercase)
                        .filter(|s| LcmState::from_name(s).is_some());
                    let Some(lcm) = lcm else {
                        return Err(
                            "The LCM_STATE attribute is not defined or it's invalid.".to_owned()
                        );
                    };
                    t.set("LCM_STATE", lcm);
                }
                Some(ObjectKind::Host) => {
                    let state = t.get("STATE").unwrap_or("").to_ascii_uppercase();
                    if HostState::from_name(&state).is_none() {
                        return Err(STATE_ERROR.to_owned());
                    }
                    t.set("STATE", state);
                }
                // IMAGE and NET: STATE must be present; an invalid value is kept as given.
                Some(ObjectKind::Image) => {
                    let Some(state) = t.get("STATE").map(str::to_ascii_uppercase) else {
                        return Err(STATE_ERROR.to_owned());
                    };
                    if image_hook_state(&state).is_some() {
                        t.set("STATE", state);
                    }
                }
                Some(ObjectKind::Net) => {
                    let Some(state) = t.get("STATE").map(str::to_owned) else {
                        return Err(STATE_ERROR.to_owned());
                    };
                    if net_hook_state(&state).is_some() {
                        t.set("STATE", state);
                    }
                }
                None => return Err(format!("Invalid resource type: {stored}")),
            }
        }
    }

    let updated = Hook {
        template: t,
        ..hook.clone()
    };
    if updated.to_xml(None).is_err() {
        return Err("Error transforming the Hook to XML.".to_owned());
    }
    Ok(updated.template)
}

/// Ruby's `String#to_i`: optional leading whitespace and sign, an optional `0d` prefix, then
/// decimal digits with single underscores between them; anything else ends the number. Values
/// beyond the `i128` range saturate.
fn ruby_to_i(s: &str) -> i128 {
    let s = s.trim_start_matches(crate::template::is_c_space);
    let (negative, s) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let b = s.as_bytes();
    let mut i =
        if b.len() > 2 && b[0] == b'0' && (b[1] == b'd' || b[1] == b'D') && b[2].is_ascii_digit() {
            2
        } else {
            0
        };
    let mut n: i128 = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_digit() {
            n = n.saturating_mul(10).saturating_add(i128::from(c - b'0'));
        } else if c == b'_'
            && i > 0
            && b[i - 1].is_ascii_digit()
            && b.get(i + 1).is_some_and(u8::is_ascii_digit)
        {
            // A single underscore between digits is a separator.
        } else {
            break;
        }
        i += 1;
    }
    if negative { -n } else { n }
}

impl Hook {
    /// The first COMMAND value.
    pub fn command(&self) -> Option<&str> {
        self.template.get("COMMAND")
    }

    /// The ARGUMENTS text, empty when missing.
    pub fn arguments(&self) -> &str {
        self.template.get("ARGUMENTS").unwrap_or("")
    }

    /// Whether the arguments go to the command's stdin: ARGUMENTS_STDIN is `yes` or `true`
    /// in any case. (The reference HEM only honours `yes`, §10; `true` is documented to work
    /// and is honoured here.)
    pub fn arguments_stdin(&self) -> bool {
        self.template
            .get("ARGUMENTS_STDIN")
            .is_some_and(|v| v.eq_ignore_ascii_case("yes") || v.eq_ignore_ascii_case("true"))
    }

    /// TIMEOUT in seconds, read with Ruby `to_i` semantics; `None` (no timeout) when missing
    /// or not positive.
    pub fn timeout_secs(&self) -> Option<u64> {
        let n = ruby_to_i(self.template.get("TIMEOUT")?);
        (n > 0).then(|| u64::try_from(n).unwrap_or(u64::MAX))
    }

    /// Whether the hook runs on the host named by the event (REMOTE is `YES`, any case).
    pub fn remote(&self) -> bool {
        yes(self.template.get("REMOTE"))
    }

    pub fn resource(&self) -> Option<&str> {
        self.template.get("RESOURCE")
    }

    pub fn call(&self) -> Option<&str> {
        self.template.get("CALL")
    }

    pub fn state(&self) -> Option<&str> {
        self.template.get("STATE")
    }

    pub fn lcm_state(&self) -> Option<&str> {
        self.template.get("LCM_STATE")
    }

    /// The checks oned runs whenever it loads a hook from its stored body. A hook that fails
    /// them cannot be loaded by oned: every `one.hook.*` call on it answers NO_EXISTS (§1.5).
    pub fn check_loadable(&self) -> Result<(), String> {
        let t = &self.template;
        match self.hook_type {
            HookType::Api => {
                let call = t.get("CALL").unwrap_or("");
                if !is_valid_hook_call(call) {
                    return Err(format!(
                        "API call does not exist or is not supported: {call}"
                    ));
                }
            }
            HookType::State => {
                let resource = t.get("RESOURCE").unwrap_or("");
                if resource.is_empty() {
                    return Err("RESOURCE attribute is required for STATE hooks.".to_owned());
                }
                let state = t.get("STATE");
                match ObjectKind::from_name(resource) {
                    None => return Err(format!("Invalid resource type: {resource}")),
                    Some(ObjectKind::Vm) => {
                        let lcm = t.get("LCM_STATE").unwrap_or("");
                        if VmState::from_name(state.unwrap_or("")).is_none()
                            || LcmState::from_name(lcm).is_none()
                        {
                            return Err("Invalid VM state".to_owned());
                        }
                    }
                    Some(ObjectKind::Host) => {
                        let state = state.unwrap_or("");
                        if HostState::from_name(state).is_none() {
                            return Err(format!("Invalid STATE: {}", state.to_ascii_uppercase()));
                        }
                    }
                    Some(kind @ (ObjectKind::Image | ObjectKind::Net)) => {
                        let Some(state) = state else {
                            return Err("STATE attribute not found or invalid".to_owned());
                        };
                        let valid = match kind {
                            ObjectKind::Image => image_hook_state(state).is_some(),
                            _ => net_hook_state(state).is_some(),
                        };
                        if !valid {
                            return Err("Invalid or unknown STATE attribute".to_owned());
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// The HOOK document (§4.1): `ID`, `NAME`, `TYPE`, `LOCK` when locked, `TEMPLATE`, then
    /// `hooklog_xml` (a whole `<HOOKLOG>…</HOOKLOG>`) verbatim when given. Fails when the
    /// template or the name cannot be written as well-formed XML.
    pub fn to_xml(&self, hooklog_xml: Option<&str>) -> Result<String, TemplateError> {
        let mut out = format!("<HOOK><ID>{}</ID><NAME>", self.id);
        if let Some(c) = self.name.chars().find(|&c| !xml::is_xml_char(c)) {
            return Err(TemplateError::NotXml {
                reason: format!(
                    "the hook name contains U+{:04X}, which XML does not allow",
                    c as u32
                ),
            });
        }
        xml::escape_text(&self.name, &mut out);
        out.push_str("</NAME><TYPE>");
        out.push_str(self.hook_type.as_str());
        out.push_str("</TYPE>");
        if let Some(lock) = &self.lock {
            out.push_str(&format!(
                "<LOCK><LOCKED>{}</LOCKED><OWNER>{}</OWNER><TIME>{}</TIME><REQ_ID>{}</REQ_ID></LOCK>",
                lock.level, lock.owner, lock.time, lock.req_id
            ));
        }
        out.push_str(&self.template.to_xml()?);
        if let Some(log) = hooklog_xml {
            out.push_str(log);
        }
        out.push_str("</HOOK>");
        Ok(out)
    }

    /// Reads one `<HOOK>` document. Child order does not matter, values may be text or
    /// CDATA, and a HOOKLOG child is ignored. The template is read as oned reads stored
    /// bodies (values are not trimmed).
    pub fn from_xml(xml: &str) -> Result<Hook, HookParseError> {
        let root = xml::parse_document(xml).map_err(HookParseError::Malformed)?;
        if root.name != "HOOK" {
            return Err(HookParseError::WrongRoot {
                expected: "HOOK",
                found: root.name,
            });
        }
        hook_from_element(&root)
    }
}

fn hook_from_element(e: &Element) -> Result<Hook, HookParseError> {
    let id_text = e.child("ID").map(|c| c.text());
    let id_label = id_text.as_deref().map(str::trim).unwrap_or("?").to_owned();
    let missing = |element: &'static str| HookParseError::Missing {
        id: id_label.clone(),
        element,
    };
    let invalid = |element: &'static str, value: &str| HookParseError::Invalid {
        id: id_label.clone(),
        element,
        value: value.to_owned(),
    };
    let int = |parent: &Element, element: &'static str| -> Result<Option<i64>, HookParseError> {
        match parent.child(element) {
            None => Ok(None),
            Some(c) => {
                let text = c.text();
                text.trim()
                    .parse::<i64>()
                    .map(Some)
                    .map_err(|_| invalid(element, &text))
            }
        }
    };

    let id = int(e, "ID")?.ok_or_else(|| missing("ID"))?;
    let name = e
        .child("NAME")
        .map(|c| c.text())
        .ok_or_else(|| missing("NAME"))?;
    let type_text = e
        .child("TYPE")
        .map(|c| c.text())
        .ok_or_else(|| missing("TYPE"))?;
    let hook_type =
        HookType::from_name(type_text.trim()).ok_or_else(|| invalid("TYPE", &type_text))?;
    let lock = match e.child("LOCK") {
        None => None,
        Some(l) => {
            let level = int(l, "LOCKED")?.unwrap_or(0);
            let level = u8::try_from(level).map_err(|_| invalid("LOCKED", &level.to_string()))?;
            (level != 0)
                .then(|| -> Result<Lock, HookParseError> {
                    Ok(Lock {
                        level,
                        owner: int(l, "OWNER")?.unwrap_or(-1),
                        time: int(l, "TIME")?.unwrap_or(0),
                        req_id: int(l, "REQ_ID")?.unwrap_or(-1),
                    })
                })
                .transpose()?
        }
    };
    let template = e
        .child("TEMPLATE")
        .map(Template::from_element)
        .ok_or_else(|| missing("TEMPLATE"))?;
    Ok(Hook {
        id,
        name,
        hook_type,
        lock,
        template,
    })
}

/// The HOOK_POOL document (§4.2): the hooks in the order given, without HOOKLOG.
pub fn pool_to_xml(hooks: &[Hook]) -> Result<String, TemplateError> {
    let mut out = String::from("<HOOK_POOL>");
    for hook in hooks {
        out.push_str(&hook.to_xml(None)?);
    }
    out.push_str("</HOOK_POOL>");
    Ok(out)
}

/// Reads a HOOK_POOL document; any unreadable HOOK fails the whole document.
pub fn pool_from_xml(xml: &str) -> Result<Vec<Hook>, HookParseError> {
    let (hooks, errors) = pool_from_xml_lenient(xml)?;
    match errors.into_iter().next() {
        Some(first) => Err(first),
        None => Ok(hooks),
    }
}

/// Reads a HOOK_POOL document, keeping the readable hooks and the errors of the others, so
/// that one damaged body does not hide the rest of the pool.
pub fn pool_from_xml_lenient(
    xml: &str,
) -> Result<(Vec<Hook>, Vec<HookParseError>), HookParseError> {
    let root = xml::parse_document(xml).map_err(HookParseError::Malformed)?;
    if root.name != "HOOK_POOL" {
        return Err(HookParseError::WrongRoot {
            expected: "HOOK_POOL",
            found: root.name,
        });
    }
    let mut hooks = Vec::new();
    let mut errors = Vec::new();
    for e in root.elements().filter(|e| e.name == "HOOK") {
        match hook_from_element(e) {
            Ok(h) => hooks.push(h),
            Err(err) => errors.push(err),
        }
    }
    Ok((hooks, errors))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registered_calls_are_sorted_for_binary_search() {
        assert_eq!(REGISTERED_CALLS.len(), 307);
        assert!(REGISTERED_CALLS.windows(2).all(|w| w[0] < w[1]));
        assert!(REGISTERED_CALLS.iter().all(|c| c.starts_with("one.")));
    }

    #[test]
    fn ruby_to_i() {
        for (s, n) in [
            ("", 0),
            ("  -12x", -12),
            ("+3", 3),
            ("4_5_6", 456),
            ("4__5", 4),
            ("0D9", 9),
            ("0d", 0),
            ("\u{0B}7", 7),
        ] {
            assert_eq!(super::ruby_to_i(s), n, "{s:?}");
        }
    }
}
