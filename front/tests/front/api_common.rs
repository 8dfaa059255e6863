//! Test fixture: a real oned-lite started in-process through `run` on 127.0.0.1:0, with a temp
//! var dir, and the Python interpreter used for the interoperability scripts.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread::JoinHandle;

use one_client::Client;
use oned_lite::Config;

/// A configuration without HM_MAD, so no driver is spawned.
pub const NO_DRIVER_CONF: &str = "HOOK_LOG_CONF = [ LOG_RETENTION = 20 ]\n";

pub struct Front {
    pub endpoint: String,
    pub auth_file: PathBuf,
    pub session: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<anyhow::Result<()>>>,
}

impl Front {
    /// Starts a front-end on `var_dir` with configuration text `conf`.
    pub fn start(var_dir: &Path, conf: &str) -> Front {
        let config =
            Config::from_text(conf, Path::new("test-oned.conf")).expect("test configuration");
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let dir = var_dir.to_path_buf();
        let thread = std::thread::spawn(move || -> anyhow::Result<()> {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()?;
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
                addr_tx.send(listener.local_addr()?)?;
                oned_lite::run(config, dir, listener, async move {
                    let _ = stop_rx.await;
                })
                .await
            })
        });
        let addr = addr_rx
            .recv()
            .expect("the front-end did not bind its listener");
        let endpoint = format!("http://{addr}/RPC2");
        let auth_file = var_dir.join("one_auth");
        // The listener is bound before the account exists; wait (bounded) until oneadmin can log in.
        let mut session = String::new();
        for _ in 0..400 {
            if let Ok(text) = std::fs::read_to_string(&auth_file) {
                let s = text.trim_end().to_string();
                if !s.is_empty()
                    && Client::new(&endpoint, &s)
                        .call("one.system.version", vec![])
                        .is_ok()
                {
                    session = s;
                    break;
                }
            }
            if thread.is_finished() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(25));
        }
        assert!(
            !session.is_empty(),
            "oned-lite did not come up at {endpoint}"
        );
        Front {
            endpoint,
            auth_file,
            session,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    pub fn client(&self) -> Client {
        Client::new(&self.endpoint, &self.session)
    }

    /// Stops the front-end and returns what `run` returned.
    pub fn stop(mut self) -> anyhow::Result<()> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> anyhow::Result<()> {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        match self.thread.take() {
            Some(t) => t
                .join()
                .map_err(|_| anyhow::anyhow!("the front-end thread panicked"))?,
            None => Ok(()),
        }
    }
}

impl Drop for Front {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}

/// The interpreter with pyone (`one_e2e::stack::python`); a test without it fails saying how
/// to get it.
pub fn python() -> PathBuf {
    one_e2e::stack::python().unwrap_or_else(|e| panic!("{e:#}"))
}

/// Runs `front/tests/py/<script>` against `front` and returns its stdout; fails the test with
/// the script's output when it exits non-zero.
pub fn run_py(front: &Front, script: &str) -> String {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py");
    let out = Command::new(python())
        .arg(dir.join(script))
        .current_dir(&dir)
        .env("PYTHONPATH", &dir)
        .env("ONE_XMLRPC", &front.endpoint)
        .env("ONE_AUTH", &front.auth_file)
        .env_remove("ONEAPI_PROTOCOL")
        .output()
        .expect("cannot start the Python interpreter");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{script} failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}
