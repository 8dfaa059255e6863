//! `one.hook.*`, `one.hookpool.info` and `one.hooklog.info` (reference §1, §4.1-4.3, §6.4, §7.2).
//!
//! Hooks belong to oneadmin, so only oneadmin and members of its group may use them. Each call
//! runs its checks in the reference's order and changes nothing when one fails.

use one_proto::hook::{self, Hook, Lock, UpdateMode};
use one_proto::hook_log::{ExecutionRecord, hooklog_xml};
use one_proto::retry::RetryMessage;
use one_proto::template::Template;
use one_proto::xmlrpc::Value;

use crate::AppState;
use crate::call::{ApiError, ApiOk, CallResult, Caller, ErrorCode, Params};
use crate::hook_log::{self, LogFilter};
use crate::hook_pool::{self, HookPoolError};

const OBJECT: &str = "hook";

/// Operation levels of the lock rule: an operation is denied when `0 < LOCKED <= op`.
const OP_MANAGE: u8 = 2;

fn db_error(e: impl std::fmt::Display, resp_id: i64) -> ApiError {
    tracing::error!(error = %e, hook_id = resp_id, "hook pool database error");
    ApiError::internal("Internal database error.", resp_id)
}

/// Loads hook `id` or answers NO_EXISTS.
fn load(state: &AppState, id: i64) -> Result<Hook, ApiError> {
    state.db.read(|c| load_in(c, id))
}

fn load_in(c: &rusqlite::Connection, id: i64) -> Result<Hook, ApiError> {
    if id < 0 {
        return Err(ApiError::no_exists(OBJECT, id));
    }
    match hook_pool::get(c, id) {
        Ok(Some(h)) => Ok(h),
        Ok(None) => Err(ApiError::no_exists(OBJECT, id)),
        Err(HookPoolError::Body { .. }) => {
            // A body this program cannot read behaves like the reference's unloadable hook.
            tracing::warn!(hook_id = id, "stored hook body cannot be loaded");
            Err(ApiError::no_exists(OBJECT, id))
        }
        Err(e) => Err(db_error(e, id)),
    }
}

/// An error inside a write transaction: either the call's answer or a database failure.
enum TxError {
    Api(ApiError),
    Db(rusqlite::Error),
}

impl From<rusqlite::Error> for TxError {
    fn from(e: rusqlite::Error) -> Self {
        TxError::Db(e)
    }
}

impl From<ApiError> for TxError {
    fn from(e: ApiError) -> Self {
        TxError::Api(e)
    }
}

