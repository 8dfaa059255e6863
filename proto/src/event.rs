//! `HOOK_MESSAGE` documents: the events oned sends to the driver for API calls (reference §4.4)
//! and state changes (§4.5), and the `$API` / `$TEMPLATE` argument values the HEM derives from
//! them (§8.2).
//!
//! We write well-formed XML where the reference writes values raw: API parameter values are
//! escaped, and the EXTRA content and the object body are embedded as XML when they are
//! well-formed (escaped as text otherwise). [`HookMessage::parse`] reads our documents and also
//! the malformed ones a real oned sends: a VALUE's content is taken verbatim up to its closing
//! tag when it is not clean text, so raw `<`, `&` or a whole XML document returned by a call stay
//! one value.

use crate::encoding::{b64_decode_lenient, b64_encode, xml_escape};
use crate::xml_read::{self, Node, RawRule, Shape};

/// The object a STATE event is about (re-exported so that event users need one import).
pub use crate::states::ObjectKind;

/// Reads a HOOK_OBJECT value. `VNET`, which the reference's XSD documents, is read as NET.
fn object_kind_from_name(name: &str) -> Option<ObjectKind> {
    if name == "VNET" {
        return Some(ObjectKind::Net);
    }
    ObjectKind::from_name(name)
}

/// Why a HOOK_MESSAGE (or RETRY message) cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    /// No element at all, or a root other than the expected one.
    #[error("expected a <{expected}> document, found {found}")]
    NotAMessage {
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
    /// HOOK_TYPE is neither API nor STATE.
    #[error("unknown HOOK_TYPE {0:?}")]
    UnknownHookType(String),
    /// HOOK_OBJECT is none of VM, HOST, IMAGE, NET.
    #[error("unknown HOOK_OBJECT {0:?}")]
    UnknownObject(String),
}

/// Direction of an API parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ParamDir {
    /// An argument of the call (`TYPE` = `IN`).
    In,
    /// A member of the response array (`TYPE` = `OUT`).
    Out,
}

impl ParamDir {
    /// The `TYPE` text.
    pub fn as_str(self) -> &'static str {
        match self {
            ParamDir::In => "IN",
            ParamDir::Out => "OUT",
        }
    }
}

/// One `PARAMETER` of an API event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiParam {
    /// 1-based position among the parameters of the same direction.
    pub position: u32,
    pub dir: ParamDir,
    /// The value as text (see [`ApiEvent::success`] for how oned renders each type).
    pub value: String,
}

/// An API event (reference §4.4).
#[derive(Debug, Clone, Default)]
pub struct ApiEvent {
    /// The method name, e.g. `one.vm.allocate`.
    pub call: String,
    /// `RESULT`: whether the call succeeded.
    pub success: bool,
    /// IN parameters then OUT parameters, each in position order.
    pub params: Vec<ApiParam>,
    /// The EXTRA content: a well-formed XML fragment (an object body) or "".
    pub extra: String,
    /// The `<CALL_INFO>` subtree exactly as received, kept by [`HookMessage::parse`] when it was
    /// well-formed so that `$API` carries the producer's bytes. `None` for events built here.
    /// Not written by `to_xml` and not part of equality.
    pub received_call_info: Option<String>,
}

impl PartialEq for ApiEvent {
    fn eq(&self, other: &Self) -> bool {
        self.call == other.call
            && self.success == other.success
            && self.params == other.params
            && self.extra == other.extra
    }
}

impl Eq for ApiEvent {}

impl ApiEvent {
    /// An event for a call that succeeded. `in_values` are the call's arguments in order, the
    /// session first, rendered as oned does (integers in decimal, booleans `1`/`0`, strings
    /// verbatim, arrays and structs empty); hidden positions are masked here. The OUT block is
    /// `true`, `return_value`, `0`.
    pub fn success(
        call: impl Into<String>,
        in_values: Vec<String>,
        return_value: impl Into<String>,
        extra: impl Into<String>,
    ) -> ApiEvent {
        let call = call.into();
        let mut params = in_params(&call, in_values);
        params.extend(out_params([
            "true".to_string(),
            return_value.into(),
            "0".to_string(),
        ]));
        ApiEvent {
            call,
            success: true,
            params,
            extra: extra.into(),
            received_call_info: None,
        }
    }

