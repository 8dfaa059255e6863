//! `one_hm`, the Hook Manager driver: oned's MAD lines on stdin/stdout, events on a ZeroMQ PUB
//! socket, hook results from REQ peers on the logger port, every event in a SQLite journal that
//! subscribers can replay.
//!
//! It is a drop-in replacement for OpenNebula's `one_hm.rb`: an unmodified reference subscriber
//! (the Ruby HEM, a `SUB` socket with the reference filters) sees the same keys and contents.
//!
//! # Running
//!
//! ```text
//! one_hm [-p PORT] [-l PORT] [-h HWM] [-b ADDR] [-t N] [--replay-port PORT]
//!        [--journal PATH] [--journal-retention SPEC] [--journal-sync off|normal|full]
//!        [--dedupe-window N] [--require-execution-uid] [--no-sequence] [--endpoints-file PATH]
//!        [--metrics-listen IP:PORT]
//!        [--nats URL[,URL...] [--nats-user U --nats-password P | --nats-creds FILE]
//!         [--nats-tls-ca FILE] [--nats-tls-cert FILE --nats-tls-key FILE] [--nats-replicas N]
//!         [--nats-partitions N] [--nats-prefix P] [--nats-events-stream NAME]
//!         [--nats-results-stream NAME] [--nats-dedupe-window AGE] [--nats-result-ack-wait AGE]]
//!        [--curve-secret-key FILE --curve-clients DIR]
//! one_hm --curve-keygen DIR NAME
//! ```
//!
//! | flag | default | meaning |
//! |---|---|---|
//! | `-p`, `--publisher-port` | 2101 | PUB port for events |
//! | `-l`, `--logger-port` | 2102 | port for results (REQ peers) |
//! | `-h`, `--hwm` | libzmq's (1000) | ZMQ_SNDHWM of the PUB socket: messages queued per subscriber before they are dropped |
//! | `-b`, `--bind` | 127.0.0.1 | address of all three sockets |
//! | `-t`, `--threads` | — | accepted and ignored (the pipeline has fixed threads) |
//! | `--replay-port` | 2103 | REP port of the replay endpoint |
//! | `--journal` | `one_hm.journal.db` (in the working directory, `/var/lib/one` under oned) | SQLite journal file |
//! | `--journal-retention` | `1000000,7d` | event count and/or age (`s`, `m`, `h`, `d`) kept; the first limit reached trims |
//! | `--journal-sync` | `normal` | SQLite `synchronous` of the journal: `off`, `normal` or `full` (see "Journal and durability") |
//! | `--dedupe-window` | 100000 | results remembered for EXECUTION_UID duplicate detection |
//! | `--require-execution-uid` | off | refuse results without an EXECUTION_UID of onehem-server's form (the reference HEM sends none) |
//! | `--no-sequence` | off | publish bare reference keys without the `#<seq>` token |
//! | `--endpoints-file` | — | after binding, write `publisher=…`, `logger=…` and `replay=…` lines, and `metrics=IP:PORT` with `--metrics-listen` (useful with port 0) |
//! | `--metrics-listen` | off | `IP:PORT` serving `GET /metrics` (Prometheus text format 0.0.4) and `GET /health` (200, or 503 while the journal refuses commits); see [`metrics`] |
//! | `--nats` | — | NATS servers: the NATS mode (below) instead of the SQLite journal |
//! | `--nats-user`, `--nats-password` | — | NATS user and password (the password also from `ONE_HM_NATS_PASSWORD`) |
//! | `--nats-creds` | — | a `.creds` file (user JWT and nkey seed) instead |
//! | `--nats-tls-ca`, `--nats-tls-cert`, `--nats-tls-key` | — | the servers' CA (TLS required), a client certificate |
//! | `--nats-replicas` | 1 | replicas of the streams the driver creates |
//! | `--nats-partitions` | 8 | partitions of the events stream (fixed for the stream's life) |
//! | `--nats-prefix`, `--nats-events-stream`, `--nats-results-stream` | `one`, `ONE_EVENTS`, `ONE_RESULTS` | names |
//! | `--nats-dedupe-window` | `10m` | how long the streams remember message ids |
//! | `--nats-result-ack-wait` | `10s` | how long a forwarded result waits for oned's `STORED` before it is delivered again |
//! | `--curve-secret-key`, `--curve-clients` | off | CURVE on all three sockets: the driver's secret certificate and the directory of allowed clients' public certificates (below) |
//! | `--curve-keygen DIR NAME` | | write a key pair `DIR/NAME.key` and `DIR/NAME.key_secret` (0600) and exit |
//! | `--log-level` | `info` | an `EnvFilter` directive; `ONE_LOG` overrides it |
//! | `--log-format` | `text` | `text` or `json` lines on stderr |
//! | `--help`, `--version` | | |
//!
//! As in the reference, the first three port flags may be given without a value, which means port
//! 0 (an ephemeral port). oned passes the whole ARGUMENTS string as one argument; a single
//! argument containing spaces is split into words, so the binary can be `HM_MAD` directly.
//! Logs go to stderr (`--log-level`, overridden by `ONE_LOG`); a closed stderr is harmless.
//!
//! Exit status: 0 after FINALIZE, end of stdin, SIGTERM or SIGINT (a second signal exits at once
//! with 1); 255 for bad flags or when the journal cannot be opened or a socket cannot be bound,
//! before INIT is answered, as the reference does.
//!
//! # CURVE (`--curve-secret-key`, `--curve-clients`)
//!
//! Off by default, because the reference Ruby HEM cannot do CURVE: then anyone who reaches the
//! three ports reads every event (CONTEXT passwords included), sends results and replays the
//! journal, and a bind to anything but a loopback address is warned about at start. With both
//! flags, the three sockets are CURVE servers with the driver's certificate, and a ZAP handler
//! admits only clients whose public key is one of the `*.key` files of the directory (read at
//! start). A denied client is logged (socket, peer address, key; at most 10 lines a minute) and
//! gets nothing: no event, no `ACK` (its result is neither stored nor forwarded), no replay.
//! Keys are ZeroMQ certificate files (CZMQ's and pyzmq's format): make them with
//! `one_hm --curve-keygen DIR NAME`, or `python3 -c "import zmq.auth;
//! zmq.auth.create_certificates('DIR', 'NAME')"` followed by `chmod 600 DIR/NAME.key_secret`.
//! A secret file that other users may read, a missing or malformed key line (named by file and
//! line), an empty client directory, or a libzmq without CURVE stop the driver at start with
//! status 255. Clients take the driver's `NAME.key` and their own `.key_secret`: the HEM's
//! `curve_server_key` and `curve_client_key`, `one-events --curve-server-key/--curve-client-key`.
//!
//! # MAD protocol (reference §6)
//!
//! `INIT` is answered `INIT SUCCESS - -`, the first bytes ever written to stdout; anything else
//! waits 200 ms after it, because oned reads the reply with one 31-byte read. Every line is
//! flushed on its own. `EXECUTE  -1 <b64>` and `RETRY  -1 <b64>` are journaled and published;
//! `FINALIZE` and end of stdin stop the driver cleanly. A message whose key elements are missing
//! (reference §5.3) is reported as `LOG E 0 Event not published: …` and not journaled; garbage
//! that decodes to no known HOOK_TYPE is published as `EVENT ` like the reference does. Unknown
//! lines are logged on stderr and ignored.
//!
//! Delivery acknowledgement (an additive extension for a front-end that wants no event lost when
//! the driver dies, see [`one_proto::mad`]): when the id word of an `EXECUTE`/`RETRY` line holds
//! a front-end event id (1 or more) instead of oned's -1, the driver answers
//! `JOURNALED SUCCESS <id> -` once every line up to that one is journaled (or refused with a
//! `LOG E` line), at most once per commit. After a restart the front-end sends again what was
//! not acknowledged; a line whose id and content match a recently journaled event (the last
//! 16,384 with ids) is dropped and acknowledged, so every event is journaled once. Lines with id
//! -1 (the reference oned) are never acknowledged.
//!
//! Result acknowledgement (the other direction, [`one_proto::mad`]): a front-end that sends
//! `STORED  0 -` (before `INIT`) gets, after each run of result lines, a
//! `FORWARDED SUCCESS <result_id> -` marker, and acknowledges stored results with
//! `STORED  <result_id> -`. For such a front-end a result counts as delivered only once
//! acknowledged: results it had not acknowledged when it (or the driver) went away are forwarded
//! again after the next start. Without the announcement a result is delivered once written, as
//! in the reference, and no marker is written.
//!
//! # Events on the PUB socket (reference §5.2, §5.3)
//!
//! Each key is one two-frame message: the key, then the base64 message exactly as oned sent it
//! (a retry's content keeps the reference's trailing space). Keys are byte-exact reference keys
//! followed by the sequence token: one space if the key does not already end with one, then
//! `#<seq>` (`EVENT VM 42/PENDING/LCM_INIT #17`, `EVENT API one.vm.allocate 1 #17`, `RETRY #18`).
//! Reference subscribers use prefix filters and read the first three or four words, so they
//! ignore the token; all keys of one event share the number. Sequence numbers start at 1 and
//! never repeat or go back, across restarts and trims. Events are published in oned's order.
//!
//! Publishing never blocks reading stdin: a PUB socket drops messages for a subscriber above its
//! high-water mark. A subscriber that sees the sequence jump (or suspects it missed the newest
//! events) asks the replay endpoint for what it missed. A subscriber with prefix filters sees only
//! some sequence numbers; it replays the range it did not see and matches the events itself.
//!
//! # Replay (REP, `--replay-port`)
//!
//! Request one frame `REPLAY <after> <max>`; reply `OK <oldest> <head> <n>` then, for each of the
//! `n` events after `<after>` in order, one pair of frames (key with sequence token, content) per
//! key it was published under. `max` is capped at 1000 events and a reply at about 16 MiB (at
//! least one event); repeat from the last sequence received until `head`. `max = 0` returns the
//! header only (a cheap way to learn `head`). `oldest > after + 1` means events were trimmed by
//! retention; `head < after` means the journal is not the one the subscriber read before (a new
//! file, or a tail lost to power failure with `--journal-sync normal`). A bad request (more than
//! one frame, over 4 KiB, or not `REPLAY <after> <max>`) is answered with one frame
//! `ERR <reason>`, and the socket goes on serving. Only a frame over 1 MiB goes unanswered:
//! libzmq drops its connection before the driver sees it. The same pairs are always sent with
//! the token, even with `--no-sequence`.
//!
//! # Results (`--logger-port`; reference §5.5)
//!
//! The socket is a ROUTER, which REQ peers cannot tell from the reference's REP; it lets results
//! from several senders wait for the same group commit. A request is one frame
//! `<rc> <hook_id> <body>`. Accepted: after trimming surrounding whitespace, exactly three words
//! separated by whitespace: rc (an optional `-` and decimal
//! digits, within 64 bits), hook id (decimal digits) and a strict-base64 body (whole groups of
//! four characters, padding only at the end). Anything else is malformed: it is answered
//! `ERR <reason>`, logged with the reason and not forwarded (the reference's `to_i` would turn it
//! into a record for hook 0). A well-formed result is written to the journal's `results` table,
//! then answered `ACK`, then forwarded to oned as `EXECUTE SUCCESS|FAILURE <hook_id> <rc> <body>`
//! (SUCCESS when rc is 0) in arrival order; once written to stdout (or, for a front-end that
//! acknowledges results, once acknowledged) it is marked forwarded. Results stored but not
//! forwarded when the driver stopped are forwarded after the next INIT. If the body
//! holds `<EXECUTION_UID>…</EXECUTION_UID>` and a result with that uid is already stored (among the
//! last `--dedupe-window` results), the duplicate is answered `ACK` and not forwarded again. If
//! the journal cannot store a result it is answered `ERR …` and the sender may try again.
//! A result whose uid names an event the journal never published, or another hook than its
//! frame's, is answered `ERR …` and never stored; with `--require-execution-uid` so is one
//! without a uid of our HEM's form ([`result_checks`]).
//!
//! # Journal and durability
//!
//! The journal is a SQLite file in WAL mode (4 KiB pages; checkpoints run on their own thread,
//! so with `normal` and `off` the writer never waits for an fsync, see `one_wal`) with
//! three tables: `events` (sequence number, time, keys, content), `results` (accepted results
//! and the dedupe window) and `meta` (head sequence, forwarding watermark); see
//! [`sqlite_journal`]. `<journal>.lock` beside it keeps a second driver off the same journal
//! (it exits with 255). One writer thread commits everything that queued up while its previous
//! commit ran, up to 16384 events or 8 MiB, in one transaction (group commit); only then are those events
//! published and those results acknowledged. Under load the batches grow, so the cost of a
//! commit is shared by thousands of events; when idle each event is committed alone at once.
//! Results come one by one, as hooks finish: a result that arrives within 5 ms of the last
//! commit of results waits for the rest of those 5 ms, so that results finishing together share
//! a commit, and an event ends the wait at once (events never wait; waiting results ride along
//! with them). During the wait the writer sleeps: results arriving meanwhile wake nobody, and
//! the reader of oned's events (and the shutdown) wake it; every result a commit decides is
//! answered with one wake-up of the results thread. A sender that sends one result at a time and waits for each `ACK` gains nothing
//! from the wait, so a wait that gathered no second result is not tried for the next 8 commits
//! of results. Result bodies, like event contents, are stored decoded when they are canonical
//! base64. The forwarding watermark is bookkeeping only, so it waits up to 200 ms to be committed along
//! with the next events or results; lost in a crash, it makes the next driver forward those
//! last results again, and oned-lite drops them by `EXECUTION_UID` (the reference oned, which
//! keeps no uid, would record them twice: the price of one commit less per result).
//! While events flow, the WAL file (`<journal>-wal`) keeps the largest size it reached and is
//! written again from its start after each complete checkpoint; a restarting checkpoint keeps
//! it near 256 MiB (it grows past that only by what is committed while a restart waits). The
//! writer never truncates it: on this kind of disk freeing tens of megabytes took 250 ms inside
//! the commit that started the WAL over, and no event was published meanwhile. Once nothing
//! was committed for a second, the checkpoint thread truncates a WAL larger than 4 MiB to
//! nothing (`one_wal::IDLE_WAL_BYTES`), so an idle driver keeps no more WAL than that.
//!
//! What a failure can lose, by `--journal-sync`:
//!
//! - kill -9 or a crash of the driver, any mode: nothing that was published or acknowledged
//!   (committed transactions are in the WAL, which the operating system keeps). Lines read from
//!   stdin but not yet committed are lost: at most one batch, in practice the last milliseconds
//!   of input, none of it published or acknowledged (the MAD protocol has no acknowledgement to
//!   oned, so no driver can do better).
//! - power loss or kernel crash with `normal` (default): commits are not fsynced, so the last
//!   commits (at most the WAL written since the last checkpoint) can be lost although
//!   subscribers may have seen their events and senders got `ACK` for their results; the
//!   journal stays consistent and numbering continues from the surviving head (numbers a
//!   subscriber saw are given to new events), which a subscriber notices as `head` lower than
//!   its last sequence number. This is the price of
//!   not waiting for the disk: an fsync takes milliseconds, and results, which are acknowledged
//!   one request at a time per sender, would be limited to a few hundred per second per sender.
//! - power loss with `full`: nothing published or acknowledged; every commit fsyncs the WAL (a
//!   few milliseconds on common disks, shared by the whole batch: it adds latency to every event
//!   and result, and bounds results to about one group commit per fsync).
//! - power loss with `off`: the journal can be corrupted.
//!
//! Retention (`--journal-retention`) is applied once a second in bounded passes, oldest first;
//! sequence numbers are never reused after trimming. If the journal refuses a commit (disk
//! full), events are held and retried with backoff, oned gets one `LOG E 0 Event journal
//! unavailable…` line, results are answered `ERR`, and once the queue (256 read chunks) is full
//! stdin is read no further: nothing is published that is not journaled.
//!
//! # Throughput
//!
//! The work per event is split over three threads that run in parallel: the stdin thread (line
//! split with memchr, base64 decode, the key scan, which stops as soon as the rest of the
//! document cannot change the keys, normally right after `RESOURCE_ID` or `CALL_INFO/RESULT`),
//! the journal writer (one prepared insert per event inside the group commit, the content
//! stored decoded) and the publisher (two ZeroMQ frames per key). With `normal`, no commit waits
//! for the disk, so the rate is bound by CPU; with `full`, by one fsync per batch. The target is
//! 100,000 events per second from MAD line to PUB frame on two cores with the journal on.
//!
//! The cost grows with the size of the message (base64 decoding, and the bytes the journal
//! writes twice, to the WAL and at checkpoint), so events with multi-kilobyte bodies stay below
//! the target on a two-core machine while events of the API size meet it (BENCHMARKS.md,
//! section 2 and the design measurements).
//!
//! The journal sits behind the [`journal::EventLog`] and [`journal::EventReader`] traits, so that
//! another durable log can be added beside [`sqlite_journal::SqliteJournal`].
//!
//! # NATS mode (`--nats`)
//!
//! Events and results are journaled in NATS JetStream ([`nats_journal`]; ARCHITECTURE.md
//! "Distributed mode"), where several HEMs share them. `JOURNALED` is answered once the events
//! stream acknowledged every event up to that line; an event sent again (same front-end id and
//! content) is stored once. The ZeroMQ PUB frames carry the stream's sequence numbers, the replay
//! endpoint reads the stream, and results sent to the ZeroMQ result socket go to the results
//! stream like the HEMs' own. Results reach oned from the results stream and are acknowledged
//! there once oned stored them. The driver connects (and creates or checks the streams) within
//! 30 seconds at start or exits with 255; later outages hold the events (no `JOURNALED`) until
//! the bus is back. `--journal`, `--journal-sync` and `--dedupe-window` do not apply.

