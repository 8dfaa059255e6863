//! Blocking XML-RPC client for oned and oned-lite.
//!
//! [`Client::from_env`] follows the OpenNebula conventions: the endpoint comes from
//! `$ONE_XMLRPC`, else `~/.one/one_endpoint`, else `/var/lib/one/.one/one_endpoint`, else
//! `http://localhost:2633/RPC2`; the session from the file named by `$ONE_AUTH`, else
//! `~/.one/one_auth`, else `/var/lib/one/.one/one_auth`. Connections are kept alive between calls.

use std::path::{Path, PathBuf};
use std::time::Duration;

pub use one_proto::xmlrpc::Value;
use one_proto::xmlrpc::{self, MethodCall, Response};

/// The endpoint used when nothing else names one.
pub const DEFAULT_ENDPOINT: &str = "http://localhost:2633/RPC2";
/// Largest response body read (a big hook log can be tens of megabytes).
pub const MAX_RESPONSE_BYTES: u64 = 1 << 30;
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with a failure array; `message` starts with `[method] `.
    #[error("{message}")]
    Api { code: i32, message: String },
    /// The server answered with an XML-RPC fault (bad parameters, unknown method).
    #[error("XML-RPC fault {code}: {message}")]
    Fault { code: i32, message: String },
    /// The server could not be reached or the connection broke.
    #[error("cannot reach {endpoint}: {message}")]
    Transport { endpoint: String, message: String },
    /// The server answered with an HTTP error status.
    #[error("{endpoint} answered HTTP {status}")]
    Http { endpoint: String, status: u16 },
    /// The response is not the XML-RPC the OpenNebula API sends.
    #[error("invalid response from {endpoint}: {message}")]
    Protocol { endpoint: String, message: String },
    /// The credentials file cannot be read.
    #[error("cannot read credentials from {path}: {message}")]
    Auth { path: PathBuf, message: String },
}

/// A connection to one endpoint with one session.
#[derive(Clone)]
pub struct Client {
    agent: ureq::Agent,
    endpoint: String,
    session: String,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The session holds a password and is never printed.
        f.debug_struct("Client")
            .field("endpoint", &self.endpoint)
            .finish()
    }
}

fn home_one(file: &str) -> Option<PathBuf> {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(|h| PathBuf::from(h).join(".one").join(file))
}

fn first_line_of(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let line = text.lines().next().unwrap_or("").trim().to_string();
    (!line.is_empty()).then_some(line)
}

/// The endpoint per the OpenNebula lookup order.
pub fn endpoint_from_env() -> String {
    if let Some(e) = std::env::var("ONE_XMLRPC")
        .ok()
        .filter(|e| !e.trim().is_empty())
    {
        return e.trim().to_string();
    }
    let candidates = [
        home_one("one_endpoint"),
        Some(PathBuf::from("/var/lib/one/.one/one_endpoint")),
    ];
    candidates
        .into_iter()
        .flatten()
        .find_map(|p| first_line_of(&p))
        .unwrap_or_else(|| DEFAULT_ENDPOINT.to_string())
}

/// The credentials file per the OpenNebula lookup order: the file named by `$ONE_AUTH`, else the
/// first of `~/.one/one_auth` and `/var/lib/one/.one/one_auth` that exists.
pub fn auth_file_from_env() -> Result<PathBuf, ClientError> {
    if let Some(p) = std::env::var_os("ONE_AUTH").filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    let candidates = [
        home_one("one_auth"),
        Some(PathBuf::from("/var/lib/one/.one/one_auth")),
    ];
    let candidates: Vec<PathBuf> = candidates.into_iter().flatten().collect();
    if let Some(found) = candidates.iter().find(|p| p.exists()) {
        return Ok(found.clone());
    }
    let looked = candidates
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ");
    Err(ClientError::Auth {
        path: home_one("one_auth").unwrap_or_else(|| PathBuf::from("~/.one/one_auth")),
        message: format!("ONE_AUTH is not set and no one_auth file exists (looked for {looked})"),
    })
}

