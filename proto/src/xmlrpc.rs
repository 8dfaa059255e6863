//! XML-RPC documents both ways: `methodCall`, `methodResponse` and faults.
//!
//! Responses and calls are written in xmlrpc-c's wire form (the library oned uses): an XML
//! declaration, CRLF between structural elements, `<i4>` for 32-bit integers and an explicit
//! `<string>` element. The parsers accept what common clients send: `<int>` or `<i4>`, `<i8>`,
//! untyped values as strings, `<nil/>`, namespaced extension types (`<ex:i8>`, `<ex:nil/>`).

use std::fmt::Write as _;

use crate::encoding::xml_escape_into;
use base64::Engine as _;
use quick_xml::events::Event;
use quick_xml::reader::Reader;

/// Arrays and structs nested deeper than this are refused, so a hostile body cannot exhaust the stack.
pub const MAX_DEPTH: usize = 64;

/// One XML-RPC value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Int(i32),
    I8(i64),
    Bool(bool),
    Double(f64),
    String(String),
    Base64(Vec<u8>),
    /// The `dateTime.iso8601` text, as written.
    DateTime(String),
    Array(Vec<Value>),
    Struct(Vec<(String, Value)>),
    Nil,
}

impl Value {
    /// The xmlrpc type name, for error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Int(_) => "int",
            Value::I8(_) => "i8",
            Value::Bool(_) => "boolean",
            Value::Double(_) => "double",
            Value::String(_) => "string",
            Value::Base64(_) => "base64",
            Value::DateTime(_) => "dateTime.iso8601",
            Value::Array(_) => "array",
            Value::Struct(_) => "struct",
            Value::Nil => "nil",
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// Integer value of an `<i4>`/`<int>` or `<i8>`.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(i64::from(*i)),
            Value::I8(i) => Some(*i),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }
}

impl From<i32> for Value {
    fn from(v: i32) -> Self {
        Value::Int(v)
    }
}
impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::I8(v)
    }
}
impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Bool(v)
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::String(v.to_string())
    }
}
impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::String(v)
    }
}

/// A `methodCall`.
#[derive(Clone, Debug, PartialEq)]
pub struct MethodCall {
    pub method: String,
    pub params: Vec<Value>,
}

/// A parsed `methodResponse`.
#[derive(Clone, Debug, PartialEq)]
pub enum Response {
    Value(Value),
    Fault { code: i32, message: String },
}

