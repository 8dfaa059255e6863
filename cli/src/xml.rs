//! A small XML tree for the documents the front-end returns (HOOK, HOOKLOG, VM, …).
//!
//! The renderers need what OpenNebula's Ruby CLI sees: element order, whether an element has a
//! text node at all (an empty CDATA section counts, an empty element does not), and the
//! hash view (`to_hash`) that `-j` and `-y` print. A tree keeps all of that.

use std::fmt::Write as _;

use quick_xml::events::Event;

/// A parsed element.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Element {
    pub name: String,
    pub children: Vec<Node>,
}

/// A child of an element. Adjacent text and entity references are merged into one `Text`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Node {
    Element(Element),
    Text(String),
    CData(String),
}

/// Why a document could not be read.
#[derive(Debug, thiserror::Error)]
pub enum XmlError {
    #[error("malformed XML at byte {position}: {message}")]
    Malformed { position: u64, message: String },
    #[error("malformed XML: no root element")]
    NoRoot,
    #[error("malformed XML: element <{0}> is not closed")]
    Unclosed(String),
    #[error("malformed XML: unknown entity &{0};")]
    UnknownEntity(String),
}

/// Parses a whole document and returns its root element.
pub fn parse(text: &str) -> Result<Element, XmlError> {
    let mut reader = quick_xml::Reader::from_str(text);
    reader.config_mut().check_end_names = true;
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    let malformed =
        |reader: &quick_xml::Reader<&[u8]>, e: &dyn std::fmt::Display| XmlError::Malformed {
            position: reader.buffer_position(),
            message: e.to_string(),
        };
    loop {
        let event = reader.read_event().map_err(|e| malformed(&reader, &e))?;
        match event {
            Event::Start(start) => {
                let name = String::from_utf8_lossy(start.name().as_ref()).into_owned();
                stack.push(Element {
                    name,
                    children: Vec::new(),
                });
            }
            Event::Empty(start) => {
                let name = String::from_utf8_lossy(start.name().as_ref()).into_owned();
                let element = Element {
                    name,
                    children: Vec::new(),
                };
                close(&mut stack, &mut root, element, &reader)?;
            }
            Event::End(_) => {
                let Some(element) = stack.pop() else {
                    return Err(malformed(&reader, &"unexpected end tag"));
                };
                close(&mut stack, &mut root, element, &reader)?;
            }
            Event::Text(text) => {
                let value = text.xml10_content().map_err(|e| malformed(&reader, &e))?;
                push_text(&mut stack, &value, &reader)?;
            }
            Event::GeneralRef(reference) => {
                let resolved = match reference.resolve_char_ref() {
                    Ok(Some(c)) => c.to_string(),
                    Ok(None) => {
                        let name = reference.decode().map_err(|e| malformed(&reader, &e))?;
                        match name.as_ref() {
                            "lt" => "<".to_string(),
                            "gt" => ">".to_string(),
                            "amp" => "&".to_string(),
                            "apos" => "'".to_string(),
                            "quot" => "\"".to_string(),
                            other => return Err(XmlError::UnknownEntity(other.to_string())),
                        }
                    }
                    Err(e) => return Err(malformed(&reader, &e)),
                };
                push_text(&mut stack, &resolved, &reader)?;
            }
            Event::CData(data) => {
                let value = data.decode().map_err(|e| malformed(&reader, &e))?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(Node::CData(value.into_owned())),
                    None => return Err(malformed(&reader, &"CDATA outside the root element")),
                }
            }
            Event::Decl(_) | Event::Comment(_) | Event::PI(_) | Event::DocType(_) => {}
            Event::Eof => break,
        }
    }
    if let Some(open) = stack.pop() {
        return Err(XmlError::Unclosed(open.name));
    }
    root.ok_or(XmlError::NoRoot)
}

fn close(
    stack: &mut [Element],
    root: &mut Option<Element>,
    element: Element,
    reader: &quick_xml::Reader<&[u8]>,
) -> Result<(), XmlError> {
    match stack.last_mut() {
        Some(parent) => parent.children.push(Node::Element(element)),
        None if root.is_none() => *root = Some(element),
        None => {
            return Err(XmlError::Malformed {
                position: reader.buffer_position(),
                message: "more than one root element".to_string(),
            });
        }
    }
    Ok(())
}

fn push_text(
    stack: &mut [Element],
    value: &str,
    reader: &quick_xml::Reader<&[u8]>,
) -> Result<(), XmlError> {
    match stack.last_mut() {
        Some(parent) => {
            if let Some(Node::Text(previous)) = parent.children.last_mut() {
                previous.push_str(value);
            } else {
                parent.children.push(Node::Text(value.to_string()));
            }
            Ok(())
        }
        // Whitespace around the root element is allowed; anything else is not.
        None if value.trim().is_empty() => Ok(()),
        None => Err(XmlError::Malformed {
            position: reader.buffer_position(),
            message: "text outside the root element".to_string(),
        }),
    }
}

