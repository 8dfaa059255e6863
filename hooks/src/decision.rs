//! Whether a VM is resumed, and why: pure functions of the VM's facts.
//!
//! Each VM that comes back from a host reboot has exactly one hook responsible for it, so two
//! hooks never race to resume the same VM:
//!
//! - the **VM hook** (VM reaches POWEROFF/LCM_INIT) resumes a VM the monitor powered off
//!   (last history ACTION `monitor`) when AUTOSTART is yes, true or always;
//! - the **host hook** (host reaches MONITORED) resumes, among the host's VMs whose last history
//!   record is on this host, those still UNKNOWN (AUTOSTART yes, true or always) and, with
//!   AUTOSTART=always, those stopped in any other way (powered off or suspended by a user, or
//!   on their way there). VMs the monitor powered off are left to the VM hook.

use one_proto::states::{LcmState, VmState};

use crate::facts::{Autostart, VmFacts, action, action_name};

/// What to do with one VM.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    Resume { why: String },
    Skip { why: String },
}

impl Decision {
    fn resume(why: impl Into<String>) -> Decision {
        Decision::Resume { why: why.into() }
    }

    fn skip(why: impl Into<String>) -> Decision {
        Decision::Skip { why: why.into() }
    }
}

/// How a VM's state relates to a resume.
enum Stopped {
    /// Resume is accepted now: UNKNOWN, POWEROFF, SUSPENDED, STOPPED, UNDEPLOYED.
    Now,
    /// On its way to a stopped state; resume is refused until it gets there, so it is retried.
    Soon,
    /// Running, booting or otherwise busy: nothing to resume.
    Active,
    /// Not deployed (INIT, PENDING, HOLD, CLONING) or gone (DONE).
    NotDeployed,
}

fn stopped(vm: &VmFacts) -> Stopped {
    use LcmState as L;
    match vm.state {
        VmState::Poweroff | VmState::Suspended | VmState::Stopped | VmState::Undeployed => {
            Stopped::Now
        }
        VmState::Active => match vm.lcm {
            L::Unknown => Stopped::Now,
            L::ShutdownPoweroff
            | L::ShutdownUndeploy
            | L::SaveSuspend
            | L::SaveStop
            | L::EpilogStop
            | L::EpilogUndeploy => Stopped::Soon,
            _ => Stopped::Active,
        },
        VmState::Init
        | VmState::Pending
        | VmState::Hold
        | VmState::Done
        | VmState::Cloning
        | VmState::CloningFailure => Stopped::NotDeployed,
    }
}

/// Actions by which a user asked the VM to stop: a VM with AUTOSTART=yes that was going down
/// on purpose when its host failed is not brought back.
fn asked_to_stop(action: i64) -> bool {
    matches!(
        action,
        action::POWEROFF
            | action::POWEROFF_HARD
            | action::UNDEPLOY
            | action::UNDEPLOY_HARD
            | action::STOP
            | action::SUSPEND
            | action::TERMINATE
            | action::TERMINATE_HARD
    )
}

fn powered_off_by_monitor(vm: &VmFacts) -> bool {
    vm.last_action() == Some(action::MONITOR)
        && (vm.state == VmState::Poweroff
            || (vm.state == VmState::Active && vm.lcm == LcmState::ShutdownPoweroff))
}

/// The host hook's decision for one VM listed on host `host_id`.
pub fn for_host(host_id: i64, vm: &VmFacts) -> Decision {
    if let Autostart::Off(_) = vm.autostart {
        return Decision::skip(format!("{} (yes, true or always enables it)", vm.autostart));
    }
    let Some(last) = &vm.last_history else {
        return Decision::skip("it has no history record");
    };
    if last.hid != host_id {
        return Decision::skip(format!(
            "its last history record is on host {} ({}), not on this host",
            last.hid, last.hostname
        ));
    }
    let state = vm.state_str();
    if powered_off_by_monitor(vm) {
        return Decision::skip(format!(
            "{state}, powered off by the monitor: the VM hook resumes it"
        ));
    }
    match vm.autostart {
        Autostart::Yes => {
            if let Stopped::Active = stopped(vm) {
                return Decision::skip(format!("already {state}"));
            }
            if !(vm.state == VmState::Active && vm.lcm == LcmState::Unknown) {
                return Decision::skip(format!("{state} is not UNKNOWN ({})", vm.autostart));
            }
            if asked_to_stop(last.action) {
                return Decision::skip(format!(
                    "UNKNOWN, but its last action ({}) asked it to stop",
                    action_name(last.action)
                ));
            }
            Decision::resume(format!(
                "{}, UNKNOWN since its host went down",
                vm.autostart
            ))
        }
        Autostart::Always => match stopped(vm) {
            Stopped::Now => Decision::resume(format!(
                "{}, {state} (last action {})",
                vm.autostart,
                action_name(last.action)
            )),
            Stopped::Soon => Decision::resume(format!(
                "{}, {state}: resumed once it has stopped",
                vm.autostart
            )),
            Stopped::Active => Decision::skip(format!("already {state}")),
            Stopped::NotDeployed => Decision::skip(format!("{state}: not deployed")),
        },
        Autostart::Off(_) => Decision::skip(vm.autostart.to_string()),
    }
}

