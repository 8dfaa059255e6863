//! The hook log: the result body the HEM sends for every execution (reference §4.7, §8.7), the
//! `HOOK_EXECUTION_RECORD` oned wraps around it (§4.3, §6.4) and the `HOOKLOG` list.
//!
//! We escape ARGUMENTS and COMMAND, which the reference writes raw (so its records with `<` or
//! `&` in them are dropped by oned), and add `<EXECUTION_UID>` last (ARCHITECTURE.md "Execution
//! uid"), which reference readers ignore. The readers accept the reference's unescaped form too.

use std::borrow::Cow;

use crate::encoding::{b64_mime, b64_mime_decode, xml_escape};
use crate::event::{EventError, push_fragment};
use crate::xml_read::{self, Node, RawRule, Shape};

/// Why a result body, record or hook log cannot be built or read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogError {
    /// The record would not be well-formed XML, so oned would drop it (§6.4 step 3).
    #[error("record {execution_id} of hook {hook_id} is not well-formed XML: {reason}")]
    NotWellFormed {
        hook_id: i64,
        execution_id: i64,
        reason: String,
    },
    /// No element of the expected name.
    #[error("expected a <{expected}> element, found {found}")]
    NotALog {
        expected: &'static str,
        found: String,
    },
    /// A mandatory element is missing.
    #[error("<{element}> is missing")]
    Missing { element: &'static str },
    /// An element holds a value it cannot hold.
    #[error("<{element}> has an invalid value {value:?}: {reason}")]
    Invalid {
        element: &'static str,
        value: String,
        reason: &'static str,
    },
}

impl From<EventError> for LogError {
    fn from(e: EventError) -> Self {
        match e {
            EventError::NotAMessage { expected, found } => LogError::NotALog { expected, found },
            EventError::Missing { element } => LogError::Missing { element },
            EventError::Invalid {
                element,
                value,
                reason,
            } => LogError::Invalid {
                element,
                value,
                reason,
            },
            EventError::UnknownHookType(value) | EventError::UnknownObject(value) => {
                LogError::Invalid {
                    element: "HOOK_MESSAGE",
                    value,
                    reason: "not a hook log element",
                }
            }
        }
    }
}

/// The outcome of one hook execution, as the HEM reports it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExecutionResult {
    /// The expanded argument string (`$API`/`$TEMPLATE` already replaced by base64 words).
    pub arguments: String,
    /// The command line run (for remote hooks, without the `ssh host` part).
    pub command: String,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// Exit code; 255 for timeout, spawn failure and death by signal.
    pub code: i32,
    /// Written when non-empty; `Some("")` is read back as `None`.
    pub remote_host: Option<String>,
    /// The execution comes from a retry (`<RETRY>yes</RETRY>`).
    pub retry: bool,
    /// Our duplicate-detection id (ARCHITECTURE.md "Execution uid").
    pub execution_uid: Option<String>,
}

impl ExecutionResult {
    /// The body in the reference's layout, without a root element:
    /// `<ARGUMENTS>…</ARGUMENTS><EXECUTION_RESULT><COMMAND>…</COMMAND><STDOUT>…</STDOUT>
    /// <STDERR>…</STDERR><CODE>n</CODE></EXECUTION_RESULT>[<REMOTE_HOST>…][<RETRY>yes</RETRY>]
    /// [<EXECUTION_UID>…]`. STDOUT and STDERR are MIME base64 (60-character lines, each ending
    /// in LF); text is escaped.
    pub fn to_xml(&self) -> String {
        let stdout = b64_mime(&self.stdout);
        let stderr = b64_mime(&self.stderr);
        let mut out = String::with_capacity(
            self.arguments.len() + self.command.len() + stdout.len() + stderr.len() + 200,
        );
        out.push_str("<ARGUMENTS>");
        out.push_str(&xml_escape(&self.arguments));
        out.push_str("</ARGUMENTS><EXECUTION_RESULT><COMMAND>");
        out.push_str(&xml_escape(&self.command));
        out.push_str("</COMMAND><STDOUT>");
        out.push_str(&stdout);
        out.push_str("</STDOUT><STDERR>");
        out.push_str(&stderr);
        out.push_str("</STDERR><CODE>");
        out.push_str(&self.code.to_string());
        out.push_str("</CODE></EXECUTION_RESULT>");
        if let Some(host) = self.remote_host.as_deref().filter(|h| !h.is_empty()) {
            out.push_str("<REMOTE_HOST>");
            out.push_str(&xml_escape(host));
            out.push_str("</REMOTE_HOST>");
        }
        if self.retry {
            out.push_str("<RETRY>yes</RETRY>");
        }
        if let Some(uid) = &self.execution_uid {
            out.push_str("<EXECUTION_UID>");
            out.push_str(&xml_escape(uid));
            out.push_str("</EXECUTION_UID>");
        }
        out
    }

