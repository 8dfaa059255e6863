//! Users and groups: the oneadmin bootstrap, session authentication and the USER document.
//!
//! Two groups exist: 0 `oneadmin` and 1 `users`. oneadmin is uid 0 in gid 0. Passwords are
//! stored as lower-case hex SHA-256.

use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use rusqlite::{Connection, OptionalExtension, Transaction, params};
use sha2::{Digest, Sha256};

use crate::call::Caller;
use crate::db::{Cached, Db};

pub const ONEADMIN_UID: i64 = 0;
pub const ONEADMIN_GID: i64 = 0;
pub const USERS_GID: i64 = 1;
pub const CORE_DRIVER: &str = "core";
/// The file in the var dir holding `oneadmin:<password>`.
pub const ONE_AUTH_FILE: &str = "one_auth";

#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error("database error: {0}")]
    Db(#[from] rusqlite::Error),
    #[error("cannot write {path}: {source}")]
    AuthFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Private(#[from] one_wal::private_files::PrivateFileError),
}

/// One row of the user pool.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub id: i64,
    pub name: String,
    pub gid: i64,
    pub gname: String,
    pub password: String,
    pub auth_driver: String,
    pub enabled: bool,
    pub template: String,
}

pub fn hash_password(password: &str) -> String {
    hex::encode(Sha256::digest(password.as_bytes()))
}

/// Creates oneadmin on first start and writes `<var_dir>/one_auth`. If that file already holds
/// oneadmin's credentials (the database was removed), its password is kept.
pub fn bootstrap(db: &Db, var_dir: &Path) -> Result<(), UserError> {
    let exists: bool = db.read(|c| {
        c.one(
            "SELECT 1 FROM user_pool WHERE oid = ?1",
            [ONEADMIN_UID],
            |_| Ok(()),
        )
        .optional()
        .map(|r| r.is_some())
    })?;
    let auth_path = var_dir.join(ONE_AUTH_FILE);
    // oneadmin's password, in a file an earlier version may have left readable to others.
    one_wal::private_files::restrict(&auth_path)?.log();
    if exists {
        if !auth_path.exists() {
            tracing::warn!(path = %auth_path.display(), "oneadmin exists but its credentials file is missing");
        }
        return Ok(());
    }
    let kept = std::fs::read_to_string(&auth_path)
        .ok()
        .and_then(|t| t.trim_end().strip_prefix("oneadmin:").map(str::to_string))
        .filter(|p| !p.is_empty());
    let password = match kept {
        Some(p) => p,
        None => {
            let p = random_password();
            write_auth_file(&auth_path, &format!("oneadmin:{p}\n"))?;
            p
        }
    };
    db.write(|tx| {
        insert(
            tx,
            ONEADMIN_UID,
            "oneadmin",
            ONEADMIN_GID,
            &hash_password(&password),
            CORE_DRIVER,
        )?;
        tx.run(
            "INSERT OR REPLACE INTO pool_control (tablename, last_oid) VALUES ('user_pool', ?1)",
            [ONEADMIN_UID],
        )?;
        Ok::<_, UserError>(())
    })?;
    tracing::info!(path = %auth_path.display(), "created the oneadmin account");
    Ok(())
}

fn random_password() -> String {
    use rand::Rng as _;
    use rand::distr::Alphanumeric;
    rand::rng()
        .sample_iter(Alphanumeric)
        .take(32)
        .map(char::from)
        .collect()
}

fn write_auth_file(path: &Path, content: &str) -> Result<(), UserError> {
    let err = |source| UserError::AuthFile {
        path: path.to_path_buf(),
        source,
    };
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(err)?;
    file.write_all(content.as_bytes()).map_err(err)?;
    file.sync_all().map_err(err)
}

/// Checks a `user:password` session string. `Ok(None)` means the credentials are wrong.
///
/// A user found in `cache` is checked without a query; otherwise the user pool is read
/// and, when the user exists, remembered.
pub fn authenticate(
    db: &Db,
    cache: &Credentials,
    session: &str,
) -> Result<Option<Caller>, rusqlite::Error> {
    let Some((name, password)) = session.split_once(':') else {
        return Ok(None);
    };
    let hash = hash_password(password);
    let known = match cache.get(name) {
        Some(known) => known,
        None => {
            // Read and remembered under the connection's lock, so that no change of the
            // user pool can fall between the two (see `Credentials`).
            let read = db.read(|c| by_name(c, name).map(|user| user.map(|u| cache.put(&u))))?;
            match read {
                Some(known) => known,
                None => return Ok(None),
            }
        }
    };
    Ok((known.usable && known.password == hash).then_some(known.caller))
}

