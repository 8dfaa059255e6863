//! The XML-RPC method table: session authentication, typed parameters, the success and failure
//! arrays with OpenNebula's error codes, and the API event of every non-info call, written to
//! the outbox in the same transaction as the call's changes ([`crate::db::Db::atomic`]).

pub mod hook;
pub mod system;
pub mod user;

use one_proto::event::ApiEvent;
use one_proto::xmlrpc::{MethodCall, Response, Value};

use crate::AppState;

/// xmlrpc-c fault codes.
pub const FAULT_INTERNAL: i32 = -500;
pub const FAULT_TYPE: i32 = -501;
pub const FAULT_PARSE: i32 = -503;
pub const FAULT_NO_SUCH_METHOD: i32 = -506;

/// The replication index of a failure array: UINT64_MAX, which xmlrpc-c writes as `<i8>-1</i8>`.
const REPLICATION_INDEX: i64 = -1;

/// Whether a call is one of the info calls that produce no API event: the same 43 calls oned
/// refuses as a hook's CALL (reference §1.4).
pub fn is_info_call(method: &str) -> bool {
    one_proto::hook::is_unsupported_call(method)
}

/// The authenticated user of a call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    pub uid: i64,
    pub gid: i64,
    pub name: String,
}

impl Caller {
    /// oneadmin itself or a member of the oneadmin group.
    pub fn is_admin(&self) -> bool {
        self.uid == 0 || self.gid == 0
    }
}

/// OpenNebula's error codes (reference §7.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i32)]
pub enum ErrorCode {
    Authentication = 0x100,
    Authorization = 0x200,
    NoExists = 0x400,
    Action = 0x800,
    RpcApi = 0x1000,
    Internal = 0x2000,
    Allocate = 0x4000,
    Locked = 0x8000,
}

impl ErrorCode {
    pub fn code(self) -> i32 {
        self as i32
    }
}

/// A failed call: becomes `[false, "[method] message", code, resp_id, -1]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    pub code: ErrorCode,
    /// Without the `[method] ` prefix.
    pub message: String,
    pub resp_id: i64,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>, resp_id: i64) -> Self {
        ApiError {
            code,
            message: message.into(),
            resp_id,
        }
    }

    pub fn internal(message: impl Into<String>, resp_id: i64) -> Self {
        Self::new(ErrorCode::Internal, message, resp_id)
    }

    pub fn action(message: impl Into<String>, resp_id: i64) -> Self {
        Self::new(ErrorCode::Action, message, resp_id)
    }

    /// `Error getting <object> [<id>].`, or `Error getting <object> Pool.` for a negative id.
    pub fn no_exists(object: &str, id: i64) -> Self {
        if id < 0 {
            Self::new(
                ErrorCode::NoExists,
                format!("Error getting {object} Pool."),
                -1,
            )
        } else {
            Self::new(
                ErrorCode::NoExists,
                format!("Error getting {object} [{id}]."),
                id,
            )
        }
    }

    /// `User [<uid>] : <reason>.`
    pub fn authorization(caller: &Caller, reason: &str, resp_id: i64) -> Self {
        Self::new(
            ErrorCode::Authorization,
            format!("User [{}] : {reason}.", caller.uid),
            resp_id,
        )
    }
}

/// How a call can fail.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallError {
    /// A missing or mistyped parameter: an XML-RPC fault, and no event.
    Fault { code: i32, message: String },
    /// A failure array, with an event.
    Api(ApiError),
}

impl From<ApiError> for CallError {
    fn from(e: ApiError) -> Self {
        CallError::Api(e)
    }
}

/// A successful call.
#[derive(Clone, Debug, PartialEq)]
pub struct ApiOk {
    pub value: Value,
    /// The EXTRA XML of the API event, e.g. the new object's XML.
    pub extra: Option<String>,
}

impl ApiOk {
    pub fn new(value: impl Into<Value>) -> Self {
        ApiOk {
            value: value.into(),
            extra: None,
        }
    }

    pub fn with_extra(value: impl Into<Value>, extra: String) -> Self {
        ApiOk {
            value: value.into(),
            extra: Some(extra),
        }
    }

