//! The VM life cycle, after oned's dispatch and life-cycle managers: which actions are allowed
//! in which state, which (STATE, LCM_STATE) pairs a VM goes through, and what the history
//! records say. Every intermediate pair is stored (and so produces its STATE event) through
//! [`Persist`]; the timer steps ([`advance`]) end the transient states.
//!
//! | from | action | states |
//! |---|---|---|
//! | PENDING, HOLD, STOPPED, UNDEPLOYED | deploy | ACTIVE/LCM_INIT, ACTIVE/PROLOG (PROLOG_RESUME after stop, PROLOG_UNDEPLOY after undeploy), BOOT (BOOT_STOPPED, BOOT_UNDEPLOY), RUNNING |
//! | RUNNING, UNKNOWN | terminate[-hard] | SHUTDOWN, EPILOG, DONE |
//! | POWEROFF, SUSPENDED, STOPPED, UNDEPLOYED | terminate | ACTIVE/EPILOG, DONE |
//! | PENDING, HOLD | terminate | DONE |
//! | RUNNING, UNKNOWN | poweroff[-hard] | SHUTDOWN_POWEROFF, POWEROFF |
//! | POWEROFF | resume | BOOT_POWEROFF, RUNNING (new history record, ACTION resume) |
//! | SUSPENDED | resume | BOOT_SUSPENDED, RUNNING (new history record, ACTION resume) |
//! | UNKNOWN | resume | BOOT_UNKNOWN, RUNNING |
//! | STOPPED, UNDEPLOYED | resume | PENDING, then re-deployed on its last host (see deploy) |
//! | RUNNING | stop | SAVE_STOP, EPILOG_STOP, STOPPED |
//! | SUSPENDED | stop | ACTIVE/EPILOG_STOP, STOPPED |
//! | RUNNING | suspend | SAVE_SUSPEND, SUSPENDED |
//! | RUNNING, UNKNOWN | undeploy[-hard] | SHUTDOWN_UNDEPLOY, EPILOG_UNDEPLOY, UNDEPLOYED |
//! | POWEROFF | undeploy[-hard] | ACTIVE/EPILOG_UNDEPLOY, UNDEPLOYED |
//! | RUNNING | reboot[-hard] | no state change (history ACTION reboot) |
//! | PENDING / HOLD | hold / release | HOLD / PENDING |
//! | RUNNING (host fails) | monitor | UNKNOWN |
//! | RUNNING, UNKNOWN (host back from a crash) | monitor | SHUTDOWN_POWEROFF, POWEROFF (history ACTION monitor) |

use std::time::Duration;

use one_proto::states::{LcmState, VmState};

use super::OpError;
use super::vm::{History, NO_HOST, Vm, action};
use crate::sim_config::SimConfig;

/// Stores a VM; emits its STATE event when (STATE, LCM_STATE) differs from the last stored pair.
pub(crate) trait Persist {
    fn persist(&mut self, vm: &mut Vm) -> Result<(), OpError>;
}

/// Who asked for an action, as history records keep it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Actor {
    pub uid: i64,
    pub gid: i64,
    pub req_id: i64,
}

impl Actor {
    /// The monitor (an internal action).
    pub(crate) const MONITOR: Actor = Actor {
        uid: -1,
        gid: -1,
        req_id: -1,
    };
}

/// Why a transition did not happen.
#[derive(Debug)]
pub(crate) enum LcError {
    /// Not allowed in the VM's state; the text is oned's.
    Refused(String),
    Op(OpError),
}

impl From<OpError> for LcError {
    fn from(e: OpError) -> Self {
        LcError::Op(e)
    }
}

/// The actions of `one.vm.action`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum VmAction {
    Terminate { hard: bool },
    Poweroff { hard: bool },
    Undeploy { hard: bool },
    Reboot { hard: bool },
    Resume,
    Stop,
    Suspend,
    Hold,
    Release,
    Resched,
    Unresched,
}