    /// Reads a result body, ours or the reference's (whose ARGUMENTS and COMMAND may hold raw
    /// `<` and `&`).
    pub fn parse(body_xml: &str) -> Result<ExecutionResult, LogError> {
        let roots = xml_read::parse_lenient(body_xml, &BODY_RULES);
        let fields = Fields::from_nodes(&roots);
        fields.exec_result()?.ok_or(LogError::Missing {
            element: "EXECUTION_RESULT",
        })
    }

    /// STDOUT as text (invalid UTF-8 replaced), for display.
    pub fn stdout_text(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(&self.stdout)
    }

    /// STDERR as text (invalid UTF-8 replaced), for display.
    pub fn stderr_text(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(&self.stderr)
    }
}

/// Raw rules for the elements the reference writes unescaped. A top-level ARGUMENTS is one of a
/// bare result body; under HOOK_EXECUTION_RECORD it is one of a record.
const BODY_RULES: [RawRule; 3] = [
    RawRule {
        parent: None,
        name: "ARGUMENTS",
        end: "</ARGUMENTS>",
        end_and_follow: "</ARGUMENTS><EXECUTION_RESULT>",
        limit: None,
    },
    RawRule {
        parent: Some("HOOK_EXECUTION_RECORD"),
        name: "ARGUMENTS",
        end: "</ARGUMENTS>",
        end_and_follow: "</ARGUMENTS><EXECUTION_RESULT>",
        limit: Some("</HOOK_EXECUTION_RECORD>"),
    },
    RawRule {
        parent: Some("EXECUTION_RESULT"),
        name: "COMMAND",
        end: "</COMMAND>",
        end_and_follow: "</COMMAND><STDOUT>",
        limit: Some("</HOOK_EXECUTION_RECORD>"),
    },
];

/// The result-body elements found among some siblings.
struct Fields<'n, 'a> {
    arguments: Option<&'n Node<'a>>,
    result: Option<&'n Node<'a>>,
    remote_host: Option<&'n Node<'a>>,
    retry: Option<&'n Node<'a>>,
    execution_uid: Option<&'n Node<'a>>,
}

impl<'n, 'a> Fields<'n, 'a> {
    fn from_nodes(nodes: &'n [Node<'a>]) -> Self {
        let find = |name: &str| nodes.iter().find(|n| n.name == name);
        Fields {
            arguments: find("ARGUMENTS"),
            result: find("EXECUTION_RESULT"),
            remote_host: find("REMOTE_HOST"),
            retry: find("RETRY"),
            execution_uid: find("EXECUTION_UID"),
        }
    }

    /// `None` when there is no EXECUTION_RESULT (oned stores such records when the body was not
    /// strict base64).
    fn exec_result(&self) -> Result<Option<ExecutionResult>, LogError> {
        let Some(result) = self.result else {
            return Ok(None);
        };
        let code_node = result
            .child("CODE")
            .ok_or(LogError::Missing { element: "CODE" })?;
        let code = code_node
            .text
            .trim()
            .parse()
            .map_err(|_| LogError::Invalid {
                element: "CODE",
                value: code_node.text.clone(),
                reason: "not an integer",
            })?;
        let stream = |name: &str| {
            result
                .child(name)
                .map(|n| b64_mime_decode(&n.text))
                .unwrap_or_default()
        };
        Ok(Some(ExecutionResult {
            arguments: self.arguments.map(Node::value).unwrap_or_default(),
            command: result.child("COMMAND").map(Node::value).unwrap_or_default(),
            stdout: stream("STDOUT"),
            stderr: stream("STDERR"),
            code,
            remote_host: self.remote_host.map(Node::value).filter(|h| !h.is_empty()),
            retry: self
                .retry
                .is_some_and(|n| n.text.trim().eq_ignore_ascii_case("yes")),
            execution_uid: self.execution_uid.map(Node::value),
        }))
    }
}

/// One `HOOK_EXECUTION_RECORD`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecutionRecord {
    pub hook_id: i64,
    /// Per hook, 0-based, never reused.
    pub execution_id: i64,
    /// Epoch seconds when the front-end stored the record.
    pub timestamp: i64,
    /// `None` for a record whose body could not be decoded (only the three ids are stored).
    pub result: Option<ExecutionResult>,
}

