//! oned-lite: XML-RPC request rates, hook-log inserts with retention, and hook-log queries on a
//! log of 1,000,000 records.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use one_client::Client;
use one_e2e::stack::{LOGGER_PORT, Stack, StackOptions};
use one_proto::encoding::b64_encode;
use one_proto::hook_log::{ExecutionResult, record_xml};
use one_proto::mad::ResultFrame;
use rusqlite::{Connection, params};

use crate::Scale;
use crate::hook_log_db::HookLogDb;
use crate::local::{allocate_vms, budget};
use crate::report::{Report, fmt};
use crate::workload::vm_hook;

pub const SECTION: &str = "5. Front-end";

const METHOD: &str = "`oned-lite` with its driver (no HEM), its SQLite database in a \
temporary directory. **Requests per second**: 8 threads, each with its own keep-alive \
connection (the project's `one-client`), call the method a fixed number of times in total; \
`one.hook.info` reads a hook with 20 records in its log, `one.vm.allocate` creates a VM and \
commits its PENDING event and the API event to the outbox (the driver journals and publishes \
them meanwhile). **Hook-log inserts**: 8 REQ sockets send results (`<rc> <hook_id> <b64 \
body>`, each with its own EXECUTION_UID, for 10 hooks) to the driver's result port, as 8 \
HEM result senders would; the driver journals, acknowledges and forwards them on stdout and \
oned-lite stores them with LOG_RETENTION = 20 (every insert also trims); the rate is results \
over the time until the last one is visible in the database. **one.hooklog.info at \
1,000,000 records**: the hook log table is filled directly through SQLite (1,000 hooks × 1,000 \
records, each a real record built by `one_proto::hook_log::record_xml`, one per second of \
timestamp), then the call is timed from request to parsed response for three filters.";

const SENDERS: usize = 8;
const HOOKS: i64 = 10;

/// `count` calls of `call` from 8 connections; calls per second.
fn request_rate(
    stack: &Stack,
    count: usize,
    call: impl Fn(&Client) -> Result<()> + Sync,
) -> Result<f64> {
    let next = AtomicUsize::new(0);
    let start = Instant::now();
    std::thread::scope(|s| -> Result<()> {
        let workers: Vec<_> = (0..8)
            .map(|_| {
                s.spawn(|| -> Result<()> {
                    let client = Client::new(&stack.endpoint, &stack.session);
                    while next.fetch_add(1, Ordering::Relaxed) < count {
                        call(&client)?;
                    }
                    Ok(())
                })
            })
            .collect();
        for w in workers {
            w.join()
                .map_err(|_| anyhow::anyhow!("a worker panicked"))??;
        }
        Ok(())
    })?;
    Ok(count as f64 / start.elapsed().as_secs_f64())
}

/// A result body as the HEM sends it.
fn result_body(hook: i64, uid: &str) -> String {
    ExecutionResult {
        arguments: b64_encode(format!("<VM><ID>{hook}</ID></VM>").as_bytes()),
        command: "/var/lib/one/remotes/hooks/autostart/vm".into(),
        stdout: b"VM 12 resumed\n".to_vec(),
        stderr: Vec::new(),
        code: 0,
        remote_host: None,
        retry: false,
        execution_uid: Some(uid.into()),
    }
    .to_xml()
}

