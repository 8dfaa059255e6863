//! Resuming one VM: read it, decide, resume; on a failed resume wait, read it again and decide
//! again, a bounded number of times.
//!
//! Deciding again before each retry matters: a VM still shutting down is resumed once it is
//! off, and a VM that someone else resumed meanwhile is left alone instead of failing.

use std::fmt;
use std::io::Write;
use std::time::Duration;

use crate::decision::Decision;
use crate::facts::VmFacts;

/// The front-end calls the hooks make.
pub trait VmApi {
    /// `one.vm.info`: the VM document.
    fn vm_info(&self, id: i64) -> Result<String, String>;
    /// `one.vm.action("resume", id)`.
    fn resume(&self, id: i64) -> Result<(), String>;
}

/// How often and how patiently a failed resume is retried.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Resume attempts in all (at least 1).
    pub attempts: u32,
    /// Wait after the first failure; each further wait doubles.
    pub backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 3,
            backoff: Duration::from_secs(1),
        }
    }
}

impl RetryPolicy {
    /// The wait after failed attempt `attempt` (1-based).
    pub fn wait_after(&self, attempt: u32) -> Duration {
        let factor = 1u32
            .checked_shl(attempt.saturating_sub(1))
            .unwrap_or(u32::MAX);
        self.backoff.saturating_mul(factor)
    }
}

/// How one VM ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Resumed on the given attempt.
    Resumed { why: String, attempt: u32 },
    /// Not resumed, on purpose.
    Skipped { why: String },
    /// A resume failed, and then the VM no longer needed one (e.g. someone resumed it).
    Settled { why: String, failures: u32 },
    /// Every attempt failed; the last error.
    Failed { attempts: u32, error: String },
}

impl Outcome {
    pub fn failed(&self) -> bool {
        matches!(self, Outcome::Failed { .. })
    }
}

/// `VM <id> (<name>)`, or `VM <id>` before the name is known.
struct Label<'a>(i64, Option<&'a str>);

impl fmt::Display for Label<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.1 {
            Some(name) if !name.is_empty() => write!(f, "VM {} ({name})", self.0),
            _ => write!(f, "VM {}", self.0),
        }
    }
}

/// Reads VM `id`, applies `decide` and resumes it, retrying per `policy`. Writes one line for
/// each failed attempt and one final line to `out`; `sleep` waits between attempts.
pub fn resume_vm(
    id: i64,
    api: &dyn VmApi,
    decide: &dyn Fn(&VmFacts) -> Decision,
    policy: &RetryPolicy,
    sleep: &mut dyn FnMut(Duration),
    out: &mut dyn Write,
) -> Outcome {
    let attempts = policy.attempts.max(1);
    let mut name: Option<String> = None;
    let mut last_error = String::new();
    for attempt in 1..=attempts {
        if attempt > 1 {
            sleep(policy.wait_after(attempt - 1));
        }
        let step = api
            .vm_info(id)
            .and_then(|xml| VmFacts::from_xml(&xml).map_err(|e| e.to_string()));
        let (facts, error) = match step {
            Ok(facts) => {
                name = Some(facts.name.clone());
                let decision = decide(&facts);
                match decision {
                    Decision::Skip { why } => {
                        let label = Label(id, name.as_deref());
                        // Every earlier attempt of this loop failed.
                        let failures = attempt - 1;
                        let outcome = if failures == 0 {
                            let _ = writeln!(out, "{label}: skipped: {why}");
                            tracing::info!(vm = id, reason = %why, "skipped");
                            Outcome::Skipped { why }
                        } else {
                            let _ = writeln!(out, "{label}: no longer needs a resume: {why}");
                            tracing::info!(vm = id, failures, reason = %why, "settled after failures");
                            Outcome::Settled { why, failures }
                        };
                        return outcome;
                    }
                    Decision::Resume { why } => match api.resume(id) {
                        Ok(()) => {
                            let label = Label(id, name.as_deref());
                            let _ = writeln!(out, "{label}: resumed: {why}{}", after(attempt));
                            tracing::info!(vm = id, attempt, reason = %why, "resumed");
                            return Outcome::Resumed { why, attempt };
                        }
                        Err(e) => (Some(facts), format!("resume failed: {e}")),
                    },
                }
            }
            Err(e) => (None, format!("cannot read the VM: {e}")),
        };
        let label = Label(id, name.as_deref());
        let state = facts
            .map(|f| format!(" [{}]", f.state_str()))
            .unwrap_or_default();
        if attempt < attempts {
            let wait = policy.wait_after(attempt);
            let _ = writeln!(
                out,
                "{label}: attempt {attempt} of {attempts}: {error}{state}; retrying in {} ms",
                wait.as_millis()
            );
            tracing::warn!(vm = id, attempt, attempts, error = %error, "resume attempt failed");
        } else {
            let _ = writeln!(
                out,
                "{label}: attempt {attempt} of {attempts}: {error}{state}"
            );
        }
        last_error = error;
    }
    let label = Label(id, name.as_deref());
    let _ = writeln!(
        out,
        "{label}: FAILED after {attempts} attempts: {last_error}"
    );
    tracing::error!(vm = id, attempts, error = %last_error, "giving up");
    Outcome::Failed {
        attempts,
        error: last_error,
    }
}

