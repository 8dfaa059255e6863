//! The daemon's wiring: [`run`] picks the mode (the distributed one lives in
//! [`crate::distributed`]); in the single-HEM mode it opens the state DB, starts the result
//! senders, the scheduler and the executors, settles what a previous run left, starts the
//! resync and ingest threads, and at the end stops everything in order. Each step is a function
//! below, in the order they run.

use std::future::Future;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use anyhow::Context;

use crate::config::Config;
use crate::execution::{Execution, HookPaths, Interruption, Target};
use crate::front_end::FrontEndAccess;
use crate::hook_source::XmlRpcHookSource;
use crate::ingest::{Acceptor, Ingest, IngestSettings, IngestShared, snapshot_channel};
use crate::journal::ZmqJournal;
use crate::metrics::{HemMetrics, Outcome};
use crate::remote::RemoteExecutor;
use crate::result_sender::{ResultSender, SenderConfig};
use crate::resync::resync_loop;
use crate::runner::{HemRunner, LocalHooks, StateLedger, complete};
use crate::scheduler::{self, Limits, Submitter};
use crate::scrape::HemSource;
use crate::state_db::{Recovery, StateDb, StateDbThread};
use crate::subscriber::ZmqSubscriber;
use crate::supervisor::client::{Supervised, SupervisorSettings, Welcome};
use one_metrics::MetricsServer;

/// Runs the HEM until `shutdown` completes.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    let shared = IngestShared::new().context("cannot create the HEM's stop switch")?;
    run_with_status(config, shutdown, Arc::new(shared)).await
}

/// As [`run`], sharing the ingest progress (`ready`, watermark, hook count) with the caller,
/// which lets a test wait until the HEM is caught up.
pub async fn run_with_status(
    config: Config,
    shutdown: impl Future<Output = ()>,
    shared: Arc<IngestShared>,
) -> anyhow::Result<()> {
    let view = Arc::new(HemSource::new(shared.clone()));
    // Held until the HEM has stopped; the endpoint answers 503 while it starts and stops.
    let _endpoint = start_metrics(&config, &view)?;
    // Held until the HEM has stopped: memory a burst used goes back once the HEM is idle.
    let _trimmer = crate::memory::IdleTrimmer::start(shared.metrics.clone());
    if let Some(nats) = config.nats.clone() {
        return crate::distributed::run(config, nats, shutdown, &shared, &view).await;
    }
    // Credentials first: a HEM that cannot reach the front-end leaves no state DB behind.
    let (access, source) = XmlRpcHookSource::from_config(&config)?;
    let (db, db_thread, mut recovery) =
        StateDb::open(&config.state_db).context("cannot open the state DB")?;
    tracing::info!(
        state_db = %config.state_db.display(),
        instance = %recovery.instance,
        boot = recovery.boot,
        watermark = ?recovery.watermark,
        pending = recovery.pending.len(),
        interrupted = recovery.interrupted.len(),
        unacknowledged = recovery.outbox.len(),
        "HEM starting"
    );
    let (instance, boot, uid_key, watermark) = (
        std::mem::take(&mut recovery.instance),
        recovery.boot,
        recovery.uid_key.clone(),
        recovery.watermark,
    );
    let (supervised, welcome) = start_supervisor(&config, &access, &db).await?;
    let ctx = zmq::Context::new();
    let work = start_work(&config, &ctx, &db, supervised.clone(), &shared.metrics)?;
    let _ = view.results.set(work.sender.queue());
    let _ = view.remote.set(work.remote.clone());
    recover(
        &db,
        &work,
        &shared.metrics,
        recovery,
        (&supervised, &welcome),
        &config.hook_paths(),
    )
    .await?;
    let settings = IngestSettings {
        paths: config.hook_paths(),
        replay_from: config.replay_from,
        replay_batch: config.replay_batch,
        poll_interval: config.replay_poll_interval,
        instance,
        boot,
        uid_key,
        watermark,
    };
    let readers = start_readers(&config, &ctx, source, &db, &work, settings, &shared)?;
    let Work {
        sender,
        submitter,
        scheduler_task,
        remote,
        ..
    } = work;
    // The ingest thread's acceptor holds the only submitter left: when it ends, the scheduler
    // finishes what it has and stops.
    drop(submitter);

    let unexpected = wait_for_the_end(shutdown, &shared, readers.ingest_done).await;
    stop_in_order(
        &config,
        readers.ingest,
        readers.resync,
        scheduler_task,
        Executors { remote, supervised },
        sender,
        db_thread,
    )
    .await?;
    if unexpected {
        anyhow::bail!("the event reader stopped unexpectedly");
    }
    Ok(())
}

