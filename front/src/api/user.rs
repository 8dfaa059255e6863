//! `one.user.allocate`, `one.user.info`, `one.user.delete` and `one.userpool.info`: enough of
//! OpenNebula's user API to create non-admin accounts and inspect them.

use one_proto::xmlrpc::Value;

use crate::AppState;
use crate::call::{ApiError, ApiOk, CallResult, Caller, ErrorCode, Params};
use crate::users::{self, CORE_DRIVER, USERS_GID};

const OBJECT: &str = "user";
const MAX_NAME: usize = 128;

fn db_error(e: impl std::fmt::Display, resp_id: i64) -> ApiError {
    tracing::error!(error = %e, user_id = resp_id, "user pool database error");
    ApiError::internal("Internal database error.", resp_id)
}

fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("Invalid NAME, it cannot be empty".into());
    }
    if name.chars().count() > MAX_NAME {
        return Err(format!("Invalid NAME, max length is {MAX_NAME} chars"));
    }
    if let Some(c) = name
        .chars()
        .find(|c| c.is_whitespace() || c.is_control() || "&|:\\\";/'#{}$<>".contains(*c))
    {
        return Err(format!("Invalid NAME, char '{c}' is not allowed"));
    }
    Ok(())
}

/// `one.user.allocate(name, password, driver, [group ids])`.
pub fn allocate(state: &AppState, caller: &Caller, params: &Params<'_>) -> CallResult {
    let name = params.string(0)?;
    let password = params.string(1)?;
    let driver = params.opt_string(2)?.unwrap_or("");
    let groups = params.opt_array(3)?.unwrap_or(&[]);
    if !caller.is_admin() {
        return Err(
            ApiError::authorization(caller, "Not authorized to perform CREATE USER", -1).into(),
        );
    }
    let mut gid = USERS_GID;
    if let Some(first) = groups.first() {
        let Some(g) = first.as_i64() else {
            return Err(super::CallError::Fault {
                code: super::FAULT_TYPE,
                message: "Group ids must be integers".into(),
            });
        };
        match state.db.read(|c| users::group_name(c, g)) {
            Ok(Some(_)) => gid = g,
            Ok(None) => return Err(ApiError::no_exists("group", g).into()),
            Err(e) => return Err(db_error(e, -1).into()),
        }
    }
    let allocate_error = |msg: String| {
        ApiError::new(
            ErrorCode::Allocate,
            format!("Error allocating a new user. {msg}"),
            -1,
        )
    };
    check_name(name).map_err(allocate_error)?;
    let driver = if driver.is_empty() {
        CORE_DRIVER
    } else {
        driver
    };
    if driver != CORE_DRIVER {
        return Err(allocate_error(format!("Unsupported authentication driver: {driver}")).into());
    }
    if password.is_empty() {
        return Err(allocate_error("Invalid password, it cannot be empty".into()).into());
    }
    let result: Result<Result<(i64, String), ApiError>, rusqlite::Error> = state.db.write(|tx| {
        if let Some(existing) = users::by_name(tx, name)? {
            return Ok(Err(allocate_error(format!(
                "NAME is already taken by USER {}.",
                existing.id
            ))));
        }
        let id = users::next_id(tx)?;
        users::insert(tx, id, name, gid, &users::hash_password(password), driver)?;
        let xml = users::by_id(tx, id)?
            .map(|u| u.to_xml())
            .unwrap_or_default();
        Ok(Ok((id, xml)))
    });
    match result {
        Ok(Ok((id, xml))) => {
            tracing::info!(user_id = id, name, gid, "user allocated");
            Ok(ApiOk::with_extra(super::int_value(id), xml))
        }
        Ok(Err(e)) => Err(e.into()),
        Err(e) => Err(db_error(e, -1).into()),
    }
}

/// `one.user.info(id, [decrypt])`; -1 is the caller.
pub fn info(state: &AppState, caller: &Caller, params: &Params<'_>) -> CallResult {
    let mut id = params.opt_int(0)?.unwrap_or(-1);
    let _decrypt = params.opt_bool(1)?;
    if id == -1 {
        id = caller.uid;
    }
    let user = match state.db.read(|c| users::by_id(c, id)) {
        Ok(Some(u)) => u,
        Ok(None) => return Err(ApiError::no_exists(OBJECT, id).into()),
        Err(e) => return Err(db_error(e, id).into()),
    };
    if !caller.is_admin() && caller.uid != id {
        return Err(ApiError::authorization(
            caller,
            &format!("Not authorized to perform USE USER [{id}]"),
            id,
        )
        .into());
    }
    Ok(ApiOk::new(Value::String(user.to_info_xml())))
}

/// `one.user.delete(id)`.
pub fn delete(state: &AppState, caller: &Caller, params: &Params<'_>) -> CallResult {
    let id = params.int(0)?;
    let user = match state.db.read(|c| users::by_id(c, id)) {
        Ok(Some(u)) => u,
        Ok(None) => return Err(ApiError::no_exists(OBJECT, id).into()),
        Err(e) => return Err(db_error(e, id).into()),
    };
    if !caller.is_admin() {
        return Err(ApiError::authorization(
            caller,
            &format!("Not authorized to perform ADMIN USER [{id}]"),
            id,
        )
        .into());
    }
    if id == users::ONEADMIN_UID {
        return Err(ApiError::action("oneadmin cannot be deleted.", id).into());
    }
    state
        .db
        .write(|tx| users::delete(tx, &state.credentials, id))
        .map_err(|e| db_error(e, id))?;
    tracing::info!(user_id = id, "user deleted");
    Ok(ApiOk::with_extra(super::int_value(id), user.to_xml()))
}

/// `one.userpool.info()`: every user for admins, only themselves for others.
pub fn pool_info(state: &AppState, caller: &Caller, _params: &Params<'_>) -> CallResult {
    let list = state
        .db
        .read(|c| users::list(c, state.config.api_list_order_desc))
        .map_err(|e| db_error(e, -1))?;
    let mut xml = String::from("<USER_POOL>");
    for u in list
        .iter()
        .filter(|u| caller.is_admin() || u.id == caller.uid)
    {
        xml.push_str(&u.to_xml());
    }
    xml.push_str(&users::default_user_quotas_xml());
    xml.push_str("</USER_POOL>");
    Ok(ApiOk::new(Value::String(xml)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_reference_rules() {
        assert!(check_name("alice").is_ok());
        assert_eq!(
            check_name("").unwrap_err(),
            "Invalid NAME, it cannot be empty"
        );
        assert_eq!(
            check_name("a b").unwrap_err(),
            "Invalid NAME, char ' ' is not allowed"
        );
        assert_eq!(
            check_name("a:b").unwrap_err(),
            "Invalid NAME, char ':' is not allowed"
        );
        assert!(check_name(&"x".repeat(129)).is_err());
    }
}
