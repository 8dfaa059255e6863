//! The hook pool in SQLite: one row per hook holding its HOOK document (without HOOKLOG), plus
//! the last id handed out, so that ids of deleted hooks are never reused.

use rusqlite::{Connection, OptionalExtension, Transaction, params};

use crate::db::Cached;
use one_proto::hook::{Hook, HookType};

#[derive(Debug, thiserror::Error)]
pub enum HookPoolError {
    #[error("database error: {0}")]
    Db(#[from] rusqlite::Error),
    #[error("stored body of hook {id} cannot be read: {message}")]
    Body { id: i64, message: String },
    #[error("hook {id} cannot be written as XML: {message}")]
    Xml { id: i64, message: String },
}

const TABLE: &str = "hook_pool";

/// The type column: 1 for state hooks, 2 for API hooks (as oned stores it).
fn type_code(t: HookType) -> i64 {
    match t {
        HookType::State => 1,
        HookType::Api => 2,
    }
}

/// The last id handed out, -1 when none ever was.
pub fn last_id(tx: &Connection) -> rusqlite::Result<i64> {
    Ok(tx
        .one(
            "SELECT last_oid FROM pool_control WHERE tablename = ?1",
            [TABLE],
            |r| r.get(0),
        )
        .optional()?
        .unwrap_or(-1))
}

pub fn set_last_id(tx: &Transaction<'_>, id: i64) -> rusqlite::Result<()> {
    tx.run(
        "INSERT OR REPLACE INTO pool_control (tablename, last_oid) VALUES (?1, ?2)",
        params![TABLE, id],
    )?;
    Ok(())
}

/// Reads one hook.
pub fn get(c: &Connection, id: i64) -> Result<Option<Hook>, HookPoolError> {
    let body: Option<String> = c
        .one("SELECT body FROM hook_pool WHERE oid = ?1", [id], |r| {
            r.get(0)
        })
        .optional()?;
    match body {
        None => Ok(None),
        Some(b) => Hook::from_xml(&b)
            .map(Some)
            .map_err(|e| HookPoolError::Body {
                id,
                message: e.to_string(),
            }),
    }
}

/// The id of the hook called `name`, if any.
pub fn id_by_name(c: &Connection, name: &str) -> rusqlite::Result<Option<i64>> {
    c.one("SELECT oid FROM hook_pool WHERE name = ?1", [name], |r| {
        r.get(0)
    })
    .optional()
}

/// Inserts or replaces the row of `hook`; returns its HOOK document.
pub fn store(tx: &Transaction<'_>, hook: &Hook) -> Result<String, HookPoolError> {
    let body = hook.to_xml(None).map_err(|e| HookPoolError::Xml {
        id: hook.id,
        message: e.to_string(),
    })?;
    tx.run(
        "INSERT OR REPLACE INTO hook_pool (oid, name, type, body) VALUES (?1, ?2, ?3, ?4)",
        params![hook.id, hook.name, type_code(hook.hook_type), body],
    )?;
    Ok(body)
}

/// Deletes a hook and all of its execution records.
pub fn delete(tx: &Transaction<'_>, id: i64) -> rusqlite::Result<()> {
    tx.run("DELETE FROM hook_pool WHERE oid = ?1", [id])?;
    tx.run("DELETE FROM hook_log WHERE hkid = ?1", [id])?;
    Ok(())
}

/// Every stored HOOK document, by id in the requested order.
pub fn bodies(c: &Connection, descending: bool) -> rusqlite::Result<Vec<String>> {
    let order = if descending { "DESC" } else { "ASC" };
    let mut stmt = c.prepare_cached(&format!("SELECT body FROM hook_pool ORDER BY oid {order}"))?;
    let rows = stmt.query_map([], |r| r.get(0))?;
    rows.collect()
}

/// The whole pool as `<HOOK_POOL>`, from the stored bodies.
pub fn pool_xml(c: &Connection, descending: bool) -> rusqlite::Result<String> {
    let mut out = String::from("<HOOK_POOL>");
    for b in bodies(c, descending)? {
        out.push_str(&b);
    }
    out.push_str("</HOOK_POOL>");
    Ok(out)
}
