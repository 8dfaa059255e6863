//! REMOTE=YES hooks through the whole stack: oned-lite's VM and host events, the driver, the
//! HEM's remote executor over SSH to real `sshd` fake hosts (one per 127.0.0.N).

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use one_e2e::sshd::{ClientIdentity, SshHost, agent_binary, write_known_hosts};
use one_e2e::stack::{Stack, StackOptions};
use one_proto::xmlrpc::Value;

const WAIT: Duration = Duration::from_secs(60);

struct Hosts {
    identity: ClientIdentity,
    hosts: Vec<SshHost>,
    known_hosts: std::path::PathBuf,
}

impl Hosts {
    fn start(indices: &[u8]) -> Result<Hosts> {
        let identity = ClientIdentity::generate()?;
        let hosts = indices
            .iter()
            .map(|i| SshHost::start(*i, &identity))
            .collect::<std::io::Result<Vec<_>>>()?;
        let known_hosts = identity.dir().join("known_hosts");
        write_known_hosts(&known_hosts, &hosts.iter().collect::<Vec<_>>())?;
        Ok(Hosts {
            identity,
            hosts,
            known_hosts,
        })
    }

    /// The HEM's `remote:` section: every fake host under its cloud name, with its own hook
    /// directory (they share this machine's filesystem).
    fn hem_yaml(&self, mode: &str) -> Result<String> {
        let mut y = format!(
            "remote:\n  mode: {mode}\n  user: root\n  identity: {}\n  known_hosts: {}\n  \
             connect_timeout: 3\n  agent_path: {}\n  hosts:\n",
            self.identity.private_key.display(),
            self.known_hosts.display(),
            agent_binary()?.display()
        );
        for h in &self.hosts {
            let _ = writeln!(
                y,
                "    {}:\n      address: {}\n      port: {}\n      remote_hook_base_path: {}",
                h.name,
                h.addr,
                h.port,
                h.base_path.display()
            );
        }
        Ok(y)
    }

    fn install(&self, name: &str, body: &str) -> Result<()> {
        use std::os::unix::fs::PermissionsExt;
        for h in &self.hosts {
            let path = h.base_path.join(name);
            std::fs::write(&path, body)?;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
        }
        Ok(())
    }
}

fn int(v: i64) -> Value {
    Value::Int(v as i32)
}

fn host_allocate(stack: &Stack, name: &str) -> Result<i64> {
    let v = stack.client().call(
        "one.host.allocate",
        vec![
            Value::String(name.into()),
            Value::String("kvm".into()),
            Value::String("kvm".into()),
        ],
    )?;
    one_e2e_int(v)
}

fn one_e2e_int(v: Value) -> Result<i64> {
    match v {
        Value::Int(i) => Ok(i.into()),
        Value::I8(i) => Ok(i),
        other => anyhow::bail!("expected an id, got {other:?}"),
    }
}

/// The marker a hook leaves in the directory it was run from.
const MARKER_HOOK: &str = "#!/bin/sh\nd=$(dirname \"$0\")\necho \"$@\" >> \"$d/ran\"\necho ran on $(basename $(dirname \"$d\"))\n";

fn ran_here(base: &Path) -> Option<String> {
    std::fs::read_to_string(base.join("ran")).ok()
}

fn vm_hook_runs_only_on_its_host(mode: &str, indices: [u8; 2]) -> Result<()> {
    let hosts = Hosts::start(&indices)?;
    hosts.install("vm-running.sh", MARKER_HOOK)?;
    let stack = Stack::start_with(StackOptions {
        hem_extra: hosts.hem_yaml(mode)?,
        ..Default::default()
    })?;
    let c = stack.client();
    let hook = c.hook_allocate(
        "NAME = remote-vm\nTYPE = state\nCOMMAND = vm-running.sh\nARGUMENTS = \"vm running\"\n\
         ON = RUNNING\nRESOURCE = VM\nREMOTE = yes\n",
    )?;
    let ids: Vec<i64> = hosts
        .hosts
        .iter()
        .map(|h| host_allocate(&stack, &h.name))
        .collect::<Result<_>>()?;
    let vm = stack.vm_allocate("NAME = web\nCPU = 1\nMEMORY = 64\n")?;
    c.call("one.vm.deploy", vec![int(vm), int(ids[1])])?;

    let records = stack.wait_records(hook, 1, WAIT)?;
    let r = records[0].result.as_ref().context("no result")?;
    assert_eq!(r.code, 0, "{r:?}\n{}", stack.tail_log("hem"));
    assert_eq!(r.remote_host.as_deref(), Some(hosts.hosts[1].name.as_str()));
    assert_eq!(
        ran_here(&hosts.hosts[1].base_path).as_deref(),
        Some("vm running\n")
    );
    assert_eq!(
        ran_here(&hosts.hosts[0].base_path),
        None,
        "the hook ran on the wrong host"
    );
    Ok(())
}

#[test]
fn remote_vm_hook_runs_on_the_vm_host_over_ssh_channels() -> Result<()> {
    vm_hook_runs_only_on_its_host("ssh", [31, 32])
}