pub mod config;
pub mod journal;
pub mod journal_writer;
pub mod logging;
pub mod memory;
pub mod messages;
pub mod metrics;
pub mod nats_journal;
pub mod oned_input;
pub mod oned_output;
pub mod publisher;
pub mod redelivery;
pub mod replay_server;
pub mod result_checks;
pub mod result_server;
pub mod shutdown;
pub mod sqlite_journal;

use std::fs::File;
use std::io::Write;
use std::os::fd::AsFd;
use std::path::Path;
use std::sync::mpsc;
use std::thread::JoinHandle;

use anyhow::{Context, anyhow};
use tracing::{error, info, warn};

use crate::config::Config;
use crate::journal::EventLog;
use crate::messages::WriterMsg;
use crate::nats_journal::NatsJournal;
use crate::shutdown::{Shutdown, StopReason};
use crate::sqlite_journal::{JournalOptions, SqliteJournal};

/// Messages queued from stdin to the journal writer (each a read chunk of events); when full,
/// stdin is read no further until the journal catches up.
const WRITER_QUEUE: usize = 256;
/// How long closing sockets may take to deliver what is queued (last events, last ACKs).
const LINGER_MS: i32 = 1000;
/// Largest result request accepted; a larger one makes libzmq drop the connection.
const MAX_RESULT_BYTES: i64 = 64 * 1024 * 1024;
/// Largest replay frame libzmq takes in; a larger one makes it drop the connection, so the REQ
/// peer never gets an answer. Far above any request (`replay_server::MAX_REQUEST_BYTES`), so
/// that a request too large for the protocol is still read and answered `ERR`.
const MAX_REPLAY_FRAME_BYTES: i64 = 1024 * 1024;