impl VmAction {
    pub(crate) fn from_name(name: &str) -> Option<VmAction> {
        Some(match name {
            "terminate" => VmAction::Terminate { hard: false },
            "terminate-hard" => VmAction::Terminate { hard: true },
            "poweroff" => VmAction::Poweroff { hard: false },
            "poweroff-hard" => VmAction::Poweroff { hard: true },
            "undeploy" => VmAction::Undeploy { hard: false },
            "undeploy-hard" => VmAction::Undeploy { hard: true },
            "reboot" => VmAction::Reboot { hard: false },
            "reboot-hard" => VmAction::Reboot { hard: true },
            "resume" => VmAction::Resume,
            "stop" => VmAction::Stop,
            "suspend" => VmAction::Suspend,
            "hold" => VmAction::Hold,
            "release" => VmAction::Release,
            "resched" => VmAction::Resched,
            "unresched" => VmAction::Unresched,
            _ => return None,
        })
    }
}

fn set_action(vm: &mut Vm, number: i64, actor: Actor) {
    if let Some(h) = vm.last_history_mut() {
        h.action = number;
        h.uid = actor.uid;
        h.gid = actor.gid;
        h.req_id = actor.req_id;
    }
}

fn not_available(vm: &Vm) -> LcError {
    LcError::Refused(format!(
        "This action is not available for state {}",
        vm.state_str()
    ))
}

fn active(vm: &Vm, lcm: &[LcmState]) -> bool {
    vm.state == VmState::Active && lcm.contains(&vm.lcm)
}

fn set(vm: &mut Vm, state: VmState, lcm: LcmState) {
    vm.state = state;
    vm.lcm = lcm;
}

/// Closes the last history record and opens a copy on the same host (oned's `cp_history`),
/// used when a VM comes back from POWEROFF or SUSPENDED.
fn reopen_history(vm: &mut Vm, now: i64, actor: Actor) {
    let Some(last) = vm.last_history_mut() else {
        return;
    };
    last.etime = now;
    let mut next = History::new(last.seq + 1, last.hid, &last.hostname, &last.vm_mad);
    next.cid = last.cid;
    next.tm_mad = last.tm_mad.clone();
    next.ds_id = last.ds_id;
    next.stime = now;
    next.rstime = now;
    vm.history.push(next);
    set_action(vm, action::RESUME, actor);
}

/// oned's `free_vm_resources`: DONE, out of its host.
fn done(vm: &mut Vm, now: i64) {
    set(vm, VmState::Done, LcmState::LcmInit);
    vm.etime = now;
    vm.hid = NO_HOST;
    vm.sched_hid = None;
    if let Some(h) = vm.last_history_mut() {
        if h.rstime != 0 && h.retime == 0 {
            h.retime = now;
        }
        if h.etime == 0 {
            h.etime = now;
        }
    }
}

/// The host a deploy places the VM on.
#[derive(Clone, Debug)]
pub(crate) struct Placement {
    pub hid: i64,
    pub hostname: String,
    pub vm_mad: String,
}

/// `one.vm.deploy` (and the simulated scheduler's re-placement): a new history record on the
/// host, ACTIVE/LCM_INIT, then the PROLOG flavour the previous history record asks for.
pub(crate) fn deploy(
    vm: &mut Vm,
    host: &Placement,
    actor: Actor,
    now: i64,
    p: &mut dyn Persist,
) -> Result<(), LcError> {
    if !matches!(
        vm.state,
        VmState::Pending | VmState::Hold | VmState::Stopped | VmState::Undeployed
    ) {
        return Err(LcError::Refused(format!(
            "Deploy action is not available for state {}",
            vm.state_str()
        )));
    }
    let previous_action = vm.last_history().map(|h| h.action);
    let seq = vm.history.len() as i64;
    let mut record = History::new(seq, host.hid, &host.hostname, &host.vm_mad);
    record.uid = actor.uid;
    record.gid = actor.gid;
    record.req_id = actor.req_id;
    vm.history.push(record);
    vm.hid = host.hid;
    vm.sched_hid = None;
    set(vm, VmState::Active, LcmState::LcmInit);
    p.persist(vm)?;
    let prolog = match previous_action {
        Some(action::STOP) => LcmState::PrologResume,
        Some(action::UNDEPLOY | action::UNDEPLOY_HARD) => LcmState::PrologUndeploy,
        _ => LcmState::Prolog,
    };
    vm.lcm = prolog;
    if let Some(h) = vm.last_history_mut() {
        h.stime = now;
        h.pstime = now;
    }
    p.persist(vm)?;
    Ok(())
}

