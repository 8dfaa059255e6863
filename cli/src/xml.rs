//! The documents the front-end returns (HOOK, HOOKLOG, VM, …) as [`one_proto::xml_tree`]
//! reads them, and the forms `-x`, `-j` and `-y` print.
//!
//! The renderers need what OpenNebula's Ruby CLI sees: element order, whether an element has a
//! text node at all (an empty CDATA section counts, an empty element does not), and the
//! hash view (`to_hash`) that `-j` and `-y` print. The shared tree keeps all of that.

use std::fmt::Write as _;

pub use one_proto::xml_tree::{Element, Node, XmlError, parse};

/// The printed forms of a document, as the Ruby CLI writes them.
pub trait DocumentForms {
    /// The hash view of the Ruby OCA's `to_hash`, wrapped in the root name.
    fn to_hash(&self) -> HashValue;

    /// The document indented by two spaces per level, as Nokogiri's pretty `to_xml` writes
    /// it: elements with only text stay on one line, empty elements are self-closed, CDATA is
    /// kept.
    fn to_pretty_xml(&self) -> String;

    /// The compact form, without any whitespace between elements.
    fn to_compact_xml(&self) -> String;
}

impl DocumentForms for Element {
    fn to_hash(&self) -> HashValue {
        HashValue::Object(vec![(self.name.clone(), hash_body(self))])
    }

    fn to_pretty_xml(&self) -> String {
        let mut out = String::new();
        write_pretty(self, &mut out, 0);
        out
    }

    fn to_compact_xml(&self) -> String {
        let mut out = String::new();
        write_inline(&mut out, &Node::Element(self.clone()));
        out
    }
}

fn hash_body(element: &Element) -> HashValue {
    // Nokogiri's rule: a single text or CDATA child is the value; otherwise the element
    // children form an object (an empty element is an empty object).
    if let [Node::Text(t) | Node::CData(t)] = element.children.as_slice() {
        return HashValue::String(t.clone());
    }
    let mut fields: Vec<(String, HashValue)> = Vec::new();
    for child in element.elements() {
        let value = hash_body(child);
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

fn write_pretty(element: &Element, out: &mut String, depth: usize) {
    let indent = "  ".repeat(depth);
    out.push_str(&indent);
    if element.children.is_empty() {
        let _ = writeln!(out, "<{}/>", element.name);
        return;
    }
    let has_text = element
        .children
        .iter()
        .any(|n| !matches!(n, Node::Element(_)));
    if has_text {
        // Mixed or text-only content is written inline, exactly as stored.
        let _ = write!(out, "<{}>", element.name);
        for child in &element.children {
            write_inline(out, child);
        }
        let _ = writeln!(out, "</{}>", element.name);
        return;
    }
    let _ = writeln!(out, "<{}>", element.name);
    for child in element.elements() {
        write_pretty(child, out, depth + 1);
    }
    let _ = writeln!(out, "{indent}</{}>", element.name);
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
            Ok(text) => format!("---\n{}", quote_yaml11_booleans(&text)),
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

/// Quotes the plain scalars that YAML 1.1 readers (Ruby's Psych, PyYAML) take for booleans:
/// `yes`, `no`, `on`, `off` in any case. The emitter follows YAML 1.2, where they are strings
/// and need no quotes, so `REMOTE: NO` would read back as false; Ruby writes `REMOTE: 'NO'`.
/// Lines inside block scalars are text and are left alone.
fn quote_yaml11_booleans(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    // The indentation of the line that opened a block scalar, while inside it.
    let mut block: Option<usize> = None;
    for line in text.split_inclusive('\n') {
        let body = line.trim_end_matches('\n');
        let indent = body.len() - body.trim_start().len();
        if let Some(opened) = block {
            if body.trim().is_empty() || indent > opened {
                out.push_str(line);
                continue;
            }
            block = None;
        }
        let (head, value) = match body.find(": ") {
            Some(i) => body.split_at(i + 2),
            None => match body.trim_start().strip_prefix("- ") {
                Some(rest) => body.split_at(body.len() - rest.len()),
                None => (body, ""),
            },
        };
        if value.starts_with('|') || value.starts_with('>') {
            block = Some(indent);
        }
        let boolean = matches!(
            value.to_ascii_lowercase().as_str(),
            "yes" | "no" | "on" | "off"
        );
        if boolean {
            out.push_str(head);
            out.push('\'');
            out.push_str(value);
            out.push('\'');
            out.push_str(&line[body.len()..]);
        } else {
            out.push_str(line);
        }
    }
    out
}

/// A JSON string literal. serde_json escapes exactly as Ruby's generator does: `\"`, `\\`,
/// the short forms of backspace, form feed, newline, carriage return and tab, `\u00xx` for
/// the other control characters, and everything else as it is.
fn json_string(s: &str) -> String {
    serde_json::Value::from(s).to_string()
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
    fn yaml_quotes_what_yaml_1_1_reads_as_a_boolean() {
        let doc = parse(
            "<H><REMOTE>NO</REMOTE><A>yes</A><B>On</B><C>nope</C><L><X>off</X><X>no</X></L>\
             <T>a\nno\n</T></H>",
        )
        .unwrap();
        let yaml = doc.to_hash().to_yaml();
        assert!(yaml.contains("REMOTE: 'NO'\n"), "{yaml}");
        assert!(yaml.contains("A: 'yes'\n"), "{yaml}");
        assert!(yaml.contains("B: 'On'\n"), "{yaml}");
        assert!(yaml.contains("C: nope\n"), "{yaml}");
        assert!(yaml.contains("- 'off'\n"), "{yaml}");
        assert!(yaml.contains("- 'no'\n"), "{yaml}");
        // Text inside a block scalar stays as it is.
        assert!(yaml.contains("    no\n"), "{yaml}");
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
