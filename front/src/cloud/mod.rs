//! The simulated cloud: hosts, VMs and images, their life cycles and their STATE events.
//!
//! Enough of OpenNebula's behaviour for every hook type to fire for real. Objects live in
//! SQLite; every state change is stored in one transaction together with its STATE event in the
//! outbox ([`crate::events`]). The simulated drivers are timers: a transient state (PROLOG,
//! BOOT, SHUTDOWN, EPILOG, SAVE_*, host INIT, image LOCKED, …) ends after the delay configured
//! in `SIM = [ … ]` (see [`crate::sim_config::SimConfig`]), each step its own transaction and event.
//!
//! The VM life cycle is described in `lifecycle.rs`. Hosts: `one.host.allocate` gives INIT, then
//! MONITORED after `MONITOR_DELAY_MS`; `one.host.status` 0 enables (INIT then MONITORED, or
//! straight back to MONITORED from DISABLED), 1 disables, 2 sets OFFLINE. Images:
//! `one.image.allocate` gives LOCKED (no event, as in oned), READY after `IMAGE_DELAY_MS`;
//! `one.image.delete` gives DELETE, and the image is gone after `IMAGE_DELAY_MS`;
//! `one.image.enable` moves between READY and DISABLED.
//!
//! # Host failure simulation (extension, namespace `one.hostsim`)
//!
//! OpenNebula has no such calls; they stand in for a hypervisor that crashes. All need an
//! oneadmin-group user and return the host id.
//!
//! - `one.hostsim.fail(session, host_id, [message])`: the host goes ERROR (a DISABLED host
//!   keeps its state, as in oned) with `ERROR` in its template, and its RUNNING VMs go UNKNOWN.
//!   It stays down until recovered. An OFFLINE host cannot fail.
//! - `one.hostsim.recover(session, host_id)`: the host comes back as after a reboot: MONITORED,
//!   and every VM on it that was RUNNING or UNKNOWN is found powered off by the monitor:
//!   SHUTDOWN_POWEROFF then POWEROFF, with last history ACTION `monitor` (44), like KVM after a
//!   host reboot. Fails with ACTION when the host has not failed.
//! - `one.hostsim.reboot(session, host_id, [down_ms])`: fail, then recover after `down_ms`
//!   (default `REBOOT_DELAY_MS`).
//!
//! # Restarts
//!
//! The due time of every pending step is stored with its object. After a restart, each pending
//! step happens at its due time, or at once if that time has passed, so every in-flight
//! transition completes and no state is skipped.

pub(crate) mod host;
pub(crate) mod image;
pub(crate) mod lifecycle;
mod timers;
pub(crate) mod vm;
mod xml;

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use one_proto::event::{ObjectKind, StateEvent};
use one_proto::states::{HostState, ImageState, LcmState, VmState};
use rusqlite::Transaction;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::call::ApiError;
use crate::config::Config;
use crate::db::{Cached, Db};
use crate::events::EventBus;

use crate::sim_config::SimConfig;

use host::Host;
use image::Image;
use lifecycle::{Actor, Persist, Placement};
pub(crate) use timers::ObjKey;
use timers::Timers;
use vm::{HistoryDump, Vm};

/// Steps applied in one transaction at most.
const STEP_BATCH: usize = 256;
/// When a step's transaction fails, it is tried again after this long.
const STEP_RETRY: Duration = Duration::from_secs(1);

/// Why the cloud cannot start.
#[derive(Debug, thiserror::Error)]
pub enum CloudError {
    #[error("cannot load the pending transitions of the simulated cloud: {0}")]
    Load(#[source] rusqlite::Error),
}

/// A failed operation: an API error for the caller, or a database error.
#[derive(Debug)]
pub(crate) enum OpError {
    Api(ApiError),
    Store(rusqlite::Error),
}

impl From<rusqlite::Error> for OpError {
    fn from(e: rusqlite::Error) -> Self {
        OpError::Store(e)
    }
}

impl From<ApiError> for OpError {
    fn from(e: ApiError) -> Self {
        OpError::Api(e)
    }
}

/// The simulated cloud: shared by every call, and the owner of the timer task.
pub struct Cloud {
    inner: Arc<Inner>,
    runner: Mutex<Option<(watch::Sender<bool>, JoinHandle<()>)>>,
}

impl std::fmt::Debug for Cloud {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cloud")
            .field("sim", &self.inner.sim)
            .field("pending_steps", &self.inner.timers.len())
            .finish()
    }
}

