//! State names of VMs, hosts and images, long and short (`runn`, `poff`, `on`, `rdy`, …), as
//! the reference's OCA prints them in list tables.

use one_proto::states::{HostState, ImageState, LcmState, VmState};

use crate::timestamp::ruby_to_i;

fn number(text: &str) -> Option<u32> {
    u32::try_from(ruby_to_i(text)).ok()
}

pub fn vm_state_name(state: &str) -> String {
    number(state)
        .and_then(VmState::from_number)
        .map(|s| s.name().to_string())
        .unwrap_or_else(|| state.to_string())
}

pub fn lcm_state_name(lcm: &str) -> String {
    number(lcm)
        .and_then(LcmState::from_number)
        .map(|s| s.name().to_string())
        .unwrap_or_else(|| lcm.to_string())
}

/// The STAT cell of a VM: the short STATE, or the short LCM_STATE of an ACTIVE VM.
pub fn vm_short(state: &str, lcm: &str) -> String {
    let state = vm_state_name(state);
    if state == "ACTIVE" {
        return lcm_short(&lcm_state_name(lcm)).to_string();
    }
    match state.as_str() {
        "INIT" => "init",
        "PENDING" => "pend",
        "HOLD" => "hold",
        "STOPPED" => "stop",
        "SUSPENDED" => "susp",
        "DONE" => "done",
        "FAILED" => "fail",
        "POWEROFF" => "poff",
        "UNDEPLOYED" => "unde",
        "CLONING" => "clon",
        "CLONING_FAILURE" => "fail",
        _ => "",
    }
    .to_string()
}

fn lcm_short(lcm: &str) -> &'static str {
    match lcm {
        "PROLOG" | "PROLOG_RESUME" | "PROLOG_UNDEPLOY" => "prol",
        "BOOT" | "BOOT_UNKNOWN" | "BOOT_POWEROFF" | "BOOT_SUSPENDED" | "BOOT_STOPPED"
        | "BOOT_UNDEPLOY" | "BOOT_MIGRATE" => "boot",
        "RUNNING" => "runn",
        "MIGRATE"
        | "PROLOG_MIGRATE"
        | "PROLOG_MIGRATE_POWEROFF"
        | "PROLOG_MIGRATE_SUSPEND"
        | "PROLOG_MIGRATE_UNKNOWN" => "migr",
        "SAVE_STOP" | "SAVE_SUSPEND" | "SAVE_MIGRATE" => "save",
        "EPILOG_STOP" | "EPILOG" | "EPILOG_UNDEPLOY" => "epil",
        "SHUTDOWN" | "CANCEL" | "SHUTDOWN_POWEROFF" | "SHUTDOWN_UNDEPLOY" => "shut",
        "CLEANUP_RESUBMIT" | "CLEANUP_DELETE" => "clea",
        "UNKNOWN" => "unkn",
        "HOTPLUG"
        | "HOTPLUG_NIC"
        | "HOTPLUG_SAVEAS"
        | "HOTPLUG_SAVEAS_POWEROFF"
        | "HOTPLUG_SAVEAS_SUSPENDED"
        | "HOTPLUG_PROLOG_POWEROFF"
        | "HOTPLUG_EPILOG_POWEROFF"
        | "HOTPLUG_NIC_POWEROFF"
        | "HOTPLUG_RESIZE"
        | "HOTPLUG_SAVEAS_UNDEPLOYED"
        | "HOTPLUG_SAVEAS_STOPPED" => "hotp",
        "HOTPLUG_SNAPSHOT"
        | "DISK_SNAPSHOT_POWEROFF"
        | "DISK_SNAPSHOT_REVERT_POWEROFF"
        | "DISK_SNAPSHOT_DELETE_POWEROFF"
        | "DISK_SNAPSHOT_SUSPENDED"
        | "DISK_SNAPSHOT_REVERT_SUSPENDED"
        | "DISK_SNAPSHOT_DELETE_SUSPENDED"
        | "DISK_SNAPSHOT"
        | "DISK_SNAPSHOT_DELETE" => "snap",
        "FAILURE"
        | "BOOT_FAILURE"
        | "BOOT_MIGRATE_FAILURE"
        | "PROLOG_MIGRATE_FAILURE"
        | "PROLOG_FAILURE"
        | "EPILOG_FAILURE"
        | "EPILOG_STOP_FAILURE"
        | "EPILOG_UNDEPLOY_FAILURE"
        | "PROLOG_MIGRATE_POWEROFF_FAILURE"
        | "PROLOG_MIGRATE_SUSPEND_FAILURE"
        | "BOOT_UNDEPLOY_FAILURE"
        | "BOOT_STOPPED_FAILURE"
        | "PROLOG_RESUME_FAILURE"
        | "PROLOG_UNDEPLOY_FAILURE"
        | "PROLOG_MIGRATE_UNKNOWN_FAILURE" => "fail",
        "DISK_RESIZE" | "DISK_RESIZE_POWEROFF" | "DISK_RESIZE_UNDEPLOYED" => "drsz",
        "BACKUP" | "BACKUP_POWEROFF" => "back",
        "RESTORE" => "rest",
        _ => "",
    }
}

