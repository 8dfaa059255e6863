//! One accepted hook execution: what runs and where (reference §8.2-8.4), and the result body
//! it ends as (§4.7).

use std::time::Duration;

use one_proto::event::HookMessage;
use one_proto::hook_log::ExecutionResult;
use one_proto::keys::ruby_words;
use one_proto::retry::RetryMessage;

use crate::executor::{ExecOutcome, ExecRequest, FAILURE_CODE};
use crate::hook_map::HookSpec;
pub use crate::hook_paths::HookPaths;

/// Text of the failure reported for an execution that was running when the HEM stopped.
pub const INTERRUPTED: &str = "interrupted by HEM restart";

/// Why an execution marked started has no outcome after a restart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Interruption {
    /// A remote hook: its SSH connection ended with the HEM.
    Remote,
    /// A local hook whose supervisor was gone too: how it ended is not known.
    SupervisorGone,
    /// A local hook the surviving supervisor never received: it never ran.
    NeverHandedOver,
}

impl Interruption {
    /// The record's reason, after `Internal error `.
    pub fn text(self) -> String {
        match self {
            Interruption::Remote => INTERRUPTED.to_string(),
            Interruption::SupervisorGone => format!(
                "{INTERRUPTED}: the hook supervisor was not running either (killed, or stopped \
                 with the HEM after shutdown_grace), so how the hook ended is not known"
            ),
            Interruption::NeverHandedOver => format!(
                "{INTERRUPTED}: the HEM stopped before handing the hook to its supervisor, \
                 which never ran it"
            ),
        }
    }
}

/// The log and record text for a remote hook whose event names no host (reference §8.1).
pub const NO_REMOTE_HOST: &str = "No remote host specified for a remote hook.";

/// Where an execution runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    Local,
    Remote {
        host: String,
    },
    /// It cannot run at all; the execution ends as a failure record with this reason.
    Refused {
        reason: String,
    },
}

/// Everything needed to run an execution and write its record, fixed when the event is
/// accepted so that a restart runs (or reports) exactly the same thing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// The resolved command path (a path on the host for remote hooks).
    pub command: String,
    /// The expanded ARGUMENTS text, as the record shows it.
    pub arguments: String,
    /// ARGUMENTS_STDIN mode: the arguments go to stdin instead of argv.
    pub stdin: bool,
    pub timeout_secs: Option<u64>,
    pub target: Target,
    /// REMOTE_HOST of the record.
    pub report_host: Option<String>,
    /// The execution comes from a RETRY message.
    pub retry: bool,
}

/// An execution as the HEM tracks it from acceptance to acknowledged result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Execution {
    /// Unique across restarts; the driver and the front-end drop duplicates by it.
    pub uid: String,
    /// Sequence number of the event (0 when the driver sends none).
    pub seq: u64,
    pub hook_id: i64,
    /// Executions with the same lane run one at a time, in acceptance order.
    pub lane: String,
    /// The resource the event is about (`VM/12`), `""` when unknown; for logs.
    pub resource: String,
    /// The event key without its sequence token; for logs.
    pub event_key: String,
    pub plan: Plan,
}

impl Plan {
    /// The plan for a hook triggered by an event. `event` is `None` when the event could not be
    /// read, in which case the arguments are empty, as in the reference (§8.2 step 5).
    pub fn for_event(hook: &HookSpec, event: Option<&HookMessage>, paths: &HookPaths) -> Plan {
        let arguments = match event {
            Some(ev) => expand_arguments(&hook.arguments, ev),
            None => String::new(),
        };
        let host = event.and_then(remote_host).filter(|h| !h.is_empty());
        let mut plan = Plan::for_hook(hook, arguments, host, paths);
        // The record of a local hook names no host, whatever host the event names.
        if !hook.remote {
            plan.report_host = None;
        }
        plan
    }