/// The endpoints the sockets are bound to (ports resolved when 0 was asked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    /// PUB socket.
    pub publisher: String,
    /// Results REP socket.
    pub logger: String,
    /// Replay REP socket.
    pub replay: String,
    /// The metrics endpoint (`IP:PORT`), when `--metrics-listen` is given.
    pub metrics: Option<std::net::SocketAddr>,
}

/// Runs the driver on the process's stdin and stdout until FINALIZE, end of stdin or `shutdown`.
/// Returns an error when it cannot start (journal, sockets) or a thread failed fatally.
pub fn run(config: Config, shutdown: Shutdown) -> anyhow::Result<()> {
    let (journal, results_feed): (Box<dyn EventLog>, _) = match &config.nats {
        None => (
            Box::new(
                SqliteJournal::open(
                    &config.journal,
                    JournalOptions {
                        retention: config.retention,
                        sync: config.sync,
                        dedupe_window: config.dedupe_window,
                    },
                )
                .with_context(|| format!("opening the journal {}", config.journal.display()))?,
            ),
            None,
        ),
        Some(nats) => {
            let journal = NatsJournal::open(nats, config.retention)
                .context("setting up the NATS JetStream journal")?;
            let feed = journal.results_feed();
            (Box::new(journal), Some(feed))
        }
    };
    let reader = journal.reader().context("opening a replay reader")?;

    let ctx = zmq::Context::new();
    // Bound before the sockets it guards and stopped after they are closed (one_curve::zap).
    let zap = match &config.curve {
        Some(keys) => Some(bind_zap(&ctx, keys)?),
        None => None,
    };
    let publisher = bind(
        &ctx,
        &config,
        zmq::PUB,
        config.publisher_port,
        "publisher",
        |s| {
            if let Some(hwm) = config.hwm {
                s.set_sndhwm(hwm)?;
            }
            Ok(())
        },
    )?;
    // A ROUTER socket serves REQ peers exactly as REP does, with many requests in flight.
    let results = bind(
        &ctx,
        &config,
        zmq::ROUTER,
        config.logger_port,
        "replier",
        |s| s.set_maxmsgsize(MAX_RESULT_BYTES),
    )?;
    let replay = bind(&ctx, &config, zmq::REP, config.replay_port, "replay", |s| {
        s.set_maxmsgsize(MAX_REPLAY_FRAME_BYTES)
    })?;
    let zap = match (zap, &config.curve) {
        (Some(handler), Some(keys)) => Some(start_zap(
            &ctx,
            handler,
            keys,
            [
                (&publisher, "publisher"),
                (&results, "replier"),
                (&replay, "replay"),
            ],
        )?),
        _ => None,
    };
    let metrics_endpoint = start_metrics(&config)?;
    let endpoints = Endpoints {
        publisher: last_endpoint(&publisher)?,
        logger: last_endpoint(&results)?,
        replay: last_endpoint(&replay)?,
        metrics: metrics_endpoint.as_ref().map(|m| m.local_addr()),
    };
    if let Some(path) = &config.endpoints_file {
        write_endpoints(path, &endpoints)
            .with_context(|| format!("writing the endpoints file {}", path.display()))?;
    }
    info!(
        publisher = %endpoints.publisher,
        logger = %endpoints.logger,
        replay = %endpoints.replay,
        journal = %journal_name(&config),
        head = journal.head(),
        "one_hm started"
    );

    let stdin = std::io::stdin()
        .as_fd()
        .try_clone_to_owned()
        .map(File::from)
        .context("duplicating stdin")?;

    let (writer_tx, writer_rx) = mpsc::sync_channel::<WriterMsg>(WRITER_QUEUE);
    let (oned_tx, oned_rx) = mpsc::channel();
    let (publish_tx, publish_rx) = mpsc::channel();

    let mut threads = Threads::default();
    let key_style = config.key_style;
    threads.spawn("publisher", &shutdown, move || {
        publisher::run(publisher, publish_rx, key_style)
    });
    let (tx, sd) = (writer_tx.clone(), shutdown.clone());
    threads.spawn("oned-output", &shutdown, move || {
        oned_output::run(std::io::stdout(), oned_rx, tx, sd)
    });
    let wake = messages::WriterWake::default();
    let links = journal_writer::WriterLinks {
        wake: wake.clone(),
        publisher: publish_tx,
        oned: oned_tx.clone(),
        checks: result_checks::ResultChecks {
            require_uid: config.require_execution_uid,
        },
    };
    // Results from the NATS results stream go straight to the output thread.
    let feed = results_feed.map(|feed| feed.start(oned_tx.clone()));
    let sd = shutdown.clone();
    threads.spawn("journal-writer", &shutdown, move || {
        journal_writer::run(journal, writer_rx, links, sd)
    });
    let mut front = Threads::default();
    let (bell, bell_read) = messages::doorbell().context("creating the results doorbell")?;
    let (tx, sd) = (writer_tx.clone(), shutdown.clone());
    front.spawn("results", &shutdown, move || {
        result_server::run(results, bell_read, bell, tx, sd)
    });
    let sd = shutdown.clone();
    front.spawn("replay", &shutdown, move || {
        replay_server::run(replay, reader, sd)
    });
    let links = oned_input::InputLinks {
        writer: writer_tx.clone(),
        oned: oned_tx,
        wake: wake.clone(),
    };
    let sd = shutdown.clone();
    front.spawn("oned-input", &shutdown, move || {
        oned_input::run(stdin, links, sd)
    });

    let reason = shutdown.wait();
    info!(reason = ?reason, "shutting down");
    // Stop taking input first, then let the writer commit, publish and forward what is queued.
    front.join();
    // The feed holds a sender of the output thread, which runs until every sender is gone.
    drop(feed);
    let _ = writer_tx.send(WriterMsg::Finish);
    wake.ring();
    drop(writer_tx);
    threads.join();
    if let Some(zap) = zap {
        zap.stop();
    }
    drop(ctx);
    drop(metrics_endpoint);
    info!("one_hm stopped");
    match reason {
        StopReason::Fatal(message) => Err(anyhow!(message)),
        _ => Ok(()),
    }
}

