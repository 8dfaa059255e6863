//! State names of VMs, hosts and images, long and short (`runn`, `poff`, `on`, `rdy`, …), as
//! the reference's OCA prints them in list tables. Names and numbers come from
//! [`one_proto::states`]; the short names are the OCA's, which only list tables print.

use one_proto::states::{HostState, ImageState, LcmState, VmAction, VmState};

use crate::timestamp::ruby_to_i;

fn number(text: &str) -> Option<u32> {
    u32::try_from(ruby_to_i(text)).ok()
}

/// The name of the state a document's number gives, or the text itself when it gives none.
fn name_or_text<S>(
    text: &str,
    from_number: fn(u32) -> Option<S>,
    name: fn(S) -> &'static str,
) -> String {
    number(text)
        .and_then(from_number)
        .map_or_else(|| text.to_string(), |s| name(s).to_string())
}

pub fn vm_state_name(state: &str) -> String {
    name_or_text(state, VmState::from_number, VmState::name)
}

pub fn lcm_state_name(lcm: &str) -> String {
    name_or_text(lcm, LcmState::from_number, LcmState::name)
}

/// The STAT cell of a VM: the short STATE, or the short LCM_STATE of an ACTIVE VM.
pub fn vm_short(state: &str, lcm: &str) -> String {
    let short = match number(state).and_then(VmState::from_number) {
        None => "",
        Some(VmState::Active) => number(lcm)
            .and_then(LcmState::from_number)
            .map_or("", lcm_short),
        Some(VmState::Init) => "init",
        Some(VmState::Pending) => "pend",
        Some(VmState::Hold) => "hold",
        Some(VmState::Stopped) => "stop",
        Some(VmState::Suspended) => "susp",
        Some(VmState::Done) => "done",
        Some(VmState::Poweroff) => "poff",
        Some(VmState::Undeployed) => "unde",
        Some(VmState::Cloning) => "clon",
        Some(VmState::CloningFailure) => "fail",
    };
    short.to_string()
}

fn lcm_short(lcm: LcmState) -> &'static str {
    use LcmState::*;
    match lcm {
        LcmInit => "",
        Prolog | PrologResume | PrologUndeploy => "prol",
        Boot | BootUnknown | BootPoweroff | BootSuspended | BootStopped | BootUndeploy
        | BootMigrate => "boot",
        Running => "runn",
        Migrate
        | PrologMigrate
        | PrologMigratePoweroff
        | PrologMigrateSuspend
        | PrologMigrateUnknown => "migr",
        SaveStop | SaveSuspend | SaveMigrate => "save",
        EpilogStop | Epilog | EpilogUndeploy => "epil",
        Shutdown | ShutdownPoweroff | ShutdownUndeploy => "shut",
        CleanupResubmit | CleanupDelete => "clea",
        Unknown => "unkn",
        Hotplug
        | HotplugNic
        | HotplugSaveas
        | HotplugSaveasPoweroff
        | HotplugSaveasSuspended
        | HotplugPrologPoweroff
        | HotplugEpilogPoweroff
        | HotplugNicPoweroff
        | HotplugResize
        | HotplugSaveasUndeployed
        | HotplugSaveasStopped => "hotp",
        HotplugSnapshot
        | DiskSnapshotPoweroff
        | DiskSnapshotRevertPoweroff
        | DiskSnapshotDeletePoweroff
        | DiskSnapshotSuspended
        | DiskSnapshotDeleteSuspended
        | DiskSnapshot
        | DiskSnapshotDelete => "snap",
        BootFailure
        | BootMigrateFailure
        | PrologMigrateFailure
        | PrologFailure
        | EpilogFailure
        | EpilogStopFailure
        | EpilogUndeployFailure
        | PrologMigratePoweroffFailure
        | PrologMigrateSuspendFailure
        | BootUndeployFailure
        | BootStoppedFailure
        | PrologResumeFailure
        | PrologUndeployFailure
        | PrologMigrateUnknownFailure => "fail",
        DiskResize | DiskResizePoweroff | DiskResizeUndeployed => "drsz",
        Backup | BackupPoweroff => "back",
        Restore => "rest",
    }
}

/// Host states oned no longer uses but the OCA still names: number, name, short name.
const RETIRED_HOST_STATES: [(u32, &str, &str); 4] = [
    (1, "MONITORING_MONITORED", "update"),
    (5, "MONITORING_ERROR", "retry"),
    (6, "MONITORING_INIT", "init"),
    (7, "MONITORING_DISABLED", "dsbl"),
];

fn retired_host_state(state: &str) -> Option<&'static (u32, &'static str, &'static str)> {
    let n = number(state)?;
    RETIRED_HOST_STATES.iter().find(|(r, _, _)| *r == n)
}

pub fn host_state_name(state: &str) -> String {
    match retired_host_state(state) {
        Some((_, name, _)) => (*name).to_string(),
        None => name_or_text(state, HostState::from_number, HostState::name),
    }
}

pub fn host_short(state: &str) -> String {
    let short = match number(state).and_then(HostState::from_number) {
        Some(HostState::Init) => "init",
        Some(HostState::Monitored) => "on",
        Some(HostState::Error) => "err",
        Some(HostState::Disabled) => "dsbl",
        Some(HostState::Offline) => "off",
        None => retired_host_state(state).map_or("", |(_, _, short)| short),
    };
    short.to_string()
}

pub fn image_state_name(state: &str) -> String {
    name_or_text(state, ImageState::from_number, ImageState::name)
}

pub fn image_short(state: &str) -> String {
    let short = match number(state).and_then(ImageState::from_number) {
        None => "",
        Some(ImageState::Init) => "init",
        Some(ImageState::Ready) => "rdy",
        Some(ImageState::Used | ImageState::UsedPers) => "used",
        Some(ImageState::Disabled) => "disa",
        Some(ImageState::Locked | ImageState::LockedUsed | ImageState::LockedUsedPers) => "lock",
        Some(ImageState::Error) => "err",
        Some(ImageState::Clone) => "clon",
        Some(ImageState::Delete) => "dele",
    };
    short.to_string()
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

fn image_type(t: &str) -> Option<&'static (&'static str, &'static str)> {
    usize::try_from(ruby_to_i(t))
        .ok()
        .and_then(|i| IMAGE_TYPES.get(i))
}

pub fn image_type_name(t: &str) -> String {
    image_type(t).map_or_else(|| t.to_string(), |(name, _)| (*name).to_string())
}

pub fn image_type_short(t: &str) -> String {
    image_type(t).map_or_else(|| t.to_string(), |(_, short)| (*short).to_string())
}

/// A history ACTION's name as the OCA prints it: oned's name, except for 37, which the OCA's
/// HISTORY_ACTION list spells `snapshot-resize`.
pub fn history_action(action: &str) -> String {
    match number(action).and_then(VmAction::from_number) {
        Some(VmAction::SnapshotCreate) => "snapshot-resize".to_string(),
        Some(known) => known.name().to_string(),
        None => action.to_string(),
    }
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