/// The session string held in a credentials file (trailing whitespace stripped).
pub fn session_from_file(path: &Path) -> Result<String, ClientError> {
    let text = std::fs::read_to_string(path).map_err(|e| ClientError::Auth {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    let session = text.trim_end().to_string();
    if session.is_empty() {
        return Err(ClientError::Auth {
            path: path.to_path_buf(),
            message: "the file is empty".to_string(),
        });
    }
    Ok(session)
}

/// The session string per the OpenNebula lookup order (trailing whitespace stripped).
pub fn session_from_env() -> Result<String, ClientError> {
    session_from_file(&auth_file_from_env()?)
}

impl Client {
    /// A client for the endpoint and session found through the environment.
    pub fn from_env() -> Result<Client, ClientError> {
        Ok(Client::new(&endpoint_from_env(), &session_from_env()?))
    }

    /// A client for `endpoint` (e.g. `http://127.0.0.1:2633/RPC2`) with session `user:password`.
    pub fn new(endpoint: &str, session: &str) -> Client {
        Client::with_timeout(endpoint, session, DEFAULT_TIMEOUT)
    }

    /// Same as [`Client::new`] with a bound on each whole call.
    pub fn with_timeout(endpoint: &str, session: &str, timeout: Duration) -> Client {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(timeout))
            .build()
            .into();
        Client {
            agent,
            endpoint: endpoint.to_string(),
            session: session.to_string(),
        }
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The user name of the session.
    pub fn user(&self) -> &str {
        self.session.split(':').next().unwrap_or("")
    }

    /// Calls `method` with the session prepended to `params`; returns the value of a success
    /// array (its second element).
    pub fn call(&self, method: &str, params: Vec<Value>) -> Result<Value, ClientError> {
        let mut all = Vec::with_capacity(params.len() + 1);
        all.push(Value::String(self.session.clone()));
        all.extend(params);
        match self.raw_call(method, all)? {
            Response::Fault { code, message } => Err(ClientError::Fault { code, message }),
            Response::Value(v) => self.unpack(v),
        }
    }

    /// Sends exactly `params` (no session added) and returns the parsed response.
    pub fn raw_call(&self, method: &str, params: Vec<Value>) -> Result<Response, ClientError> {
        let body = xmlrpc::format_call(&MethodCall {
            method: method.to_string(),
            params,
        });
        let transport = |message: String| ClientError::Transport {
            endpoint: self.endpoint.clone(),
            message,
        };
        let mut response = self
            .agent
            .post(&self.endpoint)
            .header("Content-Type", "text/xml")
            .send(body.as_bytes())
            .map_err(|e| transport(e.to_string()))?;
        let status = response.status().as_u16();
        let bytes = response
            .body_mut()
            .with_config()
            .limit(MAX_RESPONSE_BYTES)
            .read_to_vec()
            .map_err(|e| transport(e.to_string()))?;
        if status != 200 {
            return Err(ClientError::Http {
                endpoint: self.endpoint.clone(),
                status,
            });
        }
        xmlrpc::parse_response(&bytes).map_err(|e| self.protocol(e.to_string()))
    }

    fn protocol(&self, message: String) -> ClientError {
        ClientError::Protocol {
            endpoint: self.endpoint.clone(),
            message,
        }
    }

    fn unpack(&self, v: Value) -> Result<Value, ClientError> {
        let Value::Array(items) = v else {
            return Err(self.protocol(format!("expected a response array, got {}", v.type_name())));
        };
        let mut items = items.into_iter();
        match items.next() {
            Some(Value::Bool(true)) => items
                .next()
                .ok_or_else(|| self.protocol("success array without a value".to_string())),
            Some(Value::Bool(false)) => {
                let message = match items.next() {
                    Some(Value::String(s)) => s,
                    _ => return Err(self.protocol("failure array without a message".to_string())),
                };
                let code = items
                    .next()
                    .and_then(|c| c.as_i64())
                    .and_then(|c| i32::try_from(c).ok())
                    .unwrap_or(0);
                Err(ClientError::Api { code, message })
            }
            _ => Err(self.protocol("response array does not start with a boolean".to_string())),
        }
    }

    fn call_int(&self, method: &str, params: Vec<Value>) -> Result<i64, ClientError> {
        let v = self.call(method, params)?;
        v.as_i64().ok_or_else(|| {
            self.protocol(format!(
                "{method} returned {} instead of an int",
                v.type_name()
            ))
        })
    }

    fn call_string(&self, method: &str, params: Vec<Value>) -> Result<String, ClientError> {
        match self.call(method, params)? {
            Value::String(s) => Ok(s),
            v => Err(self.protocol(format!(
                "{method} returned {} instead of a string",
                v.type_name()
            ))),
        }
    }

    /// `one.hook.allocate(template)`: the new hook id.
    pub fn hook_allocate(&self, template: &str) -> Result<i64, ClientError> {
        self.call_int("one.hook.allocate", vec![template.into()])
    }

    /// `one.hook.info(id, false)`: the HOOK document with its HOOKLOG.
    pub fn hook_info(&self, id: i64) -> Result<String, ClientError> {
        self.call_string("one.hook.info", vec![int(id), Value::Bool(false)])
    }

    /// `one.hookpool.info(-1, -1, -1)`: the HOOK_POOL document.
    pub fn hookpool_info(&self) -> Result<String, ClientError> {
        self.call_string(
            "one.hookpool.info",
            vec![Value::Int(-1), Value::Int(-1), Value::Int(-1)],
        )
    }

    /// `one.hooklog.info(min_ts, max_ts, hook_id, rc)`: the HOOKLOG document. Negative values
    /// disable a filter; rc -1 selects failures, 1 successes, 0 everything.
    pub fn hooklog_info(
        &self,
        min_ts: i64,
        max_ts: i64,
        hook_id: i64,
        rc: i64,
    ) -> Result<String, ClientError> {
        self.call_string(
            "one.hooklog.info",
            vec![int(min_ts), int(max_ts), int(hook_id), int(rc)],
        )
    }

    /// `one.hook.retry(id, exec_id)`.
    pub fn hook_retry(&self, id: i64, exec_id: i64) -> Result<i64, ClientError> {
        self.call_int("one.hook.retry", vec![int(id), int(exec_id)])
    }

    /// `one.hook.update(id, template, merge ? 1 : 0)`.
    pub fn hook_update(
        &self,
        id: i64,
        template: &str,
        merge: UpdateMode,
    ) -> Result<i64, ClientError> {
        let mode = match merge {
            UpdateMode::Replace => 0,
            UpdateMode::Merge => 1,
        };
        self.call_int(
            "one.hook.update",
            vec![int(id), template.into(), Value::Int(mode)],
        )
    }

    /// `one.hook.delete(id)`.
    pub fn hook_delete(&self, id: i64) -> Result<i64, ClientError> {
        self.call_int("one.hook.delete", vec![int(id)])
    }

    /// `one.hook.rename(id, name)`.
    pub fn hook_rename(&self, id: i64, name: &str) -> Result<i64, ClientError> {
        self.call_int("one.hook.rename", vec![int(id), name.into()])
    }

    /// `one.hook.lock(id, level, false)`; level 1 USE, 2 MANAGE, 3 ADMIN, 4 ALL.
    pub fn hook_lock(&self, id: i64, level: i64) -> Result<i64, ClientError> {
        self.call_int(
            "one.hook.lock",
            vec![int(id), int(level), Value::Bool(false)],
        )
    }

    /// `one.hook.unlock(id)`.
    pub fn hook_unlock(&self, id: i64) -> Result<i64, ClientError> {
        self.call_int("one.hook.unlock", vec![int(id)])
    }
}

/// How `one.hook.update` applies the new text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpdateMode {
    Replace,
    Merge,
}

/// An integer parameter as `<i4>` when it fits, as oned's signatures expect.
fn int(v: i64) -> Value {
    match i32::try_from(v) {
        Ok(i) => Value::Int(i),
        Err(_) => Value::I8(v),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpListener;

    /// A one-shot HTTP server answering every request on one connection with `bodies` in turn.
    fn serve(bodies: Vec<String>) -> (String, std::thread::JoinHandle<Vec<String>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let handle = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut requests = Vec::new();
            for body in bodies {
                let mut buf = Vec::new();
                let mut byte = [0u8; 1];
                while !buf.ends_with(b"\r\n\r\n") {
                    s.read_exact(&mut byte).unwrap();
                    buf.push(byte[0]);
                }
                let head = String::from_utf8(buf).unwrap();
                let len: usize = head
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().parse().unwrap())
                    })
                    .unwrap();
                let mut req = vec![0u8; len];
                s.read_exact(&mut req).unwrap();
                requests.push(String::from_utf8(req).unwrap());
                write!(
                    s,
                    "HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: {}\r\n\r\n{}",
                    body.len(),
                    body
                )
                .unwrap();
            }
            requests
        });
        (format!("http://{addr}/RPC2"), handle)
    }

    #[test]
    fn maps_success_failure_and_fault_over_one_connection() {
        let ok = xmlrpc::format_response(&Value::Array(vec![
            Value::Bool(true),
            Value::Int(7),
            Value::Int(0),
        ]));
        let fail = xmlrpc::format_response(&Value::Array(vec![
            Value::Bool(false),
            Value::String("[one.hook.info] Error getting hook [9].".into()),
            Value::Int(1024),
            Value::Int(9),
            Value::I8(-1),
        ]));
        let fault = xmlrpc::format_fault(-501, "bad type");
        let (endpoint, server) = serve(vec![ok, fail, fault]);
        let c = Client::new(&endpoint, "oneadmin:pw");
        assert_eq!(c.hook_allocate("NAME=x").unwrap(), 7);
        match c.hook_info(9) {
            Err(ClientError::Api {
                code: 1024,
                message,
            }) => assert_eq!(message, "[one.hook.info] Error getting hook [9]."),
            other => panic!("unexpected {other:?}"),
        }
        assert!(matches!(
            c.hook_delete(1),
            Err(ClientError::Fault { code: -501, .. })
        ));
        let requests = server.join().unwrap();
        assert!(requests[0].contains("<methodName>one.hook.allocate</methodName>"));
        assert!(requests[0].contains("<string>oneadmin:pw</string>"));
        assert!(requests[1].contains("<i4>9</i4>"));
    }

    #[test]
    fn transport_errors_are_distinct() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let c = Client::with_timeout(
            &format!("http://{addr}/RPC2"),
            "a:b",
            Duration::from_secs(5),
        );
        assert!(matches!(
            c.hookpool_info(),
            Err(ClientError::Transport { .. })
        ));
    }

    #[test]
    fn session_comes_from_one_auth() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("auth");
        std::fs::write(&path, "oneadmin:secret \n").unwrap();
        // Only this test touches ONE_AUTH.
        unsafe_env_set("ONE_AUTH", &path);
        assert_eq!(session_from_env().unwrap(), "oneadmin:secret");
    }

    #[allow(unsafe_code)]
    fn unsafe_env_set(key: &str, value: &Path) {
        // SAFETY: no other thread of this test binary reads or writes ONE_AUTH.
        unsafe { std::env::set_var(key, value) }
    }
}
