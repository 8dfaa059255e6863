//! The distributed mode: any number of HEMs share the events of a NATS JetStream stream
//! (ARCHITECTURE.md "Distributed mode").
//!
//! The events stream is divided into partitions by resource, each read through a durable
//! consumer that is pinned to one HEM at a time ([`partition`]); the members' heartbeats decide
//! which HEM should hold which partitions ([`members`]). An event stays unacknowledged while its
//! hooks run ([`tickets`]), each hook's start is claimed in the HEMs' bucket before it is
//! spawned ([`markers`]), and results go to the results stream, from which the driver hands
//! them to oned ([`ledger`]). Nothing is kept in a local file: a HEM that dies leaves its
//! events to whoever holds its partitions next.

pub mod ledger;
pub mod markers;
pub mod members;
pub mod partition;
pub mod tickets;

use std::future::Future;
use std::sync::Arc;
use std::sync::mpsc as std_mpsc;
use std::time::Duration;

use anyhow::Context as _;
use async_nats::jetstream;
use one_bus::layout::{partitions_of, stream_tag};
use tokio::sync::{broadcast, watch};

use crate::config::{Config, NatsSettings};
use crate::hook_map::HookMap;
use crate::hook_source::XmlRpcHookSource;
use crate::ingest::IngestShared;
use crate::matcher::{HookSource, Matcher, Snapshot};
use crate::remote::RemoteExecutor;
use crate::runner::{HemRunner, LocalHooks};
use crate::scheduler::{self, Limits};
use crate::scrape::HemSource;
use crate::supervisor::client::{Supervised, SupervisorSettings};
use crate::supervisor::frame::BusContext;
use crate::uids::UidKey;
use ledger::BusLedger;
use markers::Markers;
use members::{View, assigned};
use partition::{PartitionWorker, Running, Shared};
use tickets::Tickets;

