//! A small document tree with libxml2's node model, built on quick-xml, and the XML form of
//! templates (reference §2.5).
//!
//! oned reads templates and hook bodies with libxml2 and decides what an element means from
//! its child nodes, so the tree keeps what libxml2 keeps: adjacent text pieces (character
//! data, entity and character references) form one text node, adjacent CDATA sections one
//! CDATA node, and comments or processing instructions are nodes of their own. Blank text is
//! kept. The reader rejects what a conforming parser rejects as not well-formed, within reason:
//! mismatched or unclosed tags, invalid names, bad references, characters outside XML's
//! `Char` production, `]]>` in content, content outside the root, more than 256 levels of
//! nesting (libxml2's default limit).

use std::collections::BTreeMap;

use quick_xml::events::{BytesStart, Event};
use quick_xml::reader::Reader;

use super::{AttrValue, Attribute, fix_top_name};

/// libxml2's default maximum element depth.
const MAX_DEPTH: usize = 256;

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Node {
    Element(Element),
    Text(String),
    CData(String),
    /// A comment or a processing instruction.
    Other,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Element {
    pub name: String,
    pub children: Vec<Node>,
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

    /// The concatenated text of all descendant text and CDATA nodes (XPath `string()`).
    pub fn text(&self) -> String {
        let mut out = String::new();
        let mut stack: Vec<std::slice::Iter<'_, Node>> = vec![self.children.iter()];
        while let Some(top) = stack.last_mut() {
            match top.next() {
                Some(Node::Text(t) | Node::CData(t)) => out.push_str(t),
                Some(Node::Element(e)) => stack.push(e.children.iter()),
                Some(Node::Other) => {}
                None => {
                    stack.pop();
                }
            }
        }
        out
    }
}

/// `Char` of XML 1.0 (a Rust `char` is never a surrogate).
pub(crate) fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r') || (c >= ' ' && c != '\u{FFFE}' && c != '\u{FFFF}')
}

fn is_name_start_char(c: char) -> bool {
    matches!(c,
        ':' | 'A'..='Z' | '_' | 'a'..='z'
        | '\u{C0}'..='\u{D6}' | '\u{D8}'..='\u{F6}' | '\u{F8}'..='\u{2FF}'
        | '\u{370}'..='\u{37D}' | '\u{37F}'..='\u{1FFF}' | '\u{200C}'..='\u{200D}'
        | '\u{2070}'..='\u{218F}' | '\u{2C00}'..='\u{2FEF}' | '\u{3001}'..='\u{D7FF}'
        | '\u{F900}'..='\u{FDCF}' | '\u{FDF0}'..='\u{FFFD}' | '\u{10000}'..='\u{EFFFF}')
}

fn is_name_char(c: char) -> bool {
    is_name_start_char(c)
        || matches!(c, '-' | '.' | '0'..='9' | '\u{B7}' | '\u{300}'..='\u{36F}' | '\u{203F}'..='\u{2040}')
}

/// `Name` of XML 1.0.
pub(crate) fn is_xml_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(is_name_start_char) && chars.all(is_name_char)
}

fn check_chars(s: &str, what: &str) -> Result<(), String> {
    match s.chars().find(|&c| !is_xml_char(c)) {
        Some(c) => Err(format!(
            "character U+{:04X} is not allowed in {what}",
            c as u32
        )),
        None => Ok(()),
    }
}

/// Appends character data to `children`, merging it into a preceding node of the same kind.
fn push_text(children: &mut Vec<Node>, text: &str, cdata: bool) {
    match (children.last_mut(), cdata) {
        (Some(Node::Text(t)), false) | (Some(Node::CData(t)), true) => t.push_str(text),
        _ if cdata => children.push(Node::CData(text.to_owned())),
        _ => children.push(Node::Text(text.to_owned())),
    }
}