/// Sends `count` results from 8 REQ sockets; returns results per second until the last one
/// is stored.
fn insert_rate(stack: &Stack, db: &HookLogDb, count: usize, tag: &str) -> Result<f64> {
    let endpoint = format!("tcp://{}:{LOGGER_PORT}", stack.ip);
    let before = db.stored_all()?;
    let ctx = zmq::Context::new();
    let next = AtomicUsize::new(0);
    let start = Instant::now();
    std::thread::scope(|s| -> Result<()> {
        let workers: Vec<_> = (0..SENDERS)
            .map(|_| {
                s.spawn(|| -> Result<()> {
                    let req = ctx.socket(zmq::REQ)?;
                    req.set_rcvtimeo(30_000)?;
                    req.set_linger(0)?;
                    req.connect(&endpoint)?;
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= count {
                            return Ok(());
                        }
                        let hook = i as i64 % HOOKS;
                        let frame = ResultFrame {
                            rc: 0,
                            hook_id: hook,
                            body: b64_encode(result_body(hook, &format!("{tag}-{i}")).as_bytes()),
                        };
                        req.send(frame.to_frame().as_bytes(), 0)?;
                        let reply = req.recv_bytes(0).context("no ACK from one_hm")?;
                        if reply != b"ACK" {
                            bail!("one_hm answered {}", String::from_utf8_lossy(&reply));
                        }
                    }
                })
            })
            .collect();
        for w in workers {
            w.join()
                .map_err(|_| anyhow::anyhow!("a sender panicked"))??;
        }
        Ok(())
    })?;
    let target = before + count as u64;
    let deadline = Instant::now() + budget(count);
    loop {
        let stored = db.stored_all()?;
        if stored >= target {
            break;
        }
        if Instant::now() > deadline {
            bail!("{} of {count} results stored", stored - before);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(count as f64 / start.elapsed().as_secs_f64())
}

/// Fills the hook log with `hooks` × `per_hook` records; returns the newest timestamp.
fn fill_hook_log(stack: &Stack, hooks: i64, per_hook: i64) -> Result<i64> {
    let mut conn = Connection::open(stack.var_dir.join("one.db"))?;
    conn.busy_timeout(Duration::from_secs(30))?;
    let base = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs() as i64 - hooks * per_hook;
    let tx = conn.transaction()?;
    {
        let mut stmt = tx.prepare(
            "INSERT INTO hook_log (hkid, exeid, timestamp, rc, body, exec_uid) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?;
        // In primary-key order, which SQLite appends fastest; the timestamps interleave the
        // hooks as executions over time would.
        for hook in 0..hooks {
            for exeid in 0..per_hook {
                let ts = base + exeid * hooks + hook;
                let uid = format!("fill-{hook}-{exeid}");
                let record = record_xml(hook, exeid, ts, &result_body(hook, &uid))?;
                stmt.execute(params![hook, exeid, ts, 0, record, uid])?;
            }
        }
    }
    tx.commit()?;
    Ok(base + hooks * per_hook - 1)
}

fn timed(f: impl FnOnce() -> Result<String>) -> Result<(f64, usize)> {
    let start = Instant::now();
    let body = f()?;
    Ok((start.elapsed().as_secs_f64() * 1e3, body.len()))
}

pub fn run(report: &mut Report, scale: Scale) -> Result<()> {
    report.section(SECTION, METHOD);
    let stack = Stack::start_with(StackOptions {
        hem: false,
        log_retention: 20,
        ..StackOptions::default()
    })?;
    let client = stack.client();
    let mut hooks = Vec::new();
    for i in 0..HOOKS {
        hooks.push(client.hook_allocate(&vm_hook(
            &format!("h{i}"),
            "/bin/true",
            "ACTIVE",
            "RUNNING",
        ))?);
    }
    let info_hook = *hooks.first().context("no hook")?;
    let db = HookLogDb::open(&stack.var_dir.join("one.db"))?;

    let n_insert = scale.pick(20_000, 1_000);
    let n_info = scale.pick(20_000, 1_000);
    let n_alloc = scale.pick(6_000, 500);
    let (mut inserts, mut infos, mut allocs) = (Vec::new(), Vec::new(), Vec::new());
    for run in 0..scale.runs {
        inserts.push(insert_rate(&stack, &db, n_insert, &format!("run{run}"))?);
        infos.push(request_rate(&stack, n_info, |c| {
            c.hook_info(info_hook).map(|_| ()).map_err(Into::into)
        })?);
        allocs.push(
            allocate_vms(&stack, n_alloc, 8, None)
                .map(|a| n_alloc as f64 / a.calls.as_secs_f64())?,
        );
    }
    report.add(
        SECTION,
        "one.hook.info, 8 connections",
        "requests/s",
        infos,
        &format!("{n_info} calls"),
    );
    report.add(
        SECTION,
        "one.vm.allocate, 8 connections",
        "requests/s",
        allocs,
        &format!("{n_alloc} calls, each commits a VM and two events"),
    );
    report.add(
        SECTION,
        "hook-log inserts, LOG_RETENTION 20, via one_hm",
        "records/s",
        inserts,
        &format!("{n_insert} results from 8 REQ senders over {HOOKS} hooks"),
    );
    drop(stack);

    // The hook log at 1,000,000 records.
    let stack = Stack::start_with(StackOptions {
        hem: false,
        ..StackOptions::default()
    })?;
    let per_hook = scale.pick(1000, 5) as i64;
    let log_hooks = 1000i64;
    let total = log_hooks * per_hook;
    let fill_start = Instant::now();
    let newest = fill_hook_log(&stack, log_hooks, per_hook)?;
    let fill_secs = fill_start.elapsed().as_secs_f64();
    let client = Client::with_timeout(&stack.endpoint, &stack.session, Duration::from_secs(600));
    let (mut one_hook, mut window, mut all) = (Vec::new(), Vec::new(), Vec::new());
    let mut all_bytes = 0;
    for run in 0..scale.runs {
        one_hook.push(timed(|| Ok(client.hooklog_info(-1, -1, 500, 0)?))?.0);
        window.push(timed(|| Ok(client.hooklog_info(newest - 1000, -1, -1, 0)?))?.0);
        // The whole log takes tens of seconds at this size: measured once.
        if run == 0 {
            let (ms, bytes) = timed(|| Ok(client.hooklog_info(-1, -1, -1, 0)?))?;
            all.push(ms);
            all_bytes = bytes;
        }
    }
    let at = format!("{total} records in the log");
    report.add(
        SECTION,
        &format!("one.hooklog.info, one hook's {per_hook} records"),
        "ms",
        one_hook,
        &at,
    );
    report.add(
        SECTION,
        "one.hooklog.info, the last 1,000 records by time",
        "ms",
        window,
        &at,
    );
    report.add(
        SECTION,
        "one.hooklog.info, every record",
        "ms",
        all,
        &format!(
            "{at}; a {} MB response; one run",
            fmt(all_bytes as f64 / 1e6)
        ),
    );
    report.note(
        SECTION,
        &format!(
            "Filling the table with {total} records took {fill_secs:.1} s through one SQLite \
             transaction (not a figure of the system, given for scale)."
        ),
    );
    Ok(())
}
