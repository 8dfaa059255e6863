//! Resident memory of the HEM and the driver, idle and with 10,000 hooks loaded, and the CPU
//! time each spends per 10,000 events.

use std::time::Duration;

use anyhow::{Result, bail};

use crate::Scale;
use crate::local::{HookSource, hem_throughput};
use crate::procs::status_kib;
use crate::report::{Goal, Report};

pub const SECTION: &str = "6. Footprint";

const METHOD: &str = "Resident memory is `VmRSS` of /proc/<pid>/status (peak: `VmHWM`), read \
from the benchmark's own `one_hm` and `onehem-server` (section 3's HEM route). Idle: after \
start-up and one warm-up event, with the two benchmark hooks. With 10,000 hooks: oned-lite \
holds 10,000 hooks (the two benchmark hooks and filler API and state hooks that the events do \
not trigger); a fresh HEM loads them with `one.hookpool.info`, and memory is read 2 s after \
the load. Then 10,000 VM PENDING events are written at once to the driver's stdin and each \
runs `/bin/true`; CPU time is user+system from /proc/<pid>/stat before and after, for the \
HEM itself, for the hooks it ran (its waited-for children) and for the driver.";

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

pub fn run(report: &mut Report, scale: Scale) -> Result<()> {
    report.section(SECTION, METHOD);
    // Idle.
    let (mut hem_idle, mut driver_idle) = (Vec::new(), Vec::new());
    {
        let source = HookSource::start(0)?;
        for _ in 0..scale.runs {
            let p = source.pipeline(&[])?;
            std::thread::sleep(Duration::from_secs(1));
            hem_idle.push(mib(status_kib(p.hem.pid(), "VmRSS")?));
            driver_idle.push(mib(status_kib(p.driver.pid(), "VmRSS")?));
        }
    }
    let hooks = scale.pick(10_000, 1_000);
    let events = scale.pick(10_000, 500);
    let source = HookSource::start(hooks - 2)?;
    let (mut hem_loaded, mut hem_after, mut hem_peak, mut driver_after) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut cpu_hem, mut cpu_supervisor, mut cpu_hooks, mut cpu_driver) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut rates = Vec::new();
    let mut breakdown = String::new();
    for _ in 0..scale.runs {
        let mut p = source.pipeline(&[])?;
        if p.hooks_loaded < hooks as u64 {
            bail!("the HEM loaded {} hooks, {hooks} expected", p.hooks_loaded);
        }
        std::thread::sleep(Duration::from_secs(2));
        hem_loaded.push(mib(status_kib(p.hem.pid(), "VmRSS")?));
        let t = hem_throughput(&mut p, source.true_hook, events)?;
        breakdown = format!("CPU per event by thread in the last run — {}.", t.threads);
        rates.push(t.rate);
        let per = 10_000.0 / events as f64;
        cpu_hem.push(t.hem.own * per);
        cpu_supervisor.push(t.supervisor.own * per);
        cpu_hooks.push(t.supervisor.children * per);
        cpu_driver.push(t.driver.own * per);
        hem_after.push(mib(status_kib(p.hem.pid(), "VmRSS")?));
        hem_peak.push(mib(status_kib(p.hem.pid(), "VmHWM")?));
        driver_after.push(mib(status_kib(p.driver.pid(), "VmRSS")?));
    }
    report.add(
        SECTION,
        "HEM resident memory, idle",
        "MiB",
        hem_idle,
        "2 hooks",
    );
    report.add(
        SECTION,
        &format!("HEM resident memory, {hooks} hooks loaded"),
        "MiB",
        hem_loaded,
        "2 s after the load",
    );
    report.goal(Goal::Below(30.0));
    report.add(
        SECTION,
        &format!("HEM resident memory after {events} events"),
        "MiB",
        hem_after,
        &format!("{hooks} hooks loaded"),
    );
    report.reference("~210 MB during a 2,000-event burst");
    report.add(
        SECTION,
        "HEM peak resident memory (VmHWM)",
        "MiB",
        hem_peak,
        "over load and events",
    );
    report.add(
        SECTION,
        "driver resident memory, idle",
        "MiB",
        driver_idle,
        "",
    );
    report.add(
        SECTION,
        &format!("driver resident memory after {events} events"),
        "MiB",
        driver_after,
        "",
    );
    report.reference("~72 MB during a 2,000-event burst");
    let note = format!("measured over {events} events, scaled to 10,000");
    report.add(SECTION, "HEM CPU per 10,000 events", "s", cpu_hem, &note);
    report.add(
        SECTION,
        "its hook supervisor's CPU per 10,000 events",
        "s",
        cpu_supervisor,
        &note,
    );
    report.add(
        SECTION,
        "hooks' CPU per 10,000 events (/bin/true, children of the hook supervisor)",
        "s",
        cpu_hooks,
        &note,
    );
    report.add(
        SECTION,
        "driver CPU per 10,000 events",
        "s",
        cpu_driver,
        &note,
    );
    report.add(
        SECTION,
        &format!("HEM route rate over these {events} events"),
        "events/s",
        rates,
        &format!("{hooks} hooks loaded; compare section 3 (fewer events, 2 hooks)"),
    );
    report.note(SECTION, &breakdown);
    Ok(())
}
