//! Hook definitions from the front-end over XML-RPC (`one.hookpool.info`, `one.hook.info`).

use std::path::Path;
use std::time::Duration;

use one_client::{Client, ClientError};
use one_proto::hook::{Hook, pool_from_xml_lenient};

use crate::hook_map::HookSpec;
use crate::ingest::HookSource;

/// Bound on one XML-RPC call, so a hung front-end cannot stall event processing for long.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// The front-end's hook pool.
#[derive(Clone, Debug)]
pub struct XmlRpcHookSource {
    client: Client,
}

impl XmlRpcHookSource {
    /// The endpoint and credentials come from the configuration when given there, else from
    /// ONE_XMLRPC / ONE_AUTH and the OpenNebula default files.
    pub fn new(endpoint: Option<&str>, auth_file: Option<&Path>) -> Result<Self, ClientError> {
        let endpoint = match endpoint {
            Some(e) => e.to_string(),
            None => one_client::endpoint_from_env(),
        };
        let session = match auth_file {
            Some(path) => read_session(path)?,
            None => one_client::session_from_env()?,
        };
        Ok(XmlRpcHookSource {
            client: Client::with_timeout(&endpoint, &session, CALL_TIMEOUT),
        })
    }

    pub fn endpoint(&self) -> &str {
        self.client.endpoint()
    }
}

fn read_session(path: &Path) -> Result<String, ClientError> {
    let auth = |message: String| ClientError::Auth {
        path: path.to_path_buf(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| auth(e.to_string()))?;
    let session = text.lines().next().unwrap_or("").trim().to_string();
    if session.is_empty() {
        return Err(auth("the file is empty".into()));
    }
    Ok(session)
}

fn spec_or_log(hook: &Hook) -> Option<HookSpec> {
    match HookSpec::from_hook(hook) {
        Ok(spec) => Some(spec),
        Err(e) => {
            tracing::error!(hook_id = hook.id, "Error loading hooks. {e}");
            None
        }
    }
}

impl HookSource for XmlRpcHookSource {
    fn pool(&self) -> Result<Vec<HookSpec>, String> {
        let xml = self.client.hookpool_info().map_err(|e| e.to_string())?;
        let (hooks, errors) = pool_from_xml_lenient(&xml).map_err(|e| e.to_string())?;
        for e in errors {
            tracing::error!(error = %e, "Error loading hooks. Unreadable hook skipped");
        }
        Ok(hooks.iter().filter_map(spec_or_log).collect())
    }

    fn hook(&self, id: i64) -> Result<Option<HookSpec>, String> {
        let xml = self.client.hook_info(id).map_err(|e| e.to_string())?;
        let hook = Hook::from_xml(&xml).map_err(|e| e.to_string())?;
        Ok(spec_or_log(&hook))
    }
}
