//! `one.vm.*` and `one.vmpool.*`, parameters after the session, in order:
//!
//! | method | parameters | value |
//! |---|---|---|
//! | `one.vm.allocate` | template, [hold] | VM id |
//! | `one.vm.info` | id, [decrypt] | VM (extended) |
//! | `one.vm.deploy` | id, host_id, [enforce], [ds_id], [extra template] | id |
//! | `one.vm.action` | action name, id | id |
//! | `one.vm.update` | id, template, [mode: 0 replace, 1 merge] | id |
//! | `one.vmpool.info`, `one.vmpool.infoextended` | [filter], [start], [end], [state] | VM_POOL |
//!
//! A VM needs its owner or an oneadmin-group user, except `one.vm.deploy`, which is an admin
//! operation as in oned.

use one_proto::states::{HostState, VmState};
use one_proto::template::Template;
use one_proto::xmlrpc::Value;

use super::host::load_host;
use super::objects::{
    actor, done, group_name, owner_filter, read, refused, require_admin, require_owner,
};
use crate::AppState;
use crate::call::{ApiError, ApiOk, CallResult, Caller, ErrorCode, Params, int_value};
use crate::cloud::lifecycle::{self, Placement, VmAction};
use crate::cloud::vm::{self, HistoryDump, NO_HOST, Vm};
use crate::cloud::{Inner, OpError, next_oid};

pub(super) fn load_vm(c: &rusqlite::Connection, id: i64) -> Result<Vm, OpError> {
    vm::load(c, id)?.ok_or_else(|| OpError::Api(ApiError::no_exists("virtual machine", id)))
}

pub(super) fn allocate(state: &AppState, caller: &Caller, p: &Params<'_>) -> CallResult {
    let cloud = state.cloud.inner();
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

pub(super) fn info(state: &AppState, caller: &Caller, p: &Params<'_>) -> CallResult {
    let cloud = state.cloud.inner();
    let id = p.int(0)?;
    p.opt_bool(1)?;
    let r = read(cloud, |c| {
        let v = load_vm(c, id)?;
        require_owner(caller, v.uid, "USE", "VM", id)?;
        Ok(v.to_xml((v.prev_state, v.prev_lcm), HistoryDump::All))
    });
    Ok(ApiOk::new(Value::String(done(r, id)?)))
}

pub(super) fn deploy(state: &AppState, caller: &Caller, p: &Params<'_>) -> CallResult {
    let cloud = state.cloud.inner();
    let actor = actor(state, caller);
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

pub(super) fn action(state: &AppState, caller: &Caller, p: &Params<'_>) -> CallResult {
    let cloud = state.cloud.inner();
    let actor = actor(state, caller);
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

pub(super) fn update(state: &AppState, caller: &Caller, p: &Params<'_>) -> CallResult {
    let cloud = state.cloud.inner();
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

fn pool(cloud: &Inner, caller: &Caller, p: &Params<'_>, dump: HistoryDump) -> CallResult {
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

pub(super) fn pool_info(state: &AppState, caller: &Caller, p: &Params<'_>) -> CallResult {
    pool(state.cloud.inner(), caller, p, HistoryDump::Last)
}

pub(super) fn pool_info_extended(state: &AppState, caller: &Caller, p: &Params<'_>) -> CallResult {
    pool(state.cloud.inner(), caller, p, HistoryDump::All)
}
