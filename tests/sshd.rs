//! A real OpenSSH `sshd` per fake host, each on its own loopback address (127.0.0.N) with its
//! own host key, its own port and its own hook directory.
//!
//! All fake hosts share this machine's filesystem, so each gets a distinct directory: the
//! `remote_hook_base_path` of that host is [`SshHost::base_path`]. A hook can prove where it
//! ran by writing `$SSH_CONNECTION`, whose third and fourth words are the address and port of
//! the sshd that started it.
//!
//! [`SshHost::stop`] kills the sshd and everything it started (sessions and their hooks), as a
//! host that loses power would; [`SshHost::restart`] brings it back with the same host key on
//! the same port.
//!
//! [`SshFleet`] is many fake hosts at once (hundreds to thousands), each a distinct name on a
//! distinct loopback address in `127.99.0.0/16`, a range no other harness uses. One sshd serves
//! up to [`MAX_LISTEN_SOCKS`] of them (one `ListenAddress` line each), so a thousand hosts take
//! 63 sshd processes, not a thousand.

use std::fmt::Write as _;
use std::fs;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tempfile::TempDir;

use crate::stack::bin_dir;

/// How long an sshd may take to accept connections after it was started.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// Listening sockets one OpenSSH sshd accepts (`MAX_LISTEN_SOCKS` in its `sshd.c`); a 17th
/// `ListenAddress` makes it exit with "Too many listen sockets".
pub const MAX_LISTEN_SOCKS: usize = 16;

/// The second octet of the fleet's loopback addresses: `127.99.x.y`.
const FLEET_NET: u8 = 99;

/// The client key pair every fake host accepts (ed25519, no passphrase).
pub struct ClientIdentity {
    dir: TempDir,
    /// Path of the private key (OpenSSH format).
    pub private_key: PathBuf,
    /// The public key line (`ssh-ed25519 AAAA… comment`).
    pub public_key: String,
}

impl ClientIdentity {
    /// Generates a fresh key pair in a temporary directory.
    pub fn generate() -> io::Result<ClientIdentity> {
        let dir = tempfile::Builder::new().prefix("ssh-client-").tempdir()?;
        let private_key = dir.path().join("id_ed25519");
        keygen(&private_key, "onehem-test-client")?;
        let public_key = fs::read_to_string(private_key.with_extension("pub"))?
            .trim()
            .to_string();
        Ok(ClientIdentity {
            dir,
            private_key,
            public_key,
        })
    }

    /// The directory holding the key pair (a convenient place for a known_hosts file).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

/// One fake host: an `sshd` listening on `127.0.0.<index>:<port>`.
pub struct SshHost {
    /// The host's name as the cloud knows it (`host<index>`).
    pub name: String,
    /// Its loopback address (the first one, for an sshd serving several).
    pub addr: Ipv4Addr,
    /// Every address this sshd listens on (`addr` first), all on `port`.
    pub addrs: Vec<Ipv4Addr>,
    /// The port its sshd listens on (kept across restarts).
    pub port: u16,
    /// Its hook directory (`remote_hook_base_path` of this host).
    pub base_path: PathBuf,
    /// The host public key line (`ssh-ed25519 AAAA…`, without comment).
    pub host_key: String,
    dir: TempDir,
    config: PathBuf,
    child: Option<Child>,
}

impl SshHost {
    /// Starts a fake host on 127.0.0.`index` (use 2 and above; 127.0.0.1 is crowded) that
    /// accepts `identity`.
    pub fn start(index: u8, identity: &ClientIdentity) -> io::Result<SshHost> {
        SshHost::start_on(
            &format!("host{index}"),
            &[Ipv4Addr::new(127, 0, 0, index)],
            identity,
        )
    }

