//! The two hooks: read the event's `$TEMPLATE` argument, then resume the VMs it concerns.

use std::io::Write;
use std::time::Duration;

use one_proto::encoding::b64_decode_lenient;

use crate::decision;
use crate::facts::{FactsError, HostFacts, VmFacts};
use crate::resume::{Outcome, RetryPolicy, VmApi, resume_vm};
use crate::xml_tree;

/// Which hook is running.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// `autostart-host`: a host reached MONITORED.
    Host,
    /// `autostart-vm`: a VM reached POWEROFF/LCM_INIT.
    Vm,
}

/// Why the hook could not even start on its VMs.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("no $TEMPLATE argument: expected the base64 {0} document (ARGUMENTS = $TEMPLATE)")]
    NoArgument(&'static str),
    #[error("the $TEMPLATE argument does not decode to text")]
    NotText,
    #[error(transparent)]
    Facts(#[from] FactsError),
}

/// What the hook did, VM by VM.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub outcomes: Vec<(i64, Outcome)>,
}

impl Summary {
    pub fn resumed(&self) -> usize {
        self.count(|o| matches!(o, Outcome::Resumed { .. }))
    }

    pub fn failed(&self) -> usize {
        self.count(Outcome::failed)
    }

    pub fn skipped(&self) -> usize {
        self.count(|o| matches!(o, Outcome::Skipped { .. } | Outcome::Settled { .. }))
    }

    fn count(&self, f: impl Fn(&Outcome) -> bool) -> usize {
        self.outcomes.iter().filter(|(_, o)| f(o)).count()
    }
}

/// The event document from the hook's argument text: its first word, base64 (the reference
/// hooks read it the same way, so extra words after `$TEMPLATE` are ignored).
pub fn decode_argument(text: &str, what: &'static str) -> Result<String, RunError> {
    let word = text
        .split_whitespace()
        .next()
        .ok_or(RunError::NoArgument(what))?;
    let bytes = b64_decode_lenient(word);
    if bytes.is_empty() {
        return Err(RunError::NoArgument(what));
    }
    String::from_utf8(bytes).map_err(|_| RunError::NotText)
}

/// What a hook works on, read from its argument before anything is asked of the front-end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Plan {
    /// The host that reached MONITORED, with the VMs its document lists.
    Host(HostFacts),
    /// The VM that reached POWEROFF, as its event showed it.
    Vm(VmFacts),
}

/// Reads the hook's argument text (the base64 HOST or VM document).
pub fn plan(mode: Mode, argument: &str) -> Result<Plan, RunError> {
    match mode {
        Mode::Host => Ok(Plan::Host(HostFacts::from_xml(&decode_argument(
            argument, "HOST",
        )?)?)),
        Mode::Vm => {
            let doc = xml_tree::parse(&decode_argument(argument, "VM")?)
                .map_err(|source| FactsError::Xml { what: "VM", source })?;
            Ok(Plan::Vm(VmFacts::from_element(&doc)?))
        }
    }
}

/// Carries out a plan. Writes one line per VM (and per failed attempt) to `out`; the caller
/// exits non-zero when [`Summary::failed`] is not zero.
pub fn execute(
    plan: &Plan,
    api: &dyn VmApi,
    policy: &RetryPolicy,
    sleep: &mut dyn FnMut(Duration),
    out: &mut dyn Write,
) -> Summary {
    let mut summary = Summary::default();
    match plan {
        Plan::Host(host) => {
            let ids: Vec<String> = host.vm_ids.iter().map(ToString::to_string).collect();
            let listed = if ids.is_empty() {
                "no VMs".to_string()
            } else {
                format!("VMs {}", ids.join(" "))
            };
            let _ = writeln!(
                out,
                "autostart-host: host {} ({}) is MONITORED; {listed}",
                host.id, host.name
            );
            tracing::info!(host = host.id, name = %host.name, vms = host.vm_ids.len(), "host monitored");
            let decide = |vm: &VmFacts| decision::for_host(host.id, vm);
            for &id in &host.vm_ids {
                let outcome = resume_vm(id, api, &decide, policy, sleep, out);
                summary.outcomes.push((id, outcome));
            }
        }
        Plan::Vm(event) => {
            // The event says which VM; its current state is read again, because other events
            // may have changed it since.
            let _ = writeln!(
                out,
                "autostart-vm: VM {} ({}) reached {}",
                event.id,
                event.name,
                event.state_str()
            );
            tracing::info!(vm = event.id, state = event.state_str(), "VM event");
            let outcome = resume_vm(event.id, api, &decision::for_vm, policy, sleep, out);
            summary.outcomes.push((event.id, outcome));
        }
    }
    let _ = writeln!(
        out,
        "summary: {} resumed, {} skipped, {} failed",
        summary.resumed(),
        summary.skipped(),
        summary.failed()
    );
    summary
}

