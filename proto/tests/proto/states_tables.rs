//! The state tables of reference §3, entry by entry.

use one_proto::states::{HostState, ImageState, LcmState, NetState, ObjectKind, VmState};

const VM: &[(u32, &str)] = &[
    (0, "INIT"),
    (1, "PENDING"),
    (2, "HOLD"),
    (3, "ACTIVE"),
    (4, "STOPPED"),
    (5, "SUSPENDED"),
    (6, "DONE"),
    (8, "POWEROFF"),
    (9, "UNDEPLOYED"),
    (10, "CLONING"),
    (11, "CLONING_FAILURE"),
];

const LCM: &[(u32, &str)] = &[
    (0, "LCM_INIT"),
    (1, "PROLOG"),
    (2, "BOOT"),
    (3, "RUNNING"),
    (4, "MIGRATE"),
    (5, "SAVE_STOP"),
    (6, "SAVE_SUSPEND"),
    (7, "SAVE_MIGRATE"),
    (8, "PROLOG_MIGRATE"),
    (9, "PROLOG_RESUME"),
    (10, "EPILOG_STOP"),
    (11, "EPILOG"),
    (12, "SHUTDOWN"),
    (15, "CLEANUP_RESUBMIT"),
    (16, "UNKNOWN"),
    (17, "HOTPLUG"),
    (18, "SHUTDOWN_POWEROFF"),
    (19, "BOOT_UNKNOWN"),
    (20, "BOOT_POWEROFF"),
    (21, "BOOT_SUSPENDED"),
    (22, "BOOT_STOPPED"),
    (23, "CLEANUP_DELETE"),
    (24, "HOTPLUG_SNAPSHOT"),
    (25, "HOTPLUG_NIC"),
    (26, "HOTPLUG_SAVEAS"),
    (27, "HOTPLUG_SAVEAS_POWEROFF"),
    (28, "HOTPLUG_SAVEAS_SUSPENDED"),
    (29, "SHUTDOWN_UNDEPLOY"),
    (30, "EPILOG_UNDEPLOY"),
    (31, "PROLOG_UNDEPLOY"),
    (32, "BOOT_UNDEPLOY"),
    (33, "HOTPLUG_PROLOG_POWEROFF"),
    (34, "HOTPLUG_EPILOG_POWEROFF"),
    (35, "BOOT_MIGRATE"),
    (36, "BOOT_FAILURE"),
    (37, "BOOT_MIGRATE_FAILURE"),
    (38, "PROLOG_MIGRATE_FAILURE"),
    (39, "PROLOG_FAILURE"),
    (40, "EPILOG_FAILURE"),
    (41, "EPILOG_STOP_FAILURE"),
    (42, "EPILOG_UNDEPLOY_FAILURE"),
    (43, "PROLOG_MIGRATE_POWEROFF"),
    (44, "PROLOG_MIGRATE_POWEROFF_FAILURE"),
    (45, "PROLOG_MIGRATE_SUSPEND"),
    (46, "PROLOG_MIGRATE_SUSPEND_FAILURE"),
    (47, "BOOT_UNDEPLOY_FAILURE"),
    (48, "BOOT_STOPPED_FAILURE"),
    (49, "PROLOG_RESUME_FAILURE"),
    (50, "PROLOG_UNDEPLOY_FAILURE"),
    (51, "DISK_SNAPSHOT_POWEROFF"),
    (52, "DISK_SNAPSHOT_REVERT_POWEROFF"),
    (53, "DISK_SNAPSHOT_DELETE_POWEROFF"),
    (54, "DISK_SNAPSHOT_SUSPENDED"),
    (56, "DISK_SNAPSHOT_DELETE_SUSPENDED"),
    (57, "DISK_SNAPSHOT"),
    (59, "DISK_SNAPSHOT_DELETE"),
    (60, "PROLOG_MIGRATE_UNKNOWN"),
    (61, "PROLOG_MIGRATE_UNKNOWN_FAILURE"),
    (62, "DISK_RESIZE"),
    (63, "DISK_RESIZE_POWEROFF"),
    (64, "DISK_RESIZE_UNDEPLOYED"),
    (65, "HOTPLUG_NIC_POWEROFF"),
    (66, "HOTPLUG_RESIZE"),
    (67, "HOTPLUG_SAVEAS_UNDEPLOYED"),
    (68, "HOTPLUG_SAVEAS_STOPPED"),
    (69, "BACKUP"),
    (70, "BACKUP_POWEROFF"),
    (71, "RESTORE"),
];