/// The `/metrics` and `/health` endpoint when `--metrics-listen` names one; bound with the
/// other sockets, so a bad or busy address stops the driver before INIT is answered.
fn start_metrics(config: &Config) -> anyhow::Result<Option<one_metrics::MetricsServer>> {
    let Some(addr) = config.metrics_listen else {
        return Ok(None);
    };
    let listener = one_metrics::bind(addr).context("--metrics-listen")?;
    let journal = config.nats.is_none().then(|| config.journal.clone());
    let source = std::sync::Arc::new(metrics::DriverSource::new(journal));
    let server = one_metrics::MetricsServer::start(listener, source)
        .with_context(|| format!("starting the metrics endpoint on {addr}"))?;
    Ok(Some(server))
}

/// The journal in logs: the SQLite file, or the events stream and its servers.
fn journal_name(config: &Config) -> String {
    match &config.nats {
        None => config.journal.display().to_string(),
        Some(nats) => format!(
            "{} at {}",
            nats.layout.events_stream,
            nats.bus.server_list()
        ),
    }
}

fn bind_zap(
    ctx: &zmq::Context,
    keys: &one_curve::ServerKeys,
) -> anyhow::Result<one_curve::ZapHandler> {
    one_curve::ZapHandler::bind(ctx, keys.clients.clone())
        .context("binding the CURVE authentication handler (ZAP)")
}