    /// An event for a call that failed: the OUT block is `false`, `message`, `code`, `resp_id`.
    pub fn failure(
        call: impl Into<String>,
        in_values: Vec<String>,
        message: impl Into<String>,
        code: i32,
        resp_id: i64,
        extra: impl Into<String>,
    ) -> ApiEvent {
        let call = call.into();
        let mut params = in_params(&call, in_values);
        params.extend(out_params([
            "false".to_string(),
            message.into(),
            code.to_string(),
            resp_id.to_string(),
        ]));
        ApiEvent {
            call,
            success: false,
            params,
            extra: extra.into(),
            received_call_info: None,
        }
    }

    /// The value of the parameter at `position` in direction `dir`, if any.
    pub fn param(&self, dir: ParamDir, position: u32) -> Option<&str> {
        self.params
            .iter()
            .find(|p| p.dir == dir && p.position == position)
            .map(|p| p.value.as_str())
    }
}

fn in_params(call: &str, values: Vec<String>) -> Vec<ApiParam> {
    (1u32..)
        .zip(values)
        .map(|(position, value)| ApiParam {
            position,
            dir: ParamDir::In,
            value: if hidden_param(call, position) {
                HIDDEN.to_string()
            } else {
                value
            },
        })
        .collect()
}

fn out_params<const N: usize>(values: [String; N]) -> impl Iterator<Item = ApiParam> {
    (1u32..).zip(values).map(|(position, value)| ApiParam {
        position,
        dir: ParamDir::Out,
        value,
    })
}

/// What hidden IN parameters show.
pub const HIDDEN: &str = "****";

/// Whether oned hides the IN parameter at `position` of `call` (reference §4.4): the session
/// (position 1) of every call except the internal `one.internal.vmmonitor`, which has no
/// session, and the passwords of `one.user.allocate`, `passwd` and `login` (position 3) and
/// `one.user.chauth` (position 4).
pub fn hidden_param(call: &str, position: u32) -> bool {
    match position {
        1 => call != "one.internal.vmmonitor",
        3 => matches!(
            call,
            "one.user.allocate" | "one.user.passwd" | "one.user.login"
        ),
        4 => call == "one.user.chauth",
        _ => false,
    }
}

/// A STATE event (reference §4.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateEvent {
    pub object: ObjectKind,
    /// The state name as events carry it (NET UPDATE_FAILURE is the empty string).
    pub state: String,
    /// The LCM state name; VM only (ignored for other objects when writing). A VM event without
    /// one is written without `LCM_STATE`, which reference readers reject.
    pub lcm_state: Option<String>,
    pub resource_id: i64,
    /// SERVICE_ID from the VM's user template; VM only (ignored for other objects when writing).
    pub service_id: Option<i64>,
    /// For a VM the hostname of its last history record, for a HOST its name; ignored for
    /// IMAGE and NET. `None` and `Some("")` are both written as `<REMOTE_HOST/>` and read back as
    /// `None`.
    pub remote_host: Option<String>,
    /// The object's XML (`<VM>…</VM>`, `<HOST>…</HOST>`, `<IMAGE>…</IMAGE>`, `<VNET>…</VNET>`).
    pub body: String,
}

/// A HOOK_MESSAGE event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HookMessage {
    Api(ApiEvent),
    State(StateEvent),
}

