//! Scheduler ordering and bounds, with a runner that records what it sees.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use onehem_server::execution::{Execution, Plan, Target};
use onehem_server::scheduler::{self, Limits, Runner};
use tokio::sync::Barrier;

fn exec(hook_id: i64, lane: &str, n: usize) -> Execution {
    Execution {
        uid: format!("{lane}-{n}"),
        seq: n as u64,
        hook_id,
        lane: lane.to_string(),
        resource: String::new(),
        event_key: String::new(),
        plan: Plan {
            command: "/bin/true".into(),
            arguments: n.to_string(),
            stdin: false,
            timeout_secs: None,
            target: Target::Local,
            report_host: None,
            retry: false,
        },
    }
}

#[derive(Default)]
struct Recorder {
    state: Mutex<State>,
    barrier: Option<Barrier>,
}

#[derive(Default)]
struct State {
    order: HashMap<String, Vec<usize>>,
    active_lanes: HashMap<String, usize>,
    active_hooks: HashMap<i64, usize>,
    active: usize,
    max_active: usize,
    max_hook_active: usize,
    lane_overlap: bool,
}

impl Runner for Recorder {
    async fn run(&self, e: Execution) {
        {
            let mut s = self.state.lock().unwrap();
            let n: usize = e.plan.arguments.parse().unwrap();
            s.order.entry(e.lane.clone()).or_default().push(n);
            let lane = s.active_lanes.entry(e.lane.clone()).or_default();
            *lane += 1;
            if *lane > 1 {
                s.lane_overlap = true;
            }
            let h = s.active_hooks.entry(e.hook_id).or_default();
            *h += 1;
            let h = *h;
            s.max_hook_active = s.max_hook_active.max(h);
            s.active += 1;
            s.max_active = s.max_active.max(s.active);
        }
        if let Some(b) = &self.barrier {
            b.wait().await;
        }
        // Give other tasks a chance to interleave.
        for _ in 0..3 {
            tokio::task::yield_now().await;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
        let mut s = self.state.lock().unwrap();
        *s.active_lanes.get_mut(&e.lane).unwrap() -= 1;
        *s.active_hooks.get_mut(&e.hook_id).unwrap() -= 1;
        s.active -= 1;
    }
}

async fn run_all(recorder: Arc<Recorder>, limits: Limits, execs: Vec<Execution>) {
    let (submitter, handle) = scheduler::start(recorder, limits);
    for e in execs {
        submitter.submit(e).await.unwrap();
    }
    drop(submitter);
    tokio::time::timeout(Duration::from_secs(60), handle)
        .await
        .expect("scheduler did not finish")
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_lane_keeps_order_and_never_overlaps_while_lanes_run_in_parallel() {
    let recorder = Arc::new(Recorder::default());
    let mut execs = Vec::new();
    for n in 0..40 {
        for lane in ["1|VM/1", "1|VM/2", "2|VM/1", "3|"] {
            let hook = lane[..1].parse().unwrap();
            execs.push(exec(hook, lane, n));
        }
    }
    let limits = Limits {
        concurrency: 3,
        hook_concurrency: None,
        max_pending: 16,
    };
    run_all(recorder.clone(), limits, execs).await;
    let s = recorder.state.lock().unwrap();
    for lane in ["1|VM/1", "1|VM/2", "2|VM/1", "3|"] {
        assert_eq!(
            s.order[lane],
            (0..40).collect::<Vec<_>>(),
            "lane {lane} out of order"
        );
    }
    assert!(!s.lane_overlap, "two executions of one lane ran at once");
    assert!(s.max_active <= 3, "global bound exceeded: {}", s.max_active);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unrelated_executions_really_run_at_the_same_time() {
    // Four executions in four lanes all wait on one barrier: only parallel execution lets
    // them through (a serialised scheduler would hang and hit the test's bound).
    let recorder = Arc::new(Recorder {
        barrier: Some(Barrier::new(4)),
        ..Default::default()
    });
    let execs = (0..4)
        .map(|n| exec(n as i64, &format!("{n}|VM/{n}"), 0))
        .collect();
    let limits = Limits {
        concurrency: 4,
        hook_concurrency: None,
        max_pending: 100,
    };
    run_all(recorder.clone(), limits, execs).await;
    assert_eq!(recorder.state.lock().unwrap().max_active, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_hook_bound_is_respected() {
    let recorder = Arc::new(Recorder::default());
    let mut execs = Vec::new();
    for n in 0..30 {
        execs.push(exec(7, &format!("7|VM/{n}"), 0));
        execs.push(exec(8, &format!("8|VM/{n}"), 0));
    }
    let limits = Limits {
        concurrency: 10,
        hook_concurrency: Some(2),
        max_pending: 1000,
    };
    run_all(recorder.clone(), limits, execs).await;
    let s = recorder.state.lock().unwrap();
    assert!(
        s.max_hook_active <= 2,
        "per-hook bound exceeded: {}",
        s.max_hook_active
    );
    assert_eq!(s.order.values().map(Vec::len).sum::<usize>(), 60);
}

/// Holds every execution until the test opens the gate; reports each start.
struct Gated {
    gate: tokio::sync::Semaphore,
    started: tokio::sync::mpsc::UnboundedSender<()>,
}

impl Runner for Gated {
    async fn run(&self, _e: Execution) {
        let _ = self.started.send(());
        let _ = self.gate.acquire().await.map(|p| p.forget());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_running_and_start_latency_are_counted() {
    use one_metrics::{Exposition, Source};
    use onehem_server::ingest::IngestShared;
    use onehem_server::scrape::HemSource;

    let shared = Arc::new(IngestShared::new().unwrap());
    let metrics = shared.metrics.clone();
    let (started, mut starts) = tokio::sync::mpsc::unbounded_channel();
    let runner = Arc::new(Gated {
        gate: tokio::sync::Semaphore::new(0),
        started,
    });
    let limits = Limits {
        concurrency: 2,
        hook_concurrency: None,
        max_pending: 100,
    };
    let (submitter, handle) = scheduler::start_counted(runner.clone(), limits, metrics.clone());
    for n in 0..5 {
        submitter
            .submit(exec(1, &format!("1|VM/{n}"), n))
            .await
            .unwrap();
    }
    for _ in 0..2 {
        starts.recv().await.unwrap();
    }
    // The dispatcher takes the other three off its channel on its own schedule.
    tokio::time::timeout(Duration::from_secs(10), async {
        while metrics.waiting.get() != 3 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("three executions waiting");
    assert_eq!(metrics.running.get(), 2);

    runner.gate.add_permits(5);
    drop(submitter);
    tokio::time::timeout(Duration::from_secs(60), handle)
        .await
        .expect("scheduler did not finish")
        .unwrap();
    assert_eq!((metrics.waiting.get(), metrics.running.get()), (0, 0));
    let mut out = Exposition::new();
    HemSource::new(shared).render(&mut out);
    let text = out.finish();
    assert!(
        text.contains("\none_hem_execution_start_latency_seconds_count 5\n"),
        "{text}"
    );
}
