//! The XML-RPC methods of the simulated cloud (parameters after the session, in order):
//!
//! | method | parameters | value |
//! |---|---|---|
//! | `one.host.allocate` | name, im_mad, vmm_mad, [cluster_id] | host id |
//! | `one.host.info` | id, [decrypt] | HOST |
//! | `one.host.delete` | id | id |
//! | `one.host.status` | id, status (0 enable, 1 disable, 2 offline) | id |
//! | `one.hostpool.info` | — | HOST_POOL |
//! | `one.hostsim.fail` | id, [message] | id |
//! | `one.hostsim.recover` | id | id |
//! | `one.hostsim.reboot` | id, [down_ms] | id |
//! | `one.vm.allocate` | template, [hold] | VM id |
//! | `one.vm.info` | id, [decrypt] | VM (extended) |
//! | `one.vm.deploy` | id, host_id, [enforce], [ds_id], [extra template] | id |
//! | `one.vm.action` | action name, id | id |
//! | `one.vm.update` | id, template, [mode: 0 replace, 1 merge] | id |
//! | `one.vmpool.info`, `one.vmpool.infoextended` | [filter], [start], [end], [state] | VM_POOL |
//! | `one.image.allocate` | template, ds_id, [no_check_capacity] | image id |
//! | `one.image.info` | id, [decrypt] | IMAGE |
//! | `one.image.delete` | id, [force] | id |
//! | `one.image.enable` | id, enable | id |
//! | `one.imagepool.info` | [filter], [start], [end] | IMAGE_POOL |
//!
//! Hosts need an oneadmin-group user; VMs and images their owner or an oneadmin-group user,
//! except `one.vm.deploy`, which is an admin operation as in oned.

use one_proto::states::{HostState, ImageState, VmState};
use one_proto::template::Template;
use one_proto::xmlrpc::Value;

use super::host::{self, Host};
use super::image::{self, Image};
use super::lifecycle::{self, Actor, LcError, Placement, VmAction};
use super::vm::{self, HistoryDump, NO_HOST, Vm};
use super::{Inner, OpError, check_name, next_oid};
use crate::AppState;
use crate::call::{ApiError, ApiOk, CallError, CallResult, Caller, ErrorCode, Params, int_value};

/// The longest simulated reboot accepted (one hour).
const MAX_REBOOT_MS: i64 = 3_600_000;

pub(crate) fn dispatch(
    state: &AppState,
    caller: &Caller,
    method: &str,
    p: &Params<'_>,
) -> Option<CallResult> {
    let cloud = &*state.cloud.inner;
    let actor = || Actor {
        uid: caller.uid,
        gid: caller.gid,
        req_id: state.next_request_id(),
    };
    Some(match method {
        "one.host.allocate" => host_allocate(cloud, caller, p),
        "one.host.info" => host_info(cloud, caller, p),
        "one.host.delete" => host_delete(cloud, caller, p),
        "one.host.status" => host_status(cloud, caller, p),
        "one.hostpool.info" => host_pool(cloud, caller),
        "one.hostsim.fail" => host_fail(cloud, caller, p),
        "one.hostsim.recover" => host_recover(cloud, caller, p),
        "one.hostsim.reboot" => host_reboot(cloud, caller, p),
        "one.vm.allocate" => vm_allocate(cloud, caller, p),
        "one.vm.info" => vm_info(cloud, caller, p),
        "one.vm.deploy" => vm_deploy(cloud, caller, p, actor()),
        "one.vm.action" => vm_action(cloud, caller, p, actor()),
        "one.vm.update" => vm_update(cloud, caller, p),
        "one.vmpool.info" => vm_pool(cloud, caller, p, HistoryDump::Last),
        "one.vmpool.infoextended" => vm_pool(cloud, caller, p, HistoryDump::All),
        "one.image.allocate" => image_allocate(cloud, caller, p),
        "one.image.info" => image_info(cloud, caller, p),
        "one.image.delete" => image_delete(cloud, caller, p),
        "one.image.enable" => image_enable(cloud, caller, p),
        "one.imagepool.info" => image_pool(cloud, caller, p),
        _ => return None,
    })
}

