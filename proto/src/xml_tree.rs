//! A small read-only element tree for the object documents the front-end returns (VM, HOST,
//! IMAGE, HOOK, HOOKLOG and their pools), for clients that read values by path.
//!
//! Clients of the reference read these documents with REXML or Nokogiri and tell "no text
//! node" (`<A></A>`) from "an empty CDATA section" (`<A><![CDATA[]]></A>`), so the tree keeps
//! element order and text and CDATA nodes as separate children; adjacent character data and
//! references form one text node. Attributes, comments, processing instructions and the XML
//! declaration are dropped. This is a reader, not a well-formedness check: names and
//! characters are only checked as far as quick-xml checks them (see [`crate::encoding`] for the
//! strict check).

use quick_xml::events::BytesRef;
use quick_xml::events::Event;

/// The deepest nesting accepted. Object documents nest a few levels; the bound keeps the
/// recursive walks of callers (and dropping the tree) far from the stack's limit.
pub const MAX_DEPTH: usize = 64;

/// An element and its children, in document order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Element {
    pub name: String,
    pub children: Vec<Node>,
}

/// A child of an element.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Node {
    Element(Element),
    /// Character data and entity or character references, merged.
    Text(String),
    /// One CDATA section.
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
    #[error("XML nested deeper than {MAX_DEPTH} levels")]
    TooDeep,
}

/// Parses a whole document and returns its root element.
pub fn parse(text: &str) -> Result<Element, XmlError> {
    let mut reader = quick_xml::Reader::from_str(text);
    reader.config_mut().check_end_names = true;
    let mut open: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    loop {
        let position = reader.buffer_position();
        let malformed = |message: &dyn std::fmt::Display| XmlError::Malformed {
            position,
            message: message.to_string(),
        };
        match reader.read_event().map_err(|e| malformed(&e))? {
            Event::Start(start) => {
                if open.len() >= MAX_DEPTH {
                    return Err(XmlError::TooDeep);
                }
                open.push(Element {
                    name: String::from_utf8_lossy(start.name().as_ref()).into_owned(),
                    children: Vec::new(),
                });
            }
            Event::Empty(start) => {
                let element = Element {
                    name: String::from_utf8_lossy(start.name().as_ref()).into_owned(),
                    children: Vec::new(),
                };
                attach(&mut open, &mut root, element).map_err(|m| malformed(&m))?;
            }
            Event::End(_) => {
                let element = open.pop().ok_or_else(|| malformed(&"unexpected end tag"))?;
                attach(&mut open, &mut root, element).map_err(|m| malformed(&m))?;
            }
            Event::Text(data) => {
                let value = data.xml10_content().map_err(|e| malformed(&e))?;
                push_text(&mut open, &value).map_err(|m| malformed(&m))?;
            }
            Event::GeneralRef(reference) => {
                let value = resolve(&reference).map_err(|m| malformed(&m))?;
                push_text(&mut open, &value).map_err(|m| malformed(&m))?;
            }
            Event::CData(data) => {
                let value = data.decode().map_err(|e| malformed(&e))?;
                let parent = open
                    .last_mut()
                    .ok_or_else(|| malformed(&"CDATA outside the root element"))?;
                parent.children.push(Node::CData(value.into_owned()));
            }
            Event::Decl(_) | Event::Comment(_) | Event::PI(_) | Event::DocType(_) => {}
            Event::Eof => break,
        }
    }
    if let Some(unclosed) = open.pop() {
        return Err(XmlError::Unclosed(unclosed.name));
    }
    root.ok_or(XmlError::NoRoot)
}

/// Hangs a finished element below the innermost open one, or makes it the root.
fn attach(
    open: &mut [Element],
    root: &mut Option<Element>,
    element: Element,
) -> Result<(), &'static str> {
    match open.last_mut() {
        Some(parent) => parent.children.push(Node::Element(element)),
        None if root.is_none() => *root = Some(element),
        None => return Err("more than one root element"),
    }
    Ok(())
}

fn push_text(open: &mut [Element], value: &str) -> Result<(), &'static str> {
    match open.last_mut() {
        Some(parent) => {
            match parent.children.last_mut() {
                Some(Node::Text(previous)) => previous.push_str(value),
                _ => parent.children.push(Node::Text(value.to_string())),
            }
            Ok(())
        }
        // Whitespace around the root element is allowed; anything else is not.
        None if value.trim().is_empty() => Ok(()),
        None => Err("text outside the root element"),
    }
}