/// Why a document is not acceptable XML-RPC.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum XmlRpcError {
    #[error("XML is not well-formed at byte {position}: {message}")]
    Xml { position: u64, message: String },
    #[error("document is not valid UTF-8")]
    Utf8,
    #[error("unexpected element <{found}> where {expected} was expected")]
    Unexpected {
        found: String,
        expected: &'static str,
    },
    #[error("unexpected text where {expected} was expected")]
    UnexpectedText { expected: &'static str },
    #[error("document ended inside {inside}")]
    Truncated { inside: &'static str },
    #[error("missing <{0}>")]
    Missing(&'static str),
    #[error("invalid {kind} value {text:?}")]
    BadScalar { kind: &'static str, text: String },
    #[error("values nested deeper than {MAX_DEPTH} levels")]
    TooDeep,
    #[error("fault without a valid faultCode/faultString struct")]
    BadFault,
    #[error("content after the end of the document")]
    Trailing,
}

// ---------------------------------------------------------------------------------------------
// Writing

fn write_value(out: &mut String, v: &Value) {
    out.push_str("<value>");
    match v {
        Value::Int(i) => {
            let _ = write!(out, "<i4>{i}</i4>");
        }
        Value::I8(i) => {
            let _ = write!(out, "<i8>{i}</i8>");
        }
        Value::Bool(b) => {
            let _ = write!(out, "<boolean>{}</boolean>", u8::from(*b));
        }
        Value::Double(d) => {
            let d = if d.is_finite() { *d } else { 0.0 };
            let _ = write!(out, "<double>{d:?}</double>");
        }
        Value::String(s) => {
            out.push_str("<string>");
            xml_escape_into(out, s);
            out.push_str("</string>");
        }
        Value::Base64(b) => {
            out.push_str("<base64>");
            out.push_str(&base64::engine::general_purpose::STANDARD.encode(b));
            out.push_str("</base64>");
        }
        Value::DateTime(s) => {
            out.push_str("<dateTime.iso8601>");
            xml_escape_into(out, s);
            out.push_str("</dateTime.iso8601>");
        }
        Value::Array(items) => {
            out.push_str("<array><data>\r\n");
            for item in items {
                write_value(out, item);
                out.push_str("\r\n");
            }
            out.push_str("</data></array>");
        }
        Value::Struct(members) => {
            out.push_str("<struct>\r\n");
            for (name, value) in members {
                out.push_str("<member><name>");
                xml_escape_into(out, name);
                out.push_str("</name>\r\n");
                write_value(out, value);
                out.push_str("</member>\r\n");
            }
            out.push_str("</struct>");
        }
        Value::Nil => out.push_str("<nil/>"),
    }
    out.push_str("</value>");
}

/// A successful `methodResponse` carrying `value`.
pub fn format_response(value: &Value) -> String {
    let mut out = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\r\n<methodResponse>\r\n<params>\r\n<param>",
    );
    write_value(&mut out, value);
    out.push_str("</param>\r\n</params>\r\n</methodResponse>\r\n");
    out
}

/// A fault `methodResponse`.
pub fn format_fault(code: i32, message: &str) -> String {
    let mut out = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\r\n<methodResponse>\r\n<fault>\r\n",
    );
    write_value(
        &mut out,
        &Value::Struct(vec![
            ("faultCode".to_string(), Value::Int(code)),
            (
                "faultString".to_string(),
                Value::String(message.to_string()),
            ),
        ]),
    );
    out.push_str("\r\n</fault>\r\n</methodResponse>\r\n");
    out
}

/// A `methodCall` document.
pub fn format_call(call: &MethodCall) -> String {
    let mut out =
        String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\r\n<methodCall>\r\n<methodName>");
    xml_escape_into(&mut out, &call.method);
    out.push_str("</methodName>\r\n<params>\r\n");
    for p in &call.params {
        out.push_str("<param>");
        write_value(&mut out, p);
        out.push_str("</param>\r\n");
    }
    out.push_str("</params>\r\n</methodCall>\r\n");
    out
}

// ---------------------------------------------------------------------------------------------
// Reading

/// A pull parser over the document that yields only what XML-RPC cares about: element starts
/// (with a flag for self-closing), ends, and text (entities resolved, CDATA included).
struct Tokens<'a> {
    reader: Reader<&'a [u8]>,
    peeked: Option<Tok>,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Start(String),
    Empty(String),
    End(String),
    Text(String),
    Eof,
}

impl<'a> Tokens<'a> {
    fn new(body: &'a [u8]) -> Self {
        let mut reader = Reader::from_reader(body);
        let config = reader.config_mut();
        config.trim_text(false);
        config.check_end_names = true;
        config.expand_empty_elements = false;
        Tokens {
            reader,
            peeked: None,
        }
    }

    fn xml_err(&self, e: impl std::fmt::Display) -> XmlRpcError {
        XmlRpcError::Xml {
            position: self.reader.buffer_position(),
            message: e.to_string(),
        }
    }

    fn local_name(raw: &[u8]) -> Result<String, XmlRpcError> {
        // Extension types come with a namespace prefix (`ex:i8`); only the local part matters.
        let local = match raw.iter().rposition(|b| *b == b':') {
            Some(i) => &raw[i + 1..],
            None => raw,
        };
        String::from_utf8(local.to_vec()).map_err(|_| XmlRpcError::Utf8)
    }