/// Turns an operation's error into the call's: database errors are logged and reported as
/// INTERNAL without their details.
fn done<T>(r: Result<T, OpError>, resp_id: i64) -> Result<T, CallError> {
    r.map_err(|e| match e {
        OpError::Api(e) => CallError::Api(e),
        OpError::Store(e) => {
            tracing::error!(error = %e, "simulated cloud database error");
            CallError::Api(ApiError::internal(
                "Internal error: the database is not available.",
                resp_id,
            ))
        }
    })
}

fn read<T>(
    cloud: &Inner,
    f: impl FnOnce(&rusqlite::Connection) -> Result<T, OpError>,
) -> Result<T, OpError> {
    cloud.db.read(f)
}

fn require_admin(caller: &Caller, op: &str, object: &str, id: Option<i64>) -> Result<(), ApiError> {
    if caller.is_admin() {
        return Ok(());
    }
    let target = id.map(|i| format!(" [{i}]")).unwrap_or_default();
    Err(ApiError::authorization(
        caller,
        &format!("Not authorized to perform {op} {object}{target}"),
        id.unwrap_or(-1),
    ))
}

fn require_owner(
    caller: &Caller,
    owner: i64,
    op: &str,
    object: &str,
    id: i64,
) -> Result<(), ApiError> {
    if caller.uid == owner {
        return Ok(());
    }
    require_admin(caller, op, object, Some(id))
}

/// The owner filter of a pool listing: non-admins see their own objects only.
fn owner_filter(caller: &Caller, filter: i64) -> Option<i64> {
    if !caller.is_admin() || filter == -3 {
        Some(caller.uid)
    } else if filter >= 0 {
        Some(filter)
    } else {
        None
    }
}

fn group_name(c: &rusqlite::Connection, gid: i64) -> rusqlite::Result<String> {
    Ok(crate::users::group_name(c, gid)?.unwrap_or_else(|| gid.to_string()))
}

fn refused(e: LcError, wrap: impl FnOnce(String) -> ApiError) -> OpError {
    match e {
        LcError::Refused(m) => OpError::Api(wrap(m)),
        LcError::Op(e) => e,
    }
}

// ------------------------------------------------------------------------------------------
// Hosts

fn load_host(c: &rusqlite::Connection, id: i64) -> Result<Host, OpError> {
    host::load(c, id)?.ok_or_else(|| OpError::Api(ApiError::no_exists("host", id)))
}

fn host_xml(c: &rusqlite::Connection, h: &Host) -> Result<String, OpError> {
    let vms = vm::usage_on_host(c, h.id)?;
    Ok(h.to_xml(h.prev_state, &vms))
}

fn host_allocate(cloud: &Inner, caller: &Caller, p: &Params<'_>) -> CallResult {
    let name = p.string(0)?;
    let im_mad = p.string(1)?;
    let vm_mad = p.string(2)?;
    let cluster = p.opt_int(3)?.unwrap_or(-1);
    require_admin(caller, "CREATE", "HOST", None)?;
    if cluster != -1 && cluster != 0 {
        return Err(ApiError::no_exists("cluster", cluster).into());
    }
    check_name(name).map_err(|m| ApiError::internal(m, -1))?;
    let r = cloud.apply(|ch| {
        if let Some(other) = host::id_by_name(ch.tx, name)? {
            return Err(
                ApiError::internal(format!("NAME is already taken by HOST {other}."), -1).into(),
            );
        }
        let id = next_oid(ch.tx, "host_pool")?;
        let mut h = Host {
            id,
            name: name.to_string(),
            state: HostState::Init,
            prev_state: HostState::Init,
            im_mad: im_mad.to_string(),
            vm_mad: vm_mad.to_string(),
            cluster_id: 0,
            template: Template::new(),
            failed: false,
            total_cpu: 0,
            total_mem: 0,
            monitor_due_ms: Some(ch.due_after(cloud.sim.monitor)),
            recover_due_ms: None,
        };
        ch.insert_host(&mut h)?;
        let xml = host_xml(ch.tx, &h)?;
        Ok((id, xml))
    });
    let (id, xml) = done(r, -1)?;
    Ok(ApiOk::with_extra(int_value(id), xml))
}

fn host_info(cloud: &Inner, caller: &Caller, p: &Params<'_>) -> CallResult {
    let id = p.int(0)?;
    p.opt_bool(1)?;
    require_admin(caller, "USE", "HOST", Some(id))?;
    let xml = done(read(cloud, |c| host_xml(c, &load_host(c, id)?)), id)?;
    Ok(ApiOk::new(Value::String(xml)))
}

