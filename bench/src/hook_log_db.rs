//! Reading oned-lite's hook log straight from its SQLite file (read-only, beside the running
//! front-end), so that waiting for records does not load the XML-RPC server being measured.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use one_proto::hook_log::ExecutionRecord;
use rusqlite::{Connection, OpenFlags};

pub struct HookLogDb {
    conn: Connection,
}

impl HookLogDb {
    pub fn open(path: &Path) -> Result<HookLogDb> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .with_context(|| format!("opening {}", path.display()))?;
        conn.busy_timeout(Duration::from_secs(5))?;
        Ok(HookLogDb { conn })
    }

    /// Records ever stored for `hook` (execution ids are contiguous from 0, so retention does
    /// not change this count).
    pub fn stored(&self, hook: i64) -> Result<u64> {
        let n: i64 = self.conn.query_row(
            "SELECT COALESCE(MAX(exeid), -1) + 1 FROM hook_log WHERE hkid = ?1",
            [hook],
            |r| r.get(0),
        )?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Records ever stored, over every hook.
    pub fn stored_all(&self) -> Result<u64> {
        let n: i64 = self.conn.query_row(
            "SELECT COALESCE(SUM(m), 0) FROM (SELECT MAX(exeid) + 1 AS m FROM hook_log GROUP BY hkid)",
            [],
            |r| r.get(0),
        )?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// The retained records of `hook` with an execution id of at least `from`.
    pub fn records(&self, hook: i64, from: u64) -> Result<Vec<ExecutionRecord>> {
        let mut stmt = self
            .conn
            .prepare("SELECT body FROM hook_log WHERE hkid = ?1 AND exeid >= ?2 ORDER BY exeid")?;
        let rows = stmt.query_map(rusqlite::params![hook, from as i64], |r| {
            r.get::<_, String>(0)
        })?;
        let mut out = Vec::new();
        for body in rows {
            out.push(ExecutionRecord::parse(&body?)?);
        }
        Ok(out)
    }
}