/// `one.vm.action`.
pub(crate) fn apply(
    vm: &mut Vm,
    act: VmAction,
    actor: Actor,
    now: i64,
    p: &mut dyn Persist,
) -> Result<(), LcError> {
    use LcmState as L;
    use VmState as S;
    match act {
        VmAction::Terminate { hard } => match vm.state {
            S::Suspended | S::Poweroff | S::Stopped | S::Undeployed => {
                // `hard` has no effect: the VM is not running.
                set(vm, S::Active, L::Epilog);
                set_action(vm, action::TERMINATE, actor);
                if let Some(h) = vm.last_history_mut() {
                    h.estime = now;
                }
            }
            S::Init | S::Pending | S::Hold | S::Cloning | S::CloningFailure => done(vm, now),
            S::Done => return Ok(()),
            S::Active
                if matches!(vm.lcm, L::Running | L::Unknown) || (hard && vm.lcm == L::Shutdown) =>
            {
                vm.lcm = L::Shutdown;
                vm.resched = false;
                let number = if hard {
                    action::TERMINATE_HARD
                } else {
                    action::TERMINATE
                };
                set_action(vm, number, actor);
            }
            S::Active => {
                return Err(LcError::Refused(format!(
                    "Could not terminate VM {}, wrong state {}.",
                    vm.id,
                    vm.state_str()
                )));
            }
        },
        VmAction::Poweroff { hard } => {
            if !(active(vm, &[L::Running, L::Unknown])
                || (hard && active(vm, &[L::ShutdownPoweroff])))
            {
                return Err(not_available(vm));
            }
            vm.lcm = L::ShutdownPoweroff;
            vm.resched = false;
            let number = if hard {
                action::POWEROFF_HARD
            } else {
                action::POWEROFF
            };
            set_action(vm, number, actor);
        }
        VmAction::Undeploy { hard } => {
            if active(vm, &[L::Running, L::Unknown]) || (hard && active(vm, &[L::ShutdownUndeploy]))
            {
                vm.lcm = L::ShutdownUndeploy;
                vm.resched = false;
                let number = if hard {
                    action::UNDEPLOY_HARD
                } else {
                    action::UNDEPLOY
                };
                set_action(vm, number, actor);
            } else if vm.state == S::Poweroff {
                set(vm, S::Active, L::EpilogUndeploy);
                set_action(vm, action::UNDEPLOY, actor);
                if let Some(h) = vm.last_history_mut() {
                    h.estime = now;
                }
            } else {
                return Err(not_available(vm));
            }
        }
        VmAction::Reboot { hard } => {
            if !active(vm, &[L::Running]) {
                return Err(not_available(vm));
            }
            let number = if hard {
                action::REBOOT_HARD
            } else {
                action::REBOOT
            };
            set_action(vm, number, actor);
        }
        VmAction::Resume => match vm.state {
            S::Stopped | S::Undeployed => {
                vm.state = S::Pending;
                vm.sched_hid = vm.last_history().map(|h| h.hid);
            }
            S::Suspended => {
                set(vm, S::Active, L::BootSuspended);
                reopen_history(vm, now, actor);
            }
            S::Poweroff => {
                set(vm, S::Active, L::BootPoweroff);
                reopen_history(vm, now, actor);
            }
            S::Active if vm.lcm == L::Unknown => vm.lcm = L::BootUnknown,
            _ => return Err(not_available(vm)),
        },
        VmAction::Stop => {
            if active(vm, &[L::Running]) {
                vm.lcm = L::SaveStop;
                vm.resched = false;
                set_action(vm, action::STOP, actor);
            } else if vm.state == S::Suspended {
                set(vm, S::Active, L::EpilogStop);
                set_action(vm, action::STOP, actor);
                if let Some(h) = vm.last_history_mut() {
                    h.estime = now;
                }
            } else {
                return Err(not_available(vm));
            }
        }
        VmAction::Suspend => {
            if !active(vm, &[L::Running]) {
                return Err(not_available(vm));
            }
            vm.lcm = L::SaveSuspend;
            vm.resched = false;
            set_action(vm, action::SUSPEND, actor);
        }
        VmAction::Hold => {
            if vm.state != S::Pending {
                return Err(not_available(vm));
            }
            vm.state = S::Hold;
            set_action(vm, action::HOLD, actor);
        }
        VmAction::Release => {
            if vm.state != S::Hold {
                return Err(not_available(vm));
            }
            vm.state = S::Pending;
            set_action(vm, action::RELEASE, actor);
        }
        VmAction::Resched | VmAction::Unresched => {
            if !(vm.state == S::Poweroff || active(vm, &[L::Running, L::Unknown])) {
                return Err(not_available(vm));
            }
            let on = act == VmAction::Resched;
            vm.resched = on;
            set_action(
                vm,
                if on {
                    action::RESCHED
                } else {
                    action::UNRESCHED
                },
                actor,
            );
        }
    }
    p.persist(vm)?;
    Ok(())
}

