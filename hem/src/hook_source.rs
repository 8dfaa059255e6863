//! Hook definitions from the front-end over XML-RPC (`one.hookpool.info`, `one.hook.info`).

use std::time::Duration;

use one_client::{Client, ClientError};
use one_proto::hook::{Hook, pool_from_xml_lenient};

use crate::config::Config;
use crate::front_end::FrontEndAccess;
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
    /// A client of `access`'s endpoint with the session in its credentials file.
    pub fn new(access: &FrontEndAccess) -> Result<Self, ClientError> {
        Ok(XmlRpcHookSource {
            client: Client::with_timeout(&access.endpoint, &access.session()?, CALL_TIMEOUT),
        })
    }
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

impl XmlRpcHookSource {
    /// The front-end's endpoint and credentials (the configuration, else ONE_XMLRPC / ONE_AUTH,
    /// else the default files) and the hook source reading it.
    pub fn from_config(config: &Config) -> anyhow::Result<(FrontEndAccess, XmlRpcHookSource)> {
        use anyhow::Context as _;
        const FRONT_END: &str = "cannot set up the front-end client (one_xmlrpc / one_auth in the configuration, or ONE_XMLRPC / ONE_AUTH)";
        let access =
            FrontEndAccess::resolve(config.one_xmlrpc.as_deref(), config.one_auth.as_deref())
                .context(FRONT_END)?;
        let source = XmlRpcHookSource::new(&access).context(FRONT_END)?;
        tracing::info!(endpoint = %access.endpoint, auth = %access.auth_file.display(), "front-end endpoint");
        Ok((access, source))
    }
}
