//! What a call is made of, for every method family: the caller, typed parameters, the success
//! value with its event's EXTRA, and the two ways a call fails (OpenNebula's error codes in a
//! failure array, or an XML-RPC fault).

use one_proto::xmlrpc::Value;

/// xmlrpc-c fault codes.
pub const FAULT_INTERNAL: i32 = -500;
pub const FAULT_TYPE: i32 = -501;
pub const FAULT_PARSE: i32 = -503;
pub const FAULT_NO_SUCH_METHOD: i32 = -506;

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