impl Element {
    /// The child elements, in document order.
    pub fn elements(&self) -> impl Iterator<Item = &Element> {
        self.children.iter().filter_map(|n| match n {
            Node::Element(e) => Some(e),
            _ => None,
        })
    }

    /// The first child element with this name.
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.elements().find(|e| e.name == name)
    }

    /// Every child element with this name.
    pub fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> + 'a {
        self.elements().filter(move |e| e.name == name)
    }

    /// The element at a `/`-separated path of child names below this one.
    pub fn at(&self, path: &str) -> Option<&Element> {
        path.split('/')
            .filter(|s| !s.is_empty())
            .try_fold(self, |e, name| e.child(name))
    }

    /// The text of the element at `path`, if it has a text node (see [`Element::text`]).
    pub fn text_at(&self, path: &str) -> Option<&str> {
        self.at(path).and_then(Element::text)
    }

    /// The text of the element at `path`, or "" when it is missing or has no text.
    pub fn str_at(&self, path: &str) -> &str {
        self.text_at(path).unwrap_or("")
    }

    /// The first text or CDATA node, as REXML's `Element#text` gives it. `None` when the
    /// element has no text node at all (`<A></A>`); `Some("")` for `<A><![CDATA[]]></A>`.
    pub fn text(&self) -> Option<&str> {
        self.children.iter().find_map(|n| match n {
            Node::Text(t) | Node::CData(t) => Some(t.as_str()),
            Node::Element(_) => None,
        })
    }

    pub fn has_elements(&self) -> bool {
        self.elements().next().is_some()
    }

    /// The hash view of the Ruby OCA's `to_hash`, wrapped in the root name.
    pub fn to_hash(&self) -> HashValue {
        HashValue::Object(vec![(self.name.clone(), self.hash_body())])
    }

    fn hash_body(&self) -> HashValue {
        // Nokogiri's rule: a single text or CDATA child is the value; otherwise the element
        // children form an object (an empty element is an empty object).
        if let [Node::Text(t) | Node::CData(t)] = self.children.as_slice() {
            return HashValue::String(t.clone());
        }
        let mut fields: Vec<(String, HashValue)> = Vec::new();
        for child in self.elements() {
            let value = child.hash_body();
            match fields.iter_mut().find(|(k, _)| *k == child.name) {
                Some((_, HashValue::Array(items))) => items.push(value),
                Some((_, existing)) => {
                    let first = std::mem::replace(existing, HashValue::Array(Vec::new()));
                    *existing = HashValue::Array(vec![first, value]);
                }
                None => fields.push((child.name.clone(), value)),
            }
        }
        HashValue::Object(fields)
    }

    /// The document indented by two spaces per level, as Nokogiri's pretty `to_xml` writes it:
    /// elements with only text stay on one line, empty elements are self-closed, CDATA is kept.
    pub fn to_pretty_xml(&self) -> String {
        let mut out = String::new();
        self.write_pretty(&mut out, 0);
        out
    }

    fn write_pretty(&self, out: &mut String, depth: usize) {
        let indent = "  ".repeat(depth);
        out.push_str(&indent);
        if self.children.is_empty() {
            let _ = writeln!(out, "<{}/>", self.name);
            return;
        }
        let has_text = self.children.iter().any(|n| !matches!(n, Node::Element(_)));
        if has_text {
            // Mixed or text-only content is written inline, exactly as stored.
            let _ = write!(out, "<{}>", self.name);
            for child in &self.children {
                write_inline(out, child);
            }
            let _ = writeln!(out, "</{}>", self.name);
            return;
        }
        let _ = writeln!(out, "<{}>", self.name);
        for child in self.elements() {
            child.write_pretty(out, depth + 1);
        }
        let _ = writeln!(out, "{indent}</{}>", self.name);
    }

    /// The compact form, without any whitespace between elements.
    pub fn to_compact_xml(&self) -> String {
        let mut out = String::new();
        write_inline(&mut out, &Node::Element(self.clone()));
        out
    }
}

fn write_inline(out: &mut String, node: &Node) {
    match node {
        Node::Text(t) => out.push_str(&escape_text(t)),
        Node::CData(t) => {
            let _ = write!(out, "<![CDATA[{t}]]>");
        }
        Node::Element(e) if e.children.is_empty() => {
            let _ = write!(out, "<{}/>", e.name);
        }
        Node::Element(e) => {
            let _ = write!(out, "<{}>", e.name);
            for child in &e.children {
                write_inline(out, child);
            }
            let _ = write!(out, "</{}>", e.name);
        }
    }
}

