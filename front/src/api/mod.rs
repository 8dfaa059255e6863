//! The XML-RPC method table: session authentication, typed parameters, the success and failure
//! arrays with OpenNebula's error codes, and the API event of every non-info call, written to
//! the outbox in the same transaction as the call's changes ([`crate::db::Db::atomic`]).
//!
//! A call that can change state runs on the database's writer thread ([`crate::db::Db::submit`]), in a
//! savepoint of the group transaction it shares with the calls queued beside it, and is answered
//! once that group has committed; a read-only call runs on the blocking pool through a snapshot
//! of the last commit ([`crate::db::Db::snapshot`]) and never waits for the writer.

pub mod hook;
pub mod host;
pub mod image;
mod objects;
pub mod system;
pub mod user;
pub mod vm;

use std::net::IpAddr;
use std::sync::Arc;

use one_proto::event::ApiEvent;
use one_proto::xmlrpc::{MethodCall, Response, Value};

use crate::AppState;
use crate::call::{
    ApiError, CallError, CallResult, Caller, ErrorCode, FAULT_INTERNAL, FAULT_NO_SUCH_METHOD,
    FAULT_TYPE, Params, int_value,
};
use crate::db::GroupError;
use crate::login_throttle::Admission;

/// The replication index of a failure array: UINT64_MAX, which xmlrpc-c writes as `<i8>-1</i8>`.
const REPLICATION_INDEX: i64 = -1;

/// Whether a call is one of the info calls that produce no API event: the same 43 calls oned
/// refuses as a hook's CALL (reference §1.4).
pub fn is_info_call(method: &str) -> bool {
    one_proto::hook::is_unsupported_call(method)
}

/// The failure array of `err` for `method`.
pub fn failure_value(method: &str, err: &ApiError) -> Value {
    Value::Array(vec![
        Value::Bool(false),
        Value::String(format!("[{method}] {}", err.message)),
        Value::Int(err.code.code()),
        int_value(err.resp_id),
        Value::I8(REPLICATION_INDEX),
    ])
}

fn success_value(value: Value) -> Value {
    Value::Array(vec![Value::Bool(true), value, Value::Int(0)])
}

/// Answers one call from `peer` (see [`answer`]) and counts it by method and outcome: a
/// read-only call at once on the blocking pool, any other on the writer thread, once the group
/// it ran in has committed.
pub async fn handle(state: Arc<AppState>, call: MethodCall, peer: IpAddr) -> Response {
    let index = one_proto::hook::registered_call_index(&call.method);
    let method = call.method.clone();
    let internal_fault = || Response::Fault {
        code: FAULT_INTERNAL,
        message: "Internal error".to_string(),
    };
    let response = if is_info_call(&method) {
        match tokio::task::spawn_blocking(move || answer(&state, call, peer)).await {
            Ok(response) => response,
            Err(e) => {
                tracing::error!(method = %method, error = %e, "call handler failed");
                internal_fault()
            }
        }
    } else {
        let (answered, answer_rx) = tokio::sync::oneshot::channel();
        let writer = state.clone();
        state.db.submit(
            move || answer(&writer, call, peer),
            move |outcome| {
                // The connection may be gone; its call stays committed, as any other.
                let _ = answered.send(outcome);
            },
        );
        match answer_rx.await {
            Ok(Ok(response)) => response,
            Ok(Err(GroupError::Panicked)) | Err(_) => {
                tracing::error!(method = %method, "call handler failed");
                internal_fault()
            }
            Ok(Err(e)) => {
                state.credentials.forget_all();
                tracing::error!(method = %method, error = %e, "cannot commit the call and its API event; nothing of it is stored");
                let err = ApiError::internal("Internal database error.", -1);
                Response::Value(failure_value(&method, &err))
            }
        }
    };
    crate::metrics::METRICS.call_answered(index, &response);
    response
}