/// How long a JetStream request (a publish acknowledgement among them) may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs a HEM of the distributed mode until `shutdown` completes.
pub async fn run(
    config: Config,
    nats: NatsSettings,
    shutdown: impl Future<Output = ()>,
    shared: &IngestShared,
    view: &HemSource,
) -> anyhow::Result<()> {
    tokio::pin!(shutdown);
    let (access, source) = XmlRpcHookSource::from_config(&config)?;
    tracing::info!(member = %nats.member, servers = %nats.bus.server_list(),
        endpoint = %access.endpoint, "HEM starting in the distributed mode");

    let ready = tokio::select! {
        ready = connect(&nats) => Some(ready),
        _ = &mut shutdown => None,
    };
    let Some((js, stream, info, markers, uid_key)) = ready else {
        return Ok(());
    };
    let partitions = partitions_of(&info).with_context(|| {
        format!(
            "stream {} names no partition count in its metadata: was it created by one_hm?",
            nats.layout.events_stream
        )
    })?;
    let tag = stream_tag(&info);
    let tickets = Arc::new(Tickets::default());
    let supervised = start_supervisor(&config, &nats, access.hook_env()).await?;

    let remote = Arc::new(RemoteExecutor::new(config.remote.clone()));
    let _ = view.remote.set(remote.clone());
    let runner = Arc::new(HemRunner {
        ledger: BusLedger {
            js: js.clone(),
            markers: markers.clone(),
            tickets: tickets.clone(),
            prefix: nats.layout.prefix.clone(),
            takeover: nats.takeover,
            supervised: supervised.clone(),
        },
        local: LocalHooks(supervised.clone()),
        remote: remote.clone(),
        output_cap: config.output_cap,
        metrics: shared.metrics.clone(),
    });
    let (submitter, mut scheduler_task) = scheduler::start_counted(
        runner,
        Limits {
            concurrency: config.concurrency,
            hook_concurrency: config.hook_concurrency,
            max_pending: config.max_pending,
        },
        shared.metrics.clone(),
    );

    let pool = tokio::select! {
        pool = load_pool(source.clone()) => Some(pool),
        _ = &mut shutdown => None,
    };
    let Some(pool) = pool else {
        return Ok(());
    };
    tracing::info!(hooks = pool.len(), "Hooks successfully loaded");
    shared
        .hooks
        .store(pool.len() as u64, std::sync::atomic::Ordering::SeqCst);
    shared
        .ready
        .store(true, std::sync::atomic::Ordering::SeqCst);

    // The periodic resync: one fetch, handed to every partition.
    let (snapshots, _) = broadcast::channel::<Snapshot>(4);
    let (resync_now, resync_requests) = std_mpsc::channel::<()>();
    let (stop_tx, stop_rx) = watch::channel(false);
    let resync = {
        let source = source.clone();
        let snapshots = snapshots.clone();
        let stop = stop_rx.clone();
        let interval = config.resync_interval;
        std::thread::Builder::new()
            .name("hem-resync".into())
            .spawn(move || {
                crate::resync::resync_loop(
                    source,
                    interval,
                    resync_requests,
                    || *stop.borrow(),
                    |s| snapshots.send(s).is_ok() || !*stop.borrow(),
                )
            })
            .context("cannot start the resync thread")?
    };

    let (view_tx, mut view) = watch::channel(View::new());
    let heartbeat = tokio::spawn(members::heartbeat(
        markers.clone(),
        nats.member.clone(),
        nats.takeover,
        stop_rx.clone(),
    ));
    let watcher = tokio::spawn(members::watch_members(
        markers.clone(),
        view_tx,
        stop_rx.clone(),
    ));
    // Held events stay held (and their markers alive) until the scheduler is done, so it
    // stops on its own switch, after the scheduler.
    let (keep_stop, mut keep_stopped) = watch::channel(false);
    let keep_alive = {
        let tickets = tickets.clone();
        let markers = markers.clone();
        let (period, ack_wait) = (nats.takeover / 4, nats.takeover);
        let renew_after = nats.marker_ttl / 2;
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(period) => {
                        tickets.keep_alive(&markers, ack_wait, renew_after).await
                    }
                    _ = keep_stopped.changed() => return,
                }
            }
        })
    };

    let shared = Shared {
        stream,
        layout: nats.layout.clone(),
        partitions,
        tag,
        uid_key,
        takeover: nats.takeover,
        in_flight: nats.in_flight,
        replicas: nats.replicas,
        replay_from: config.replay_from,
        tickets: tickets.clone(),
        submitter: submitter.clone(),
        resync_now: resync_now.clone(),
    };
    let paths = config.hook_paths();
    let mut running = Running::default();
    let mut announced = false;
    // The hook map a new partition worker starts from: the pool as it is when the partition
    // is taken. One loaded earlier would lack the hooks changed since, whose events the previous
    // holder of the partition has already consumed.
    let mut pool = Some(pool);
    let mut stopping = false;
    // Partitions assigned here whose consumer could not be set up (the bus was failing over)
    // are tried again every second.
    let mut unheld = false;
    while !stopping {
        tokio::select! {
            _ = &mut shutdown => break,
            changed = view.changed() => {
                if changed.is_err() {
                    anyhow::bail!("the member watch stopped");
                }
            }
            _ = tokio::time::sleep(Duration::from_secs(1)), if unheld => {}
        }
        let members = view.borrow_and_update().clone();
        let mine = assigned(&nats.member, &members, partitions);
        for n in running.held() {
            if !mine.contains(&n) {
                tracing::info!(partition = n, "giving partition {n} up to another HEM");
                running.remove(n).await;
            }
        }
        let mut fresh = pool.take();
        for &n in &mine {
            if running.holds(n) {
                continue;
            }
            let hooks = match &fresh {
                Some(hooks) => hooks,
                None => {
                    let loaded = tokio::select! {
                        pool = load_pool(source.clone()) => pool,
                        _ = &mut shutdown => {
                            stopping = true;
                            break;
                        }
                    };
                    fresh.insert(loaded)
                }
            };
            let consumer = match partition::ensure_consumer(&shared, n).await {
                Ok(c) => c,
                Err(e) => {
                    // The next change of members tries again; until then another HEM may
                    // pull it, or it waits.
                    tracing::error!(partition = n, error = %e, "cannot set up the partition's consumer");
                    continue;
                }
            };
            let mut matcher = Matcher::new(source.clone(), paths.clone());
            matcher.replace(HookMap::from_specs(hooks.clone()));
            let worker =
                PartitionWorker::new(n, shared.clone(), consumer, matcher, snapshots.subscribe());
            let (stop, stop_rx) = watch::channel(false);
            running.add(n, stop, tokio::spawn(worker.run(stop_rx)));
        }
        if stopping {
            break;
        }
        unheld = mine.iter().any(|&n| !running.holds(n));
        if !announced && members.contains(&nats.member) {
            announced = true;
            tracing::info!("HEM ready");
            one_notify::ready();
        }
        tracing::info!(
            members = members.len(),
            partitions = ?running.held(),
            of = partitions,
            "partitions held"
        );
    }

    tracing::info!("HEM stopping");
    // Leave first, so that the others start pulling these partitions; they wait for the events
    // this HEM still holds before they run anything new.
    let _ = stop_tx.send(true);
    running.remove_all().await;
    drop(shared);
    drop(submitter);
    if tokio::time::timeout(config.shutdown_grace, &mut scheduler_task)
        .await
        .is_err()
    {
        tracing::warn!(
            grace_s = config.shutdown_grace.as_secs_f64(),
            held = tickets.total(),
            "executions still running after the grace period are killed; the HEM that takes their events over reports them"
        );
        scheduler_task.abort();
        let _ = scheduler_task.await;
    }
    // The supervisor kills what still runs and exits once it is gone; the HEMs taking these
    // events over report those executions.
    supervised.bye().await;
    let _ = keep_stop.send(true);
    let _ = keep_alive.await;
    let _ = heartbeat.await;
    let _ = watcher.await;
    remote.shutdown().await;
    drop(resync_now);
    tokio::task::spawn_blocking(move || {
        let _ = resync.join();
    })
    .await
    .context("shutdown task failed")?;
    tracing::info!("HEM stopped");
    Ok(())
}