    fn next_raw(&mut self) -> Result<Tok, XmlRpcError> {
        loop {
            let ev = self.reader.read_event().map_err(|e| self.xml_err(e))?;
            return Ok(match ev {
                Event::Start(e) => Tok::Start(Self::local_name(e.name().as_ref())?),
                Event::Empty(e) => Tok::Empty(Self::local_name(e.name().as_ref())?),
                Event::End(e) => Tok::End(Self::local_name(e.name().as_ref())?),
                Event::Text(t) => {
                    let raw = std::str::from_utf8(t.as_ref()).map_err(|_| XmlRpcError::Utf8)?;
                    let text = quick_xml::escape::unescape(raw).map_err(|e| self.xml_err(e))?;
                    Tok::Text(text.into_owned())
                }
                Event::GeneralRef(r) => {
                    let raw = std::str::from_utf8(r.as_ref()).map_err(|_| XmlRpcError::Utf8)?;
                    let reference = format!("&{raw};");
                    let text =
                        quick_xml::escape::unescape(&reference).map_err(|e| self.xml_err(e))?;
                    Tok::Text(text.into_owned())
                }
                Event::CData(c) => {
                    let text = std::str::from_utf8(c.as_ref()).map_err(|_| XmlRpcError::Utf8)?;
                    Tok::Text(text.to_string())
                }
                Event::Eof => Tok::Eof,
                Event::Decl(_) | Event::PI(_) | Event::Comment(_) | Event::DocType(_) => continue,
            });
        }
    }

    /// The next token, with adjacent text pieces (text, entity references, CDATA) merged.
    fn next(&mut self) -> Result<Tok, XmlRpcError> {
        let tok = match self.peeked.take() {
            Some(t) => t,
            None => self.next_raw()?,
        };
        if let Tok::Text(mut text) = tok {
            loop {
                match self.next_raw()? {
                    Tok::Text(more) => text.push_str(&more),
                    other => {
                        self.peeked = Some(other);
                        return Ok(Tok::Text(text));
                    }
                }
            }
        }
        Ok(tok)
    }

    /// The next token that is not whitespace-only text.
    fn next_significant(&mut self, expected: &'static str) -> Result<Tok, XmlRpcError> {
        loop {
            match self.next()? {
                Tok::Text(t) if t.trim().is_empty() => continue,
                Tok::Text(_) => return Err(XmlRpcError::UnexpectedText { expected }),
                other => return Ok(other),
            }
        }
    }

    fn expect_start(&mut self, name: &'static str) -> Result<bool, XmlRpcError> {
        match self.next_significant(name)? {
            Tok::Start(n) if n == name => Ok(true),
            Tok::Empty(n) if n == name => Ok(false),
            Tok::Eof => Err(XmlRpcError::Missing(name)),
            Tok::Start(n) | Tok::Empty(n) | Tok::End(n) => Err(XmlRpcError::Unexpected {
                found: n,
                expected: name,
            }),
            Tok::Text(_) => Err(XmlRpcError::UnexpectedText { expected: name }),
        }
    }

    fn expect_end(&mut self, name: &'static str) -> Result<(), XmlRpcError> {
        match self.next_significant(name)? {
            Tok::End(n) if n == name => Ok(()),
            Tok::Eof => Err(XmlRpcError::Truncated { inside: name }),
            Tok::Start(n) | Tok::Empty(n) | Tok::End(n) => Err(XmlRpcError::Unexpected {
                found: n,
                expected: name,
            }),
            Tok::Text(_) => Err(XmlRpcError::UnexpectedText { expected: name }),
        }
    }

    /// Text up to the end tag `name` (which must follow directly).
    fn text_until_end(&mut self, name: &'static str) -> Result<String, XmlRpcError> {
        match self.next()? {
            Tok::Text(t) => {
                self.expect_end(name)?;
                Ok(t)
            }
            Tok::End(n) if n == name => Ok(String::new()),
            Tok::Eof => Err(XmlRpcError::Truncated { inside: name }),
            Tok::Start(n) | Tok::Empty(n) | Tok::End(n) => Err(XmlRpcError::Unexpected {
                found: n,
                expected: name,
            }),
        }
    }

    fn expect_eof(&mut self) -> Result<(), XmlRpcError> {
        match self.next_significant("the end of the document")? {
            Tok::Eof => Ok(()),
            _ => Err(XmlRpcError::Trailing),
        }
    }