fn after(attempt: u32) -> String {
    if attempt > 1 {
        format!(" (attempt {attempt})")
    } else {
        String::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decision;
    use crate::samples;
    use std::cell::RefCell;

    /// A front-end whose VM states and resume answers are scripted per call.
    struct Scripted {
        infos: RefCell<Vec<Result<String, String>>>,
        resumes: RefCell<Vec<Result<(), String>>>,
        resume_calls: RefCell<u32>,
    }

    impl Scripted {
        fn new(infos: Vec<Result<String, String>>, resumes: Vec<Result<(), String>>) -> Self {
            Scripted {
                infos: RefCell::new(infos),
                resumes: RefCell::new(resumes),
                resume_calls: RefCell::new(0),
            }
        }
    }

    impl VmApi for Scripted {
        fn vm_info(&self, _id: i64) -> Result<String, String> {
            let mut infos = self.infos.borrow_mut();
            if infos.len() > 1 {
                infos.remove(0)
            } else {
                infos[0].clone()
            }
        }
        fn resume(&self, _id: i64) -> Result<(), String> {
            *self.resume_calls.borrow_mut() += 1;
            let mut r = self.resumes.borrow_mut();
            if r.len() > 1 {
                r.remove(0)
            } else {
                r[0].clone()
            }
        }
    }

    fn poweroff_by_monitor() -> String {
        samples::vm(4, "web", 8, 0, Some("yes"), &[(0, 44)])
    }

    fn run(api: &Scripted, policy: RetryPolicy) -> (Outcome, String, Vec<Duration>) {
        let mut out = Vec::new();
        let mut waits = Vec::new();
        let outcome = resume_vm(
            4,
            api,
            &decision::for_vm,
            &policy,
            &mut |d| waits.push(d),
            &mut out,
        );
        (outcome, String::from_utf8(out).unwrap(), waits)
    }

    #[test]
    fn resumes_on_the_first_attempt() {
        let api = Scripted::new(vec![Ok(poweroff_by_monitor())], vec![Ok(())]);
        let (outcome, out, waits) = run(&api, RetryPolicy::default());
        assert!(matches!(outcome, Outcome::Resumed { attempt: 1, .. }));
        assert_eq!(
            out,
            "VM 4 (web): resumed: AUTOSTART=yes, powered off by the monitor\n"
        );
        assert!(waits.is_empty());
    }

    #[test]
    fn retries_a_failed_resume_with_doubling_waits_then_gives_up() {
        let refused = "[one.vm.action] Error performing action \"resume\": not now".to_string();
        let api = Scripted::new(vec![Ok(poweroff_by_monitor())], vec![Err(refused.clone())]);
        let policy = RetryPolicy {
            attempts: 3,
            backoff: Duration::from_millis(100),
        };
        let (outcome, out, waits) = run(&api, policy);
        assert_eq!(
            outcome,
            Outcome::Failed {
                attempts: 3,
                error: format!("resume failed: {refused}")
            }
        );
        assert_eq!(*api.resume_calls.borrow(), 3);
        assert_eq!(
            waits,
            vec![Duration::from_millis(100), Duration::from_millis(200)]
        );
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 4, "{out}");
        assert_eq!(
            lines[0],
            format!(
                "VM 4 (web): attempt 1 of 3: resume failed: {refused} [POWEROFF]; retrying in 100 ms"
            )
        );
        assert!(lines[2].starts_with("VM 4 (web): attempt 3 of 3: resume failed"));
        assert_eq!(
            lines[3],
            format!("VM 4 (web): FAILED after 3 attempts: resume failed: {refused}")
        );
    }

    #[test]
    fn succeeds_on_a_later_attempt() {
        let api = Scripted::new(
            vec![Ok(poweroff_by_monitor())],
            vec![Err("busy".into()), Ok(())],
        );
        let (outcome, out, _) = run(&api, RetryPolicy::default());
        assert!(
            matches!(outcome, Outcome::Resumed { attempt: 2, .. }),
            "{outcome:?}"
        );
        assert!(
            out.ends_with("resumed: AUTOSTART=yes, powered off by the monitor (attempt 2)\n"),
            "{out}"
        );
    }

    #[test]
    fn stops_retrying_when_someone_else_resumed_the_vm() {
        let booting = samples::vm(4, "web", 3, 20, Some("yes"), &[(0, 44), (0, 11)]);
        let api = Scripted::new(
            vec![Ok(poweroff_by_monitor()), Ok(booting)],
            vec![Err("wrong state".into())],
        );
        let (outcome, out, _) = run(&api, RetryPolicy::default());
        assert!(
            matches!(outcome, Outcome::Settled { failures: 1, .. }),
            "{outcome:?}"
        );
        assert!(!outcome.failed());
        assert!(
            out.ends_with(
                "VM 4 (web): no longer needs a resume: BOOT_POWEROFF now, no longer POWEROFF\n"
            ),
            "{out}"
        );
    }

    #[test]
    fn a_vm_that_cannot_be_read_fails_after_the_attempts() {
        let api = Scripted::new(
            vec![Err(
                "[one.vm.info] Error getting virtual machine [4].".into()
            )],
            vec![Ok(())],
        );
        let (outcome, out, _) = run(
            &api,
            RetryPolicy {
                attempts: 2,
                backoff: Duration::ZERO,
            },
        );
        assert!(outcome.failed());
        assert_eq!(*api.resume_calls.borrow(), 0);
        assert!(
            out.starts_with("VM 4: attempt 1 of 2: cannot read the VM: [one.vm.info]"),
            "{out}"
        );
    }

    #[test]
    fn a_skipped_vm_is_not_resumed() {
        let api = Scripted::new(
            vec![Ok(samples::vm(4, "web", 8, 0, None, &[(0, 44)]))],
            vec![Ok(())],
        );
        let (outcome, out, _) = run(&api, RetryPolicy::default());
        assert!(matches!(outcome, Outcome::Skipped { .. }));
        assert_eq!(*api.resume_calls.borrow(), 0);
        assert_eq!(
            out,
            "VM 4 (web): skipped: AUTOSTART not set (yes, true or always enables it)\n"
        );
    }

    #[test]
    fn waits_saturate() {
        let p = RetryPolicy {
            attempts: 50,
            backoff: Duration::from_secs(1),
        };
        assert_eq!(p.wait_after(1), Duration::from_secs(1));
        assert_eq!(p.wait_after(3), Duration::from_secs(4));
        assert!(p.wait_after(40) >= Duration::from_secs(u64::from(u32::MAX)));
    }
}