/// Reads a start tag: its (checked) name and the namespace prefixes it declares.
fn start_element(e: &BytesStart<'_>) -> Result<(Element, Vec<String>), String> {
    let name = std::str::from_utf8(e.name().as_ref())
        .map_err(|err| err.to_string())?
        .to_owned();
    if !is_xml_name(&name) {
        return Err(format!("invalid element name {name:?}"));
    }
    // Attributes must be separated by white space (`a="1"b="2"` is not well-formed).
    let raw = e.attributes_raw();
    let mut quote = None;
    for (i, &b) in raw.iter().enumerate() {
        match quote {
            Some(q) if b == q => {
                quote = None;
                if raw
                    .get(i + 1)
                    .is_some_and(|n| !matches!(n, b' ' | b'\t' | b'\r' | b'\n'))
                {
                    return Err(format!("no white space after an attribute of <{name}>"));
                }
            }
            Some(_) => {}
            None if b == b'"' || b == b'\'' => quote = Some(b),
            None => {}
        }
    }
    let mut prefixes = Vec::new();
    let mut attributes = e.attributes();
    attributes.with_checks(true);
    for attribute in attributes {
        let attribute = attribute.map_err(|err| err.to_string())?;
        let key = std::str::from_utf8(attribute.key.as_ref()).map_err(|err| err.to_string())?;
        if !is_xml_name(key) {
            return Err(format!("invalid attribute name {key:?}"));
        }
        if attribute.value.contains(&b'<') {
            return Err(format!("'<' in the value of attribute {key:?}"));
        }
        let value = attribute.unescape_value().map_err(|err| err.to_string())?;
        check_chars(&value, "an attribute value")?;
        if let Some(prefix) = key.strip_prefix("xmlns:") {
            prefixes.push(prefix.to_owned());
        }
    }
    Ok((
        Element {
            name,
            children: Vec::new(),
        },
        prefixes,
    ))
}

/// libxml2 names an element by its local part when its prefix is a declared namespace
/// prefix, and by the whole qualified name otherwise.
fn resolve_prefix(element: &mut Element, scopes: &[Vec<String>]) {
    if let Some((prefix, local)) = element.name.split_once(':')
        && !prefix.is_empty()
        && !local.is_empty()
        && (prefix == "xml" || scopes.iter().any(|scope| scope.iter().any(|p| p == prefix)))
    {
        element.name = local.to_owned();
    }
}

/// Resolves `&name;` or `&#n;` as a non-validating parser without a DTD does.
fn resolve_reference(r: &quick_xml::events::BytesRef<'_>) -> Result<char, String> {
    if let Some(c) = r.resolve_char_ref().map_err(|err| err.to_string())? {
        return if is_xml_char(c) {
            Ok(c)
        } else {
            Err(format!("character reference to U+{:04X}", c as u32))
        };
    }
    let name = r.decode().map_err(|err| err.to_string())?;
    match name.as_ref() {
        "amp" => Ok('&'),
        "lt" => Ok('<'),
        "gt" => Ok('>'),
        "quot" => Ok('"'),
        "apos" => Ok('\''),
        other => Err(format!("undefined entity &{other};")),
    }
}

/// Checks an XML declaration (`xml version="1.x" [encoding="…"] [standalone="…"]`, in this
/// order). The text is already UTF-8, so only a UTF-8 encoding label is accepted.
fn check_declaration(content: &[u8]) -> Result<(), String> {
    let bad = |what: &str| Err(format!("malformed XML declaration: {what}"));
    let Ok(s) = std::str::from_utf8(content) else {
        return bad("not UTF-8");
    };
    let Some(mut rest) = s.strip_prefix("xml") else {
        return bad("missing 'xml'");
    };
    let is_space = |c: char| matches!(c, ' ' | '\t' | '\r' | '\n');
    // Reads ` name = "value"` (the leading blank is mandatory) and returns the value.
    let pseudo_attribute = |rest: &mut &str, name: &str| -> Option<String> {
        let after_space = rest.trim_start_matches(is_space);
        if after_space.len() == rest.len() {
            return None;
        }
        let after_name = after_space.strip_prefix(name)?;
        let after_eq = after_name
            .trim_start_matches(is_space)
            .strip_prefix('=')?
            .trim_start_matches(is_space);
        let quote = after_eq
            .chars()
            .next()
            .filter(|q| *q == '"' || *q == '\'')?;
        let body = &after_eq[1..];
        let end = body.find(quote)?;
        *rest = &body[end + 1..];
        Some(body[..end].to_owned())
    };
    let Some(version) = pseudo_attribute(&mut rest, "version") else {
        return bad("missing version");
    };
    let version_ok = version
        .strip_prefix("1.")
        .is_some_and(|d| d.bytes().all(|b| b.is_ascii_digit()));
    if !version_ok {
        return bad("unsupported version");
    }
    if let Some(encoding) = pseudo_attribute(&mut rest, "encoding")
        && !(encoding.eq_ignore_ascii_case("UTF-8") || encoding.eq_ignore_ascii_case("UTF8"))
    {
        return bad("unsupported encoding");
    }
    if let Some(standalone) = pseudo_attribute(&mut rest, "standalone")
        && standalone != "yes"
        && standalone != "no"
    {
        return bad("standalone must be yes or no");
    }
    if !rest.trim_matches(is_space).is_empty() {
        return bad("unexpected content");
    }
    Ok(())
}

