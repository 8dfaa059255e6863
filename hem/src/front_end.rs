//! How the HEM reaches the front-end's XML-RPC API: the endpoint and the credentials file, from
//! the configuration (`one_xmlrpc`, `one_auth`) or else from ONE_XMLRPC / ONE_AUTH and the
//! OpenNebula default files (reference §7.1).
//!
//! Local hooks get the same pair as `ONE_XMLRPC` and `ONE_AUTH`, so that a hook calling back
//! into the API (as `one-autostart` does) talks to the front-end the HEM talks to, whatever
//! environment the HEM was started with. Remote hooks do not: `ONE_AUTH` names a file on this
//! machine, and an endpoint such as `http://localhost:2633/RPC2` means another machine on a
//! host. Both remote modes behave alike, so a hook does not depend on the executor mode.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use one_client::ClientError;

/// The front-end endpoint and the credentials file the HEM uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FrontEndAccess {
    pub endpoint: String,
    /// A file holding `user:password`; absolute, so a hook that changes directory still finds it.
    pub auth_file: PathBuf,
}

impl FrontEndAccess {
    /// The configured values where given, the OpenNebula lookup order otherwise. Fails when no
    /// credentials file is named and none of the default ones exists.
    pub fn resolve(
        endpoint: Option<&str>,
        auth_file: Option<&Path>,
    ) -> Result<FrontEndAccess, ClientError> {
        let endpoint = match endpoint {
            Some(e) => e.to_string(),
            None => one_client::endpoint_from_env(),
        };
        let auth_file = match auth_file {
            Some(p) => p.to_path_buf(),
            None => one_client::auth_file_from_env()?,
        };
        let auth_file = std::path::absolute(&auth_file).unwrap_or(auth_file);
        Ok(FrontEndAccess {
            endpoint,
            auth_file,
        })
    }

    /// The session string in the credentials file.
    pub fn session(&self) -> Result<String, ClientError> {
        one_client::session_from_file(&self.auth_file)
    }

    /// The environment local hooks get on top of the HEM's own.
    pub fn hook_env(&self) -> Vec<(String, OsString)> {
        vec![
            ("ONE_XMLRPC".to_string(), OsString::from(&self.endpoint)),
            (
                "ONE_AUTH".to_string(),
                self.auth_file.clone().into_os_string(),
            ),
        ]
    }
}