    /// Starts one sshd named `name` listening on every address of `addrs` (at most
    /// [`MAX_LISTEN_SOCKS`]) with one port for all, accepting `identity`.
    pub fn start_on(
        name: &str,
        addrs: &[Ipv4Addr],
        identity: &ClientIdentity,
    ) -> io::Result<SshHost> {
        let Some(&addr) = addrs.first() else {
            return Err(io::Error::other("an sshd needs at least one address"));
        };
        if addrs.len() > MAX_LISTEN_SOCKS {
            return Err(io::Error::other(format!(
                "{} addresses for one sshd; OpenSSH listens on at most {MAX_LISTEN_SOCKS}",
                addrs.len()
            )));
        }
        // sshd refuses to start without its privilege separation directory.
        let _ = fs::create_dir_all("/run/sshd");
        let dir = tempfile::Builder::new()
            .prefix(&format!("sshd-{name}-"))
            .tempdir()?;
        let host_key_path = dir.path().join("ssh_host_ed25519_key");
        keygen(&host_key_path, name)?;
        let host_key =
            public_key_without_comment(&fs::read_to_string(host_key_path.with_extension("pub"))?);
        fs::write(
            dir.path().join("authorized_keys"),
            format!("{}\n", identity.public_key),
        )?;
        let base_path = dir.path().join("hooks");
        fs::create_dir_all(&base_path)?;
        let mut host = SshHost {
            name: name.to_string(),
            addr,
            addrs: addrs.to_vec(),
            port: 0,
            base_path,
            host_key,
            config: dir.path().join("sshd_config"),
            dir,
            child: None,
        };
        // The port is chosen by binding port 0 and released for sshd, which cannot inherit a
        // listener; a port taken in between makes sshd fail at once, and another is tried.
        let mut last_error = None;
        for _ in 0..5 {
            host.port = free_port(addrs)?;
            match host.spawn() {
                Ok(()) => return Ok(host),
                Err(e) => last_error = Some(e),
            }
        }
        Err(last_error.unwrap_or_else(|| io::Error::other("sshd did not start")))
    }

    /// The temporary directory of this host (config, keys, log, hooks).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// `addr:port`.
    pub fn socket_addr(&self) -> SocketAddr {
        SocketAddr::from((self.addr, self.port))
    }

    /// The known_hosts line for this host, under its address and its name (`[x]:port` form).
    pub fn known_hosts_line(&self) -> String {
        format!(
            "[{}]:{},[{}]:{} {}",
            self.addr, self.port, self.name, self.port, self.host_key
        )
    }

