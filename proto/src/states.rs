//! State names and numbers of the objects that produce state events (reference §3).
//!
//! Object XML bodies carry state numbers; hook templates, `HOOK_MESSAGE/STATE` and the event
//! keys carry names. Every enum converts both ways. Name lookups are case-insensitive
//! (ASCII), except for [`NetState`], whose names the reference compares case-sensitively.
//! [`VmAction`], the ACTION of a VM history record, is read from the same bodies.

use std::fmt;

/// Defines a state enum with its canonical names and numbers, and the four conversions.
macro_rules! state_enum {
    (
        $(#[$meta:meta])*
        $name:ident, case_sensitive = $case:expr, {
            $( $(#[$vmeta:meta])* $variant:ident = $num:literal => $text:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $( $(#[$vmeta])* $variant = $num, )+
        }

        impl $name {
            /// Every state, in number order.
            pub const ALL: &'static [$name] = &[ $( $name::$variant, )+ ];

            /// The canonical upper-case name.
            pub fn name(self) -> &'static str {
                match self {
                    $( $name::$variant => $text, )+
                }
            }

            /// The number carried in object XML bodies.
            pub fn number(self) -> u32 {
                self as u32
            }

            /// The state with this number; `None` for unknown or retired numbers.
            pub fn from_number(number: u32) -> Option<Self> {
                match number {
                    $( $num => Some($name::$variant), )+
                    _ => None,
                }
            }

            /// The state with this name.
            pub fn from_name(name: &str) -> Option<Self> {
                let case_sensitive: bool = $case;
                Self::ALL.iter().copied().find(|state| {
                    if case_sensitive {
                        state.name() == name
                    } else {
                        state.name().eq_ignore_ascii_case(name)
                    }
                })
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}

state_enum! {
    /// VM STATE (§3.1). Number 7 (FAILED) is retired.
    VmState, case_sensitive = false, {
        Init = 0 => "INIT",
        Pending = 1 => "PENDING",
        Hold = 2 => "HOLD",
        Active = 3 => "ACTIVE",
        Stopped = 4 => "STOPPED",
        Suspended = 5 => "SUSPENDED",
        Done = 6 => "DONE",
        Poweroff = 8 => "POWEROFF",
        Undeployed = 9 => "UNDEPLOYED",
        Cloning = 10 => "CLONING",
        CloningFailure = 11 => "CLONING_FAILURE",
    }
}

state_enum! {
    /// VM LCM_STATE (§3.2). Numbers 13, 14, 55 and 58 are retired.
    LcmState, case_sensitive = false, {
        LcmInit = 0 => "LCM_INIT",
        Prolog = 1 => "PROLOG",
        Boot = 2 => "BOOT",
        Running = 3 => "RUNNING",
        Migrate = 4 => "MIGRATE",
        SaveStop = 5 => "SAVE_STOP",
        SaveSuspend = 6 => "SAVE_SUSPEND",
        SaveMigrate = 7 => "SAVE_MIGRATE",
        PrologMigrate = 8 => "PROLOG_MIGRATE",
        PrologResume = 9 => "PROLOG_RESUME",
        EpilogStop = 10 => "EPILOG_STOP",
        Epilog = 11 => "EPILOG",
        Shutdown = 12 => "SHUTDOWN",
        CleanupResubmit = 15 => "CLEANUP_RESUBMIT",
        Unknown = 16 => "UNKNOWN",
        Hotplug = 17 => "HOTPLUG",
        ShutdownPoweroff = 18 => "SHUTDOWN_POWEROFF",
        BootUnknown = 19 => "BOOT_UNKNOWN",
        BootPoweroff = 20 => "BOOT_POWEROFF",
        BootSuspended = 21 => "BOOT_SUSPENDED",
        BootStopped = 22 => "BOOT_STOPPED",
        CleanupDelete = 23 => "CLEANUP_DELETE",
        HotplugSnapshot = 24 => "HOTPLUG_SNAPSHOT",
        HotplugNic = 25 => "HOTPLUG_NIC",
        HotplugSaveas = 26 => "HOTPLUG_SAVEAS",
        HotplugSaveasPoweroff = 27 => "HOTPLUG_SAVEAS_POWEROFF",
        HotplugSaveasSuspended = 28 => "HOTPLUG_SAVEAS_SUSPENDED",
        ShutdownUndeploy = 29 => "SHUTDOWN_UNDEPLOY",
        EpilogUndeploy = 30 => "EPILOG_UNDEPLOY",
        PrologUndeploy = 31 => "PROLOG_UNDEPLOY",
        BootUndeploy = 32 => "BOOT_UNDEPLOY",
        HotplugPrologPoweroff = 33 => "HOTPLUG_PROLOG_POWEROFF",
        HotplugEpilogPoweroff = 34 => "HOTPLUG_EPILOG_POWEROFF",
        BootMigrate = 35 => "BOOT_MIGRATE",
        BootFailure = 36 => "BOOT_FAILURE",
        BootMigrateFailure = 37 => "BOOT_MIGRATE_FAILURE",
        PrologMigrateFailure = 38 => "PROLOG_MIGRATE_FAILURE",
        PrologFailure = 39 => "PROLOG_FAILURE",
        EpilogFailure = 40 => "EPILOG_FAILURE",
        EpilogStopFailure = 41 => "EPILOG_STOP_FAILURE",
        EpilogUndeployFailure = 42 => "EPILOG_UNDEPLOY_FAILURE",
        PrologMigratePoweroff = 43 => "PROLOG_MIGRATE_POWEROFF",
        PrologMigratePoweroffFailure = 44 => "PROLOG_MIGRATE_POWEROFF_FAILURE",
        PrologMigrateSuspend = 45 => "PROLOG_MIGRATE_SUSPEND",
        PrologMigrateSuspendFailure = 46 => "PROLOG_MIGRATE_SUSPEND_FAILURE",
        BootUndeployFailure = 47 => "BOOT_UNDEPLOY_FAILURE",
        BootStoppedFailure = 48 => "BOOT_STOPPED_FAILURE",
        PrologResumeFailure = 49 => "PROLOG_RESUME_FAILURE",
        PrologUndeployFailure = 50 => "PROLOG_UNDEPLOY_FAILURE",
        DiskSnapshotPoweroff = 51 => "DISK_SNAPSHOT_POWEROFF",
        DiskSnapshotRevertPoweroff = 52 => "DISK_SNAPSHOT_REVERT_POWEROFF",
        DiskSnapshotDeletePoweroff = 53 => "DISK_SNAPSHOT_DELETE_POWEROFF",
        DiskSnapshotSuspended = 54 => "DISK_SNAPSHOT_SUSPENDED",
        DiskSnapshotDeleteSuspended = 56 => "DISK_SNAPSHOT_DELETE_SUSPENDED",
        DiskSnapshot = 57 => "DISK_SNAPSHOT",
        DiskSnapshotDelete = 59 => "DISK_SNAPSHOT_DELETE",
        PrologMigrateUnknown = 60 => "PROLOG_MIGRATE_UNKNOWN",
        PrologMigrateUnknownFailure = 61 => "PROLOG_MIGRATE_UNKNOWN_FAILURE",
        DiskResize = 62 => "DISK_RESIZE",
        DiskResizePoweroff = 63 => "DISK_RESIZE_POWEROFF",
        DiskResizeUndeployed = 64 => "DISK_RESIZE_UNDEPLOYED",
        HotplugNicPoweroff = 65 => "HOTPLUG_NIC_POWEROFF",
        HotplugResize = 66 => "HOTPLUG_RESIZE",
        HotplugSaveasUndeployed = 67 => "HOTPLUG_SAVEAS_UNDEPLOYED",
        HotplugSaveasStopped = 68 => "HOTPLUG_SAVEAS_STOPPED",
        Backup = 69 => "BACKUP",
        BackupPoweroff = 70 => "BACKUP_POWEROFF",
        Restore = 71 => "RESTORE",
    }
}

state_enum! {
    /// HOST STATE (§3.3). Numbers 1, 5, 6 and 7 are retired.
    HostState, case_sensitive = false, {
        Init = 0 => "INIT",
        Monitored = 2 => "MONITORED",
        Error = 3 => "ERROR",
        Disabled = 4 => "DISABLED",
        Offline = 8 => "OFFLINE",
    }
}

state_enum! {
    /// IMAGE STATE (§3.3). See [`ImageState::event_name`] for the names events carry.
    ImageState, case_sensitive = false, {
        Init = 0 => "INIT",
        Ready = 1 => "READY",
        Used = 2 => "USED",
        Disabled = 3 => "DISABLED",
        Locked = 4 => "LOCKED",
        Error = 5 => "ERROR",
        Clone = 6 => "CLONE",
        Delete = 7 => "DELETE",
        UsedPers = 8 => "USED_PERS",
        LockedUsed = 9 => "LOCKED_USED",
        LockedUsedPers = 10 => "LOCKED_USED_PERS",
    }
}

state_enum! {
    /// Virtual network STATE (§3.3). Names are matched case-sensitively.
    NetState, case_sensitive = true, {
        Init = 0 => "INIT",
        Ready = 1 => "READY",
        LockCreate = 2 => "LOCK_CREATE",
        LockDelete = 3 => "LOCK_DELETE",
        Done = 4 => "DONE",
        Error = 5 => "ERROR",
        UpdateFailure = 6 => "UPDATE_FAILURE",
    }
}

state_enum! {
    /// The ACTION of a VM history record (`HISTORY_RECORDS/HISTORY/ACTION` in VM bodies): what
    /// last acted on the VM, with oned's names for the actions. Names are matched
    /// case-sensitively, as oned does.
    VmAction, case_sensitive = true, {
        None = 0 => "none",
        Migrate = 1 => "migrate",
        LiveMigrate = 2 => "live-migrate",
        Shutdown = 3 => "shutdown",
        ShutdownHard = 4 => "shutdown-hard",
        Undeploy = 5 => "undeploy",
        UndeployHard = 6 => "undeploy-hard",
        Hold = 7 => "hold",
        Release = 8 => "release",
        Stop = 9 => "stop",
        Suspend = 10 => "suspend",
        Resume = 11 => "resume",
        Boot = 12 => "boot",
        Delete = 13 => "delete",
        DeleteRecreate = 14 => "delete-recreate",
        Reboot = 15 => "reboot",
        RebootHard = 16 => "reboot-hard",
        Resched = 17 => "resched",
        Unresched = 18 => "unresched",
        Poweroff = 19 => "poweroff",
        PoweroffHard = 20 => "poweroff-hard",
        DiskAttach = 21 => "disk-attach",
        DiskDetach = 22 => "disk-detach",
        NicAttach = 23 => "nic-attach",
        NicDetach = 24 => "nic-detach",
        DiskSnapshotCreate = 25 => "disk-snapshot-create",
        DiskSnapshotDelete = 26 => "disk-snapshot-delete",
        Terminate = 27 => "terminate",
        TerminateHard = 28 => "terminate-hard",
        DiskResize = 29 => "disk-resize",
        Deploy = 30 => "deploy",
        Chown = 31 => "chown",
        Chmod = 32 => "chmod",
        Updateconf = 33 => "updateconf",
        Rename = 34 => "rename",
        Resize = 35 => "resize",
        Update = 36 => "update",
        SnapshotCreate = 37 => "snapshot-create",
        SnapshotDelete = 38 => "snapshot-delete",
        SnapshotRevert = 39 => "snapshot-revert",
        DiskSaveas = 40 => "disk-saveas",
        DiskSnapshotRevert = 41 => "disk-snapshot-revert",
        Recover = 42 => "recover",
        Retry = 43 => "retry",
        /// Set by the monitor, e.g. when it finds a VM powered off after its host rebooted.
        Monitor = 44 => "monitor",
        DiskSnapshotRename = 45 => "disk-snapshot-rename",
        AliasAttach = 46 => "alias-attach",
        AliasDetach = 47 => "alias-detach",
        PoweroffMigrate = 48 => "poweroff-migrate",
        PoweroffHardMigrate = 49 => "poweroff-hard-migrate",
        Backup = 50 => "backup",
        NicUpdate = 51 => "nic-update",
        BackupCancel = 52 => "backup-cancel",
        SchedAdd = 53 => "sched-add",
        SchedUpdate = 54 => "sched-update",
        SchedDelete = 55 => "sched-delete",
        SgAttach = 56 => "sg-attach",
        SgDetach = 57 => "sg-detach",
        PciAttach = 58 => "pci-attach",
        PciDetach = 59 => "pci-detach",
        Restore = 60 => "restore",
        Exec = 61 => "exec",
        ExecRetry = 62 => "exec-retry",
        ExecCancel = 63 => "exec-cancel",
    }
}

impl ImageState {
    /// The name a state event carries: oned folds the persistent variants into their
    /// non-persistent names (`USED_PERS` -> `USED`, `LOCKED_USED_PERS` -> `LOCKED_USED`).
    pub fn event_name(self) -> &'static str {
        match self {
            ImageState::UsedPers => ImageState::Used.name(),
            ImageState::LockedUsedPers => ImageState::LockedUsed.name(),
            other => other.name(),
        }
    }
}

impl NetState {
    /// The name a state event carries: oned has no name for `UPDATE_FAILURE` and sends the
    /// empty string.
    pub fn event_name(self) -> &'static str {
        match self {
            NetState::UpdateFailure => "",
            other => other.name(),
        }
    }
}

/// The kinds of object that produce state events.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ObjectKind {
    Vm,
    Host,
    Image,
    Net,
}

impl ObjectKind {
    /// Every kind.
    pub const ALL: &'static [ObjectKind] = &[
        ObjectKind::Vm,
        ObjectKind::Host,
        ObjectKind::Image,
        ObjectKind::Net,
    ];

    /// The name used in `HOOK_OBJECT`, in hook `RESOURCE` attributes and in event keys.
    pub fn name(self) -> &'static str {
        match self {
            ObjectKind::Vm => "VM",
            ObjectKind::Host => "HOST",
            ObjectKind::Image => "IMAGE",
            ObjectKind::Net => "NET",
        }
    }

    /// The root element of the object's XML body (a NET event embeds a `<VNET>`).
    pub fn body_root(self) -> &'static str {
        match self {
            ObjectKind::Vm => "VM",
            ObjectKind::Host => "HOST",
            ObjectKind::Image => "IMAGE",
            ObjectKind::Net => "VNET",
        }
    }

    /// The kind with this exact (case-sensitive) name, as oned matches hook `RESOURCE`
    /// values: `VNET` and `vm` are not kinds.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|kind| kind.name() == name)
    }
}