pub(crate) struct Inner {
    pub(crate) db: Db,
    bus: EventBus,
    pub(crate) sim: SimConfig,
    pub(crate) timers: Timers,
    pub(crate) list_desc: bool,
}

impl Cloud {
    /// The cloud's state, for the XML-RPC methods (`crate::api`).
    pub(crate) fn inner(&self) -> &Inner {
        &self.inner
    }

    /// Takes the delays of `SIM` from the configuration and loads the pending transitions from
    /// the database. Call [`Cloud::start`] to run them.
    pub fn new(db: Db, bus: EventBus, config: &Config) -> Result<Cloud, CloudError> {
        Cloud::with_sim(db, bus, config.sim, config.api_list_order_desc)
    }

    /// [`Cloud::new`] with explicit delays and pool order.
    pub fn with_sim(
        db: Db,
        bus: EventBus,
        sim: SimConfig,
        list_desc: bool,
    ) -> Result<Cloud, CloudError> {
        let inner = Inner {
            db,
            bus,
            sim,
            timers: Timers::default(),
            list_desc,
        };
        let pending = inner
            .db
            .read(|c| -> rusqlite::Result<Vec<(ObjKey, i64)>> {
                let mut all = Vec::new();
                all.extend(
                    host::pending(c)?
                        .into_iter()
                        .map(|(id, d)| (ObjKey::Host(id), d)),
                );
                all.extend(
                    vm::pending(c)?
                        .into_iter()
                        .map(|(id, d)| (ObjKey::Vm(id), d)),
                );
                all.extend(
                    image::pending(c)?
                        .into_iter()
                        .map(|(id, d)| (ObjKey::Image(id), d)),
                );
                Ok(all)
            })
            .map_err(CloudError::Load)?;
        if !pending.is_empty() {
            tracing::info!(
                count = pending.len(),
                "resuming the simulated transitions in flight"
            );
        }
        for (key, due) in pending {
            inner.timers.set(key, Some(due));
        }
        Ok(Cloud {
            inner: Arc::new(inner),
            runner: Mutex::new(None),
        })
    }

    /// The simulation delays in use.
    pub fn sim(&self) -> &SimConfig {
        &self.inner.sim
    }

    /// Starts the timer task that ends transient states. Must be called inside a tokio
    /// runtime; a second call does nothing.
    pub fn start(&self) {
        let mut runner = self.runner.lock().unwrap_or_else(|p| p.into_inner());
        if runner.is_some() {
            return;
        }
        let (stop, stop_rx) = watch::channel(false);
        let task = tokio::spawn(run_timers(self.inner.clone(), stop_rx));
        *runner = Some((stop, task));
    }

    /// Stops the timer task after the step it is applying; pending steps stay stored.
    pub async fn stop(&self) {
        let runner = self.runner.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some((stop, task)) = runner {
            let _ = stop.send(true);
            if let Err(e) = task.await {
                tracing::error!(error = %e, "simulated cloud timer task failed");
            }
        }
    }
}

impl Drop for Cloud {
    fn drop(&mut self) {
        if let Some((stop, _)) = self
            .runner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
        {
            let _ = stop.send(true);
        }
    }
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// oned's object name rules (`PoolObjectSQL::name_is_valid`), with its texts.
pub(crate) fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("Invalid NAME, it cannot be empty".into());
    }
    if let Some(c) = name.chars().find(|c| {
        "&|:\\\";/'#{}$<>".contains(*c) || matches!(c, '\t' | '\n' | '\u{b}' | '\u{c}' | '\r')
    }) {
        return Err(format!("Invalid NAME, char '{c}' is not allowed"));
    }
    if name.chars().count() > 128 {
        return Err("Invalid NAME, max length is 128 chars".into());
    }
    Ok(())
}

/// The next id of a pool, from `pool_control`.
pub(crate) fn next_oid(tx: &Transaction<'_>, table: &str) -> rusqlite::Result<i64> {
    tx.run(
        "INSERT OR IGNORE INTO pool_control (tablename, last_oid) VALUES (?1, -1)",
        [table],
    )?;
    tx.one(
        "UPDATE pool_control SET last_oid = last_oid + 1 WHERE tablename = ?1 RETURNING last_oid",
        [table],
        |r| r.get(0),
    )
}