/// The VM hook's decision for a VM that reached POWEROFF.
pub fn for_vm(vm: &VmFacts) -> Decision {
    if let Autostart::Off(_) = vm.autostart {
        return Decision::skip(format!("{} (yes, true or always enables it)", vm.autostart));
    }
    if vm.state != VmState::Poweroff {
        return Decision::skip(format!("{} now, no longer POWEROFF", vm.state_str()));
    }
    match vm.last_action() {
        Some(action::MONITOR) => {
            Decision::resume(format!("{}, powered off by the monitor", vm.autostart))
        }
        Some(other) => Decision::skip(format!(
            "last action {} is not monitor: it was powered off on purpose",
            action_name(other)
        )),
        None => Decision::skip("it has no history record"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::samples;

    const ACTIVE: u32 = 3;
    const POWEROFF: u32 = 8;
    const SUSPENDED: u32 = 5;
    const PENDING: u32 = 1;
    const DONE: u32 = 6;
    const RUNNING: u32 = 3;
    const UNKNOWN: u32 = 16;
    const BOOT_POWEROFF: u32 = 20;
    const SHUTDOWN_POWEROFF: u32 = 18;
    const LCM_INIT: u32 = 0;

    fn vm(state: u32, lcm: u32, autostart: Option<&str>, history: &[(i64, i64)]) -> VmFacts {
        VmFacts::from_xml(&samples::vm(7, "vm", state, lcm, autostart, history)).unwrap()
    }

    fn resumes(d: &Decision) -> bool {
        matches!(d, Decision::Resume { .. })
    }

    fn why(d: &Decision) -> &str {
        match d {
            Decision::Resume { why } | Decision::Skip { why } => why,
        }
    }

    #[test]
    fn host_hook_resumes_unknown_vms_with_autostart_yes() {
        for value in ["yes", "YES", "True"] {
            let d = for_host(0, &vm(ACTIVE, UNKNOWN, Some(value), &[(0, action::NONE)]));
            assert!(resumes(&d), "{value}: {d:?}");
        }
        // A VM resumed once before keeps ACTION resume on its record; it was running.
        let d = for_host(0, &vm(ACTIVE, UNKNOWN, Some("yes"), &[(0, action::RESUME)]));
        assert!(resumes(&d), "{d:?}");
        let d = for_host(
            0,
            &vm(ACTIVE, UNKNOWN, Some("yes"), &[(0, action::LIVE_MIGRATE)]),
        );
        assert!(resumes(&d), "{d:?}");
    }

    #[test]
    fn host_hook_skips_vms_without_autostart() {
        let d = for_host(0, &vm(ACTIVE, UNKNOWN, None, &[(0, 0)]));
        assert_eq!(
            d,
            Decision::skip("AUTOSTART not set (yes, true or always enables it)")
        );
        let d = for_host(0, &vm(ACTIVE, UNKNOWN, Some("no"), &[(0, 0)]));
        assert!(!resumes(&d));
        assert!(why(&d).starts_with("AUTOSTART=no"), "{d:?}");
    }

    #[test]
    fn host_hook_skips_vms_last_seen_on_another_host() {
        let d = for_host(0, &vm(ACTIVE, UNKNOWN, Some("yes"), &[(0, 0), (1, 0)]));
        assert!(!resumes(&d));
        assert!(
            why(&d).contains("host 1 (node1), not on this host"),
            "{d:?}"
        );
        let d = for_host(0, &vm(ACTIVE, UNKNOWN, Some("always"), &[]));
        assert_eq!(d, Decision::skip("it has no history record"));
    }

    #[test]
    fn host_hook_leaves_vms_powered_off_by_the_monitor_to_the_vm_hook() {
        for autostart in ["yes", "always"] {
            let d = for_host(
                0,
                &vm(POWEROFF, LCM_INIT, Some(autostart), &[(0, action::MONITOR)]),
            );
            assert!(!resumes(&d));
            assert!(why(&d).contains("the VM hook resumes it"), "{d:?}");
            let d = for_host(
                0,
                &vm(
                    ACTIVE,
                    SHUTDOWN_POWEROFF,
                    Some(autostart),
                    &[(0, action::MONITOR)],
                ),
            );
            assert!(why(&d).contains("the VM hook resumes it"), "{d:?}");
        }
    }

    #[test]
    fn host_hook_with_yes_needs_unknown_and_no_stop_request() {
        let d = for_host(
            0,
            &vm(POWEROFF, LCM_INIT, Some("yes"), &[(0, action::POWEROFF)]),
        );
        assert_eq!(d, Decision::skip("POWEROFF is not UNKNOWN (AUTOSTART=yes)"));
        let d = for_host(0, &vm(ACTIVE, RUNNING, Some("yes"), &[(0, 0)]));
        assert_eq!(d, Decision::skip("already RUNNING"));
        let d = for_host(
            0,
            &vm(ACTIVE, BOOT_POWEROFF, Some("yes"), &[(0, action::RESUME)]),
        );
        assert_eq!(d, Decision::skip("already BOOT_POWEROFF"));
        let d = for_host(
            0,
            &vm(SUSPENDED, LCM_INIT, Some("yes"), &[(0, action::SUSPEND)]),
        );
        assert_eq!(
            d,
            Decision::skip("SUSPENDED is not UNKNOWN (AUTOSTART=yes)")
        );
        let d = for_host(
            0,
            &vm(ACTIVE, UNKNOWN, Some("yes"), &[(0, action::POWEROFF)]),
        );
        assert_eq!(
            d,
            Decision::skip("UNKNOWN, but its last action (poweroff) asked it to stop")
        );
    }

    #[test]
    fn host_hook_with_always_resumes_any_stopped_vm() {
        for (state, lcm, act) in [
            (POWEROFF, LCM_INIT, action::POWEROFF),
            (SUSPENDED, LCM_INIT, action::SUSPEND),
            (ACTIVE, UNKNOWN, action::POWEROFF),
            (ACTIVE, SHUTDOWN_POWEROFF, action::POWEROFF),
        ] {
            let d = for_host(0, &vm(state, lcm, Some("Always"), &[(0, act)]));
            assert!(resumes(&d), "{state}/{lcm}: {d:?}");
        }
        let d = for_host(
            0,
            &vm(POWEROFF, LCM_INIT, Some("always"), &[(0, action::POWEROFF)]),
        );
        assert_eq!(
            d,
            Decision::resume("AUTOSTART=always, POWEROFF (last action poweroff)")
        );
    }

    #[test]
    fn host_hook_with_always_leaves_running_and_undeployed_vms() {
        let d = for_host(0, &vm(ACTIVE, RUNNING, Some("always"), &[(0, 0)]));
        assert_eq!(d, Decision::skip("already RUNNING"));
        let d = for_host(0, &vm(ACTIVE, BOOT_POWEROFF, Some("always"), &[(0, 11)]));
        assert_eq!(d, Decision::skip("already BOOT_POWEROFF"));
        let d = for_host(0, &vm(PENDING, LCM_INIT, Some("always"), &[(0, 0)]));
        assert_eq!(d, Decision::skip("PENDING: not deployed"));
        let d = for_host(0, &vm(DONE, LCM_INIT, Some("always"), &[(0, 27)]));
        assert_eq!(d, Decision::skip("DONE: not deployed"));
    }

    #[test]
    fn vm_hook_resumes_vms_powered_off_by_the_monitor() {
        for autostart in ["yes", "TRUE", "always"] {
            let d = for_vm(&vm(
                POWEROFF,
                LCM_INIT,
                Some(autostart),
                &[(0, action::MONITOR)],
            ));
            assert!(resumes(&d), "{autostart}: {d:?}");
        }
        let d = for_vm(&vm(
            POWEROFF,
            LCM_INIT,
            Some("yes"),
            &[(0, action::MONITOR)],
        ));
        assert_eq!(
            d,
            Decision::resume("AUTOSTART=yes, powered off by the monitor")
        );
    }

    #[test]
    fn vm_hook_skips_other_vms() {
        let d = for_vm(&vm(POWEROFF, LCM_INIT, None, &[(0, action::MONITOR)]));
        assert!(!resumes(&d));
        let d = for_vm(&vm(
            POWEROFF,
            LCM_INIT,
            Some("yes"),
            &[(0, action::POWEROFF)],
        ));
        assert_eq!(
            d,
            Decision::skip("last action poweroff is not monitor: it was powered off on purpose")
        );
        let d = for_vm(&vm(
            ACTIVE,
            BOOT_POWEROFF,
            Some("yes"),
            &[(0, action::RESUME)],
        ));
        assert_eq!(d, Decision::skip("BOOT_POWEROFF now, no longer POWEROFF"));
        let d = for_vm(&vm(POWEROFF, LCM_INIT, Some("yes"), &[]));
        assert_eq!(d, Decision::skip("it has no history record"));
    }
}
