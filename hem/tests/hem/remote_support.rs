//! Shared set-up of the remote executor tests: fake hosts (real sshd on 127.0.0.N), a
//! known_hosts file for them, and an executor configuration whose host map gives each host its
//! own hook directory.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use one_e2e::sshd::{ClientIdentity, SshHost, agent_binary, write_known_hosts};
use onehem_server::executor::ExecRequest;
use onehem_server::remote::{ExecMode, RemoteConfig};

/// The HEM's `remote_hook_base_path`; every host maps it to its own directory.
pub const GLOBAL_BASE: &str = "/var/tmp/one/hooks";

/// A hook that records where it ran: `$SSH_CONNECTION` (client addr, client port, server
/// addr, server port) into `<host dir>/ran-<first argument>` (the host dir holds `hooks/`),
/// and echoes its arguments.
pub const MARKER_HOOK: &str = r#"echo "$SSH_CONNECTION" > "${0%/hooks/*}/ran-$1"
for a in "$@"; do printf '[%s]' "$a"; done; echo"#;

pub struct Cloud {
    pub identity: ClientIdentity,
    pub hosts: Vec<SshHost>,
    pub known_hosts: PathBuf,
}

impl Cloud {
    /// Starts one fake host per index, all listed in the known_hosts file.
    pub fn start(indices: &[u8]) -> Cloud {
        let identity = ClientIdentity::generate().expect("client key");
        let hosts: Vec<SshHost> = indices
            .iter()
            .map(|i| SshHost::start(*i, &identity).expect("sshd starts"))
            .collect();
        let known_hosts = identity.dir().join("known_hosts");
        write_known_hosts(&known_hosts, &hosts.iter().collect::<Vec<_>>()).unwrap();
        Cloud {
            identity,
            hosts,
            known_hosts,
        }
    }

    pub fn host(&self, name: &str) -> &SshHost {
        self.hosts
            .iter()
            .find(|h| h.name == name)
            .expect("host exists")
    }

    pub fn host_mut(&mut self, name: &str) -> &mut SshHost {
        self.hosts
            .iter_mut()
            .find(|h| h.name == name)
            .expect("host exists")
    }

    /// Installs the same hook (a `#!/bin/sh` script) on every host.
    pub fn install_hook(&self, name: &str, body: &str) {
        for h in &self.hosts {
            install_hook(&h.base_path, name, body);
        }
    }

    /// An executor configuration for these hosts, all in `mode`, the agent run from the
    /// build directory, short timeouts and no reconnection backoff.
    pub fn config(&self, mode: ExecMode) -> RemoteConfig {
        let mut cfg = RemoteConfig {
            mode,
            user: Some("root".into()),
            identity: Some(self.identity.private_key.clone()),
            known_hosts: Some(self.known_hosts.clone()),
            connect_timeout: Some(3.0),
            reconnect_backoff_min: Some(0.0),
            reconnect_backoff_max: Some(0.0),
            kill_grace: Some(0.5),
            agent_path: Some(agent_binary().expect("agent built").display().to_string()),
            remote_hook_base_path: Some(GLOBAL_BASE.into()),
            ..RemoteConfig::default()
        };
        for h in &self.hosts {
            cfg.add_host(&h.name, h.addr, h.port, &h.base_path);
        }
        cfg
    }
}

pub fn install_hook(base: &Path, name: &str, body: &str) -> PathBuf {
    let path = base.join(name);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// A request for `<GLOBAL_BASE>/<command> args…`.
pub fn req(command: &str, args: &[&str]) -> ExecRequest {
    let mut argv = vec![format!("{GLOBAL_BASE}/{command}")];
    argv.extend(args.iter().map(|a| a.to_string()));
    ExecRequest {
        argv,
        stdin: None,
        timeout: Some(Duration::from_secs(30)),
        output_cap: 1 << 20,
    }
}

/// `(server address, server port)` recorded by [`MARKER_HOOK`] in `host`'s directory.
pub fn marker(host: &SshHost, tag: &str) -> Option<(String, u16)> {
    let text = std::fs::read_to_string(host.dir().join(format!("ran-{tag}"))).ok()?;
    let words: Vec<&str> = text.split_whitespace().collect();
    Some((words.get(2)?.to_string(), words.get(3)?.parse().ok()?))
}

/// Whether a non-zombie process of process group `pgid` exists.
pub fn group_alive(pgid: i32) -> bool {
    std::fs::read_dir("/proc").unwrap().flatten().any(|e| {
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            return false;
        };
        let Some((_, rest)) = stat.rsplit_once(") ") else {
            return false;
        };
        let f: Vec<&str> = rest.split(' ').collect();
        f.len() > 2 && f[0] != "Z" && f[2] == pgid.to_string()
    })
}

/// Waits (bounded) for a file to appear and returns its content.
pub async fn wait_for_file(path: &Path) -> String {
    for _ in 0..400 {
        if let Ok(s) = std::fs::read_to_string(path)
            && !s.is_empty()
        {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{} never appeared", path.display());
}