fn host_delete(cloud: &Inner, caller: &Caller, p: &Params<'_>) -> CallResult {
    let id = p.int(0)?;
    require_admin(caller, "ADMIN", "HOST", Some(id))?;
    let r = cloud.apply(|ch| {
        let h = load_host(ch.tx, id)?;
        if !vm::usage_on_host(ch.tx, id)?.is_empty() {
            return Err(ApiError::action(
                "Cannot delete host. Can not remove a host with running VMs",
                id,
            )
            .into());
        }
        let xml = host_xml(ch.tx, &h)?;
        host::delete(ch.tx, id)?;
        cloud.timers.set(super::ObjKey::Host(id), None);
        Ok(xml)
    });
    let xml = done(r, id)?;
    Ok(ApiOk::with_extra(int_value(id), xml))
}

fn host_status(cloud: &Inner, caller: &Caller, p: &Params<'_>) -> CallResult {
    let id = p.int(0)?;
    let status = p.int(1)?;
    require_admin(caller, "ADMIN", "HOST", Some(id))?;
    let r = cloud.apply(|ch| {
        let mut h = load_host(ch.tx, id)?;
        match status {
            0 => {
                // oned's Host::enable: straight back to MONITORED from DISABLED when the host
                // has been monitored before, else INIT until the next monitoring.
                if h.state == HostState::Disabled && h.total_cpu > 0 && !h.failed {
                    h.state = HostState::Monitored;
                } else {
                    h.state = HostState::Init;
                    h.monitor_due_ms = Some(ch.due_after(cloud.sim.monitor));
                }
            }
            1 => {
                h.state = HostState::Disabled;
                h.monitor_due_ms = None;
            }
            2 => {
                h.state = HostState::Offline;
                h.monitor_due_ms = None;
                h.total_cpu = 0;
                h.total_mem = 0;
            }
            _ => return Err(ApiError::internal("Wrong status code", id).into()),
        }
        ch.save_host(&mut h)
    });
    done(r, id)?;
    Ok(ApiOk::id(id))
}

fn host_pool(cloud: &Inner, caller: &Caller) -> CallResult {
    let r = read(cloud, |c| {
        let mut out = String::from("<HOST_POOL>");
        if caller.is_admin() {
            for h in host::list(c, cloud.list_desc)? {
                out.push_str(&host_xml(c, &h)?);
            }
        }
        out.push_str("</HOST_POOL>");
        Ok(out)
    });
    Ok(ApiOk::new(Value::String(done(r, -1)?)))
}

fn host_fail(cloud: &Inner, caller: &Caller, p: &Params<'_>) -> CallResult {
    let id = p.int(0)?;
    let message = p
        .opt_string(1)?
        .unwrap_or("simulated host failure")
        .to_string();
    require_admin(caller, "ADMIN", "HOST", Some(id))?;
    let r = cloud.apply(|ch| {
        let mut h = load_host(ch.tx, id)?;
        if h.state == HostState::Offline {
            return Err(
                ApiError::action(format!("Host {id} is OFFLINE, it cannot fail"), id).into(),
            );
        }
        // A plain failure lasts until recovered: it cancels a pending reboot recovery.
        h.recover_due_ms = None;
        ch.host_fail(&mut h, &message)
    });
    done(r, id)?;
    Ok(ApiOk::id(id))
}

fn host_recover(cloud: &Inner, caller: &Caller, p: &Params<'_>) -> CallResult {
    let id = p.int(0)?;
    require_admin(caller, "ADMIN", "HOST", Some(id))?;
    let r = cloud.apply(|ch| {
        let mut h = load_host(ch.tx, id)?;
        if !h.failed {
            return Err(ApiError::action(format!("Host {id} has not failed"), id).into());
        }
        ch.host_recover(&mut h)
    });
    done(r, id)?;
    Ok(ApiOk::id(id))
}