/// Connects to this HEM's hook supervisor (starting it when none answers), telling it the bus,
/// so that it finishes this HEM's executions if the HEM dies. Its socket is beside `state_db`,
/// which this mode does not otherwise use.
async fn start_supervisor(
    config: &Config,
    nats: &NatsSettings,
    env: Vec<(String, std::ffi::OsString)>,
) -> anyhow::Result<Supervised> {
    if let Some(dir) = config
        .state_db
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
    {
        one_wal::private_files::create_dir_all(dir)
            .context("cannot create the directory of the hook supervisor's socket")?;
    }
    let bus = BusContext {
        settings: nats.bus.clone(),
        bucket: nats.layout.bucket.clone(),
        prefix: nats.layout.prefix.clone(),
        replicas: nats.replicas,
        takeover: nats.takeover,
        marker_ttl: nats.marker_ttl,
        member: nats.member.clone(),
    };
    // A restarted HEM is a new member: what the supervisor still runs for the previous one
    // it reports itself, so nothing of its welcome is taken back.
    let (supervised, _) =
        Supervised::start_for_hem(SupervisorSettings::of_hem(config, env, Some(bus))).await?;
    Ok(supervised)
}

/// Connects, finds the events stream, opens the HEMs' bucket and reads their uid key, retrying until all of it
/// works: the bus may start after the HEM (or be electing leaders), and the stream is the
/// driver's to create.
async fn connect(
    nats: &NatsSettings,
) -> (
    jetstream::Context,
    jetstream::stream::Stream,
    jetstream::stream::Info,
    Markers,
    UidKey,
) {
    let mut delay = Duration::from_millis(200);
    loop {
        let attempt = async {
            let client = one_bus::connect(&nats.bus).await?;
            let mut js = jetstream::new(client);
            js.set_timeout(REQUEST_TIMEOUT);
            let mut stream = js
                .get_stream(&nats.layout.events_stream)
                .await
                .map_err(|e| {
                    one_bus::BusError::jetstream(
                        format!(
                            "stream {} (one_hm creates it when it starts with --nats)",
                            nats.layout.events_stream
                        ),
                        e,
                    )
                })?;
            let info = stream
                .info()
                .await
                .map_err(|e| one_bus::BusError::jetstream("stream info", e))?
                .clone();
            let markers = Markers::open(
                &js,
                &nats.layout.bucket,
                nats.replicas,
                nats.marker_ttl,
                &nats.member,
            )
            .await?;
            let uid_key = markers
                .uid_key()
                .await
                .map_err(|e| one_bus::BusError::jetstream("the HEMs' uid key", e))?;
            Ok::<_, one_bus::BusError>((js, stream, info, markers, uid_key))
        };
        match attempt.await {
            Ok(ready) => return ready,
            Err(e) => {
                tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "NATS not ready");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// The whole hook pool, retried with backoff until the front-end answers.
async fn load_pool(source: XmlRpcHookSource) -> Vec<crate::hook_map::HookSpec> {
    tracing::info!("Loading Hooks...");
    let mut delay = Duration::from_millis(500);
    loop {
        let s = source.clone();
        match tokio::task::spawn_blocking(move || s.pool()).await {
            Ok(Ok(pool)) => return pool,
            Ok(Err(e)) => tracing::error!(
                retry_in_ms = delay.as_millis() as u64,
                "Cannot get hook information: {e}"
            ),
            Err(e) => tracing::error!(error = %e, "hook pool task failed"),
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(30));
    }
}