/// What authentication needs of a user.
#[derive(Clone, Debug)]
struct Known {
    password: String,
    /// Enabled and with the core driver.
    usable: bool,
    caller: Caller,
}

impl From<&User> for Known {
    fn from(user: &User) -> Known {
        Known {
            password: user.password.clone(),
            usable: user.enabled && user.auth_driver == CORE_DRIVER,
            caller: Caller {
                uid: user.id,
                gid: user.gid,
                name: user.name.clone(),
            },
        }
    }
}

/// The users who authenticated recently, by name, so that a call does not query the user
/// pool for its session (a sixth of a one.vm.allocate's work before this existed).
///
/// Never stale: entries are read from the pool and stored while the database connection is
/// held, and every change of a user row ([`delete`], the only one besides inserting a new
/// name) forgets all entries inside its transaction, that is while holding the connection
/// too. A lookup that finds nothing reads the pool, which then waits for that transaction.
/// A new function changing user rows must call `forget_all` the same way.
#[derive(Debug, Default)]
pub struct Credentials {
    users: Mutex<HashMap<String, Known>>,
}

/// Bound on remembered users; reaching it forgets them all.
const CREDENTIALS_KEPT: usize = 4096;

impl Credentials {
    fn get(&self, name: &str) -> Option<Known> {
        self.lock().get(name).cloned()
    }

    /// Remembers `user`; what was remembered.
    fn put(&self, user: &User) -> Known {
        let known = Known::from(user);
        let mut users = self.lock();
        if users.len() >= CREDENTIALS_KEPT {
            users.clear();
        }
        users.insert(user.name.clone(), known.clone());
        known
    }

