//! The daemons' `/metrics` and `/health` as Prometheus and a load balancer see them: scraped
//! during a flood of hooked events and parsed by `prometheus_client`, counters that only grow,
//! final counts equal to the hook log, 503 while the HEM has no event source, and nothing
//! listening when the metrics are not configured.

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use one_e2e::metrics::{Scrape, Scraper, http_get, listening};
use one_e2e::stack::{
    Daemon, LOGGER_PORT, PUBLISHER_PORT, REPLAY_PORT, Stack, StackOptions, wait_for,
};

use crate::flood::Flood;

const VMS: usize = 300;
const WAIT: Duration = Duration::from_secs(120);
/// Scrapes of each daemon at most while the flood runs, and the interval between them (a
/// sampling rate, as Prometheus has one).
const MAX_SCRAPES: usize = 200;
const SCRAPE_INTERVAL: Duration = Duration::from_millis(50);

#[test]
fn scrapes_during_a_flood_parse_only_grow_and_match_the_hook_log() -> Result<()> {
    let mut stack = Stack::start_with(StackOptions {
        metrics: true,
        log_retention: 10_000,
        // The idle journal check notices a driver that went away within a second or two.
        hem_extra: "replay_poll_interval: 0.2\nreplay_timeout: 1\n".into(),
        ..Default::default()
    })?;
    let hem = stack.metrics_addr(Daemon::Hem(0));
    let driver = stack.metrics_addr(Daemon::Driver);
    let oned = stack.metrics_addr(Daemon::Oned);
    let client = stack.client();
    let mut scraper = Scraper::start()?;
    let ok = client
        .hook_allocate("NAME = ok\nTYPE = api\nCOMMAND = /bin/true\nCALL = one.vm.allocate\n")?;
    let bad = client
        .hook_allocate("NAME = bad\nTYPE = api\nCOMMAND = /bin/false\nCALL = one.vm.allocate\n")?;
    wait_for("the HEM to load both hooks", WAIT, || {
        let s = scraper.scrape(hem).ok()?;
        (s.value("one_hem_hooks_loaded", &[]) == Some(2.0)).then_some(())
    })
    .with_context(|| stack.tail_log("hem"))?;

    // Scrapes of both daemons while the flood runs and its hooks execute, until the hooks of
    // every allocation have run; bounded in count.
    let flood = Flood::of(&stack);
    let all = 2.0 * VMS as f64;
    let mut scrapes: Vec<[Scrape; 3]> = Vec::new();
    let started = std::time::Instant::now();
    std::thread::scope(|s| -> Result<()> {
        let flooding = s.spawn(|| flood.allocate_vms(VMS, 2));
        while scrapes.len() < MAX_SCRAPES && started.elapsed() < WAIT {
            let [h, d, o] = [hem, driver, oned].map(|a| scraper.scrape(a));
            let h = h?;
            let done = h.sum("one_hem_executions_total", &[]) >= all;
            scrapes.push([h, d?, o?]);
            if done && flooding.is_finished() {
                break;
            }
            std::thread::sleep(SCRAPE_INTERVAL);
        }
        flooding
            .join()
            .map_err(|_| anyhow::anyhow!("the flood panicked"))??;
        Ok(())
    })?;
    let during = scrapes
        .iter()
        .filter(|[h, ..]| h.sum("one_hem_executions_total", &[]) < all)
        .count();
    eprintln!(
        "{during} of {} scrapes while hooks were still running",
        scrapes.len()
    );
    assert!(during >= 2, "only {during} scrapes during the flood");

    let ok_records = stack.wait_records(ok, VMS, WAIT)?;
    let bad_records = stack.wait_records(bad, VMS, WAIT)?;
    let codes = |records: &[one_proto::hook_log::ExecutionRecord]| -> Result<(usize, usize)> {
        let mut zero = 0;
        for r in records {
            if r.result.as_ref().context("a record without result")?.code == 0 {
                zero += 1;
            }
        }
        Ok((zero, records.len() - zero))
    };
    let (ok_success, ok_failure) = codes(&ok_records)?;
    let (bad_success, bad_failure) = codes(&bad_records)?;
    assert_eq!((ok_success, ok_failure), (VMS, 0));
    assert_eq!((bad_success, bad_failure), (0, VMS));

    // Events keep coming for a while (the simulated VMs change state); every one the driver
    // published is taken in by the HEM once things settle.
    let [hem_final, driver_final, oned_final] = wait_for(
        "the HEM to have taken in every published event and reported every result",
        WAIT,
        || {
            let h = scraper.scrape(hem).ok()?;
            let d = scraper.scrape(driver).ok()?;
            let o = scraper.scrape(oned).ok()?;
            let received = h.value("one_hem_events_received_total", &[])?;
            let published = d.value("one_hm_events_published_total", &[])?;
            let settled = received == published
                && h.value("one_hem_result_outbox", &[]) == Some(0.0)
                && h.value("one_hem_executions_running", &[]) == Some(0.0)
                && h.value("one_hem_executions_waiting", &[]) == Some(0.0)
                && o.value("one_oned_event_outbox", &[]) == Some(0.0)
                && o.value("one_oned_hooklog_records_stored_total", &[]) == Some(all);
            settled.then_some([h, d, o])
        },
    )
    .with_context(|| stack.tail_log("hem"))?;
    scrapes.push([hem_final.clone(), driver_final.clone(), oned_final.clone()]);

    for (i, pair) in scrapes.windows(2).enumerate() {
        for (daemon, name) in ["HEM", "driver", "oned-lite"].iter().enumerate() {
            only_grew(&pair[0][daemon], &pair[1][daemon])
                .with_context(|| format!("{name}, scrape {i}"))?;
        }
    }

    let h = &hem_final;
    assert_eq!(h.content_type, "text/plain; version=0.0.4; charset=utf-8");
    assert_eq!(
        h.types.get("one_hem_executions").map(String::as_str),
        Some("counter")
    );
    assert_eq!(
        h.types
            .get("one_hem_hook_duration_seconds")
            .map(String::as_str),
        Some("histogram")
    );
    let executions = |hook: i64, outcome: &str| {
        h.value(
            "one_hem_executions_total",
            &[("hook_id", &hook.to_string()), ("outcome", outcome)],
        )
    };
    assert_eq!(executions(ok, "success"), Some(ok_success as f64));
    assert_eq!(executions(bad, "failure"), Some(bad_failure as f64));
    assert_eq!(all, (ok_records.len() + bad_records.len()) as f64);
    assert_eq!(h.sum("one_hem_executions_total", &[]), all);
    for histogram in [
        "one_hem_hook_duration_seconds",
        "one_hem_execution_start_latency_seconds",
    ] {
        assert_eq!(
            h.value(&format!("{histogram}_count"), &[]),
            Some(all),
            "{histogram}"
        );
        assert_eq!(
            h.value(&format!("{histogram}_bucket"), &[("le", "+Inf")]),
            Some(all),
            "{histogram}"
        );
    }
    let received = h.value("one_hem_events_received_total", &[]).unwrap_or(0.0);
    assert!(received >= VMS as f64, "{received} events received");
    assert_eq!(h.value("one_hem_events_lost_total", &[]), Some(0.0));

    let d = &driver_final;
    assert_eq!(
        d.value("one_hm_events_journaled_total", &[]),
        d.value("one_hm_events_published_total", &[])
    );
    assert_eq!(d.value("one_hm_results_acked_total", &[]), Some(all));
    assert_eq!(d.value("one_hm_results_malformed_total", &[]), Some(0.0));
    assert_eq!(d.value("one_hm_results_refused_total", &[]), Some(0.0));
    assert_eq!(d.value("one_hm_results_unstored_total", &[]), Some(0.0));
    let forwarded = d
        .value("one_hm_results_forwarded_total", &[])
        .unwrap_or(0.0);
    assert!(forwarded >= all, "{forwarded} results forwarded");
    assert_eq!(d.value("one_hm_journal_up", &[]), Some(1.0));
    let kept = d.value("one_hm_journal_events", &[]).unwrap_or(0.0);
    assert!(kept >= received, "{kept} events in the journal");

    let o = &oned_final;
    assert_eq!(
        o.value(
            "one_oned_api_calls_total",
            &[("method", "one.vm.allocate"), ("outcome", "success")]
        ),
        Some(VMS as f64)
    );
    assert_eq!(
        o.value(
            "one_oned_api_calls_total",
            &[("method", "one.hook.allocate"), ("outcome", "success")]
        ),
        Some(2.0)
    );

    dashboard_names_exist(&[h, d, o])?;

    for addr in [hem, driver, oned] {
        let (status, body) = http_get(addr, "/health")?;
        assert_eq!(status, 200, "{addr}: {body}");
        assert!(body.contains("\"status\":\"ok\""), "{body}");
    }

    // Without its driver the HEM has no event source: 503 with the reason, then 200 again.
    stack.kill_oned()?;
    let reason = wait_for("the HEM's health to turn 503", WAIT, || {
        let (status, body) = http_get(hem, "/health").ok()?;
        (status == 503).then_some(body)
    })
    .with_context(|| stack.tail_log("hem"))?;
    assert!(
        reason.contains("replay endpoint is not answering"),
        "{reason}"
    );
    stack.start_oned()?;
    wait_for("the HEM's health to recover", WAIT, || {
        let (status, _) = http_get(hem, "/health").ok()?;
        (status == 200).then_some(())
    })
    .with_context(|| stack.tail_log("hem"))?;
    Ok(())
}