impl ExecutionRecord {
    /// Reads one `<HOOK_EXECUTION_RECORD>` element.
    pub fn parse(record_xml: &str) -> Result<ExecutionRecord, LogError> {
        let roots = xml_read::parse_lenient(record_xml, &BODY_RULES);
        let root =
            crate::event::message_root(&roots, "HOOK_EXECUTION_RECORD").map_err(LogError::from)?;
        record_from_node(root)
    }

    /// The decoded STDOUT of the execution (empty when there is no result).
    pub fn stdout(&self) -> &[u8] {
        self.result.as_ref().map_or(&[], |r| r.stdout.as_slice())
    }

    /// The decoded STDERR of the execution (empty when there is no result).
    pub fn stderr(&self) -> &[u8] {
        self.result.as_ref().map_or(&[], |r| r.stderr.as_slice())
    }
}

fn record_from_node(node: &Node<'_>) -> Result<ExecutionRecord, LogError> {
    let int = |element: &'static str| -> Result<i64, LogError> {
        let text = &node
            .child(element)
            .ok_or(LogError::Missing { element })?
            .text;
        text.trim().parse().map_err(|_| LogError::Invalid {
            element,
            value: text.clone(),
            reason: "not an integer",
        })
    };
    Ok(ExecutionRecord {
        hook_id: int("HOOK_ID")?,
        execution_id: int("EXECUTION_ID")?,
        timestamp: int("TIMESTAMP")?,
        result: Fields::from_nodes(&node.children).exec_result()?,
    })
}

/// Wraps a decoded result body into a record as oned does (§6.4 step 2):
/// `<HOOK_EXECUTION_RECORD><HOOK_ID>…</HOOK_ID><EXECUTION_ID>…</EXECUTION_ID>
/// <TIMESTAMP>…</TIMESTAMP>body</HOOK_EXECUTION_RECORD>`. Fails when the result is not
/// well-formed XML, in which case oned drops the record (step 3). An empty body is fine.
pub fn record_xml(
    hook_id: i64,
    execution_id: i64,
    timestamp: i64,
    body_xml: &str,
) -> Result<String, LogError> {
    let out = wrap_record(hook_id, execution_id, timestamp, body_xml);
    xml_read::check(&out, Shape::Document).map_err(|e| LogError::NotWellFormed {
        hook_id,
        execution_id,
        reason: e.to_string(),
    })?;
    Ok(out)
}

/// The record of [`record_xml`] without its check, for a body already found well-formed by
/// [`record_xml`] under other numbers (the numbers never change whether a record is
/// well-formed). The front-end checks a result before its transaction and wraps it inside,
/// once the execution id is known, so the check does not hold the write lock.
pub fn wrap_record(hook_id: i64, execution_id: i64, timestamp: i64, body_xml: &str) -> String {
    let mut out = String::with_capacity(body_xml.len() + 160);
    out.push_str("<HOOK_EXECUTION_RECORD><HOOK_ID>");
    out.push_str(&hook_id.to_string());
    out.push_str("</HOOK_ID><EXECUTION_ID>");
    out.push_str(&execution_id.to_string());
    out.push_str("</EXECUTION_ID><TIMESTAMP>");
    out.push_str(&timestamp.to_string());
    out.push_str("</TIMESTAMP>");
    out.push_str(body_xml);
    out.push_str("</HOOK_EXECUTION_RECORD>");
    out
}

/// `<HOOKLOG>` followed by the records as given, then `</HOOKLOG>`. Records that are not
/// well-formed (which `record_xml` never produces) are escaped so the list stays well-formed.
pub fn hooklog_xml(records_xml: &[String]) -> String {
    let total: usize = records_xml.iter().map(String::len).sum();
    let mut out = String::with_capacity(total + 19);
    out.push_str("<HOOKLOG>");
    for record in records_xml {
        push_fragment(&mut out, record);
    }
    out.push_str("</HOOKLOG>");
    out
}

/// Reads a `<HOOKLOG>` list, keeping the order of its records.
pub fn parse_hooklog(xml: &str) -> Result<Vec<ExecutionRecord>, LogError> {
    let roots = xml_read::parse_lenient(xml, &BODY_RULES);
    let root = crate::event::message_root(&roots, "HOOKLOG").map_err(LogError::from)?;
    root.children_named("HOOK_EXECUTION_RECORD")
        .map(record_from_node)
        .collect()
}
