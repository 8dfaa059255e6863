//! What the host, VM and image methods share: reading the cloud, mapping its errors to the
//! call's, and oned's permission rules for these objects (hosts need an oneadmin-group user; VMs
//! and images their owner or an oneadmin-group user).

use crate::AppState;
use crate::call::{ApiError, CallError, Caller};
use crate::cloud::lifecycle::{Actor, LcError};
use crate::cloud::{Inner, OpError};

/// Who acts, for the history records of a VM operation.
pub(super) fn actor(state: &AppState, caller: &Caller) -> Actor {
    Actor {
        uid: caller.uid,
        gid: caller.gid,
        req_id: state.next_request_id(),
    }
}

/// Turns an operation's error into the call's: database errors are logged and reported as
/// INTERNAL without their details.
pub(super) fn done<T>(r: Result<T, OpError>, resp_id: i64) -> Result<T, CallError> {
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

pub(super) fn read<T>(
    cloud: &Inner,
    f: impl FnOnce(&rusqlite::Connection) -> Result<T, OpError>,
) -> Result<T, OpError> {
    cloud.db.read(f)
}

pub(super) fn require_admin(
    caller: &Caller,
    op: &str,
    object: &str,
    id: Option<i64>,
) -> Result<(), ApiError> {
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

pub(super) fn require_owner(
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
pub(super) fn owner_filter(caller: &Caller, filter: i64) -> Option<i64> {
    if !caller.is_admin() || filter == -3 {
        Some(caller.uid)
    } else if filter >= 0 {
        Some(filter)
    } else {
        None
    }
}

pub(super) fn group_name(c: &rusqlite::Connection, gid: i64) -> rusqlite::Result<String> {
    Ok(crate::users::group_name(c, gid)?.unwrap_or_else(|| gid.to_string()))
}

pub(super) fn refused(e: LcError, wrap: impl FnOnce(String) -> ApiError) -> OpError {
    match e {
        LcError::Refused(m) => OpError::Api(wrap(m)),
        LcError::Op(e) => e,
    }
}