    /// Forgets every user: call it inside the transaction that changes a user row, and after
    /// a group of calls failed to commit (a call in it may have remembered a user that an
    /// earlier call of the same group had created).
    pub(crate) fn forget_all(&self) {
        self.lock().clear();
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Known>> {
        // The map holds no invariant a panicking holder could break.
        self.users.lock().unwrap_or_else(|e| e.into_inner())
    }
}

const SELECT: &str = "SELECT u.oid, u.name, u.gid, COALESCE(g.name, ''), u.password, u.auth_driver, u.enabled, u.template \
                      FROM user_pool u LEFT JOIN group_pool g ON g.oid = u.gid";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<User> {
    Ok(User {
        id: r.get(0)?,
        name: r.get(1)?,
        gid: r.get(2)?,
        gname: r.get(3)?,
        password: r.get(4)?,
        auth_driver: r.get(5)?,
        enabled: r.get::<_, i64>(6)? != 0,
        template: r.get(7)?,
    })
}

pub fn by_name(c: &Connection, name: &str) -> rusqlite::Result<Option<User>> {
    c.one(&format!("{SELECT} WHERE u.name = ?1"), [name], row)
        .optional()
}

pub fn by_id(c: &Connection, id: i64) -> rusqlite::Result<Option<User>> {
    c.one(&format!("{SELECT} WHERE u.oid = ?1"), [id], row)
        .optional()
}

pub fn list(c: &Connection, descending: bool) -> rusqlite::Result<Vec<User>> {
    let order = if descending { "DESC" } else { "ASC" };
    let mut stmt = c.prepare_cached(&format!("{SELECT} ORDER BY u.oid {order}"))?;
    let rows = stmt.query_map([], row)?;
    rows.collect()
}

pub fn group_name(c: &Connection, gid: i64) -> rusqlite::Result<Option<String>> {
    c.one("SELECT name FROM group_pool WHERE oid = ?1", [gid], |r| {
        r.get(0)
    })
    .optional()
}

/// Inserts a user row with an empty template.
pub fn insert(
    tx: &Transaction<'_>,
    id: i64,
    name: &str,
    gid: i64,
    password_hash: &str,
    driver: &str,
) -> rusqlite::Result<()> {
    tx.run(
        "INSERT INTO user_pool (oid, name, gid, password, auth_driver, enabled, template) VALUES (?1, ?2, ?3, ?4, ?5, 1, '')",
        params![id, name, gid, password_hash, driver],
    )?;
    Ok(())
}

/// Reserves the next user id (ids are never reused).
pub fn next_id(tx: &Transaction<'_>) -> rusqlite::Result<i64> {
    let last: i64 = tx
        .one(
            "SELECT last_oid FROM pool_control WHERE tablename = 'user_pool'",
            [],
            |r| r.get(0),
        )
        .optional()?
        .unwrap_or(-1);
    let next = last + 1;
    tx.run(
        "INSERT OR REPLACE INTO pool_control (tablename, last_oid) VALUES ('user_pool', ?1)",
        [next],
    )?;
    Ok(next)
}

/// Deletes a user row, and forgets every remembered credential (see [`Credentials`]).
pub fn delete(tx: &Transaction<'_>, credentials: &Credentials, id: i64) -> rusqlite::Result<usize> {
    let deleted = tx.run("DELETE FROM user_pool WHERE oid = ?1", [id])?;
    credentials.forget_all();
    Ok(deleted)
}

/// The quota elements of a user without quotas, as oned writes them (user.xsd).
const EMPTY_QUOTAS: &str = "<DATASTORE_QUOTA></DATASTORE_QUOTA><NETWORK_QUOTA></NETWORK_QUOTA>\
<VM_QUOTA></VM_QUOTA><IMAGE_QUOTA></IMAGE_QUOTA>";

/// `DEFAULT_USER_QUOTAS` with no default set, closing `one.user.info` and `one.userpool.info`.
pub fn default_user_quotas_xml() -> String {
    format!("<DEFAULT_USER_QUOTAS>{EMPTY_QUOTAS}</DEFAULT_USER_QUOTAS>")
}

impl User {
    /// The USER document of `one.user.info`: the pool's element followed by the user's (empty)
    /// quotas and the default quotas.
    pub fn to_info_xml(&self) -> String {
        let mut xml = self.to_xml();
        let end = xml.len() - "</USER>".len();
        xml.insert_str(end, &format!("{EMPTY_QUOTAS}{}", default_user_quotas_xml()));
        xml
    }