    /// Parses a `<value>` whose start tag was just read (`open` false for `<value/>`).
    fn value_after_start(&mut self, open: bool, depth: usize) -> Result<Value, XmlRpcError> {
        if depth > MAX_DEPTH {
            return Err(XmlRpcError::TooDeep);
        }
        if !open {
            return Ok(Value::String(String::new()));
        }
        // Leading text is kept: an untyped value is a string, whitespace included.
        let mut leading = String::new();
        let tok = loop {
            match self.next()? {
                Tok::Text(t) => leading.push_str(&t),
                other => break other,
            }
        };
        let (typ, open) = match tok {
            Tok::End(n) if n == "value" => return Ok(Value::String(leading)),
            Tok::Start(n) => (n, true),
            Tok::Empty(n) => (n, false),
            Tok::Eof => return Err(XmlRpcError::Truncated { inside: "value" }),
            Tok::End(n) => {
                return Err(XmlRpcError::Unexpected {
                    found: n,
                    expected: "a value type",
                });
            }
            Tok::Text(_) => {
                return Err(XmlRpcError::UnexpectedText {
                    expected: "a value type",
                });
            }
        };
        if !leading.trim().is_empty() {
            return Err(XmlRpcError::UnexpectedText {
                expected: "a value type",
            });
        }
        let value = self.typed(&typ, open, depth)?;
        self.expect_end("value")?;
        Ok(value)
    }

    fn scalar_text(&mut self, typ: &str, open: bool) -> Result<String, XmlRpcError> {
        if !open {
            return Ok(String::new());
        }
        match self.next()? {
            Tok::Text(t) => match self.next()? {
                Tok::End(n) if n == typ => Ok(t),
                Tok::Eof => Err(XmlRpcError::Truncated { inside: "value" }),
                Tok::Start(n) | Tok::Empty(n) | Tok::End(n) => Err(XmlRpcError::Unexpected {
                    found: n,
                    expected: "the end of a scalar",
                }),
                Tok::Text(_) => Err(XmlRpcError::UnexpectedText {
                    expected: "the end of a scalar",
                }),
            },
            Tok::End(n) if n == typ => Ok(String::new()),
            Tok::Eof => Err(XmlRpcError::Truncated { inside: "value" }),
            Tok::Start(n) | Tok::Empty(n) | Tok::End(n) => Err(XmlRpcError::Unexpected {
                found: n,
                expected: "scalar text",
            }),
        }
    }