    /// The plan for a RETRY (reference §8.4): the hook's current command and modes, the
    /// recorded arguments verbatim and the recorded host. `hook` is `None` when the HEM does not
    /// know the hook, which gives a failure record instead of the reference's silent crash.
    pub fn for_retry(
        hook_id: i64,
        hook: Option<&HookSpec>,
        retry: &RetryMessage,
        paths: &HookPaths,
    ) -> Plan {
        let host = retry.remote_host.clone().filter(|h| !h.is_empty());
        let plan = match hook {
            Some(hook) => Plan::for_hook(hook, retry.arguments.clone(), host, paths),
            None => Plan {
                command: String::new(),
                arguments: retry.arguments.clone(),
                stdin: false,
                timeout_secs: None,
                target: Target::Refused {
                    reason: format!("hook {hook_id} is not known to the HEM"),
                },
                report_host: host,
                retry: false,
            },
        };
        Plan {
            retry: true,
            ..plan
        }
    }

    /// Runs `hook` with `arguments`; a remote hook runs on `host`, which the record names.
    fn for_hook(
        hook: &HookSpec,
        arguments: String,
        host: Option<String>,
        paths: &HookPaths,
    ) -> Plan {
        let target = match (&hook.command, hook.remote, &host) {
            (None, _, _) => Target::Refused {
                reason: format!("hook {} has no COMMAND", hook.id),
            },
            (Some(_), true, None) => Target::Refused {
                reason: NO_REMOTE_HOST.to_string(),
            },
            (Some(_), true, Some(h)) => Target::Remote { host: h.clone() },
            (Some(command), false, _) => match paths.check_local(command) {
                Ok(()) => Target::Local,
                Err(reason) => Target::Refused { reason },
            },
        };
        Plan {
            command: hook
                .command
                .as_deref()
                .map(|c| paths.resolve(c, hook.remote))
                .unwrap_or_default(),
            arguments,
            stdin: hook.arguments_stdin,
            timeout_secs: hook.timeout_secs,
            target,
            report_host: host,
            retry: false,
        }
    }

    /// The command line the record shows: the path, plus the arguments unless they go to stdin.
    pub fn command_line(&self) -> String {
        if self.stdin || self.arguments.is_empty() {
            self.command.clone()
        } else {
            format!("{} {}", self.command, self.arguments)
        }
    }

    /// The request for an executor: argv words (never a shell), or stdin in stdin mode.
    pub fn request(&self, output_cap: usize) -> ExecRequest {
        let mut argv = vec![self.command.clone()];
        let stdin = if self.stdin {
            Some(self.arguments.clone().into_bytes())
        } else {
            argv.extend(ruby_words(&self.arguments).map(str::to_string));
            None
        };
        ExecRequest {
            argv,
            stdin,
            timeout: self.timeout_secs.map(Duration::from_secs),
            output_cap,
        }
    }
}

/// What an execution's record holds besides the outcome of its run: enough for whoever
/// reports the outcome (the HEM, or in the distributed mode the hook supervisor finishing what
/// a dead HEM started) to build the same result body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResultContext {
    pub uid: String,
    pub hook_id: i64,
    /// The expanded arguments.
    pub arguments: String,
    /// The command line the record names ([`Plan::command_line`]).
    pub command: String,
    pub report_host: Option<String>,
    pub retry: bool,
}

impl ResultContext {
    /// The record body for an outcome. Timeouts and start failures get the reference's stderr
    /// texts; truncated output gets a marker.
    pub fn result(&self, outcome: &ExecOutcome) -> ExecutionResult {
        self.clone().into_result(outcome)
    }