fn escape_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

/// The Ruby OCA's hash view of a document: strings, ordered objects and arrays.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HashValue {
    String(String),
    Object(Vec<(String, HashValue)>),
    Array(Vec<HashValue>),
}

impl HashValue {
    /// Ruby's `JSON.pretty_generate`: two-space indentation, `"key": value`, `{}` and `[]`
    /// for empty containers.
    pub fn to_pretty_json(&self) -> String {
        let mut out = String::new();
        self.write_json(&mut out, 0);
        out
    }

    fn write_json(&self, out: &mut String, depth: usize) {
        let inner = "  ".repeat(depth + 1);
        let outer = "  ".repeat(depth);
        match self {
            HashValue::String(s) => out.push_str(&json_string(s)),
            HashValue::Object(fields) if fields.is_empty() => out.push_str("{}"),
            HashValue::Array(items) if items.is_empty() => out.push_str("[]"),
            HashValue::Object(fields) => {
                out.push_str("{\n");
                for (i, (key, value)) in fields.iter().enumerate() {
                    out.push_str(&inner);
                    out.push_str(&json_string(key));
                    out.push_str(": ");
                    value.write_json(out, depth + 1);
                    out.push_str(if i + 1 < fields.len() { ",\n" } else { "\n" });
                }
                out.push_str(&outer);
                out.push('}');
            }
            HashValue::Array(items) => {
                out.push_str("[\n");
                for (i, value) in items.iter().enumerate() {
                    out.push_str(&inner);
                    value.write_json(out, depth + 1);
                    out.push_str(if i + 1 < items.len() { ",\n" } else { "\n" });
                }
                out.push_str(&outer);
                out.push(']');
            }
        }
    }

    /// A YAML document of the same structure (`---` first, as Ruby's `to_yaml`).
    pub fn to_yaml(&self) -> String {
        let value = self.to_yaml_value();
        match serde_norway::to_string(&value) {
            Ok(text) => format!("---\n{text}"),
            // Serialising plain strings, maps and sequences cannot fail; keep a readable
            // fallback rather than a panic all the same.
            Err(e) => format!("--- # cannot be written as YAML: {e}\n"),
        }
    }

    fn to_yaml_value(&self) -> serde_norway::Value {
        match self {
            HashValue::String(s) => serde_norway::Value::String(s.clone()),
            HashValue::Array(items) => {
                serde_norway::Value::Sequence(items.iter().map(HashValue::to_yaml_value).collect())
            }
            HashValue::Object(fields) => {
                let mut map = serde_norway::Mapping::new();
                for (k, v) in fields {
                    map.insert(serde_norway::Value::String(k.clone()), v.to_yaml_value());
                }
                serde_norway::Value::Mapping(map)
            }
        }
    }
}

fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_nodes_cdata_and_entities() {
        let doc = parse("<A><B>x &lt;y&gt; &#65;</B><C><![CDATA[]]></C><D></D><E/></A>").unwrap();
        assert_eq!(doc.text_at("B"), Some("x <y> A"));
        assert_eq!(doc.text_at("C"), Some(""));
        assert_eq!(doc.text_at("D"), None);
        assert_eq!(doc.text_at("E"), None);
        assert_eq!(doc.text_at("F"), None);
    }

    #[test]
    fn malformed_documents_are_errors() {
        assert!(parse("<A><B></A>").is_err());
        assert!(parse("<A>").is_err());
        assert!(parse("").is_err());
        assert!(parse("<A/><B/>").is_err());
        assert!(parse("<A>&nope;</A>").is_err());
        assert!(parse("text").is_err());
    }

    #[test]
    fn hash_view_groups_repeated_elements() {
        let doc = parse("<P><H><ID>1</ID></H><H><ID>0</ID></H><E></E></P>").unwrap();
        let json = doc.to_hash().to_pretty_json();
        assert_eq!(
            json,
            "{\n  \"P\": {\n    \"H\": [\n      {\n        \"ID\": \"1\"\n      },\n      {\n        \"ID\": \"0\"\n      }\n    ],\n    \"E\": {}\n  }\n}"
        );
    }

    #[test]
    fn pretty_xml_keeps_cdata_and_inline_text() {
        let doc = parse("<H><ID>0</ID><T><A><![CDATA[x]]></A></T><L></L></H>").unwrap();
        assert_eq!(
            doc.to_pretty_xml(),
            "<H>\n  <ID>0</ID>\n  <T>\n    <A><![CDATA[x]]></A>\n  </T>\n  <L/>\n</H>\n"
        );
    }
}