    fn typed(&mut self, typ: &str, open: bool, depth: usize) -> Result<Value, XmlRpcError> {
        let bad = |kind: &'static str, text: &str| XmlRpcError::BadScalar {
            kind,
            text: text.chars().take(64).collect(),
        };
        Ok(match typ {
            "i4" | "int" => {
                let t = self.scalar_text(typ, open)?;
                Value::Int(t.trim().parse::<i32>().map_err(|_| bad("int", &t))?)
            }
            "i8" => {
                let t = self.scalar_text(typ, open)?;
                Value::I8(t.trim().parse::<i64>().map_err(|_| bad("i8", &t))?)
            }
            "boolean" => {
                let t = self.scalar_text(typ, open)?;
                match t.trim() {
                    "1" => Value::Bool(true),
                    "0" => Value::Bool(false),
                    _ => return Err(bad("boolean", &t)),
                }
            }
            "double" => {
                let t = self.scalar_text(typ, open)?;
                let d = t.trim().parse::<f64>().map_err(|_| bad("double", &t))?;
                if !d.is_finite() {
                    return Err(bad("double", &t));
                }
                Value::Double(d)
            }
            "string" => Value::String(self.scalar_text(typ, open)?),
            "dateTime.iso8601" => Value::DateTime(self.scalar_text(typ, open)?.trim().to_string()),
            "base64" => {
                let t = self.scalar_text(typ, open)?;
                let compact: String = t.chars().filter(|c| !c.is_ascii_whitespace()).collect();
                Value::Base64(
                    base64::engine::general_purpose::STANDARD
                        .decode(compact.as_bytes())
                        .map_err(|_| bad("base64", &t))?,
                )
            }
            "nil" => {
                if open {
                    self.expect_end("nil")?;
                }
                Value::Nil
            }
            "array" => {
                if !open {
                    return Ok(Value::Array(Vec::new()));
                }
                let mut items = Vec::new();
                if self.expect_start("data")? {
                    loop {
                        match self.next_significant("value")? {
                            Tok::Start(n) if n == "value" => {
                                items.push(self.value_after_start(true, depth + 1)?)
                            }
                            Tok::Empty(n) if n == "value" => {
                                items.push(self.value_after_start(false, depth + 1)?)
                            }
                            Tok::End(n) if n == "data" => break,
                            Tok::Eof => return Err(XmlRpcError::Truncated { inside: "array" }),
                            Tok::Start(n) | Tok::Empty(n) | Tok::End(n) => {
                                return Err(XmlRpcError::Unexpected {
                                    found: n,
                                    expected: "value",
                                });
                            }
                            Tok::Text(_) => {
                                return Err(XmlRpcError::UnexpectedText { expected: "value" });
                            }
                        }
                    }
                }
                self.expect_end("array")?;
                Value::Array(items)
            }
            "struct" => {
                if !open {
                    return Ok(Value::Struct(Vec::new()));
                }
                let mut members = Vec::new();
                loop {
                    match self.next_significant("member")? {
                        Tok::Start(n) if n == "member" => {
                            let name = if self.expect_start("name")? {
                                self.text_until_end("name")?
                            } else {
                                String::new()
                            };
                            let open = self.expect_start("value")?;
                            let value = self.value_after_start(open, depth + 1)?;
                            self.expect_end("member")?;
                            members.push((name, value));
                        }
                        Tok::End(n) if n == "struct" => break,
                        Tok::Eof => return Err(XmlRpcError::Truncated { inside: "struct" }),
                        Tok::Start(n) | Tok::Empty(n) | Tok::End(n) => {
                            return Err(XmlRpcError::Unexpected {
                                found: n,
                                expected: "member",
                            });
                        }
                        Tok::Text(_) => {
                            return Err(XmlRpcError::UnexpectedText { expected: "member" });
                        }
                    }
                }
                Value::Struct(members)
            }
            other => {
                return Err(XmlRpcError::Unexpected {
                    found: other.to_string(),
                    expected: "a value type",
                });
            }
        })
    }
}

/// Parses a `methodCall` body.
pub fn parse_call(body: &[u8]) -> Result<MethodCall, XmlRpcError> {
    let mut t = Tokens::new(body);
    if !t.expect_start("methodCall")? {
        return Err(XmlRpcError::Missing("methodName"));
    }
    if !t.expect_start("methodName")? {
        return Err(XmlRpcError::Missing("methodName"));
    }
    let method = t.text_until_end("methodName")?.trim().to_string();
    let mut params = Vec::new();
    match t.next_significant("params")? {
        Tok::Start(n) if n == "params" => {
            loop {
                match t.next_significant("param")? {
                    Tok::Start(n) if n == "param" => {
                        let open = t.expect_start("value")?;
                        params.push(t.value_after_start(open, 1)?);
                        t.expect_end("param")?;
                    }
                    Tok::End(n) if n == "params" => break,
                    Tok::Eof => return Err(XmlRpcError::Truncated { inside: "params" }),
                    Tok::Start(n) | Tok::Empty(n) | Tok::End(n) => {
                        return Err(XmlRpcError::Unexpected {
                            found: n,
                            expected: "param",
                        });
                    }
                    Tok::Text(_) => return Err(XmlRpcError::UnexpectedText { expected: "param" }),
                }
            }
            t.expect_end("methodCall")?;
        }
        Tok::Empty(n) if n == "params" => t.expect_end("methodCall")?,
        Tok::End(n) if n == "methodCall" => {}
        Tok::Eof => {
            return Err(XmlRpcError::Truncated {
                inside: "methodCall",
            });
        }
        Tok::Start(n) | Tok::Empty(n) | Tok::End(n) => {
            return Err(XmlRpcError::Unexpected {
                found: n,
                expected: "params",
            });
        }
        Tok::Text(_) => return Err(XmlRpcError::UnexpectedText { expected: "params" }),
    }
    t.expect_eof()?;
    Ok(MethodCall { method, params })
}