impl fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_names_round_trip() {
        for s in VmState::ALL {
            assert_eq!(VmState::from_number(s.number()), Some(*s));
            assert_eq!(VmState::from_name(s.name()), Some(*s));
        }
        for s in LcmState::ALL {
            assert_eq!(LcmState::from_number(s.number()), Some(*s));
            assert_eq!(
                LcmState::from_name(&s.name().to_ascii_lowercase()),
                Some(*s)
            );
        }
        assert_eq!(LcmState::ALL.len(), 68);
        for s in HostState::ALL {
            assert_eq!(HostState::from_number(s.number()), Some(*s));
        }
        for s in ImageState::ALL {
            assert_eq!(ImageState::from_number(s.number()), Some(*s));
        }
        for s in NetState::ALL {
            assert_eq!(NetState::from_name(s.name()), Some(*s));
        }
    }

    #[test]
    fn retired_numbers_are_unknown() {
        assert_eq!(VmState::from_number(7), None);
        for n in [13, 14, 55, 58, 72] {
            assert_eq!(LcmState::from_number(n), None);
        }
        for n in [1, 5, 6, 7, 9] {
            assert_eq!(HostState::from_number(n), None);
        }
        assert_eq!(ImageState::from_number(11), None);
        assert_eq!(NetState::from_number(7), None);
    }

    #[test]
    fn case_rules() {
        assert_eq!(VmState::from_name("poweroff"), Some(VmState::Poweroff));
        assert_eq!(
            HostState::from_name("Monitored"),
            Some(HostState::Monitored)
        );
        assert_eq!(
            ImageState::from_name("used_pers"),
            Some(ImageState::UsedPers)
        );
        assert_eq!(NetState::from_name("ready"), None);
        assert_eq!(NetState::from_name("READY"), Some(NetState::Ready));
        assert_eq!(ObjectKind::from_name("VNET"), None);
        assert_eq!(ObjectKind::from_name("vm"), None);
        assert_eq!(ObjectKind::from_name("NET"), Some(ObjectKind::Net));
    }

    #[test]
    fn vm_actions() {
        for (n, a) in VmAction::ALL.iter().enumerate() {
            assert_eq!(usize::try_from(a.number()).ok(), Some(n));
            assert_eq!(VmAction::from_name(a.name()), Some(*a));
        }
        assert_eq!(VmAction::ALL.len(), 64);
        assert_eq!(VmAction::from_number(44), Some(VmAction::Monitor));
        assert_eq!(VmAction::Monitor.name(), "monitor");
        assert_eq!(VmAction::SnapshotCreate.name(), "snapshot-create");
        assert_eq!(VmAction::from_number(64), None);
        assert_eq!(VmAction::from_name("MONITOR"), None);
    }

    #[test]
    fn event_names() {
        assert_eq!(ImageState::UsedPers.event_name(), "USED");
        assert_eq!(ImageState::LockedUsedPers.event_name(), "LOCKED_USED");
        assert_eq!(ImageState::Ready.event_name(), "READY");
        assert_eq!(NetState::UpdateFailure.event_name(), "");
        assert_eq!(NetState::LockCreate.event_name(), "LOCK_CREATE");
        assert_eq!(ObjectKind::Net.body_root(), "VNET");
    }
}