/// How long the VM stays in its current state before [`advance`] moves it on, or `None` when
/// the state is not transient.
pub(crate) fn step_delay(vm: &Vm, sim: &SimConfig) -> Option<Duration> {
    use LcmState as L;
    match vm.state {
        VmState::Pending if vm.sched_hid.is_some() => Some(sim.sched),
        VmState::Active => match vm.lcm {
            L::Prolog | L::PrologResume | L::PrologUndeploy => Some(sim.prolog),
            L::Boot
            | L::BootStopped
            | L::BootUndeploy
            | L::BootPoweroff
            | L::BootSuspended
            | L::BootUnknown => Some(sim.boot),
            L::Shutdown | L::ShutdownPoweroff | L::ShutdownUndeploy => Some(sim.shutdown),
            L::SaveStop | L::SaveSuspend => Some(sim.save),
            L::Epilog | L::EpilogStop | L::EpilogUndeploy => Some(sim.epilog),
            _ => None,
        },
        _ => None,
    }
}

/// Ends the current transient state (the simulated driver reported success). A PENDING VM
/// waiting for the scheduler is not handled here: it needs its host (see `deploy`). Returns
/// whether the VM changed.
pub(crate) fn advance(vm: &mut Vm, now: i64, p: &mut dyn Persist) -> Result<bool, OpError> {
    use LcmState as L;
    use VmState as S;
    if vm.state != S::Active {
        return Ok(false);
    }
    let id = vm.id;
    let h = vm.history.last_mut();
    match vm.lcm {
        L::Prolog | L::PrologResume | L::PrologUndeploy => {
            if let Some(h) = h {
                h.petime = now;
                h.rstime = now;
            }
            vm.lcm = match vm.lcm {
                L::PrologResume => L::BootStopped,
                L::PrologUndeploy => L::BootUndeploy,
                _ => L::Boot,
            };
        }
        L::Boot
        | L::BootStopped
        | L::BootUndeploy
        | L::BootPoweroff
        | L::BootSuspended
        | L::BootUnknown => {
            if vm.deploy_id.is_empty() {
                vm.deploy_id = format!("one-{id}");
            }
            vm.lcm = L::Running;
        }
        L::Shutdown | L::ShutdownUndeploy | L::SaveStop => {
            if let Some(h) = h {
                h.retime = now;
                h.estime = now;
            }
            vm.lcm = match vm.lcm {
                L::Shutdown => L::Epilog,
                L::ShutdownUndeploy => L::EpilogUndeploy,
                _ => L::EpilogStop,
            };
        }
        L::ShutdownPoweroff => {
            if let Some(h) = h {
                h.retime = now;
            }
            set(vm, S::Poweroff, L::LcmInit);
        }
        L::SaveSuspend => {
            if let Some(h) = h {
                h.retime = now;
            }
            set(vm, S::Suspended, L::LcmInit);
        }
        L::Epilog => {
            if let Some(h) = h {
                h.eetime = now;
            }
            done(vm, now);
        }
        L::EpilogStop | L::EpilogUndeploy => {
            if let Some(h) = h {
                h.eetime = now;
                h.etime = now;
            }
            let state = if vm.lcm == L::EpilogStop {
                S::Stopped
            } else {
                S::Undeployed
            };
            set(vm, state, L::LcmInit);
            vm.hid = NO_HOST;
        }
        _ => return Ok(false),
    }
    p.persist(vm)?;
    Ok(true)
}