fn host_reboot(cloud: &Inner, caller: &Caller, p: &Params<'_>) -> CallResult {
    let id = p.int(0)?;
    let down_ms = p
        .opt_int(1)?
        .unwrap_or_else(|| i64::try_from(cloud.sim.reboot.as_millis()).unwrap_or(MAX_REBOOT_MS));
    require_admin(caller, "ADMIN", "HOST", Some(id))?;
    if !(0..=MAX_REBOOT_MS).contains(&down_ms) {
        return Err(ApiError::new(
            ErrorCode::RpcApi,
            format!("Reboot time must be between 0 and {MAX_REBOOT_MS} ms"),
            id,
        )
        .into());
    }
    let r = cloud.apply(|ch| {
        let mut h = load_host(ch.tx, id)?;
        if h.state == HostState::Offline {
            return Err(
                ApiError::action(format!("Host {id} is OFFLINE, it cannot reboot"), id).into(),
            );
        }
        h.recover_due_ms = Some(ch.now_ms.saturating_add(down_ms));
        if h.failed {
            ch.save_host(&mut h)
        } else {
            ch.host_fail(&mut h, "host rebooting")
        }
    });
    done(r, id)?;
    Ok(ApiOk::id(id))
}

// ------------------------------------------------------------------------------------------
// VMs

fn load_vm(c: &rusqlite::Connection, id: i64) -> Result<Vm, OpError> {
    vm::load(c, id)?.ok_or_else(|| OpError::Api(ApiError::no_exists("virtual machine", id)))
}

fn vm_allocate(cloud: &Inner, caller: &Caller, p: &Params<'_>) -> CallResult {
    let text = p.string(0)?;
    let hold = p.opt_bool(1)?.unwrap_or(false);
    let parsed = Template::parse(text).map_err(|e| ApiError::internal(e.oned_message(), -1))?;
    let r = cloud.apply(|ch| {
        let id = next_oid(ch.tx, "vm_pool")?;
        let a = vm::split_template(parsed, id).map_err(|m| ApiError::internal(m, -1))?;
        for (t, root) in [
            (&a.template, "TEMPLATE"),
            (&a.user_template, "USER_TEMPLATE"),
        ] {
            vm::check_xml(t, root).map_err(|m| ApiError::internal(m, -1))?;
        }
        let state = if hold || a.hold {
            VmState::Hold
        } else {
            VmState::Pending
        };
        let mut v = Vm {
            id,
            uid: caller.uid,
            gid: caller.gid,
            uname: caller.name.clone(),
            gname: group_name(ch.tx, caller.gid)?,
            name: a.name,
            state,
            lcm: one_proto::states::LcmState::LcmInit,
            prev_state: state,
            prev_lcm: one_proto::states::LcmState::LcmInit,
            resched: false,
            stime: ch.now_s(),
            etime: 0,
            deploy_id: String::new(),
            template: a.template,
            user_template: a.user_template,
            hid: NO_HOST,
            due_ms: None,
            sched_hid: None,
            history: Vec::new(),
        };
        ch.insert_vm(&mut v)?;
        Ok((id, v.to_xml((v.prev_state, v.prev_lcm), HistoryDump::Last)))
    });
    let (id, xml) = done(r, -1)?;
    Ok(ApiOk::with_extra(int_value(id), xml))
}

fn vm_info(cloud: &Inner, caller: &Caller, p: &Params<'_>) -> CallResult {
    let id = p.int(0)?;
    p.opt_bool(1)?;
    let r = read(cloud, |c| {
        let v = load_vm(c, id)?;
        require_owner(caller, v.uid, "USE", "VM", id)?;
        Ok(v.to_xml((v.prev_state, v.prev_lcm), HistoryDump::All))
    });
    Ok(ApiOk::new(Value::String(done(r, id)?)))
}

fn vm_deploy(cloud: &Inner, caller: &Caller, p: &Params<'_>, actor: Actor) -> CallResult {
    let id = p.int(0)?;
    let hid = p.int(1)?;
    p.opt_bool(2)?;
    p.opt_int(3)?;
    p.opt_string(4)?;
    let r = cloud.apply(|ch| {
        let h = load_host(ch.tx, hid)?;
        if h.state == HostState::Offline {
            return Err(ApiError::action("Host is offline, cannot use it to deploy VM", id).into());
        }
        let mut v = load_vm(ch.tx, id)?;
        require_admin(caller, "ADMIN", "VM", Some(id))?;
        let placement = Placement {
            hid: h.id,
            hostname: h.name.clone(),
            vm_mad: h.vm_mad.clone(),
        };
        let now = ch.now_s();
        lifecycle::deploy(&mut v, &placement, actor, now, ch)
            .map_err(|e| refused(e, |m| ApiError::action(m, id)))
    });
    done(r, id)?;
    Ok(ApiOk::id(id))
}

