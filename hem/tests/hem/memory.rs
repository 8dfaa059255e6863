//! Resident memory of the HEM binary with 10,000 hooks loaded (target: under 30 MB). Ignored
//! by default because it measures the machine as much as the code; run it with
//! `cargo test -p onehem-server --test hem memory:: -- --ignored --nocapture`.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::fake_cloud::{FakeDriver, FakeFrontEnd, hem_config, hook, wait_for};
use one_proto::hook::HookType;

fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with(field)).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
#[ignore]
fn ten_thousand_hooks_fit_in_30_mb() {
    let dir = tempfile::tempdir().unwrap();
    let front = FakeFrontEnd::start();
    let n: i64 = std::env::var("HEM_MEMORY_HOOKS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    for id in 0..n {
        let t = if id % 2 == 0 {
            format!(
                "NAME=h{id}\nTYPE=api\nCALL=one.vm.allocate\nCOMMAND=hook{id}.rb\nARGUMENTS=\"$API x{id}\"\n"
            )
        } else {
            format!(
                "NAME=h{id}\nTYPE=state\nRESOURCE=VM\nSTATE=ACTIVE\nLCM_STATE=RUNNING\nCOMMAND=hook{id}.rb\nARGUMENTS=\"$TEMPLATE y{id}\"\nTIMEOUT=30\n"
            )
        };
        let kind = if id % 2 == 0 {
            HookType::Api
        } else {
            HookType::State
        };
        front.set(hook(id, kind, &t));
    }
    let driver = FakeDriver::start();
    let conf = hem_config(dir.path(), &front, &driver, "");
    let log = dir.path().join("onehem.log");
    let mut hem = Command::new(env!("CARGO_BIN_EXE_onehem-server"))
        .arg("--config")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for("the hooks to load", Duration::from_secs(120), || {
        std::fs::read_to_string(&log).is_ok_and(|l| l.contains(&format!("hooks={n}")))
    });
    std::thread::sleep(Duration::from_secs(2));
    let rss = status_kib(hem.id(), "VmRSS:");
    let anon = status_kib(hem.id(), "RssAnon:");
    let file = status_kib(hem.id(), "RssFile:");
    println!(
        "anonymous {anon} KiB, file-backed {file} KiB, threads {}",
        status_kib(hem.id(), "Threads:")
    );
    let _ = hem.kill();
    let _ = hem.wait();
    println!("resident memory with {n} hooks: {rss} KiB");
    assert!(rss < 30 * 1024, "{rss} KiB");
}