/// Serves ZAP, and reports the handshakes of `sockets` that fail before ZAP is asked (a
/// client without CURVE).
fn start_zap(
    ctx: &zmq::Context,
    mut handler: one_curve::ZapHandler,
    keys: &one_curve::ServerKeys,
    sockets: [(&zmq::Socket, &str); 3],
) -> anyhow::Result<one_curve::ZapThread> {
    for (socket, name) in sockets {
        handler
            .watch(ctx, socket, name)
            .with_context(|| format!("monitoring the {name} socket's CURVE handshakes"))?;
    }
    let thread = handler
        .spawn()
        .context("starting the CURVE authentication thread")?;
    info!(
        public_key = %keys.cert.public.z85(),
        clients = keys.clients.len(),
        "CURVE on: only listed clients may connect"
    );
    Ok(thread)
}

/// What anyone who reaches a socket without CURVE can do, for the warning at start.
fn exposure(name: &str) -> &'static str {
    match name {
        "publisher" => "read every event, VM templates and CONTEXT passwords included",
        "replier" => "forge hook results into the hook log",
        _ => "read every event the journal retains",
    }
}

fn bind(
    ctx: &zmq::Context,
    config: &Config,
    kind: zmq::SocketType,
    port: u16,
    name: &str,
    configure: impl FnOnce(&zmq::Socket) -> zmq::Result<()>,
) -> anyhow::Result<zmq::Socket> {
    let endpoint = config.endpoint(port);
    let socket = ctx
        .socket(kind)
        .with_context(|| format!("creating the {name} socket"))?;
    socket
        .set_linger(LINGER_MS)
        .and_then(|()| socket.set_ipv6(config.is_ipv6()))
        .and_then(|()| configure(&socket))
        .and_then(|()| match &config.curve {
            Some(keys) => keys.apply(&socket, name),
            None => Ok(()),
        })
        .with_context(|| format!("configuring the {name} socket"))?;
    socket
        .bind(&endpoint)
        .with_context(|| format!("Failed to bind {name} socket to {endpoint}"))?;
    if config.curve.is_none() && !config.binds_loopback() {
        warn!(
            socket = name,
            endpoint = %endpoint,
            "{name} socket binds {} without CURVE: any host that reaches it can {}; \
             turn CURVE on (--curve-secret-key, --curve-clients) or bind 127.0.0.1",
            config.bind,
            exposure(name)
        );
    }
    Ok(socket)
}

