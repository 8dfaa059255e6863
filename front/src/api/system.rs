//! `one.system.version` and `one.system.config`.

use one_proto::xmlrpc::Value;

use crate::AppState;
use crate::call::{ApiError, ApiOk, CallResult, Caller, Params};

/// The OpenNebula version whose API this front-end follows.
pub const ONE_VERSION: &str = "7.5.80";

/// `one.system.version()`.
pub fn version(_state: &AppState, _caller: &Caller, _params: &Params<'_>) -> CallResult {
    Ok(ApiOk::new(Value::String(ONE_VERSION.to_string())))
}

/// `one.system.config()`: the configuration file as `<OPENNEBULA_CONFIGURATION>` (admins only).
pub fn config(state: &AppState, caller: &Caller, _params: &Params<'_>) -> CallResult {
    if !caller.is_admin() {
        return Err(
            ApiError::authorization(caller, "Not authorized to perform ADMIN SYSTEM", -1).into(),
        );
    }
    let xml = state
        .config
        .as_read
        .to_xml_named("OPENNEBULA_CONFIGURATION")
        .map_err(|_| ApiError::internal("Error transforming the configuration to XML.", -1))?;
    Ok(ApiOk::new(Value::String(xml)))
}