/// Answers one call from `peer`: authenticates the session (unless its user or address is
/// refused for failed logins), runs the method and, in the same transaction, records its API
/// event; builds the response array.
fn answer(state: &AppState, call: MethodCall, peer: IpAddr) -> Response {
    let method = call.method.as_str();
    let Some((session, rest)) = call.params.split_first() else {
        return Response::Fault {
            code: FAULT_TYPE,
            message: "Not enough parameters: the session string is missing".to_string(),
        };
    };
    let Value::String(session) = session else {
        return Response::Fault {
            code: FAULT_TYPE,
            message: format!(
                "Parameter 1 (session) is of type {}, but string was expected",
                session.type_name()
            ),
        };
    };
    // The reference's failure, also for a refused attempt: it must not tell whether the
    // password was right, and clients parse this text.
    let unauthenticated = || {
        let err = ApiError::new(
            ErrorCode::Authentication,
            "User couldn't be authenticated, aborting call.",
            -1,
        );
        Response::Value(failure_value(method, &err))
    };
    let user = session.split_once(':').map_or(session.as_str(), |(u, _)| u);
    if let Admission::Refused(until) = state.login_throttle.admit(user, peer) {
        tracing::debug!(
            method,
            refused_ms = until
                .saturating_duration_since(std::time::Instant::now())
                .as_millis() as u64,
            "login refused unchecked after failed logins"
        );
        return unauthenticated();
    }
    let caller = match crate::users::authenticate(&state.db, &state.credentials, session) {
        Ok(Some(c)) => {
            state.login_throttle.succeeded(user, peer);
            c
        }
        Ok(None) => {
            tracing::info!(method, peer = %peer, "authentication failed");
            state.login_throttle.failed(user, peer);
            return unauthenticated();
        }
        Err(e) => {
            tracing::error!(method, error = %e, "cannot read the user pool");
            let err = ApiError::internal("Error reading the user pool.", -1);
            return Response::Value(failure_value(method, &err));
        }
    };
    let params = Params::new(rest);
    let run = || dispatch(state, &caller, method, &params);
    let result = if is_info_call(method) {
        state.db.snapshot(run)
    } else {
        // The handler's writes and the call's API event are one transaction: a crash cannot
        // keep the change and lose the event, or the other way round.
        let emit = |tx: &rusqlite::Transaction<'_>, result: &Option<CallResult>| match result
            .as_ref()
            .and_then(api_outcome)
        {
            Some(outcome) => state
                .bus
                .enqueue_api(tx, &api_event(method, &call.params, &outcome)),
            None => Ok(()),
        };
        match state.db.atomic(run, emit) {
            Ok(result) => {
                let bus = state.bus.clone();
                state.db.after_commit(move || bus.notify());
                result
            }
            Err(e) => {
                tracing::error!(method, error = %e, "cannot commit the call and its API event; nothing of it is stored");
                let err = ApiError::internal("Internal database error.", -1);
                return Response::Value(failure_value(method, &err));
            }
        }
    };
    let Some(result) = result else {
        return Response::Fault {
            code: FAULT_NO_SUCH_METHOD,
            message: format!("Method '{method}' not defined"),
        };
    };
    match result {
        Ok(ok) => Response::Value(success_value(ok.value)),
        Err(CallError::Fault { code, message }) => {
            tracing::debug!(method, code, message = %message, "call refused with a fault");
            Response::Fault { code, message }
        }
        Err(CallError::Api(err)) => {
            tracing::debug!(method, code = err.code.code(), message = %err.message, "call failed");
            Response::Value(failure_value(method, &err))
        }
    }
}

/// What the API event of a call reports; `None` for a fault, which has no event.
fn api_outcome(result: &CallResult) -> Option<Outcome> {
    match result {
        Ok(ok) => Some(Outcome::Success {
            value: out_text(&ok.value),
            extra: ok.extra.clone().unwrap_or_default(),
        }),
        Err(CallError::Api(err)) => Some(Outcome::Failure(err.clone())),
        Err(CallError::Fault { .. }) => None,
    }
}

/// The method table.
fn dispatch(
    state: &AppState,
    caller: &Caller,
    method: &str,
    params: &Params<'_>,
) -> Option<CallResult> {
    Some(match method {
        "one.hook.allocate" => hook::allocate(state, caller, params),
        "one.hook.delete" => hook::delete(state, caller, params),
        "one.hook.info" => hook::info(state, caller, params),
        "one.hook.update" => hook::update(state, caller, params),
        "one.hook.rename" => hook::rename(state, caller, params),
        "one.hook.lock" => hook::lock(state, caller, params),
        "one.hook.unlock" => hook::unlock(state, caller, params),
        "one.hook.retry" => hook::retry(state, caller, params),
        "one.hookpool.info" => hook::pool_info(state, caller, params),
        "one.hooklog.info" => hook::log_info(state, caller, params),
        "one.user.allocate" => user::allocate(state, caller, params),
        "one.user.info" => user::info(state, caller, params),
        "one.user.delete" => user::delete(state, caller, params),
        "one.userpool.info" => user::pool_info(state, caller, params),
        "one.system.version" => system::version(state, caller, params),
        "one.system.config" => system::config(state, caller, params),
        "one.host.allocate" => host::allocate(state, caller, params),
        "one.host.info" => host::info(state, caller, params),
        "one.host.delete" => host::delete(state, caller, params),
        "one.host.status" => host::status(state, caller, params),
        "one.hostpool.info" => host::pool_info(state, caller, params),
        "one.hostsim.fail" => host::sim_fail(state, caller, params),
        "one.hostsim.recover" => host::sim_recover(state, caller, params),
        "one.hostsim.reboot" => host::sim_reboot(state, caller, params),
        "one.vm.allocate" => vm::allocate(state, caller, params),
        "one.vm.info" => vm::info(state, caller, params),
        "one.vm.deploy" => vm::deploy(state, caller, params),
        "one.vm.action" => vm::action(state, caller, params),
        "one.vm.update" => vm::update(state, caller, params),
        "one.vmpool.info" => vm::pool_info(state, caller, params),
        "one.vmpool.infoextended" => vm::pool_info_extended(state, caller, params),
        "one.image.allocate" => image::allocate(state, caller, params),
        "one.image.info" => image::info(state, caller, params),
        "one.image.delete" => image::delete(state, caller, params),
        "one.image.enable" => image::enable(state, caller, params),
        "one.imagepool.info" => image::pool_info(state, caller, params),
        _ => return None,
    })
}