fn last_endpoint(socket: &zmq::Socket) -> anyhow::Result<String> {
    socket
        .get_last_endpoint()
        .context("reading a bound endpoint")?
        .map_err(|raw| anyhow!("bound endpoint is not text: {raw:?}"))
}

/// Written to a temporary file and renamed, so a reader never sees half of it.
fn write_endpoints(path: &Path, endpoints: &Endpoints) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut file = File::create(&tmp)?;
    write!(
        file,
        "publisher={}\nlogger={}\nreplay={}\n",
        endpoints.publisher, endpoints.logger, endpoints.replay
    )?;
    if let Some(metrics) = endpoints.metrics {
        writeln!(file, "metrics={metrics}")?;
    }
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// Threads joined together; a thread that cannot start stops the driver.
#[derive(Default)]
struct Threads {
    handles: Vec<(&'static str, JoinHandle<()>)>,
}

impl Threads {
    fn spawn(
        &mut self,
        name: &'static str,
        shutdown: &Shutdown,
        body: impl FnOnce() + Send + 'static,
    ) {
        match std::thread::Builder::new().name(name.into()).spawn(body) {
            Ok(handle) => self.handles.push((name, handle)),
            Err(e) => {
                error!(thread = name, error = %e, "cannot start thread");
                shutdown.trigger(StopReason::Fatal(format!(
                    "cannot start thread {name}: {e}"
                )));
            }
        }
    }

    fn join(self) {
        for (name, handle) in self.handles {
            if handle.join().is_err() {
                error!(thread = name, "thread panicked");
            }
        }
    }
}