/// The host went into ERROR: a RUNNING VM is UNKNOWN to the monitor. Returns whether the VM
/// changed.
pub(crate) fn monitor_unknown(vm: &mut Vm, p: &mut dyn Persist) -> Result<bool, OpError> {
    if !active(vm, &[LcmState::Running]) {
        return Ok(false);
    }
    vm.lcm = LcmState::Unknown;
    vm.resched = false;
    p.persist(vm)?;
    Ok(true)
}

/// The host is back after a crash and the VM is not running on it any more: as oned's
/// `monitor_poweroff`, SHUTDOWN_POWEROFF then POWEROFF, with history ACTION `monitor`.
/// Returns whether the VM changed.
pub(crate) fn monitor_poweroff(
    vm: &mut Vm,
    now: i64,
    p: &mut dyn Persist,
) -> Result<bool, OpError> {
    if !active(vm, &[LcmState::Running, LcmState::Unknown]) {
        return Ok(false);
    }
    vm.lcm = LcmState::ShutdownPoweroff;
    vm.resched = false;
    set_action(vm, action::MONITOR, Actor::MONITOR);
    p.persist(vm)?;
    if let Some(h) = vm.last_history_mut() {
        h.retime = now;
    }
    set(vm, VmState::Poweroff, LcmState::LcmInit);
    p.persist(vm)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use one_proto::template::Template;

    /// Records every stored (STATE, LCM_STATE) change, as events would.
    #[derive(Default)]
    struct Recorder {
        changes: Vec<(VmState, LcmState)>,
    }

    impl Persist for Recorder {
        fn persist(&mut self, vm: &mut Vm) -> Result<(), OpError> {
            if (vm.state, vm.lcm) != (vm.prev_state, vm.prev_lcm) {
                self.changes.push((vm.state, vm.lcm));
                vm.prev_state = vm.state;
                vm.prev_lcm = vm.lcm;
            }
            Ok(())
        }
    }

    fn pending_vm() -> Vm {
        Vm {
            id: 5,
            uid: 0,
            gid: 0,
            uname: "oneadmin".into(),
            gname: "oneadmin".into(),
            name: "vm".into(),
            state: VmState::Pending,
            lcm: LcmState::LcmInit,
            prev_state: VmState::Pending,
            prev_lcm: LcmState::LcmInit,
            resched: false,
            stime: 0,
            etime: 0,
            deploy_id: String::new(),
            template: Template::new(),
            user_template: Template::new(),
            hid: NO_HOST,
            due_ms: None,
            sched_hid: None,
            history: Vec::new(),
        }
    }

    const WHO: Actor = Actor {
        uid: 0,
        gid: 0,
        req_id: 1,
    };

    fn host() -> Placement {
        Placement {
            hid: 2,
            hostname: "node2".into(),
            vm_mad: "kvm".into(),
        }
    }

    /// Advances through every transient state.
    fn settle(vm: &mut Vm, r: &mut Recorder) {
        let sim = SimConfig::immediate();
        while step_delay(vm, &sim).is_some() && vm.state == VmState::Active {
            assert!(advance(vm, 10, r).unwrap());
        }
    }

    fn running(r: &mut Recorder) -> Vm {
        let mut vm = pending_vm();
        deploy(&mut vm, &host(), WHO, 1, r).unwrap();
        settle(&mut vm, r);
        r.changes.clear();
        vm
    }

    use LcmState as L;
    use VmState as S;

    #[test]
    fn deploy_walks_prolog_boot_running() {
        let mut r = Recorder::default();
        let mut vm = pending_vm();
        deploy(&mut vm, &host(), WHO, 1, &mut r).unwrap();
        settle(&mut vm, &mut r);
        assert_eq!(
            r.changes,
            [
                (S::Active, L::LcmInit),
                (S::Active, L::Prolog),
                (S::Active, L::Boot),
                (S::Active, L::Running)
            ]
        );
        assert_eq!(vm.hid, 2);
        assert_eq!(vm.deploy_id, "one-5");
        let h = vm.last_history().unwrap();
        assert_eq!(
            (h.hid, h.hostname.as_str(), h.action),
            (2, "node2", action::NONE)
        );
    }

    #[test]
    fn poweroff_resume_terminate() {
        let mut r = Recorder::default();
        let mut vm = running(&mut r);
        apply(&mut vm, VmAction::Poweroff { hard: false }, WHO, 2, &mut r).unwrap();
        settle(&mut vm, &mut r);
        assert_eq!(
            r.changes,
            [(S::Active, L::ShutdownPoweroff), (S::Poweroff, L::LcmInit)]
        );
        assert_eq!(vm.last_history().unwrap().action, action::POWEROFF);
        assert_eq!(vm.hid, 2, "a powered-off VM keeps its host");
        r.changes.clear();
        apply(&mut vm, VmAction::Resume, WHO, 3, &mut r).unwrap();
        settle(&mut vm, &mut r);
        assert_eq!(
            r.changes,
            [(S::Active, L::BootPoweroff), (S::Active, L::Running)]
        );
        assert_eq!(vm.history.len(), 2);
        assert_eq!(vm.last_history().unwrap().action, action::RESUME);
        r.changes.clear();
        apply(&mut vm, VmAction::Terminate { hard: false }, WHO, 4, &mut r).unwrap();
        settle(&mut vm, &mut r);
        assert_eq!(
            r.changes,
            [
                (S::Active, L::Shutdown),
                (S::Active, L::Epilog),
                (S::Done, L::LcmInit)
            ]
        );
        assert_eq!(vm.hid, NO_HOST);
        assert_eq!(vm.last_history().unwrap().action, action::TERMINATE);
    }

    #[test]
    fn stop_and_resume_redeploys_through_prolog_resume() {
        let mut r = Recorder::default();
        let mut vm = running(&mut r);
        apply(&mut vm, VmAction::Stop, WHO, 2, &mut r).unwrap();
        settle(&mut vm, &mut r);
        assert_eq!(
            r.changes,
            [
                (S::Active, L::SaveStop),
                (S::Active, L::EpilogStop),
                (S::Stopped, L::LcmInit)
            ]
        );
        assert_eq!(vm.hid, NO_HOST);
        r.changes.clear();
        apply(&mut vm, VmAction::Resume, WHO, 3, &mut r).unwrap();
        assert_eq!(r.changes, [(S::Pending, L::LcmInit)]);
        assert_eq!(vm.sched_hid, Some(2));
        assert!(step_delay(&vm, &SimConfig::immediate()).is_some());
        r.changes.clear();
        deploy(&mut vm, &host(), WHO, 4, &mut r).unwrap();
        settle(&mut vm, &mut r);
        assert_eq!(
            r.changes,
            [
                (S::Active, L::LcmInit),
                (S::Active, L::PrologResume),
                (S::Active, L::BootStopped),
                (S::Active, L::Running)
            ]
        );
    }

    #[test]
    fn undeploy_suspend_and_their_resumes() {
        let mut r = Recorder::default();
        let mut vm = running(&mut r);
        apply(&mut vm, VmAction::Undeploy { hard: true }, WHO, 2, &mut r).unwrap();
        settle(&mut vm, &mut r);
        assert_eq!(
            r.changes,
            [
                (S::Active, L::ShutdownUndeploy),
                (S::Active, L::EpilogUndeploy),
                (S::Undeployed, L::LcmInit)
            ]
        );
        apply(&mut vm, VmAction::Resume, WHO, 3, &mut r).unwrap();
        r.changes.clear();
        deploy(&mut vm, &host(), WHO, 4, &mut r).unwrap();
        settle(&mut vm, &mut r);
        assert_eq!(
            r.changes[1..],
            [
                (S::Active, L::PrologUndeploy),
                (S::Active, L::BootUndeploy),
                (S::Active, L::Running)
            ]
        );
        r.changes.clear();
        apply(&mut vm, VmAction::Suspend, WHO, 5, &mut r).unwrap();
        settle(&mut vm, &mut r);
        assert_eq!(
            r.changes,
            [(S::Active, L::SaveSuspend), (S::Suspended, L::LcmInit)]
        );
        r.changes.clear();
        apply(&mut vm, VmAction::Resume, WHO, 6, &mut r).unwrap();
        settle(&mut vm, &mut r);
        assert_eq!(
            r.changes,
            [(S::Active, L::BootSuspended), (S::Active, L::Running)]
        );
    }

    #[test]
    fn host_crash_makes_vms_unknown_then_poweroff_by_monitor() {
        let mut r = Recorder::default();
        let mut vm = running(&mut r);
        assert!(monitor_unknown(&mut vm, &mut r).unwrap());
        assert!(!monitor_unknown(&mut vm, &mut r).unwrap());
        assert!(monitor_poweroff(&mut vm, 9, &mut r).unwrap());
        assert_eq!(
            r.changes,
            [
                (S::Active, L::Unknown),
                (S::Active, L::ShutdownPoweroff),
                (S::Poweroff, L::LcmInit)
            ]
        );
        assert_eq!(vm.last_history().unwrap().action, action::MONITOR);
        assert_eq!(vm.last_history().unwrap().uid, -1);
        assert!(step_delay(&vm, &SimConfig::immediate()).is_none());
        // From UNKNOWN, resume boots it again on the same history record.
        let mut vm = running(&mut r);
        monitor_unknown(&mut vm, &mut r).unwrap();
        r.changes.clear();
        apply(&mut vm, VmAction::Resume, WHO, 3, &mut r).unwrap();
        settle(&mut vm, &mut r);
        assert_eq!(
            r.changes,
            [(S::Active, L::BootUnknown), (S::Active, L::Running)]
        );
        assert_eq!(vm.history.len(), 1);
    }

    #[test]
    fn wrong_states_are_refused_with_opennebula_texts() {
        let mut r = Recorder::default();
        let mut vm = pending_vm();
        let refused = |e: LcError| match e {
            LcError::Refused(t) => t,
            LcError::Op(e) => panic!("{e:?}"),
        };
        let t = refused(
            apply(&mut vm, VmAction::Poweroff { hard: false }, WHO, 1, &mut r).unwrap_err(),
        );
        assert_eq!(t, "This action is not available for state PENDING");
        deploy(&mut vm, &host(), WHO, 1, &mut r).unwrap();
        let t = refused(
            apply(&mut vm, VmAction::Terminate { hard: false }, WHO, 1, &mut r).unwrap_err(),
        );
        assert_eq!(t, "Could not terminate VM 5, wrong state PROLOG.");
        let t = refused(deploy(&mut vm, &host(), WHO, 1, &mut r).unwrap_err());
        assert_eq!(t, "Deploy action is not available for state PROLOG");
        assert!(VmAction::from_name("shutdown").is_none());
    }

    #[test]
    fn hold_release_and_terminate_from_pending() {
        let mut r = Recorder::default();
        let mut vm = pending_vm();
        apply(&mut vm, VmAction::Hold, WHO, 1, &mut r).unwrap();
        apply(&mut vm, VmAction::Release, WHO, 1, &mut r).unwrap();
        apply(&mut vm, VmAction::Terminate { hard: true }, WHO, 1, &mut r).unwrap();
        assert_eq!(
            r.changes,
            [
                (S::Hold, L::LcmInit),
                (S::Pending, L::LcmInit),
                (S::Done, L::LcmInit)
            ]
        );
        // Terminating a DONE VM is a no-op success, as in oned.
        apply(&mut vm, VmAction::Terminate { hard: false }, WHO, 1, &mut r).unwrap();
        assert_eq!(r.changes.len(), 3);
    }
}