/// The `/metrics` and `/health` endpoint, when `metrics_listen` names one. It is bound before
/// anything else starts, so a bad or busy address stops the HEM at once.
pub fn start_metrics(
    config: &Config,
    view: &Arc<HemSource>,
) -> anyhow::Result<Option<MetricsServer>> {
    let Some(addr) = config.metrics_listen else {
        return Ok(None);
    };
    let listener = one_metrics::bind(addr).context("metrics_listen")?;
    let server = MetricsServer::start(listener, view.clone())
        .with_context(|| format!("cannot start the metrics endpoint on {addr}"))?;
    Ok(Some(server))
}

/// Connects to the hook supervisor (starting it when none answers) and lets the state DB tell
/// it which outcomes are durably taken.
async fn start_supervisor(
    config: &Config,
    access: &FrontEndAccess,
    db: &StateDb,
) -> anyhow::Result<(Supervised, Welcome)> {
    let (supervised, welcome) =
        Supervised::start_for_hem(SupervisorSettings::of_hem(config, access.hook_env(), None))
            .await?;
    let taker = supervised.clone();
    db.on_settled(Box::new(move |uids| taker.taken(uids)))
        .context("cannot reach the state DB writer")?;
    Ok((supervised, welcome))
}

/// What runs the hooks and carries their results: the result senders, the scheduler and the
/// executors behind it.
struct Work {
    sender: ResultSender,
    submitter: Submitter,
    scheduler_task: tokio::task::JoinHandle<()>,
    remote: Arc<RemoteExecutor>,
}

fn start_work(
    config: &Config,
    ctx: &zmq::Context,
    db: &StateDb,
    supervised: Supervised,
    metrics: &Arc<HemMetrics>,
) -> anyhow::Result<Work> {
    let ack_db = db.clone();
    let sender = ResultSender::start(
        ctx.clone(),
        SenderConfig {
            endpoint: config.replier_endpoint.clone(),
            in_flight: config.result_senders,
            ack_timeout: config.result_timeout,
            curve: config.curve.clone(),
        },
        Arc::new(move |entry| ack_db.acked(&entry.uid)),
    )
    .context("cannot start the result senders")?;
    let remote = Arc::new(RemoteExecutor::new(config.remote.clone()));
    let runner = Arc::new(HemRunner {
        ledger: StateLedger {
            db: db.clone(),
            results: sender.queue(),
            result_backlog: config.max_pending,
        },
        local: LocalHooks(supervised),
        remote: remote.clone(),
        output_cap: config.output_cap,
        metrics: metrics.clone(),
    });
    let (submitter, scheduler_task) = scheduler::start_counted(
        runner,
        Limits {
            concurrency: config.concurrency,
            hook_concurrency: config.hook_concurrency,
            max_pending: config.max_pending,
        },
        metrics.clone(),
    );
    Ok(Work {
        sender,
        submitter,
        scheduler_task,
        remote,
    })
}