/// [`plan`] then [`execute`].
pub fn run(
    mode: Mode,
    argument: &str,
    api: &dyn VmApi,
    policy: &RetryPolicy,
    sleep: &mut dyn FnMut(Duration),
    out: &mut dyn Write,
) -> Result<Summary, RunError> {
    let plan = plan(mode, argument)?;
    Ok(execute(&plan, api, policy, sleep, out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::samples;
    use one_proto::encoding::b64_encode;
    use std::cell::RefCell;
    use std::collections::HashMap;

    /// VMs by id; a resume moves a VM to BOOT_* as the front-end does, or is refused.
    struct Cloud {
        vms: RefCell<HashMap<i64, String>>,
        refuse: Vec<i64>,
        resumed: RefCell<Vec<i64>>,
    }

    impl VmApi for Cloud {
        fn vm_info(&self, id: i64) -> Result<String, String> {
            self.vms
                .borrow()
                .get(&id)
                .cloned()
                .ok_or_else(|| format!("[one.vm.info] Error getting virtual machine [{id}]."))
        }
        fn resume(&self, id: i64) -> Result<(), String> {
            if self.refuse.contains(&id) {
                return Err("[one.vm.action] Error performing action \"resume\": refused".into());
            }
            self.resumed.borrow_mut().push(id);
            Ok(())
        }
    }

    fn cloud(vms: Vec<(i64, String)>, refuse: Vec<i64>) -> Cloud {
        Cloud {
            vms: RefCell::new(vms.into_iter().collect()),
            refuse,
            resumed: RefCell::new(Vec::new()),
        }
    }

    fn run_hook(mode: Mode, doc: &str, api: &Cloud) -> (Result<Summary, RunError>, String) {
        let mut out = Vec::new();
        let policy = RetryPolicy {
            attempts: 2,
            backoff: Duration::ZERO,
        };
        let r = run(
            mode,
            &b64_encode(doc.as_bytes()),
            api,
            &policy,
            &mut |_| {},
            &mut out,
        );
        (r, String::from_utf8(out).unwrap())
    }

    #[test]
    fn host_hook_goes_over_the_hosts_vms() {
        let api = cloud(
            vec![
                (0, samples::vm(0, "web", 8, 0, Some("yes"), &[(0, 44)])),
                (1, samples::vm(1, "batch", 8, 0, Some("always"), &[(0, 19)])),
                (2, samples::vm(2, "scratch", 8, 0, None, &[(0, 44)])),
                (3, samples::vm(3, "db", 3, 16, Some("yes"), &[(0, 0)])),
            ],
            vec![],
        );
        let (r, out) = run_hook(Mode::Host, &samples::host(0, "node0", &[0, 1, 2, 3]), &api);
        let summary = r.unwrap();
        assert_eq!(*api.resumed.borrow(), vec![1, 3]);
        assert_eq!(
            (summary.resumed(), summary.skipped(), summary.failed()),
            (2, 2, 0)
        );
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines,
            vec![
                "autostart-host: host 0 (node0) is MONITORED; VMs 0 1 2 3",
                "VM 0 (web): skipped: POWEROFF, powered off by the monitor: the VM hook resumes it",
                "VM 1 (batch): resumed: AUTOSTART=always, POWEROFF (last action poweroff)",
                "VM 2 (scratch): skipped: AUTOSTART not set (yes, true or always enables it)",
                "VM 3 (db): resumed: AUTOSTART=yes, UNKNOWN since its host went down",
                "summary: 2 resumed, 2 skipped, 0 failed",
            ]
        );
    }

    #[test]
    fn host_hook_without_vms() {
        let api = cloud(vec![], vec![]);
        let (r, out) = run_hook(Mode::Host, &samples::host(1, "node1", &[]), &api);
        assert_eq!(r.unwrap(), Summary::default());
        assert_eq!(
            out,
            "autostart-host: host 1 (node1) is MONITORED; no VMs\nsummary: 0 resumed, 0 skipped, 0 failed\n"
        );
    }

    #[test]
    fn vm_hook_reads_the_vm_again_and_reports_failures() {
        let event = samples::vm(5, "web", 8, 0, Some("yes"), &[(0, 44)]);
        let api = cloud(vec![(5, event.clone())], vec![5]);
        let (r, out) = run_hook(Mode::Vm, &event, &api);
        let summary = r.unwrap();
        assert_eq!(summary.failed(), 1);
        assert!(
            out.starts_with("autostart-vm: VM 5 (web) reached POWEROFF\n"),
            "{out}"
        );
        assert!(
            out.contains("VM 5 (web): attempt 1 of 2: resume failed: [one.vm.action]"),
            "{out}"
        );
        assert!(out.contains("VM 5 (web): FAILED after 2 attempts"), "{out}");
        assert!(
            out.ends_with("summary: 0 resumed, 0 skipped, 1 failed\n"),
            "{out}"
        );
    }

    #[test]
    fn bad_arguments_are_errors() {
        let api = cloud(vec![], vec![]);
        let mut sink = Vec::new();
        let policy = RetryPolicy::default();
        for (mode, text) in [(Mode::Host, ""), (Mode::Vm, "   \n"), (Mode::Host, "!!!!")] {
            let r = run(mode, text, &api, &policy, &mut |_| {}, &mut sink);
            assert!(matches!(r, Err(RunError::NoArgument(_))), "{text:?}: {r:?}");
        }
        let vm_doc = b64_encode(samples::vm(1, "x", 8, 0, None, &[]).as_bytes());
        let r = run(Mode::Host, &vm_doc, &api, &policy, &mut |_| {}, &mut sink);
        assert!(
            matches!(r, Err(RunError::Facts(FactsError::Root { .. }))),
            "{r:?}"
        );
        let not_xml = b64_encode(b"hello");
        let r = run(Mode::Vm, &not_xml, &api, &policy, &mut |_| {}, &mut sink);
        assert!(matches!(r, Err(RunError::Facts(_))), "{r:?}");
        let binary = b64_encode(&[0xff, 0xfe, 0x00]);
        let r = run(Mode::Vm, &binary, &api, &policy, &mut |_| {}, &mut sink);
        assert!(matches!(r, Err(RunError::NotText)), "{r:?}");
    }

    #[test]
    fn extra_words_after_the_template_are_ignored() {
        let doc = samples::host(2, "node2", &[]);
        let text = format!("{} extra words", b64_encode(doc.as_bytes()));
        assert_eq!(decode_argument(&text, "HOST").unwrap(), doc);
    }
}