/// Parses a whole document and returns its root element.
pub(crate) fn parse_document(xml: &str) -> Result<Element, String> {
    let mut reader = Reader::from_str(xml);
    let config = reader.config_mut();
    config.trim_text(false);
    config.check_end_names = true;
    config.check_comments = true;
    config.expand_empty_elements = false;

    let mut stack: Vec<Element> = Vec::new();
    // Namespace prefixes declared by each open element.
    let mut scopes: Vec<Vec<String>> = Vec::new();
    let mut root: Option<Element> = None;
    let mut first = true;
    let mut seen_doctype = false;
    loop {
        let event = reader
            .read_event()
            .map_err(|err| format!("at byte {}: {err}", reader.error_position()))?;
        let at_start = std::mem::replace(&mut first, false);
        match event {
            Event::Start(e) | Event::Empty(e) if root.is_some() && stack.is_empty() => {
                let _ = e;
                return Err("content after the root element".into());
            }
            Event::Start(e) => {
                if stack.len() >= MAX_DEPTH {
                    return Err(format!("more than {MAX_DEPTH} nested elements"));
                }
                let (mut element, prefixes) = start_element(&e)?;
                scopes.push(prefixes);
                resolve_prefix(&mut element, &scopes);
                stack.push(element);
            }
            Event::Empty(e) => {
                let (mut element, prefixes) = start_element(&e)?;
                scopes.push(prefixes);
                resolve_prefix(&mut element, &scopes);
                scopes.pop();
                match stack.last_mut() {
                    Some(parent) => parent.children.push(Node::Element(element)),
                    None => root = Some(element),
                }
            }
            Event::End(_) => {
                let Some(element) = stack.pop() else {
                    return Err("unexpected end tag".into());
                };
                scopes.pop();
                match stack.last_mut() {
                    Some(parent) => parent.children.push(Node::Element(element)),
                    None => root = Some(element),
                }
            }
            Event::Text(t) => {
                let text = t.xml10_content().map_err(|err| err.to_string())?;
                check_chars(&text, "text")?;
                match stack.last_mut() {
                    Some(parent) => {
                        if text.contains("]]>") {
                            return Err("']]>' is not allowed in content".into());
                        }
                        push_text(&mut parent.children, &text, false);
                    }
                    None if text.chars().all(|c| matches!(c, ' ' | '\t' | '\r' | '\n')) => {}
                    None => return Err("text outside the root element".into()),
                }
            }
            Event::GeneralRef(r) => {
                let c = resolve_reference(&r)?;
                let Some(parent) = stack.last_mut() else {
                    return Err("reference outside the root element".into());
                };
                push_text(&mut parent.children, c.encode_utf8(&mut [0; 4]), false);
            }
            Event::CData(c) => {
                let text = c.xml10_content().map_err(|err| err.to_string())?;
                check_chars(&text, "a CDATA section")?;
                let Some(parent) = stack.last_mut() else {
                    return Err("CDATA outside the root element".into());
                };
                push_text(&mut parent.children, &text, true);
            }
            Event::Comment(c) => {
                let text = c.decode().map_err(|err| err.to_string())?;
                check_chars(&text, "a comment")?;
                if let Some(parent) = stack.last_mut() {
                    parent.children.push(Node::Other);
                }
            }
            Event::PI(pi) => {
                let target = String::from_utf8_lossy(pi.target()).into_owned();
                if target.eq_ignore_ascii_case("xml") || !is_xml_name(&target) {
                    return Err(format!("invalid processing instruction target {target:?}"));
                }
                if let Some(parent) = stack.last_mut() {
                    parent.children.push(Node::Other);
                }
            }
            Event::Decl(d) => {
                if !at_start {
                    return Err("XML declaration allowed only at the start of the document".into());
                }
                check_declaration(&d)?;
            }
            Event::DocType(_) => {
                if root.is_some() || !stack.is_empty() || std::mem::replace(&mut seen_doctype, true)
                {
                    return Err("DOCTYPE out of place".into());
                }
            }
            Event::Eof => {
                if !stack.is_empty() {
                    return Err("unclosed element at the end of the document".into());
                }
                return root.ok_or_else(|| "no root element".into());
            }
        }
    }
}