impl Inner {
    /// Runs `f` in one transaction; wakes the event sender once it committed events.
    pub(crate) fn apply<T>(
        &self,
        f: impl FnOnce(&mut Change<'_>) -> Result<T, OpError>,
    ) -> Result<T, OpError> {
        let now_ms = now_ms();
        let (value, events) = self.db.write(|tx| {
            let mut change = Change {
                tx,
                inner: self,
                now_ms,
                events: 0,
            };
            let value = f(&mut change)?;
            Ok::<_, OpError>((value, change.events))
        })?;
        if events > 0 {
            let bus = self.bus.clone();
            self.db.after_commit(move || bus.notify());
        }
        Ok(value)
    }

    /// Applies the due steps of `keys`, each in a savepoint so that one broken object does not
    /// hold the others back.
    fn fire(&self, keys: &[ObjKey]) {
        let result = self.apply(|ch| {
            for key in keys {
                ch.tx.run("SAVEPOINT step", [])?;
                let r = match *key {
                    ObjKey::Vm(id) => ch.vm_step(id),
                    ObjKey::Host(id) => ch.host_step(id),
                    ObjKey::Image(id) => ch.image_step(id),
                };
                match r {
                    Ok(()) => {
                        ch.tx.run("RELEASE step", [])?;
                    }
                    Err(e) => {
                        ch.tx.execute_batch("ROLLBACK TO step; RELEASE step")?;
                        tracing::error!(object = ?key, error = ?e, "simulated step failed; retrying later");
                        self.timers.set(*key, Some(ch.now_ms + millis(STEP_RETRY)));
                    }
                }
            }
            Ok(())
        });
        if let Err(e) = result {
            tracing::error!(count = keys.len(), error = ?e, "simulated steps failed; retrying later");
            let retry = now_ms() + millis(STEP_RETRY);
            for key in keys {
                self.timers.set(*key, Some(retry));
            }
        }
    }
}

async fn run_timers(inner: Arc<Inner>, mut stop: watch::Receiver<bool>) {
    loop {
        if *stop.borrow() {
            break;
        }
        let now = now_ms();
        let due = inner.timers.take_due(now, STEP_BATCH);
        if !due.is_empty() {
            let worker = inner.clone();
            if let Err(e) = tokio::task::spawn_blocking(move || worker.fire(&due)).await {
                tracing::error!(error = %e, "simulated step task failed");
            }
            continue;
        }
        let wait = inner
            .timers
            .next_due()
            .map_or(Duration::from_secs(3600), |d| {
                Duration::from_millis(u64::try_from(d.saturating_sub(now)).unwrap_or(0))
            });
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = inner.timers.notify.notified() => {}
            changed = stop.changed() => {
                if changed.is_err() {
                    break;
                }
            }
        }
    }
}

/// One transaction of the cloud: stores objects, emits their STATE events and keeps the timer
/// index in step with what is stored.
pub(crate) struct Change<'a> {
    pub(crate) tx: &'a Transaction<'a>,
    inner: &'a Inner,
    pub(crate) now_ms: i64,
    events: usize,
}

fn vm_event(vm: &Vm, body: String) -> StateEvent {
    StateEvent {
        object: ObjectKind::Vm,
        state: vm.state.name().to_string(),
        lcm_state: Some(vm.lcm.name().to_string()),
        resource_id: vm.id,
        service_id: vm.service_id(),
        remote_host: vm.last_history().map(|h| h.hostname.clone()),
        body,
    }
}