enum Outcome {
    Success { value: String, extra: String },
    Failure(ApiError),
}

/// The OUT text of a return value (reference §4.4): int as decimal, string raw, bool as `true`/`false`.
fn out_text(v: &Value) -> String {
    match v {
        Value::Bool(b) => b.to_string(),
        other => in_text(other),
    }
}

/// The IN text of a parameter (reference §4.4).
fn in_text(v: &Value) -> String {
    match v {
        Value::Int(i) => i.to_string(),
        Value::I8(i) => i.to_string(),
        Value::Bool(b) => u8::from(*b).to_string(),
        Value::Double(d) => cpp_double(*d),
        Value::String(s) => s.clone(),
        Value::DateTime(s) => s.clone(),
        Value::Base64(_) | Value::Array(_) | Value::Struct(_) | Value::Nil => String::new(),
    }
}

/// A double as C++ `operator<<` writes it by default (`%g`, 6 significant digits).
fn cpp_double(d: f64) -> String {
    if d == 0.0 {
        return "0".to_string();
    }
    if !d.is_finite() {
        return if d.is_nan() {
            "nan".into()
        } else if d > 0.0 {
            "inf".into()
        } else {
            "-inf".into()
        };
    }
    let sci = format!("{d:.5e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let trim = |s: &str| -> String {
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s.to_string()
        }
    };
    if !(-4..6).contains(&exp) {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{}e{sign}{:02}", trim(mantissa), exp.abs())
    } else {
        let decimals = (5 - exp).max(0) as usize;
        trim(&format!("{d:.decimals$}"))
    }
}

fn api_event(method: &str, params: &[Value], outcome: &Outcome) -> ApiEvent {
    let in_values: Vec<String> = params.iter().map(in_text).collect();
    match outcome {
        Outcome::Success { value, extra } => {
            ApiEvent::success(method, in_values, value.clone(), extra.clone())
        }
        Outcome::Failure(err) => ApiEvent::failure(
            method,
            in_values,
            format!("[{method}] {}", err.message),
            err.code.code(),
            err.resp_id,
            "",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_print_like_cpp_streams() {
        assert_eq!(cpp_double(1.5), "1.5");
        assert_eq!(cpp_double(3.0), "3");
        assert_eq!(cpp_double(0.1), "0.1");
        assert_eq!(cpp_double(1234567.0), "1.23457e+06");
        assert_eq!(cpp_double(0.00001), "1e-05");
        assert_eq!(cpp_double(-2.25), "-2.25");
        assert_eq!(cpp_double(100000.0), "100000");
    }

    #[test]
    fn params_are_typed() {
        let v = vec![Value::Int(3), Value::String("x".into()), Value::Bool(true)];
        let p = Params::new(&v);
        assert_eq!(p.int(0).unwrap(), 3);
        assert_eq!(p.string(1).unwrap(), "x");
        assert_eq!(p.opt_bool(2).unwrap(), Some(true));
        assert_eq!(p.opt_int(3).unwrap(), None);
        assert!(matches!(
            p.int(1),
            Err(CallError::Fault {
                code: FAULT_TYPE,
                ..
            })
        ));
        assert!(matches!(
            p.string(5),
            Err(CallError::Fault {
                code: FAULT_TYPE,
                ..
            })
        ));
    }

    #[test]
    fn failure_arrays_have_five_elements() {
        let err = ApiError::no_exists("hook", 3);
        assert_eq!(
            failure_value("one.hook.info", &err),
            Value::Array(vec![
                Value::Bool(false),
                Value::String("[one.hook.info] Error getting hook [3].".into()),
                Value::Int(1024),
                Value::Int(3),
                Value::I8(-1)
            ])
        );
        assert_eq!(
            ApiError::no_exists("hook", -1).message,
            "Error getting hook Pool."
        );
    }

    #[test]
    fn events_hide_the_session_and_list_out_params() {
        let params = vec![Value::String("oneadmin:pw".into()), Value::Int(4)];
        let ev = api_event(
            "one.hook.delete",
            &params,
            &Outcome::Failure(ApiError::no_exists("hook", 4)),
        );
        let values: Vec<&str> = ev.params.iter().map(|p| p.value.as_str()).collect();
        assert_eq!(
            values,
            [
                "****",
                "4",
                "false",
                "[one.hook.delete] Error getting hook [4].",
                "1024",
                "4"
            ]
        );
        assert!(!ev.success);
    }
}
