//! Runs one accepted execution through its life: its start recorded, executed locally or on its
//! host, its result recorded and handed on for delivery, through a [`Ledger`].

use std::future::Future;
use std::sync::Arc;

use tracing::Instrument;

use one_proto::encoding::b64_encode;
use one_proto::hook_log::ExecutionResult;
use one_proto::mad::ResultFrame;

use crate::execution::{Execution, Target};
use crate::executor::{ExecOutcome, ExecRequest};
use crate::metrics::{HemMetrics, Outcome};
use crate::remote::RemoteExecutor;
use crate::result_sender::ResultQueue;
use crate::scheduler::Runner;
use crate::state_db::{OutboxEntry, StateDb};
use crate::supervisor::client::Supervised;

/// Where an execution's start and result are recorded: the state DB and the driver's result
/// socket of the single-HEM mode ([`StateLedger`]), or JetStream in the distributed mode.
pub trait Ledger: Send + Sync + 'static {
    /// Called before the process exists, so that a crash can never make it run twice.
    fn start(&self, exec: &Execution) -> impl Future<Output = Start> + Send;
    /// Records the result and hands it on for delivery.
    fn finish(&self, exec: &Execution, result: ExecutionResult) -> impl Future<Output = ()> + Send;
}

/// What [`Ledger::start`] decided.
#[derive(Debug)]
pub enum Start {
    /// Run it.
    Run,
    /// Another HEM ran it and recorded its result: nothing to do.
    Recorded,
    /// Do not run it; this is its record (it was started by a HEM that stopped).
    Report(ExecutionResult),
}

/// Where local hooks run: under the hook supervisor, which outlives the HEM (both modes; in the
/// distributed one it also reports what a dead HEM started).
#[derive(Debug)]
pub struct LocalHooks(pub Supervised);

impl LocalHooks {
    async fn run(&self, exec: &Execution, req: ExecRequest) -> ExecOutcome {
        let record = self.0.reports_for_the_dead().then(|| exec.result_context());
        self.0.run(&exec.uid, req, record).await
    }
}

/// The scheduler's [`Runner`] for real executions.
pub struct HemRunner<L: Ledger> {
    pub ledger: L,
    pub local: LocalHooks,
    pub remote: Arc<RemoteExecutor>,
    pub output_cap: usize,
    pub metrics: Arc<HemMetrics>,
}

impl<L: Ledger> Runner for HemRunner<L> {
    async fn run(&self, exec: Execution) {
        let span = tracing::info_span!("hook", hook_id = exec.hook_id, seq = exec.seq,
            resource = %exec.resource, uid = %exec.uid);
        self.run_in_span(exec).instrument(span).await
    }
}

impl<L: Ledger> HemRunner<L> {
    async fn run_in_span(&self, exec: Execution) {
        match self.ledger.start(&exec).await {
            Start::Run => {}
            Start::Recorded => return,
            Start::Report(result) => {
                self.metrics
                    .executed(exec.hook_id, Outcome::Interrupted, None);
                return self.ledger.finish(&exec, result).await;
            }
        }
        if !exec.plan.retry {
            tracing::info!("Executing hook {} for {}", exec.hook_id, exec.event_key);
        }
        let req = exec.plan.request(self.output_cap);
        let (counted, outcome) = match &exec.plan.target {
            Target::Local => {
                let o = self.local.run(&exec, req).await;
                (Outcome::of(&o), o)
            }
            Target::Remote { host } => {
                let o = self.remote.run(host, req).await;
                (Outcome::of(&o), o)
            }
            Target::Refused { reason } => (
                Outcome::Refused,
                ExecOutcome::start_failure(reason.clone(), std::time::SystemTime::now()),
            ),
        };
        let ran = matches!(
            counted,
            Outcome::Success | Outcome::Failure | Outcome::Timeout
        )
        .then_some(outcome.duration);
        self.metrics.executed(exec.hook_id, counted, ran);
        let success = outcome.code == 0 && !outcome.timed_out && outcome.start_error.is_none();
        let duration_ms = outcome.duration.as_millis() as u64;
        if exec.plan.retry {
            tracing::debug!(code = outcome.code, duration_ms, "retry executed");
        } else if success {
            tracing::info!(
                code = outcome.code,
                duration_ms,
                "Hook {} successfully executed for {}",
                exec.hook_id,
                exec.event_key
            );
        } else {
            tracing::error!(
                code = outcome.code,
                timed_out = outcome.timed_out,
                start_error = outcome.start_error.as_deref().unwrap_or(""),
                duration_ms,
                "Failure executing hook {} for {}",
                exec.hook_id,
                exec.event_key
            );
        }
        self.ledger.finish(&exec, exec.result(&outcome)).await;
    }
}

/// The single-HEM mode's ledger: start marks and results in the state DB, results to the
/// driver's result socket.
pub struct StateLedger {
    pub db: StateDb,
    pub results: ResultQueue,
    /// Results waiting for the driver beyond which new executions wait: a driver that stops
    /// acknowledging pushes back on the scheduler instead of growing memory.
    pub result_backlog: usize,
}

impl Ledger for StateLedger {
    async fn start(&self, exec: &Execution) -> Start {
        if self.results.outstanding() > self.result_backlog {
            tracing::warn!(
                backlog = self.results.outstanding(),
                "results are not being acknowledged; executions wait"
            );
            self.results.at_most(self.result_backlog).await;
        }
        // Recorded before the process exists: after a crash this execution is reported as
        // interrupted, never run a second time.
        if let Err(e) = self.db.started(&exec.uid).await {
            tracing::error!(error = %e, "cannot record the execution start; running it anyway");
        }
        Start::Run
    }

    async fn finish(&self, exec: &Execution, result: ExecutionResult) {
        complete(&self.db, &self.results, exec, &result);
    }
}

/// The outbox entry of a result: the frame `<rc> <hook_id> <base64 body>`.
pub fn outbox_entry(exec: &Execution, result: &ExecutionResult) -> OutboxEntry {
    OutboxEntry {
        uid: exec.uid.clone(),
        hook_id: exec.hook_id,
        frame: result_frame(exec.hook_id, result).into(),
    }
}

/// The result frame `<rc> <hook_id> <base64 body>` both modes send.
pub fn result_frame(hook_id: i64, result: &ExecutionResult) -> String {
    ResultFrame {
        rc: i64::from(result.code),
        hook_id,
        body: b64_encode(result.to_xml().as_bytes()),
    }
    .to_frame()
}

/// Stores a result in the outbox (replacing the execution) and queues it for delivery. The
/// store is queued before the result, so the writer always sees it before the result's ACK.
pub fn complete(db: &StateDb, results: &ResultQueue, exec: &Execution, result: &ExecutionResult) {
    let entry = outbox_entry(exec, result);
    if let Err(e) = db.finished(entry.clone()) {
        tracing::error!(hook_id = exec.hook_id, uid = %exec.uid, error = %e,
            "cannot store the result in the outbox; sending it anyway");
    }
    results.send(entry);
}