fn vm_action(cloud: &Inner, caller: &Caller, p: &Params<'_>, actor: Actor) -> CallResult {
    let name = p.string(0)?;
    let id = p.int(1)?;
    let r = cloud.apply(|ch| {
        let mut v = load_vm(ch.tx, id)?;
        require_owner(caller, v.uid, "MANAGE", "VM", id)?;
        let Some(act) = VmAction::from_name(name) else {
            return Err(ApiError::action(format!("Action \"{name}\" is not supported"), id).into());
        };
        let now = ch.now_s();
        lifecycle::apply(&mut v, act, actor, now, ch).map_err(|e| {
            refused(e, |m| {
                ApiError::action(format!("Error performing action \"{name}\": {m}"), id)
            })
        })
    });
    done(r, id)?;
    Ok(ApiOk::id(id))
}

fn vm_update(cloud: &Inner, caller: &Caller, p: &Params<'_>) -> CallResult {
    let id = p.int(0)?;
    let text = p.string(1)?;
    let mode = p.opt_int(2)?.unwrap_or(0);
    let r = cloud.apply(|ch| {
        let mut v = load_vm(ch.tx, id)?;
        require_owner(caller, v.uid, "MANAGE", "VM", id)?;
        if mode != 0 && mode != 1 {
            return Err(ApiError::new(ErrorCode::RpcApi, "Wrong update type", id).into());
        }
        let cannot = |m: String| {
            OpError::Api(ApiError::internal(
                format!("Cannot update template. {m}"),
                id,
            ))
        };
        let parsed = Template::parse(text).map_err(|e| cannot(e.oned_message()))?;
        let mut user = if mode == 1 {
            v.user_template.clone()
        } else {
            Template::new()
        };
        user.merge(parsed);
        vm::check_xml(&user, "USER_TEMPLATE").map_err(cannot)?;
        v.user_template = user;
        ch.save_vm(&mut v)
    });
    done(r, id)?;
    Ok(ApiOk::id(id))
}

fn vm_pool(cloud: &Inner, caller: &Caller, p: &Params<'_>, dump: HistoryDump) -> CallResult {
    let filter = p.opt_int(0)?.unwrap_or(-2);
    let start = p.opt_int(1)?.unwrap_or(-1);
    let end = p.opt_int(2)?.unwrap_or(-1);
    let state = p.opt_int(3)?.unwrap_or(-1);
    let r = read(cloud, |c| {
        let mut out = String::from("<VM_POOL>");
        for v in vm::list(
            c,
            owner_filter(caller, filter),
            (start, end),
            state,
            cloud.list_desc,
        )? {
            out.push_str(&v.to_xml((v.prev_state, v.prev_lcm), dump));
        }
        out.push_str("</VM_POOL>");
        Ok(out)
    });
    Ok(ApiOk::new(Value::String(done(r, -1)?)))
}

// ------------------------------------------------------------------------------------------
// Images

fn load_image(c: &rusqlite::Connection, id: i64) -> Result<Image, OpError> {
    image::load(c, id)?.ok_or_else(|| OpError::Api(ApiError::no_exists("image", id)))
}

fn image_allocate(cloud: &Inner, caller: &Caller, p: &Params<'_>) -> CallResult {
    let text = p.string(0)?;
    let ds_id = p.int(1)?;
    p.opt_bool(2)?;
    let parsed = Template::parse(text).map_err(|e| ApiError::internal(e.oned_message(), -1))?;
    match ds_id {
        0 => {
            return Err(ApiError::action(
                "New images can only be allocated in a files or image datastore.",
                -1,
            )
            .into());
        }
        id if image::datastore_name(id).is_none() => {
            return Err(ApiError::no_exists("datastore", id).into());
        }
        _ => {}
    }
    let new = image::parse_allocation(parsed).map_err(|m| ApiError::internal(m, -1))?;
    let r = cloud.apply(|ch| {
        if let Some(other) = image::id_by_name(ch.tx, caller.uid, &new.name)? {
            return Err(
                ApiError::internal(format!("NAME is already taken by IMAGE {other}."), -1).into(),
            );
        }
        let id = next_oid(ch.tx, "image_pool")?;
        let i = Image {
            id,
            uid: caller.uid,
            gid: caller.gid,
            uname: caller.name.clone(),
            gname: group_name(ch.tx, caller.gid)?,
            name: new.name,
            itype: new.itype,
            persistent: new.persistent,
            regtime: ch.now_s(),
            source: new.source,
            path: new.path,
            format: new.format,
            fs: new.fs,
            size_mb: new.size_mb,
            state: ImageState::Locked,
            // As in oned, a new image was never stored in another state: its first change
            // (to READY) carries PREV_STATE INIT, and allocation itself emits nothing.
            prev_state: ImageState::Init,
            ds_id,
            template: new.template,
            due_ms: Some(ch.due_after(cloud.sim.image)),
        };
        image::store(ch.tx, &i)?;
        cloud.timers.set(super::ObjKey::Image(id), i.due_ms);
        Ok((id, i.to_xml(i.prev_state)))
    });
    let (id, xml) = done(r, -1)?;
    Ok(ApiOk::with_extra(int_value(id), xml))
}