    /// The USER element of the pool (a subset of oned's: enough for pyone and the CLIs). No
    /// LOGIN_TOKEN: oned writes one only for a token the user holds, and none is issued here.
    pub fn to_xml(&self) -> String {
        use one_proto::encoding::xml_escape as esc;
        format!(
            "<USER><ID>{id}</ID><GID>{gid}</GID><GROUPS><ID>{gid}</ID></GROUPS><GNAME>{gname}</GNAME>\
<NAME>{name}</NAME><PASSWORD>{password}</PASSWORD><AUTH_DRIVER>{driver}</AUTH_DRIVER>\
<ENABLED>{enabled}</ENABLED><TEMPLATE>{template}</TEMPLATE></USER>",
            id = self.id,
            gid = self.gid,
            gname = esc(&self.gname),
            name = esc(&self.name),
            password = esc(&self.password),
            driver = esc(&self.auth_driver),
            enabled = u8::from(self.enabled),
            template = self.template,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_info_document_has_the_quotas_of_user_xsd_and_no_empty_login_token() {
        let user = User {
            id: 3,
            gid: 1,
            gname: "users".into(),
            name: "alice".into(),
            password: "x".into(),
            auth_driver: "core".into(),
            enabled: true,
            template: String::new(),
        };
        let info = user.to_info_xml();
        assert!(!info.contains("LOGIN_TOKEN"), "{info}");
        assert!(
            info.ends_with(
                "<TEMPLATE></TEMPLATE><DATASTORE_QUOTA></DATASTORE_QUOTA>\
                 <NETWORK_QUOTA></NETWORK_QUOTA><VM_QUOTA></VM_QUOTA><IMAGE_QUOTA></IMAGE_QUOTA>\
                 <DEFAULT_USER_QUOTAS><DATASTORE_QUOTA></DATASTORE_QUOTA>\
                 <NETWORK_QUOTA></NETWORK_QUOTA><VM_QUOTA></VM_QUOTA><IMAGE_QUOTA></IMAGE_QUOTA>\
                 </DEFAULT_USER_QUOTAS></USER>"
            ),
            "{info}"
        );
        assert!(!user.to_xml().contains("QUOTA"));
    }

    #[test]
    fn bootstrap_writes_credentials_that_authenticate() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("one.db")).unwrap();
        bootstrap(&db, dir.path()).unwrap();
        let auth = std::fs::read_to_string(dir.path().join(ONE_AUTH_FILE)).unwrap();
        let session = auth.trim_end();
        assert!(session.starts_with("oneadmin:"));
        let cache = Credentials::default();
        let caller = authenticate(&db, &cache, session).unwrap().unwrap();
        assert_eq!((caller.uid, caller.gid), (0, 0));
        // Now remembered: the wrong password is still refused.
        assert!(
            authenticate(&db, &cache, "oneadmin:wrong")
                .unwrap()
                .is_none()
        );
        assert!(authenticate(&db, &cache, session).unwrap().is_some());
        assert!(
            authenticate(&db, &Credentials::default(), "nobody:x")
                .unwrap()
                .is_none()
        );
        assert!(
            authenticate(&db, &Credentials::default(), "garbage")
                .unwrap()
                .is_none()
        );
        // A second start changes nothing.
        bootstrap(&db, dir.path()).unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.path().join(ONE_AUTH_FILE)).unwrap(),
            auth
        );
    }

    #[test]
    fn a_new_database_keeps_the_existing_password() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(ONE_AUTH_FILE), "oneadmin:secret\n").unwrap();
        let db = Db::open(&dir.path().join("one.db")).unwrap();
        bootstrap(&db, dir.path()).unwrap();
        assert!(
            authenticate(&db, &Credentials::default(), "oneadmin:secret")
                .unwrap()
                .is_some()
        );
    }

    /// A remembered user is checked without the pool, and deleting any user makes the next
    /// check read the pool again: a deleted user's session stops working at once, and a user
    /// created again under the same name is known by the new password only.
    #[test]
    fn remembered_credentials_follow_the_user_pool() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("one.db")).unwrap();
        bootstrap(&db, dir.path()).unwrap();
        let cache = Credentials::default();
        let add = |id: i64, password: &str| {
            db.write(|tx| {
                insert(
                    tx,
                    id,
                    "alice",
                    USERS_GID,
                    &hash_password(password),
                    CORE_DRIVER,
                )
            })
            .unwrap()
        };
        add(5, "one");
        let caller = authenticate(&db, &cache, "alice:one").unwrap().unwrap();
        assert_eq!(
            (caller.uid, caller.gid, caller.name.as_str()),
            (5, USERS_GID, "alice")
        );

        // Remembered: a row changed behind the cache's back (no code path does this; the
        // test does it to prove that the pool is not read) does not matter yet.
        db.write(|tx| tx.run("UPDATE user_pool SET password = 'x' WHERE oid = 5", []))
            .unwrap();
        assert!(authenticate(&db, &cache, "alice:one").unwrap().is_some());

        db.write(|tx| delete(tx, &cache, 5)).unwrap();
        assert!(authenticate(&db, &cache, "alice:one").unwrap().is_none());
        add(6, "two");
        assert!(authenticate(&db, &cache, "alice:one").unwrap().is_none());
        let caller = authenticate(&db, &cache, "alice:two").unwrap().unwrap();
        assert_eq!(caller.uid, 6);
    }

    /// The bound forgets everything instead of growing.
    #[test]
    fn remembered_credentials_are_bounded() {
        let cache = Credentials::default();
        let user = |i: usize| User {
            id: i as i64,
            name: format!("u{i}"),
            gid: USERS_GID,
            gname: "users".into(),
            password: hash_password("p"),
            auth_driver: CORE_DRIVER.into(),
            enabled: true,
            template: String::new(),
        };
        for i in 0..CREDENTIALS_KEPT {
            cache.put(&user(i));
        }
        assert!(cache.get("u0").is_some());
        cache.put(&user(CREDENTIALS_KEPT));
        assert!(cache.get("u0").is_none());
        assert!(cache.get(&format!("u{CREDENTIALS_KEPT}")).is_some());
    }
}