impl HookMessage {
    /// Writes the document in the reference's element order, with no declaration and no
    /// whitespace between elements; every value is escaped, so the result is well-formed.
    pub fn to_xml(&self) -> String {
        match self {
            HookMessage::Api(api) => {
                let call_info = call_info_xml(api);
                let mut out = String::with_capacity(call_info.len() + api.call.len() + 96);
                out.push_str("<HOOK_MESSAGE><HOOK_TYPE>API</HOOK_TYPE><CALL>");
                out.push_str(&xml_escape(&api.call));
                out.push_str("</CALL>");
                out.push_str(&call_info);
                out.push_str("</HOOK_MESSAGE>");
                out
            }
            HookMessage::State(state) => state_xml(state),
        }
    }

    /// Reads a HOOK_MESSAGE, ours or a real oned's (including its malformed API documents).
    pub fn parse(xml: &str) -> Result<HookMessage, EventError> {
        let roots = xml_read::parse_lenient(xml, &[VALUE_RULE]);
        let root = message_root(&roots, "HOOK_MESSAGE")?;
        let hook_type = root
            .child("HOOK_TYPE")
            .ok_or(EventError::Missing {
                element: "HOOK_TYPE",
            })?
            .text
            .trim()
            .to_string();
        match hook_type.as_str() {
            "API" => parse_api(root).map(HookMessage::Api),
            "STATE" => parse_state(root).map(HookMessage::State),
            _ => Err(EventError::UnknownHookType(hook_type)),
        }
    }

    /// Reads the content of an `EVENT` publication (frame 2): base64 decoded leniently, as the
    /// reference HEM does (`Base64.decode64`), then parsed. Invalid UTF-8 is replaced.
    pub fn from_content(content: &[u8]) -> Result<HookMessage, EventError> {
        let decoded = b64_decode_lenient(&String::from_utf8_lossy(content));
        HookMessage::parse(&String::from_utf8_lossy(&decoded))
    }

    /// The `$API` value (reference §8.2): strict base64 of the `<CALL_INFO>…</CALL_INFO>`
    /// subtree, "" for STATE events.
    ///
    /// The subtree is the one received when the event was parsed from a well-formed document,
    /// else the one [`HookMessage::to_xml`] writes. Unlike the reference (Nokogiri) it is not
    /// re-indented and empty elements are not made self-closing; consumers must not depend on
    /// that whitespace anyway.
    pub fn api_argument(&self) -> String {
        match self {
            HookMessage::Api(api) => match &api.received_call_info {
                Some(received) => b64_encode(received.as_bytes()),
                None => b64_encode(call_info_xml(api).as_bytes()),
            },
            HookMessage::State(_) => String::new(),
        }
    }

    /// The resource the event is about: `VM/12` (the object's name and RESOURCE_ID) for a STATE
    /// event, `vm/12` for an API call, `""` when the call names none. API calls name their object
    /// in an integer IN parameter (the first one after the session); successful allocate calls
    /// in their OUT return value. The HEM orders executions per hook and resource, and in NATS
    /// mode the driver places events on partitions by it, so both read it here.
    pub fn resource(&self) -> String {
        match self {
            HookMessage::State(s) => format!("{}/{}", s.object.name(), s.resource_id),
            HookMessage::Api(api) => {
                let object = api.call.split('.').nth(1).unwrap_or("");
                let allocated = if api.call.ends_with(".allocate") && api.success {
                    api.param(ParamDir::Out, 2)
                        .filter(|v| v.trim().parse::<i64>().is_ok())
                } else {
                    None
                };
                let id = allocated.or_else(|| {
                    api.params
                        .iter()
                        .filter(|p| p.dir == ParamDir::In && p.position >= 2)
                        .map(|p| p.value.as_str())
                        .find(|v| v.trim().parse::<i64>().is_ok())
                });
                match id {
                    Some(id) => format!("{object}/{}", id.trim()),
                    None => String::new(),
                }
            }
        }
    }

    /// The `$TEMPLATE` value (reference §8.2): strict base64 of the object element, "" for API
    /// events. The body is used as given (as received, for parsed events), without the
    /// reference's re-indentation.
    pub fn template_argument(&self) -> String {
        match self {
            HookMessage::Api(_) => String::new(),
            HookMessage::State(state) => b64_encode(state.body.as_bytes()),
        }
    }
}

