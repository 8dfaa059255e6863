//! oned-lite: the front-end. `main` parses flags and calls [`run`].

pub mod api;
pub mod call;
pub mod cli;
pub mod cloud;
pub mod config;
pub mod connections;
pub mod db;
pub mod driver_link;
pub mod events;
pub mod fd_limit;
pub mod hook_log;
pub mod hook_pool;
pub mod install_paths;
pub mod login_throttle;
pub mod metrics;
pub mod schema;
pub mod server;
pub mod sim_config;
pub mod users;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use anyhow::Context as _;

pub use config::Config;

/// Everything a call handler needs; shared by every connection.
pub struct AppState {
    pub config: config::Config,
    pub db: db::Db,
    pub bus: events::EventBus,
    pub cloud: cloud::Cloud,
    /// Users who authenticated recently.
    pub credentials: users::Credentials,
    /// Failed logins, by user name and by client address.
    pub login_throttle: login_throttle::LoginThrottle,
    /// Source of the REQ_ID stored with a lock.
    request_ids: AtomicI64,
}

impl AppState {
    /// The state of a front-end over already opened parts (used by `run` and by tests).
    pub fn new(
        config: config::Config,
        db: db::Db,
        bus: events::EventBus,
        cloud: cloud::Cloud,
    ) -> AppState {
        let seed = i64::from(rand::random::<u16>()) * 1000;
        let login_throttle = login_throttle::LoginThrottle::new(config.login_throttle);
        AppState {
            login_throttle,
            config,
            db,
            bus,
            cloud,
            credentials: users::Credentials::default(),
            request_ids: AtomicI64::new(seed),
        }
    }

    /// A fresh request id (oned stores the id of the request that took a lock).
    pub fn next_request_id(&self) -> i64 {
        self.request_ids.fetch_add(1, Ordering::Relaxed)
    }
}

/// Runs the front-end until `shutdown` completes: opens the database in `var_dir`, bootstraps
/// oneadmin, starts the driver link and the cloud timers, and serves XML-RPC on `listener`.
pub async fn run(
    config: Config,
    var_dir: PathBuf,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    one_wal::private_files::create_dir_all(&var_dir).context("cannot create the var dir")?;
    let db_path = config.db_path(&var_dir);
    let db = db::Db::open(&db_path).context("cannot open the database")?;
    users::bootstrap(&db, &var_dir).context("cannot bootstrap the oneadmin account")?;

    let bus = events::EventBus::new(db.clone());
    // Bound before the driver starts, so a bad or busy address stops the start at once; held
    // until the end of `run`.
    let _metrics_endpoint = match config.metrics_listen {
        None => None,
        Some(addr) => {
            let listener = one_metrics::bind(addr).context("METRICS_LISTEN")?;
            let source = Arc::new(metrics::OnedSource { bus: bus.clone() });
            Some(
                one_metrics::MetricsServer::start(listener, source)
                    .with_context(|| format!("cannot start the metrics endpoint on {addr}"))?,
            )
        }
    };
    let cloud = cloud::Cloud::new(db.clone(), bus.clone(), &config)
        .context("cannot load the simulated cloud")?;
    let driver = driver_link::start(
        &config,
        &var_dir,
        db.clone(),
        bus.clone(),
        config.log_retention,
    )
    .context("cannot start the hook manager driver link")?;
    cloud.start();

    let state = Arc::new(AppState::new(config, db, bus, cloud));
    tracing::info!(
        address = %listener.local_addr().map(|a| a.to_string()).unwrap_or_default(),
        db = %db_path.display(),
        "oned-lite serving XML-RPC"
    );
    // The listener is bound and everything behind it started: connections queue in the backlog
    // until the accept loop below takes them.
    one_notify::ready();
    let served = server::serve(state.clone(), listener, shutdown).await;

    state.cloud.stop().await;
    driver.stop().await;
    served
}