pub fn host_state_name(state: &str) -> String {
    match number(state) {
        Some(1) => "MONITORING_MONITORED".to_string(),
        Some(5) => "MONITORING_ERROR".to_string(),
        Some(6) => "MONITORING_INIT".to_string(),
        Some(7) => "MONITORING_DISABLED".to_string(),
        n => n
            .and_then(HostState::from_number)
            .map(|s| s.name().to_string())
            .unwrap_or_else(|| state.to_string()),
    }
}

pub fn host_short(state: &str) -> String {
    match host_state_name(state).as_str() {
        "INIT" | "MONITORING_INIT" => "init",
        "MONITORING_MONITORED" => "update",
        "MONITORED" => "on",
        "ERROR" => "err",
        "DISABLED" | "MONITORING_DISABLED" => "dsbl",
        "MONITORING_ERROR" => "retry",
        "OFFLINE" => "off",
        _ => "",
    }
    .to_string()
}

pub fn image_state_name(state: &str) -> String {
    number(state)
        .and_then(ImageState::from_number)
        .map(|s| s.name().to_string())
        .unwrap_or_else(|| state.to_string())
}

pub fn image_short(state: &str) -> String {
    match image_state_name(state).as_str() {
        "INIT" => "init",
        "READY" => "rdy",
        "USED" | "USED_PERS" => "used",
        "DISABLED" => "disa",
        "LOCKED" | "LOCKED_USED" | "LOCKED_USED_PERS" => "lock",
        "ERROR" => "err",
        "CLONE" => "clon",
        "DELETE" => "dele",
        _ => "",
    }
    .to_string()
}

/// Image TYPE numbers: names and the short names of the list table.
const IMAGE_TYPES: [(&str, &str); 8] = [
    ("OS", "OS"),
    ("CDROM", "CD"),
    ("DATABLOCK", "DB"),
    ("KERNEL", "KL"),
    ("RAMDISK", "RD"),
    ("CONTEXT", "CX"),
    ("BACKUP", "BK"),
    ("FILESYSTEM", "FS"),
];

pub fn image_type_name(t: &str) -> String {
    usize::try_from(ruby_to_i(t))
        .ok()
        .and_then(|i| IMAGE_TYPES.get(i))
        .map(|(n, _)| (*n).to_string())
        .unwrap_or_else(|| t.to_string())
}

pub fn image_type_short(t: &str) -> String {
    usize::try_from(ruby_to_i(t))
        .ok()
        .and_then(|i| IMAGE_TYPES.get(i))
        .map(|(_, s)| (*s).to_string())
        .unwrap_or_else(|| t.to_string())
}

/// History ACTION numbers (the OCA's HISTORY_ACTION list).
const HISTORY_ACTIONS: [&str; 65] = [
    "none",
    "migrate",
    "live-migrate",
    "shutdown",
    "shutdown-hard",
    "undeploy",
    "undeploy-hard",
    "hold",
    "release",
    "stop",
    "suspend",
    "resume",
    "boot",
    "delete",
    "delete-recreate",
    "reboot",
    "reboot-hard",
    "resched",
    "unresched",
    "poweroff",
    "poweroff-hard",
    "disk-attach",
    "disk-detach",
    "nic-attach",
    "nic-detach",
    "disk-snapshot-create",
    "disk-snapshot-delete",
    "terminate",
    "terminate-hard",
    "disk-resize",
    "deploy",
    "chown",
    "chmod",
    "updateconf",
    "rename",
    "resize",
    "update",
    "snapshot-resize",
    "snapshot-delete",
    "snapshot-revert",
    "disk-saveas",
    "disk-snapshot-revert",
    "recover",
    "retry",
    "monitor",
    "disk-snapshot-rename",
    "alias-attach",
    "alias-detach",
    "poweroff-migrate",
    "poweroff-hard-migrate",
    "backup",
    "nic-update",
    "backup-cancel",
    "sched-add",
    "sched-update",
    "sched-delete",
    "sg-attach",
    "sg-detach",
    "pci-attach",
    "pci-detach",
    "restore",
    "exec",
    "exec-retry",
    "exec-cancel",
    "",
];

pub fn history_action(action: &str) -> String {
    usize::try_from(ruby_to_i(action))
        .ok()
        .and_then(|i| HISTORY_ACTIONS.get(i))
        .filter(|a| !a.is_empty())
        .map(|a| (*a).to_string())
        .unwrap_or_else(|| action.to_string())
}

/// A LOCK/LOCKED level's name: `None` without a lock, `-` for an unknown level.
pub fn lock_level(locked: Option<&str>) -> &'static str {
    match ruby_to_i(locked.unwrap_or("")) {
        0 => "None",
        1 => "Use",
        2 => "Manage",
        3 => "Admin",
        4 => "All",
        _ => "-",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names() {
        assert_eq!(vm_short("1", "0"), "pend");
        assert_eq!(vm_short("3", "3"), "runn");
        assert_eq!(vm_short("3", "1"), "prol");
        assert_eq!(vm_short("3", "16"), "unkn");
        assert_eq!(vm_short("8", "0"), "poff");
        assert_eq!(vm_short("6", "0"), "done");
        assert_eq!(host_short("2"), "on");
        assert_eq!(host_short("3"), "err");
        assert_eq!(image_short("1"), "rdy");
        assert_eq!(image_type_short("2"), "DB");
        assert_eq!(history_action("44"), "monitor");
        assert_eq!(history_action("99"), "99");
    }
}