    /// Whether the sshd process is running.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// The sshd log (errors only).
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("sshd.log")).unwrap_or_default()
    }

    /// Kills the sshd and every process it started (open sessions, their hooks), like a host
    /// that goes down. Idempotent.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if let Ok(pid) = i32::try_from(child.id()) {
            // Stop the listener first so that no new session is forked while the tree is
            // collected, then kill the sessions and what they started.
            let _ = kill(Pid::from_raw(pid), Signal::SIGSTOP);
            for p in descendants(pid) {
                let _ = kill(Pid::from_raw(p), Signal::SIGKILL);
            }
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Stops the sshd and every process it started with SIGSTOP, like a host that hangs: the
    /// kernel still completes TCP handshakes on its listening sockets, but nothing answers.
    /// [`stop`](Self::stop) or [`restart`](Self::restart) ends it.
    pub fn freeze(&mut self) {
        let Some(child) = self.child.as_ref() else {
            return;
        };
        if let Ok(pid) = i32::try_from(child.id()) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGSTOP);
            for p in descendants(pid) {
                let _ = kill(Pid::from_raw(p), Signal::SIGSTOP);
            }
        }
    }

    /// Starts the sshd again with the same host key and port.
    pub fn restart(&mut self) -> io::Result<()> {
        self.stop();
        let deadline = Instant::now() + START_TIMEOUT;
        // The port may linger briefly after the old listener died.
        loop {
            match self.spawn() {
                Ok(()) => return Ok(()),
                Err(e) if Instant::now() >= deadline => return Err(e),
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    fn spawn(&mut self) -> io::Result<()> {
        let d = self.dir.path();
        let listen: String = self
            .addrs
            .iter()
            .map(|a| format!("ListenAddress {a}:{}\n", self.port))
            .collect();
        let config = format!(
            "{listen}\
             HostKey {d}/ssh_host_ed25519_key\n\
             AuthorizedKeysFile {d}/authorized_keys\n\
             PidFile {d}/sshd.pid\n\
             UsePAM no\n\
             StrictModes no\n\
             PermitRootLogin yes\n\
             PubkeyAuthentication yes\n\
             PasswordAuthentication no\n\
             KbdInteractiveAuthentication no\n\
             UseDNS no\n\
             MaxSessions 100\n\
             MaxStartups 100:30:200\n\
             SetEnv SHLVL=5\n\
             LogLevel ERROR\n",
            d = d.display(),
        );
        fs::write(&self.config, config)?;
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(d.join("sshd.log"))?;
        let mut child = Command::new("/usr/sbin/sshd")
            .arg("-D")
            .arg("-e")
            .arg("-f")
            .arg(&self.config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .process_group(0)
            .spawn()?;
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = child.try_wait()? {
                return Err(io::Error::other(format!(
                    "sshd for {} exited with {status}: {}",
                    self.name,
                    self.log()
                )));
            }
            if TcpStream::connect_timeout(&self.socket_addr(), Duration::from_millis(200)).is_ok() {
                self.child = Some(child);
                return Ok(());
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(io::Error::other(format!(
                    "sshd for {} did not accept connections: {}",
                    self.name,
                    self.log()
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Arguments for a real `ssh` client to reach this host (`ssh <args> command`).
    pub fn ssh_args(&self, identity: &ClientIdentity, known_hosts: &Path) -> Vec<String> {
        vec![
            "-F".into(),
            "/dev/null".into(),
            "-i".into(),
            identity.private_key.display().to_string(),
            "-o".into(),
            format!("UserKnownHostsFile={}", known_hosts.display()),
            "-o".into(),
            "StrictHostKeyChecking=yes".into(),
            "-o".into(),
            "BatchMode=yes".into(),
            "-p".into(),
            self.port.to_string(),
            format!("root@{}", self.addr),
        ]
    }
}

impl Drop for SshHost {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One host of a [`SshFleet`]: a name and an address of its own, served by a shared sshd.
#[derive(Clone, Debug)]
pub struct FleetHost {
    /// Its name as the cloud knows it (`fleet0000`, `fleet0001`…).
    pub name: String,
    /// Its loopback address, `127.99.x.y`.
    pub addr: Ipv4Addr,
    /// The port of the sshd serving it.
    pub port: u16,
    /// Index of that sshd in [`SshFleet::sshds`].
    pub sshd: usize,
    /// Its hook directory, shared by the hosts of one sshd.
    pub base_path: PathBuf,
}

/// Many fake hosts served by few sshd processes (see the module documentation).
pub struct SshFleet {
    pub hosts: Vec<FleetHost>,
    pub sshds: Vec<SshHost>,
}

impl SshFleet {
    /// The most hosts a fleet can have: 250 addresses in each of 254 `127.99.x.0/24` nets.
    pub const MAX_HOSTS: usize = 250 * 254;

    /// Starts `count` hosts on `127.99.x.y`, [`MAX_LISTEN_SOCKS`] per sshd, except those whose
    /// index is in `alone`: each of them gets an sshd of its own, so that it can be stopped
    /// while its neighbours keep running.
    pub fn start(count: usize, identity: &ClientIdentity, alone: &[usize]) -> io::Result<SshFleet> {
        if count > SshFleet::MAX_HOSTS {
            return Err(io::Error::other(format!(
                "{count} hosts; a fleet holds at most {}",
                SshFleet::MAX_HOSTS
            )));
        }
        let mut groups: Vec<Vec<usize>> = Vec::new();
        let mut shared: Vec<usize> = Vec::new();
        for i in 0..count {
            if alone.contains(&i) {
                groups.push(vec![i]);
            } else {
                shared.push(i);
                if shared.len() == MAX_LISTEN_SOCKS {
                    groups.push(std::mem::take(&mut shared));
                }
            }
        }
        if !shared.is_empty() {
            groups.push(shared);
        }
        let mut hosts: Vec<Option<FleetHost>> = vec![None; count];
        let mut sshds = Vec::with_capacity(groups.len());
        for (g, members) in groups.iter().enumerate() {
            let addrs: Vec<Ipv4Addr> = members.iter().map(|i| SshFleet::address(*i)).collect();
            let sshd = SshHost::start_on(&format!("fleet-sshd{g}"), &addrs, identity)?;
            for (i, addr) in members.iter().zip(&addrs) {
                hosts[*i] = Some(FleetHost {
                    name: format!("fleet{i:04}"),
                    addr: *addr,
                    port: sshd.port,
                    sshd: g,
                    base_path: sshd.base_path.clone(),
                });
            }
            sshds.push(sshd);
        }
        Ok(SshFleet {
            hosts: hosts.into_iter().flatten().collect(),
            sshds,
        })
    }

    /// The address of host `index`: `127.99.(1 + index / 250).(1 + index % 250)`.
    pub fn address(index: usize) -> Ipv4Addr {
        let net = u8::try_from(1 + index / 250).unwrap_or(u8::MAX);
        let host = u8::try_from(1 + index % 250).unwrap_or(u8::MAX);
        Ipv4Addr::new(127, FLEET_NET, net, host)
    }

    /// Writes a known_hosts file with one line per host (its address and its name, each with
    /// the port, and the key of the sshd serving it).
    pub fn write_known_hosts(&self, path: &Path) -> io::Result<()> {
        let mut text = String::new();
        for h in &self.hosts {
            let _ = writeln!(
                text,
                "[{}]:{},[{}]:{} {}",
                h.addr, h.port, h.name, h.port, self.sshds[h.sshd].host_key
            );
        }
        fs::write(path, text)
    }

    /// Copies `source` into every hook directory as `name`, executable.
    pub fn install_hook(&self, source: &Path, name: &str) -> io::Result<()> {
        use std::os::unix::fs::PermissionsExt;
        for sshd in &self.sshds {
            let target = sshd.base_path.join(name);
            fs::copy(source, &target)?;
            fs::set_permissions(&target, fs::Permissions::from_mode(0o755))?;
        }
        Ok(())
    }

    /// Stops the sshd serving host `index` and everything it started, like a host that goes
    /// down (every host that sshd serves goes down with it: start the fleet with `index` in
    /// `alone` to stop it by itself).
    pub fn stop_host(&mut self, index: usize) {
        if let Some(h) = self.hosts.get(index) {
            self.sshds[h.sshd].stop();
        }
    }

    /// Freezes the sshd serving host `index` (see [`SshHost::freeze`]; same caveat as
    /// [`stop_host`](Self::stop_host)).
    pub fn freeze_host(&mut self, index: usize) {
        if let Some(h) = self.hosts.get(index) {
            self.sshds[h.sshd].freeze();
        }
    }

    /// Starts the sshd serving host `index` again, with the same key and port.
    pub fn restart_host(&mut self, index: usize) -> io::Result<()> {
        match self.hosts.get(index) {
            Some(h) => self.sshds[h.sshd].restart(),
            None => Err(io::Error::other(format!("no host {index} in the fleet"))),
        }
    }
}

/// Writes a known_hosts file listing `hosts`.
pub fn write_known_hosts(path: &Path, hosts: &[&SshHost]) -> io::Result<()> {
    let mut text = String::new();
    for h in hosts {
        let _ = writeln!(text, "{}", h.known_hosts_line());
    }
    fs::write(path, text)
}

fn keygen(path: &Path, comment: &str) -> io::Result<()> {
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
        .arg(path)
        .stdin(Stdio::null())
        .output()?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "ssh-keygen failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    Ok(())
}

fn public_key_without_comment(line: &str) -> String {
    line.split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

/// A port free on every address of `addrs` (the first lets the kernel choose; the others are
/// checked by binding it too).
fn free_port(addrs: &[Ipv4Addr]) -> io::Result<u16> {
    let Some(&first) = addrs.first() else {
        return Err(io::Error::other("no address"));
    };
    let mut last_error = None;
    for _ in 0..20 {
        let listener = TcpListener::bind((first, 0))?;
        let port = listener.local_addr()?.port();
        let others: io::Result<Vec<TcpListener>> = addrs[1..]
            .iter()
            .map(|a| TcpListener::bind((*a, port)))
            .collect();
        match others {
            Ok(_) => return Ok(port),
            Err(e) => last_error = Some(e),
        }
    }
    Err(last_error.unwrap_or_else(|| io::Error::other("no common free port")))
}

/// Every process below `root` in the parent tree, read from /proc.
fn descendants(root: i32) -> Vec<i32> {
    let mut parent_of = Vec::new();
    if let Ok(entries) = fs::read_dir("/proc") {
        for e in entries.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
                continue;
            };
            let Ok(stat) = fs::read_to_string(e.path().join("stat")) else {
                continue;
            };
            // The fields after the parenthesised command name: state, ppid, ...
            let Some((_, rest)) = stat.rsplit_once(") ") else {
                continue;
            };
            if let Some(ppid) = rest.split(' ').nth(1).and_then(|s| s.parse::<i32>().ok()) {
                parent_of.push((pid, ppid));
            }
        }
    }
    let mut found = vec![root];
    let mut i = 0;
    while i < found.len() {
        let p = found[i];
        for &(child, parent) in &parent_of {
            if parent == p && !found.contains(&child) {
                found.push(child);
            }
        }
        i += 1;
    }
    found.remove(0);
    found
}

/// The built `onehem-agent` binary, which the fake hosts run; fails with a clear message when
/// it was not built (`cargo build -p onehem-agent`, or `scripts/test`).
pub fn agent_binary() -> io::Result<PathBuf> {
    let path = bin_dir().join("onehem-agent");
    if path.is_file() {
        Ok(path)
    } else {
        Err(io::Error::other(format!(
            "{} is missing: build the binaries first (cargo build --workspace --bins, or scripts/test)",
            path.display()
        )))
    }
}
