//! Decides when accepted executions run: at most `concurrency` at once, at most
//! `hook_concurrency` per hook, and one at a time per lane (the same hook on the same resource)
//! in acceptance order, while unrelated executions run in parallel. The input queue is
//! bounded and the scheduler stops taking work when `max_pending` executions are waiting, so
//! a flood pushes back on the event reader instead of growing memory.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;

use crate::execution::Execution;
use crate::metrics::HemMetrics;
use crate::stop::Stop;

/// Runs one execution to its end (result recorded and queued for delivery).
pub trait Runner: Send + Sync + 'static {
    fn run(&self, exec: Execution) -> impl Future<Output = ()> + Send;
}

/// Limits of the scheduler.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub concurrency: usize,
    pub hook_concurrency: Option<usize>,
    pub max_pending: usize,
}

/// Where executions are submitted. Dropping every handle lets the scheduler finish.
#[derive(Clone, Debug)]
pub struct Submitter {
    tx: mpsc::Sender<Queued>,
}

/// An execution and when it was handed over (for the start latency).
#[derive(Debug)]
struct Queued {
    exec: Execution,
    at: Instant,
}

impl Submitter {
    /// Submits from async code; waits while the scheduler is full.
    pub async fn submit(&self, exec: Execution) -> Result<(), SchedulerClosed> {
        let queued = Queued {
            exec,
            at: Instant::now(),
        };
        self.tx.send(queued).await.map_err(|_| SchedulerClosed)
    }

    /// Submits from an OS thread outside the runtime, waiting while the scheduler is full,
    /// until it is taken or `stop` is requested (then the execution is dropped here; the
    /// caller has recorded it, and the next start runs it).
    pub fn submit_blocking(
        &self,
        exec: Execution,
        runtime: &tokio::runtime::Handle,
        stop: &Stop,
    ) -> Result<(), NotSubmitted> {
        let queued = Queued {
            exec,
            at: Instant::now(),
        };
        // The common case, a scheduler with room, costs no trip through the runtime.
        let queued = match self.tx.try_send(queued) {
            Ok(()) => return Ok(()),
            Err(mpsc::error::TrySendError::Full(exec)) => exec,
            Err(mpsc::error::TrySendError::Closed(_)) => return Err(NotSubmitted::Closed),
        };
        runtime.block_on(async {
            tokio::select! {
                biased;
                sent = self.tx.send(queued) => sent.map_err(|_| NotSubmitted::Closed),
                _ = stop.requested() => Err(NotSubmitted::Stopping),
            }
        })
    }
}

/// The scheduler is gone (the HEM is stopping).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the scheduler has stopped")]
pub struct SchedulerClosed;

/// Why [`Submitter::submit_blocking`] did not hand an execution over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotSubmitted {
    /// The HEM is stopping.
    Stopping,
    /// The scheduler is gone.
    Closed,
}

/// Starts the scheduler task. It ends when every [`Submitter`] is dropped and all submitted
/// executions are finished; aborting its handle drops the running executions.
pub fn start<R: Runner>(
    runner: Arc<R>,
    limits: Limits,
) -> (Submitter, tokio::task::JoinHandle<()>) {
    start_counted(runner, limits, Arc::new(HemMetrics::default()))
}

/// As [`start`], counting waiting and running executions and their start latency in `metrics`.
pub fn start_counted<R: Runner>(
    runner: Arc<R>,
    limits: Limits,
    metrics: Arc<HemMetrics>,
) -> (Submitter, tokio::task::JoinHandle<()>) {
    // The channel is only a hand-off; the real bound is max_pending inside the dispatcher.
    let (tx, rx) = mpsc::channel(256);
    let handle = tokio::spawn(dispatch(rx, runner, limits, metrics));
    (Submitter { tx }, handle)
}

async fn dispatch<R: Runner>(
    mut rx: mpsc::Receiver<Queued>,
    runner: Arc<R>,
    limits: Limits,
    metrics: Arc<HemMetrics>,
) {
    let global = Arc::new(Semaphore::new(limits.concurrency.max(1)));
    let mut per_hook: HashMap<i64, Arc<Semaphore>> = HashMap::new();
    // A lane present in the map is busy; its queue holds the executions waiting behind it.
    let mut lanes: HashMap<String, VecDeque<Queued>> = HashMap::new();
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<String>();
    let mut tasks = JoinSet::new();
    let mut outstanding = 0usize;
    let mut input_open = true;

    let start =
        |queued: Queued, tasks: &mut JoinSet<()>, per_hook: &mut HashMap<i64, Arc<Semaphore>>| {
            let Queued { exec, at } = queued;
            let hook_sem = limits.hook_concurrency.map(|n| {
                per_hook
                    .entry(exec.hook_id)
                    .or_insert_with(|| Arc::new(Semaphore::new(n.max(1))))
                    .clone()
            });
            let global = global.clone();
            let runner = runner.clone();
            let metrics = metrics.clone();
            let done = LaneDone {
                lane: Some(exec.lane.clone()),
                tx: done_tx.clone(),
            };
            tasks.spawn(async move {
                let _done = done;
                // The per-hook slot first, so that a hook at its limit does not hold a global slot.
                let _hook_permit = match hook_sem {
                    Some(s) => s.acquire_owned().await.ok(),
                    None => None,
                };
                let Ok(_permit) = global.acquire_owned().await else {
                    return;
                };
                metrics.started(at.elapsed());
                let _running = Running(&metrics);
                // Boxed apart from the task: tokio allocates a task cache-line aligned, and an
                // aligned allocation of the whole execution's state costs far more than a plain one.
                Box::pin(runner.run(exec)).await;
            });
        };

    loop {
        if !input_open && outstanding == 0 {
            break;
        }
        tokio::select! {
            Some(lane) = done_rx.recv() => {
                outstanding = outstanding.saturating_sub(1);
                let next = match lanes.get_mut(&lane) {
                    Some(queue) => queue.pop_front(),
                    None => None,
                };
                match next {
                    Some(exec) => start(exec, &mut tasks, &mut per_hook),
                    None => {
                        lanes.remove(&lane);
                    }
                }
            }
            received = rx.recv(), if input_open && outstanding < limits.max_pending => {
                match received {
                    Some(queued) => {
                        outstanding += 1;
                        metrics.waiting.add(1);
                        match lanes.get_mut(&queued.exec.lane) {
                            Some(queue) => queue.push_back(queued),
                            None => {
                                lanes.insert(queued.exec.lane.clone(), VecDeque::new());
                                start(queued, &mut tasks, &mut per_hook);
                            }
                        }
                    }
                    None => input_open = false,
                }
            }
            Some(joined) = tasks.join_next(), if !tasks.is_empty() => {
                if let Err(e) = joined
                    && e.is_panic()
                {
                    tracing::error!("a hook execution task panicked; its lane continues");
                }
            }
        }
        // Per-hook semaphores of idle hooks are dropped so the map does not grow with churn.
        if per_hook.len() > 1024 {
            per_hook.retain(|_, s| Arc::strong_count(s) > 1);
        }
    }
}

/// Counts a run as ended however its task ends (also when aborted at the end of the grace).
struct Running<'a>(&'a HemMetrics);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.running.sub(1);
    }
}

/// Reports a lane free when an execution task ends, however it ends.
struct LaneDone {
    lane: Option<String>,
    tx: mpsc::UnboundedSender<String>,
}

impl Drop for LaneDone {
    fn drop(&mut self) {
        if let Some(lane) = self.lane.take() {
            let _ = self.tx.send(lane);
        }
    }
}