    /// [`result`](Self::result), taking the context.
    pub fn into_result(self, outcome: &ExecOutcome) -> ExecutionResult {
        let mut stdout = outcome.stdout.clone();
        if outcome.stdout_truncated {
            stdout.extend_from_slice(truncation_marker(stdout.len()).as_bytes());
        }
        let stderr = if outcome.timed_out {
            format!("Timeout executing {}", self.command).into_bytes()
        } else if let Some(reason) = &outcome.start_error {
            format!("Internal error {reason}").into_bytes()
        } else {
            let mut e = outcome.stderr.clone();
            if outcome.stderr_truncated {
                e.extend_from_slice(truncation_marker(e.len()).as_bytes());
            }
            e
        };
        ExecutionResult {
            arguments: self.arguments,
            command: self.command,
            stdout,
            stderr,
            code: if outcome.timed_out || outcome.start_error.is_some() {
                FAILURE_CODE
            } else {
                outcome.code
            },
            remote_host: self.report_host,
            retry: self.retry,
            execution_uid: Some(self.uid),
        }
    }
}

impl Execution {
    /// The record body for an outcome ([`ResultContext::result`]).
    pub fn result(&self, outcome: &ExecOutcome) -> ExecutionResult {
        self.result_context().into_result(outcome)
    }

    /// What its record holds besides the outcome.
    pub fn result_context(&self) -> ResultContext {
        ResultContext {
            uid: self.uid.clone(),
            hook_id: self.hook_id,
            arguments: self.plan.arguments.clone(),
            command: self.plan.command_line(),
            report_host: self.plan.report_host.clone(),
            retry: self.plan.retry,
        }
    }

    /// The failure record of an execution that was running when the HEM stopped. It keeps the
    /// original arguments and host, so it can be retried.
    pub fn interrupted(&self) -> ExecutionResult {
        self.interrupted_because(Interruption::Remote)
    }

    /// [`interrupted`](Self::interrupted), saying why no outcome is known.
    pub fn interrupted_because(&self, why: Interruption) -> ExecutionResult {
        ExecutionResult {
            arguments: self.plan.arguments.clone(),
            command: self.plan.command_line(),
            stdout: Vec::new(),
            stderr: format!("Internal error {}", why.text()).into_bytes(),
            code: FAILURE_CODE,
            remote_host: self.plan.report_host.clone(),
            retry: self.plan.retry,
            execution_uid: Some(self.uid.clone()),
        }
    }
}

impl Execution {
    /// The failure record of an execution that another HEM claimed and stopped before reporting
    /// (distributed mode). That HEM died or lost the bus, after it marked the execution started:
    /// whether the hook was spawned, and whether it ran to its end, is not known, and the record
    /// says so. It keeps the original arguments and host, so it can
    /// be retried.
    pub fn taken_over(&self, owner: &str) -> ExecutionResult {
        ExecutionResult {
            stderr: format!(
                "Internal error interrupted: HEM {owner} stopped while starting or running \
                 this hook, before reporting how it ended"
            )
            .into_bytes(),
            ..self.interrupted()
        }
    }
}

fn truncation_marker(kept: usize) -> String {
    format!("\n[output truncated at {kept} bytes]")
}

/// ARGUMENTS expansion (reference §8.2): every word that is exactly `$API` or `$TEMPLATE` is
/// replaced by its value, the words are joined by single spaces, and the ends are trimmed.
pub fn expand_arguments(arguments: &str, event: &HookMessage) -> String {
    let mut api = None;
    let mut template = None;
    let mut out = String::with_capacity(arguments.len());
    for (i, word) in ruby_words(arguments).enumerate() {
        if i > 0 {
            out.push(' ');
        }
        match word {
            "$API" => out.push_str(api.get_or_insert_with(|| event.api_argument())),
            "$TEMPLATE" => out.push_str(template.get_or_insert_with(|| event.template_argument())),
            other => out.push_str(other),
        }
    }
    out.trim_matches([' ', '\t', '\n', '\x0b', '\x0c', '\r'])
        .to_string()
}

/// The host a remote hook runs on: the event's REMOTE_HOST (a VM's host, a host's name).
pub fn remote_host(event: &HookMessage) -> Option<String> {
    match event {
        HookMessage::State(s) => s.remote_host.clone(),
        HookMessage::Api(_) => None,
    }
}