const HOST: &[(u32, &str)] = &[
    (0, "INIT"),
    (2, "MONITORED"),
    (3, "ERROR"),
    (4, "DISABLED"),
    (8, "OFFLINE"),
];

/// (number, name, name in events)
const IMAGE: &[(u32, &str, &str)] = &[
    (0, "INIT", "INIT"),
    (1, "READY", "READY"),
    (2, "USED", "USED"),
    (3, "DISABLED", "DISABLED"),
    (4, "LOCKED", "LOCKED"),
    (5, "ERROR", "ERROR"),
    (6, "CLONE", "CLONE"),
    (7, "DELETE", "DELETE"),
    (8, "USED_PERS", "USED"),
    (9, "LOCKED_USED", "LOCKED_USED"),
    (10, "LOCKED_USED_PERS", "LOCKED_USED"),
];

const NET: &[(u32, &str, &str)] = &[
    (0, "INIT", "INIT"),
    (1, "READY", "READY"),
    (2, "LOCK_CREATE", "LOCK_CREATE"),
    (3, "LOCK_DELETE", "LOCK_DELETE"),
    (4, "DONE", "DONE"),
    (5, "ERROR", "ERROR"),
    (6, "UPDATE_FAILURE", ""),
];

#[test]
fn vm_states() {
    assert_eq!(VmState::ALL.len(), VM.len());
    for &(n, name) in VM {
        let s = VmState::from_number(n).unwrap();
        assert_eq!((s.name(), s.number()), (name, n));
        assert_eq!(VmState::from_name(&name.to_ascii_lowercase()), Some(s));
    }
    assert_eq!(VmState::from_number(7), None);
    assert_eq!(VmState::from_name("FAILED"), None);
}

#[test]
fn lcm_states() {
    assert_eq!(LcmState::ALL.len(), 68);
    assert_eq!(LcmState::ALL.len(), LCM.len());
    for &(n, name) in LCM {
        let s = LcmState::from_number(n).unwrap();
        assert_eq!((s.name(), s.number()), (name, n));
        assert_eq!(LcmState::from_name(&name.to_ascii_lowercase()), Some(s));
    }
    for retired in [13, 14, 55, 58] {
        assert_eq!(LcmState::from_number(retired), None);
    }
    assert_eq!(LcmState::from_name("CANCEL"), None);
}

#[test]
fn host_image_net_states() {
    assert_eq!(HostState::ALL.len(), HOST.len());
    for &(n, name) in HOST {
        let s = HostState::from_number(n).unwrap();
        assert_eq!((s.name(), s.number()), (name, n));
        assert_eq!(HostState::from_name(&name.to_ascii_lowercase()), Some(s));
    }
    assert_eq!(ImageState::ALL.len(), IMAGE.len());
    for &(n, name, event) in IMAGE {
        let s = ImageState::from_number(n).unwrap();
        assert_eq!((s.name(), s.number(), s.event_name()), (name, n, event));
        assert_eq!(ImageState::from_name(&name.to_ascii_lowercase()), Some(s));
    }
    assert_eq!(NetState::ALL.len(), NET.len());
    for &(n, name, event) in NET {
        let s = NetState::from_number(n).unwrap();
        assert_eq!((s.name(), s.number(), s.event_name()), (name, n, event));
        assert_eq!(NetState::from_name(name), Some(s));
        // Network state names are case-sensitive.
        assert_eq!(NetState::from_name(&name.to_ascii_lowercase()), None);
    }
}

#[test]
fn object_kinds() {
    let kinds: Vec<(&str, &str)> = ObjectKind::ALL
        .iter()
        .map(|k| (k.name(), k.body_root()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("VM", "VM"),
            ("HOST", "HOST"),
            ("IMAGE", "IMAGE"),
            ("NET", "VNET")
        ]
    );
    for k in ObjectKind::ALL {
        assert_eq!(ObjectKind::from_name(k.name()), Some(*k));
    }
    assert_eq!(ObjectKind::from_name("VNET"), None);
}