/// Builds template attributes from the children of `root`, as oned's
/// `Template::rebuild_attributes` does (values are not trimmed here).
pub(crate) fn attributes_from_element(root: &Element) -> Vec<Attribute> {
    let mut attributes = Vec::new();
    for element in root.elements() {
        // A single attribute: exactly one child, which is text or CDATA.
        if let [Node::Text(v) | Node::CData(v)] = element.children.as_slice() {
            attributes.push(Attribute {
                name: fix_top_name(&element.name),
                value: AttrValue::Single(v.clone()),
            });
            continue;
        }
        // A vector attribute: from the first child element on, every element whose first
        // child is text or CDATA is a key; a repeated key keeps the last value.
        if element.elements().next().is_some() {
            let mut map = BTreeMap::new();
            for child in element.elements() {
                if let Some(Node::Text(v) | Node::CData(v)) = child.children.first() {
                    map.insert(child.name.clone(), v.clone());
                }
            }
            attributes.push(Attribute {
                name: fix_top_name(&element.name),
                value: AttrValue::Vector(map.into_iter().collect()),
            });
        }
        // Anything else (empty, or split text without child elements) is dropped.
    }
    attributes
}

/// Escapes text for element content. CR is written as a character reference so that it
/// survives the end-of-line normalisation of XML readers.
pub(crate) fn escape_text(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\r' => out.push_str("&#13;"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_model_follows_libxml2() {
        let root = parse_document(
            "<T><A>a &amp; b</A><B>x<![CDATA[y]]></B><C><![CDATA[p]]><![CDATA[q]]></C></T>",
        )
        .unwrap();
        let a = root.child("A").unwrap();
        assert_eq!(a.children, vec![Node::Text("a & b".into())]);
        assert_eq!(root.child("B").unwrap().children.len(), 2);
        assert_eq!(
            root.child("C").unwrap().children,
            vec![Node::CData("pq".into())]
        );
    }

    #[test]
    fn malformed_documents() {
        for bad in [
            "<T>",
            "<T></U>",
            "<T/><U/>",
            "<T/>x",
            "<T>&foo;</T>",
            "<T>a ]]> b</T>",
            "<T><1A>x</1A></T>",
            "<T>\u{1}</T>",
            "<T a='1' a='2'/>",
            "<T><!-- a -- b --></T>",
            "<T>&#0;</T>",
            "<T/><?xml version='1.0'?>",
        ] {
            assert!(parse_document(bad).is_err(), "{bad:?} should be malformed");
        }
        let deep = "<a>".repeat(300) + &"</a>".repeat(300);
        assert!(parse_document(&deep).is_err());
    }

    #[test]
    fn eol_normalisation() {
        let root = parse_document("<T><A>a\r\nb\rc&#13;</A></T>").unwrap();
        assert_eq!(root.child("A").unwrap().text(), "a\nb\nc\r");
    }
}