/// Parses a `methodResponse` body.
pub fn parse_response(body: &[u8]) -> Result<Response, XmlRpcError> {
    let mut t = Tokens::new(body);
    if !t.expect_start("methodResponse")? {
        return Err(XmlRpcError::Missing("params"));
    }
    let response = match t.next_significant("params or fault")? {
        Tok::Start(n) if n == "params" => {
            if !t.expect_start("param")? {
                return Err(XmlRpcError::Missing("value"));
            }
            let open = t.expect_start("value")?;
            let v = t.value_after_start(open, 1)?;
            t.expect_end("param")?;
            t.expect_end("params")?;
            Response::Value(v)
        }
        Tok::Start(n) if n == "fault" => {
            let open = t.expect_start("value")?;
            let v = t.value_after_start(open, 1)?;
            t.expect_end("fault")?;
            let Value::Struct(members) = v else {
                return Err(XmlRpcError::BadFault);
            };
            let mut code = None;
            let mut message = None;
            for (name, value) in members {
                match (name.as_str(), value) {
                    ("faultCode", Value::Int(c)) => code = Some(c),
                    ("faultCode", Value::I8(c)) => code = i32::try_from(c).ok(),
                    ("faultString", Value::String(s)) => message = Some(s),
                    _ => {}
                }
            }
            match (code, message) {
                (Some(code), Some(message)) => Response::Fault { code, message },
                _ => return Err(XmlRpcError::BadFault),
            }
        }
        Tok::Eof => {
            return Err(XmlRpcError::Truncated {
                inside: "methodResponse",
            });
        }
        Tok::Start(n) | Tok::Empty(n) | Tok::End(n) => {
            return Err(XmlRpcError::Unexpected {
                found: n,
                expected: "params or fault",
            });
        }
        Tok::Text(_) => {
            return Err(XmlRpcError::UnexpectedText {
                expected: "params or fault",
            });
        }
    };
    t.expect_end("methodResponse")?;
    t.expect_eof()?;
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_reference_example() {
        let body = b"<?xml version=\"1.0\"?>\n<methodCall><methodName>one.hook.retry</methodName><params>\n \
<param><value><string>oneadmin:opennebula</string></value></param>\n \
<param><value><int>3</int></value></param>\n <param><value><i4>0</i4></value></param>\n</params></methodCall>";
        let call = parse_call(body).unwrap();
        assert_eq!(call.method, "one.hook.retry");
        assert_eq!(
            call.params,
            vec![
                Value::String("oneadmin:opennebula".into()),
                Value::Int(3),
                Value::Int(0)
            ]
        );
    }

    #[test]
    fn writes_xmlrpc_c_form() {
        let r = format_response(&Value::Array(vec![
            Value::Bool(true),
            Value::Int(3),
            Value::Int(0),
        ]));
        assert_eq!(
            r,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\r\n<methodResponse>\r\n<params>\r\n\
<param><value><array><data>\r\n<value><boolean>1</boolean></value>\r\n<value><i4>3</i4></value>\r\n\
<value><i4>0</i4></value>\r\n</data></array></value></param>\r\n</params>\r\n</methodResponse>\r\n"
        );
        let f = format_response(&Value::Array(vec![
            Value::Bool(false),
            Value::String("[one.hook.retry] Error getting hook [3].".into()),
            Value::Int(1024),
            Value::Int(3),
            Value::I8(-1),
        ]));
        assert!(f.contains("<value><string>[one.hook.retry] Error getting hook [3].</string></value>\r\n<value><i4>1024</i4></value>\r\n<value><i4>3</i4></value>\r\n<value><i8>-1</i8></value>\r\n"));
    }

    #[test]
    fn untyped_values_are_strings_and_entities_resolve() {
        let call = parse_call(
            b"<methodCall><methodName>m</methodName><params><param><value> a &amp; &lt;b&gt; &#x41; </value></param>\
<param><value/></param><param><value><string><![CDATA[<x>]]></string></value></param></params></methodCall>",
        )
        .unwrap();
        assert_eq!(
            call.params,
            vec![
                Value::String(" a & <b> A ".into()),
                Value::String(String::new()),
                Value::String("<x>".into())
            ]
        );
    }

    #[test]
    fn round_trips_every_type() {
        let call = MethodCall {
            method: "x.y".into(),
            params: vec![
                Value::Int(-7),
                Value::I8(1 << 40),
                Value::Bool(false),
                Value::Double(1.5),
                Value::String("a\r\nb <&> ]]>".into()),
                Value::Base64(vec![0, 1, 2, 255]),
                Value::DateTime("20240101T00:00:00".into()),
                Value::Array(vec![Value::Int(1), Value::Array(vec![])]),
                Value::Struct(vec![("k".into(), Value::Nil)]),
                Value::Nil,
            ],
        };
        assert_eq!(parse_call(format_call(&call).as_bytes()).unwrap(), call);
        let v = Value::Array(call.params.clone());
        assert_eq!(
            parse_response(format_response(&v).as_bytes()).unwrap(),
            Response::Value(v)
        );
    }

    #[test]
    fn faults_round_trip() {
        let f = format_fault(-501, "Parameter <1> bad");
        assert_eq!(
            parse_response(f.as_bytes()).unwrap(),
            Response::Fault {
                code: -501,
                message: "Parameter <1> bad".into()
            }
        );
    }

    #[test]
    fn rejects_malformed_documents() {
        let bad: &[&[u8]] = &[
            b"",
            b"garbage",
            b"<methodCall>",
            b"<methodCall><methodName>m</methodName><params><param><value><int>x</int></value></param></params></methodCall>",
            b"<methodCall><methodName>m</methodName><params><param><value><int>99999999999</int></value></param></params></methodCall>",
            b"<methodCall><methodName>m</methodName><params><param><value><foo>1</foo></value></param></params></methodCall>",
            b"<methodCall><methodName>m</methodName></methodCall><x/>",
            b"<methodCall><methodName>m</methodName><params><param><value><boolean>2</boolean></value></param></params></methodCall>",
            b"<methodCall><methodName>m</methodName><params><param><value><string>\xff</string></value></param></params></methodCall>",
            b"<methodCall><methodName>m</methodName><params><param><value><string>a</strin></value></param></params></methodCall>",
        ];
        for b in bad {
            assert!(
                parse_call(b).is_err(),
                "accepted {:?}",
                String::from_utf8_lossy(b)
            );
        }
    }

    #[test]
    fn refuses_deep_nesting() {
        let mut body = String::from("<methodCall><methodName>m</methodName><params><param><value>");
        for _ in 0..200 {
            body.push_str("<array><data><value>");
        }
        body.push_str("<i4>1</i4>");
        for _ in 0..200 {
            body.push_str("</value></data></array>");
        }
        body.push_str("</value></param></params></methodCall>");
        assert_eq!(parse_call(body.as_bytes()), Err(XmlRpcError::TooDeep));
    }

    #[test]
    fn accepts_extension_types_and_empty_params() {
        let call = parse_call(
            b"<methodCall><methodName>m</methodName><params><param><value><ex:i8>5</ex:i8></value></param>\
<param><value><ex:nil/></value></param></params></methodCall>",
        )
        .unwrap();
        assert_eq!(call.params, vec![Value::I8(5), Value::Nil]);
        let call = parse_call(b"<methodCall><methodName>m</methodName></methodCall>").unwrap();
        assert!(call.params.is_empty());
        let call =
            parse_call(b"<methodCall><methodName>m</methodName><params/></methodCall>").unwrap();
        assert!(call.params.is_empty());
    }
}