    /// An object id, written as `<i4>` like oned does.
    pub fn id(id: i64) -> Self {
        ApiOk::new(int_value(id))
    }
}

/// An id as `<i4>` when it fits (oned's ids are C ints), else `<i8>`.
pub fn int_value(v: i64) -> Value {
    match i32::try_from(v) {
        Ok(i) => Value::Int(i),
        Err(_) => Value::I8(v),
    }
}

pub type CallResult = Result<ApiOk, CallError>;

/// The parameters of a call after the session string. Indexes are 0-based from there, so
/// `int(0)` is the first parameter after the session.
#[derive(Clone, Copy, Debug)]
pub struct Params<'a> {
    values: &'a [Value],
}

impl<'a> Params<'a> {
    pub fn new(values: &'a [Value]) -> Self {
        Params { values }
    }

    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    pub fn get(&self, i: usize) -> Option<&'a Value> {
        self.values.get(i)
    }

    pub fn values(&self) -> &'a [Value] {
        self.values
    }

    fn missing(i: usize, expected: &str) -> CallError {
        CallError::Fault {
            code: FAULT_TYPE,
            message: format!(
                "Not enough parameters: parameter {} ({expected}) is missing",
                i + 2
            ),
        }
    }

    fn mistyped(i: usize, expected: &str, found: &Value) -> CallError {
        CallError::Fault {
            code: FAULT_TYPE,
            message: format!(
                "Parameter {} is of type {}, but {expected} was expected",
                i + 2,
                found.type_name()
            ),
        }
    }

    /// An integer parameter (`<i4>`/`<int>`, or `<i8>`).
    pub fn int(&self, i: usize) -> Result<i64, CallError> {
        self.opt_int(i)?.ok_or_else(|| Self::missing(i, "int"))
    }

    pub fn opt_int(&self, i: usize) -> Result<Option<i64>, CallError> {
        match self.values.get(i) {
            None => Ok(None),
            Some(v) => v
                .as_i64()
                .map(Some)
                .ok_or_else(|| Self::mistyped(i, "int", v)),
        }
    }

    pub fn string(&self, i: usize) -> Result<&'a str, CallError> {
        self.opt_string(i)?
            .ok_or_else(|| Self::missing(i, "string"))
    }

    pub fn opt_string(&self, i: usize) -> Result<Option<&'a str>, CallError> {
        match self.values.get(i) {
            None => Ok(None),
            Some(v) => v
                .as_str()
                .map(Some)
                .ok_or_else(|| Self::mistyped(i, "string", v)),
        }
    }

    pub fn bool(&self, i: usize) -> Result<bool, CallError> {
        self.opt_bool(i)?.ok_or_else(|| Self::missing(i, "boolean"))
    }

    pub fn opt_bool(&self, i: usize) -> Result<Option<bool>, CallError> {
        match self.values.get(i) {
            None => Ok(None),
            Some(v) => v
                .as_bool()
                .map(Some)
                .ok_or_else(|| Self::mistyped(i, "boolean", v)),
        }
    }

    pub fn opt_array(&self, i: usize) -> Result<Option<&'a [Value]>, CallError> {
        match self.values.get(i) {
            None => Ok(None),
            Some(v) => v
                .as_array()
                .map(Some)
                .ok_or_else(|| Self::mistyped(i, "array", v)),
        }
    }
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

/// Answers one call: authenticates the session, runs the method and, in the same transaction,
/// records its API event; builds the response array.
pub fn handle(state: &AppState, call: MethodCall) -> Response {
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
    let caller = match crate::users::authenticate(&state.db, &state.credentials, session) {
        Ok(Some(c)) => c,
        Ok(None) => {
            tracing::info!(method, "authentication failed");
            let err = ApiError::new(
                ErrorCode::Authentication,
                "User couldn't be authenticated, aborting call.",
                -1,
            );
            return Response::Value(failure_value(method, &err));
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
        run()
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
                state.bus.notify();
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
        _ => return crate::cloud::call(state, caller, method, params),
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