/// Every metric the Grafana dashboard queries is one the daemons expose (a family, or a
/// histogram's or counter's sample).
fn dashboard_names_exist(scrapes: &[&Scrape]) -> Result<()> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../etc/grafana/one-hooks.json");
    let doc: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path)?)?;
    let mut exprs = Vec::new();
    for panel in doc["panels"].as_array().context("no panels")? {
        for target in panel["targets"].as_array().into_iter().flatten() {
            exprs.push(target["expr"].as_str().unwrap_or_default().to_string());
        }
    }
    let exposed = |name: &str| {
        let family = ["_total", "_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| name.strip_suffix(suffix))
            .unwrap_or(name);
        scrapes
            .iter()
            .any(|s| s.types.contains_key(family) || s.types.contains_key(name))
    };
    let mut names = BTreeSet::new();
    for expr in &exprs {
        let mut rest = expr.as_str();
        while let Some(at) = rest.find("one_") {
            let tail = &rest[at..];
            let end = tail
                .find(|c: char| !(c.is_ascii_lowercase() || c == '_'))
                .unwrap_or(tail.len());
            names.insert(tail[..end].to_string());
            rest = &tail[end..];
        }
    }
    assert!(names.len() > 20, "{names:?}");
    let missing: Vec<_> = names.iter().filter(|n| !exposed(n)).collect();
    if !missing.is_empty() {
        bail!("the dashboard queries metrics nobody exposes: {missing:?}");
    }
    Ok(())
}