impl Change<'_> {
    pub(crate) fn now_s(&self) -> i64 {
        self.now_ms / 1000
    }

    fn emit(&mut self, event: &StateEvent) -> rusqlite::Result<()> {
        self.inner.bus.enqueue_state(self.tx, event)?;
        self.events += 1;
        Ok(())
    }

    pub(crate) fn due_after(&self, d: Duration) -> i64 {
        self.now_ms.saturating_add(millis(d))
    }

    /// Stores a new VM and emits its allocation event (always, as oned does).
    pub(crate) fn insert_vm(&mut self, vm: &mut Vm) -> Result<(), OpError> {
        let body = vm.to_xml((vm.state, vm.lcm), HistoryDump::All);
        self.emit(&vm_event(vm, body))?;
        vm.prev_state = vm.state;
        vm.prev_lcm = vm.lcm;
        vm::store(self.tx, vm)?;
        Ok(())
    }

    /// Stores a VM; when (STATE, LCM_STATE) changed, emits the event (the body carries the
    /// previous pair) and sets the due time of the new state.
    pub(crate) fn save_vm(&mut self, vm: &mut Vm) -> Result<(), OpError> {
        if (vm.state, vm.lcm) != (vm.prev_state, vm.prev_lcm) {
            let body = vm.to_xml((vm.prev_state, vm.prev_lcm), HistoryDump::All);
            self.emit(&vm_event(vm, body))?;
            vm.prev_state = vm.state;
            vm.prev_lcm = vm.lcm;
            vm.due_ms = lifecycle::step_delay(vm, &self.inner.sim).map(|d| self.due_after(d));
        }
        vm::store(self.tx, vm)?;
        self.inner.timers.set(ObjKey::Vm(vm.id), vm.due_ms);
        Ok(())
    }

    fn host_body(&self, h: &Host, prev: HostState) -> rusqlite::Result<String> {
        let vms = vm::usage_on_host(self.tx, h.id)?;
        Ok(h.to_xml(prev, &vms))
    }

    fn host_event(&mut self, h: &Host, prev: HostState) -> rusqlite::Result<()> {
        let body = self.host_body(h, prev)?;
        self.emit(&StateEvent {
            object: ObjectKind::Host,
            state: h.state.name().to_string(),
            lcm_state: None,
            resource_id: h.id,
            service_id: None,
            remote_host: Some(h.name.clone()),
            body,
        })
    }

    /// Stores a new host and emits its allocation event.
    pub(crate) fn insert_host(&mut self, h: &mut Host) -> Result<(), OpError> {
        self.host_event(h, h.state)?;
        h.prev_state = h.state;
        host::store(self.tx, h)?;
        self.inner.timers.set(ObjKey::Host(h.id), h.due_ms());
        Ok(())
    }

    /// Stores a host, emitting an event when its state changed.
    pub(crate) fn save_host(&mut self, h: &mut Host) -> Result<(), OpError> {
        if h.state != h.prev_state {
            self.host_event(h, h.prev_state)?;
            h.prev_state = h.state;
        }
        host::store(self.tx, h)?;
        self.inner.timers.set(ObjKey::Host(h.id), h.due_ms());
        Ok(())
    }

    /// Stores an image, emitting an event when its state changed.
    pub(crate) fn save_image(&mut self, i: &mut Image) -> Result<(), OpError> {
        if i.state != i.prev_state {
            let body = i.to_xml(i.prev_state);
            self.emit(&StateEvent {
                object: ObjectKind::Image,
                state: i.state.event_name().to_string(),
                lcm_state: None,
                resource_id: i.id,
                service_id: None,
                remote_host: None,
                body,
            })?;
            i.prev_state = i.state;
        }
        image::store(self.tx, i)?;
        self.inner.timers.set(ObjKey::Image(i.id), i.due_ms);
        Ok(())
    }

    /// The host is monitored: MONITORED with its capacity.
    fn host_monitored(h: &mut Host) {
        h.state = HostState::Monitored;
        h.total_cpu = host::SIM_TOTAL_CPU;
        h.total_mem = host::SIM_TOTAL_MEM;
        h.template.remove("ERROR");
    }

    /// The host crashed: ERROR (unless DISABLED or OFFLINE, as oned's `Host::error`), and its
    /// RUNNING VMs UNKNOWN.
    pub(crate) fn host_fail(&mut self, h: &mut Host, message: &str) -> Result<(), OpError> {
        h.failed = true;
        h.template.set(
            "ERROR",
            format!("Error monitoring Host {} ({}): {message}", h.name, h.id),
        );
        if !matches!(h.state, HostState::Offline | HostState::Disabled) {
            h.state = HostState::Error;
        }
        self.save_host(h)?;
        for mut vm in vm::on_host(self.tx, h.id)? {
            lifecycle::monitor_unknown(&mut vm, self)?;
        }
        Ok(())
    }

    /// The host is back from a crash: MONITORED, and its RUNNING or UNKNOWN VMs powered off by
    /// the monitor.
    pub(crate) fn host_recover(&mut self, h: &mut Host) -> Result<(), OpError> {
        h.failed = false;
        h.recover_due_ms = None;
        h.template.remove("ERROR");
        if h.state == HostState::Error {
            Self::host_monitored(h);
        }
        self.save_host(h)?;
        let now = self.now_s();
        for mut vm in vm::on_host(self.tx, h.id)? {
            lifecycle::monitor_poweroff(&mut vm, now, self)?;
        }
        Ok(())
    }

    fn host_step(&mut self, id: i64) -> Result<(), OpError> {
        let Some(mut h) = host::load(self.tx, id)? else {
            return Ok(());
        };
        let now = self.now_ms;
        if h.monitor_due_ms.is_some_and(|d| d <= now) {
            h.monitor_due_ms = None;
            if h.state == HostState::Init {
                if h.failed {
                    self.host_fail(&mut h, "host unreachable")?;
                } else {
                    Self::host_monitored(&mut h);
                }
            }
        }
        if h.recover_due_ms.is_some_and(|d| d <= now) {
            h.recover_due_ms = None;
            if h.failed {
                self.host_recover(&mut h)?;
            }
        }
        self.save_host(&mut h)
    }

    fn vm_step(&mut self, id: i64) -> Result<(), OpError> {
        let Some(mut vm) = vm::load(self.tx, id)? else {
            return Ok(());
        };
        match vm.due_ms {
            None => return Ok(()),
            Some(d) if d > self.now_ms => {
                self.inner.timers.set(ObjKey::Vm(id), Some(d));
                return Ok(());
            }
            Some(_) => vm.due_ms = None,
        }
        if vm.state == VmState::Pending {
            return self.schedule_vm(vm);
        }
        let now = self.now_s();
        if !lifecycle::advance(&mut vm, now, self)? {
            return self.save_vm(&mut vm);
        }
        // A VM that finishes booting on a crashed host is not seen by the monitor.
        if vm.state == VmState::Active
            && vm.lcm == LcmState::Running
            && let Some(h) = host::load(self.tx, vm.hid)?
            && h.failed
        {
            lifecycle::monitor_unknown(&mut vm, self)?;
        }
        Ok(())
    }

    /// The simulated scheduler: a resumed STOPPED/UNDEPLOYED VM goes back to its last host if
    /// that host can take it; otherwise it stays PENDING for `one.vm.deploy`.
    fn schedule_vm(&mut self, mut vm: Vm) -> Result<(), OpError> {
        let Some(hid) = vm.sched_hid.take() else {
            return self.save_vm(&mut vm);
        };
        let usable = host::load(self.tx, hid)?
            .filter(|h| matches!(h.state, HostState::Monitored) && !h.failed);
        let Some(h) = usable else {
            tracing::info!(
                vm = vm.id,
                host = hid,
                "no host for the resumed VM; it stays PENDING until deployed"
            );
            return self.save_vm(&mut vm);
        };
        let placement = Placement {
            hid: h.id,
            hostname: h.name.clone(),
            vm_mad: h.vm_mad.clone(),
        };
        let now = self.now_s();
        match lifecycle::deploy(&mut vm, &placement, Actor::MONITOR, now, self) {
            Ok(()) => Ok(()),
            Err(lifecycle::LcError::Op(e)) => Err(e),
            Err(lifecycle::LcError::Refused(reason)) => {
                tracing::warn!(vm = vm.id, reason = %reason, "cannot re-deploy the resumed VM");
                self.save_vm(&mut vm)
            }
        }
    }

    fn image_step(&mut self, id: i64) -> Result<(), OpError> {
        let Some(mut i) = image::load(self.tx, id)? else {
            return Ok(());
        };
        match i.due_ms {
            None => return Ok(()),
            Some(d) if d > self.now_ms => {
                self.inner.timers.set(ObjKey::Image(id), Some(d));
                return Ok(());
            }
            Some(_) => i.due_ms = None,
        }
        match i.state {
            ImageState::Locked => {
                if i.source.is_empty() {
                    i.source = format!("/var/lib/one/datastores/{}/image-{}", i.ds_id, i.id);
                }
                if i.format.is_empty() {
                    i.format = "raw".to_string();
                }
                i.state = ImageState::Ready;
                self.save_image(&mut i)
            }
            ImageState::Delete => {
                image::delete(self.tx, id)?;
                self.inner.timers.set(ObjKey::Image(id), None);
                Ok(())
            }
            _ => self.save_image(&mut i),
        }
    }
}

impl Persist for Change<'_> {
    fn persist(&mut self, vm: &mut Vm) -> Result<(), OpError> {
        self.save_vm(vm)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_oned_rules() {
        assert!(check_name("node-1.example").is_ok());
        assert_eq!(
            check_name("").unwrap_err(),
            "Invalid NAME, it cannot be empty"
        );
        assert_eq!(
            check_name("a/b").unwrap_err(),
            "Invalid NAME, char '/' is not allowed"
        );
        assert_eq!(
            check_name(&"x".repeat(129)).unwrap_err(),
            "Invalid NAME, max length is 128 chars"
        );
    }
}