fn image_info(cloud: &Inner, caller: &Caller, p: &Params<'_>) -> CallResult {
    let id = p.int(0)?;
    p.opt_bool(1)?;
    let r = read(cloud, |c| {
        let i = load_image(c, id)?;
        require_owner(caller, i.uid, "USE", "IMAGE", id)?;
        Ok(i.to_xml(i.prev_state))
    });
    Ok(ApiOk::new(Value::String(done(r, id)?)))
}

fn image_delete(cloud: &Inner, caller: &Caller, p: &Params<'_>) -> CallResult {
    let id = p.int(0)?;
    let force = p.opt_bool(1)?.unwrap_or(false);
    let r = cloud.apply(|ch| {
        let mut i = load_image(ch.tx, id)?;
        require_owner(caller, i.uid, "MANAGE", "IMAGE", id)?;
        match i.state {
            ImageState::Locked if !force => {
                return Err(ApiError::internal(
                    "Image locked, use --force flag to remove the image. Force delete may leave some files on Datastore",
                    id,
                )
                .into());
            }
            ImageState::Used | ImageState::UsedPers | ImageState::LockedUsed | ImageState::LockedUsedPers => {
                return Err(ApiError::action("Cannot delete image. There are VMs using it.", id).into());
            }
            _ => {}
        }
        let xml = i.to_xml(i.prev_state);
        if i.state != ImageState::Delete {
            i.state = ImageState::Delete;
            i.due_ms = Some(ch.due_after(cloud.sim.image));
        }
        ch.save_image(&mut i)?;
        Ok(xml)
    });
    let xml = done(r, id)?;
    Ok(ApiOk::with_extra(int_value(id), xml))
}

fn image_enable(cloud: &Inner, caller: &Caller, p: &Params<'_>) -> CallResult {
    let id = p.int(0)?;
    let enable = p.bool(1)?;
    let r = cloud.apply(|ch| {
        let mut i = load_image(ch.tx, id)?;
        require_owner(caller, i.uid, "MANAGE", "IMAGE", id)?;
        let next = match (enable, i.state) {
            (true, ImageState::Disabled | ImageState::Error | ImageState::Ready) => {
                ImageState::Ready
            }
            (false, ImageState::Ready | ImageState::Disabled) => ImageState::Disabled,
            (_, state) => {
                let verb = if enable { "enable" } else { "disable" };
                return Err(ApiError::internal(
                    format!(
                        "Could not {verb} image: Image cannot be in state {}.",
                        state.name()
                    ),
                    id,
                )
                .into());
            }
        };
        i.state = next;
        ch.save_image(&mut i)
    });
    done(r, id)?;
    Ok(ApiOk::id(id))
}

fn image_pool(cloud: &Inner, caller: &Caller, p: &Params<'_>) -> CallResult {
    let filter = p.opt_int(0)?.unwrap_or(-2);
    let start = p.opt_int(1)?.unwrap_or(-1);
    let end = p.opt_int(2)?.unwrap_or(-1);
    let r = read(cloud, |c| {
        let mut out = String::from("<IMAGE_POOL>");
        for i in image::list(
            c,
            owner_filter(caller, filter),
            (start, end),
            cloud.list_desc,
        )? {
            out.push_str(&i.to_xml(i.prev_state));
        }
        out.push_str("</IMAGE_POOL>");
        Ok(out)
    });
    Ok(ApiOk::new(Value::String(done(r, -1)?)))
}