const VALUE_RULE: RawRule = RawRule {
    parent: Some("PARAMETER"),
    name: "VALUE",
    end: "</VALUE>",
    end_and_follow: "</VALUE></PARAMETER>",
    limit: None,
};

/// Writes `content` as element content: verbatim if it is a well-formed fragment, escaped text
/// otherwise, so that the document stays well-formed either way.
pub(crate) fn push_fragment(out: &mut String, content: &str) {
    if xml_read::check(content, Shape::Fragment).is_ok() {
        out.push_str(content);
    } else {
        out.push_str(&xml_escape(content));
    }
}

fn call_info_xml(api: &ApiEvent) -> String {
    let values: usize = api.params.iter().map(|p| p.value.len() + 80).sum();
    let mut out = String::with_capacity(values + api.extra.len() + 96);
    out.push_str("<CALL_INFO><RESULT>");
    out.push_str(if api.success { "1" } else { "0" });
    out.push_str("</RESULT><PARAMETERS>");
    let ordered = api
        .params
        .iter()
        .filter(|p| p.dir == ParamDir::In)
        .chain(api.params.iter().filter(|p| p.dir == ParamDir::Out));
    for param in ordered {
        let value = if param.dir == ParamDir::In && hidden_param(&api.call, param.position) {
            HIDDEN
        } else {
            param.value.as_str()
        };
        out.push_str("<PARAMETER><POSITION>");
        out.push_str(&param.position.to_string());
        out.push_str("</POSITION><TYPE>");
        out.push_str(param.dir.as_str());
        out.push_str("</TYPE><VALUE>");
        out.push_str(&xml_escape(value));
        out.push_str("</VALUE></PARAMETER>");
    }
    out.push_str("</PARAMETERS><EXTRA>");
    push_fragment(&mut out, &api.extra);
    out.push_str("</EXTRA></CALL_INFO>");
    out
}

fn push_element(out: &mut String, name: &str, value: &str) {
    out.push('<');
    out.push_str(name);
    out.push('>');
    out.push_str(&xml_escape(value));
    out.push_str("</");
    out.push_str(name);
    out.push('>');
}

fn push_remote_host(out: &mut String, remote_host: Option<&str>) {
    match remote_host {
        Some(host) if !host.is_empty() => push_element(out, "REMOTE_HOST", host),
        _ => out.push_str("<REMOTE_HOST/>"),
    }
}

fn state_xml(state: &StateEvent) -> String {
    let mut out = String::with_capacity(state.body.len() + 256);
    out.push_str("<HOOK_MESSAGE><HOOK_TYPE>STATE</HOOK_TYPE><HOOK_OBJECT>");
    out.push_str(state.object.name());
    out.push_str("</HOOK_OBJECT>");
    push_element(&mut out, "STATE", &state.state);
    let id = state.resource_id.to_string();
    match state.object {
        ObjectKind::Vm => {
            if let Some(lcm) = &state.lcm_state {
                push_element(&mut out, "LCM_STATE", lcm);
            }
            push_element(&mut out, "RESOURCE_ID", &id);
            if let Some(service) = state.service_id {
                push_element(&mut out, "SERVICE_ID", &service.to_string());
            }
            push_remote_host(&mut out, state.remote_host.as_deref());
        }
        ObjectKind::Host => {
            push_remote_host(&mut out, state.remote_host.as_deref());
            push_element(&mut out, "RESOURCE_ID", &id);
        }
        ObjectKind::Image | ObjectKind::Net => push_element(&mut out, "RESOURCE_ID", &id),
    }
    push_fragment(&mut out, &state.body);
    out.push_str("</HOOK_MESSAGE>");
    out
}

