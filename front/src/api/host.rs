//! `one.host.*`, `one.hostpool.info` and our `one.hostsim.*` (ARCHITECTURE.md, "Host failure
//! simulation"), parameters after the session, in order:
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
//!
//! Every one needs an oneadmin-group user.

use one_proto::states::HostState;
use one_proto::template::Template;
use one_proto::xmlrpc::Value;

use super::objects::{done, read, require_admin};
use crate::AppState;
use crate::call::{ApiError, ApiOk, CallResult, Caller, ErrorCode, Params, int_value};
use crate::cloud::host::{self, Host};
use crate::cloud::vm;
use crate::cloud::{ObjKey, OpError, check_name, next_oid};

/// The longest simulated reboot accepted (one hour).
const MAX_REBOOT_MS: i64 = 3_600_000;

pub(super) fn load_host(c: &rusqlite::Connection, id: i64) -> Result<Host, OpError> {
    host::load(c, id)?.ok_or_else(|| OpError::Api(ApiError::no_exists("host", id)))
}

pub(super) fn host_xml(c: &rusqlite::Connection, h: &Host) -> Result<String, OpError> {
    let vms = vm::usage_on_host(c, h.id)?;
    Ok(h.to_xml(h.prev_state, &vms))
}

pub(super) fn allocate(state: &AppState, caller: &Caller, p: &Params<'_>) -> CallResult {
    let cloud = state.cloud.inner();
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

pub(super) fn info(state: &AppState, caller: &Caller, p: &Params<'_>) -> CallResult {
    let cloud = state.cloud.inner();
    let id = p.int(0)?;
    p.opt_bool(1)?;
    require_admin(caller, "USE", "HOST", Some(id))?;
    let xml = done(read(cloud, |c| host_xml(c, &load_host(c, id)?)), id)?;
    Ok(ApiOk::new(Value::String(xml)))
}

pub(super) fn delete(state: &AppState, caller: &Caller, p: &Params<'_>) -> CallResult {
    let cloud = state.cloud.inner();
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
        cloud.timers.set(ObjKey::Host(id), None);
        Ok(xml)
    });
    let xml = done(r, id)?;
    Ok(ApiOk::with_extra(int_value(id), xml))
}

pub(super) fn status(state: &AppState, caller: &Caller, p: &Params<'_>) -> CallResult {
    let cloud = state.cloud.inner();
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

pub(super) fn pool_info(state: &AppState, caller: &Caller, _p: &Params<'_>) -> CallResult {
    let cloud = state.cloud.inner();
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

pub(super) fn sim_fail(state: &AppState, caller: &Caller, p: &Params<'_>) -> CallResult {
    let cloud = state.cloud.inner();
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

pub(super) fn sim_recover(state: &AppState, caller: &Caller, p: &Params<'_>) -> CallResult {
    let cloud = state.cloud.inner();
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

pub(super) fn sim_reboot(state: &AppState, caller: &Caller, p: &Params<'_>) -> CallResult {
    let cloud = state.cloud.inner();
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