/// Loads hook `id`, lets `f` check and change it, and stores the result, all in one
/// transaction, so concurrent calls on one hook cannot lose each other's changes. `f` returns
/// `Ok(false)` when there is nothing to store.
fn modify(
    state: &AppState,
    id: i64,
    f: impl FnOnce(&rusqlite::Transaction<'_>, &mut Hook) -> Result<bool, ApiError>,
) -> Result<Hook, ApiError> {
    let result = state.db.write(|tx| {
        let mut hook = load_in(tx, id)?;
        if f(tx, &mut hook)? {
            match hook_pool::store(tx, &hook) {
                Ok(_) => {}
                Err(HookPoolError::Xml { .. }) => {
                    return Err(TxError::Api(ApiError::internal(
                        "Error transforming the Hook to XML.",
                        id,
                    )));
                }
                Err(HookPoolError::Db(e)) => return Err(TxError::Db(e)),
                Err(other) => return Err(TxError::Api(db_error(other, id))),
            }
        }
        Ok(hook)
    });
    match result {
        Ok(h) => Ok(h),
        Err(TxError::Api(e)) => Err(e),
        Err(TxError::Db(e)) => Err(db_error(e, id)),
    }
}

/// USE authorization (info): the lock is ignored.
fn authorize_use(caller: &Caller, id: i64) -> Result<(), ApiError> {
    if caller.is_admin() {
        Ok(())
    } else {
        Err(ApiError::authorization(
            caller,
            &format!("Not authorized to perform USE HOOK [{id}]"),
            id,
        ))
    }
}

/// MANAGE authorization; `lock_aware` applies the lock rule.
fn authorize_manage(caller: &Caller, hook: &Hook, lock_aware: bool) -> Result<(), ApiError> {
    if !caller.is_admin() {
        return Err(ApiError::authorization(
            caller,
            &format!("Not authorized to perform MANAGE HOOK [{}]", hook.id),
            hook.id,
        ));
    }
    if let Some(lock) = hook.lock.as_ref().filter(|_| lock_aware)
        && lock.level > 0
        && lock.level <= OP_MANAGE
    {
        return Err(ApiError::authorization(
            caller,
            &format!("HOOK is locked. [{}]", hook.id),
            hook.id,
        ));
    }
    Ok(())
}

/// `one.hook.allocate(template)`.
pub fn allocate(state: &AppState, caller: &Caller, params: &Params<'_>) -> CallResult {
    let text = params.string(0)?;
    // Step 1 (parse) comes before authorization (step 2); the rest is `validate_create`'s.
    if let Err(e) = Template::parse(text) {
        return Err(ApiError::internal(e.oned_message(), -1).into());
    }
    if !caller.is_admin() {
        return Err(
            ApiError::authorization(caller, "Not authorized to perform CREATE HOOK", -1).into(),
        );
    }
    let result: Result<Result<(i64, String), ApiError>, rusqlite::Error> = state.db.write(|tx| {
        let validated =
            hook::validate_create(text, |name| hook_pool::id_by_name(tx, name).ok().flatten());
        let last = hook_pool::last_id(tx)?;
        match validated {
            Err(e) => {
                if e.id_reserved && last < 0 {
                    // The reference rolls a failed reservation back to max(previous, 0), which
                    // burns id 0 of an empty pool.
                    hook_pool::set_last_id(tx, 0)?;
                }
                Ok(Err(ApiError::internal(e.message, -1)))
            }
            Ok(new) => {
                let id = last + 1;
                let h = Hook {
                    id,
                    name: new.name,
                    hook_type: new.hook_type,
                    lock: None,
                    template: new.template,
                };
                let body = match hook_pool::store(tx, &h) {
                    Ok(b) => b,
                    Err(HookPoolError::Xml { .. }) => {
                        if last < 0 {
                            hook_pool::set_last_id(tx, 0)?;
                        }
                        return Ok(Err(ApiError::internal(
                            "Error transforming the Hook to XML.",
                            -1,
                        )));
                    }
                    Err(HookPoolError::Db(e)) => return Err(e),
                    Err(other) => return Ok(Err(db_error(other, -1))),
                };
                hook_pool::set_last_id(tx, id)?;
                Ok(Ok((id, body)))
            }
        }
    });
    match result {
        Ok(Ok((id, body))) => {
            tracing::info!(hook_id = id, "hook allocated");
            Ok(ApiOk::with_extra(super::int_value(id), body))
        }
        Ok(Err(e)) => Err(e.into()),
        Err(e) => Err(db_error(e, -1).into()),
    }
}

/// `one.hook.delete(id)`.
pub fn delete(state: &AppState, caller: &Caller, params: &Params<'_>) -> CallResult {
    let id = params.int(0)?;
    let result = state.db.write(|tx| {
        let h = load_in(tx, id)?;
        authorize_manage(caller, &h, true)?;
        hook_pool::delete(tx, id)?;
        Ok::<_, TxError>(h)
    });
    let h = match result {
        Ok(h) => h,
        Err(TxError::Api(e)) => return Err(e.into()),
        Err(TxError::Db(e)) => return Err(db_error(e, id).into()),
    };
    tracing::info!(hook_id = id, "hook deleted");
    Ok(ApiOk::with_extra(
        super::int_value(id),
        h.to_xml(None).unwrap_or_default(),
    ))
}

/// `one.hook.info(id, [decrypt])`: the HOOK document with its HOOKLOG.
pub fn info(state: &AppState, caller: &Caller, params: &Params<'_>) -> CallResult {
    let id = params.int(0)?;
    let _decrypt = params.opt_bool(1)?;
    let h = load(state, id)?;
    authorize_use(caller, id)?;
    let records = state
        .db
        .read(|c| hook_log::records_of(c, id))
        .map_err(|e| db_error(e, id))?;
    let xml = h
        .to_xml(Some(&hooklog_xml(&records)))
        .map_err(|_| ApiError::internal("Error transforming the Hook to XML.", id))?;
    Ok(ApiOk::new(Value::String(xml)))
}

/// `one.hook.update(id, template, [mode])`: 0 replaces the template, 1 merges into it.
pub fn update(state: &AppState, caller: &Caller, params: &Params<'_>) -> CallResult {
    let id = params.int(0)?;
    let text = params.string(1)?;
    let mode = params.opt_int(2)?.unwrap_or(0);
    modify(state, id, |_, h| {
        authorize_manage(caller, h, true)?;
        let mode = match mode {
            0 => UpdateMode::Replace,
            1 => UpdateMode::Merge,
            _ => return Err(ApiError::new(ErrorCode::RpcApi, "Wrong update type", id)),
        };
        h.template = hook::validate_update(h, text, mode)
            .map_err(|msg| ApiError::internal(format!("Cannot update template. {msg}"), id))?;
        Ok(true)
    })
    .map_err(|e| {
        if e.message.starts_with("Error transforming") {
            ApiError::internal(format!("Cannot update template. {}", e.message), id)
        } else {
            e
        }
    })?;
    tracing::info!(hook_id = id, "hook updated");
    Ok(ApiOk::id(id))
}

/// `one.hook.rename(id, name)`.
pub fn rename(state: &AppState, caller: &Caller, params: &Params<'_>) -> CallResult {
    let id = params.int(0)?;
    let name = params.string(1)?;
    modify(state, id, |tx, h| {
        if h.name == name {
            // Renaming to the current name succeeds before any authorization check.
            return Ok(false);
        }
        authorize_manage(caller, h, true)?;
        match hook_pool::id_by_name(tx, name) {
            Ok(Some(other)) => {
                return Err(ApiError::action(
                    format!(
                        "hook cannot be renamed to {name} because it collides with hook {other}"
                    ),
                    id,
                ));
            }
            Ok(None) => {}
            Err(e) => return Err(db_error(e, id)),
        }
        hook::validate_name(name).map_err(|msg| ApiError::action(msg, id))?;
        h.name = name.to_string();
        Ok(true)
    })?;
    tracing::info!(hook_id = id, name, "hook renamed");
    Ok(ApiOk::id(id))
}

/// `one.hook.lock(id, level, [test])`.
pub fn lock(state: &AppState, caller: &Caller, params: &Params<'_>) -> CallResult {
    let id = params.int(0)?;
    let level = params.int(1)?;
    let test = params.opt_bool(2)?.unwrap_or(false);
    let req_id = state.next_request_id();
    let h = modify(state, id, |_, h| {
        authorize_manage(caller, h, false)?;
        let level: u8 = match level {
            1..=3 => level as u8,
            // ALL is stored as USE, as the reference does.
            4 => 1,
            _ => return Err(ApiError::action("Wrong lock level specified", id)),
        };
        if let Some(current) = &h.lock {
            if test {
                return Err(ApiError::action(current.time.to_string(), id));
            }
            if !caller.is_admin() && current.owner != caller.uid {
                return Err(ApiError::action("Error trying to lock the resource.", id));
            }
        }
        h.lock = Some(Lock {
            level,
            owner: caller.uid,
            time: now(),
            req_id,
        });
        Ok(true)
    })?;
    tracing::info!(
        hook_id = id,
        level = h.lock.map(|l| l.level).unwrap_or(0),
        "hook locked"
    );
    Ok(ApiOk::id(id))
}

/// `one.hook.unlock(id)`.
pub fn unlock(state: &AppState, caller: &Caller, params: &Params<'_>) -> CallResult {
    let id = params.int(0)?;
    modify(state, id, |_, h| {
        authorize_manage(caller, h, false)?;
        if !caller.is_admin() {
            let owner = h.lock.as_ref().map(|l| l.owner).unwrap_or(-1);
            if owner != caller.uid {
                return Err(ApiError::action(
                    "Cannot unlock: Lock is owned by another user",
                    id,
                ));
            }
        }
        Ok(h.lock.take().is_some())
    })?;
    tracing::info!(hook_id = id, "hook unlocked");
    Ok(ApiOk::id(id))
}

/// `one.hook.retry(id, exec_id)`: sends a RETRY for one execution record.
pub fn retry(state: &AppState, caller: &Caller, params: &Params<'_>) -> CallResult {
    let id = params.int(0)?;
    let exec_id = params.int(1)?;
    let h = load(state, id)?;
    authorize_manage(caller, &h, true)?;
    let record = state
        .db
        .read(|c| hook_log::record_for_retry(c, id, exec_id))
        .map_err(|e| {
            tracing::error!(hook_id = id, error = %e, "cannot read the hook log");
            ApiError::internal("Error reading HookLog.", id)
        })?;
    let not_found = || ApiError::internal("Invalid HookLog body. Arguments not found.", id);
    // The reference answers a missing record with the text above only; the reason is added
    // after it, so that scripts matching the reference's text still match.
    let record = record.ok_or_else(|| {
        ApiError::internal(
            format!(
                "Invalid HookLog body. Arguments not found: execution {exec_id} of hook {id} \
                 does not exist."
            ),
            id,
        )
    })?;
    let parsed = ExecutionRecord::parse(&record).map_err(|_| not_found())?;
    let result = parsed.result.ok_or_else(not_found)?;
    let msg = RetryMessage {
        arguments: result.arguments,
        hook_id: id,
        remote_host: result.remote_host.filter(|h| !h.is_empty()),
    };
    state.bus.retry(&msg).map_err(|e| {
        tracing::error!(hook_id = id, error = %e, "cannot queue the RETRY message");
        ApiError::internal("Error sending the retry request.", id)
    })?;
    tracing::info!(hook_id = id, exec_id, "hook retry requested");
    Ok(ApiOk::id(id))
}

/// `one.hookpool.info(...)`: the whole pool; parameters are ignored, as in the reference's HEAD.
pub fn pool_info(state: &AppState, caller: &Caller, _params: &Params<'_>) -> CallResult {
    if !caller.is_admin() {
        // Hooks belong to oneadmin, so other users see an empty pool.
        return Ok(ApiOk::new(Value::String(
            "<HOOK_POOL></HOOK_POOL>".to_string(),
        )));
    }
    let xml = state
        .db
        .read(|c| hook_pool::pool_xml(c, state.config.api_list_order_desc))
        .map_err(|e| {
            tracing::error!(error = %e, "cannot read the hook pool");
            ApiError::internal("Error getting hook Pool.", -1)
        })?;
    Ok(ApiOk::new(Value::String(xml)))
}

/// `one.hooklog.info(min_ts, max_ts, hook_id, rc)`.
pub fn log_info(state: &AppState, caller: &Caller, params: &Params<'_>) -> CallResult {
    let filter = LogFilter {
        min_ts: params.int(0)?,
        max_ts: params.int(1)?,
        hook_id: params.int(2)?,
        rc: params.int(3)?,
    };
    if caller.gid != 0 {
        return Err(ApiError::new(
            ErrorCode::Authorization,
            format!(
                "User [{}] not authorized to perform action on hook.",
                caller.uid
            ),
            -1,
        )
        .into());
    }
    let records = state
        .db
        .read(|c| hook_log::query(c, &filter))
        .map_err(|e| {
            tracing::error!(error = %e, "cannot read the hook log");
            ApiError::internal("Error reading HookLog.", -1)
        })?;
    Ok(ApiOk::new(Value::String(hooklog_xml(&records))))
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