/// Every counter, bucket, sum and count of `before` is in `after`, not smaller.
fn only_grew(before: &Scrape, after: &Scrape) -> Result<()> {
    for ((name, labels), v) in before.monotonic() {
        let later = after.samples.get(&(name.clone(), labels.clone()));
        match later {
            Some(l) if l >= v => {}
            other => bail!("{name}{labels:?} went from {v} to {other:?}"),
        }
    }
    Ok(())
}

#[test]
fn nothing_listens_for_metrics_unless_configured() -> Result<()> {
    let stack = Stack::start()?;
    let hem_pid = stack.hem_pid().context("no HEM")?;
    let driver_pid = wait_for("the driver", WAIT, || stack.driver_pid())?;
    // The driver's own three sockets are bound before it answers INIT, the HEM binds none.
    let zmq: BTreeSet<_> = [PUBLISHER_PORT, LOGGER_PORT, REPLAY_PORT]
        .into_iter()
        .map(|p| std::net::SocketAddr::from((stack.ip, p)))
        .collect();
    let driver = wait_for("the driver's sockets", WAIT, || {
        let l = listening(driver_pid).ok()?;
        (l.len() >= zmq.len()).then_some(l)
    })?;
    assert_eq!(driver, zmq);
    // Past its start, where it would have bound the endpoint.
    wait_for("the HEM to load the hooks", WAIT, || {
        std::fs::read_to_string(stack.log_path("hem"))
            .ok()?
            .contains("Hooks successfully loaded")
            .then_some(())
    })?;
    assert_eq!(listening(hem_pid)?, BTreeSet::new());
    for daemon in [Daemon::Hem(0), Daemon::Driver, Daemon::Oned] {
        let addr = stack.metrics_addr(daemon);
        assert!(
            std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_err(),
            "{daemon:?} listens on {addr}"
        );
    }

    let metrics = Stack::start_with(StackOptions {
        metrics: true,
        ..Default::default()
    })?;
    let hem_pid = metrics.hem_pid().context("no HEM")?;
    let hem = metrics.metrics_addr(Daemon::Hem(0));
    wait_for("the HEM's metrics endpoint", WAIT, || {
        listening(hem_pid).ok().filter(|l| l.contains(&hem))
    })?;
    assert_eq!(listening(hem_pid)?, BTreeSet::from([hem]));
    Ok(())
}