/// The root element named `expected` among the top-level elements of a leniently read document.
pub(crate) fn message_root<'n, 'a>(
    roots: &'n [Node<'a>],
    expected: &'static str,
) -> Result<&'n Node<'a>, EventError> {
    roots
        .iter()
        .find(|node| node.name == expected)
        .ok_or_else(|| EventError::NotAMessage {
            expected,
            found: match roots.first() {
                Some(node) => format!("<{}>", node.name),
                None => "no element".to_string(),
            },
        })
}

/// Parses a decimal integer the way oned writes one, tolerating surrounding whitespace.
pub(crate) fn parse_int<T: std::str::FromStr>(
    element: &'static str,
    text: &str,
) -> Result<T, EventError> {
    text.trim().parse().map_err(|_| EventError::Invalid {
        element,
        value: text.to_string(),
        reason: "not an integer",
    })
}

fn required<'n, 'a>(node: &'n Node<'a>, element: &'static str) -> Result<&'n Node<'a>, EventError> {
    node.child(element).ok_or(EventError::Missing { element })
}

fn parse_api(root: &Node<'_>) -> Result<ApiEvent, EventError> {
    let call = required(root, "CALL")?.text.trim().to_string();
    let call_info = required(root, "CALL_INFO")?;
    let result = required(call_info, "RESULT")?.text.trim().to_string();
    let success = match result.as_str() {
        "1" => true,
        "0" => false,
        _ => {
            return Err(EventError::Invalid {
                element: "RESULT",
                value: result,
                reason: "expected 1 or 0",
            });
        }
    };
    let mut params = Vec::new();
    if let Some(list) = call_info.child("PARAMETERS") {
        for param in list.children_named("PARAMETER") {
            let position = parse_int("POSITION", &required(param, "POSITION")?.text)?;
            let dir_text = required(param, "TYPE")?.text.trim().to_string();
            let dir = match dir_text.as_str() {
                "IN" => ParamDir::In,
                "OUT" => ParamDir::Out,
                _ => {
                    return Err(EventError::Invalid {
                        element: "TYPE",
                        value: dir_text,
                        reason: "expected IN or OUT",
                    });
                }
            };
            let value = param.child("VALUE").map(Node::value).unwrap_or_default();
            params.push(ApiParam {
                position,
                dir,
                value,
            });
        }
    }
    let extra = call_info
        .child("EXTRA")
        .map(|node| node.inner.to_string())
        .unwrap_or_default();
    let received_call_info = xml_read::check(call_info.outer, Shape::Document)
        .is_ok()
        .then(|| call_info.outer.to_string());
    Ok(ApiEvent {
        call,
        success,
        params,
        extra,
        received_call_info,
    })
}

fn parse_state(root: &Node<'_>) -> Result<StateEvent, EventError> {
    let object_text = required(root, "HOOK_OBJECT")?.text.trim().to_string();
    let object =
        object_kind_from_name(&object_text).ok_or(EventError::UnknownObject(object_text))?;
    let state = required(root, "STATE")?.text.trim().to_string();
    let lcm_state = root.child("LCM_STATE").map(|n| n.text.trim().to_string());
    let resource_id = parse_int("RESOURCE_ID", &required(root, "RESOURCE_ID")?.text)?;
    let service_id = match root.child("SERVICE_ID") {
        Some(node) => Some(parse_int("SERVICE_ID", &node.text)?),
        None => None,
    };
    let remote_host = root
        .child("REMOTE_HOST")
        .map(|n| n.text.clone())
        .filter(|host| !host.is_empty());
    // The reference takes the first element of that name anywhere in the document.
    let body = root
        .child(object.body_root())
        .or_else(|| {
            root.children
                .iter()
                .find_map(|child| child.find(object.body_root()))
        })
        .map(|node| node.outer.to_string())
        .unwrap_or_default();
    Ok(StateEvent {
        object,
        state,
        lcm_state,
        resource_id,
        service_id,
        remote_host,
        body,
    })
}