/// What the previous run left: unacknowledged results first, then the executions that were
/// running: those the hook supervisor has (still running, or finished while the HEM was down)
/// go to the scheduler, which takes their real outcome without running them again; the others
/// are reported as interrupted, never re-run. Then the accepted ones that never started (run
/// now, before any new event so that their lanes keep event order).
async fn recover(
    db: &StateDb,
    work: &Work,
    metrics: &HemMetrics,
    recovery: Recovery,
    (supervised, welcome): (&Supervised, &Welcome),
    paths: &HookPaths,
) -> anyhow::Result<()> {
    let results = work.sender.queue();
    for entry in recovery.outbox {
        tracing::info!(uid = %entry.uid, hook_id = entry.hook_id, "resending a result the driver never acknowledged");
        results.send(entry);
    }
    // Outcomes whose executions already left the state DB (the HEM died between that commit
    // and telling the supervisor) are taken now.
    let started: std::collections::HashSet<&str> = recovery
        .interrupted
        .iter()
        .map(|e| e.uid.as_str())
        .collect();
    supervised.taken(
        welcome
            .finished
            .iter()
            .filter(|uid| !started.contains(uid.as_str()))
            .cloned()
            .collect(),
    );
    let mut resumed = Vec::new();
    for exec in recovery.interrupted {
        let why = match exec.plan.target {
            Target::Local if welcome.knows(&exec.uid) => {
                tracing::info!(uid = %exec.uid, hook_id = exec.hook_id, seq = exec.seq,
                    running = welcome.running.contains(&exec.uid),
                    "execution outlived the HEM under its supervisor; taking its outcome");
                resumed.push(exec);
                continue;
            }
            Target::Local if welcome.found => Interruption::NeverHandedOver,
            Target::Local => Interruption::SupervisorGone,
            Target::Remote { .. } | Target::Refused { .. } => Interruption::Remote,
        };
        tracing::warn!(uid = %exec.uid, hook_id = exec.hook_id, seq = exec.seq, resource = %exec.resource,
            reason = %why.text(), "execution interrupted by a HEM restart; reported as failed (retryable)");
        metrics.executed(exec.hook_id, Outcome::Interrupted, None);
        complete(db, &results, &exec, &exec.interrupted_because(why));
    }
    for exec in resumed {
        if work.submitter.submit(exec).await.is_err() {
            anyhow::bail!("the scheduler stopped during recovery");
        }
    }
    let count = recovery.pending.len();
    for mut exec in recovery.pending {
        // Accepted before this start, perhaps by a HEM without confinement or with a longer
        // hook_allowed_paths: the rule of this configuration applies to what runs now.
        if exec.plan.target == Target::Local
            && let Err(reason) = paths.check_local(&exec.plan.command)
        {
            exec.plan.target = Target::Refused { reason };
        }
        if work.submitter.submit(exec).await.is_err() {
            anyhow::bail!("the scheduler stopped during recovery");
        }
    }
    if count > 0 {
        tracing::info!(
            executions = count,
            "running executions accepted before the restart"
        );
    }
    Ok(())
}

/// The threads that read: the ingest loop (events in, executions out) and the periodic resync.
struct Readers {
    ingest: std::thread::JoinHandle<()>,
    ingest_done: tokio::sync::oneshot::Receiver<()>,
    resync: std::thread::JoinHandle<()>,
}

fn start_readers(
    config: &Config,
    ctx: &zmq::Context,
    source: XmlRpcHookSource,
    db: &StateDb,
    work: &Work,
    settings: IngestSettings,
    shared: &Arc<IngestShared>,
) -> anyhow::Result<Readers> {
    if let Some(curve) = &config.curve {
        tracing::info!(
            server_key = %curve.server.z85(),
            client_key = %curve.cert.public.z85(),
            "CURVE on for the driver's sockets"
        );
    }
    let subscriber =
        ZmqSubscriber::connect(ctx, &config.subscriber_endpoint, config.curve.as_ref())
            .with_context(|| format!("cannot connect to {}", config.subscriber_endpoint))?;
    let journal = config
        .replay_endpoint
        .as_deref()
        .map(|e| ZmqJournal::new(ctx.clone(), e, config.replay_timeout, config.curve.clone()));
    if journal.is_none() {
        tracing::warn!(
            "no replay endpoint configured: running live-only; events missed while the HEM is down or slow are lost"
        );
    }

    let (snapshot_tx, snapshot_rx) =
        snapshot_channel().context("cannot set up the resync hand-off")?;
    let (resync_tx, resync_rx) = mpsc::channel::<()>();
    let resync = {
        let source = source.clone();
        let shared = shared.clone();
        let interval = config.resync_interval;
        std::thread::Builder::new()
            .name("hem-resync".into())
            .spawn(move || {
                resync_loop(
                    source,
                    interval,
                    resync_rx,
                    || shared.stop.is_requested(),
                    |s| snapshot_tx.send(s),
                )
            })
            .context("cannot start the resync thread")?
    };

    let acceptor = DbAcceptor {
        db: db.clone(),
        submitter: work.submitter.clone(),
        shared: shared.clone(),
        runtime: tokio::runtime::Handle::current(),
    };
    let (ingest_done_tx, ingest_done) = tokio::sync::oneshot::channel::<()>();
    let ingest = {
        let shared = shared.clone();
        std::thread::Builder::new()
            .name("hem-ingest".into())
            .spawn(move || {
                Ingest::new(subscriber, journal, source, acceptor, settings, shared)
                    .with_resync(snapshot_rx, resync_tx)
                    .run();
                let _ = ingest_done_tx.send(());
            })
            .context("cannot start the ingest thread")?
    };
    Ok(Readers {
        ingest,
        ingest_done,
        resync,
    })
}

