//! Every table of the front-end, as the ordered list of schema migrations that `db` applies.
//! The definitions live here, not beside the modules that use the tables, so that the store
//! depends on no part of the domain.

/// Hooks, hook log, id counters, users and groups.
const CORE: &str = "
CREATE TABLE pool_control (
    tablename TEXT PRIMARY KEY,
    last_oid  INTEGER NOT NULL
);
CREATE TABLE hook_pool (
    oid  INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    type INTEGER NOT NULL,
    body TEXT NOT NULL
);
CREATE TABLE hook_log (
    hkid      INTEGER NOT NULL,
    exeid     INTEGER NOT NULL,
    timestamp INTEGER NOT NULL,
    rc        INTEGER NOT NULL,
    body      TEXT NOT NULL,
    exec_uid  TEXT,
    PRIMARY KEY (hkid, exeid)
) WITHOUT ROWID;
CREATE INDEX hook_log_timestamp ON hook_log (timestamp);
CREATE UNIQUE INDEX hook_log_exec_uid ON hook_log (hkid, exec_uid) WHERE exec_uid IS NOT NULL;
CREATE TABLE group_pool (
    oid  INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE
);
INSERT INTO group_pool (oid, name) VALUES (0, 'oneadmin'), (1, 'users');
INSERT INTO pool_control (tablename, last_oid) VALUES ('group_pool', 99);
CREATE TABLE user_pool (
    oid         INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    gid         INTEGER NOT NULL,
    password    TEXT NOT NULL,
    auth_driver TEXT NOT NULL,
    enabled     INTEGER NOT NULL,
    template    TEXT NOT NULL
);
";

/// The ordered schema migrations; entry `i` moves the database to version `i + 1`.
/// Entries are never edited once released, only appended.
pub const MIGRATIONS: [&str; 3] = [CORE, CLOUD, EVENT_OUTBOX];

/// Tables of the simulated cloud (`cloud`). Ids come from
/// `pool_control` (rows `host_pool`, `vm_pool`, `image_pool`), so they are never reused.
const CLOUD: &str = "
CREATE TABLE IF NOT EXISTS host_pool (
    oid            INTEGER PRIMARY KEY,
    name           TEXT NOT NULL UNIQUE,
    state          INTEGER NOT NULL,
    prev_state     INTEGER NOT NULL,
    im_mad         TEXT NOT NULL,
    vm_mad         TEXT NOT NULL,
    cluster_id     INTEGER NOT NULL,
    template       TEXT NOT NULL,
    failed         INTEGER NOT NULL,
    total_cpu      INTEGER NOT NULL,
    total_mem      INTEGER NOT NULL,
    monitor_due_ms INTEGER,
    recover_due_ms INTEGER
);
CREATE TABLE IF NOT EXISTS vm_pool (
    oid            INTEGER PRIMARY KEY,
    uid            INTEGER NOT NULL,
    gid            INTEGER NOT NULL,
    uname          TEXT NOT NULL,
    gname          TEXT NOT NULL,
    name           TEXT NOT NULL,
    state          INTEGER NOT NULL,
    lcm_state      INTEGER NOT NULL,
    prev_state     INTEGER NOT NULL,
    prev_lcm_state INTEGER NOT NULL,
    resched        INTEGER NOT NULL,
    stime          INTEGER NOT NULL,
    etime          INTEGER NOT NULL,
    deploy_id      TEXT NOT NULL,
    template       TEXT NOT NULL,
    user_template  TEXT NOT NULL,
    hid            INTEGER NOT NULL,
    due_ms         INTEGER,
    sched_hid      INTEGER,
    cpu            REAL NOT NULL,
    memory         INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS vm_pool_hid ON vm_pool (hid);
CREATE INDEX IF NOT EXISTS vm_pool_uid ON vm_pool (uid);
CREATE TABLE IF NOT EXISTS vm_history (
    vid        INTEGER NOT NULL,
    seq        INTEGER NOT NULL,
    hostname   TEXT NOT NULL,
    hid        INTEGER NOT NULL,
    cid        INTEGER NOT NULL,
    stime      INTEGER NOT NULL,
    etime      INTEGER NOT NULL,
    vm_mad     TEXT NOT NULL,
    tm_mad     TEXT NOT NULL,
    ds_id      INTEGER NOT NULL,
    pstime     INTEGER NOT NULL,
    petime     INTEGER NOT NULL,
    rstime     INTEGER NOT NULL,
    retime     INTEGER NOT NULL,
    estime     INTEGER NOT NULL,
    eetime     INTEGER NOT NULL,
    action     INTEGER NOT NULL,
    uid        INTEGER NOT NULL,
    gid        INTEGER NOT NULL,
    req_id     INTEGER NOT NULL,
    PRIMARY KEY (vid, seq)
);
CREATE TABLE IF NOT EXISTS image_pool (
    oid        INTEGER PRIMARY KEY,
    uid        INTEGER NOT NULL,
    gid        INTEGER NOT NULL,
    uname      TEXT NOT NULL,
    gname      TEXT NOT NULL,
    name       TEXT NOT NULL,
    type       INTEGER NOT NULL,
    persistent INTEGER NOT NULL,
    regtime    INTEGER NOT NULL,
    source     TEXT NOT NULL,
    path       TEXT NOT NULL,
    format     TEXT NOT NULL,
    fs         TEXT NOT NULL,
    size_mb    INTEGER NOT NULL,
    state      INTEGER NOT NULL,
    prev_state INTEGER NOT NULL,
    ds_id      INTEGER NOT NULL,
    template   TEXT NOT NULL,
    due_ms     INTEGER
);
CREATE UNIQUE INDEX IF NOT EXISTS image_pool_owner_name ON image_pool (uid, name);
";

/// Tables of the event outbox (`events`).
const EVENT_OUTBOX: &str = "
CREATE TABLE IF NOT EXISTS event_outbox (
    seq     INTEGER PRIMARY KEY AUTOINCREMENT,
    kind    INTEGER NOT NULL,
    payload TEXT NOT NULL,
    created INTEGER NOT NULL
);
";