#[test]
fn remote_vm_hook_runs_on_the_vm_host_through_the_agent() -> Result<()> {
    vm_hook_runs_only_on_its_host("agent", [33, 34])
}

/// A HOST hook with REMOTE=yes runs on the host whose state changed; a REMOTE=yes IMAGE hook
/// has no host to run on and gets a failure record that says so (the reference skips it
/// silently).
#[test]
fn remote_host_hook_and_a_hook_without_host() -> Result<()> {
    let hosts = Hosts::start(&[35, 36])?;
    hosts.install("host-error.sh", MARKER_HOOK)?;
    let stack = Stack::start_with(StackOptions {
        hem_extra: hosts.hem_yaml("agent")?,
        ..Default::default()
    })?;
    let c = stack.client();
    let host_hook = c.hook_allocate(
        "NAME = host-error\nTYPE = state\nCOMMAND = host-error.sh\nSTATE = ERROR\nRESOURCE = HOST\n\
         REMOTE = yes\n",
    )?;
    let image_hook = c.hook_allocate(
        "NAME = image-ready\nTYPE = state\nCOMMAND = image.sh\nSTATE = READY\nRESOURCE = IMAGE\n\
         REMOTE = yes\n",
    )?;
    let ids: Vec<i64> = hosts
        .hosts
        .iter()
        .map(|h| host_allocate(&stack, &h.name))
        .collect::<Result<_>>()?;
    c.call("one.hostsim.fail", vec![int(ids[0])])?;
    c.call(
        "one.image.allocate",
        vec![Value::String("NAME = disk\nSIZE = 1\n".into()), int(1)],
    )?;

    let r = stack.wait_records(host_hook, 1, WAIT)?[0]
        .result
        .clone()
        .context("no result")?;
    assert_eq!(r.code, 0, "{r:?}");
    assert!(ran_here(&hosts.hosts[0].base_path).is_some());
    assert_eq!(ran_here(&hosts.hosts[1].base_path), None);

    let r = stack.wait_records(image_hook, 1, WAIT)?[0]
        .result
        .clone()
        .context("no result")?;
    assert_eq!(r.code, 255);
    let stderr = String::from_utf8_lossy(&r.stderr).to_lowercase();
    assert!(stderr.contains("host"), "{stderr}");
    Ok(())
}

/// A host whose sshd is down fails its own hooks (with a record) while another host's hooks
/// run; after its sshd is back, the next hook on it succeeds without restarting the HEM.
#[test]
fn dead_host_fails_alone_and_recovers() -> Result<()> {
    let mut hosts = Hosts::start(&[37, 38])?;
    hosts.install("vm-running.sh", MARKER_HOOK)?;
    let stack = Stack::start_with(StackOptions {
        hem_extra: hosts.hem_yaml("agent")?,
        ..Default::default()
    })?;
    let c = stack.client();
    let hook = c.hook_allocate(
        "NAME = remote-vm\nTYPE = state\nCOMMAND = vm-running.sh\nON = RUNNING\nRESOURCE = VM\n\
         REMOTE = yes\n",
    )?;
    let ids: Vec<i64> = hosts
        .hosts
        .iter()
        .map(|h| host_allocate(&stack, &h.name))
        .collect::<Result<_>>()?;
    hosts.hosts[0].stop();
    let down = stack.vm_allocate("NAME = a\nCPU = 1\nMEMORY = 64\n")?;
    c.call("one.vm.deploy", vec![int(down), int(ids[0])])?;
    let up = stack.vm_allocate("NAME = b\nCPU = 1\nMEMORY = 64\n")?;
    c.call("one.vm.deploy", vec![int(up), int(ids[1])])?;

    let records = stack.wait_records(hook, 2, WAIT)?;
    let by_host = |name: &str| {
        records
            .iter()
            .filter_map(|r| r.result.as_ref())
            .find(|r| r.remote_host.as_deref() == Some(name))
            .cloned()
    };
    let failed = by_host(&hosts.hosts[0].name).context("no record for the dead host")?;
    assert_eq!(failed.code, 255);
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(stderr.contains(&hosts.hosts[0].name), "{stderr}");
    let ok = by_host(&hosts.hosts[1].name).context("no record for the live host")?;
    assert_eq!(ok.code, 0, "{ok:?}");

    hosts.hosts[0].restart()?;
    // The connection to the dead host backs off after the failure; retries of the failed
    // execution run on the recorded host until one succeeds (bounded).
    let failed_exec = records
        .iter()
        .find(|r| {
            r.result.as_ref().and_then(|x| x.remote_host.as_deref())
                == Some(hosts.hosts[0].name.as_str())
        })
        .map(|r| r.execution_id)
        .context("no failed execution")?;
    let mut count = records.len();
    let mut retried = None;
    for _ in 0..20 {
        c.hook_retry(hook, failed_exec)?;
        count += 1;
        let all = stack.wait_records(hook, count, WAIT)?;
        let last = all
            .last()
            .and_then(|r| r.result.clone())
            .context("no result")?;
        if last.code == 0 {
            retried = Some(last);
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let retried = retried.context("the host never worked again")?;
    assert!(retried.retry);
    assert!(ran_here(&hosts.hosts[0].base_path).is_some());
    Ok(())
}