/// Waits for `shutdown` or the end of the ingest thread, then requests the stop; true if the
/// ingest thread ended on its own.
async fn wait_for_the_end(
    shutdown: impl Future<Output = ()>,
    shared: &IngestShared,
    mut ingest_done: tokio::sync::oneshot::Receiver<()>,
) -> bool {
    let ingest_failed = tokio::select! {
        _ = shutdown => false,
        _ = &mut ingest_done => true,
    };
    let unexpected = ingest_failed && !shared.stop.is_requested();
    if unexpected {
        tracing::error!("the event reader stopped unexpectedly; shutting down");
    }
    tracing::info!("HEM stopping");
    shared.stop.request();
    // The ingest thread wakes at once unless it is inside a front-end call, which its client
    // timeout bounds.
    let _ = tokio::time::timeout(Duration::from_secs(60), ingest_done).await;
    unexpected
}

/// The executors to stop at the end.
struct Executors {
    remote: Arc<RemoteExecutor>,
    supervised: Supervised,
}

/// Stops what is left, readers first: running executions get the grace period, then the
/// executors, the result senders (their own grace for acknowledgements) and the state DB.
async fn stop_in_order(
    config: &Config,
    ingest: std::thread::JoinHandle<()>,
    resync: std::thread::JoinHandle<()>,
    mut scheduler_task: tokio::task::JoinHandle<()>,
    executors: Executors,
    sender: ResultSender,
    db_thread: StateDbThread,
) -> anyhow::Result<()> {
    if ingest.is_finished() {
        let _ = ingest.join();
    }
    // The executions still running after the grace period are killed (their process groups
    // with them) and reported as interrupted at the next start.
    if tokio::time::timeout(config.shutdown_grace, &mut scheduler_task)
        .await
        .is_err()
    {
        tracing::warn!(
            grace_s = config.shutdown_grace.as_secs_f64(),
            "executions still running after the grace period are killed"
        );
        scheduler_task.abort();
        let _ = scheduler_task.await;
    }
    // The supervisor kills what still runs and exits once it is gone.
    executors.supervised.bye().await;
    executors.remote.shutdown().await;
    let grace = config.shutdown_grace;
    tokio::task::spawn_blocking(move || {
        sender.stop(grace.min(Duration::from_secs(5)));
        db_thread.stop();
        let _ = resync.join();
    })
    .await
    .context("shutdown task failed")?;
    tracing::info!("HEM stopped");
    Ok(())
}

/// Queues the record of accepted executions, then hands them to the scheduler, waiting while
/// it is full.
struct DbAcceptor {
    db: StateDb,
    submitter: Submitter,
    shared: Arc<IngestShared>,
    runtime: tokio::runtime::Handle,
}

impl Acceptor for DbAcceptor {
    fn accept(&mut self, execs: Vec<Execution>, watermark: Option<u64>) -> bool {
        if execs.is_empty() {
            if let Some(w) = watermark
                && let Err(e) = self.db.set_watermark(w)
            {
                tracing::error!(error = %e, "cannot record the event watermark");
            }
            return true;
        }
        if let Err(e) = self.db.accept(execs.clone(), watermark) {
            // Running the hooks without a record is better than not running them; the error
            // says crash protection is gone until the state DB works again.
            tracing::error!(error = %e, executions = execs.len(),
                "cannot record accepted executions; running them without crash protection");
        }
        for exec in execs {
            // Not handed over: recorded as pending, so the next start runs it.
            if self
                .submitter
                .submit_blocking(exec, &self.runtime, &self.shared.stop)
                .is_err()
            {
                return false;
            }
        }
        true
    }
}