/// A character reference or one of the five predefined entities (there is no DTD to define
/// others).
fn resolve(reference: &BytesRef<'_>) -> Result<String, String> {
    if let Some(c) = reference.resolve_char_ref().map_err(|e| e.to_string())? {
        return Ok(c.to_string());
    }
    let name = reference.decode().map_err(|e| e.to_string())?;
    let value = match name.as_ref() {
        "lt" => "<",
        "gt" => ">",
        "amp" => "&",
        "apos" => "'",
        "quot" => "\"",
        other => return Err(format!("unknown entity &{other};")),
    };
    Ok(value.to_string())
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

    /// Every child element with this name, in document order.
    pub fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> + 'a {
        self.elements().filter(move |e| e.name == name)
    }

    /// The element at a `/`-separated path of first children below this one, e.g.
    /// `USER_TEMPLATE/AUTOSTART`. Empty segments are skipped, so `""` is this element.
    pub fn at(&self, path: &str) -> Option<&Element> {
        path.split('/')
            .filter(|s| !s.is_empty())
            .try_fold(self, |e, name| e.child(name))
    }

    /// The first text or CDATA child, as REXML's `Element#text` gives it: `None` when the
    /// element has no text node at all (`<A></A>`, `<A/>`), `Some("")` for
    /// `<A><![CDATA[]]></A>`.
    pub fn text(&self) -> Option<&str> {
        self.children.iter().find_map(|n| match n {
            Node::Text(t) | Node::CData(t) => Some(t.as_str()),
            Node::Element(_) => None,
        })
    }

    /// [`Element::text`] of the element at `path`.
    pub fn text_at(&self, path: &str) -> Option<&str> {
        self.at(path).and_then(Element::text)
    }

    /// [`Element::text_at`], or "" when the element is missing or has no text node.
    pub fn str_at(&self, path: &str) -> &str {
        self.text_at(path).unwrap_or("")
    }

    /// Every text and CDATA child concatenated in document order; the text of child
    /// elements is not included. "" for an element without text.
    pub fn own_text(&self) -> String {
        self.children
            .iter()
            .filter_map(|n| match n {
                Node::Text(t) | Node::CData(t) => Some(t.as_str()),
                Node::Element(_) => None,
            })
            .collect()
    }

    /// Whether the element has child elements.
    pub fn has_elements(&self) -> bool {
        self.elements().next().is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_cdata_and_references_are_separate_nodes() {
        let doc =
            parse("<A><B>x &lt;y&gt; &#65;&#x42;</B><C><![CDATA[]]></C><D></D><E/><F>p<![CDATA[q]]><G/>r</F></A>")
                .unwrap();
        assert_eq!(doc.name, "A");
        assert_eq!(
            doc.child("B").unwrap().children,
            vec![Node::Text("x <y> AB".into())]
        );
        assert_eq!(doc.text_at("C"), Some(""));
        assert_eq!(doc.text_at("D"), None);
        assert_eq!(doc.text_at("E"), None);
        assert_eq!(doc.str_at("E"), "");
        assert_eq!(doc.text_at("F"), Some("p"));
        assert_eq!(doc.child("F").unwrap().own_text(), "pqr");
        assert_eq!(doc.child("E").unwrap().own_text(), "");
        assert_eq!(doc.text_at("MISSING"), None);
    }

    #[test]
    fn paths_and_repeated_children() {
        let doc = parse(
            "<VM><HISTORY_RECORDS><HISTORY><SEQ>0</SEQ></HISTORY><HISTORY><SEQ>1</SEQ></HISTORY>\
             </HISTORY_RECORDS><USER_TEMPLATE><AUTOSTART>yes</AUTOSTART></USER_TEMPLATE></VM>",
        )
        .unwrap();
        assert_eq!(doc.text_at("USER_TEMPLATE/AUTOSTART"), Some("yes"));
        assert_eq!(doc.text_at("/USER_TEMPLATE//AUTOSTART/"), Some("yes"));
        assert_eq!(doc.at("").map(|e| e.name.as_str()), Some("VM"));
        assert_eq!(doc.text_at("HISTORY_RECORDS/HISTORY/SEQ"), Some("0"));
        let seqs: Vec<&str> = doc
            .child("HISTORY_RECORDS")
            .unwrap()
            .children_named("HISTORY")
            .map(|h| h.str_at("SEQ"))
            .collect();
        assert_eq!(seqs, ["0", "1"]);
        assert!(doc.has_elements());
        assert!(!doc.at("USER_TEMPLATE/AUTOSTART").unwrap().has_elements());
    }

    #[test]
    fn declaration_comments_and_surrounding_whitespace_are_dropped() {
        let doc =
            parse("<?xml version=\"1.0\"?>\n<!-- c --><A x=\"1\"><?pi?><B>b</B><!-- d --></A>\n")
                .unwrap();
        assert_eq!(doc.children.len(), 1);
        assert_eq!(doc.text_at("B"), Some("b"));
    }

    #[test]
    fn malformed_documents_are_errors() {
        assert!(matches!(parse(""), Err(XmlError::NoRoot)));
        assert!(matches!(parse("  \n"), Err(XmlError::NoRoot)));
        assert!(matches!(parse("<A>"), Err(XmlError::Unclosed(n)) if n == "A"));
        for bad in [
            "<A><B></A>",
            "<A/><B/>",
            "<A>&bogus;</A>",
            "junk<A/>",
            "<A/>junk",
            "<![CDATA[x]]><A/>",
            "</A>",
        ] {
            assert!(
                matches!(parse(bad), Err(XmlError::Malformed { .. })),
                "{bad:?}"
            );
        }
        let error = parse("<A>&bogus;</A>").unwrap_err().to_string();
        assert_eq!(error, "malformed XML at byte 3: unknown entity &bogus;");
    }

    #[test]
    fn nesting_is_bounded() {
        let at_limit = format!("{}{}", "<a>".repeat(MAX_DEPTH), "</a>".repeat(MAX_DEPTH));
        assert!(parse(&at_limit).is_ok());
        let deeper = format!(
            "{}{}",
            "<a>".repeat(MAX_DEPTH + 1),
            "</a>".repeat(MAX_DEPTH + 1)
        );
        assert!(matches!(parse(&deeper), Err(XmlError::TooDeep)));
        let hostile = "<a>".repeat(100_000);
        assert!(matches!(parse(&hostile), Err(XmlError::TooDeep)));
    }
}
